"""Recording core/v1 Events, as client-go's EventRecorder does, for `kubectl describe` and `get events`.

Components call `recorder.event(obj, "Normal", "Scheduled", "Successfully assigned ...")`
and go on: events are written by background tasks, at most
`max_concurrent_writes` at once (default one, as client-go's broadcaster
does), the events of one object always one after the other in the order
given, and a failure to write one is logged, never raised (an event is a
hint, not a state).

An event that repeats (same object, type, reason and message) within ten
minutes is not written again: the existing Event's `count` goes up and its
`lastTimestamp` moves, as client-go's EventCorrelator does, so a crash-looping
pod shows "Back-off restarting failed container (x7 over 3m)". That is why one
object's events are never written concurrently: a repeat must find the Event
its first occurrence created, or it would create a second one.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from typing import Any

from boxkube.api.times import now_rfc3339
from boxkube.client.api import ApiClient
from boxkube.client.errors import ApiError
from boxkube.client.resources import resource

log = logging.getLogger(__name__)

Obj = dict[str, Any]
EVENTS = resource("events")

_REPEAT_WINDOW = 600.0      # client-go's defaultAggregateIntervalInSeconds
_CACHE_SIZE = 4096          # client-go's maxLruCacheEntries


def object_reference(obj: Obj, field_path: str = "") -> Obj:
    """The ObjectReference an Event points at (kind and apiVersion come from the object itself)."""
    meta = obj.get("metadata") or {}
    ref = {"kind": obj.get("kind", ""), "apiVersion": obj.get("apiVersion", ""), "name": meta.get("name", ""),
           "namespace": meta.get("namespace", ""), "uid": meta.get("uid", ""),
           "resourceVersion": meta.get("resourceVersion", ""), "fieldPath": field_path}
    return {k: v for k, v in ref.items() if v}


class EventRecorder:
    """Events of one component (`source.component`, e.g. "default-scheduler") on one host."""

    def __init__(self, client: ApiClient, component: str, host: str = "", *, max_concurrent_writes: int = 1):
        if max_concurrent_writes < 1:
            raise ValueError("max_concurrent_writes must be at least 1")
        self.client, self.component, self.host = client, component, host
        self.max_concurrent_writes = max_concurrent_writes
        # involved object -> its events not written yet, oldest first
        self._pending: dict[tuple, deque[tuple[Obj, str, str, str]]] = {}
        # objects whose next event may be written now: waiting, and none of theirs is being written
        self._ready: deque[tuple] = deque()
        self._workers: set[asyncio.Task] = set()
        self._working = 0
        self._unwritten = 0
        self._idle = asyncio.Event()
        self._idle.set()
        # (reference, type, reason, message) -> (namespace, event name, count, first timestamp, monotonic time)
        self._seen: OrderedDict[tuple, tuple[str, str, int, str, float]] = OrderedDict()

    def event(self, obj: Obj, type_: str, reason: str, message: str, field_path: str = "") -> None:
        """Queue an event about `obj` (type_ "Normal" or "Warning"); never blocks, never raises."""
        ref = object_reference(obj, field_path)
        key = (ref.get("kind"), ref.get("namespace"), ref.get("name"), ref.get("uid"))
        events = self._pending.get(key)
        if events is None:
            events = self._pending[key] = deque()
            self._ready.append(key)
            # counted by the workers themselves: a worker that has just seen nothing left to do is gone
            # at once, though its task only ends (and leaves self._workers) a moment later
            if self._working < self.max_concurrent_writes:
                self._working += 1
                worker = asyncio.get_running_loop().create_task(self._work(), name=f"events-{self.component}")
                self._workers.add(worker)
                worker.add_done_callback(self._workers.discard)
        events.append((ref, type_, reason, message))
        self._unwritten += 1
        self._idle.clear()

    async def flush(self) -> None:
        """Wait until every queued event is written (or given up on)."""
        await self._idle.wait()

    async def close(self) -> None:
        """Flush; if that is cut short (a timeout around it), the events still queued are dropped."""
        try:
            await self.flush()
        finally:
            for worker in list(self._workers):
                worker.cancel()

    async def _work(self) -> None:
        try:
            await self._write_ready()
        finally:
            self._working -= 1

    async def _write_ready(self) -> None:
        while self._ready:
            key = self._ready.popleft()
            events = self._pending[key]
            ref, type_, reason, message = events.popleft()
            try:
                await self._write(ref, type_, reason, message)
            except (ApiError, OSError) as e:
                log.warning("could not record event %s %s on %s/%s: %s", type_, reason,
                            ref.get("namespace", ""), ref.get("name", ""), e)
            except Exception:  # an event must never take its component down
                log.exception("could not record event %s on %s", reason, ref.get("name", ""))
            finally:
                if events:
                    self._ready.append(key)   # its next one after the objects waiting meanwhile
                else:
                    del self._pending[key]
                self._unwritten -= 1
                if not self._unwritten:
                    self._idle.set()

    async def _write(self, ref: Obj, type_: str, reason: str, message: str) -> None:
        # client-go's correlation key: the object without its resourceVersion (a pod's changes all the time).
        key = (tuple(sorted((k, v) for k, v in ref.items() if k != "resourceVersion")), type_, reason, message)
        now = now_rfc3339()
        seen = self._seen.get(key)
        if seen and time.monotonic() - seen[4] < _REPEAT_WINDOW:
            namespace, name, count, first, _ = seen
            try:
                await self.client.patch(EVENTS, name, {"count": count + 1, "lastTimestamp": now}, namespace)
                self._remember(key, (namespace, name, count + 1, first, time.monotonic()))
                return
            except ApiError as e:
                if not e.is_not_found:
                    raise
                # The Event was deleted (or its namespace went): write a fresh one.
        namespace = ref.get("namespace") or "default"
        event = {
            "metadata": {"name": f"{ref.get('name', 'unknown')}.{time.time_ns():x}", "namespace": namespace},
            "involvedObject": ref, "reason": reason, "message": message, "type": type_,
            "source": {"component": self.component, **({"host": self.host} if self.host else {})},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "reportingComponent": self.component, "reportingInstance": self.host or self.component,
        }
        created = await self.client.create(EVENTS, event, namespace)
        self._remember(key, (namespace, created["metadata"]["name"], 1, now, time.monotonic()))

    def _remember(self, key: tuple, value: tuple[str, str, int, str, float]) -> None:
        self._seen[key] = value
        self._seen.move_to_end(key)
        while len(self._seen) > _CACHE_SIZE:
            self._seen.popitem(last=False)
