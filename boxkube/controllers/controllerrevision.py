"""ControllerRevisions: the template history StatefulSets and DaemonSets keep (upstream pkg/controller/history
and the revision parts of the statefulset and daemon controllers).

A revision stores the owner's pod template as the patch that restores it,
`{"spec": {"template": {..., "$patch": "replace"}}}`, under a name made of the
owner's name and a hash. Two revisions are the same when their data is; a name
taken by different data is a hash collision, resolved by hashing again with a
higher `collisionCount` (which the owner keeps in its status). Revisions are
numbered; returning to an old template renumbers its revision as the newest
instead of making a copy (a rollback).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from boxkube.api import jsonio
from boxkube.apiserver.selectors import LabelSelector
from boxkube.client import ApiClient, ApiError, Store, resource
from boxkube.controllers.ownership import controller_of

log = logging.getLogger(__name__)

Obj = dict[str, Any]
REVISIONS = resource("controllerrevisions")

# The label a revision and the pods made from it carry (apps/v1 ControllerRevisionHashLabelKey).
HASH_LABEL = "controller-revision-hash"
REVISION_INDEX = "revisionControllerUID"

# rand.SafeEncodeString's alphabet: no vowels (no words), no look-alikes (0/o, 1/l, 3/e).
_SAFE = "bcdfghjklmnpqrstvwxz2456789"
# ControllerRevisionName keeps the owner part short enough for the hash to fit in a name.
_MAX_PREFIX = 223


def safe_encode(value: str) -> str:
    return "".join(_SAFE[ord(c) % len(_SAFE)] for c in value)


def _fnv32(data: bytes, variant_a: bool) -> int:
    h = 0x811C9DC5
    for byte in data:
        if variant_a:
            h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
        else:
            h = ((h * 0x01000193) & 0xFFFFFFFF) ^ byte
    return h


def canonical_json(value: Any) -> bytes:
    """The same bytes for the same JSON value, whatever the key order (Go marshals maps sorted)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _hash(data: bytes, collision_count: int | None, variant_a: bool) -> str:
    if collision_count is not None:
        data += str(collision_count).encode()
    return safe_encode(str(_fnv32(data, variant_a)))


def revision_hash(data: Obj, collision_count: int | None) -> str:
    """history.HashControllerRevision: the hash of a revision's data (StatefulSet revision names)."""
    return _hash(canonical_json(data), collision_count, variant_a=False)


def template_hash(template: Obj, collision_count: int | None) -> str:
    """controller.ComputeHash of a pod template (DaemonSet revision names and pod labels)."""
    return _hash(canonical_json(template), collision_count, variant_a=True)


def revision_name(prefix: str, hash_: str) -> str:
    return f"{prefix[:_MAX_PREFIX]}-{hash_}"


