"""Pod garbage collection (upstream pkg/controller/podgc).

`pod-garbage-collector` is not driven by events: every `pod_gc_period`
seconds it looks at every pod and node in its caches and force-deletes
(gracePeriodSeconds=0) what nobody else will:

- orphaned pods: bound to a node (spec.nodeName) that does not exist — say,
  a node deleted while its agent was dead, so no agent will ever stop them.
  A node missing from the cache is first quarantined for twice the period
  (upstream: 40 s of a 20 s period) and then looked up with a fresh GET, so
  a node informer lagging behind the pod informer never costs pods. Such a
  pod not already Succeeded or Failed is marked Failed with a
  DisruptionTarget condition (reason DeletionByPodGC, "PodGC: node no
  longer exists") before the delete, so its controller (a Job, say) sees
  why it went;
- terminating pods (deletionTimestamp set) on a node that is not Ready and
  carries the `node.kubernetes.io/out-of-service` taint: an administrator
  said the node is down for good, its pods need not wait for it. They are
  marked Failed (without a condition, as upstream) and force-deleted;
- terminating pods bound to no node: marked Failed and force-deleted;
- terminated pods (Succeeded or Failed) beyond `terminated_pod_gc_threshold`
  (upstream's --terminated-pod-gc-threshold, default 12500; 0 disables):
  the surplus goes, evicted pods first, then oldest first by
  creationTimestamp, names breaking ties.

A force delete does not override finalizers: a pod that carries some stays,
marked Failed and terminating, until whoever put them there takes them off
(the API server then removes it at once). The pass after next tries again,
which is harmless. As upstream, the controller records no events.

The period defaults to 5 s (upstream's fixed 20 s), in line with boxkube's
other classroom-speed timings: pods of a deleted node are gone some 10-15 s
later. Deletes and status writes carry the pod's uid as a precondition, so a
new pod of the same name is never hit.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timezone

from boxkube.api.pods import condition as pod_condition
from boxkube.api.pods import is_terminal
from boxkube.api.times import now_rfc3339, parse_time
from boxkube.client import ApiError, resource
from boxkube.controllers.base import Controller, Obj
from boxkube.controllers.nodelifecycle import ready_status

NODES = resource("nodes")
PODS = resource("pods")

TAINT_OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"
# How many deletes of one kind run at once (upstream starts a goroutine per pod).
_PARALLEL = 16
_EPOCH = datetime.min.replace(tzinfo=timezone.utc)


def is_evicted(pod: Obj) -> bool:
    """Failed with reason Evicted: what the kubelet's eviction leaves behind (eviction.PodIsEvicted)."""
    status = pod.get("status") or {}
    return status.get("phase") == "Failed" and status.get("reason") == "Evicted"


def deletion_order(pod: Obj) -> tuple[bool, datetime, str]:
    """Sort key of the terminated pods to delete first: evicted ones, then the oldest, then by name
    (upstream byEvictionAndCreationTimestamp)."""
    meta = pod.get("metadata") or {}
    return not is_evicted(pod), parse_time(meta.get("creationTimestamp")) or _EPOCH, meta.get("name", "")


def terminated_to_delete(pods: Iterable[Obj], threshold: int) -> list[Obj]:
    """The terminated pods beyond `threshold` (none when it is 0 or less), in the order they go."""
    if threshold <= 0:
        return []
    terminated = [p for p in pods if is_terminal(p)]
    surplus = len(terminated) - threshold
    if surplus <= 0:
        return []
    return sorted(terminated, key=deletion_order)[:surplus]


def is_out_of_service(node: Obj) -> bool:
    """Not Ready and tainted node.kubernetes.io/out-of-service (any effect)."""
    taints = (node.get("spec") or {}).get("taints") or []
    return ready_status(node) != "True" and any(t.get("key") == TAINT_OUT_OF_SERVICE for t in taints)


def orphan_condition(pod: Obj, now: str) -> Obj:
    """The DisruptionTarget condition of an orphaned pod; an existing True one keeps its
    lastTransitionTime (apipod.UpdatePodCondition)."""
    existing = pod_condition(pod, "DisruptionTarget")
    since = existing.get("lastTransitionTime") if existing and existing.get("status") == "True" else None
    return {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
            "message": "PodGC: node no longer exists", "lastTransitionTime": since or now}


