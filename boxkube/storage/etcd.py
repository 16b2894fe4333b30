"""The etcd adapter: the only code in boxkube that talks to etcd.

Keys are strings (`/registry/pods/default/web`), values are bytes (the object's
JSON). A key's mod revision is the object's resourceVersion; a read's header
revision is a list's resourceVersion. Writes are transactions that compare the
revision the writer read, so a stale write fails instead of overwriting.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from urllib.parse import urlparse

import aetcd
import aetcd.exceptions
from aetcd import rpc

from boxkube.storage.errors import Compacted, KeyExists, KeyNotFound, RevisionConflict, Unavailable
from boxkube.storage.types import Event, EventType, KeyValue, Page

log = logging.getLogger(__name__)

_COMPACTED = "required revision has been compacted"


def prefix_end(prefix: bytes) -> bytes:
    """The first key after every key that starts with `prefix` (etcd's range_end for a prefix)."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


def _kv(kv) -> KeyValue:
    return KeyValue(kv.key.decode(), kv.value, kv.mod_revision, kv.create_revision)


class EtcdStore:
    """Async key-value storage on one etcd endpoint (`http://127.0.0.1:2379`)."""

    def __init__(self, endpoint: str, timeout: float = 10.0):
        url = urlparse(endpoint if "://" in endpoint else f"http://{endpoint}")
        self._client = aetcd.Client(host=url.hostname or "127.0.0.1", port=url.port or 2379, timeout=timeout)
        self._timeout = timeout
        self.compacted_revision = 0

    async def connect(self) -> None:
        await self._client.connect()

    async def close(self) -> None:
        await self._client.close()

    async def _call(self, method: str, request):
        """One KV RPC (`Range`, `Txn`, `Compact`), its errors mapped to storage errors."""
        await self._client.connect()
        try:
            return await getattr(self._client.kvstub, method)(request, timeout=self._timeout)
        except rpc.AioRpcError as e:
            if _COMPACTED in (e.details() or ""):
                raise Compacted(getattr(request, "revision", 0), self.compacted_revision) from e
            raise Unavailable(f"etcd: {e.details() or e.code()}") from e

    # -- reads ---------------------------------------------------------------

    async def revision(self) -> int:
        """The store's current revision."""
        resp = await self._call("Range", rpc.RangeRequest(key=b"\0", count_only=True, limit=1))
        return resp.header.revision

    async def get(self, key: str) -> KeyValue | None:
        resp = await self._call("Range", rpc.RangeRequest(key=key.encode()))
        return _kv(resp.kvs[0]) if resp.kvs else None

    async def list(self, prefix: str, *, start: str | None = None, limit: int = 0, revision: int = 0) -> Page:
        """Keys under `prefix` from `start` (inclusive) in key order, read at `revision` (0: now)."""
        p = prefix.encode()
        request = rpc.RangeRequest(key=start.encode() if start else p, range_end=prefix_end(p),
                                   limit=limit, revision=revision)
        resp = await self._call("Range", request)
        return Page([_kv(kv) for kv in resp.kvs], revision or resp.header.revision, resp.more)

    async def count(self, prefix: str) -> int:
        p = prefix.encode()
        resp = await self._call("Range",
                                rpc.RangeRequest(key=p, range_end=prefix_end(p), count_only=True))
        return resp.count

    # -- writes --------------------------------------------------------------

    async def _txn(self, key: bytes, compare: rpc.Compare, success: list[rpc.RequestOp]):
        request = rpc.TxnRequest(compare=[compare], success=success,
                                 failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=key))])
        return await self._call("Txn", request)

    async def create(self, key: str, value: bytes) -> int:
        """Store `value` only if `key` is absent; returns the new mod revision."""
        k = key.encode()
        resp = await self._txn(k, rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.CREATE, key=k, create_revision=0),
                               [rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=value))])
        if not resp.succeeded:
            raise KeyExists(key)
        return resp.header.revision

    async def update(self, key: str, value: bytes, expected_revision: int) -> int:
        """Replace `key` if its mod revision is still `expected_revision`; returns the new mod revision."""
        k = key.encode()
        resp = await self._txn(k, rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.MOD, key=k, mod_revision=expected_revision),
                               [rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=value))])
        if not resp.succeeded:
            raise self._failed(key, resp)
        return resp.header.revision

    async def delete(self, key: str, expected_revision: int) -> int:
        """Delete `key` if its mod revision is still `expected_revision`; returns the delete's revision."""
        k = key.encode()
        resp = await self._txn(k, rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.MOD, key=k, mod_revision=expected_revision),
                               [rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=k))])
        if not resp.succeeded:
            raise self._failed(key, resp)
        return resp.header.revision

    @staticmethod
    def _failed(key: str, resp) -> Exception:
        kvs = resp.responses[0].response_range.kvs
        if not kvs:
            return KeyNotFound(key)
        return RevisionConflict(key, _kv(kvs[0]))

    async def compact(self, revision: int) -> None:
        await self._call("Compact", rpc.CompactionRequest(revision=revision))
        self.compacted_revision = max(self.compacted_revision, revision)

    # -- watch ---------------------------------------------------------------

    async def watch(self, prefix: str, start_revision: int) -> AsyncIterator[Event]:
        """Every change under `prefix` from `start_revision` (inclusive), with previous values.

        Raises Compacted when `start_revision` is older than the last compaction.
        """
        p = prefix.encode()
        await self._client.connect()
        try:
            watch = await self._client.watch(p, range_end=prefix_end(p), start_revision=start_revision, prev_kv=True)
        except aetcd.exceptions.RevisionCompactedError as e:
            raise Compacted(start_revision, e.compacted_revision) from e
        except aetcd.exceptions.ClientError as e:
            raise Unavailable(f"etcd watch: {e}") from e
        try:
            async for ev in watch:
                kv = ev.kv
                prev = ev.prev_kv.value if ev.prev_kv is not None and ev.prev_kv.key else None
                if ev.kind == "DELETE":
                    yield Event(EventType.DELETE, kv.key.decode(), None, prev, kv.mod_revision)
                else:
                    yield Event(EventType.PUT, kv.key.decode(), kv.value, prev, kv.mod_revision,
                                created=kv.version == 1)
        except aetcd.exceptions.RevisionCompactedError as e:
            raise Compacted(start_revision, e.compacted_revision) from e
        except aetcd.exceptions.ClientError as e:
            raise Unavailable(f"etcd watch: {e}") from e
        finally:
            await asyncio.shield(watch.cancel())
