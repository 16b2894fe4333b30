"""The running scheduler: informers keep the cache and the queue current; one loop schedules a pod at a
time and binds in the background, as kube-scheduler's scheduleOne does.

- Pods are watched all at once (finished ones left out by a field selector)
  and split as upstream splits them: assigned pods (spec.nodeName set) are
  counted in the cache (the Snapshot); unassigned pods naming one of our
  profiles (spec.schedulerName) wait in the SchedulingQueue.
- Nodes, namespaces (for namespaceSelector) and the Services, controllers
  default spreading groups replicas by feed the Snapshot.
- A scheduling cycle is synchronous: pop, run the profile over the Snapshot,
  assume the pod on the chosen node (the cache counts it at once), then hand
  the binding (POST pods/NAME/binding) to a background task and go on to the
  next pod. If the binding fails the assumed pod is forgotten and the pod
  retried after its back-off.
- A pod that fits nowhere gets a FailedScheduling Warning event with the
  FitError text and its PodScheduled condition set to False (reason
  Unschedulable) through the status subresource; it waits in the queue's
  unschedulable pool until a cluster event that may help (a node added or
  changed, an assigned pod deleted, ...) moves it back.
"""
from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable, Mapping
from typing import Any


from boxkube.api.times import now_rfc3339
from boxkube.client import ApiClient, ApiError, DeletedFinalStateUnknown, EventRecorder, InformerFactory, TransportError, resource
from boxkube.client.api import ClientClosed
from boxkube.client.store import object_key
from boxkube.scheduler.framework import (
    DEFAULT_SCHEDULER_NAME, FitError, Profile, SchedulingError, Snapshot, Unschedulable, schedule,
)
from boxkube.scheduler.plugins import default_profile
from boxkube.scheduler.podinfo import PodInfo
from boxkube.scheduler.queue import QueuedPodInfo, SchedulingQueue
from boxkube.scheduler.schedulername import needs_scheduling, scheduler_name

log = logging.getLogger(__name__)

Obj = dict[str, Any]

PODS, NODES, NAMESPACES = resource("pods"), resource("nodes"), resource("namespaces")
# the objects default spreading (helper.DefaultSelector) reads, by the kind the Snapshot files them under
SPREADING_RESOURCES = {"Service": resource("services"), "ReplicationController": resource("replicationcontrollers"),
                       "ReplicaSet": resource("replicasets.apps"), "StatefulSet": resource("statefulsets.apps")}
# finished pods hold no resources: upstream's scheduler does not even watch them
UNFINISHED_PODS = "status.phase!=Succeeded,status.phase!=Failed"

# v1.PodReasonUnschedulable / PodReasonSchedulerError: the PodScheduled condition's reasons
REASON_UNSCHEDULABLE = "Unschedulable"
REASON_SCHEDULER_ERROR = "SchedulerError"
# validation.NoteLengthLimit: an event message longer than this is cut, as upstream's truncateMessage does
NOTE_LENGTH_LIMIT = 1024

# Upstream binds in unbounded goroutines. Here bindings and condition updates take turns, this many in
# flight (a view of the client with a cap of its own): the pods wait assumed meanwhile, so scheduling goes
# on, and the client's other requests — the Lease renewals above all — don't queue behind a burst of them.
DEFAULT_MAX_CONCURRENT_WRITES = 16
# how long a stopping scheduler waits for bindings under way and for events to be written
SHUTDOWN_GRACE = 10.0

# the plugins whose verdict a change to assigned pods (their labels, their being there) can alter
_POD_AFFINITY_PLUGINS = frozenset(("InterPodAffinity", "PodTopologySpread"))
_RESOURCE_PLUGINS = frozenset(("NodeResourcesFit",))


def _is_assigned(pod: Mapping[str, Any]) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName"))


def _final_state(obj: Any) -> Obj:
    return obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj


def _rejected_by(plugins: frozenset[str]):
    return lambda info: not info.unschedulable_plugins.isdisjoint(plugins)


def _node_scheduling_properties_changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """nodeSchedulingPropertiesChange: what a filter looks at changed (not a heartbeat)."""
    def view(node: Mapping[str, Any]) -> tuple:
        spec, status = node.get("spec") or {}, node.get("status") or {}
        conditions = sorted((c.get("type", ""), c.get("status", "")) for c in status.get("conditions") or [])
        return (bool(spec.get("unschedulable")), status.get("allocatable"), (node.get("metadata") or {}).get("labels"),
                spec.get("taints"), conditions)
    return view(old) != view(new)


