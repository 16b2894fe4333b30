"""One etcd watch for the whole registry, fanned out to every API watch.

Like kube-apiserver's watch cache: each change is decoded once and kept in a
window of recent events, so a watch from a recent resourceVersion is served
from memory and 100 watchers cost one etcd watch. A watch from a revision
older than the window goes to etcd itself (which answers 410 when the
revision was compacted).
"""
from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass, field
from typing import Any

from boxkube.api import jsonio
from boxkube.storage.errors import Compacted
from boxkube.storage.etcd import EtcdStore
from boxkube.storage.types import Event, EventType

log = logging.getLogger(__name__)

REGISTRY_PREFIX = "/registry/"


def decode(value: bytes, revision: int) -> dict[str, Any]:
    """An object as stored, with its resourceVersion (the etcd revision) filled in."""
    obj = jsonio.loads(value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(revision)
    return obj


@dataclass(slots=True)
class Change:
    """A decoded storage event. `obj` is the object after the change (for DELETE:
    the last state, stamped with the delete's revision); `prev` the one before."""
    type: EventType
    key: str
    revision: int
    obj: dict[str, Any]
    prev: dict[str, Any] | None
    created: bool
    _encoded: dict[str, bytes] = field(default_factory=dict)

    def encoded(self, watch_type: str, obj: dict[str, Any] | None = None) -> bytes:
        """`{"type":..,"object":..}\\n`, serialized once per type and shared by every watcher."""
        if obj is not None:
            return jsonio.dumps({"type": watch_type, "object": obj}) + b"\n"
        line = self._encoded.get(watch_type)
        if line is None:
            line = jsonio.dumps({"type": watch_type, "object": self.obj}) + b"\n"
            self._encoded[watch_type] = line
        return line


def to_change(ev: Event) -> Change:
    prev = decode(ev.prev_value, ev.revision) if ev.prev_value is not None else None
    if ev.type is EventType.DELETE:
        obj = prev if prev is not None else {"metadata": {"resourceVersion": str(ev.revision)}}
        return Change(ev.type, ev.key, ev.revision, obj, prev, False)
    if prev is not None:
        # prev carried the new revision from decode(); restore the revision it had.
        prev["metadata"]["resourceVersion"] = str(ev.revision)
    return Change(ev.type, ev.key, ev.revision, decode(ev.value, ev.revision), prev, ev.created)


class Subscription:
    """The changes under one key prefix after a revision, in revision order."""

    def __init__(self, cache: "WatchCache", prefix: str, after: int, max_queue: int):
        self.prefix = prefix
        self.after = after
        self.revision = after          # every change up to here has been handed out
        self._cache = cache
        self._queue: asyncio.Queue[Change | BaseException | None] = asyncio.Queue()
        self._max_queue = max_queue
        self.feeder: asyncio.Task | None = None   # set when fed by an etcd watch of its own

    def offer(self, change: Change) -> None:
        if change.revision <= self.after or not change.key.startswith(self.prefix):
            return
        if self._queue.qsize() >= self._max_queue:
            # A watcher this far behind is closed, as upstream does; the client re-watches.
            self._queue.put_nowait(None)
            self._cache.unsubscribe(self)
            return
        self._queue.put_nowait(change)

    def fail(self, error: BaseException) -> None:
        self._queue.put_nowait(error)

    async def next(self, timeout: float | None) -> Change | None:
        """The next change, or None when `timeout` passes with nothing new (a bookmark moment)."""
        try:
            async with asyncio.timeout(timeout):
                item = await self._queue.get()
        except TimeoutError:
            if self._queue.empty() and self.feeder is None:
                self.revision = max(self.revision, self._cache.revision)
            return None
        if item is None:
            raise EOFError("watch closed")
        if isinstance(item, BaseException):
            raise item
        self.revision = item.revision
        return item

    def close(self) -> None:
        self._cache.unsubscribe(self)
        if self.feeder:
            self.feeder.cancel()


class WatchCache:
    def __init__(self, store: EtcdStore, capacity: int = 20000, max_queue: int = 50000):
        self._store = store
        self._events: collections.deque[Change] = collections.deque(maxlen=capacity)
        self._subs: set[Subscription] = set()
        self._max_queue = max_queue
        self.revision = 0        # the newest revision the cache has seen
        self._oldest = 0         # the cache holds every change after this revision
        self._task: asyncio.Task | None = None
        self.ready = asyncio.Event()

    async def start(self) -> None:
        self.revision = self._oldest = await self._store.revision()
        self._task = asyncio.create_task(self._run(), name="watchcache")
        self.ready.set()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                async for ev in self._store.watch(REGISTRY_PREFIX, self.revision + 1):
                    self._dispatch(to_change(ev))
            except asyncio.CancelledError:
                raise
            except Compacted:
                # We fell behind a compaction: forget the window, tell every watcher to re-list.
                log.warning("watch cache fell behind compaction; restarting watchers")
                self._reset(await self._store.revision())
            except Exception as e:  # etcd restarted or unreachable: retry, keep watchers
                log.warning("watch cache: etcd watch failed (%s); retrying", e)
                await asyncio.sleep(1)

    def _reset(self, revision: int) -> None:
        self._events.clear()
        self.revision = self._oldest = revision
        for sub in list(self._subs):
            sub.fail(Compacted(sub.revision, revision))
        self._subs.clear()

    def _dispatch(self, change: Change) -> None:
        if len(self._events) == self._events.maxlen:
            self._oldest = self._events[0].revision
        self._events.append(change)
        self.revision = change.revision
        for sub in list(self._subs):
            sub.offer(change)

    def compacted(self, revision: int) -> None:
        """etcd was compacted at `revision`: watches from before it must get 410, as from etcd."""
        while self._events and self._events[0].revision <= revision:
            self._events.popleft()
        self._oldest = max(self._oldest, revision)

    def subscribe(self, prefix: str, after: int) -> Subscription:
        """Changes under `prefix` with revision > `after`, in order.

        From the window when it reaches back that far, else from an etcd watch of
        its own; a compacted `after` surfaces as Compacted from `Subscription.next`.
        """
        sub = Subscription(self, prefix, after, self._max_queue)
        if after >= self._oldest:
            for change in self._events:    # replay the window, then live (no await in between)
                sub.offer(change)
            self._subs.add(sub)
        else:
            sub.feeder = asyncio.create_task(self._feed_from_store(sub))
        return sub

    async def _feed_from_store(self, sub: Subscription) -> None:
        try:
            async for ev in self._store.watch(sub.prefix, sub.after + 1):
                sub.offer(to_change(ev))
        except asyncio.CancelledError:
            raise
        except Compacted as e:    # report the revision the client asked for, as upstream's "too old" message does
            sub.fail(Compacted(sub.after, e.compacted))
        except Exception as e:
            sub.fail(e)

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)
