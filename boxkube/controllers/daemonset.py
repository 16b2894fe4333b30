"""The DaemonSet controller (upstream pkg/controller/daemon).

One pod per eligible node. A node is eligible when the pod template's
`nodeName` (if any), `nodeSelector` and required node affinity match it and
the pod tolerates its NoSchedule and NoExecute taints; daemon pods get
upstream's extra tolerations first (not-ready and unreachable NoExecute,
disk-/memory-/pid-pressure and unschedulable NoSchedule, network-unavailable
for hostNetwork pods), so they stay on troubled nodes. A node that is no
longer eligible loses its pod, except when only NoSchedule taints stand in
the way (a pod already there may keep running).

Pods are placed as upstream does since 1.12: the controller does not bind
them, it pins each to its node with a required node affinity on
`metadata.name` (matchFields) and lets the scheduler bind it. Failed pods are
deleted (with back-off per node) and made again; pods of nodes that are gone
are deleted at once (upstream leaves them to the pod garbage collector, which
also would, a grace period later).

Updates: the template is a ControllerRevision named by its hash, and pods
carry that hash as `controller-revision-hash` (and the template generation
as `pod-template-generation`). RollingUpdate without surge deletes old pods
while at most `maxUnavailable` are unavailable; with `maxSurge` it starts the
new pod next to the old one and deletes the old one once the new is
available. OnDelete replaces a pod only when someone deletes it.
"""
from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

from boxkube.api import jsonio
from boxkube.api.pods import condition, is_available, is_ready, is_terminal
from boxkube.api.times import parse_time
from boxkube.apiserver.errors import APIError as SelectorError
from boxkube.apiserver.selectors import label_selector_from_object
from boxkube.client import ApiError, DeletedFinalStateUnknown, resource
from boxkube.client.store import object_key
from boxkube.controllers.base import Controller, Obj
from boxkube.controllers.controllerrevision import (
    HASH_LABEL, RevisionHistory, new_revision, revision_name, revision_number, template_hash, template_patch,
)
from boxkube.controllers.expectations import Expectations
from boxkube.controllers.ownership import controller_of, controller_ref
from boxkube.controllers.podcontrol import (
    ControllerRefManager, PodControl, add_pod_controller_index, pods_of, recheck_deletion, usable_selector,
)
from boxkube.controllers.replicaset import slow_start_batch
from boxkube.scheduler.plugins.nodeaffinity import RequiredNodeAffinity
from boxkube.scheduler.plugins.taints import find_untolerated_taint

DAEMONSETS = resource("daemonsets")

TEMPLATE_GENERATION_LABEL = "pod-template-generation"
TEMPLATE_GENERATION_ANNOTATION = "deprecated.daemonset.template.generation"
# Most pods created or deleted in one sync (upstream's BurstReplicas).
BURST_REPLICAS = 250
# Back-off between deleting failed pods on one node (upstream's failedPodsBackoff: 1 s doubling to 15 min).
_FAILED_BACKOFF_INITIAL, _FAILED_BACKOFF_MAX = 1.0, 900.0

_DAEMON_TOLERATIONS = (
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
)


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def daemon_pod_spec(template_spec: Obj) -> Obj:
    """The template's pod spec with the tolerations every daemon pod gets (AddOrUpdateDaemonPodTolerations)."""
    spec = jsonio.copy(template_spec)
    tolerations = spec.setdefault("tolerations", [])
    wanted = list(_DAEMON_TOLERATIONS)
    if spec.get("hostNetwork"):
        wanted.append(("node.kubernetes.io/network-unavailable", "NoSchedule"))
    for key, effect in wanted:
        if not any(t.get("key") == key and t.get("effect") == effect and t.get("operator") == "Exists"
                   and t.get("tolerationSeconds") is None for t in tolerations):
            tolerations.append({"key": key, "operator": "Exists", "effect": effect})
    return spec


