"""The namespace controller: a deleted namespace is emptied, then let go (pkg/controller/namespace).

For a namespace with a deletionTimestamp and this controller's finalizer
(`kubernetes`) in spec.finalizers: everything in it of every namespaced
resource is deleted (a collection delete where served, else one by one, with
background propagation so the garbage collector adds no finalizers of its
own); what is left — pods in their grace period, objects held by finalizers —
is reported in the namespace's conditions with upstream's reasons and
messages, and looked at again a little later. Once nothing is left, the
finalizer is removed through `namespaces/<name>/finalize`, and the API server
removes the namespace when no finalizer is left.

A manager scoped to one namespace (`InformerFactory(namespace=...)`) looks
after that namespace only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import ClassVar

from boxkube.api.times import now_rfc3339, parse_time
from boxkube.client import ApiError, ResourceType, resource
from boxkube.client.resources import RESOURCES
from boxkube.controllers.base import Controller, Obj, RetryLater

NAMESPACES, PODS = resource("namespaces"), resource("pods")

# Upstream's estimate for content held by finalizers (finalizerEstimateSeconds).
FINALIZER_ESTIMATE = 15
# Upstream looks again after half the estimate; boxkube at most this long after (classroom speed:
# a namespace goes soon after its last object, not up to 8 s later).
RECHECK_MAX = 2.0

# The conditions this controller keeps, in upstream's order, with the reason and message of their good state.
CONDITIONS = {
    "NamespaceDeletionDiscoveryFailure": ("ResourcesDiscovered", "All resources successfully discovered"),
    "NamespaceDeletionGroupVersionParsingFailure": ("ParsedGroupVersions", "All legacy kube types successfully parsed"),
    "NamespaceDeletionContentFailure": ("ContentDeleted", "All content successfully deleted, may be waiting on finalization"),
    "NamespaceContentRemaining": ("ContentRemoved", "All content successfully removed"),
    "NamespaceFinalizersRemaining": ("ContentRemoved", "All content successfully removed"),
}


def _gvr(rt: ResourceType) -> str:
    """A GroupVersionResource as Go prints it (`/v1, Resource=pods`)."""
    return f"{rt.group}/{rt.version}, Resource={rt.plural}"


@dataclass
class _Content:
    """What deleting a namespace's content left behind."""
    estimate: int = 0                                            # seconds until it is probably gone
    remaining: dict[str, int] = field(default_factory=dict)      # "<plural>.<group>" -> count
    finalizers: dict[str, int] = field(default_factory=dict)     # finalizer -> objects it holds
    errors: list[str] = field(default_factory=list)

    def conditions(self) -> dict[str, tuple[str, str]]:
        """The failing conditions, as (reason, message) by type (namespaceConditionUpdater)."""
        failing = {}
        if self.remaining:
            listed = sorted(f"{r} has {n} resource instances" for r, n in self.remaining.items())
            failing["NamespaceContentRemaining"] = ("SomeResourcesRemain", "Some resources are remaining: " + ", ".join(listed))
        if self.finalizers:
            listed = sorted(f"{f} in {n} resource instances" for f, n in self.finalizers.items())
            failing["NamespaceFinalizersRemaining"] = ("SomeFinalizerRemain", "Some finalizers are remaining: " + ", ".join(listed))
        if self.errors:
            failing["NamespaceDeletionContentFailure"] = (
                "ContentDeletionFailed",
                f"Failed to delete all resource types, {len(self.errors)} remaining: {', '.join(sorted(self.errors))}")
        return failing


def updated_conditions(current: list[Obj], failing: dict[str, tuple[str, str]]) -> list[Obj] | None:
    """The namespace's conditions with every kept type set to its failing or good state; None if unchanged.
    A condition's lastTransitionTime moves only when its status does."""
    conditions = [dict(c) for c in current]
    changed = False
    for kind, good in CONDITIONS.items():
        status, (reason, message) = ("True", failing[kind]) if kind in failing else ("False", good)
        old = next((c for c in conditions if c.get("type") == kind), None)
        if old is None:
            conditions.append({"type": kind, "status": status, "lastTransitionTime": now_rfc3339(),
                               "reason": reason, "message": message})
            changed = True
        elif (old.get("status"), old.get("reason"), old.get("message")) != (status, reason, message):
            if old.get("status") != status:
                old["lastTransitionTime"] = now_rfc3339()
            old.update(status=status, reason=reason, message=message)
            changed = True
    return conditions if changed else None


