"""Storage-level failures; the API server maps them to Kubernetes Status errors."""
from __future__ import annotations

from boxkube.storage.types import KeyValue


class StorageError(Exception):
    pass


class KeyExists(StorageError):
    def __init__(self, key: str):
        super().__init__(f"key exists: {key}")
        self.key = key


class KeyNotFound(StorageError):
    def __init__(self, key: str):
        super().__init__(f"key not found: {key}")
        self.key = key


class RevisionConflict(StorageError):
    """The key's mod revision is not the one the writer read (or the key is gone)."""

    def __init__(self, key: str, current: KeyValue | None):
        super().__init__(f"revision conflict on {key}")
        self.key = key
        self.current = current


class Compacted(StorageError):
    """A read or watch asked for a revision that compaction already removed."""

    def __init__(self, requested: int, compacted: int):
        super().__init__(f"required revision {requested} has been compacted (compacted revision {compacted})")
        self.requested = requested
        self.compacted = compacted


class Unavailable(StorageError):
    pass