def _requests_view(pod: Mapping[str, Any]) -> list:
    spec = pod.get("spec") or {}
    return [(c.get("resources") or {}).get("requests") for c in spec.get("containers") or []] + [
        (spec.get("resources") or {}).get("requests")]


def _as_pod(pod: Mapping[str, Any]) -> Obj:
    """The pod with kind and apiVersion, which an event's involvedObject needs (watch objects may lack them)."""
    if pod.get("kind") and pod.get("apiVersion"):
        return dict(pod)
    return dict(pod, kind="Pod", apiVersion="v1")


def truncate_message(message: str) -> str:
    if len(message) <= NOTE_LENGTH_LIMIT:
        return message
    return message[:NOTE_LENGTH_LIMIT - 4] + " ..."


class Scheduler:
    """kube-scheduler's scheduling loop over one API client.

    `profiles` default to the default profile ("default-scheduler"); pods naming
    another schedulerName are left alone. `node_selector` (a label selector)
    restricts the nodes this scheduler sees, for tests and for splitting one
    cluster between schedulers. `run()` until cancelled.
    """

    def __init__(self, client: ApiClient, *, profiles: Iterable[Profile] | None = None,
                 informers: InformerFactory | None = None, queue: SchedulingQueue | None = None,
                 node_selector: str = "", rng: random.Random | None = None, host: str = "",
                 max_concurrent_writes: int = DEFAULT_MAX_CONCURRENT_WRITES):
        self.client = client
        self.profiles: dict[str, Profile] = {p.scheduler_name: p for p in profiles or [default_profile()]}
        self.snapshot = Snapshot()
        self.queue = queue or SchedulingQueue()
        # upstream gives each profile a recorder reporting as its scheduler name
        self.recorders = {name: EventRecorder(client, name, host) for name in self.profiles}
        self._rng = rng or random.Random()
        self._next_start = 0
        self._writes = client.limited(max_concurrent_writes)
        self._tasks: set[asyncio.Task] = set()
        self._own_informers = informers is None
        self.informers = informers or InformerFactory(client)

        self._pods = self.informers.informer(PODS, field_selector=UNFINISHED_PODS)
        self._pods.add_event_handler(self._on_pod_add, self._on_pod_update, self._on_pod_delete)
        nodes = self.informers.informer(NODES, label_selector=node_selector)
        nodes.add_event_handler(self._on_node_add, self._on_node_update, self._on_node_delete)
        namespaces = self.informers.informer(NAMESPACES)
        namespaces.add_event_handler(self._on_namespace_add, self._on_namespace_update, self._on_namespace_delete)
        for kind, rt in SPREADING_RESOURCES.items():
            self.informers.informer(rt).add_event_handler(
                lambda obj, kind=kind: self.snapshot.upsert_object(kind, obj),
                lambda old, new, kind=kind: self.snapshot.upsert_object(kind, new),
                lambda obj, kind=kind: self.snapshot.delete_object(kind, _final_state(obj)))

    # -- running ------------------------------------------------------------

    async def run(self, sync_timeout: float | None = None) -> None:
        """Sync the caches, then schedule until cancelled; bindings under way are waited for on the way out."""
        self.informers.start()
        try:
            if not await self.informers.wait_for_sync(sync_timeout):
                raise TimeoutError("the scheduler's caches did not sync")
            log.info("caches synced: %d nodes, %d pods waiting; scheduling for %s", len(self.snapshot),
                     len(self.queue), ", ".join(self.profiles))
            while (info := await self.queue.pop()) is not None:
                self.schedule_one(info)
                # the cycle never awaits: let watch events and finished bindings in between cycles
                await asyncio.sleep(0)
        finally:
            self.queue.close()
            await self._shutdown()

    async def _shutdown(self) -> None:
        # Bindings not sent yet are dropped (closing the view refuses them, see _bind); those under way are
        # waited for, so that none lands after the lease is handed over and a rival has decided without it.
        await self._writes.close()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=SHUTDOWN_GRACE)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("stopping: gave up on %d bindings and status updates", len(pending))
        if self._own_informers:
            await self.informers.stop()
        for name, recorder in self.recorders.items():
            try:
                async with asyncio.timeout(SHUTDOWN_GRACE):
                    await recorder.flush()
            except TimeoutError:
                log.warning("stopping: some events of %s were not written", name)
                continue
            await recorder.close()

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- one scheduling cycle -----------------------------------------------

    def schedule_one(self, info: QueuedPodInfo) -> None:
        """Schedule the popped pod; binding continues in the background."""
        pod = info.pod
        if self.snapshot.is_assumed(pod):
            # an update re-queued the pod while its binding is under way
            self.queue.done(info)
            return
        profile = self.profiles.get(scheduler_name(pod))
        if profile is None:   # the queue takes only our pods; a profile cannot vanish
            log.error("no profile for scheduler name %r of pod %s", scheduler_name(pod), object_key(pod))
            self.queue.done(info)
            return
        try:
            pod_info = PodInfo(pod)
            result = schedule(pod, self.snapshot, profile, self._rng, start_index=self._next_start, info=pod_info)
        except FitError as e:
            self._handle_failure(info, profile, e, REASON_UNSCHEDULABLE, e.unschedulable_plugins)
            return
        except Unschedulable as e:
            self._handle_failure(info, profile, e, REASON_UNSCHEDULABLE)
            return
        except SchedulingError as e:
            log.error("error selecting a node for pod %s: %s", object_key(pod), e)
            self._handle_failure(info, profile, e, REASON_SCHEDULER_ERROR, error=True)
            return
        except Exception as e:   # a plugin bug must cost one attempt, not the scheduler
            log.exception("error selecting a node for pod %s", object_key(pod))
            self._handle_failure(info, profile, e, REASON_SCHEDULER_ERROR, error=True)
            return
        # rotate where filtering starts, so on big clusters every node gets its turn
        self._next_start = (self._next_start + result.evaluated_nodes) % max(len(self.snapshot), 1)
        assumed = self.snapshot.assume_pod(pod, result.node_name, pod_info)
        self._spawn(self._bind(info, profile, assumed, result.node_name), f"bind {object_key(pod)}")

    async def _bind(self, info: QueuedPodInfo, profile: Profile, assumed: Obj, node: str) -> None:
        # the scheduling attempt is over; an update arriving now finds the pod assumed and is ignored
        self.queue.done(info)
        meta = assumed["metadata"]
        try:
            await self._writes.bind(meta["name"], meta["namespace"], node)
        except ClientClosed:   # stopped (or no longer leading) while this waited for its turn
            self.snapshot.forget_pod(assumed)
            return
        except (ApiError, TransportError) as e:
            log.info("binding pod %s to %s failed: %s", object_key(assumed), node, e or type(e).__name__)
            self.snapshot.forget_pod(assumed)
            # what the assumed pod held is free again: for the other pods, as if an assigned pod were deleted
            self.queue.move_all_to_active_or_backoff("AssignedPodDelete")
            self._handle_failure(info, profile, e, REASON_SCHEDULER_ERROR, error=True)
            return
        self.recorders[profile.scheduler_name].event(
            _as_pod(assumed), "Normal", "Scheduled",
            f"Successfully assigned {meta['namespace']}/{meta['name']} to {node}")

    def _handle_failure(self, info: QueuedPodInfo, profile: Profile, err: BaseException, reason: str,
                        plugins: frozenset[str] = frozenset(), *, error: bool = False) -> None:
        """handleSchedulingFailure: back to the queue (if the pod is still pending), an event, the condition."""
        pod = info.pod
        cached = self._pods.store.get(object_key(pod))
        if cached is None or _is_assigned(cached):
            # deleted meanwhile, or bound by someone else: nothing left to retry
            self.queue.done(info)
        else:
            info.pod = cached
            self.queue.add_unschedulable(info, plugins, error=error)
        message = str(err) or type(err).__name__
        log.debug("pod %s unschedulable: %s", object_key(pod), message)
        self.recorders[profile.scheduler_name].event(_as_pod(pod), "Warning", "FailedScheduling",
                                                     truncate_message(message))
        if cached is not None and not _is_assigned(cached):
            self._spawn(self._set_scheduled_condition(cached, reason, message), f"condition {object_key(pod)}")

    async def _set_scheduled_condition(self, pod: Obj, reason: str, message: str) -> None:
        """PodScheduled=False with the reason and message, written only when it changes (UpdatePodCondition)."""
        conditions = (pod.get("status") or {}).get("conditions") or []
        old = next((c for c in conditions if c.get("type") == "PodScheduled"), None)
        if old is not None and (old.get("status"), old.get("reason"), old.get("message")) == ("False", reason, message):
            return
        kept = old is not None and old.get("status") == "False" and old.get("lastTransitionTime")
        condition = {"type": "PodScheduled", "status": "False", "reason": reason, "message": message,
                     "lastProbeTime": None, "lastTransitionTime": kept or now_rfc3339()}
        generation = (pod.get("metadata") or {}).get("generation")
        if generation:
            condition["observedGeneration"] = generation
        meta = pod["metadata"]
        try:
            await self._writes.patch_status(PODS, meta["name"], {"status": {"conditions": [condition]}},
                                            meta["namespace"], patch_type="strategic")
        except ClientClosed:
            return
        except (ApiError, TransportError) as e:
            log.info("could not update the PodScheduled condition of %s: %s", object_key(pod), e)

    # -- informer handlers: pods ----------------------------------------------

    def _responsible(self, pod: Mapping[str, Any]) -> bool:
        return needs_scheduling(pod, self.profiles)

    def _on_pod_add(self, pod: Obj) -> None:
        if _is_assigned(pod):
            self.snapshot.add_pod(pod)
            self.queue.move_all_to_active_or_backoff("AssignedPodAdd", _rejected_by(_POD_AFFINITY_PLUGINS))
        elif self._responsible(pod) and not self.snapshot.is_assumed(pod):
            self.queue.add(pod)

    def _on_pod_update(self, old: Obj, new: Obj) -> None:
        if _is_assigned(new):
            if not _is_assigned(old):
                # bound (by us or another scheduler): it leaves the queue and is counted on its node
                self.queue.delete(new)
                self._on_pod_add(new)
                return
            self.snapshot.update_pod(new)
            old_meta, new_meta = old.get("metadata") or {}, new.get("metadata") or {}
            if old_meta.get("labels") != new_meta.get("labels"):
                self.queue.move_all_to_active_or_backoff("AssignedPodUpdate", _rejected_by(_POD_AFFINITY_PLUGINS))
            if _requests_view(old) != _requests_view(new):
                self.queue.move_all_to_active_or_backoff("AssignedPodUpdate", _rejected_by(_RESOURCE_PLUGINS))
        elif self._responsible(new):
            if not self.snapshot.is_assumed(new):   # its binding is under way
                self.queue.update(new)
        else:
            self.queue.delete(new)   # being deleted

    def _on_pod_delete(self, obj: Any) -> None:
        pod = _final_state(obj)
        self.queue.delete(pod)
        # an assumed pod deleted before its binding shows frees its place at once, as an assigned one does
        if _is_assigned(pod) or self.snapshot.is_assumed(pod):
            self.snapshot.remove_pod(pod)
            self.queue.move_all_to_active_or_backoff("AssignedPodDelete")

    # -- informer handlers: nodes and namespaces --------------------------------

    def _on_node_add(self, node: Obj) -> None:
        self.snapshot.add_node(node)
        self.queue.move_all_to_active_or_backoff("NodeAdd")

    def _on_node_update(self, old: Obj, new: Obj) -> None:
        self.snapshot.update_node(new)
        if _node_scheduling_properties_changed(old, new):
            self.queue.move_all_to_active_or_backoff("NodeUpdate")

    def _on_node_delete(self, obj: Any) -> None:
        self.snapshot.remove_node((_final_state(obj).get("metadata") or {}).get("name", ""))

    def _on_namespace_add(self, ns: Obj) -> None:
        self.snapshot.upsert_object("Namespace", ns)
        self.queue.move_all_to_active_or_backoff("NamespaceAdd", _rejected_by(frozenset(("InterPodAffinity",))))

    def _on_namespace_update(self, old: Obj, new: Obj) -> None:
        self.snapshot.upsert_object("Namespace", new)
        if (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels"):
            self.queue.move_all_to_active_or_backoff("NamespaceUpdate",
                                                     _rejected_by(frozenset(("InterPodAffinity",))))

    def _on_namespace_delete(self, obj: Any) -> None:
        self.snapshot.delete_object("Namespace", _final_state(obj))


__all__ = ["DEFAULT_SCHEDULER_NAME", "Scheduler", "truncate_message"]
