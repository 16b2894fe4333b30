"""WorkQueue semantics with real asyncio time (client-go's workqueue behaviour)."""
from __future__ import annotations

import asyncio

import pytest

from boxkube.client import (
    BucketRateLimiter,
    ItemExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    ShutDown,
    WorkQueue,
    default_controller_rate_limiter,
)


async def test_pending_keys_are_deduplicated_in_order():
    q: WorkQueue[str] = WorkQueue()
    for key in ("a", "b", "a", "c", "b"):
        q.add(key)
    assert len(q) == 3
    assert [await q.get() for _ in range(3)] == ["a", "b", "c"]
    assert len(q) == 0


async def test_a_key_being_processed_is_requeued_after_done():
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    key = await q.get()
    q.add("a")
    q.add("a")
    assert len(q) == 0                      # not handed to a second worker while the first has it
    waiter = asyncio.create_task(q.get())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    q.done(key)
    assert await asyncio.wait_for(waiter, 1) == "a"
    q.done("a")
    assert len(q) == 0


async def test_workers_never_share_a_key():
    q: WorkQueue[int] = WorkQueue()
    active: set[int] = set()
    handled: list[int] = []

    async def worker():
        async for key in q:
            assert key not in active
            active.add(key)
            await asyncio.sleep(0.002)
            if len(handled) < 20:
                q.add(key)                  # re-added while being processed
            handled.append(key)
            active.discard(key)
            q.done(key)

    workers = [asyncio.create_task(worker()) for _ in range(4)]
    for key in (1, 2, 1, 2, 1):
        q.add(key)
    await asyncio.sleep(0.2)
    await asyncio.wait_for(q.shutdown_with_drain(), 1)
    await asyncio.wait_for(asyncio.gather(*workers), 1)
    assert len(handled) >= 20 and set(handled) == {1, 2}


async def test_add_after_keeps_the_earliest_time():
    q: WorkQueue[str] = WorkQueue()
    loop = asyncio.get_running_loop()
    start = loop.time()
    q.add_after("a", 0.3)
    q.add_after("a", 0.05)                   # earlier: wins
    q.add_after("a", 0.5)                    # later: ignored
    q.add_after("now", 0)
    assert len(q) == 1 and await q.get() == "now"
    assert await asyncio.wait_for(q.get(), 1) == "a"
    assert 0.04 <= loop.time() - start < 0.25
    await asyncio.sleep(0.35)
    assert len(q) == 0                       # the dropped times did not add it again


async def test_rate_limited_backoff_doubles_per_key_until_forget():
    q: WorkQueue[str] = WorkQueue(ItemExponentialFailureRateLimiter(0.01, 0.04))
    loop = asyncio.get_running_loop()
    delays = []
    for _ in range(4):
        start = loop.time()
        q.add_rate_limited("a")
        key = await asyncio.wait_for(q.get(), 1)
        delays.append(loop.time() - start)
        q.done(key)
    assert q.num_requeues("a") == 4
    assert delays[0] >= 0.009 and delays[1] >= 0.019 and delays[2] >= 0.039 and delays[3] >= 0.039
    assert q.rate_limiter.when("a") == 0.04                                   # capped
    q.forget("a")
    assert q.num_requeues("a") == 0


def test_default_controller_rate_limiter_matches_client_go():
    limiter = default_controller_rate_limiter()
    assert [limiter.when("k") for _ in range(4)] == pytest.approx([0.005, 0.01, 0.02, 0.04])
    for _ in range(40):
        limiter.when("k")
    assert limiter.when("k") == 1000.0
    assert limiter.when("other") == pytest.approx(0.005)
    limiter.forget("k")
    assert limiter.num_requeues("k") == 0

    bucket = BucketRateLimiter(qps=10, burst=2)
    assert [bucket.when(i) for i in range(3)][:2] == [0.0, 0.0]
    assert MaxOfRateLimiter(BucketRateLimiter(10, 0), ItemExponentialFailureRateLimiter()).when("x") > 0.05


async def test_shutdown_drains_queued_keys_then_raises():
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    q.add("b")
    q.add_after("later", 0.05)
    q.shutdown()
    q.add("c")                               # refused after shutdown
    assert [await q.get(), await q.get()] == ["a", "b"]
    with pytest.raises(ShutDown):
        await q.get()
    await asyncio.sleep(0.08)
    assert len(q) == 0                       # keys due later were dropped


async def test_shutdown_wakes_idle_workers_and_waits_for_the_busy():
    q: WorkQueue[str] = WorkQueue()
    idle = asyncio.create_task(q.get())
    q.add("busy")
    busy = await q.get()
    await asyncio.sleep(0)
    drained = asyncio.create_task(q.shutdown_with_drain())
    await asyncio.sleep(0.02)
    assert not drained.done()                # "busy" is still being processed
    with pytest.raises(ShutDown):
        await asyncio.wait_for(idle, 1)
    q.done(busy)
    await asyncio.wait_for(drained, 1)
    assert q.shutting_down
