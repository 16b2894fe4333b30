"""The garbage collector: ownerReferences carried out (pkg/controller/garbagecollector).

It watches every served resource that can be listed, watched and deleted
(events aside, as upstream) and keeps a graph of uid -> owners and dependents.
Its queue holds uids; one reconcile looks at one object:

- an object whose owners are all gone — deleted, or never there with that uid
  (a dangling reference) — is deleted, with the propagation its own finalizers
  ask for (background otherwise); an object that keeps one live owner only
  loses its references to the gone ones;
- an owner deleted with `propagationPolicy: Orphan` carries the `orphan`
  finalizer: its dependents lose their references to it, then the finalizer goes;
- an owner deleted with `Foreground` carries `foregroundDeletion`: its
  dependents are deleted (in the foreground themselves when they have
  dependents of their own), and once none with `blockOwnerDeletion` is left the
  finalizer goes and with it the owner;
- with `Background` the owner goes at once and its dependents follow as above.

Decisions are made on the live object and live lookups of its owners, as
upstream's attemptToDeleteItem does; the informers' caches only say which
objects to look at and skip the lookups for owners known to be alive.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from boxkube.client import ApiError, DeletedFinalStateUnknown, ResourceType
from boxkube.client.resources import RESOURCES
from boxkube.controllers.base import Controller

Obj = dict[str, Any]

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
# Upstream's garbage collector leaves Events alone: they are many and own nothing.
_IGNORED = {("", "events"), ("events.k8s.io", "events")}
_ABSENT_CACHE_SIZE = 500        # upstream's absentOwnerCache
_FINALIZER_RETRIES = 5


def collectable(rt: ResourceType) -> bool:
    return {"delete", "list", "watch"} <= set(rt.verbs) and (rt.group, rt.plural) not in _IGNORED


def _by_kind(api_version: str, kind: str) -> ResourceType | None:
    """The served resource of an ownerReference (any version of the group: the object is the same)."""
    group = api_version.rpartition("/")[0] if "/" in api_version else ""
    return next((rt for rt in RESOURCES if rt.group == group and rt.kind == kind), None)


@dataclass
class Node:
    """One object of the graph; virtual (obj None) when known only as someone's owner, or already gone."""
    uid: str
    rt: ResourceType | None
    name: str
    namespace: str | None
    obj: Obj | None = None
    dependents: set[str] = field(default_factory=set)

    @property
    def owners(self) -> list[Obj]:
        return ((self.obj or {}).get("metadata") or {}).get("ownerReferences") or []

    @property
    def deleting_dependents(self) -> bool:
        meta = (self.obj or {}).get("metadata") or {}
        return bool(meta.get("deletionTimestamp")) and FOREGROUND in (meta.get("finalizers") or [])

    def __str__(self) -> str:
        kind = self.rt.kind if self.rt else "?"
        return f"{kind} {self.namespace}/{self.name} ({self.uid})" if self.namespace else f"{kind} {self.name} ({self.uid})"


def _gc_finalizer(obj: Obj) -> bool:
    meta = obj.get("metadata") or {}
    return bool(meta.get("deletionTimestamp")) and bool({ORPHAN, FOREGROUND} & set(meta.get("finalizers") or []))