def node_should_run(node: Obj, ds: Obj) -> tuple[bool, bool]:
    """(should run a daemon pod, may keep one it has) — NodeShouldRunDaemonPod."""
    spec = daemon_pod_spec(_spec(_spec(ds).get("template") or {}))
    name = _meta(node).get("name", "")
    if spec.get("nodeName") and spec["nodeName"] != name:
        return False, False
    view = SimpleNamespace(name=name, labels=_meta(node).get("labels") or {})
    if not RequiredNodeAffinity({"spec": spec}).matches(view):   # type: ignore[arg-type]
        return False, False
    taints = _spec(node).get("taints") or []
    tolerations = spec.get("tolerations") or []
    if find_untolerated_taint(taints, tolerations, frozenset({"NoExecute"})) is not None:
        return False, False
    return find_untolerated_taint(taints, tolerations, frozenset({"NoSchedule"})) is None, True


def target_node(pod: Obj) -> str | None:
    """The node a daemon pod is for: its nodeName, or the node its affinity pins (GetTargetNodeName)."""
    spec = _spec(pod)
    if spec.get("nodeName"):
        return spec["nodeName"]
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms") or []
    if len(terms) == 1:
        fields = terms[0].get("matchFields") or []
        if len(fields) == 1 and fields[0].get("key") == "metadata.name" and fields[0].get("operator") == "In" \
                and len(fields[0].get("values") or []) == 1:
            return fields[0]["values"][0]
    return None


def pin_to_node(affinity: Obj | None, node: str) -> Obj:
    """The pod's affinity with its required node terms replaced by `metadata.name In [node]`
    (ReplaceDaemonSetPodNodeNameNodeAffinity); the node's eligibility was checked already."""
    affinity = jsonio.copy(affinity or {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}
    return affinity


def scaled_value(value: Any, total: int, default: int) -> int:
    """An int-or-percent of `total`, percentages rounded up (GetScaledValueFromIntOrPercent, roundUp)."""
    if value is None:
        return default
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * total / 100)
    return int(value)


def oldest_first(pods: list[Obj]) -> list[Obj]:
    """Oldest creation first; among equals, running before pending before the rest (podByCreationTimestampAndPhase)."""
    order = {"Running": 0, "Pending": 1}
    return sorted(pods, key=lambda p: (_meta(p).get("creationTimestamp") or "",
                                       order.get((p.get("status") or {}).get("phase", ""), 2),
                                       _meta(p).get("name", "")))


def is_updated(pod: Obj, hash_: str) -> bool:
    return (_meta(pod).get("labels") or {}).get(HASH_LABEL) == hash_


def template_generation(ds: Obj) -> str:
    return (_meta(ds).get("annotations") or {}).get(TEMPLATE_GENERATION_ANNOTATION) \
        or str(_meta(ds).get("generation") or 1)


