"""Leader election against the real API server, with durations shrunk to fractions of a second."""
from __future__ import annotations

import asyncio
import time

import pytest

from boxkube.client import ApiClient
from boxkube.client.leaderelection import LEASES, LeaderElectionConfig, LeaderElector

# short, with room for a busy machine (a renewal may take a while when the suite runs beside others)
FAST = {"lease_duration": 3.0, "renew_deadline": 2.0, "retry_period": 0.2}


class Candidate:
    """An elector running in the background, recording when it led."""

    def __init__(self, client: ApiClient, namespace: str, identity: str, **timing):
        config = LeaderElectionConfig(namespace, "lock", identity, **{**FAST, **timing})
        self.elector = LeaderElector(client, config)
        self.started: list[float] = []
        self.stopped: list[float] = []
        self.task: asyncio.Task | None = None

    async def _lead(self) -> None:
        self.started.append(time.monotonic())
        await asyncio.Event().wait()   # work until cancelled

    def start(self) -> "Candidate":
        self.task = asyncio.create_task(self.elector.run(self._lead, lambda: self.stopped.append(time.monotonic())))
        return self

    @property
    def leading(self) -> bool:
        return len(self.started) > len(self.stopped)

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def until(predicate, timeout: float = 5.0) -> float:
    """Seconds it took for `predicate()` to hold."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


async def test_one_of_two_leads_and_the_other_takes_over_when_it_stops(client, ns):
    a, b = Candidate(client, ns, "a").start(), Candidate(client, ns, "b").start()
    await until(lambda: a.leading or b.leading)
    await asyncio.sleep(0.6)   # several retry periods: the other must still be waiting
    assert a.leading != b.leading
    leader, other = (a, b) if a.leading else (b, a)
    lease = await client.get(LEASES, "lock", ns)
    assert lease["spec"]["holderIdentity"] == leader.elector.identity
    assert lease["spec"]["leaseDurationSeconds"] == 3
    assert lease["spec"]["acquireTime"] and lease["spec"]["renewTime"]
    assert other.elector.leader == leader.elector.identity and not other.elector.is_leader

    # A clean stop releases the lease: the other takes over within a retry or two, not a lease duration.
    await leader.stop()
    assert leader.stopped and not leader.leading
    took = await until(lambda: other.leading)
    assert took < 1.5   # a retry or two, well before the 3 s lease would have expired
    lease = await client.get(LEASES, "lock", ns)
    assert lease["spec"]["holderIdentity"] == other.elector.identity
    assert lease["spec"]["leaseTransitions"] == 1
    await other.stop()


async def test_a_crashed_leader_is_replaced_once_its_lease_expires(client, ns):
    crashed = Candidate(client, ns, "crashed", release_on_cancel=False).start()
    await until(lambda: crashed.leading)
    standby = Candidate(client, ns, "standby").start()
    await asyncio.sleep(0.5)
    assert not standby.leading
    await crashed.stop()     # no release: as if the process died
    took = await until(lambda: standby.leading, timeout=8)
    # the standby must wait out the lease duration from when it last saw the record change
    assert 2.0 < took < 5.5
    assert (await client.get(LEASES, "lock", ns))["spec"]["holderIdentity"] == "standby"
    await standby.stop()


async def test_a_leader_that_cannot_renew_stops_leading(client, ns):
    leader = Candidate(client, ns, "leader").start()
    await until(lambda: leader.leading)
    # Someone else writes the lease behind its back: its renewals now fail with 409 or see another holder.
    lease = await client.get(LEASES, "lock", ns)
    lease["spec"]["holderIdentity"] = "usurper"
    await client.replace(LEASES, lease, ns)
    took = await until(lambda: not leader.leading)
    assert took < 4.0   # the renew deadline (2 s) plus a retry, with room for a busy machine
    assert leader.task.done() and leader.task.exception() is None
    assert (await client.get(LEASES, "lock", ns))["spec"]["holderIdentity"] == "usurper"


async def test_racing_candidates_one_wins_by_resource_version(client, ns):
    a = LeaderElector(client, LeaderElectionConfig(ns, "race", "a", **FAST))
    b = LeaderElector(client, LeaderElectionConfig(ns, "race", "b", **FAST))
    # no lease yet: both create, one gets AlreadyExists
    assert sorted(await asyncio.gather(a.try_acquire_or_renew(), b.try_acquire_or_renew())) == [False, True]
    winner = a if a.is_leader else b
    await winner._release()
    assert (await client.get(LEASES, "race", ns))["spec"]["holderIdentity"] == ""
    # a released lease: both update from the same resourceVersion, one gets 409 Conflict
    c = LeaderElector(client, LeaderElectionConfig(ns, "race", "c", **FAST))
    d = LeaderElector(client, LeaderElectionConfig(ns, "race", "d", **FAST))
    assert sorted(await asyncio.gather(c.try_acquire_or_renew(), d.try_acquire_or_renew())) == [False, True]
    assert (await client.get(LEASES, "race", ns))["spec"]["holderIdentity"] in ("c", "d")


async def test_the_work_ending_by_itself_releases_the_lease(client, ns):
    elector = LeaderElector(client, LeaderElectionConfig(ns, "oneshot", "worker", **FAST))

    async def work() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await elector.run(work)
    assert (await client.get(LEASES, "oneshot", ns))["spec"]["holderIdentity"] == ""


def test_timings_are_checked():
    with pytest.raises(ValueError, match="renew deadline"):
        LeaderElectionConfig("ns", "n", "id", lease_duration=10, renew_deadline=15)
    with pytest.raises(ValueError, match="retry period"):
        LeaderElectionConfig("ns", "n", "id", lease_duration=15, renew_deadline=2, retry_period=2)
    with pytest.raises(ValueError, match="identity"):
        LeaderElectionConfig("ns", "n", "")


async def test_release_succeeds_even_when_our_copy_of_the_lease_is_stale(client, ns):
    """A renewal cut short by the cancel can be stored without the elector seeing it; the release
    must still hand the Lease back at once instead of leaving the rival to wait for its expiry."""
    a = Candidate(client, ns, "a", lease_duration=30.0, renew_deadline=20.0, retry_period=10.0).start()
    await until(lambda: a.leading)
    lease = await client.get(LEASES, "lock", ns)
    # the Lease moves on behind the elector's back, still held by "a" (as a stored renewal would)
    await client.patch(LEASES, "lock", {"metadata": {"labels": {"moved": "on"}}}, ns)
    await a.stop()
    released = await client.get(LEASES, "lock", ns)
    assert released["metadata"]["resourceVersion"] != lease["metadata"]["resourceVersion"]
    assert not released["spec"].get("holderIdentity")
