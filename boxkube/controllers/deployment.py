"""The Deployment controller (upstream pkg/controller/deployment): a Deployment's pods come from
ReplicaSets it owns, one per pod template, named `<deployment>-<pod-template-hash>`.

A reconcile claims the ReplicaSets the Deployment's selector matches (adopting
orphans, releasing those that stopped matching), then does one of:

- deleted Deployment: only its status is brought up to date;
- paused, or spec.replicas changed (a "scaling event"): `sync` — sizes change,
  proportionally across the ReplicaSets of a rollout in progress, the
  template is not rolled out;
- RollingUpdate: grow the new ReplicaSet within replicas + maxSurge, shrink
  old ones while replicas - maxUnavailable stay available;
- Recreate: old ReplicaSets to zero, wait until their pods are gone, then the
  new one to full size.

Then the status: counts summed from the ReplicaSets' status, the Available
condition, and the Progressing condition that turns into
ProgressDeadlineExceeded when nothing moves for progressDeadlineSeconds. The
arithmetic lives in deployment_util (fields, annotations, conditions) and
deployment_rollout (sizes), free of I/O.
"""
from __future__ import annotations

from typing import Any

from boxkube.api import jsonio
from boxkube.apiserver import errors as api_errors
from boxkube.apiserver.selectors import LabelSelector, label_selector_from_object
from boxkube.client import NAMESPACE_INDEX, ApiError, DeletedFinalStateUnknown, resource
from boxkube.client.store import object_key
from boxkube.controllers import deployment_util as du
from boxkube.controllers.base import Controller
from boxkube.controllers.deployment_rollout import (
    Scale,
    history_to_delete,
    is_scaling_event,
    new_rs_new_replicas,
    reconcile_new_replica_set,
    reconcile_old_replica_sets,
    scale_plan,
    scaled,
)
from boxkube.controllers.ownership import controller_of, controller_ref
from boxkube.controllers.podcontrol import has_status_cause

Obj = dict[str, Any]
DEPLOYMENTS, REPLICASETS = resource("deployments"), resource("replicasets")


def _selector(d: Obj) -> LabelSelector | None:
    """The Deployment's selector; None when it is invalid (validation should have refused it)."""
    try:
        return label_selector_from_object(du.spec(d).get("selector"))
    except api_errors.APIError:
        return None


