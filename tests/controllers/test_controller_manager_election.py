"""Two controller managers in-process, electing a leader on a Lease: one reconciles, the other takes over.

Both run only the ReplicaSet controller with informers scoped to the test's
namespace, and their Lease is in that namespace too, so nothing outside it is
touched. Which manager made a pod is read from its SuccessfulCreate event's
source.host (each manager's host is its identity).
"""
from __future__ import annotations

import asyncio

from boxkube.client import ApiClient, resource
from boxkube.client.leaderelection import LEASES, LeaderElectionConfig
from boxkube.controllers.manager import ControllerManager

from controller_harness import eventually

RS, PODS, EVENTS = resource("replicasets.apps"), resource("pods"), resource("events")
# short, with room for a busy machine (as in tests/client/test_leaderelection.py)
FAST = {"lease_duration": 3.0, "renew_deadline": 2.0, "retry_period": 0.2}


def manager(client: ApiClient, ns: str, identity: str) -> ControllerManager:
    election = LeaderElectionConfig(ns, "kube-controller-manager", identity, **FAST)
    return ControllerManager(client, ["replicaset"], host=identity, namespace=ns, leader_election=election)


def replicaset(replicas: int) -> dict:
    labels = {"app": "elected"}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "elected"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}


async def creators(client: ApiClient, ns: str) -> list[str]:
    """The hosts that created pods, one entry per pod created."""
    events = (await client.list(EVENTS, ns, field_selector="reason=SuccessfulCreate"))["items"]
    return sorted(e["source"]["host"] for e in events for _ in range(e.get("count", 1)))


async def live_pods(client: ApiClient, ns: str) -> int:
    return len([p for p in (await client.list(PODS, ns))["items"] if not p["metadata"].get("deletionTimestamp")])


async def test_one_manager_reconciles_and_the_other_takes_over_when_it_stops(client, ns):
    a, b = manager(client, ns, "cm-a"), manager(client, ns, "cm-b")
    both_running: list[bool] = []

    async def watch_overlap() -> None:
        while True:
            both_running.append(a.running and b.running)
            await asyncio.sleep(0.01)

    tasks = {a: asyncio.create_task(a.run()), b: asyncio.create_task(b.run())}
    overlap = asyncio.create_task(watch_overlap())
    try:
        await eventually(lambda: a.running or b.running, what="a leader")
        leader, other = (a, b) if a.running else (b, a)
        await client.create(RS, replicaset(2), ns)
        await eventually(lambda: _equals(live_pods(client, ns), 2), what="two pods")
        await eventually(lambda: _equals(creators(client, ns), [leader.host] * 2), what="the leader's pods")
        await asyncio.sleep(1.0)   # several retry periods: the other still waits, and made nothing
        assert not other.running and other.elector.leader == leader.host
        assert await live_pods(client, ns) == 2

        tasks[leader].cancel()     # a clean stop hands the Lease over at once
        await asyncio.gather(tasks[leader], return_exceptions=True)
        assert not leader.running
        await eventually(lambda: other.running, timeout=5, what="the other taking over")
        lease = await client.get(LEASES, "kube-controller-manager", ns)
        assert lease["spec"]["holderIdentity"] == other.host and lease["spec"]["leaseTransitions"] >= 1

        await client.scale(RS, "elected", 3, ns)
        await eventually(lambda: _equals(creators(client, ns), sorted([leader.host] * 2 + [other.host])),
                         what="the new leader's pod")
        assert await live_pods(client, ns) == 3
        assert not any(both_running)
    finally:
        overlap.cancel()
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(overlap, *tasks.values(), return_exceptions=True)


async def _equals(value, expected) -> bool:
    return await value == expected