class NamespaceController(Controller):
    name = "namespace"
    # The spec.finalizer this controller answers for.
    finalizer_token: ClassVar[str] = "kubernetes"

    def setup(self) -> None:
        scope = self.informers.namespace
        self.namespaces = self.watch("namespaces", field_selector=f"metadata.name={scope}" if scope else "")

    async def reconcile(self, key: str) -> None:
        cached = self.namespaces.store.get(key)
        if cached is None or not cached["metadata"].get("deletionTimestamp"):
            return
        # Other controllers edit a terminating namespace too: work from its latest state.
        try:
            namespace = await self.client.get(NAMESPACES, key)
        except ApiError as e:
            if e.is_not_found:
                return
            raise
        if not namespace["metadata"].get("deletionTimestamp"):
            return
        if (namespace.get("status") or {}).get("phase") != "Terminating":
            namespace.setdefault("status", {})["phase"] = "Terminating"
            namespace = await self.client.replace_status(NAMESPACES, namespace)
        if self.finalizer_token not in (namespace.get("spec") or {}).get("finalizers") or []:
            return
        content = await self._delete_content(namespace)
        conditions = updated_conditions((namespace.get("status") or {}).get("conditions") or [], content.conditions())
        if conditions is not None:
            namespace["status"]["conditions"] = conditions
            try:
                namespace = await self.client.replace_status(NAMESPACES, namespace)
            except ApiError as e:
                self.log.warning("couldn't update status condition for namespace %r: %s", key, e)
        if content.errors:
            raise RetryLater(f"namespace {key}: " + ", ".join(content.errors))
        if content.estimate > 0:
            self.log.debug("namespace %s: some content remains, estimate %d seconds before it is removed",
                           key, content.estimate)
            self.queue.add_after(key, min(content.estimate / 2 + 1, RECHECK_MAX))
            return
        await self._finalize(namespace)

    async def _delete_content(self, namespace: Obj) -> _Content:
        name = namespace["metadata"]["name"]
        deleted_at = parse_time(namespace["metadata"]["deletionTimestamp"]) or datetime.now(timezone.utc)
        content = _Content()
        for rt in RESOURCES:
            if not rt.namespaced or "delete" not in rt.verbs:
                continue
            try:
                estimate = await self._grace_estimate(rt, name, deleted_at)
                await self._delete_all(rt, name)
                if "list" not in rt.verbs:
                    continue
                left = (await self.client.list(rt, name)).get("items") or []
            except ApiError as e:
                content.errors.append(str(e))
                continue
            if not left:
                continue
            held: dict[str, int] = {}
            for obj in left:
                for finalizer in obj["metadata"].get("finalizers") or []:
                    held[finalizer] = held.get(finalizer, 0) + 1
            if not estimate and held:
                estimate = FINALIZER_ESTIMATE     # time for the finalizers' owners to finish
            if not estimate and not held:
                content.errors.append(f"unexpected items still remain in namespace: {name} for gvr: {_gvr(rt)}")
            content.estimate = max(content.estimate, estimate)
            content.remaining[f"{rt.plural}.{rt.group}"] = len(left)
            for finalizer, count in held.items():
                content.finalizers[finalizer] = content.finalizers.get(finalizer, 0) + count
        return content

    async def _grace_estimate(self, rt: ResourceType, namespace: str, deleted_at: datetime) -> int:
        """Seconds the pods may still take to terminate: the longest grace period of those not
        finished, counted from the namespace's deletion (estimateGracefulTermination)."""
        if rt != PODS:
            return 0
        estimate = 0
        for pod in (await self.client.list(PODS, namespace)).get("items") or []:
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            estimate = max(estimate, int((pod.get("spec") or {}).get("terminationGracePeriodSeconds") or 0))
        return 0 if (datetime.now(timezone.utc) - deleted_at).total_seconds() >= estimate else estimate

    async def _delete_all(self, rt: ResourceType, namespace: str) -> None:
        # Background: the garbage collector must not add its finalizers to what is being purged.
        if "deletecollection" in rt.verbs:
            await self.client.delete_collection(rt, namespace, propagation_policy="Background")
            return
        if "list" not in rt.verbs:
            return
        for obj in (await self.client.list(rt, namespace)).get("items") or []:
            try:
                await self.client.delete(rt, obj["metadata"]["name"], namespace, propagation_policy="Background")
            except ApiError as e:
                if not e.is_not_found and e.code != 405:
                    raise

    async def _finalize(self, namespace: Obj) -> None:
        """Take this controller's token out of spec.finalizers (PUT namespaces/<name>/finalize), re-reading
        the namespace after a conflict as long as it is the same one."""
        uid = namespace["metadata"]["uid"]
        while True:
            finalize = {**namespace, "spec": {**(namespace.get("spec") or {}), "finalizers": sorted(
                set((namespace.get("spec") or {}).get("finalizers") or []) - {self.finalizer_token})}}
            try:
                await self.client.replace(NAMESPACES, finalize, subresource="finalize")
                self.log.info("namespace %s: content removed, %s finalizer released", namespace["metadata"]["name"],
                              self.finalizer_token)
                return
            except ApiError as e:
                if e.is_not_found:
                    return
                if not e.is_conflict:
                    raise
            namespace = await self.client.get(NAMESPACES, namespace["metadata"]["name"])
            if namespace["metadata"].get("uid") != uid:
                raise RuntimeError("namespace uid has changed across retries")
