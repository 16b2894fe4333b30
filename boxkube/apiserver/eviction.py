"""POST pods/<name>/eviction: a pod deletion that disruption budgets may refuse.

Upstream's EvictionREST (pkg/registry/core/pod/storage/eviction.go), which
`kubectl drain` and the official clients' `create_namespaced_pod_eviction` use.
The body is a policy/v1 Eviction (policy/v1beta1 is accepted too, as upstream:
same fields); its `deleteOptions` are the options of the pod's deletion, so a
pod on a node is deleted gracefully, like a plain DELETE. Success is 201 with a
Status Success, not the pod.

boxkube serves no PodDisruptionBudgets, so no budget ever covers a pod and every
eviction is allowed: what upstream does for a pod no budget selects.
"""
from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from boxkube.api import jsonio
from boxkube.apiserver import codec, errors
from boxkube.apiserver.registry import check_unknown_fields

if TYPE_CHECKING:
    from boxkube.apiserver.handlers import Handlers, Target

Obj = dict[str, Any]

_DEFINITION = "io.k8s.api.policy.v1.Eviction"
# Upstream's EvictionREST.AcceptsGroupVersion; v1beta1's Eviction has v1's fields.
_API_VERSIONS = ("policy/v1", "policy/v1beta1")
# Upstream's EvictionsRetry: 20 tries 0.5 s (+-10%) apart while the pod changes under the eviction.
_RETRIES, _RETRY_DELAY = 20, 0.5


async def evict(h: "Handlers", request: Request, t: "Target") -> Response:
    from boxkube.apiserver.handlers import created_status
    mt, raw = await h.body(request)
    opts = h.write_options(request)
    eviction = codec.decode_body(mt, raw)
    version = _check_type(eviction)
    check_unknown_fields(_DEFINITION, eviction, opts, ("Eviction", version))
    meta = eviction.get("metadata") or {}
    if meta.get("namespace") and meta["namespace"] != t.namespace:
        raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the request")
    if meta.get("name", "") != t.name:
        raise errors.bad_request("name in URL does not match name in Eviction object")
    options = _delete_options(eviction, request.query_params.getlist("dryRun"))
    opts.dry_run = opts.dry_run or bool(options.get("dryRun"))
    rv_given = bool((options.get("preconditions") or {}).get("resourceVersion"))

    for attempt in range(_RETRIES):
        pod = await h.registry.get(t.rt, t.namespace, t.name)
        if not _disrupts_nothing(pod):
            break
        # A pod that is not running (or already going) is deleted without asking any budget: it
        # disrupts nothing more. A pending one could start running meanwhile and then count towards a
        # budget, so it is deleted only as it was read (upstream shouldEnforceResourceVersion).
        enforced = _phase(pod) == "Pending" and not pod["metadata"].get("deletionTimestamp") and not rv_given
        pod_options = options if not enforced else {
            **options, "preconditions": {**(options.get("preconditions") or {}),
                                         "resourceVersion": pod["metadata"]["resourceVersion"]}}
        try:
            await h.registry.delete(t.rt, t.namespace, t.name, pod_options, opts)
        except errors.APIError as e:
            # The pod changed since it was read: read it again (upstream's EvictionsRetry). With a
            # resourceVersion precondition of the client's own, its failing is the answer.
            if e.reason == "Conflict" and enforced and attempt + 1 < _RETRIES:
                await asyncio.sleep(_RETRY_DELAY * random.uniform(0.9, 1.1))
                continue
            raise
        return created_status(opts.warnings)

    # A pod that counts towards its workload's availability: the PodDisruptionBudgets selecting
    # it decide. None is served (see the module's docstring), so the eviction goes ahead.
    await h.registry.delete(t.rt, t.namespace, t.name, options, opts)
    return created_status(opts.warnings)


def _check_type(eviction: Obj) -> str:
    """The version of the Eviction in the body; a body without apiVersion and kind is taken as policy/v1."""
    kind, api_version = eviction.get("kind"), eviction.get("apiVersion")
    if kind and kind != "Eviction":
        raise errors.bad_request(f"the kind in the data ({kind}) does not match the expected kind (Eviction)")
    if api_version and api_version not in _API_VERSIONS:
        raise errors.bad_request(f"the API version in the data ({api_version}) does not match the expected "
                                 f"API version ({_API_VERSIONS[0]})")
    return (api_version or _API_VERSIONS[0]).rpartition("/")[2]


def _delete_options(eviction: Obj, query_dry_run: list[str]) -> Obj:
    """The eviction's deleteOptions, with the request's ?dryRun= when the body names none
    (upstream propagateDryRun; both given and different is a 400)."""
    options = jsonio.copy(eviction.get("deleteOptions") or {})
    body_dry_run = options.get("dryRun") or []
    if not body_dry_run:
        if query_dry_run:
            options["dryRun"] = list(query_dry_run)
    elif query_dry_run and query_dry_run != body_dry_run:
        raise errors.bad_request("Non-matching dry-run options in request and content: "
                                 f"[{' '.join(query_dry_run)}] and [{' '.join(body_dry_run)}]")
    return options


def _phase(pod: Obj) -> str:
    return (pod.get("status") or {}).get("phase") or ""


def _disrupts_nothing(pod: Obj) -> bool:
    """Finished, not started or already being deleted: evicted without a budget's say (upstream canIgnorePDB)."""
    return _phase(pod) in ("Succeeded", "Failed", "Pending") or bool(pod["metadata"].get("deletionTimestamp"))
