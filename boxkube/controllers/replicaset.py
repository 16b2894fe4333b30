"""The ReplicaSet controller: keep `spec.replicas` live pods (upstream pkg/controller/replicaset).

One reconcile of `namespace/name`:

1. if the pod creations or deletions asked for last time are not all in the
   informer's cache yet (expectations), only the status is refreshed — acting
   on a lagging cache would create or delete twice;
2. claim pods: adopt matching orphans, release owned pods that stopped matching;
3. create the missing pods in slow-start batches (1, 2, 4, ...: a quota that
   refuses the first pod stops the rest), or delete the extras, choosing
   victims as upstream does (unscheduled, pending, not ready, ... first);
4. write status (replicas, fullyLabeledReplicas, readyReplicas,
   availableReplicas, terminatingReplicas, observedGeneration, the
   ReplicaFailure condition) through the status subresource when it changed,
   and come back when a ready pod will have been ready for minReadySeconds.

The ReplicationController controller (replicationcontroller.py) is this class
over core/v1 ReplicationControllers, as upstream runs this code over converted
RCs. The pure parts — `pods_to_delete`, `calculate_status`, `slow_start_batch`
— are importable for the Deployment controller and for tests.
"""
from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

from boxkube.api.pods import condition, is_active, is_available, is_ready
from boxkube.api.times import now_rfc3339, parse_time
from boxkube.apiserver.errors import APIError as SelectorError
from boxkube.apiserver.selectors import LabelSelector, label_selector_from_object
from boxkube.client import NAMESPACE_INDEX, ApiError, DeletedFinalStateUnknown, resource
from boxkube.client.store import object_key
from boxkube.controllers.base import Controller
from boxkube.controllers.expectations import Expectations
from boxkube.controllers.ownership import controller_of, controller_ref, is_controlled_by
from boxkube.controllers.podcontrol import (
    ControllerRefManager,
    PodControl,
    add_pod_controller_index,
    has_status_cause,
    is_terminating,
    pods_of,
    recheck_deletion,
)

Obj = dict[str, Any]

# At most this many pods are created or deleted by one reconcile (upstream BurstReplicas).
BURST_REPLICAS = 500
SLOW_START_INITIAL_BATCH = 1
DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}
_COUNTS = ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas")
_MICROSECOND = timedelta(microseconds=1)


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _labels(obj: Obj) -> dict[str, str]:
    return _meta(obj).get("labels") or {}


# -- choosing pods to delete (controller.ActivePodsWithRanks) ------------------------------

def deletion_cost(pod: Obj) -> int:
    """The pod-deletion-cost annotation (an int32; unreadable counts as 0)."""
    try:
        cost = int((_meta(pod).get("annotations") or {}).get(DELETION_COST_ANNOTATION, "0"))
    except ValueError:
        return 0
    return cost if -2**31 <= cost < 2**31 else 0


def _ready_time(pod: Obj) -> datetime | None:
    c = condition(pod, "Ready")
    return parse_time(c.get("lastTransitionTime")) if c and c.get("status") == "True" else None


def _after_or_zero(t1: datetime | None, t2: datetime | None) -> bool:
    """Unset first, then the later time first (upstream afterOrZero)."""
    if t1 is None or t2 is None:
        return t1 is None
    return t1 > t2


def _log_bucket(t: datetime, now: datetime) -> int:
    """floor(log2(age in ns)), -1 for no age: times in one bucket count as equally old, so the
    pods scaled down among look-alikes are spread pseudo-randomly (LogarithmicScaleDown)."""
    age_ns = (now - t) // _MICROSECOND * 1000
    return int(math.log2(age_ns)) if age_ns > 0 else -1


def _newer_first(a: Obj, b: Obj, ta: datetime | None, tb: datetime | None, now: datetime | None) -> bool:
    if now is None or ta is None or tb is None:
        return _after_or_zero(ta, tb)
    diff = _log_bucket(ta, now) - _log_bucket(tb, now)
    if diff == 0:
        return _meta(a).get("uid", "") < _meta(b).get("uid", "")
    return diff < 0


