"""The scale and binding subresources: views of a parent object in another kind."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from boxkube.apiserver import codec, errors, patch, selectors
from boxkube.api.times import now_rfc3339

if TYPE_CHECKING:
    from boxkube.apiserver.handlers import Handlers, Target

Obj = dict[str, Any]

_SCALE_DEFINITION = "io.k8s.api.autoscaling.v1.Scale"


def to_scale(obj: Obj) -> Obj:
    """The autoscaling/v1 Scale of a workload (status.selector in label-selector string form)."""
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    selector = spec.get("selector") or {}
    if not ("matchLabels" in selector or "matchExpressions" in selector):
        selector = {"matchLabels": selector}       # a ReplicationController's plain map
    selector_text = str(selectors.label_selector_from_object(selector))
    scale_meta = {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in meta}
    return {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": scale_meta,
            "spec": {"replicas": int(spec.get("replicas", 0))},
            "status": {"replicas": int(status.get("replicas", 0)), "selector": selector_text}}


async def scale(h: "Handlers", request: Request, t: "Target", method: str) -> Response:
    from boxkube.apiserver.handlers import json_response, PATCH_TYPES
    registry = h.registry
    if method == "GET":
        return json_response(to_scale(await registry.get(t.rt, t.namespace, t.name)))
    if method not in ("PUT", "PATCH"):
        raise errors.method_not_allowed()
    allowed = PATCH_TYPES if method == "PATCH" else codec.OBJECT_TYPES
    mt, raw = await h.body(request, allowed)
    opts = h.write_options(request)
    body = codec.decode_body(mt, raw) if method == "PUT" else None

    def mutate(obj: Obj) -> Obj:
        current = to_scale(obj)
        wanted = body if body is not None else patch.apply_patch(mt, current, raw, _SCALE_DEFINITION)
        rv = (wanted.get("metadata") or {}).get("resourceVersion")
        if rv and rv != obj["metadata"]["resourceVersion"]:
            raise errors.conflict(t.rt.plural, t.name, t.rt.group)
        replicas = (wanted.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise errors.invalid("Scale", t.name, [errors.field_cause(
                "spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0")], "autoscaling")
        obj.setdefault("spec", {})["replicas"] = replicas
        return obj
    updated = await registry.guaranteed_update(t.rt, t.namespace, t.name, mutate, opts, subresource="scale")
    return json_response(to_scale(updated), 200, opts.warnings)


async def bind(h: "Handlers", request: Request, t: "Target") -> Response:
    """POST pods/<name>/binding: assign a pending pod to a node, once."""
    from boxkube.apiserver.handlers import created_status
    mt, raw = await h.body(request)
    binding = codec.decode_body(mt, raw)
    node = ((binding.get("target") or {}).get("name") or "")
    if not node:
        raise errors.invalid("Binding", t.name, [errors.field_cause("target.name", "Required value", "FieldValueRequired")])
    opts = h.write_options(request)

    def mutate(pod: Obj) -> Obj:
        spec = pod.setdefault("spec", {})
        if pod["metadata"].get("deletionTimestamp"):
            raise errors.conflict("pods", t.name, why="pod is being deleted, cannot be assigned to a host")
        if spec.get("nodeName"):
            raise errors.conflict("pods", t.name, why=f"pod {t.name} is already assigned to node \"{spec['nodeName']}\"")
        spec["nodeName"] = node
        status = pod.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                           "lastTransitionTime": now_rfc3339()})
        status["conditions"] = conditions
        return pod
    # The binding writes spec and status together: it is neither a plain update nor a status write.
    await h.registry.guaranteed_update(t.rt, t.namespace, t.name, mutate, opts, subresource="binding")
    return created_status()

