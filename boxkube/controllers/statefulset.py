"""The StatefulSet controller (upstream pkg/controller/statefulset).

A StatefulSet's pods have stable names, `<name>-<ordinal>` for the ordinals
`spec.ordinals.start` ... `start + replicas - 1`, with the labels
`statefulset.kubernetes.io/pod-name` and `apps.kubernetes.io/pod-index`,
`spec.hostname` = the pod's name and `spec.subdomain` = `spec.serviceName`.
A name is never used by two pods: a pod being deleted blocks its
replacement until it is gone (the API server refuses a second pod of one name).

- OrderedReady (the default): pods are created one at a time in ordinal order,
  each only once every lower one is Running, Ready and available; surplus pods
  are deleted one at a time from the highest ordinal; a not-ready pod stops
  everything but the replacement of the first unhealthy one.
- Parallel: creations and deletions happen all at once.
- Updates: every template is a ControllerRevision; `currentRevision` is what
  the pods were made from, `updateRevision` the template now. RollingUpdate
  replaces pods from the highest ordinal down to `partition`, one at a time,
  waiting for each to be available; OnDelete replaces a pod only when someone
  deletes it. Pods below the partition are recreated at the current revision.

boxkube has no storage: `volumeClaimTemplates` get no PersistentVolumeClaims.
The pods get an emptyDir volume of each claim's name instead (so templates
that mount them still run) and the StatefulSet a Warning event saying so.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from boxkube.api import jsonio
from boxkube.api.pods import condition, is_available, is_ready
from boxkube.api.times import parse_time
from boxkube.apiserver.errors import APIError as SelectorError
from boxkube.apiserver.selectors import LabelSelector, label_selector_from_object
from boxkube.client import NAMESPACE_INDEX, ApiError, DeletedFinalStateUnknown, resource
from boxkube.controllers.base import Controller, Obj
from boxkube.controllers.controllerrevision import (
    HASH_LABEL, RevisionHistory, new_revision, revision_hash, revision_name, revision_number, template_of,
    template_patch,
)
from boxkube.controllers.ownership import controller_of, controller_ref
from boxkube.controllers.podcontrol import (
    ControllerRefManager, PodControl, add_pod_controller_index, pods_of, recheck_deletion, usable_selector,
)

STATEFULSETS = resource("statefulsets")
PODS = resource("pods")

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
_POD_NAME = re.compile(r"^(.*)-([0-9]+)$")
_MAX_INT32 = 2**31 - 1


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def parent_and_ordinal(pod: Obj) -> tuple[str, int]:
    """The StatefulSet name and ordinal a pod's name says, ("", -1) when it says none."""
    match = _POD_NAME.match(_meta(pod).get("name", ""))
    if not match or int(match.group(2)) > _MAX_INT32:
        return "", -1
    return match.group(1), int(match.group(2))


def ordinal_of(pod: Obj) -> int:
    return parent_and_ordinal(pod)[1]


def start_ordinal(sts: Obj) -> int:
    return int((_spec(sts).get("ordinals") or {}).get("start") or 0)


def replicas_of(sts: Obj) -> int:
    replicas = _spec(sts).get("replicas")
    return 1 if replicas is None else int(replicas)


def pod_name(sts: Obj, ordinal: int) -> str:
    return f"{_meta(sts)['name']}-{ordinal}"


def revision_of(pod: Obj) -> str:
    return (_meta(pod).get("labels") or {}).get(HASH_LABEL, "")


def is_created(pod: Obj) -> bool:
    """Stored by the API server (which gives every pod a phase), not just planned here."""
    return bool((pod.get("status") or {}).get("phase"))


def is_terminating(pod: Obj) -> bool:
    return bool(_meta(pod).get("deletionTimestamp"))