def _max_restarts(pod: Obj) -> tuple[int, int]:
    """(most restarts of a regular container, most restarts of a sidecar)."""
    status = pod.get("status") or {}
    regular = max((int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or []), default=0)
    sidecars = {c.get("name") for c in (pod.get("spec") or {}).get("initContainers") or []
                if c.get("restartPolicy") == "Always"}
    sidecar = max((int(c.get("restartCount") or 0) for c in status.get("initContainerStatuses") or []
                   if c.get("name") in sidecars), default=0)
    return regular, sidecar


def delete_first(a: Obj, rank_a: int, b: Obj, rank_b: int, now: datetime | None) -> bool:
    """Whether `a` should be deleted before `b` (ActivePodsWithRanks.Less), the first rule that
    tells them apart deciding: unscheduled; Pending < Unknown < Running; not ready; lower
    deletion cost; more pods of the owner on its node (rank); ready for less time; more
    restarts; created more recently."""
    node_a, node_b = (a.get("spec") or {}).get("nodeName") or "", (b.get("spec") or {}).get("nodeName") or ""
    if node_a != node_b and (not node_a or not node_b):
        return not node_a
    phase_a = _PHASE_ORDER.get((a.get("status") or {}).get("phase", ""), 0)
    phase_b = _PHASE_ORDER.get((b.get("status") or {}).get("phase", ""), 0)
    if phase_a != phase_b:
        return phase_a < phase_b
    if is_ready(a) != is_ready(b):
        return not is_ready(a)
    if deletion_cost(a) != deletion_cost(b):
        return deletion_cost(a) < deletion_cost(b)
    if rank_a != rank_b:
        return rank_a > rank_b
    if is_ready(a) and is_ready(b):
        ready_a, ready_b = _ready_time(a), _ready_time(b)
        if ready_a != ready_b:
            return _newer_first(a, b, ready_a, ready_b, now)
    restarts_a, restarts_b = _max_restarts(a), _max_restarts(b)
    if restarts_a != restarts_b:
        return restarts_a > restarts_b
    created_a, created_b = parse_time(_meta(a).get("creationTimestamp")), parse_time(_meta(b).get("creationTimestamp"))
    if created_a != created_b:
        return _newer_first(a, b, created_a, created_b, now)
    return False


def rank_by_colocation(pods: list[Obj], related: list[Obj]) -> list[int]:
    """Each pod's rank: how many active related pods share its node (a doubled-up node gives first)."""
    on_node: dict[str, int] = {}
    for pod in related:
        if is_active(pod):
            node = (pod.get("spec") or {}).get("nodeName") or ""
            on_node[node] = on_node.get(node, 0) + 1
    return [on_node.get((p.get("spec") or {}).get("nodeName") or "", 0) for p in pods]


def pods_to_delete(pods: list[Obj], related: list[Obj], count: int, now: datetime | None = None) -> list[Obj]:
    """The `count` pods to delete first (getPodsToDelete); `related` are the pods of every
    ReplicaSet of the same owner, for the colocation rank."""
    if count >= len(pods):
        return list(pods)
    ranked = list(zip(pods, rank_by_colocation(pods, related)))

    def compare(x: tuple[Obj, int], y: tuple[Obj, int]) -> int:
        if delete_first(x[0], x[1], y[0], y[1], now):
            return -1
        return 1 if delete_first(y[0], y[1], x[0], x[1], now) else 0

    ranked.sort(key=functools.cmp_to_key(compare))
    return [pod for pod, _ in ranked[:count]]


# -- creating in batches -------------------------------------------------------------------

async def slow_start_batch(count: int, create: Callable[[], Awaitable[Any]],
                           initial: int = SLOW_START_INITIAL_BATCH) -> tuple[int, Exception | None]:
    """Call `create` `count` times in concurrent batches of 1, 2, 4, ... (starting at `initial`);
    stop after a batch with a failure. (successes, the first error)."""
    successes, remaining = 0, count
    batch = min(remaining, initial)
    while batch > 0:
        results = await asyncio.gather(*(create() for _ in range(batch)), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, Exception):
                raise r
        errors = [r for r in results if isinstance(r, Exception)]
        successes += batch - len(errors)
        if errors:
            return successes, errors[0]
        remaining -= batch
        batch = min(2 * batch, remaining)
    return successes, None


# -- status -----------------------------------------------------------------------------------

