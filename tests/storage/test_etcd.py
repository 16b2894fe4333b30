"""The etcd adapter against a real etcd: transactions, revisions, watch, compaction."""
from __future__ import annotations

import asyncio
import uuid

import pytest

from boxkube.storage.errors import Compacted, KeyExists, KeyNotFound, RevisionConflict
from boxkube.storage.etcd import EtcdStore
from boxkube.storage.types import EventType


@pytest.fixture
async def store(etcd_url):
    s = EtcdStore(etcd_url)
    yield s
    await s.close()


@pytest.fixture
def prefix():
    return f"/registry/test-{uuid.uuid4().hex[:8]}/"


async def test_create_only_if_absent(store, prefix):
    rev = await store.create(prefix + "a", b"1")
    with pytest.raises(KeyExists):
        await store.create(prefix + "a", b"2")
    kv = await store.get(prefix + "a")
    assert (kv.value, kv.mod_revision, kv.create_revision) == (b"1", rev, rev)


async def test_update_compares_revision(store, prefix):
    rev = await store.create(prefix + "a", b"1")
    rev2 = await store.update(prefix + "a", b"2", rev)
    assert rev2 > rev
    with pytest.raises(RevisionConflict) as e:
        await store.update(prefix + "a", b"3", rev)     # stale: written by someone else since
    assert e.value.current.value == b"2" and e.value.current.mod_revision == rev2
    assert (await store.get(prefix + "a")).value == b"2"
    with pytest.raises(KeyNotFound):
        await store.update(prefix + "missing", b"x", 1)


async def test_delete_compares_revision(store, prefix):
    rev = await store.create(prefix + "a", b"1")
    await store.update(prefix + "a", b"2", rev)
    with pytest.raises(RevisionConflict):
        await store.delete(prefix + "a", rev)
    assert await store.get(prefix + "a") is not None
    current = await store.get(prefix + "a")
    await store.delete(prefix + "a", current.mod_revision)
    assert await store.get(prefix + "a") is None


async def test_list_pages_at_one_revision(store, prefix):
    for i in range(5):
        await store.create(f"{prefix}{i}", str(i).encode())
    first = await store.list(prefix, limit=2)
    assert [kv.value for kv in first.items] == [b"0", b"1"] and first.more
    await store.create(prefix + "9", b"9")           # after the first page: not in a list at its revision
    rest = await store.list(prefix, start=first.items[-1].key + "\0", revision=first.revision)
    assert [kv.value for kv in rest.items] == [b"2", b"3", b"4"] and not rest.more
    assert len((await store.list(prefix)).items) == 6


async def test_watch_from_revision_with_previous_values(store, prefix):
    rev = await store.create(prefix + "a", b"1")
    rev2 = await store.update(prefix + "a", b"2", rev)
    await store.delete(prefix + "a", rev2)
    seen = []
    async for ev in store.watch(prefix, rev):
        seen.append(ev)
        if len(seen) == 3:
            break
    assert [(e.type, e.value, e.prev_value, e.created) for e in seen] == [
        (EventType.PUT, b"1", None, True),
        (EventType.PUT, b"2", b"1", False),
        (EventType.DELETE, None, b"2", False),
    ]
    assert [e.revision for e in seen][:2] == [rev, rev2]


async def test_compacted_revision_is_refused(store, prefix):
    rev = await store.create(prefix + "a", b"1")
    await store.update(prefix + "a", b"2", rev)
    await store.compact(await store.revision())
    with pytest.raises(Compacted):
        await store.list(prefix, revision=rev)
    with pytest.raises(Compacted):
        async for _ in store.watch(prefix, rev):
            pass


async def test_concurrent_creates_of_one_key_admit_exactly_one(store, prefix):
    results = await asyncio.gather(*(store.create(prefix + "x", str(i).encode()) for i in range(20)),
                                   return_exceptions=True)
    assert sum(1 for r in results if isinstance(r, int)) == 1
    assert all(isinstance(r, KeyExists) for r in results if not isinstance(r, int))
