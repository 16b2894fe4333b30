"""Informers: a local cache of one resource kept current by list + watch, with event handlers.

The behaviour is client-go's reflector and shared informer:

- list (page by page), replace the cache with the result, then watch from the
  list's resourceVersion; every event and bookmark advances the resourceVersion.
- a watch that ends (its timeout) or loses its connection is started again from
  the last resourceVersion seen, after a back-off when it failed.
- 410 Gone (a list, a watch request, or a watch ERROR event: that resourceVersion
  was compacted) means the events in between are lost: list again. Objects
  missing from the new list are delivered to delete handlers as
  `DeletedFinalStateUnknown` with their last known state; objects still there
  are delivered as updates (old, new).
- every `resync_period` seconds, an update (obj, obj) for every cached object,
  so handlers that level-trigger get to look at everything again.

Handlers are plain functions or coroutine functions, called one at a time in
event order; they should be quick (a controller's just enqueue a key).
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


from boxkube.client.api import ADDED, BOOKMARK, DELETED, MODIFIED, ApiClient
from boxkube.client.errors import ApiError, TransportError
from boxkube.client.resources import ResourceType, resource
from boxkube.client.store import DeletedFinalStateUnknown, IndexFunc, Store, object_key

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Handler = Callable[..., Any]

# As client-go's reflector: watches last 5 to 10 minutes; failures back off up to 30 s. The first
# retry comes sooner than its 0.8 s, so a relist after 410 or an API server restart is quick.
_MIN_WATCH_TIMEOUT = 300
_BACKOFF_INITIAL, _BACKOFF_MAX = 0.1, 30.0
# A watch that ends this soon without an event is treated as a failure, not retried at once.
_SHORT_WATCH = 1.0


@dataclass(eq=False)
class EventHandler:
    """One registration of handlers; give it to `Informer.remove_event_handler` to remove it."""
    on_add: Handler | None = None          # (obj)
    on_update: Handler | None = None       # (old, new); old is new on a resync
    on_delete: Handler | None = None       # (obj or DeletedFinalStateUnknown)


class _Backoff:
    """Exponential back-off with jitter, reset when things work again."""

    def __init__(self, initial: float = _BACKOFF_INITIAL, maximum: float = _BACKOFF_MAX):
        self.initial, self.maximum = initial, maximum
        self._next = initial

    def reset(self) -> None:
        self._next = self.initial

    async def wait(self) -> None:
        delay = self._next * (1 + random.random() / 2)
        self._next = min(self._next * 2, self.maximum)
        await asyncio.sleep(delay)


class Informer:
    """A cached, watched view of one resource (in one namespace, or all; optionally selected).

    Start with `start()` (or `async with`), stop with `await stop()`. Read the
    cache through `store` (see boxkube.client.store).
    """

    def __init__(self, client: ApiClient, rt: ResourceType | str, namespace: str | None = None, *,
                 label_selector: str = "", field_selector: str = "", resync_period: float = 0.0,
                 page_size: int = 500, indexers: Mapping[str, IndexFunc] | None = None):
        self.client = client
        self.rt = resource(rt) if isinstance(rt, str) else rt
        self.namespace = namespace
        self.label_selector, self.field_selector = label_selector, field_selector
        self.resync_period = resync_period
        self.page_size = page_size
        self.store = Store(indexers)
        self.resource_version = ""          # the last one seen (list, event or bookmark)
        self._handlers: list[EventHandler] = []
        self._synced = asyncio.Event()
        # Handlers see events one at a time, whether from the watch, a relist, a resync or a replay.
        self._deliver = asyncio.Lock()
        self._tasks: set[asyncio.Task] = set()
        self._runner: asyncio.Task | None = None
        self._backoff = _Backoff()          # reset by every watch event: failures after progress retry soon

    def __repr__(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        return f"<Informer {self.rt.qualified}{where} rv={self.resource_version or '-'}>"

    # -- handlers and indexes -------------------------------------------------

    def add_event_handler(self, on_add: Handler | None = None, on_update: Handler | None = None,
                          on_delete: Handler | None = None) -> EventHandler:
        """Register handlers. Added after the first sync, they first get an add for every cached object."""
        handler = EventHandler(on_add, on_update, on_delete)
        self._handlers.append(handler)
        if self._synced.is_set() and on_add is not None:
            self._spawn(self._replay(handler), "replay")
        return handler

    def remove_event_handler(self, handler: EventHandler) -> None:
        self._handlers.remove(handler)

    def add_indexers(self, indexers: Mapping[str, IndexFunc]) -> None:
        self.store.add_indexers(indexers)

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        """Start listing and watching (and resyncing) as tasks of the running loop."""
        if self.running:
            return
        self._runner = self._spawn(self._run(), "run")
        if self.resync_period > 0:
            self._spawn(self._resync(), "resync")

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def running(self) -> bool:
        return self._runner is not None and not self._runner.done()

    async def __aenter__(self) -> "Informer":
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def has_synced(self) -> bool:
        """True once the first list is in the store and its events were handled."""
        return self._synced.is_set()

    async def wait_for_sync(self, timeout: float | None = None) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._synced.wait()
        except TimeoutError:
            return False
        return True

    def _spawn(self, coro: Any, what: str) -> asyncio.Task:
        task = asyncio.create_task(coro, name=f"informer {self.rt.qualified} {what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- list and watch -----------------------------------------------------

    async def _run(self) -> None:
        listed = False
        while True:
            try:
                if not listed:
                    await self._list()
                    listed = True
                if await self._watch():
                    continue
                log.debug("%r: watch ended at once without events", self)
            except ApiError as e:
                if e.is_gone:
                    log.info("%r: %s; listing again", self, e.message)
                else:
                    log.warning("%r: %s; listing again", self, e)
                listed = False
            except (TransportError, ValueError) as e:   # ValueError: a broken JSON line
                # The events after resource_version are still in etcd (if not compacted): watch again from there.
                log.warning("%r: watch failed (%s); retrying", self, e or type(e).__name__)
            await self._backoff.wait()

    async def _list(self) -> None:
        listed = await self.client.list_all(self.rt, self.namespace, label_selector=self.label_selector,
                                            field_selector=self.field_selector, page_size=self.page_size)
        items = {object_key(obj): obj for obj in listed.get("items") or []}
        async with self._deliver:
            for obj in items.values():
                old = self.store.upsert(obj)
                if old is None:
                    await self._notify("on_add", obj)
                else:
                    await self._notify("on_update", old, obj)
            for key in [k for k in self.store.keys() if k not in items]:
                gone = self.store.delete(key)
                await self._notify("on_delete", DeletedFinalStateUnknown(key, gone))
            self.resource_version = listed["metadata"]["resourceVersion"]
        self._synced.set()
        log.debug("%r: listed %d objects", self, len(items))

    async def _watch(self) -> bool:
        """Watch from resource_version until the server ends the watch; whether it was a useful watch."""
        loop = asyncio.get_running_loop()
        started, events = loop.time(), 0
        timeout = random.randint(_MIN_WATCH_TIMEOUT, 2 * _MIN_WATCH_TIMEOUT)
        async with self.client.watch(self.rt, self.namespace, resource_version=self.resource_version,
                                     label_selector=self.label_selector, field_selector=self.field_selector,
                                     allow_bookmarks=True, timeout_seconds=timeout) as watch:
            async for kind, obj in watch:
                events += 1
                self._backoff.reset()
                rv = (obj.get("metadata") or {}).get("resourceVersion") or self.resource_version
                if kind == BOOKMARK:
                    self.resource_version = rv
                    continue
                if kind not in (ADDED, MODIFIED, DELETED):
                    log.warning("%r: ignoring a watch event of unknown type %r", self, kind)
                    continue
                async with self._deliver:
                    if kind == DELETED:
                        self.store.delete(object_key(obj))
                        await self._notify("on_delete", obj)
                    else:
                        old = self.store.upsert(obj)
                        if old is None:
                            await self._notify("on_add", obj)
                        else:
                            await self._notify("on_update", old, obj)
                    self.resource_version = rv
        return events > 0 or loop.time() - started >= _SHORT_WATCH

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.resync_period)
            if not self.has_synced:
                continue
            async with self._deliver:
                for obj in self.store.list():
                    await self._notify("on_update", obj, obj)

    async def _replay(self, handler: EventHandler) -> None:
        async with self._deliver:
            for obj in self.store.list():
                await self._notify("on_add", obj, handlers=[handler])

    async def _notify(self, method: str, *args: Any, handlers: list[EventHandler] | None = None) -> None:
        for handler in list(self._handlers) if handlers is None else handlers:
            func = getattr(handler, method)
            if func is None:
                continue
            try:
                result = func(*args)
                if inspect.isawaitable(result):
                    await result
            except Exception:     # one broken handler must not stop the informer or the others
                log.exception("%r: %s handler failed", self, method)


class InformerFactory:
    """One shared informer per (resource, namespace, selectors): controllers that watch the
    same thing share one list + watch and one cache, as with client-go's SharedInformerFactory."""

    def __init__(self, client: ApiClient, *, namespace: str | None = None, resync_period: float = 0.0):
        self.client, self.namespace, self.resync_period = client, namespace, resync_period
        self._informers: dict[tuple[str, str | None, str, str], Informer] = {}

    def informer(self, rt: ResourceType | str, namespace: str | None = None, *, label_selector: str = "",
                 field_selector: str = "") -> Informer:
        """The shared informer (made on first use; `namespace` default: the factory's)."""
        rt = resource(rt) if isinstance(rt, str) else rt
        namespace = namespace or self.namespace
        key = (f"{rt.qualified}/{rt.version}", namespace, label_selector, field_selector)
        if key not in self._informers:
            self._informers[key] = Informer(self.client, rt, namespace, label_selector=label_selector,
                                            field_selector=field_selector, resync_period=self.resync_period)
        return self._informers[key]

    def start(self) -> None:
        """Start every informer made so far that is not running (call again after making more)."""
        for informer in self._informers.values():
            informer.start()

    async def wait_for_sync(self, timeout: float | None = None) -> bool:
        results = await asyncio.gather(*(i.wait_for_sync(timeout) for i in self._informers.values()))
        return all(results)

    async def stop(self) -> None:
        await asyncio.gather(*(i.stop() for i in self._informers.values()))