def _error_message(error: Exception) -> str:
    return error.message if isinstance(error, ApiError) else str(error)


def replica_failure(status: Obj, active: int, replicas: int, error: Exception | None, now: datetime) -> list[Obj]:
    """The conditions after a sync: ReplicaFailure set by a failed create/delete (kept as it was
    while failures go on), removed by a sync without one."""
    conditions = [dict(c) for c in status.get("conditions") or []]
    failing = next((c for c in conditions if c.get("type") == "ReplicaFailure"), None)
    if error is not None and failing is None:
        reason = "FailedCreate" if active < replicas else "FailedDelete" if active > replicas else ""
        conditions.append({"type": "ReplicaFailure", "status": "True", "lastTransitionTime": now_rfc3339(now),
                           "reason": reason, "message": _error_message(error)})
    elif error is None and failing is not None:
        conditions.remove(failing)
    return conditions


def calculate_status(rs: Obj, active: list[Obj], terminating: list[Obj] | None, error: Exception | None,
                     now: datetime) -> Obj:
    """The status a sync leaves (calculateStatus): counts of the active pods it controls;
    `terminating` None leaves terminatingReplicas out (ReplicationControllers have none)."""
    spec = rs.get("spec") or {}
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    status = dict(rs.get("status") or {})
    status["replicas"] = len(active)
    status["fullyLabeledReplicas"] = sum(1 for p in active
                                         if all(_labels(p).get(k) == v for k, v in template_labels.items()))
    status["readyReplicas"] = sum(1 for p in active if is_ready(p))
    status["availableReplicas"] = sum(1 for p in active if is_available(p, min_ready, now))
    if terminating is not None:
        status["terminatingReplicas"] = len(terminating)
    conditions = replica_failure(status, len(active), int(spec.get("replicas", 1)), error, now)
    if conditions:
        status["conditions"] = conditions
    else:
        status.pop("conditions", None)
    # Zero counts are left out, as the API server's Go types serialise them (omitempty).
    for key in _COUNTS[1:]:
        if not status[key]:
            del status[key]
    return status


def status_changed(rs: Obj, status: Obj) -> bool:
    """Whether `status` says anything the stored one does not, or the spec was not yet observed."""
    old = rs.get("status") or {}
    if any(int(old.get(k) or 0) != int(status.get(k) or 0) for k in _COUNTS):
        return True
    if old.get("terminatingReplicas") != status.get("terminatingReplicas"):
        return True
    return _meta(rs).get("generation") != old.get("observedGeneration") \
        or (old.get("conditions") or []) != (status.get("conditions") or [])


def next_availability_check(min_ready_seconds: int, pods: list[Obj], now: datetime) -> float | None:
    """Seconds until the first ready pod becomes available (findMinNextPodAvailabilityCheck):
    nothing else would wake the controller then."""
    if min_ready_seconds <= 0:
        return None
    waits = []
    for pod in pods:
        since = _ready_time(pod)
        if since is not None and not is_available(pod, min_ready_seconds, now):
            waits.append((since - now).total_seconds() + min_ready_seconds)
    return max(min(waits), 0.0) if waits else None


# -- the controller ---------------------------------------------------------------------------------