def template_patch(owner: Obj) -> Obj:
    """The revision data of an owner: the patch that puts its pod template back."""
    template = jsonio.copy((owner.get("spec") or {}).get("template") or {})
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def template_of(revision: Obj) -> Obj:
    """The pod template a revision restores."""
    template = dict(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


def revision_number(revision: Obj) -> int:
    return int(revision.get("revision") or 0)


def sort_revisions(revisions: list[Obj]) -> list[Obj]:
    """Oldest first: by number, then creation time, then name (history.SortControllerRevisions)."""
    def key(r: Obj) -> tuple[int, str, str]:
        meta = r.get("metadata") or {}
        return revision_number(r), meta.get("creationTimestamp") or "", meta.get("name", "")
    return sorted(revisions, key=key)


def new_revision(owner: Obj, controller_ref: Obj, data: Obj, number: int, hash_: str, name: str) -> Obj:
    """A ControllerRevision of `owner` (history.NewControllerRevision): the template's labels plus
    the hash label, the owner's annotations, and the controller reference."""
    meta = owner.get("metadata") or {}
    template_labels = (((owner.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
    revision_meta: Obj = {"name": name, "namespace": meta.get("namespace"),
                          "labels": {**template_labels, HASH_LABEL: hash_},
                          "ownerReferences": [dict(controller_ref)]}
    if meta.get("annotations"):
        revision_meta["annotations"] = dict(meta["annotations"])
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": revision_meta,
            "data": data, "revision": number}


# -- the informer side ---------------------------------------------------------------

def _index_by_controller(revision: Obj) -> list[str]:
    ref = controller_of(revision)
    if ref and ref.get("uid"):
        return [ref["uid"]]
    return [f"orphan/{(revision.get('metadata') or {}).get('namespace', '')}"]


def add_revision_index(store: Store) -> None:
    """Index the revision cache by controller (once: controllers share the informer)."""
    try:
        store.add_indexers({REVISION_INDEX: _index_by_controller})
    except ValueError:
        pass    # another controller on this informer added it already


class RevisionHistory:
    """The revisions of one kind of owner: reading them from the cache, and writing them."""

    def __init__(self, client: ApiClient, store: Store):
        self.client, self.store = client, store
        add_revision_index(store)

    async def claim(self, owner: Obj, controller_ref: Obj, selector: LabelSelector) -> list[Obj]:
        """The owner's revisions, oldest first, after adopting matching orphans and releasing owned
        revisions that no longer match (ControllerRevisionControllerRefManager)."""
        meta = owner["metadata"]
        owned = self.store.by_index(REVISION_INDEX, meta["uid"])
        orphans = self.store.by_index(REVISION_INDEX, f"orphan/{meta.get('namespace', '')}")
        claimed = []
        for revision in owned:
            labels = (revision.get("metadata") or {}).get("labels") or {}
            if selector.matches(labels):
                claimed.append(revision)
            elif not meta.get("deletionTimestamp"):
                await self._patch_owner(revision, {"$patch": "delete", "uid": meta["uid"]})
        if not meta.get("deletionTimestamp"):
            for revision in orphans:
                rmeta = revision.get("metadata") or {}
                if selector.matches(rmeta.get("labels") or {}) and not rmeta.get("deletionTimestamp"):
                    adopted = await self._patch_owner(revision, controller_ref)
                    if adopted is not None:
                        claimed.append(adopted)
        return sort_revisions(claimed)

    async def _patch_owner(self, revision: Obj, ref: Obj) -> Obj | None:
        meta = revision["metadata"]
        patch = {"metadata": {"ownerReferences": [ref], "uid": meta["uid"]}}
        try:
            return await self.client.patch(REVISIONS, meta["name"], patch, meta["namespace"], patch_type="strategic")
        except ApiError as e:
            if e.is_not_found or e.is_invalid:
                return None
            raise

    async def create(self, make: Callable[[int], Obj], collision_count: int) -> tuple[Obj, int]:
        """Create the revision `make(collision_count)` builds; on a name taken by other data, count
        a collision and try the next name. The revision (new, or the identical one already
        stored) and the collision count that named it."""
        while True:
            wanted = make(collision_count)
            namespace, name = wanted["metadata"]["namespace"], wanted["metadata"]["name"]
            try:
                return await self.client.create(REVISIONS, wanted, namespace), collision_count
            except ApiError as e:
                if not e.is_already_exists:
                    raise
            existing = await self.client.get(REVISIONS, name, namespace)
            if existing.get("data") == wanted["data"]:
                return existing, collision_count
            log.info("controllerrevision %s/%s: hash collision, collisionCount %d -> %d",
                     namespace, name, collision_count, collision_count + 1)
            collision_count += 1

    async def renumber(self, revision: Obj, number: int) -> Obj:
        """Make an old revision the newest (a rollback to its template)."""
        if revision_number(revision) == number:
            return revision
        meta = revision["metadata"]
        return await self.client.patch(REVISIONS, meta["name"], {"revision": number}, meta["namespace"])

    async def delete(self, revision: Obj) -> None:
        meta = revision["metadata"]
        try:
            await self.client.delete(REVISIONS, meta["name"], meta["namespace"],
                                     preconditions={"uid": meta["uid"]})
        except ApiError as e:
            if not e.is_not_found:
                raise
