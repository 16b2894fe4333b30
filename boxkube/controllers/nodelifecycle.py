"""Node lifecycle and taint-based eviction (upstream pkg/controller/nodelifecycle and pkg/controller/tainteviction).

`node-lifecycle` watches each node's heartbeat: its Lease in kube-node-lease
being renewed, or its Ready condition's lastHeartbeatTime moving. A node not
heard from within `node_monitor_grace_period` gets its Ready, MemoryPressure,
DiskPressure and PIDPressure conditions set to Unknown ("Kubelet stopped
posting node status."), its pods marked Ready=False, and the
`node.kubernetes.io/unreachable` NoExecute taint (`not-ready` when the node
itself reports Ready=False); the taints go when the node is Ready again.
Conditions also map to NoSchedule taints (not-ready, unreachable,
memory-/disk-/pid-pressure, network-unavailable, and unschedulable for
`spec.unschedulable`), which the scheduler respects.

As upstream, when every node of every zone is not Ready the controller
assumes the trouble is its own (the control plane lost the network, not all
the nodes at once): it stops tainting for NoExecute and takes such taints
away, until some node is Ready again. Upstream's eviction rate limits (one
node tainted per 10 s per zone, less in a partially disrupted zone) are left
out: boxkube clusters are small and meant to heal quickly.

`taint-eviction` deletes the pods of a node with NoExecute taints: at once
when a taint is not tolerated, otherwise when the shortest tolerationSeconds
of the matching tolerations has passed since the pod was first seen on the
tainted node (a toleration without tolerationSeconds tolerates for ever).
The API server gives every pod not-ready/unreachable tolerations for the
configured default seconds (DefaultTolerationSeconds), so pods of a lost node
are evicted after that and replaced by their controllers.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from boxkube.api import jsonio
from boxkube.api.pods import condition as pod_condition
from boxkube.api.times import now_rfc3339
from boxkube.client import ApiError, DeletedFinalStateUnknown, Store, resource
from boxkube.controllers.base import Controller, Obj
from boxkube.controllers.nodeipam import node_reference
from boxkube.scheduler.plugins.taints import tolerates

NODES = resource("nodes")
PODS = resource("pods")
LEASES = resource("leases")
NODE_LEASE_NAMESPACE = "kube-node-lease"

TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
# Which condition status means which NoSchedule taint (nodeConditionToTaintKeyStatusMap).
CONDITION_TAINTS: dict[str, dict[str, str]] = {
    "Ready": {"False": TAINT_NOT_READY, "Unknown": TAINT_UNREACHABLE},
    "MemoryPressure": {"True": "node.kubernetes.io/memory-pressure"},
    "DiskPressure": {"True": "node.kubernetes.io/disk-pressure"},
    "NetworkUnavailable": {"True": "node.kubernetes.io/network-unavailable"},
    "PIDPressure": {"True": "node.kubernetes.io/pid-pressure"},
}
_CONDITION_TAINT_KEYS = {key for by_status in CONDITION_TAINTS.values() for key in by_status.values()}
# The conditions the kubelet owns, set to Unknown when it goes quiet (NetworkUnavailable is the network's).
KUBELET_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
# Nodes labelled so are left out of the all-nodes-down check (labelNodeDisruptionExclusion).
EXCLUDE_DISRUPTION_LABEL = "node.kubernetes.io/exclude-disruption"
ZONE_LABELS = ("topology.kubernetes.io/region", "topology.kubernetes.io/zone")

NODE_NAME_INDEX = "spec.nodeName"


def index_by_node_name(pod: Obj) -> list[str]:
    node = (pod.get("spec") or {}).get("nodeName")
    return [node] if node else []


def add_node_name_index(store: Store) -> None:
    """Index the pod cache by spec.nodeName (once: controllers share the pod informer)."""
    try:
        store.add_indexers({NODE_NAME_INDEX: index_by_node_name})
    except ValueError:
        pass    # another controller on this informer added it already


def node_condition(node: Obj, kind: str) -> Obj | None:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return c
    return None


def ready_status(node: Obj) -> str | None:
    """The Ready condition's status, None when the node never posted one."""
    ready = node_condition(node, "Ready")
    return ready.get("status") if ready else None


def zone_key(node: Obj) -> str:
    labels = (node.get("metadata") or {}).get("labels") or {}
    return ":\x00:".join(labels.get(k, "") for k in ZONE_LABELS)


def all_zones_fully_disrupted(nodes: list[Obj]) -> bool:
    """True when, in every zone, no node is Ready and some node is not (stateFullDisruption everywhere)."""
    zones: dict[str, list[int]] = {}
    for node in nodes:
        if EXCLUDE_DISRUPTION_LABEL in ((node.get("metadata") or {}).get("labels") or {}):
            continue
        status = ready_status(node)
        if status is None:
            continue    # never reported: neither healthy nor unhealthy yet
        counts = zones.setdefault(zone_key(node), [0, 0])
        counts[0 if status == "True" else 1] += 1
    return bool(zones) and all(ready == 0 and not_ready > 0 for ready, not_ready in zones.values())