class ReplicaSetController(Controller):
    """Keeps the pods of every ReplicaSet (subclassed for ReplicationControllers)."""

    name = "replicaset"
    workers = 5
    resource_name: ClassVar[str] = "replicasets"
    api_version: ClassVar[str] = "apps/v1"
    kind: ClassVar[str] = "ReplicaSet"
    # status.terminatingReplicas (DeploymentReplicaSetTerminatingReplicas, on by default since 1.35)
    reports_terminating: ClassVar[bool] = True

    def setup(self) -> None:
        self.rt = resource(self.resource_name)
        self.expectations = Expectations()
        self.pod_control = PodControl(self.client, self.recorder)
        self.sets = self.informers.informer(self.resource_name)
        self.pods = self.informers.informer("pods")
        add_pod_controller_index(self.pods.store)
        self.sets.add_event_handler(on_add=self.enqueue, on_update=self._set_updated, on_delete=self._set_deleted)
        self.pods.add_event_handler(on_add=self._pod_added, on_update=self._pod_updated,
                                    on_delete=self._pod_deleted)

    def selector_of(self, rs: Obj) -> LabelSelector:
        return label_selector_from_object((rs.get("spec") or {}).get("selector"))

    # -- event handlers (replica_set.go addPod/updatePod/deletePod) ---------------------------------

    def _set_updated(self, old: Obj, new: Obj) -> None:
        if _meta(old).get("uid") != _meta(new).get("uid"):
            self._set_deleted(DeletedFinalStateUnknown(object_key(old), old))
        self.enqueue(new)

    def _set_deleted(self, obj: Obj | DeletedFinalStateUnknown) -> None:
        key = obj.key if isinstance(obj, DeletedFinalStateUnknown) else object_key(obj)
        self.expectations.delete(key)    # a new one of the same name starts clean
        self.queue.add(key)

    def _owner(self, pod: Obj, ref: Obj | None) -> Obj | None:
        """The object of ours that `ref` (a pod's controller reference) points at, if it exists."""
        if ref is None or ref.get("kind") != self.kind:
            return None
        owner = self.sets.store.get_object(ref.get("name", ""), _meta(pod).get("namespace"))
        return owner if owner is not None and _meta(owner).get("uid") == ref.get("uid") else None

    def _selecting(self, pod: Obj) -> list[Obj]:
        """Our objects in the pod's namespace whose selector matches it (candidates to adopt an orphan)."""
        found = []
        for owner in self.sets.store.by_index(NAMESPACE_INDEX, _meta(pod).get("namespace") or ""):
            try:
                selector = self.selector_of(owner)
            except SelectorError:
                continue
            if not selector.empty() and selector.matches(_labels(pod)):
                found.append(owner)
        return found

    def _pod_added(self, pod: Obj) -> None:
        if _meta(pod).get("deletionTimestamp"):
            # Seen for the first time already going (a restart): not a creation we wait for.
            self._pod_deleted(pod)
            return
        ref = controller_of(pod)
        if ref is not None:
            owner = self._owner(pod, ref)
            if owner is not None:
                key = object_key(owner)
                self.expectations.creation_observed(key)
                self.queue.add(key)
            return
        for owner in self._selecting(pod):
            self.enqueue(owner)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if _meta(old).get("resourceVersion") == _meta(new).get("resourceVersion"):
            return     # a resync: nothing changed
        labels_changed = _labels(old) != _labels(new)
        if _meta(new).get("deletionTimestamp"):
            # Graceful deletion started: replace the pod now, not when it is finally gone.
            self._pod_deleted(new)
            if labels_changed:
                self._pod_deleted(old)
            return
        old_ref, new_ref = controller_of(old), controller_of(new)
        if old_ref != new_ref and old_ref is not None:
            owner = self._owner(old, old_ref)
            if owner is not None:
                self.enqueue(owner)
        if new_ref is not None:
            owner = self._owner(new, new_ref)
            if owner is not None:
                self.enqueue(owner)
            return
        if labels_changed or old_ref != new_ref:
            for owner in self._selecting(new):
                self.enqueue(owner)

    def _pod_deleted(self, obj: Obj | DeletedFinalStateUnknown) -> None:
        pod = obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj
        owner = self._owner(pod, controller_of(pod))
        if owner is not None:
            key = object_key(owner)
            self.expectations.deletion_observed(key, object_key(pod))
            self.queue.add(key)

    # -- reconcile ---------------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        rs = self.sets.store.get(key)
        if rs is None:
            self.expectations.delete(key)
            return
        needs_sync = self.expectations.satisfied(key)
        try:
            selector = self.selector_of(rs)
        except SelectorError as e:
            self.log.warning("%s %s: invalid selector: %s", self.kind, key, e)
            return
        owned = pods_of(self.pods.store, rs)
        active = await self._claim(rs, selector, [p for p in owned if is_active(p)])
        terminating = [p for p in owned if is_terminating(p) and is_controlled_by(p, rs)
                       and selector.matches(_labels(p))] if self.reports_terminating else None
        error: Exception | None = None
        if needs_sync and not _meta(rs).get("deletionTimestamp"):
            try:
                await self.manage_replicas(key, rs, active)
            except Exception as e:     # recorded in status.conditions, then retried with back-off
                error = e
        now = datetime.now(timezone.utc)
        updated = await self.write_status(rs, calculate_status(rs, active, terminating, error, now))
        if error is not None:
            raise error
        wait = next_availability_check(int((updated.get("spec") or {}).get("minReadySeconds") or 0), active, now)
        if wait is not None:
            self.queue.add_after(key, wait)

    async def _claim(self, rs: Obj, selector: LabelSelector, pods: list[Obj]) -> list[Obj]:
        manager = ControllerRefManager(self.pod_control, rs, selector, self.controller_ref(rs),
                                       recheck_deletion(self.client, self.rt, rs))
        return await manager.claim_pods(pods)

    def controller_ref(self, rs: Obj) -> Obj:
        return controller_ref(rs, self.api_version, self.kind)

    async def manage_replicas(self, key: str, rs: Obj, active: list[Obj]) -> None:
        """Create or delete pods toward spec.replicas (at most BURST_REPLICAS this time)."""
        diff = len(active) - int((rs.get("spec") or {}).get("replicas", 1))
        if diff < 0:
            await self._create_pods(key, rs, min(-diff, BURST_REPLICAS))
        elif diff > 0:
            await self._delete_pods(key, rs, active, min(diff, BURST_REPLICAS))

    async def _create_pods(self, key: str, rs: Obj, count: int) -> None:
        self.expectations.expect_creations(key, count)
        template, ref = (rs.get("spec") or {}).get("template") or {}, self.controller_ref(rs)

        async def create() -> None:
            try:
                await self.pod_control.create_pod(rs, template, ref)
            except ApiError as e:
                if not has_status_cause(e, "NamespaceTerminating"):
                    raise         # creating in a namespace being deleted is pointless, not a failure

        created, error = await slow_start_batch(count, create)
        # The pods never made will never be observed: stop expecting them.
        for _ in range(count - created):
            self.expectations.creation_observed(key)
        if error is not None:
            raise error

    async def _delete_pods(self, key: str, rs: Obj, active: list[Obj], count: int) -> None:
        victims = pods_to_delete(active, self._related_pods(rs), count, datetime.now(timezone.utc))
        # Expect them by key, so a pod seen terminating and then deleted counts once.
        self.expectations.expect_deletions(key, [object_key(p) for p in victims])

        async def delete(pod: Obj) -> None:
            try:
                await self.pod_control.delete_pod(rs, _meta(pod)["namespace"], _meta(pod)["name"])
            except Exception as e:
                self.expectations.deletion_observed(key, object_key(pod))
                if not (isinstance(e, ApiError) and e.is_not_found):
                    raise

        results = await asyncio.gather(*(delete(p) for p in victims), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]

    def _related_pods(self, rs: Obj) -> list[Obj]:
        """The pods selected by every object with the same controller as `rs` (the ReplicaSets
        of one Deployment), for the colocation rank; none when `rs` has no controller."""
        ref = controller_of(rs)
        if ref is None:
            return []
        namespace = _meta(rs).get("namespace") or ""
        siblings = [s for s in self.sets.store.by_index(NAMESPACE_INDEX, namespace)
                    if (controller_of(s) or {}).get("uid") == ref.get("uid")]
        seen: dict[str, Obj] = {}
        pods = self.pods.store.by_index(NAMESPACE_INDEX, namespace)
        for sibling in siblings:
            try:
                selector = self.selector_of(sibling)
            except SelectorError:
                continue
            for pod in pods:
                if selector.matches(_labels(pod)):
                    seen.setdefault(_meta(pod).get("uid", ""), pod)
        return list(seen.values())

    async def write_status(self, rs: Obj, status: Obj) -> Obj:
        """PUT the status subresource when it changed (retrying once on a conflict with a fresh read);
        the object as stored."""
        if not status_changed(rs, status):
            return rs
        status = {**status, "observedGeneration": _meta(rs).get("generation")}
        meta = _meta(rs)
        try:
            return await self.client.replace_status(self.rt, {**rs, "status": status}, meta.get("namespace"))
        except ApiError as e:
            if not e.is_conflict:
                raise
        fresh = await self.client.get(self.rt, meta["name"], meta.get("namespace"))
        return await self.client.replace_status(self.rt, {**fresh, "status": status}, meta.get("namespace"))
