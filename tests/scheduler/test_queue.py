"""The scheduling queue on a real event loop, with back-offs shrunk to milliseconds."""
from __future__ import annotations

import asyncio
import time

import pytest

from boxkube.scheduler.queue import QueuedPodInfo, SchedulingQueue

from scheduler_builders import pod

INITIAL = 0.02


def queue(**kw) -> SchedulingQueue:
    return SchedulingQueue(initial_backoff=INITIAL, max_backoff=0.08, **kw)


async def pop_soon(q: SchedulingQueue, timeout: float = 0.2) -> QueuedPodInfo | None:
    try:
        return await asyncio.wait_for(q.pop(), timeout)
    except asyncio.TimeoutError:
        return None


def names(*infos: QueuedPodInfo | None) -> list[str | None]:
    return [i.pod["metadata"]["name"] if i else None for i in infos]


async def test_active_queue_orders_by_priority_then_arrival():
    q = queue()
    for name, prio in [("low", 0), ("high", 1000), ("low2", 0), ("critical", 2000000000)]:
        q.add(pod(name, priority=prio))
    assert names(*[await q.pop() for _ in range(4)]) == ["critical", "high", "low", "low2"]


async def test_pop_waits_for_a_pod():
    q = queue()
    waiter = asyncio.create_task(q.pop())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    q.add(pod("late"))
    info = await asyncio.wait_for(waiter, 1)
    assert names(info) == ["late"] and info.attempts == 1


async def test_close_releases_waiters():
    q = queue()
    waiter = asyncio.create_task(q.pop())
    await asyncio.sleep(0)
    q.close()
    assert await asyncio.wait_for(waiter, 1) is None


async def test_unschedulable_pod_waits_for_a_cluster_change_then_its_backoff():
    q = queue()
    p = pod("big")
    q.add(p)
    info = await q.pop()
    q.add_unschedulable(info, frozenset({"NodeResourcesFit"}))
    assert q.pending()["unschedulable"] == [info.key] and info.unschedulable_plugins == {"NodeResourcesFit"}
    assert await pop_soon(q, 0.1) is None  # nothing changed: stays put
    moved_at = time.monotonic()
    q.move_all_to_active_or_backoff("NodeAdd")
    again = await pop_soon(q)
    assert again is info and again.attempts == 2
    # it had failed more than INITIAL ago, so no extra wait was needed
    assert time.monotonic() - moved_at < INITIAL * 2


async def test_a_move_with_a_pre_check_moves_only_the_pods_it_may_help():
    q = queue()
    q.add(pod("needs-cpu"))
    q.add(pod("needs-a-peer"))
    cpu, peer = await q.pop(), await q.pop()
    q.add_unschedulable(cpu, frozenset({"NodeResourcesFit"}))
    q.add_unschedulable(peer, frozenset({"InterPodAffinity"}))
    q.move_all_to_active_or_backoff("AssignedPodAdd", lambda i: "InterPodAffinity" in i.unschedulable_plugins)
    assert q.pending()["unschedulable"] == [cpu.key]
    assert await pop_soon(q) is peer


async def test_move_during_backoff_goes_to_backoff_first():
    q = queue()
    q.add(pod("p"))
    info = await q.pop()
    q.add_unschedulable(info)
    q.move_all_to_active_or_backoff("NodeUpdate")
    assert q.pending()["backoff"] == [info.key]
    start = time.monotonic()
    assert await pop_soon(q) is info
    assert time.monotonic() - start >= INITIAL * 0.9


def test_backoff_doubles_up_to_the_maximum():
    q = SchedulingQueue()
    info = QueuedPodInfo(pod("p"), "k", 0.0, 0.0)
    durations = []
    for count in range(7):
        info.unschedulable_count = count
        durations.append(q.backoff_duration(info))
    assert durations == [0, 1, 2, 4, 8, 10, 10]


async def test_a_pod_is_never_handed_out_twice_and_changes_in_flight_are_kept():
    q = queue()
    p = pod("p", labels={"v": "1"})
    q.add(p)
    info = await q.pop()
    changed = dict(p, metadata=dict(p["metadata"], labels={"v": "2"}))
    q.update(changed)
    q.add(changed)
    assert await pop_soon(q, 0.05) is None
    assert q.pending()["in_flight"] == [info.key] and len(q) == 0
    # it failed, but it changed meanwhile: back-off, not the unschedulable pool
    q.add_unschedulable(info)
    retry = await pop_soon(q)
    assert retry is info and retry.pod["metadata"]["labels"] == {"v": "2"}