class DeploymentController(Controller):
    name = "deployment"
    workers = 5         # upstream --concurrent-deployment-syncs

    def setup(self) -> None:
        self.deployments = self.watch("deployments")
        self.replicasets = self.informers.informer("replicasets")
        self.replicasets.add_event_handler(on_add=self._rs_changed, on_update=self._rs_updated,
                                           on_delete=self._rs_changed)
        self.pods = self.informers.informer("pods")
        self.pods.add_event_handler(on_delete=self._pod_deleted)

    # -- who to wake up ----------------------------------------------------------------

    def _deployments_for(self, obj: Obj) -> list[str]:
        """The Deployment controlling `obj` (a ReplicaSet); for an orphan, every Deployment whose
        selector matches it (one of them may adopt it)."""
        namespace = du.meta(obj).get("namespace", "")
        ref = controller_of(obj)
        if ref is not None:
            d = self.deployments.store.get_object(ref.get("name", ""), namespace)
            return [object_key(d)] if ref.get("kind") == "Deployment" and d and du.uid(d) == ref.get("uid") else []
        labels = du.meta(obj).get("labels") or {}
        found = []
        for d in self.deployments.store.by_index(NAMESPACE_INDEX, namespace):
            selector = _selector(d)
            if selector is not None and not selector.empty() and selector.matches(labels):
                found.append(object_key(d))
        return found

    def _rs_changed(self, obj: Obj | DeletedFinalStateUnknown) -> None:
        rs = obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj
        for key in self._deployments_for(rs):
            self.queue.add(key)

    def _rs_updated(self, old: Obj, new: Obj) -> None:
        if du.meta(old).get("resourceVersion") == du.meta(new).get("resourceVersion"):
            return          # a resync: nothing changed
        keys = set(self._deployments_for(new))
        if controller_of(old) != controller_of(new) or du.meta(old).get("labels") != du.meta(new).get("labels"):
            keys.update(self._deployments_for(old))
        for key in keys:
            self.queue.add(key)

    def _pod_deleted(self, obj: Obj | DeletedFinalStateUnknown) -> None:
        """A Recreate rollout waits for the old pods to be gone: a pod's deletion may end that wait."""
        pod = obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj
        ref = controller_of(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.replicasets.store.get_object(ref.get("name", ""), du.meta(pod).get("namespace"))
        if rs is None:
            return
        for key in self._deployments_for(rs):
            d = self.deployments.store.get(key)
            if d is not None and du.is_recreate(d):
                self.queue.add(key)

    # -- the reconcile ----------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        cached = self.deployments.store.get(key)
        if cached is None:
            return
        d = jsonio.copy(cached)
        selector = _selector(d)
        if selector is None:
            self.log.warning("deployment %s has an invalid selector; not syncing it", key)
            return
        if selector.empty():
            await self._selecting_all(d)
            return
        rs_list = await self._claim_replica_sets(d, selector)
        if du.meta(d).get("deletionTimestamp"):
            await self._sync_status_only(d, rs_list)
            return
        d = await self._check_paused_conditions(d)
        if du.spec(d).get("paused"):
            await self._sync(d, rs_list)
            return
        new_rs, old_rss, d = await self._new_and_old(d, rs_list, create=False)
        rs_list = [*old_rss, new_rs] if new_rs is not None else old_rss     # as just written
        if is_scaling_event(d, new_rs, old_rss):
            await self._sync(d, rs_list)
        elif du.is_recreate(d):
            await self._rollout_recreate(d, rs_list)
        elif du.is_rolling_update(d):
            await self._rollout_rolling(d, rs_list)
        else:
            raise ValueError(f"unexpected deployment strategy type: {du.spec(d).get('strategy', {}).get('type')}")

    async def _selecting_all(self, d: Obj) -> None:
        """An empty selector would claim every pod of the namespace: refuse to act on it."""
        self.recorder.event(d, "Warning", "SelectingAll",
                            "This deployment is selecting all pods. A non-empty selector is required.")
        generation = du.meta(d).get("generation", 0)
        if du.status_count(d, "observedGeneration") < generation:
            d.setdefault("status", {})["observedGeneration"] = generation
            await self._write_status(d)

    # -- claiming ReplicaSets (ReplicaSetControllerRefManager) ------------------------------

    async def _claim_replica_sets(self, d: Obj, selector: LabelSelector) -> list[Obj]:
        namespace, owner_uid = du.meta(d)["namespace"], du.uid(d)
        deleting = bool(du.meta(d).get("deletionTimestamp"))
        claimed: list[Obj] = []
        adoption_checked = False
        for rs in self.replicasets.store.by_index(NAMESPACE_INDEX, namespace):
            ref, matches = controller_of(rs), selector.matches(du.meta(rs).get("labels") or {})
            if ref is not None:
                if ref.get("uid") != owner_uid:
                    continue
                if matches:
                    claimed.append(rs)
                elif not deleting:
                    await self._release(rs, owner_uid)
                continue
            if deleting or not matches or du.meta(rs).get("deletionTimestamp"):
                continue
            if not adoption_checked:
                await self._check_can_adopt(d)
                adoption_checked = True
            adopted = await self._adopt(d, rs)
            if adopted is not None:
                claimed.append(adopted)
        return claimed

    async def _check_can_adopt(self, d: Obj) -> None:
        """Re-read the Deployment before adopting: the cached one may already be deleted (RecheckDeletionTimestamp)."""
        fresh = await self.client.get(DEPLOYMENTS, du.meta(d)["name"], du.meta(d)["namespace"])
        if du.uid(fresh) != du.uid(d):
            raise RuntimeError(f"original Deployment {object_key(d)} is gone: got uid {du.uid(fresh)}, wanted {du.uid(d)}")
        if du.meta(fresh).get("deletionTimestamp"):
            raise RuntimeError(f"{object_key(d)} has just been deleted at {du.meta(fresh)['deletionTimestamp']}")

    async def _adopt(self, d: Obj, rs: Obj) -> Obj | None:
        # The uid in the patch makes it fail on a ReplicaSet recreated under the same name.
        patch = {"metadata": {"ownerReferences": [controller_ref(d, "apps/v1", "Deployment")], "uid": du.uid(rs)}}
        try:
            return await self.client.patch(REPLICASETS, du.meta(rs)["name"], patch, du.meta(rs)["namespace"],
                                           patch_type="strategic")
        except ApiError as e:
            if e.is_not_found:
                return None
            raise

    async def _release(self, rs: Obj, owner_uid: str) -> None:
        patch = {"metadata": {"ownerReferences": [{"$patch": "delete", "uid": owner_uid}], "uid": du.uid(rs)}}
        try:
            await self.client.patch(REPLICASETS, du.meta(rs)["name"], patch, du.meta(rs)["namespace"],
                                    patch_type="strategic")
        except ApiError as e:
            if not (e.is_not_found or e.is_invalid):    # gone, or not ours any more
                raise

    def _old_pods_running(self, d: Obj, new_rs: Obj | None, old_rss: list[Obj]) -> bool:
        """Whether an old ReplicaSet still reports pods or still has a pod that has not finished."""
        if du.total_status(old_rss, "replicas") > 0:
            return True
        old_uids = {du.uid(rs) for rs in old_rss} - {du.uid(new_rs)}
        for pod in self.pods.store.by_index(NAMESPACE_INDEX, du.meta(d)["namespace"]):
            ref = controller_of(pod)
            if ref is not None and ref.get("uid") in old_uids \
                    and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                return True
        return False

    # -- the new ReplicaSet and the revision -------------------------------------------------

    async def _new_and_old(self, d: Obj, rs_list: list[Obj], create: bool) -> tuple[Obj | None, list[Obj], Obj]:
        """(new ReplicaSet, old ReplicaSets, Deployment as last written): the new one's annotations
        and the Deployment's revision brought up to date, the new one made if `create`."""
        old_rss = du.find_old_replica_sets(d, rs_list)
        existing = du.find_new_replica_set(d, rs_list)
        new_revision = du.max_revision(old_rss) + 1
        if existing is not None:
            new_rs, d = await self._sync_new_replica_set(d, existing, new_revision)
            return new_rs, old_rss, d
        if not create:
            return None, old_rss, d
        new_rs, d = await self._create_new_replica_set(d, old_rss, new_revision)
        return new_rs, old_rss, d

    async def _sync_new_replica_set(self, d: Obj, existing: Obj, new_revision: int) -> tuple[Obj, Obj]:
        rs = jsonio.copy(existing)
        annotations_changed = du.set_new_replica_set_annotations(d, rs, new_revision, exists=True)
        min_ready = du.spec(d).get("minReadySeconds", 0)
        if annotations_changed or du.spec(rs).get("minReadySeconds", 0) != min_ready:
            rs["spec"]["minReadySeconds"] = min_ready
            return await self.client.replace(REPLICASETS, rs), d
        d = await self._set_revision(d, du.annotations(rs).get(du.REVISION, ""))
        if du.has_progress_deadline(d) and du.get_condition(du.status(d), du.PROGRESSING) is None:
            # Progress was not tracked before: count from the first time the new ReplicaSet is noticed.
            du.set_condition(d.setdefault("status", {}), du.new_condition(
                du.PROGRESSING, "True", du.FOUND_NEW_RS, f'Found new replica set "{du.meta(rs)["name"]}"'))
            d = await self._write_status(d)
        return rs, d

    def _new_replica_set(self, d: Obj, old_rss: list[Obj], new_revision: int) -> Obj:
        template = jsonio.copy(du.spec(d).get("template") or {})
        pod_hash = du.compute_hash(template, du.status(d).get("collisionCount"))
        labels = {**((template.get("metadata") or {}).get("labels") or {}), du.UNIQUE_LABEL: pod_hash}
        template.setdefault("metadata", {})["labels"] = labels
        selector = jsonio.copy(du.spec(d).get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), du.UNIQUE_LABEL: pod_hash}
        rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
              "metadata": {"name": f"{du.meta(d)['name']}-{pod_hash}", "namespace": du.meta(d)["namespace"],
                           "labels": dict(labels),
                           "ownerReferences": [controller_ref(d, "apps/v1", "Deployment")]},
              "spec": {"replicas": 0, "minReadySeconds": du.spec(d).get("minReadySeconds", 0),
                       "selector": selector, "template": template}}
        rs["spec"]["replicas"] = new_rs_new_replicas(d, [*old_rss, rs], rs)
        du.set_new_replica_set_annotations(d, rs, new_revision, exists=False)
        return rs

    async def _create_new_replica_set(self, d: Obj, old_rss: list[Obj], new_revision: int) -> tuple[Obj, Obj]:
        rs = self._new_replica_set(d, old_rss, new_revision)
        name = du.meta(rs)["name"]
        try:
            created = await self.client.create(REPLICASETS, rs, du.meta(d)["namespace"])
        except ApiError as e:
            if e.is_already_exists:
                return await self._existing_or_collision(d, rs, e), d
            if not has_status_cause(e, "NamespaceTerminating"):   # every later create would fail too
                await self._report_create_failure(d, f'Failed to create new replica set "{name}": {e.message}')
            raise
        if du.replicas(rs) > 0:
            self.recorder.event(d, "Normal", "ScalingReplicaSet",
                                f"Scaled up replica set {name} from 0 to {du.replicas(rs)}")
        d = await self._set_revision(d, str(new_revision))
        if du.has_progress_deadline(d):
            du.set_condition(d.setdefault("status", {}), du.new_condition(
                du.PROGRESSING, "True", du.NEW_REPLICA_SET, f'Created new replica set "{name}"'))
            d = await self._write_status(d)
        return created, d

    async def _existing_or_collision(self, d: Obj, rs: Obj, error: ApiError) -> Obj:
        """Our new ReplicaSet exists already (a lagging cache), or another object holds its name: a
        hash collision, resolved by bumping collisionCount so the next try hashes differently."""
        name, namespace = du.meta(rs)["name"], du.meta(d)["namespace"]
        found = self.replicasets.store.get_object(name, namespace) or await self.client.get(REPLICASETS, name, namespace)
        ref = controller_of(found)
        if ref is not None and ref.get("uid") == du.uid(d) \
                and du.equal_ignore_hash(du.spec(d).get("template") or {}, du.spec(found).get("template") or {}):
            return found
        st = d.setdefault("status", {})
        st["collisionCount"] = int(st.get("collisionCount") or 0) + 1
        await self._write_status(d)
        self.log.info("hash collision for deployment %s: collisionCount is now %d", object_key(d), st["collisionCount"])
        raise error

    async def _report_create_failure(self, d: Obj, message: str) -> None:
        if du.has_progress_deadline(d):
            du.set_condition(d.setdefault("status", {}),
                             du.new_condition(du.PROGRESSING, "False", du.FAILED_RS_CREATE, message))
            try:
                await self._write_status(d)
            except ApiError:
                pass            # the failure to create is the error worth reporting
        self.recorder.event(d, "Warning", du.FAILED_RS_CREATE, message)

    # -- writes -------------------------------------------------------------------------

    async def _set_revision(self, d: Obj, revision: str) -> Obj:
        """The Deployment's revision annotation follows its new ReplicaSet's. Upstream writes it with the
        status; boxkube's status subresource keeps metadata, so it is a metadata patch of its own."""
        if du.annotations(d).get(du.REVISION) == revision:
            return d
        patch = {"metadata": {"annotations": {du.REVISION: revision},
                              "resourceVersion": du.meta(d).get("resourceVersion")}}
        patched = await self.client.patch(DEPLOYMENTS, du.meta(d)["name"], patch, du.meta(d)["namespace"])
        return {**patched, "status": d.get("status") or {}}

    async def _write_status(self, d: Obj) -> Obj:
        written = await self.client.replace_status(DEPLOYMENTS, d)
        return {**written, "status": written.get("status") or {}}

    async def _scale(self, d: Obj, rs: Obj, size: int, always: bool = False) -> Obj:
        """Write a ReplicaSet's size with the replicas annotations; "Scaled up/down" event when the size moved."""
        old_size = du.replicas(rs)
        if old_size == size and not always:
            return rs
        annotations_stale = du.replicas_annotations_need_update(rs, du.replicas(d), du.replicas(d) + du.max_surge(d))
        if old_size == size and not annotations_stale:
            return rs
        written = await self.client.replace(REPLICASETS, scaled(rs, size, d))
        if old_size != size:
            direction = "up" if old_size < size else "down"
            self.recorder.event(d, "Normal", "ScalingReplicaSet",
                                f"Scaled {direction} replica set {du.meta(rs)['name']} from {old_size} to {size}")
        return written

    async def _apply(self, d: Obj, plan: list[Scale]) -> dict[str, Obj]:
        """Write a plan's steps in order (a ReplicaSet may appear twice); the ReplicaSets as written, by uid."""
        latest: dict[str, Obj] = {}
        for step in plan:
            rs = latest.get(du.uid(step.rs), step.rs)
            latest[du.uid(rs)] = await self._scale(d, rs, step.replicas, step.always)
        return latest

    # -- sync: scaling and paused Deployments (sync.go) -----------------------------------------

    async def _sync_status_only(self, d: Obj, rs_list: list[Obj]) -> None:
        new_rs, old_rss, d = await self._new_and_old(d, rs_list, create=False)
        await self._sync_deployment_status(d, [*old_rss, new_rs], new_rs)

    async def _sync(self, d: Obj, rs_list: list[Obj]) -> None:
        """Scale without rolling out: the paused Deployment, or one whose replicas changed."""
        new_rs, old_rss, d = await self._new_and_old(d, rs_list, create=False)
        written = await self._apply(d, scale_plan(d, new_rs, old_rss))
        new_rs = written.get(du.uid(new_rs), new_rs) if new_rs is not None else None
        old_rss = [written.get(du.uid(rs), rs) for rs in old_rss]
        if du.spec(d).get("paused"):
            await self._cleanup(d, old_rss)
        await self._sync_deployment_status(d, [*old_rss, new_rs], new_rs)

    async def _sync_deployment_status(self, d: Obj, all_rss: list[Obj | None], new_rs: Obj | None) -> None:
        new_status = du.calculate_status(all_rss, new_rs, d)
        if new_status != du.status(d):
            await self._write_status({**d, "status": new_status})

    async def _check_paused_conditions(self, d: Obj) -> Obj:
        """Progressing turns Unknown with DeploymentPaused / DeploymentResumed as the Deployment is
        paused or resumed (a reported deadline excess stays)."""
        if not du.has_progress_deadline(d):
            return d
        condition = du.get_condition(du.status(d), du.PROGRESSING)
        if condition is not None and condition.get("reason") == du.TIMED_OUT:
            return d
        paused_recorded = condition is not None and condition.get("reason") == du.PAUSED
        paused = bool(du.spec(d).get("paused"))
        if paused == paused_recorded:
            return d
        reason, message = (du.PAUSED, "Deployment is paused") if paused else (du.RESUMED, "Deployment is resumed")
        du.set_condition(d.setdefault("status", {}), du.new_condition(du.PROGRESSING, "Unknown", reason, message))
        return await self._write_status(d)

    async def _cleanup(self, d: Obj, old_rss: list[Obj]) -> None:
        """Delete the old ReplicaSets beyond revisionHistoryLimit."""
        for rs in history_to_delete(d, old_rss):
            self.log.debug("deleting old replica set %s of %s", du.meta(rs)["name"], object_key(d))
            try:
                await self.client.delete(REPLICASETS, du.meta(rs)["name"], du.meta(rs)["namespace"])
            except ApiError as e:
                if not e.is_not_found:
                    raise

    # -- rollouts -------------------------------------------------------------------------------

    async def _rollout_rolling(self, d: Obj, rs_list: list[Obj]) -> None:
        """One step of a rolling update: scale up the new ReplicaSet if possible, else scale down old ones."""
        new_rs, old_rss, d = await self._new_and_old(d, rs_list, create=True)
        all_rss = [*old_rss, new_rs]
        target = reconcile_new_replica_set(d, all_rss, new_rs)
        if target != du.replicas(new_rs):
            new_rs = await self._scale(d, new_rs, target)
            await self._sync_rollout_status(d, [*old_rss, new_rs], new_rs)
            return
        plan = reconcile_old_replica_sets(d, all_rss, du.active(old_rss), new_rs)
        if plan:
            written = await self._apply(d, plan)
            old_rss = [written.get(du.uid(rs), rs) for rs in old_rss]
            await self._sync_rollout_status(d, [*old_rss, new_rs], new_rs)
            return
        if du.deployment_complete(d, du.status(d)):
            await self._cleanup(d, old_rss)
        await self._sync_rollout_status(d, all_rss, new_rs)

    async def _rollout_recreate(self, d: Obj, rs_list: list[Obj]) -> None:
        """Old ReplicaSets to zero; once none of their pods runs, the new ReplicaSet to full size."""
        new_rs, old_rss, d = await self._new_and_old(d, rs_list, create=False)
        plan = [Scale(rs, 0) for rs in du.active(old_rss)]
        if plan:
            written = await self._apply(d, plan)
            old_rss = [written.get(du.uid(rs), rs) for rs in old_rss]
            await self._sync_rollout_status(d, [*old_rss, new_rs], new_rs)
            return
        if self._old_pods_running(d, new_rs, old_rss):
            await self._sync_rollout_status(d, [*old_rss, new_rs], new_rs)
            return
        if new_rs is None:
            new_rs, old_rss, d = await self._new_and_old(d, rs_list, create=True)
        new_rs = await self._scale(d, new_rs, du.replicas(d))
        if du.deployment_complete(d, du.status(d)):
            await self._cleanup(d, old_rss)
        await self._sync_rollout_status(d, [*old_rss, new_rs], new_rs)

    async def _sync_rollout_status(self, d: Obj, all_rss: list[Obj | None], new_rs: Obj | None) -> None:
        """Write the status with progress estimated; when nothing changed, come back when the
        progress deadline would pass."""
        new_status = du.rollout_status(all_rss, new_rs, d)
        if new_status != du.status(d):
            await self._write_status({**d, "status": new_status})
            return
        delay = du.progress_check_delay(d, new_status)
        if delay is None:
            return
        key = object_key(d)
        if delay < 1:
            self.queue.add_rate_limited(key)
        else:
            self.queue.add_after(key, delay + 1)   # a second more, against clock skew in the delay