def no_schedule_taints(node: Obj) -> list[Obj]:
    """The NoSchedule taints a node's conditions and spec.unschedulable call for."""
    taints = []
    for c in (node.get("status") or {}).get("conditions") or []:
        key = CONDITION_TAINTS.get(c.get("type", ""), {}).get(c.get("status", ""))
        if key:
            taints.append({"key": key, "effect": "NoSchedule"})
    if (node.get("spec") or {}).get("unschedulable"):
        taints.append({"key": TAINT_UNSCHEDULABLE, "effect": "NoSchedule"})
    return taints


def wanted_taints(node: Obj, no_execute: bool, now: str) -> list[Obj]:
    """The node's taints with the controller's own brought up to date: others' taints are kept,
    a taint already there keeps its timeAdded, a NoExecute taint added now gets timeAdded."""
    current = list((node.get("spec") or {}).get("taints") or [])

    def ours(t: Obj) -> bool:
        if t.get("effect") == "NoSchedule":
            return t.get("key") in _CONDITION_TAINT_KEYS or t.get("key") == TAINT_UNSCHEDULABLE
        return t.get("effect") == "NoExecute" and t.get("key") in (TAINT_NOT_READY, TAINT_UNREACHABLE)

    desired = no_schedule_taints(node)
    status = ready_status(node)
    if no_execute and status in ("False", "Unknown"):
        desired.append({"key": TAINT_NOT_READY if status == "False" else TAINT_UNREACHABLE, "effect": "NoExecute",
                        "timeAdded": now})
    kept = [t for t in current if not ours(t)]
    existing = {(t.get("key"), t.get("effect")): t for t in current if ours(t)}
    for taint in desired:
        kept.append(existing.get((taint["key"], taint["effect"]), taint))
    return kept


def _same_taints(a: list[Obj], b: list[Obj]) -> bool:
    def keys(taints: list[Obj]) -> set[tuple[Any, ...]]:
        return {(t.get("key"), t.get("value"), t.get("effect")) for t in taints}
    return len(a) == len(b) and keys(a) == keys(b)


@dataclass
class _Health:
    """What the controller last heard from a node (nodeHealthData): when, and through what."""
    uid: str
    probe: float                 # monotonic time of the last sign of life
    heartbeat: str | None        # Ready.lastHeartbeatTime last seen
    renew_time: str | None       # Lease spec.renewTime last seen
    ready: str | None            # Ready status last seen, for the NodeNotReady event on a transition