async def test_status_only_updates_in_flight_do_not_count_as_changes():
    q = queue()
    p = pod("p")
    q.add(p)
    info = await q.pop()
    q.update(dict(p, status={"phase": "Pending"}, metadata=dict(p["metadata"], resourceVersion="7")))
    q.add_unschedulable(info)
    assert q.pending()["unschedulable"] == [info.key]


async def test_move_request_during_the_attempt_sends_the_failure_to_backoff():
    q = queue()
    q.add(pod("p"))
    info = await q.pop()
    q.move_all_to_active_or_backoff("AssignedPodDelete")  # while the pod was being scheduled
    q.add_unschedulable(info)
    assert q.pending()["backoff"] == [info.key]
    assert await pop_soon(q) is info


async def test_done_and_delete():
    q = queue()
    a, b = pod("a"), pod("b")
    q.add(a)
    q.add(b)
    first = await q.pop()
    q.done(first)
    q.delete(b)
    assert await pop_soon(q, 0.05) is None and len(q) == 0
    # a pod deleted while in flight is not requeued by its failure
    q.add(a)
    info = await q.pop()
    q.delete(a)
    q.add_unschedulable(info)
    assert q.pending() == {"active": [], "backoff": [], "unschedulable": [], "in_flight": []}


async def test_updates_in_the_pool_requeue_only_real_changes():
    q = queue()
    p = pod("p")
    q.add(p)
    info = await q.pop()
    q.add_unschedulable(info)
    status_only = dict(p, status={"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False"}]},
                       metadata=dict(p["metadata"], resourceVersion="2"))
    q.update(status_only)
    assert q.pending()["unschedulable"] == [info.key]
    tolerant = dict(p, spec=dict(p["spec"], tolerations=[{"operator": "Exists"}]))
    q.update(tolerant)
    assert await pop_soon(q) is info and info.pod is tolerant


async def test_errors_back_off_without_counting_as_unschedulable():
    q = queue()
    q.add(pod("p"))
    info = await q.pop()
    q.add_unschedulable(info, error=True)
    assert info.unschedulable_count == 0 and q.pending()["backoff"] == [info.key]
    assert await pop_soon(q) is info


async def test_pods_unschedulable_for_too_long_are_retried_anyway():
    q = queue(max_unschedulable_duration=0.05, unschedulable_flush_interval=0.02)
    q.add(pod("p"))
    info = await q.pop()
    q.add_unschedulable(info)
    start = time.monotonic()
    assert await pop_soon(q, 1) is info
    assert time.monotonic() - start >= 0.05


async def test_add_of_a_queued_pod_brings_it_forward():
    q = queue()
    q.add(pod("x"))
    info = await q.pop()
    q.add_unschedulable(info)
    q.add(info.pod)  # e.g. a relist delivering it as an add
    assert q.pending()["active"] == [info.key]


@pytest.mark.parametrize("n", [200])
async def test_many_pods_each_handed_out_once(n):
    q = queue()
    pods = [pod(f"p{i}", priority=i % 3) for i in range(n)]
    for p in pods:
        q.add(p)
    seen = []
    for _ in range(n):
        info = await q.pop()
        seen.append(info.key)
        if len(seen) % 2:
            q.done(info)
        else:
            q.add_unschedulable(info)
    assert len(set(seen)) == n
    q.move_all_to_active_or_backoff("NodeAdd")
    again = {(await q.pop()).key for _ in range(n // 2)}
    assert len(again) == n // 2 and again <= set(seen)


async def test_a_cancelled_pop_stays_cancelled_when_a_pod_arrives_at_the_same_moment():
    """Python 3.11's asyncio.wait_for swallowed such a cancel and handed the pod out: a scheduler
    told to stop (leadership lost) kept scheduling, and whoever waited for it waited for ever."""
    q = queue()
    waiting = asyncio.create_task(q.pop())
    await asyncio.sleep(0.01)           # pop is asleep, waiting for a pod
    q.add(pod("late"))                  # wakes it ...
    waiting.cancel()                    # ... in the same turn of the loop as the cancel
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert names(await pop_soon(q)) == ["late"]     # the pod is still there for the next pop
