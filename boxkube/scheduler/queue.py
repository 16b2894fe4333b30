"""The scheduling queue (upstream's PriorityQueue, without queueing hints).

Three places a pending pod can wait:

- activeQ: ready to be tried, highest spec.priority first, then oldest;
- backoffQ: failed recently and waiting out its back-off (1 s doubling up to
  10 s by default), then back to activeQ;
- the unschedulable pool: failed and waiting for the cluster to change;
  `move_all_to_active_or_backoff(event)` (node added or updated, pod deleted,
  ...) sends them back, and after 5 minutes they are retried anyway.

`pop()` hands a pod out and marks it in flight until `done()` (scheduled) or
`add_unschedulable()` (failed): a pod is never handed out twice at once. Adds
and updates that arrive while a pod is in flight are remembered and make the
failed pod go to backoffQ instead of the pool, since they may have fixed it.

Pure asyncio: no client, no background task (pop() itself waits for the
earliest back-off expiry and runs the periodic flush).
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from boxkube.scheduler.podinfo import pod_key

DEFAULT_INITIAL_BACKOFF = 1.0
DEFAULT_MAX_BACKOFF = 10.0
DEFAULT_MAX_UNSCHEDULABLE_DURATION = 300.0
UNSCHEDULABLE_FLUSH_INTERVAL = 30.0

Pod = Mapping[str, Any]


@dataclass(eq=False)
class QueuedPodInfo:
    """A pod in the queue with its scheduling history."""

    pod: Pod
    key: str
    timestamp: float
    initial_attempt_timestamp: float
    attempts: int = 0
    unschedulable_count: int = 0
    unschedulable_plugins: frozenset[str] = frozenset()
    cycle: int = 0  # the scheduling cycle of the latest pop

    @property
    def priority(self) -> int:
        return int((self.pod.get("spec") or {}).get("priority") or 0)


@dataclass(eq=False)
class _InFlight:
    info: QueuedPodInfo
    changed: bool = False
    deleted: bool = False


def _comparable(pod: Pod) -> dict[str, Any]:
    """The pod without what changes on every write (isPodUpdated strips the same)."""
    meta = {k: v for k, v in (pod.get("metadata") or {}).items()
            if k not in ("resourceVersion", "generation", "managedFields")}
    return {k: v for k, v in pod.items() if k != "status"} | {"metadata": meta}


@dataclass(eq=False)
class _Heap:
    """A heap with lazy removal: entries of keys no longer present (or re-pushed) are skipped."""

    items: dict[str, QueuedPodInfo] = field(default_factory=dict)
    _heap: list[tuple[Any, int, str]] = field(default_factory=list)
    _seq_of: dict[str, int] = field(default_factory=dict)
    _counter: Any = field(default_factory=itertools.count)

    def push(self, info: QueuedPodInfo, order: Any) -> None:
        seq = next(self._counter)
        self.items[info.key] = info
        self._seq_of[info.key] = seq
        heapq.heappush(self._heap, (order, seq, info.key))

    def remove(self, key: str) -> QueuedPodInfo | None:
        self._seq_of.pop(key, None)
        return self.items.pop(key, None)

    def peek(self) -> tuple[Any, QueuedPodInfo] | None:
        while self._heap:
            order, seq, key = self._heap[0]
            if self._seq_of.get(key) == seq:
                return order, self.items[key]
            heapq.heappop(self._heap)
        return None

    def pop(self) -> QueuedPodInfo | None:
        top = self.peek()
        if top is None:
            return None
        heapq.heappop(self._heap)
        return self.remove(top[1].key)

    def __contains__(self, key: str) -> bool:
        return key in self.items

    def __len__(self) -> int:
        return len(self.items)


class SchedulingQueue:
    def __init__(self, *, initial_backoff: float = DEFAULT_INITIAL_BACKOFF,
                 max_backoff: float = DEFAULT_MAX_BACKOFF,
                 max_unschedulable_duration: float = DEFAULT_MAX_UNSCHEDULABLE_DURATION,
                 unschedulable_flush_interval: float = UNSCHEDULABLE_FLUSH_INTERVAL,
                 clock: Callable[[], float] = time.monotonic):
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_unschedulable_duration = max_unschedulable_duration
        self.unschedulable_flush_interval = unschedulable_flush_interval
        self._clock = clock
        self._active = _Heap()
        self._backoff = _Heap()
        self._unschedulable: dict[str, QueuedPodInfo] = {}
        self._in_flight: dict[str, _InFlight] = {}
        self._scheduling_cycle = 0
        # the cycle of the latest move request: a pod that failed in an earlier or the same
        # cycle may have missed the event that would have moved it, so it goes to backoffQ
        self._move_request_cycle = -1
        self._next_leftover_flush = clock() + unschedulable_flush_interval
        self._wakeup = asyncio.Event()
        self._closed = False

    # ---- informer-facing ------------------------------------------------

    def add(self, pod: Pod) -> None:
        """A new pending pod: straight to activeQ."""
        key = pod_key(pod)
        if self._note_in_flight(key, pod):
            return
        info = self._active.items.get(key) or self._backoff.remove(key) or self._unschedulable.pop(key, None)
        if info is not None:
            info.pod = pod
            if key in self._active:
                return
        else:
            now = self._clock()
            info = QueuedPodInfo(pod, key, now, now)
        self._to_active(info)

    def update(self, pod: Pod) -> None:
        """A pending pod changed; in the unschedulable pool a real change makes it worth another try."""
        key = pod_key(pod)
        if self._note_in_flight(key, pod):
            return
        for heap in (self._active, self._backoff):
            if key in heap:
                heap.items[key].pod = pod
                return
        info = self._unschedulable.get(key)
        if info is None:
            self.add(pod)
            return
        changed = _comparable(info.pod) != _comparable(pod)
        info.pod = pod
        if changed:
            del self._unschedulable[key]
            self._requeue(info)

    def delete(self, pod: Pod) -> None:
        """The pod is gone or no longer ours (bound, deleted, finished)."""
        key = pod_key(pod)
        flight = self._in_flight.get(key)
        if flight is not None:
            flight.deleted = True
        self._active.remove(key)
        self._backoff.remove(key)
        self._unschedulable.pop(key, None)

    def move_all_to_active_or_backoff(self, event: str,
                                      pre_check: Callable[[QueuedPodInfo], bool] | None = None) -> None:
        """The cluster changed in a way that may help (`event` names it, e.g. "NodeAdd"):
        retry the unschedulable pods `pre_check` accepts (all without one), after their back-off."""
        for key, info in list(self._unschedulable.items()):
            if pre_check is None or pre_check(info):
                del self._unschedulable[key]
                self._requeue(info)
        self._move_request_cycle = self._scheduling_cycle

    # ---- scheduler-facing ------------------------------------------------

    async def pop(self) -> QueuedPodInfo | None:
        """The next pod to schedule, waiting for one; None once the queue is closed."""
        while not self._closed:
            self.flush_backoff_completed()
            if self._clock() >= self._next_leftover_flush:
                self.flush_unschedulable_leftover()
            info = self._active.pop()
            if info is not None:
                self._scheduling_cycle += 1
                info.attempts += 1
                info.cycle = self._scheduling_cycle
                self._in_flight[info.key] = _InFlight(info)
                return info
            self._wakeup.clear()
            try:
                async with asyncio.timeout(self._next_deadline() - self._clock()):
                    await self._wakeup.wait()
            except TimeoutError:
                pass
        return None

    def done(self, info: QueuedPodInfo) -> None:
        """The attempt for this pod is over and the pod was scheduled (or given up on)."""
        self._in_flight.pop(info.key, None)

    def add_unschedulable(self, info: QueuedPodInfo, plugins: frozenset[str] = frozenset(),
                          *, error: bool = False) -> None:
        """The attempt failed: the pod waits for a cluster change (or only its back-off, after
        an error or when something changed while it was being scheduled)."""
        flight = self._in_flight.pop(info.key, None)
        if flight is not None and flight.deleted:
            return
        if info.key in self._active or info.key in self._backoff or info.key in self._unschedulable:
            return
        info.timestamp = self._clock()
        if not error:
            info.unschedulable_count += 1
            info.unschedulable_plugins = plugins
        changed = flight is not None and flight.changed
        if error or changed or self._move_request_cycle >= info.cycle:
            self._backoff.push(info, self._backoff_expiry(info))
            self._wakeup.set()
        else:
            self._unschedulable[info.key] = info

    def close(self) -> None:
        self._closed = True
        self._wakeup.set()

    # ---- periodic flushes (pop() runs them; callable directly) ------------

    def flush_backoff_completed(self) -> None:
        now = self._clock()
        while (top := self._backoff.peek()) is not None and top[0] <= now:
            self._to_active(self._backoff.pop())

    def flush_unschedulable_leftover(self) -> None:
        now = self._clock()
        self._next_leftover_flush = now + self.unschedulable_flush_interval
        for key, info in list(self._unschedulable.items()):
            if now - info.timestamp > self.max_unschedulable_duration:
                del self._unschedulable[key]
                self._requeue(info)

    # ---- introspection --------------------------------------------------

    def backoff_duration(self, info: QueuedPodInfo) -> float:
        """calculateBackoffDuration: initial x 2^(failures - 1), capped."""
        if info.unschedulable_count == 0:
            return 0.0
        return min(self.initial_backoff * 2 ** (info.unschedulable_count - 1), self.max_backoff)

    def pending(self) -> dict[str, list[str]]:
        """Keys waiting in each place (upstream's PendingPods, for debugging and tests)."""
        return {"active": sorted(self._active.items), "backoff": sorted(self._backoff.items),
                "unschedulable": sorted(self._unschedulable), "in_flight": sorted(self._in_flight)}

    def __len__(self) -> int:
        return len(self._active) + len(self._backoff) + len(self._unschedulable)

    # ---- internals ------------------------------------------------------

    def _note_in_flight(self, key: str, pod: Pod) -> bool:
        flight = self._in_flight.get(key)
        if flight is None:
            return False
        flight.changed = flight.changed or _comparable(flight.info.pod) != _comparable(pod)
        flight.info.pod = pod
        return True

    def _backoff_expiry(self, info: QueuedPodInfo) -> float:
        return info.timestamp + self.backoff_duration(info)

    def _to_active(self, info: QueuedPodInfo) -> None:
        self._active.push(info, (-info.priority, info.timestamp))
        self._wakeup.set()

    def _requeue(self, info: QueuedPodInfo) -> None:
        if self._backoff_expiry(info) > self._clock():
            self._backoff.push(info, self._backoff_expiry(info))
            self._wakeup.set()
        else:
            self._to_active(info)

    def _next_deadline(self) -> float:
        top = self._backoff.peek()
        return min(top[0], self._next_leftover_flush) if top is not None else self._next_leftover_flush