class NodeLifecycleController(Controller):
    name = "node-lifecycle"

    def setup(self) -> None:
        self.nodes = self.watch("nodes")
        self.leases = self.informers.informer("leases", NODE_LEASE_NAMESPACE)
        self.leases.add_event_handler(on_add=self._lease_changed, on_update=lambda old, new: self._lease_changed(new),
                                      on_delete=self._lease_changed)
        self.pods = self.informers.informer("pods")
        add_node_name_index(self.pods.store)
        self.pods.add_event_handler(on_add=self._pod_changed, on_update=lambda old, new: self._pod_changed(new, old))
        self._health: dict[str, _Health] = {}
        self.full_disruption = False
        # How often the all-nodes-down check runs (upstream's node monitor period is 5 s of a 40 s grace).
        self.monitor_period = min(5.0, max(0.1, self.settings.node_monitor_grace_period / 8))

    def _lease_changed(self, lease: Obj | DeletedFinalStateUnknown) -> None:
        lease = lease.obj if isinstance(lease, DeletedFinalStateUnknown) else lease
        self.queue.add(lease["metadata"]["name"])     # a node's Lease has the node's name

    def _pod_changed(self, pod: Obj, old: Obj | None = None) -> None:
        """A pod newly on a node that is not Ready is marked not ready too (upstream processPod)."""
        node = (pod.get("spec") or {}).get("nodeName")
        if node and (old is None or (old.get("spec") or {}).get("nodeName") != node):
            known = self.nodes.store.get(node)
            if known is not None and ready_status(known) == "Unknown":
                self.queue.add(node)

    # -- running ------------------------------------------------------------------

    async def run(self) -> None:
        monitor = asyncio.create_task(self._monitor_disruption(), name=f"{self.name}-disruption")
        try:
            await super().run()
        finally:
            monitor.cancel()
            await asyncio.gather(monitor, return_exceptions=True)

    async def _monitor_disruption(self) -> None:
        while True:
            self.check_disruption()
            await asyncio.sleep(self.monitor_period)

    def check_disruption(self) -> None:
        nodes = self.nodes.store.list()
        disrupted = all_zones_fully_disrupted(nodes)
        if disrupted == self.full_disruption:
            return
        self.full_disruption = disrupted
        if disrupted:
            self.log.warning("every node is not Ready: entering full disruption mode, no NoExecute taints")
        else:
            self.log.info("some node is Ready again: leaving full disruption mode")
            # As upstream: everyone gets a fresh grace period, the silence may have been ours.
            now = time.monotonic()
            for health in self._health.values():
                health.probe = now
        for node in nodes:
            self.queue.add(node["metadata"]["name"])

    # -- one node ---------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        node = self.nodes.store.get(key)
        if node is None:
            gone = self._health.pop(key, None)
            if gone is not None:
                self.recorder.event({"apiVersion": "v1", "kind": "Node", "metadata": {"name": key, "uid": gone.uid}},
                                    "Normal", "RemovingNode", f"Node {key} event: Removing Node {key} from Controller")
            return
        node = await self._update_health(key, node)
        await self._update_taints(node)
        if ready_status(node) == "Unknown":
            await self._mark_pods_not_ready(node)

    def _observe(self, key: str, node: Obj) -> _Health:
        """Bring the node's health record up to date with what the caches show; a new sign of life
        (a renewed Lease, a new Ready heartbeat) moves the probe time to now."""
        meta, now = node["metadata"], time.monotonic()
        ready = node_condition(node, "Ready")
        heartbeat = ready.get("lastHeartbeatTime") if ready else None
        lease = self.leases.store.get(f"{NODE_LEASE_NAMESPACE}/{key}")
        renew = ((lease or {}).get("spec") or {}).get("renewTime")
        health = self._health.get(key)
        if health is None or health.uid != meta.get("uid"):
            health = self._health[key] = _Health(meta.get("uid", ""), now, heartbeat, renew, ready_status(node))
            self.recorder.event(node_reference(node), "Normal", "RegisteredNode",
                                f"Node {key} event: Registered Node {key} in Controller")
            return health
        if heartbeat != health.heartbeat:
            health.heartbeat, health.probe = heartbeat, now
        if renew and renew != health.renew_time:
            health.renew_time, health.probe = renew, now
        return health

    async def _update_health(self, key: str, node: Obj) -> Obj:
        health = self._observe(key, node)
        grace = self.settings.node_monitor_grace_period
        remaining = health.probe + grace - time.monotonic()
        if remaining > 0:
            self.queue.add_after(key, remaining + 0.01)     # look again when the grace period runs out
        else:
            node = await self._mark_unknown(node)
        status = ready_status(node)
        if health.ready == "True" and status != "True":
            self.recorder.event(node_reference(node), "Normal", "NodeNotReady",
                                f"Node {key} status is now: NodeNotReady")
        health.ready = status
        return node

    async def _mark_unknown(self, node: Obj) -> Obj:
        """The kubelet's conditions become Unknown (tryUpdateNodeHealth past the grace period)."""
        now = now_rfc3339()
        updated = jsonio.copy(node)
        conditions = updated.setdefault("status", {}).setdefault("conditions", [])
        changed = False
        for kind in KUBELET_CONDITIONS:
            c = next((c for c in conditions if c.get("type") == kind), None)
            if c is None:
                conditions.append({"type": kind, "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                                   "message": "Kubelet never posted node status.",
                                   "lastHeartbeatTime": node["metadata"].get("creationTimestamp"),
                                   "lastTransitionTime": now})
                changed = True
            elif c.get("status") != "Unknown":
                c.update(status="Unknown", reason="NodeStatusUnknown", message="Kubelet stopped posting node status.",
                         lastTransitionTime=now)
                changed = True
        if not changed:
            return node
        self.log.info("node %s: no heartbeat for %.1fs, conditions Unknown", node["metadata"]["name"],
                      self.settings.node_monitor_grace_period)
        return await self.client.replace_status(NODES, updated)

    async def _update_taints(self, node: Obj) -> None:
        current = (node.get("spec") or {}).get("taints") or []
        taints = wanted_taints(node, not self.full_disruption, now_rfc3339())
        if _same_taints(current, taints):
            return
        updated = jsonio.copy(node)
        updated.setdefault("spec", {})["taints"] = taints
        updated.pop("status", None)
        await self.client.replace(NODES, updated)

    async def _mark_pods_not_ready(self, node: Obj) -> None:
        """Pods on an unreachable node are not ready, whatever they said last (MarkPodsNotReady)."""
        name, now = node["metadata"]["name"], now_rfc3339()
        for pod in self.pods.store.by_index(NODE_NAME_INDEX, name):
            ready = pod_condition(pod, "Ready")
            if ready is None or ready.get("status") == "False":
                continue
            meta = pod["metadata"]
            patch = {"metadata": {"uid": meta["uid"]},
                     "status": {"conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now}]}}
            try:
                await self.client.patch_status(PODS, meta["name"], patch, meta["namespace"], patch_type="strategic")
            except ApiError as e:
                if e.is_not_found or e.is_invalid or e.is_conflict:
                    continue        # gone, or a new pod of that name
                raise
            self.recorder.event(pod, "Warning", "NodeNotReady", "Node is not ready")


# -- taint-based eviction --------------------------------------------------------------

def no_execute_taints(node: Obj) -> list[Obj]:
    return [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("effect") == "NoExecute"]


def toleration_time(taints: list[Obj], tolerations: list[Obj]) -> float | None:
    """How long the pod may stay: 0 when some taint is not tolerated, None for ever, else the
    shortest tolerationSeconds among the tolerations that match (getMinTolerationTime)."""
    shortest: float | None = None
    for taint in taints:
        match = next((t for t in tolerations if tolerates(t, taint)), None)
        if match is None:
            return 0.0
        seconds = match.get("tolerationSeconds")
        if seconds is None:
            continue
        seconds = max(float(seconds), 0.0)
        shortest = seconds if shortest is None else min(shortest, seconds)
    return shortest


@dataclass
class _Eviction:
    uid: str
    fire_at: float       # monotonic


class TaintEvictionController(Controller):
    name = "taint-eviction"

    def setup(self) -> None:
        self.pods = self.informers.informer("pods")
        add_node_name_index(self.pods.store)
        self.pods.add_event_handler(on_add=self._pod_changed, on_update=lambda old, new: self._pod_changed(new),
                                    on_delete=self.enqueue)
        self.nodes = self.informers.informer("nodes")
        self.nodes.add_event_handler(on_add=self._node_changed,
                                     on_update=lambda old, new: self._node_changed(new, old))
        self._scheduled: dict[str, _Eviction] = {}

    def _pod_changed(self, pod: Obj) -> None:
        if (pod.get("spec") or {}).get("nodeName"):
            self.enqueue(pod)

    def _node_changed(self, node: Obj, old: Obj | None = None) -> None:
        taints = no_execute_taints(node)
        if old is not None and _same_taints(no_execute_taints(old), taints):
            return
        if old is None and not taints:
            return
        for key in self.pods.store.index_keys(NODE_NAME_INDEX, node["metadata"]["name"]):
            self.queue.add(key)

    def _cancel(self, key: str, pod: Obj | None) -> None:
        if self._scheduled.pop(key, None) is not None and pod is not None:
            self.recorder.event(pod, "Normal", "TaintManagerEviction", f"Cancelling deletion of Pod {key}")

    async def reconcile(self, key: str) -> None:
        pod = self.pods.store.get(key)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            self._scheduled.pop(key, None)
            return
        scheduled = self._scheduled.get(key)
        if scheduled is not None and scheduled.uid != pod["metadata"].get("uid"):
            self._scheduled.pop(key)       # a new pod of the same name starts afresh
            scheduled = None
        node = self.nodes.store.get((pod.get("spec") or {}).get("nodeName") or "")
        taints = no_execute_taints(node) if node is not None else []
        if not taints:
            self._cancel(key, pod)
            return
        allowed = toleration_time(taints, (pod.get("spec") or {}).get("tolerations") or [])
        if allowed is None:
            self._cancel(key, pod)
            return
        now = time.monotonic()
        if scheduled is None:
            # The clock starts when the pod is first seen on the tainted node, as upstream's timed queue.
            scheduled = self._scheduled[key] = _Eviction(pod["metadata"].get("uid", ""), now + allowed)
        if now < scheduled.fire_at:
            self.queue.add_after(key, scheduled.fire_at - now)
            return
        await self._evict(key, pod)

    async def _evict(self, key: str, pod: Obj) -> None:
        """Mark the pod as a DisruptionTarget of the taint manager, then delete it."""
        self.recorder.event(pod, "Normal", "TaintManagerEviction", f"Marking for deletion Pod {key}")
        meta = pod["metadata"]
        condition = {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
                     "message": "Taint manager: deleting due to NoExecute taint", "lastTransitionTime": now_rfc3339()}
        try:
            await self.client.patch_status(PODS, meta["name"], {"metadata": {"uid": meta["uid"]},
                                                                "status": {"conditions": [condition]}},
                                           meta["namespace"], patch_type="strategic")
            await self.client.delete(PODS, meta["name"], meta["namespace"], preconditions={"uid": meta["uid"]})
        except ApiError as e:
            if not (e.is_not_found or e.is_conflict or e.is_invalid):
                raise
        self._scheduled.pop(key, None)
        self.log.info("evicted pod %s from tainted node %s", key, (pod.get("spec") or {}).get("nodeName"))

