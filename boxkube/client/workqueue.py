"""The controllers' work queue, with client-go's semantics (k8s.io/client-go/util/workqueue).

- a key waiting in the queue is there once, however often it is added;
- a key is handed to one worker at a time: added while a worker has it, it
  waits until that worker calls `done(key)` and is then queued again;
- `add_after` adds a key later (the earliest of several pending times wins);
- `add_rate_limited` adds it after a per-key back-off, until `forget(key)`;
- `shutdown()` stops taking keys, and `get()` still hands out those already
  queued before it raises `ShutDown`, so workers drain the queue.

A worker::

    while True:
        try:
            key = await queue.get()
        except ShutDown:
            return
        try:
            await reconcile(key)
            queue.forget(key)
        except Exception:
            queue.add_rate_limited(key)
        finally:
            queue.done(key)
"""
from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Hashable
from typing import Generic, Protocol, TypeVar

T = TypeVar("T", bound=Hashable)


class ShutDown(Exception):
    """`get()` on a queue that was shut down and has nothing left to hand out."""


class RateLimiter(Protocol):
    def when(self, item: Hashable) -> float:
        """Seconds to wait before `item` is added again (counts a failure)."""

    def forget(self, item: Hashable) -> None:
        """`item` succeeded: start its back-off over."""

    def num_requeues(self, item: Hashable) -> int: ...


class ItemExponentialFailureRateLimiter:
    """base * 2**failures seconds for each key, at most `maximum`."""

    def __init__(self, base: float = 0.005, maximum: float = 1000.0):
        self.base, self.maximum = base, maximum
        self._failures: dict[Hashable, int] = {}

    def when(self, item: Hashable) -> float:
        failures = self._failures.get(item, 0)
        self._failures[item] = failures + 1
        # 2**failures overflows float well past any sensible maximum; stop doubling there.
        return self.maximum if failures > 64 else min(self.base * 2 ** failures, self.maximum)

    def forget(self, item: Hashable) -> None:
        self._failures.pop(item, None)

    def num_requeues(self, item: Hashable) -> int:
        return self._failures.get(item, 0)


class BucketRateLimiter:
    """A token bucket over all keys: `qps` a second after a `burst`."""

    def __init__(self, qps: float = 10.0, burst: int = 100):
        self.qps, self.burst = qps, burst
        self._tokens = float(burst)
        self._last = time.monotonic()

    def when(self, item: Hashable) -> float:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.qps) - 1
        self._last = now
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    def forget(self, item: Hashable) -> None:
        pass

    def num_requeues(self, item: Hashable) -> int:
        return 0


class MaxOfRateLimiter:
    """The longest wait any of `limiters` asks for."""

    def __init__(self, *limiters: RateLimiter):
        self.limiters = limiters

    def when(self, item: Hashable) -> float:
        return max(limiter.when(item) for limiter in self.limiters)

    def forget(self, item: Hashable) -> None:
        for limiter in self.limiters:
            limiter.forget(item)

    def num_requeues(self, item: Hashable) -> int:
        return max(limiter.num_requeues(item) for limiter in self.limiters)


def default_controller_rate_limiter() -> RateLimiter:
    """client-go's DefaultControllerRateLimiter: per key 5 ms doubling to 1000 s, overall 10 qps (burst 100)."""
    return MaxOfRateLimiter(ItemExponentialFailureRateLimiter(0.005, 1000.0), BucketRateLimiter(10.0, 100))


class WorkQueue(Generic[T]):
    """A deduplicating, delaying, rate-limited queue of keys for asyncio workers."""

    def __init__(self, rate_limiter: RateLimiter | None = None, *, name: str = ""):
        self.name = name
        self.rate_limiter = rate_limiter or default_controller_rate_limiter()
        self._queue: collections.deque[T] = collections.deque()
        self._dirty: set[T] = set()          # to be processed: queued, or re-added while processing
        self._processing: set[T] = set()
        self._waiting: dict[T, tuple[float, asyncio.TimerHandle]] = {}   # add_after: (when, timer)
        self._shutting_down = False
        self._wakeup = asyncio.Event()       # set on every add; getters clear it before sleeping
        self._progress = asyncio.Event()     # set on every done(); shutdown_with_drain sleeps on it

    def __len__(self) -> int:
        """Keys waiting to be handed out (not those being processed or added later)."""
        return len(self._queue)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def add(self, item: T) -> None:
        if self._shutting_down or item in self._dirty:
            return
        self._dirty.add(item)
        if item in self._processing:
            return                            # done() queues it again
        self._queue.append(item)
        self._wakeup.set()

    async def get(self) -> T:
        """The next key (the caller must call `done(key)`); raises ShutDown when shut down and empty."""
        while not self._queue:
            if self._shutting_down:
                raise ShutDown(self.name)
            self._wakeup.clear()
            await self._wakeup.wait()
        item = self._queue.popleft()
        self._processing.add(item)
        self._dirty.discard(item)
        return item

    def done(self, item: T) -> None:
        """The worker is finished with `item`; if it was added meanwhile, it is queued again."""
        self._processing.discard(item)
        if item in self._dirty:
            self._queue.append(item)
            self._wakeup.set()
        self._progress.set()

    def __aiter__(self) -> "WorkQueue[T]":
        return self

    async def __anext__(self) -> T:
        try:
            return await self.get()
        except ShutDown:
            raise StopAsyncIteration from None

    # -- delays and back-off ------------------------------------------------

    def add_after(self, item: T, delay: float) -> None:
        """Add `item` in `delay` seconds; if it is already due earlier, keep that."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(item)
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        pending = self._waiting.get(item)
        if pending is not None:
            if pending[0] <= due:
                return
            pending[1].cancel()
        self._waiting[item] = (due, loop.call_at(due, self._due, item))

    def _due(self, item: T) -> None:
        del self._waiting[item]
        self.add(item)

    def add_rate_limited(self, item: T) -> None:
        """Add `item` after its back-off (the rate limiter counts this as a failure)."""
        self.add_after(item, self.rate_limiter.when(item))

    def forget(self, item: T) -> None:
        """`item` was handled: its next back-off starts from the shortest again."""
        self.rate_limiter.forget(item)

    def num_requeues(self, item: T) -> int:
        return self.rate_limiter.num_requeues(item)

    # -- shutting down ------------------------------------------------------

    def shutdown(self) -> None:
        """Take no more keys (keys due later are dropped); getters drain what is queued, then get ShutDown."""
        self._shutting_down = True
        for _, timer in self._waiting.values():
            timer.cancel()
        self._waiting.clear()
        self._wakeup.set()

    async def shutdown_with_drain(self) -> None:
        """Shut down, then wait until workers have processed every queued key and called done()."""
        self.shutdown()
        while self._queue or self._processing:
            self._progress.clear()
            await self._progress.wait()
