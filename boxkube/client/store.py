"""The informer's local cache: objects by `namespace/name` key, with indexes (client-go's Indexer).

An index maps a value (a namespace, a `key=value` label, a node name...) to the
keys of the objects an index function gives that value. Objects in the store
are shared with every reader: treat them as read-only (copy before changing).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
IndexFunc = Callable[[Obj], Iterable[str]]

NAMESPACE_INDEX = "namespace"
LABEL_INDEX = "label"


def object_key(obj: Obj) -> str:
    """`namespace/name`, or `name` for a cluster-scoped object (client-go's MetaNamespaceKeyFunc)."""
    meta = obj.get("metadata") or {}
    namespace, name = meta.get("namespace"), meta.get("name", "")
    return f"{namespace}/{name}" if namespace else name


def split_key(key: str) -> tuple[str | None, str]:
    """(namespace, name) of a key; namespace None for a cluster-scoped object."""
    namespace, sep, name = key.partition("/")
    return (namespace, name) if sep else (None, key)


def index_by_namespace(obj: Obj) -> list[str]:
    return [(obj.get("metadata") or {}).get("namespace") or ""]


def index_by_label(obj: Obj) -> list[str]:
    """One `key=value` per label: `store.by_index(LABEL_INDEX, "app=web")`."""
    return [f"{k}={v}" for k, v in ((obj.get("metadata") or {}).get("labels") or {}).items()]


@dataclass(frozen=True)
class DeletedFinalStateUnknown:
    """Given to delete handlers for an object found gone on a relist: its delete event was
    missed, so `obj` is the last state the informer saw, not the state it was deleted in."""
    key: str
    obj: Obj


class Store:
    """Objects by key, with indexes by namespace and by label and any added with `add_indexers`."""

    def __init__(self, indexers: Mapping[str, IndexFunc] | None = None):
        self._items: dict[str, Obj] = {}
        self._indexers: dict[str, IndexFunc] = {}
        self._indices: dict[str, dict[str, set[str]]] = {}
        self.add_indexers({NAMESPACE_INDEX: index_by_namespace, LABEL_INDEX: index_by_label, **(indexers or {})})

    def add_indexers(self, indexers: Mapping[str, IndexFunc]) -> None:
        """Add indexes (e.g. pods by spec.nodeName); they are built over the objects already here."""
        for name, func in indexers.items():
            if name in self._indexers:
                raise ValueError(f"index {name!r} already exists")
            self._indexers[name] = func
            self._indices[name] = {}
            for key, obj in self._items.items():
                self._index(name, key, obj)

    # -- writes (the informer's) ----------------------------------------------

    def upsert(self, obj: Obj) -> Obj | None:
        """Store `obj` under its key; the object it replaced, if any."""
        key = object_key(obj)
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
        self._items[key] = obj
        for name in self._indexers:
            self._index(name, key, obj)
        return old

    def delete(self, key: str) -> Obj | None:
        """Remove the object of `key`; it, if it was here."""
        old = self._items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def _index(self, name: str, key: str, obj: Obj) -> None:
        for value in self._indexers[name](obj):
            self._indices[name].setdefault(value, set()).add(key)

    def _unindex(self, key: str, obj: Obj) -> None:
        for name, func in self._indexers.items():
            index = self._indices[name]
            for value in func(obj):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]

    # -- reads ------------------------------------------------------------------

    def get(self, key: str) -> Obj | None:
        return self._items.get(key)

    def get_object(self, name: str, namespace: str | None = None) -> Obj | None:
        return self._items.get(f"{namespace}/{name}" if namespace else name)

    def list(self) -> list[Obj]:
        return list(self._items.values())

    def keys(self) -> list[str]:
        return list(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def index_keys(self, index: str, value: str) -> list[str]:
        return sorted(self._index_of(index).get(value, ()))

    def by_index(self, index: str, value: str) -> list[Obj]:
        """The objects whose index function gave `value`, in key order."""
        return [self._items[k] for k in self.index_keys(index, value)]

    def index_values(self, index: str) -> list[str]:
        return sorted(self._index_of(index))

    def _index_of(self, index: str) -> dict[str, set[str]]:
        if index not in self._indices:
            raise KeyError(f"index {index!r} does not exist")
        return self._indices[index]
