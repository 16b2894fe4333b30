"""Recording core/v1 Events, as client-go's EventRecorder does, for `kubectl describe` and `get events`.

Components call `recorder.event(obj, "Normal", "Scheduled", "Successfully assigned ...")`
and go on: events are written in order by one background task, and a failure
to write one is logged, never raised (an event is a hint, not a state).

An event that repeats (same object, type, reason and message) within ten
minutes is not written again: the existing Event's `count` goes up and its
`lastTimestamp` moves, as client-go's EventCorrelator does, so a crash-looping
pod shows "Back-off restarting failed container (x7 over 3m)".
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
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

    def __init__(self, client: ApiClient, component: str, host: str = ""):
        self.client, self.component, self.host = client, component, host
        self._queue: asyncio.Queue[tuple[Obj, str, str, str]] = asyncio.Queue()
        self._task: asyncio.Task | None = None
        # (reference, type, reason, message) -> (namespace, event name, count, first timestamp, monotonic time)
        self._seen: OrderedDict[tuple, tuple[str, str, int, str, float]] = OrderedDict()

    def event(self, obj: Obj, type_: str, reason: str, message: str, field_path: str = "") -> None:
        """Queue an event about `obj` (type_ "Normal" or "Warning"); never blocks, never raises."""
        self._queue.put_nowait((object_reference(obj, field_path), type_, reason, message))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain(), name=f"events-{self.component}")

    async def flush(self) -> None:
        """Wait until every queued event is written (or given up on)."""
        await self._queue.join()

    async def close(self) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()

    async def _drain(self) -> None:
        while True:
            ref, type_, reason, message = await self._queue.get()
            try:
                await self._write(ref, type_, reason, message)
            except (ApiError, OSError) as e:
                log.warning("could not record event %s %s on %s/%s: %s", type_, reason,
                            ref.get("namespace", ""), ref.get("name", ""), e)
            except Exception:  # an event must never take its component down
                log.exception("could not record event %s on %s", reason, ref.get("name", ""))
            finally:
                self._queue.task_done()

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
