"""The values the storage interface hands out."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    mod_revision: int
    create_revision: int


@dataclass(frozen=True, slots=True)
class Page:
    items: list[KeyValue]
    revision: int      # the store revision the page was read at
    more: bool         # keys remain after the last item


class EventType(str, Enum):
    PUT = "PUT"
    DELETE = "DELETE"


@dataclass(frozen=True, slots=True)
class Event:
    type: EventType
    key: str
    value: bytes | None        # None for DELETE
    prev_value: bytes | None   # None for a create (or when etcd compacted it)
    revision: int              # mod revision of the change (the delete's revision for DELETE)
    created: bool = False      # a PUT that created the key