class DaemonSetController(Controller):
    name = "daemonset"

    def setup(self) -> None:
        self.sets = self.informers.informer("daemonsets")
        self.sets.add_event_handler(on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new),
                                    on_delete=self._set_deleted)
        self.pods = self.informers.informer("pods")
        add_pod_controller_index(self.pods.store)
        self.pods.add_event_handler(on_add=self._pod_added, on_update=self._pod_updated,
                                    on_delete=self._pod_deleted)
        self.nodes = self.informers.informer("nodes")
        self.nodes.add_event_handler(on_add=self._nodes_changed, on_update=self._node_updated,
                                     on_delete=self._nodes_changed)
        self.history = RevisionHistory(self.client, self.informers.informer("controllerrevisions").store)
        self.pod_control = PodControl(self.client, self.recorder)
        self.expectations = Expectations()
        self._failed_backoff: dict[tuple[str, str], tuple[float, float]] = {}   # (ds uid, node) -> (until, delay)

    # -- event handlers --------------------------------------------------------------------

    def _set_deleted(self, obj: Obj | DeletedFinalStateUnknown) -> None:
        key = obj.key if isinstance(obj, DeletedFinalStateUnknown) else object_key(obj)
        self.expectations.delete(key)
        self.queue.add(key)

    def _owner_key(self, pod: Obj) -> str | None:
        ref = controller_of(pod)
        if ref is None or ref.get("kind") != "DaemonSet":
            return None
        owner = self.sets.store.get_object(ref.get("name", ""), _meta(pod).get("namespace"))
        return object_key(owner) if owner is not None and _meta(owner).get("uid") == ref.get("uid") else None

    def _pod_added(self, pod: Obj) -> None:
        if _meta(pod).get("deletionTimestamp"):
            self._pod_deleted(pod)
            return
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.creation_observed(key)
            self.queue.add(key)
        elif controller_of(pod) is None:
            self._enqueue_selecting(pod)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if _meta(old).get("resourceVersion") == _meta(new).get("resourceVersion"):
            return
        if _meta(new).get("deletionTimestamp"):
            self._pod_deleted(new)
            return
        for pod in (old, new) if controller_of(old) != controller_of(new) else (new,):
            key = self._owner_key(pod)
            if key is not None:
                self.queue.add(key)
            elif controller_of(pod) is None:
                self._enqueue_selecting(pod)

    def _pod_deleted(self, obj: Obj | DeletedFinalStateUnknown) -> None:
        pod = obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.deletion_observed(key, object_key(pod))
            self.queue.add(key)

    def _enqueue_selecting(self, pod: Obj) -> None:
        labels = _meta(pod).get("labels") or {}
        for ds in self.sets.store.list():
            if _meta(ds).get("namespace") != _meta(pod).get("namespace"):
                continue
            try:
                selector = label_selector_from_object(_spec(ds).get("selector"))
            except SelectorError:
                continue
            if not selector.empty() and selector.matches(labels):
                self.enqueue(ds)

    def _nodes_changed(self, _: Any) -> None:
        for ds in self.sets.store.list():
            self.enqueue(ds)

    def _node_updated(self, old: Obj, new: Obj) -> None:
        # Only what eligibility reads matters (shouldIgnoreNodeUpdate).
        if _meta(old).get("labels") != _meta(new).get("labels") or _spec(old).get("taints") != _spec(new).get("taints"):
            self._nodes_changed(new)

    # -- reconcile ---------------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        ds = self.sets.store.get(key)
        if ds is None:
            self.expectations.delete(key)
            return
        selector = usable_selector(self.recorder, ds, "daemon set")
        if selector is None:
            return
        ref = controller_ref(ds, "apps/v1", "DaemonSet")
        manager = ControllerRefManager(self.pod_control, ds, selector, ref,
                                       recheck_deletion(self.client, DAEMONSETS, ds))
        pods = await manager.claim_pods(pods_of(self.pods.store, ds))
        revisions = await self.history.claim(ds, ref, selector)
        hash_, old_revisions, collision_count = await self._construct_history(ds, ref, revisions)
        nodes = self.nodes.store.list()
        if self.expectations.satisfied(key) and not _meta(ds).get("deletionTimestamp"):
            by_node = self._pods_by_node(pods)
            await self._manage(key, ds, nodes, by_node, hash_)
            if self.expectations.satisfied(key) and (_spec(ds).get("updateStrategy") or {}).get("type") != "OnDelete":
                await self._rolling_update(key, ds, nodes, self._pods_by_node(pods), hash_)
            await self._cleanup_history(ds, pods, old_revisions)
        await self._write_status(ds, nodes, self._pods_by_node(pods), hash_, collision_count)

    def _pods_by_node(self, pods: list[Obj]) -> dict[str, list[Obj]]:
        """Live daemon pods by the node they are for; finished pods already being deleted are done with."""
        by_node: dict[str, list[Obj]] = {}
        for pod in pods:
            if is_terminal(pod) and _meta(pod).get("deletionTimestamp"):
                continue
            node = target_node(pod)
            if node is not None:
                by_node.setdefault(node, []).append(pod)
        return by_node

    async def _construct_history(self, ds: Obj, ref: Obj, revisions: list[Obj]) -> tuple[str, list[Obj], int]:
        """The hash of the current template's revision (made if new, renumbered as the newest if
        old), the other revisions, and the collision count."""
        collision_count = int((ds.get("status") or {}).get("collisionCount") or 0)
        data = template_patch(ds)
        current = [r for r in revisions if r.get("data") == data]
        old = [r for r in revisions if r.get("data") != data]
        number = max((revision_number(r) for r in old), default=0) + 1
        if current:
            revision = max(current, key=revision_number)
            if revision_number(revision) < number:
                revision = await self.history.renumber(revision, number)
        else:
            template = _spec(ds).get("template") or {}

            def make(count: int) -> Obj:
                hash_ = template_hash(template, count)
                return new_revision(ds, ref, data, number, hash_, revision_name(_meta(ds)["name"], hash_))
            revision, collision_count = await self.history.create(make, collision_count)
        hash_ = (_meta(revision).get("labels") or {}).get(HASH_LABEL) or _meta(revision)["name"]
        return hash_, old, collision_count

    # -- the pods each node should have ----------------------------------------------------

    def _in_failed_backoff(self, ds: Obj, node: str) -> float:
        until, _ = self._failed_backoff.get((_meta(ds)["uid"], node), (0.0, 0.0))
        return max(0.0, until - time.monotonic())

    def _back_off_failed(self, ds: Obj, node: str) -> None:
        _, delay = self._failed_backoff.get((_meta(ds)["uid"], node), (0.0, 0.0))
        delay = min(max(delay * 2, _FAILED_BACKOFF_INITIAL), _FAILED_BACKOFF_MAX)
        self._failed_backoff[(_meta(ds)["uid"], node)] = (time.monotonic() + delay, delay)

    def _pods_should_be_on_node(self, key: str, ds: Obj, node: Obj, by_node: dict[str, list[Obj]],
                                hash_: str) -> tuple[bool, list[Obj]]:
        """(create a pod on the node, pods to delete there) — podsShouldBeOnNode."""
        name = _meta(node)["name"]
        should_run, may_continue = node_should_run(node, ds)
        pods = by_node.get(name)
        if should_run and not pods:
            return True, []
        if not may_continue:
            return False, [p for p in pods or [] if not _meta(p).get("deletionTimestamp")]
        to_delete, running = [], []
        for pod in pods or []:
            if _meta(pod).get("deletionTimestamp"):
                continue
            phase = (pod.get("status") or {}).get("phase")
            where = f"{_meta(pod)['namespace']}/{_meta(pod)['name']} on node {name}"
            if phase == "Failed":
                wait = self._in_failed_backoff(ds, name)
                if wait > 0:
                    self.queue.add_after(key, wait)
                    continue
                self._back_off_failed(ds, name)
                self.recorder.event(ds, "Warning", "FailedDaemonPod", f"Found failed daemon pod {where}, will try to kill it")
                to_delete.append(pod)
            elif phase == "Succeeded":
                self.recorder.event(ds, "Normal", "SucceededDaemonPod", f"Found succeeded daemon pod {where}, will try to delete it")
                to_delete.append(pod)
            else:
                running.append(pod)
        max_surge = self._max_surge(ds, 1)
        if max_surge == 0:
            # Without surge, one pod per node: the oldest stays.
            return False, to_delete + oldest_first(running)[1:]
        if len(running) <= 1:
            return (not running and should_run), to_delete
        # Surging: an old and a new pod may share a node while the new one is not yet available.
        oldest_new = oldest_old = None
        for pod in oldest_first(running):
            if is_updated(pod, hash_) and oldest_new is None:
                oldest_new = pod
            elif not is_updated(pod, hash_) and oldest_old is None:
                oldest_old = pod
            else:
                to_delete.append(pod)
        if oldest_new is not None and oldest_old is not None:
            min_ready = int(_spec(ds).get("minReadySeconds") or 0)
            if not is_ready(oldest_old) or is_available(oldest_new, min_ready):
                to_delete.append(oldest_old)
        return False, to_delete

    async def _manage(self, key: str, ds: Obj, nodes: list[Obj], by_node: dict[str, list[Obj]], hash_: str) -> None:
        create_on, to_delete = [], []
        for node in nodes:
            create, delete = self._pods_should_be_on_node(key, ds, node, by_node, hash_)
            if create:
                create_on.append(_meta(node)["name"])
            to_delete += delete
        existing = {_meta(n)["name"] for n in nodes}
        for name, pods in by_node.items():
            if name not in existing:
                to_delete += [p for p in pods if not _meta(p).get("deletionTimestamp")]
        await self._sync_nodes(key, ds, to_delete, create_on, hash_)

    async def _sync_nodes(self, key: str, ds: Obj, to_delete: list[Obj], create_on: list[str], hash_: str) -> None:
        """Create a pod on each of `create_on` and delete `to_delete` (at most BURST_REPLICAS of each),
        as upstream's syncNodes; both are waited for (expectations) before the cache is trusted again."""
        to_delete, create_on = to_delete[:BURST_REPLICAS], create_on[:BURST_REPLICAS]
        self.expectations.expect(key, len(create_on), [object_key(p) for p in to_delete])
        errors = [error for error in (await self._create_pods(key, ds, create_on, hash_),
                                      await self._delete_pods(key, ds, to_delete)) if error is not None]
        if errors:
            raise errors[0]

    async def _delete_pods(self, key: str, ds: Obj, pods: list[Obj]) -> ApiError | None:
        """Delete `pods`, whose deletions are expected; the first failure, if any."""
        failure = None
        for pod in pods:
            try:
                await self.pod_control.delete_pod(ds, _meta(pod)["namespace"], _meta(pod)["name"])
            except ApiError as e:
                self.expectations.deletion_observed(key, object_key(pod))
                if not e.is_not_found:
                    failure = failure or e
        return failure

    async def _create_pods(self, key: str, ds: Obj, create_on: list[str], hash_: str) -> Exception | None:
        """Create a pod on each of `create_on`, whose creations are expected; the failure that stopped it, if any."""
        if not create_on:
            return None
        template = _spec(ds).get("template") or {}
        labels = {**((template.get("metadata") or {}).get("labels") or {}), HASH_LABEL: hash_,
                  TEMPLATE_GENERATION_LABEL: template_generation(ds)}
        ref = controller_ref(ds, "apps/v1", "DaemonSet")
        pending = iter(create_on)

        async def create() -> None:
            node = next(pending)
            pod_template = {"metadata": {**(template.get("metadata") or {}), "labels": labels},
                            "spec": daemon_pod_spec(_spec(template))}
            pod_template["spec"]["affinity"] = pin_to_node(pod_template["spec"].get("affinity"), node)
            await self.pod_control.create_pod(ds, pod_template, ref)

        created, error = await slow_start_batch(len(create_on), create)
        for _ in range(len(create_on) - created):
            self.expectations.creation_observed(key)       # never made: never to be seen
        return error

    # -- updates ----------------------------------------------------------------------------

    def _max_surge(self, ds: Obj, desired: int) -> int:
        strategy = _spec(ds).get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") != "RollingUpdate":
            return 0
        return scaled_value((strategy.get("rollingUpdate") or {}).get("maxSurge"), desired, 0)

    def _max_unavailable(self, ds: Obj, desired: int) -> int:
        rolling = (_spec(ds).get("updateStrategy") or {}).get("rollingUpdate") or {}
        return scaled_value(rolling.get("maxUnavailable"), desired, 1)

    async def _rolling_update(self, key: str, ds: Obj, nodes: list[Obj], by_node: dict[str, list[Obj]],
                              hash_: str) -> None:
        """Old pods to delete, or new pods to start beside them, within maxUnavailable / maxSurge (rollingUpdate)."""
        eligible = {_meta(n)["name"]: n for n in nodes if node_should_run(n, ds)[0]}
        for name in eligible:
            by_node.setdefault(name, [])
        desired = len(eligible)
        max_surge, max_unavailable = self._max_surge(ds, desired), self._max_unavailable(ds, desired)
        if desired > 0 and max_surge == 0 and max_unavailable == 0:
            max_unavailable = 1       # an impossible configuration: accept unavailability
        min_ready = int(_spec(ds).get("minReadySeconds") or 0)
        now = datetime.now(timezone.utc)
        names = {_meta(n)["name"] for n in nodes}
        to_delete: list[Obj] = []
        create_on: list[str] = []
        if max_surge == 0:
            unavailable, replacements, candidates = 0, [], []
            for name, pods in by_node.items():
                new, old, ok = _new_and_old(pods, hash_)
                if not ok or (new is None) == (old is None):
                    unavailable += 1          # the manage loop is still at work on this node
                elif new is not None:
                    unavailable += not is_available(new, min_ready, now)
                elif not is_available(old, min_ready, now):
                    replacements.append(old)
                    unavailable += 1
                elif unavailable < max_unavailable:
                    candidates.append(old)
            room = max(0, min(max_unavailable - unavailable, len(candidates)))
            to_delete = replacements + candidates[:room]
        else:
            surge = available = 0
            should_not_run: list[Obj] = []
            candidates_on: list[str] = []
            for name, pods in by_node.items():
                new, old, ok = _new_and_old(pods, hash_)
                if not ok:
                    surge += 1
                    continue
                shown = old if old is not None else new
                if shown is not None and is_available(shown, min_ready, now):
                    available += 1
                if old is None:
                    continue
                if new is None:
                    if name not in eligible:
                        if is_available(old, min_ready, now) or name not in names:
                            should_not_run.append(old)
                        else:
                            to_delete.append(old)
                    elif not is_available(old, min_ready, now):
                        create_on.append(name)          # replace an unavailable pod at once
                    elif surge < max_surge:
                        candidates_on.append(name)
                elif not is_available(new, min_ready, now):
                    surge += 1                          # waiting for the new pod
                else:
                    to_delete.append(old)               # the new pod is available: the old one goes
            # Pods on nodes they should leave go only as others become available (full availability).
            to_delete += should_not_run[:max(0, available - desired)]
            create_on += candidates_on[:max(0, min(max_surge - surge, len(candidates_on)))]
        await self._sync_nodes(key, ds, to_delete, create_on, hash_)

    async def _cleanup_history(self, ds: Obj, pods: list[Obj], old: list[Obj]) -> None:
        limit = _spec(ds).get("revisionHistoryLimit")
        limit = 10 if limit is None else int(limit)
        excess = len(old) - limit
        if excess <= 0:
            return
        live = {(_meta(p).get("labels") or {}).get(HASH_LABEL) for p in pods}
        for revision in sorted(old, key=revision_number):
            if excess <= 0:
                break
            if (_meta(revision).get("labels") or {}).get(HASH_LABEL) in live:
                continue
            await self.history.delete(revision)
            excess -= 1

    # -- status -----------------------------------------------------------------------------------

    async def _write_status(self, ds: Obj, nodes: list[Obj], by_node: dict[str, list[Obj]], hash_: str,
                            collision_count: int) -> None:
        min_ready = int(_spec(ds).get("minReadySeconds") or 0)
        now = datetime.now(timezone.utc)
        desired = scheduled = ready = available = updated = misscheduled = 0
        wait: float | None = None
        for node in nodes:
            should_run, _ = node_should_run(node, ds)
            pods = by_node.get(_meta(node)["name"])
            if not should_run:
                misscheduled += bool(pods)
                continue
            desired += 1
            if not pods:
                continue
            scheduled += 1
            pod = oldest_first(pods)[0]
            if is_ready(pod):
                ready += 1
                if is_available(pod, min_ready, now):
                    available += 1
                elif min_ready > 0:
                    since = parse_time((condition(pod, "Ready") or {}).get("lastTransitionTime"))
                    if since is not None:
                        left = min_ready - (now - since).total_seconds() + 0.05
                        wait = left if wait is None else min(wait, left)
            updated += is_updated(pod, hash_)
        status: Obj = {"observedGeneration": _meta(ds).get("generation"), "desiredNumberScheduled": desired,
                       "currentNumberScheduled": scheduled, "numberMisscheduled": misscheduled, "numberReady": ready,
                       "numberAvailable": available, "updatedNumberScheduled": updated,
                       "numberUnavailable": desired - available}
        if collision_count:
            status["collisionCount"] = collision_count
        if wait is not None:
            self.queue.add_after(object_key(ds), max(wait, 0.05))
        old = ds.get("status") or {}
        if all(old.get(k) == v for k, v in status.items()):
            return
        try:
            await self.client.patch_status(DAEMONSETS, _meta(ds)["name"], {"status": status}, _meta(ds)["namespace"])
        except ApiError as e:
            if not e.is_not_found:
                raise


def _new_and_old(pods: list[Obj], hash_: str) -> tuple[Obj | None, Obj | None, bool]:
    """The node's one new and one old pod, not counting pods being deleted; ok False when there
    are more (findUpdatedPodsOnNode)."""
    new = old = None
    for pod in pods:
        if _meta(pod).get("deletionTimestamp"):
            continue
        if is_updated(pod, hash_):
            if new is not None:
                return None, None, False
            new = pod
        else:
            if old is not None:
                return None, None, False
            old = pod
    return new, old, True