class PodGCController(Controller):
    name = "pod-garbage-collector"
    workers = 0     # no work queue: one periodic pass over the caches

    def setup(self) -> None:
        self.pods = self.informers.informer("pods")
        self.nodes = self.informers.informer("nodes")
        self.period = max(0.05, self.settings.pod_gc_period)
        # How long a node missing from the cache waits before the GET that decides (upstream 40 s = 2 periods).
        self.quarantine_time = 2 * self.period
        self._quarantine: dict[str, float] = {}      # node name -> monotonic time its GET is due

    async def run(self) -> None:
        """A pass now, then one every period after the last one ended (wait.Until), until cancelled."""
        self.log.info("%s: collecting every %.1fs (terminated pod threshold %d)", self.name, self.period,
                      self.settings.terminated_pod_gc_threshold)
        while True:
            try:
                await self.gc()
            except asyncio.CancelledError:
                raise
            except Exception:      # one failed pass is logged; the next one starts afresh
                self.log.exception("%s: garbage collection pass failed", self.name)
            await asyncio.sleep(self.period)

    async def gc(self) -> None:
        """One pass over the caches, in upstream's order. A pod dealt with once is left alone for the rest."""
        pods, nodes = self.pods.store.list(), self.nodes.store.list()
        done: set[str] = set()
        threshold = self.settings.terminated_pod_gc_threshold
        if threshold > 0:
            await self._each(terminated_to_delete(pods, threshold), self.mark_failed_and_delete, done,
                             "terminated")
        await self._gc_terminating(pods, done)
        await self._gc_orphaned(pods, nodes, done)
        unscheduled = [p for p in pods if p["metadata"].get("deletionTimestamp") and not _node_name(p)]
        await self._each(unscheduled, self.mark_failed_and_delete, done, "unscheduled terminating")

    async def _gc_terminating(self, pods: list[Obj], done: set[str]) -> None:
        """Terminating pods of out-of-service nodes go without waiting for the node."""
        terminating = []
        for pod in pods:
            name = _node_name(pod)
            if not name or not pod["metadata"].get("deletionTimestamp"):
                continue
            node = self.nodes.store.get(name)
            if node is not None and is_out_of_service(node):
                terminating.append(pod)
        terminating.sort(key=deletion_order)
        await self._each(terminating, self.mark_failed_and_delete, done, "terminating on an out-of-service node")

    async def _gc_orphaned(self, pods: list[Obj], nodes: list[Obj], done: set[str]) -> None:
        existing = {n["metadata"]["name"] for n in nodes}
        missing = {name for p in pods if (name := _node_name(p)) and name not in existing}
        now = time.monotonic()
        # Quarantine newly missing nodes; forget those that appeared or have no pods left.
        self._quarantine = {name: self._quarantine.get(name, now + self.quarantine_time) for name in missing}
        deleted = set()
        for name, due in list(self._quarantine.items()):
            if due > now:
                continue
            del self._quarantine[name]       # checked now; quarantined afresh next pass if still missing
            try:
                await self.client.get(NODES, name)
            except ApiError as e:
                if e.is_not_found:
                    deleted.add(name)
                else:
                    self.log.warning("%s: cannot look up node %s: %s", self.name, name, e)
            except Exception as e:      # the server out of reach: the node is checked again later
                self.log.warning("%s: cannot look up node %s: %s", self.name, name, e)
            else:
                self.log.debug("%s: node %s exists but is not in the cache yet", self.name, name)
        if not deleted:
            return
        orphans = [p for p in pods if _node_name(p) in deleted]

        async def collect(pod: Obj) -> None:
            await self.mark_failed_and_delete(pod, orphan_condition(pod, now_rfc3339()))
        await self._each(orphans, collect, done, "orphaned")

    async def _each(self, pods: list[Obj], action: Callable[[Obj], Awaitable[None]], done: set[str],
                    why: str) -> None:
        """`action` on each pod not done yet in this pass, a few at a time; a failure is logged, not raised."""
        todo = [p for p in pods if p["metadata"].get("uid") not in done]
        if not todo:
            return
        done.update(p["metadata"].get("uid") for p in todo)
        limit = asyncio.Semaphore(_PARALLEL)

        async def one(pod: Obj) -> None:
            meta = pod["metadata"]
            async with limit:
                self.log.info("%s: force deleting %s pod %s/%s", self.name, why, meta.get("namespace"),
                              meta.get("name"))
                try:
                    await action(pod)
                except asyncio.CancelledError:
                    raise
                except ApiError as e:
                    if not (e.is_not_found or e.is_conflict):    # gone, or a new pod of the name
                        self.log.warning("%s: deleting pod %s/%s: %s", self.name, meta.get("namespace"),
                                         meta.get("name"), e)
                except Exception as e:
                    self.log.warning("%s: deleting pod %s/%s: %s", self.name, meta.get("namespace"),
                                     meta.get("name"), e)
        await asyncio.gather(*(one(p) for p in todo))

    async def mark_failed_and_delete(self, pod: Obj, condition: Obj | None = None) -> None:
        """Failed first unless already terminal — no agent may ever say so for a pod of a lost node —
        then deleted with no grace period (markFailedAndDeletePodWithCondition)."""
        meta = pod["metadata"]
        name, namespace, uid = meta["name"], meta["namespace"], meta["uid"]
        if not is_terminal(pod):
            status: Obj = {"phase": "Failed"}
            if condition is not None:
                status["conditions"] = [condition]
            await self.client.patch_status(PODS, name, {"metadata": {"uid": uid}, "status": status}, namespace,
                                           patch_type="strategic")
        await self.client.delete(PODS, name, namespace, grace_period_seconds=0, preconditions={"uid": uid})


def _node_name(pod: Obj) -> str:
    return (pod.get("spec") or {}).get("nodeName") or ""