class GarbageCollector(Controller):
    name = "garbagecollector"
    workers = 4

    def setup(self) -> None:
        self.graph: dict[str, Node] = {}
        # Owner uids known not to exist: spares a lookup per dependent of a deleted owner.
        self.absent: OrderedDict[str, None] = OrderedDict()
        for rt in RESOURCES:
            if collectable(rt):
                informer = self.informers.informer(rt)
                informer.add_event_handler(on_add=lambda obj, rt=rt: self._observed(rt, obj),
                                           on_update=lambda old, new, rt=rt: self._updated(rt, old, new),
                                           on_delete=self._gone)

    # -- the graph, from informer events --------------------------------------------

    def _updated(self, rt: ResourceType, old: Obj, new: Obj) -> None:
        if (old.get("metadata") or {}).get("uid") != (new.get("metadata") or {}).get("uid"):
            self._gone(old)            # replaced by a namesake while the informer was not watching
        self._observed(rt, new)

    def _observed(self, rt: ResourceType, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        uid = meta.get("uid")
        if not uid:
            return
        node = self.graph.get(uid)
        before = {r.get("uid") for r in node.owners} if node else set()
        if node is None:
            node = self.graph[uid] = Node(uid, rt, meta.get("name", ""), meta.get("namespace"))
        node.rt, node.name, node.namespace, node.obj = rt, meta.get("name", ""), meta.get("namespace"), obj
        self.absent.pop(uid, None)
        owners = node.owners
        after = {r.get("uid") for r in owners}
        for gone in before - after:
            self._unlink(gone, uid)
        for ref in owners:
            owner = self.graph.get(ref.get("uid"))
            if owner is None:
                owner_rt = _by_kind(ref.get("apiVersion", ""), ref.get("kind", ""))
                namespace = node.namespace if owner_rt is None or owner_rt.namespaced else None
                owner = self.graph[ref["uid"]] = Node(ref["uid"], owner_rt, ref.get("name", ""), namespace)
            owner.dependents.add(uid)
            if owner.obj is None or (owner.obj.get("metadata") or {}).get("deletionTimestamp"):
                self.queue.add(uid)           # an owner unknown, gone or going: is it still wanted?
            if owner.deleting_dependents:
                self.queue.add(owner.uid)     # its blocking dependents may have changed
        if _gc_finalizer(obj):
            self.queue.add(uid)

    def _gone(self, obj: Obj | DeletedFinalStateUnknown) -> None:
        obj = obj.obj if isinstance(obj, DeletedFinalStateUnknown) else obj
        uid = (obj.get("metadata") or {}).get("uid")
        node = self.graph.get(uid or "")
        if node is None:
            return
        self._mark_absent(uid)
        for ref in node.owners:
            self._unlink(ref.get("uid"), uid)
        node.obj = None
        if node.dependents:
            for dependent in node.dependents:
                self.queue.add(dependent)
        else:
            del self.graph[uid]

    def _unlink(self, owner_uid: str | None, dependent: str) -> None:
        owner = self.graph.get(owner_uid or "")
        if owner is None:
            return
        owner.dependents.discard(dependent)
        if owner.obj is None and not owner.dependents:
            del self.graph[owner.uid]
        elif owner.deleting_dependents:
            self.queue.add(owner.uid)         # perhaps the last dependent it waited for

    def _mark_absent(self, uid: str) -> None:
        self.absent[uid] = None
        self.absent.move_to_end(uid)
        while len(self.absent) > _ABSENT_CACHE_SIZE:
            self.absent.popitem(last=False)

    # -- reconcile ------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        node = self.graph.get(key)
        if node is None:
            return
        if node.obj is None:
            await self._check_virtual(node)
            return
        meta = node.obj.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            if _gc_finalizer(node.obj):
                await self._finish_deletion(node)
            return
        if not node.owners or self._owners_alive(node):
            return
        await self._collect(node)

    def _owners_alive(self, node: Node) -> bool:
        """Every owner is in the cache with its uid and not being deleted: nothing to look up."""
        for ref in node.owners:
            owner = self.graph.get(ref.get("uid"))
            if owner is None or owner.obj is None or (owner.obj.get("metadata") or {}).get("deletionTimestamp"):
                return False
        return True

    async def _check_virtual(self, node: Node) -> None:
        """An owner only known from references: if it does not exist, its dependents are orphans."""
        if not node.dependents:
            self.graph.pop(node.uid, None)
            return
        if node.rt is None:
            return          # of a kind this server does not serve: it cannot be checked, so it is trusted
        if node.uid not in self.absent and await self._lookup(node.rt, node.namespace, node.name, node.uid) is not None:
            return          # it exists: its informer will bring it
        for dependent in node.dependents:
            self.queue.add(dependent)

    async def _lookup(self, rt: ResourceType, namespace: str | None, name: str, uid: str) -> Obj | None:
        """The live object with this uid, None if there is none (remembered as absent)."""
        try:
            obj = await self.client.get(rt, name, namespace if rt.namespaced else None)
        except ApiError as e:
            if not e.is_not_found:
                raise
            obj = None
        if obj is None or (obj.get("metadata") or {}).get("uid") != uid:
            self._mark_absent(uid)
            return None
        return obj

    async def _latest(self, node: Node) -> Obj | None:
        """The live object of `node`; None (and the node treated as deleted) if it is gone or was replaced."""
        obj = await self._lookup(node.rt, node.namespace, node.name, node.uid)
        if obj is None and node.obj is not None:
            self._gone(node.obj)
        return obj

    async def _classify(self, node: Node, owners: list[Obj]) -> tuple[list[Obj], list[Obj], list[Obj]]:
        """(solid, dangling, waiting): owners alive, owners that do not exist, owners being deleted in
        the foreground (waiting for their dependents to go)."""
        solid, dangling, waiting = [], [], []
        for ref in owners:
            uid = ref.get("uid", "")
            owner_rt = _by_kind(ref.get("apiVersion", ""), ref.get("kind", ""))
            if owner_rt is None:
                # An owner of a kind this server does not serve cannot be checked: never collect for it.
                self.log.debug("%s: owner %s/%s of unknown kind kept", node, ref.get("apiVersion"), ref.get("kind"))
                solid.append(ref)
                continue
            if owner_rt.namespaced and not node.namespace:
                # A cluster-scoped object cannot be owned by a namespaced one: the reference leads nowhere.
                dangling.append(ref)
                continue
            if uid in self.absent:
                dangling.append(ref)
                continue
            cached = self.graph.get(uid)
            owner = cached.obj if cached is not None else None
            if owner is None:
                owner = await self._lookup(owner_rt, node.namespace, ref.get("name", ""), uid)
            if owner is None:
                dangling.append(ref)
            elif (owner.get("metadata") or {}).get("deletionTimestamp") and \
                    FOREGROUND in ((owner.get("metadata") or {}).get("finalizers") or []):
                waiting.append(ref)
            else:
                solid.append(ref)
        return solid, dangling, waiting

    async def _collect(self, node: Node) -> None:
        """attemptToDeleteItem for an object some of whose owners are gone or going."""
        latest = await self._latest(node)
        if latest is None:
            return
        meta = latest["metadata"]
        owners = meta.get("ownerReferences") or []
        if not owners or meta.get("deletionTimestamp"):
            return
        solid, dangling, waiting = await self._classify(node, owners)
        if solid:
            if dangling or waiting:
                # A live owner keeps it: only the references to the others go.
                gone = [r["uid"] for r in dangling + waiting]
                self.log.info("%s: removing references to owners %s", node, ", ".join(gone))
                await self._patch_refs(node, [{"$patch": "delete", "uid": u} for u in gone])
            return
        if waiting and node.dependents:
            if any(self.graph[d].deleting_dependents for d in node.dependents if d in self.graph):
                # Owner and dependent each waiting for the other: let the owner go first.
                blocking = [r for r in owners if r.get("blockOwnerDeletion")]
                if blocking:
                    await self._patch_refs(node, [{"uid": r["uid"], "blockOwnerDeletion": False} for r in blocking])
            policy = "Foreground"
        else:
            finalizers = meta.get("finalizers") or []
            policy = "Orphan" if ORPHAN in finalizers else "Foreground" if FOREGROUND in finalizers else "Background"
        self.log.info("%s: deleting (owners gone or going: %s; propagation %s)", node,
                      ", ".join(r.get("uid", "") for r in dangling + waiting), policy)
        try:
            await self.client.delete(node.rt, node.name, node.namespace, propagation_policy=policy,
                                     preconditions={"uid": node.uid})
        except ApiError as e:
            if not (e.is_not_found or e.is_conflict):   # gone already, or another object by now
                raise

    async def _patch_refs(self, node: Node, refs: list[Obj]) -> None:
        # A strategic merge on ownerReferences by uid touches only these; the uid makes it a precondition.
        patch = {"metadata": {"ownerReferences": refs, "uid": node.uid}}
        try:
            await self.client.patch(node.rt, node.name, patch, node.namespace, patch_type="strategic")
        except ApiError as e:
            if not e.is_not_found:
                raise

    # -- owners being deleted with a policy -------------------------------------------

    async def _finish_deletion(self, node: Node) -> None:
        finalizers = node.obj["metadata"].get("finalizers") or []
        if ORPHAN in finalizers:
            for uid in list(node.dependents):
                dependent = self.graph.get(uid)
                if dependent is not None and dependent.obj is not None:
                    self.log.info("%s: orphaning %s", node, dependent)
                    await self._patch_refs(dependent, [{"$patch": "delete", "uid": node.uid}])
            await self._remove_finalizer(node, ORPHAN)
        elif FOREGROUND in finalizers:
            await self._delete_dependents_first(node)

    async def _delete_dependents_first(self, node: Node) -> None:
        """processDeletingDependentsItem: the owner goes once no dependent blocking it is left."""
        blocking = []
        for uid in node.dependents:
            dependent = self.graph.get(uid)
            if dependent is None or dependent.obj is None:
                continue
            if any(r.get("uid") == node.uid and r.get("blockOwnerDeletion") for r in dependent.owners):
                blocking.append(dependent)
            if not dependent.obj["metadata"].get("deletionTimestamp"):
                self.queue.add(uid)       # to be deleted (a dependent already going needs nothing more)
        if not blocking:
            await self._remove_finalizer(node, FOREGROUND)
        else:
            self.log.debug("%s: waiting for %d dependents", node, len(blocking))

    async def _remove_finalizer(self, node: Node, finalizer: str) -> None:
        for _ in range(_FINALIZER_RETRIES):
            latest = await self._latest(node)
            if latest is None:
                return
            finalizers = latest["metadata"].get("finalizers") or []
            if finalizer not in finalizers:
                return
            patch = {"metadata": {"finalizers": [f for f in finalizers if f != finalizer],
                                  "resourceVersion": latest["metadata"]["resourceVersion"]}}
            try:
                await self.client.patch(node.rt, node.name, patch, node.namespace)
            except ApiError as e:
                if e.is_not_found:
                    return
                if not e.is_conflict:
                    raise
                continue
            self.log.info("%s: removed the %s finalizer", node, finalizer)
            return
        raise RuntimeError(f"{node}: could not remove the {finalizer} finalizer (conflicts)")
