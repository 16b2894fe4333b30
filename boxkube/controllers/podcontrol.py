"""What every controller of pods does to them (upstream pkg/controller: controller_utils.go's
RealPodControl and FilterPodsByOwner, controller_ref_manager.go's PodControllerRefManager).

- `pod_from_template`: the pod a controller creates from its template;
- `PodControl`: create, delete and patch pods, recording upstream's events
  (SuccessfulCreate "Created pod: NAME", FailedCreate "Error creating: ...",
  SuccessfulDelete "Deleted pod: NAME", FailedDelete) on the controller object;
- `add_pod_controller_index` / `pods_of`: a controller's pods and the
  orphans in its namespace, from the pod informer's cache by index;
- `claim_pods`: adopt matching orphans, release owned pods that stopped matching.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from boxkube.api import jsonio
from boxkube.api.pods import is_terminal
from boxkube.apiserver.errors import APIError
from boxkube.apiserver.selectors import LabelSelector, label_selector_from_object
from boxkube.client import ApiClient, ApiError, EventRecorder, ResourceType, Store, resource
from boxkube.client.store import object_key
from boxkube.controllers.ownership import controller_of

log = logging.getLogger(__name__)

Obj = dict[str, Any]
PODS = resource("pods")

POD_CONTROLLER_INDEX = "podControllerUID"
_MAX_NAME = 253


def usable_selector(recorder: EventRecorder, owner: Obj, what: str) -> LabelSelector | None:
    """The owner's spec.selector, or None after upstream's Warning event when it is invalid or empty
    (an empty selector would claim every pod of the namespace). `what` names the kind in the message."""
    try:
        selector = label_selector_from_object((owner.get("spec") or {}).get("selector"))
    except APIError as e:
        recorder.event(owner, "Warning", "InvalidSelector", f"Invalid selector: {e}")
        return None
    if selector.empty():
        recorder.event(owner, "Warning", "SelectingAll",
                       f"This {what} is selecting all pods. A non-empty selector is required.")
        return None
    return selector


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def is_terminating(pod: Obj) -> bool:
    """Being deleted but not finished: counted as status.terminatingReplicas."""
    return bool(_meta(pod).get("deletionTimestamp")) and not is_terminal(pod)


def has_status_cause(error: ApiError, cause: str) -> bool:
    return any(c.get("reason") == cause for c in error.details.get("causes") or [])


# -- the pod controller index ---------------------------------------------------

def index_by_controller(pod: Obj) -> list[str]:
    """The controlling owner's uid; orphans under `orphan/<namespace>`, so a controller finds
    the orphans it may adopt without reading every pod."""
    ref = controller_of(pod)
    return [ref["uid"]] if ref and ref.get("uid") else [f"orphan/{_meta(pod).get('namespace', '')}"]


def add_pod_controller_index(store: Store) -> None:
    """Index the pod cache by controller (once: controllers share the pod informer)."""
    try:
        store.add_indexers({POD_CONTROLLER_INDEX: index_by_controller})
    except ValueError:
        pass   # another controller on this informer added it already


def pods_of(store: Store, owner: Obj, include_orphans: bool = True) -> list[Obj]:
    """The pods `owner` controls, and (by default) the orphans of its namespace (FilterPodsByOwner)."""
    meta = _meta(owner)
    pods = store.by_index(POD_CONTROLLER_INDEX, meta["uid"])
    if include_orphans:
        pods += store.by_index(POD_CONTROLLER_INDEX, f"orphan/{meta.get('namespace', '')}")
    return pods


# -- making pods ------------------------------------------------------------------

def pod_name_prefix(owner_name: str) -> str:
    """generateName `<owner>-`, or the bare name when the dash would make it too long (getPodsPrefix)."""
    return f"{owner_name}-" if len(owner_name) < _MAX_NAME else owner_name


def pod_from_template(template: Obj, owner_name: str, controller_ref: Obj | None) -> Obj:
    """The pod a controller creates (GetPodFromTemplate): the template's labels, annotations,
    finalizers and spec, a generated name, and the controller reference."""
    tmeta = template.get("metadata") or {}
    meta: Obj = {"generateName": pod_name_prefix(owner_name)}
    for key in ("labels", "annotations", "finalizers"):
        if tmeta.get(key):
            meta[key] = jsonio.copy(tmeta[key])
    if controller_ref is not None:
        meta["ownerReferences"] = [dict(controller_ref)]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": jsonio.copy(template.get("spec") or {})}


class PodControl:
    """Pod writes on behalf of a controller object, each recorded as an Event on that object."""

    def __init__(self, client: ApiClient, recorder: EventRecorder):
        self.client, self.recorder = client, recorder

    async def create_pod(self, owner: Obj, template: Obj, controller_ref: Obj | None) -> Obj:
        """Create one pod from `template` in the owner's namespace; raises ApiError (a FailedCreate
        event is recorded, unless the namespace is going away)."""
        pod = pod_from_template(template, _meta(owner)["name"], controller_ref)
        if not pod["metadata"].get("labels"):
            raise ValueError("unable to create pods, no labels")
        try:
            created = await self.client.create(PODS, pod, _meta(owner)["namespace"])
        except ApiError as e:
            if not has_status_cause(e, "NamespaceTerminating"):
                self.recorder.event(owner, "Warning", "FailedCreate", f"Error creating: {e.message}")
            raise
        self.recorder.event(owner, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")
        return created

    async def delete_pod(self, owner: Obj, namespace: str, name: str) -> None:
        """Delete one pod; raises ApiError (NotFound quietly: someone else got there first)."""
        try:
            await self.client.delete(PODS, name, namespace)
        except ApiError as e:
            if not e.is_not_found:
                self.recorder.event(owner, "Warning", "FailedDelete", f"Error deleting: {e.message}")
            raise
        self.recorder.event(owner, "Normal", "SuccessfulDelete", f"Deleted pod: {name}")

    async def patch_pod(self, namespace: str, name: str, patch: Obj) -> Obj:
        return await self.client.patch(PODS, name, patch, namespace, patch_type="strategic")


# -- claiming: adoption and release ----------------------------------------------------

class _Once:
    """Run an async check at most once and keep its outcome (upstream's sync.Once around canAdopt)."""

    def __init__(self, check: Callable[[], Awaitable[None]]):
        self._check, self._done, self._error = check, False, None

    async def __call__(self) -> None:
        if not self._done:
            self._done = True
            try:
                await self._check()
            except Exception as e:
                self._error = e
        if self._error is not None:
            raise self._error


class ControllerRefManager:
    """Claims pods for one controller object (PodControllerRefManager.ClaimPods).

    An owned pod that still matches is kept; an owned pod that stopped matching
    is released (its ownerReference removed) unless the owner is being deleted;
    a matching orphan is adopted (ownerReference added) unless the owner or the
    orphan is being deleted. Before the first adoption, `can_adopt` re-reads the
    owner from the API server: a cached owner may already be deleted.
    """

    def __init__(self, control: PodControl, owner: Obj, selector: LabelSelector, controller_ref: Obj,
                 can_adopt: Callable[[], Awaitable[None]]):
        self.control, self.owner, self.selector, self.ref = control, owner, selector, controller_ref
        self._can_adopt = _Once(can_adopt)

    async def claim_pods(self, pods: list[Obj]) -> list[Obj]:
        """The pods this owner controls after adopting and releasing; raises the first error after
        trying every pod (the caller requeues)."""
        claimed, errors = [], []
        for pod in pods:
            try:
                if await self._claim(pod):
                    claimed.append(pod)
            except Exception as e:
                errors.append(e)
        if errors:
            raise errors[0]
        return claimed

    def _matches(self, pod: Obj) -> bool:
        return self.selector.matches(_meta(pod).get("labels") or {})

    async def _claim(self, pod: Obj) -> bool:
        ref = controller_of(pod)
        owner_meta = _meta(self.owner)
        if ref is not None:
            if ref.get("uid") != owner_meta.get("uid"):
                return False          # someone else's
            if self._matches(pod):
                return True
            if not owner_meta.get("deletionTimestamp"):
                await self.release(pod)
            return False
        if owner_meta.get("deletionTimestamp") or not self._matches(pod) or _meta(pod).get("deletionTimestamp"):
            return False
        if owner_meta.get("namespace") and owner_meta["namespace"] != _meta(pod).get("namespace"):
            return False
        return await self.adopt(pod)

    async def adopt(self, pod: Obj) -> bool:
        """Add our controller reference; False when the pod is gone."""
        await self._can_adopt()
        meta = _meta(pod)
        patch = {"metadata": {"ownerReferences": [self.ref], "uid": meta["uid"]}}
        try:
            await self.control.patch_pod(meta["namespace"], meta["name"], patch)
        except ApiError as e:
            if e.is_not_found:
                return False
            raise
        log.info("%s %s adopted pod %s", self.ref["kind"], object_key(self.owner), meta["name"])
        return True

    async def release(self, pod: Obj) -> None:
        """Remove our reference. Gone, or Invalid (no such reference, or a new pod of that name:
        the uid in the patch no longer matches) both mean there is nothing to release."""
        meta = _meta(pod)
        patch = {"metadata": {"ownerReferences": [{"$patch": "delete", "uid": self.ref["uid"]}], "uid": meta["uid"]}}
        try:
            await self.control.patch_pod(meta["namespace"], meta["name"], patch)
        except ApiError as e:
            if e.is_not_found or e.is_invalid:
                return
            raise
        log.info("%s %s released pod %s", self.ref["kind"], object_key(self.owner), meta["name"])


def recheck_deletion(client: ApiClient, rt: ResourceType, owner: Obj) -> Callable[[], Awaitable[None]]:
    """The `can_adopt` of an owner (RecheckDeletionTimestamp): a fresh read, refusing adoption
    when the owner was replaced or is being deleted."""
    meta = _meta(owner)

    async def check() -> None:
        fresh = await client.get(rt, meta["name"], meta.get("namespace"))
        fmeta = _meta(fresh)
        if fmeta.get("uid") != meta.get("uid"):
            raise RuntimeError(f"original {owner.get('kind', rt.kind)} {object_key(owner)} is gone: "
                               f"got uid {fmeta.get('uid')}, wanted {meta.get('uid')}")
        if fmeta.get("deletionTimestamp"):
            raise RuntimeError(f"{object_key(owner)} has just been deleted at {fmeta['deletionTimestamp']}")

    return check