def running_and_ready(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and is_ready(pod)


def running_and_available(pod: Obj, min_ready_seconds: int, now: datetime) -> bool:
    return running_and_ready(pod) and is_available(pod, min_ready_seconds, now)


def is_unavailable(pod: Obj, min_ready_seconds: int, now: datetime) -> bool:
    return is_terminating(pod) or not running_and_available(pod, min_ready_seconds, now)


def identity_matches(sts: Obj, pod: Obj) -> bool:
    parent, ordinal = parent_and_ordinal(pod)
    meta = _meta(pod)
    labels = meta.get("labels") or {}
    return (ordinal >= 0 and parent == _meta(sts)["name"] and meta.get("namespace") == _meta(sts).get("namespace")
            and labels.get(POD_NAME_LABEL) == meta.get("name") and labels.get(POD_INDEX_LABEL) == str(ordinal))


def with_template(sts: Obj, revision: Obj) -> Obj:
    """The StatefulSet as it was at `revision` (ApplyRevision: its template put back)."""
    restored = copy.copy(sts)
    restored["spec"] = {**_spec(sts), "template": template_of(revision)}
    return restored


def new_pod(sts: Obj, ordinal: int, revision: str) -> Obj:
    """The pod of `ordinal` made from the set's template (newStatefulSetPod)."""
    template = _spec(sts).get("template") or {}
    tmeta = template.get("metadata") or {}
    name = pod_name(sts, ordinal)
    labels = {**(tmeta.get("labels") or {}), POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal),
              HASH_LABEL: revision}
    meta: Obj = {"name": name, "namespace": _meta(sts).get("namespace"), "labels": labels,
                 "ownerReferences": [controller_ref(sts, "apps/v1", "StatefulSet")]}
    for key in ("annotations", "finalizers"):
        if tmeta.get(key):
            meta[key] = jsonio.copy(tmeta[key])
    spec = jsonio.copy(template.get("spec") or {})
    spec["hostname"] = name
    if _spec(sts).get("serviceName"):
        spec["subdomain"] = _spec(sts)["serviceName"]
    volumes = spec.setdefault("volumes", [])
    have = {v.get("name") for v in volumes}
    for claim in _spec(sts).get("volumeClaimTemplates") or []:
        claim_name = _meta(claim).get("name")
        if claim_name and claim_name not in have:
            volumes.append({"name": claim_name, "emptyDir": {}})   # no storage in boxkube: see the module doc
    if not volumes:
        del spec["volumes"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


@dataclass
class _Revisions:
    current: Obj
    update: Obj
    collision_count: int


class StatefulSetController(Controller):
    name = "statefulset"

    def setup(self) -> None:
        self.sets = self.watch("statefulsets")
        self.pods = self.informers.informer("pods")
        add_pod_controller_index(self.pods.store)
        self.pods.add_event_handler(on_add=self._pod_changed, on_update=self._pod_updated,
                                    on_delete=self._pod_changed)
        self.history = RevisionHistory(self.client, self.informers.informer("controllerrevisions").store)
        self.pod_control = PodControl(self.client, self.recorder)
        self._warned_storage: set[str] = set()

    # -- event handlers ------------------------------------------------------------------

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if _meta(old).get("resourceVersion") == _meta(new).get("resourceVersion"):
            return
        self._pod_changed(new)
        if controller_of(old) != controller_of(new) or _meta(old).get("labels") != _meta(new).get("labels"):
            self._pod_changed(old)

    def _pod_changed(self, obj: Obj | DeletedFinalStateUnknown) -> None:
        pod = obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj
        namespace = _meta(pod).get("namespace") or ""
        ref = controller_of(pod)
        if ref is not None:
            if ref.get("kind") == "StatefulSet":
                self.queue.add(f"{namespace}/{ref['name']}")
            return
        # An orphan: the sets that may adopt it hear about it.
        labels = _meta(pod).get("labels") or {}
        for sts in self.sets.store.by_index(NAMESPACE_INDEX, namespace):
            try:
                selector = label_selector_from_object(_spec(sts).get("selector"))
            except SelectorError:
                continue
            if not selector.empty() and selector.matches(labels):
                self.enqueue(sts)

    # -- reconcile ------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        sts = self.sets.store.get(key)
        if sts is None:
            return
        selector = usable_selector(self.recorder, sts, "statefulset")
        if selector is None:
            return
        self._warn_about_storage(sts)
        pods = await self._claim_pods(sts, selector)
        ref = controller_ref(sts, "apps/v1", "StatefulSet")
        revisions = await self.history.claim(sts, ref, selector)
        chosen = await self._revisions(sts, ref, revisions)
        now = datetime.now(timezone.utc)
        status, replicas, condemned = await self._update(sts, chosen, pods, now)
        await self._write_status(sts, status)
        await self._truncate_history(sts, pods, revisions, chosen)
        wait = _next_availability_check(int(_spec(sts).get("minReadySeconds") or 0), replicas + condemned, now)
        if wait is not None:
            self.queue.add_after(key, wait)

    def _warn_about_storage(self, sts: Obj) -> None:
        uid = _meta(sts).get("uid", "")
        if _spec(sts).get("volumeClaimTemplates") and uid not in self._warned_storage:
            self._warned_storage.add(uid)
            self.recorder.event(sts, "Warning", "VolumeClaimTemplatesIgnored",
                                "boxkube has no storage: no PersistentVolumeClaims are made for volumeClaimTemplates; "
                                "pods get an emptyDir volume of each claim's name instead")

    async def _claim_pods(self, sts: Obj, selector: LabelSelector) -> list[Obj]:
        """Our pods after adopting orphans and releasing strays; only pods whose name makes them
        members of this set count (isMemberOf)."""
        name = _meta(sts)["name"]
        manager = ControllerRefManager(self.pod_control, sts, selector, controller_ref(sts, "apps/v1", "StatefulSet"),
                                       recheck_deletion(self.client, STATEFULSETS, sts))
        candidates = []
        for pod in pods_of(self.pods.store, sts):
            if parent_and_ordinal(pod)[0] == name:
                candidates.append(pod)
            elif controller_of(pod) is not None and not _meta(sts).get("deletionTimestamp"):
                await manager.release(pod)     # ours, but its name is not one of ours
        return await manager.claim_pods(candidates)

    async def _revisions(self, sts: Obj, ref: Obj, revisions: list[Obj]) -> _Revisions:
        """The current and update revisions, making or renumbering the update revision
        (getStatefulSetRevisions)."""
        status = sts.get("status") or {}
        collision_count = int(status.get("collisionCount") or 0)
        data = template_patch(sts)
        number = revision_number(revisions[-1]) + 1 if revisions else 1
        equal = [r for r in revisions if r.get("data") == data]
        if equal and equal[-1] is revisions[-1]:
            update = revisions[-1]
        elif equal:
            update = await self.history.renumber(equal[-1], number)   # back to an older template
        else:
            def make(count: int) -> Obj:
                hash_ = revision_hash(data, count)
                return new_revision(sts, ref, data, number, hash_, revision_name(_meta(sts)["name"], hash_))
            update, collision_count = await self.history.create(make, collision_count)
        current = next((r for r in revisions if _meta(r).get("name") == status.get("currentRevision")), update)
        return _Revisions(current, update, collision_count)

    async def _update(self, sts: Obj, chosen: _Revisions, pods: list[Obj],
                      now: datetime) -> tuple[Obj, list[Obj], list[Obj]]:
        """One step toward the wanted pods (updateStatefulSet); the status to record, the replicas
        (planned pods for missing ordinals included) and the condemned pods."""
        current_set, update_set = with_template(sts, chosen.current), with_template(sts, chosen.update)
        current_name, update_name = _meta(chosen.current)["name"], _meta(chosen.update)["name"]
        start, count = start_ordinal(sts), replicas_of(sts)
        min_ready = int(_spec(sts).get("minReadySeconds") or 0)
        slots: list[Obj | None] = [None] * count
        condemned = []
        for pod in pods:
            ordinal = ordinal_of(pod)
            if start <= ordinal < start + count:
                slots[ordinal - start] = pod
            elif ordinal >= 0:
                condemned.append(pod)
        replicas = [pod if pod is not None else self._versioned_pod(current_set, update_set, current_name,
                                                                    update_name, start + i)
                    for i, pod in enumerate(slots)]
        condemned.sort(key=ordinal_of, reverse=True)
        first_unavailable = next((p for p in replicas + condemned[::-1] if is_unavailable(p, min_ready, now)), None)

        def status() -> Obj:
            return self._status(sts, chosen, replicas + condemned, now)

        if _meta(sts).get("deletionTimestamp"):
            return status(), replicas, condemned
        monotonic = _spec(sts).get("podManagementPolicy") != "Parallel"
        for i in range(len(replicas)):
            if await self._process_replica(sts, current_set, update_set, current_name, update_name, monotonic,
                                           replicas, i, now) and monotonic:
                return status(), replicas, condemned
        for pod in condemned:
            if await self._process_condemned(sts, pod, first_unavailable, monotonic, min_ready, now) and monotonic:
                return status(), replicas, condemned
        if (_spec(sts).get("updateStrategy") or {}).get("type") == "OnDelete":
            return status(), replicas, condemned
        partition = int(((_spec(sts).get("updateStrategy") or {}).get("rollingUpdate") or {}).get("partition") or 0)
        # Replace the pod of the highest ordinal not at the update revision, one at a time.
        for target in range(len(replicas) - 1, partition - 1, -1):
            pod = replicas[target]
            if revision_of(pod) != update_name and not is_terminating(pod):
                await self._delete_pod(sts, pod)
                break
            if is_unavailable(pod, min_ready, now):
                break
        return status(), replicas, condemned

    def _versioned_pod(self, current_set: Obj, update_set: Obj, current: str, update: str, ordinal: int) -> Obj:
        """The pod to create for a missing ordinal: below the partition it stays at the current
        revision (newVersionedStatefulSetPod)."""
        strategy = _spec(current_set).get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            rolling = strategy.get("rollingUpdate")
            if rolling is None:
                keep_below = int((current_set.get("status") or {}).get("currentReplicas") or 0)
            else:
                keep_below = int(rolling.get("partition") or 0)
            if ordinal < start_ordinal(current_set) + keep_below:
                return new_pod(current_set, ordinal, current)
        return new_pod(update_set, ordinal, update)

    async def _process_replica(self, sts: Obj, current_set: Obj, update_set: Obj, current: str, update: str,
                               monotonic: bool, replicas: list[Obj], i: int, now: datetime) -> bool:
        """Work on the pod of one wanted ordinal; True when (in OrderedReady) nothing further may happen now."""
        pod = replicas[i]
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Failed", "Succeeded"):
            # A finished pod is replaced; its successor is made once it is gone.
            if not is_terminating(pod):
                self.recorder.event(sts, "Warning", "RecreatingFailedPod" if phase == "Failed" else
                                    "RecreatingTerminatedPod",
                                    f"StatefulSet {_meta(sts)['namespace']}/{_meta(sts)['name']} is recreating "
                                    f"{'failed' if phase == 'Failed' else 'terminated'} Pod {_meta(pod)['name']}")
                await self._delete_pod(sts, pod)
            return True
        if not is_created(pod):
            created = await self._create_pod(sts, pod)
            if created is not None:
                replicas[i] = created
            return True
        min_ready = int(_spec(sts).get("minReadySeconds") or 0)
        blocked = is_terminating(pod) or not running_and_available(pod, min_ready, now)
        if blocked and monotonic:
            return True
        if not identity_matches(sts, pod) and not is_terminating(pod):
            await self._fix_identity(sts, pod)
        return blocked

    async def _process_condemned(self, sts: Obj, pod: Obj, first_unavailable: Obj | None, monotonic: bool,
                                 min_ready: int, now: datetime) -> bool:
        """Scale down past one surplus pod; True when (in OrderedReady) nothing further may happen now."""
        if is_terminating(pod):
            return True
        if monotonic and pod is not first_unavailable and not running_and_available(pod, min_ready, now):
            return True     # only the first unhealthy pod may go while others are not ready
        await self._delete_pod(sts, pod)
        return True

    # -- pod writes, with upstream's events ------------------------------------------------

    async def _create_pod(self, sts: Obj, pod: Obj) -> Obj | None:
        name = _meta(pod)["name"]
        try:
            created = await self.client.create(PODS, pod, _meta(sts)["namespace"])
        except ApiError as e:
            if e.is_already_exists:
                return None      # our cache lags: the pod is there (or still going); wait for it
            self.recorder.event(sts, "Warning", "FailedCreate",
                                f"create Pod {name} in StatefulSet {_meta(sts)['name']} failed error: {e.message}")
            raise
        self.recorder.event(sts, "Normal", "SuccessfulCreate",
                            f"create Pod {name} in StatefulSet {_meta(sts)['name']} successful")
        return created

    async def _delete_pod(self, sts: Obj, pod: Obj) -> None:
        meta = _meta(pod)
        try:
            await self.client.delete(PODS, meta["name"], meta["namespace"], preconditions={"uid": meta["uid"]})
        except ApiError as e:
            if e.is_not_found or e.is_conflict:
                return           # gone already, or replaced: nothing of ours to delete
            self.recorder.event(sts, "Warning", "FailedDelete",
                                f"delete Pod {meta['name']} in StatefulSet {_meta(sts)['name']} failed error: "
                                f"{e.message}")
            raise
        self.recorder.event(sts, "Normal", "SuccessfulDelete",
                            f"delete Pod {meta['name']} in StatefulSet {_meta(sts)['name']} successful")

    async def _fix_identity(self, sts: Obj, pod: Obj) -> None:
        meta = _meta(pod)
        ordinal = ordinal_of(pod)
        patch = {"metadata": {"uid": meta["uid"], "labels": {POD_NAME_LABEL: meta["name"],
                                                             POD_INDEX_LABEL: str(ordinal)}}}
        try:
            await self.client.patch(PODS, meta["name"], patch, meta["namespace"], patch_type="strategic")
        except ApiError as e:
            if e.is_not_found or e.is_invalid:
                return
            self.recorder.event(sts, "Warning", "FailedUpdate",
                                f"update Pod {meta['name']} in StatefulSet {_meta(sts)['name']} failed error: "
                                f"{e.message}")
            raise
        self.recorder.event(sts, "Normal", "SuccessfulUpdate",
                            f"update Pod {meta['name']} in StatefulSet {_meta(sts)['name']} successful")

    # -- status and history ------------------------------------------------------------

    def _status(self, sts: Obj, chosen: _Revisions, pods: list[Obj], now: datetime) -> Obj:
        current, update = _meta(chosen.current)["name"], _meta(chosen.update)["name"]
        min_ready = int(_spec(sts).get("minReadySeconds") or 0)
        counts = {"replicas": 0, "readyReplicas": 0, "availableReplicas": 0, "currentReplicas": 0,
                  "updatedReplicas": 0}
        for pod in pods:
            created = is_created(pod)
            counts["replicas"] += created
            if running_and_ready(pod):
                counts["readyReplicas"] += 1
                counts["availableReplicas"] += running_and_available(pod, min_ready, now)
            if created and not is_terminating(pod):
                counts["currentReplicas"] += revision_of(pod) == current
                counts["updatedReplicas"] += revision_of(pod) == update
        status: Obj = {"observedGeneration": _meta(sts).get("generation"), **counts, "currentRevision": current,
                       "updateRevision": update, "collisionCount": chosen.collision_count}
        # A finished rolling update: the update revision is now the current one (completeRollingUpdate).
        wanted = replicas_of(sts)
        rolling = (_spec(sts).get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"
        if rolling and counts["updatedReplicas"] == counts["readyReplicas"] == counts["replicas"] == wanted:
            status["currentReplicas"], status["currentRevision"] = counts["updatedReplicas"], update
        return status

    async def _write_status(self, sts: Obj, status: Obj) -> None:
        old = sts.get("status") or {}
        if all(old.get(k) == v for k, v in status.items()):
            return
        meta = _meta(sts)
        try:
            await self.client.patch_status(STATEFULSETS, meta["name"], {"status": status}, meta["namespace"])
        except ApiError as e:
            if not e.is_not_found:
                raise

    async def _truncate_history(self, sts: Obj, pods: list[Obj], revisions: list[Obj], chosen: _Revisions) -> None:
        """Delete the oldest revisions no pod and neither status revision uses, beyond revisionHistoryLimit."""
        limit = _spec(sts).get("revisionHistoryLimit")
        limit = 10 if limit is None else int(limit)
        live = {_meta(chosen.current)["name"], _meta(chosen.update)["name"], *(revision_of(p) for p in pods)}
        history = [r for r in revisions if _meta(r)["name"] not in live]
        if limit < 0 or len(history) <= limit:
            return
        for revision in history[:len(history) - limit]:
            await self.history.delete(revision)


def _next_availability_check(min_ready_seconds: int, pods: list[Obj], now: datetime) -> float | None:
    """Seconds until the first ready pod becomes available, if one is waiting for minReadySeconds."""
    if min_ready_seconds <= 0:
        return None
    waits = []
    for pod in pods:
        if running_and_ready(pod) and not is_available(pod, min_ready_seconds, now):
            since = parse_time((condition(pod, "Ready") or {}).get("lastTransitionTime"))
            if since is not None:
                waits.append(max(0.0, min_ready_seconds - (now - since).total_seconds()) + 0.05)
    return min(waits) if waits else None

