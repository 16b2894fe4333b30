"""One task that runs a periodic action for many items: how N nodes share lease renewals and status posts.

A thousand simulated nodes must not mean a thousand sleeping loops each
waking on its own: every item has a due time in one heap, one task wakes for
the earliest, and at most as many actions are in flight as `limit` lets through. Items added
together are spread over the interval instead of all renewing at once.
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import random
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T", bound=Hashable)


class Periodic(Generic[T]):
    """`action(item)` every `interval` seconds per item; it may return the seconds until its next run
    (sooner after a failure, say) instead."""

    def __init__(self, name: str, interval: float, action: Callable[[T], Awaitable[float | None]],
                 limit: asyncio.Semaphore):
        self.name, self.interval, self.action = name, interval, action
        self._limit = limit
        self._heap: list[tuple[float, int, T]] = []
        self._members: set[T] = set()
        self._due: dict[T, int] = {}          # item -> sequence number of its live heap entry
        self._running: set[T] = set()
        self._again: set[T] = set()           # poked while running: run once more when done
        self._seq = itertools.count()
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()

    def add(self, item: T, first_in: float | None = None) -> None:
        """Schedule `item`; its first run is `first_in` seconds away (default: somewhere in the first interval)."""
        self._members.add(item)
        self._schedule(item, random.uniform(0, self.interval) if first_in is None else first_in)

    def poke(self, item: T) -> None:
        """Run `item`'s action as soon as possible (e.g. its status changed)."""
        if item in self._running:
            self._again.add(item)
        elif item in self._due:
            self._schedule(item, 0.0)

    def remove(self, item: T) -> None:
        self._members.discard(item)
        self._due.pop(item, None)
        self._again.discard(item)

    def __len__(self) -> int:
        return len(self._members)

    def _schedule(self, item: T, delay: float) -> None:
        seq = next(self._seq)
        self._due[item] = seq
        heapq.heappush(self._heap, (asyncio.get_running_loop().time() + delay, seq, item))
        self._changed.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                now = loop.time()
                while self._heap and self._heap[0][0] <= now:
                    _, seq, item = heapq.heappop(self._heap)
                    if self._due.get(item) != seq:
                        continue      # removed or rescheduled since
                    del self._due[item]
                    self._running.add(item)
                    task = asyncio.create_task(self._run_one(item), name=f"{self.name} {item}")
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                self._changed.clear()
                timeout = self._heap[0][0] - now if self._heap else None
                try:
                    async with asyncio.timeout(timeout):
                        await self._changed.wait()
                except TimeoutError:
                    pass
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run_one(self, item: T) -> None:
        next_in: float | None = None
        try:
            async with self._limit:
                next_in = await self.action(item)
        except Exception:      # one item's failure must not stop the others' heartbeats
            log.exception("%s of %s failed", self.name, item)
        finally:
            self._running.discard(item)
        again = item in self._again
        self._again.discard(item)
        if item in self._members and item not in self._due:
            self._schedule(item, 0.0 if again else self.interval if next_in is None else next_in)
