"""The running scheduler against the real API server: binding, FailedScheduling, retries, schedulerName,
and two copies under leader election."""
from __future__ import annotations

import asyncio
import time

from boxkube.client import ApiClient, ApiError
from boxkube.client.leaderelection import LeaderElectionConfig, LeaderElector

from live_helpers import PODS, Pool, running


async def test_pods_are_bound_to_nodes_that_fit(pool: Pool, cluster):
    small = await pool.add_node("small", cpu="1")
    big = await pool.add_node("big", cpu="4")
    ssd = await pool.add_node("ssd", cpu="1", labels={"disk": "ssd"})
    tainted = await pool.add_node("gpu", cpu="8", taints=[{"key": "gpu", "value": "yes", "effect": "NoSchedule"}])
    async with running(pool.scheduler()):
        await pool.add_pod("wide-1", cpu="1500m")
        await pool.add_pod("wide-2", cpu="1500m")
        await pool.add_pod("on-ssd", nodeSelector={"disk": "ssd"})
        await pool.add_pod("gpu-job", cpu="6",
                           tolerations=[{"key": "gpu", "operator": "Equal", "value": "yes", "effect": "NoSchedule"}])
        bound = await pool.wait_bound("wide-1", "wide-2", "on-ssd", "gpu-job")
    # 1.5 cpu fits only the 4-cpu node, twice (the first one assumed there is counted for the second)
    assert bound == {"wide-1": big, "wide-2": big, "on-ssd": ssd, "gpu-job": tainted}
    assert small not in bound.values()

    pod = await pool.client.get(PODS, "on-ssd", pool.namespace)
    scheduled = [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert [c["status"] for c in scheduled] == ["True"]
    events = await pool.events("on-ssd")
    assert [(e["type"], e["reason"], e["message"]) for e in events] == [
        ("Normal", "Scheduled", f"Successfully assigned {pool.namespace}/on-ssd to {ssd}")]
    assert events[0]["source"]["component"] == pool.scheduler_name
    assert events[0]["reportingComponent"] == pool.scheduler_name


async def test_an_unfittable_pod_is_reported_and_scheduled_once_a_node_fits(pool: Pool, cluster):
    await pool.add_node("a", cpu="1")
    await pool.add_node("b", cpu="1", memory="1Gi")
    await pool.add_node("c", cpu="2", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
    async with running(pool.scheduler()):
        await pool.add_pod("huge", cpu="3", memory="2Gi")
        expected = ("0/3 nodes are available: 1 Insufficient memory, 1 node(s) had untolerated taint "
                    "{dedicated: db}, 2 Insufficient cpu.")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while True:
            pod = await pool.client.get(PODS, "huge", pool.namespace)
            conditions = {c["type"]: c for c in pod["status"].get("conditions") or []}
            if "PodScheduled" in conditions or loop.time() > deadline:
                break
            await asyncio.sleep(0.05)
        condition = conditions["PodScheduled"]
        assert (condition["status"], condition["reason"], condition["message"]) == ("False", "Unschedulable", expected)
        assert not pod["spec"].get("nodeName")
        events = await pool.events("huge")
        assert [(e["type"], e["reason"], e["message"]) for e in events][:1] == [
            ("Warning", "FailedScheduling", expected)]
        # kubectl describe shows it as on any cluster
        described = cluster.kubectl("describe", "pod", "huge", "-n", pool.namespace).stdout
        assert "FailedScheduling" in described and expected in described

        # a node that fits arrives: the NodeAdd event moves the pod back and it is bound there
        big = await pool.add_node("big", cpu="4", memory="8Gi")
        assert await pool.wait_bound("huge") == {"huge": big}
    pod = await pool.client.get(PODS, "huge", pool.namespace)
    assert [c["status"] for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"] == ["True"]
    assert (await pool.events("huge"))[-1]["reason"] == "Scheduled"


async def test_pods_of_another_scheduler_are_left_alone(pool: Pool):
    await pool.add_node("a")
    async with running(pool.scheduler()):
        await pool.add_pod("theirs", scheduler_name="someone-else")
        await pool.add_pod("ours")
        await pool.wait_bound("ours")
        await asyncio.sleep(0.3)
        assert await pool.node_of("theirs") is None
    assert await pool.events("theirs") == []


class FlakyBinder(ApiClient):
    """A client whose first binding fails, as when the API server has a bad moment."""

    failures = 1

    async def bind(self, pod: str, namespace: str, node: str, **options):
        if self.failures:
            self.failures -= 1
            raise ApiError({"code": 500, "reason": "InternalError", "message": "etcd is having a bad day"})
        return await super().bind(pod, namespace, node, **options)


async def test_a_failed_binding_is_forgotten_and_retried(pool: Pool, cluster):
    node = await pool.add_node("only", cpu="1")
    async with FlakyBinder.from_kubeconfig(str(cluster.kubeconfig)) as flaky:
        scheduler = pool.scheduler(flaky)
        async with running(scheduler):
            await pool.add_pod("fills-the-node", cpu="1")
            # the pod held the node's whole cpu while assumed; forgotten, it must fit again on the retry
            assert await pool.wait_bound("fills-the-node") == {"fills-the-node": node}
            assert [p.name for p in scheduler.snapshot.get(node).pods.values()] == ["fills-the-node"]
    events = await pool.events("fills-the-node")
    assert [e["reason"] for e in events] == ["FailedScheduling", "Scheduled"]
    assert "etcd is having a bad day" in events[0]["message"]


class RecordingClient(ApiClient):
    """A client that notes when it sends each binding."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.binds: list[tuple[float, str]] = []

    async def bind(self, pod: str, namespace: str, node: str, **options):
        self.binds.append((time.monotonic(), pod))
        return await super().bind(pod, namespace, node, **options)


async def test_two_schedulers_under_leader_election_never_both_bind(pool: Pool, cluster):
    await pool.add_node("a", cpu="100", pods="500")
    await pool.add_node("b", cpu="100", pods="500")
    # short, but with room for a busy machine: a slow renewal must not hand the lease over mid-test
    timing = {"lease_duration": 6.0, "renew_deadline": 4.0, "retry_period": 0.2}
    copies = []
    for identity in ("one", "two"):
        client = RecordingClient.from_kubeconfig(str(cluster.kubeconfig))
        elector = LeaderElector(client, LeaderElectionConfig(pool.namespace, "scheduler", identity, **timing))
        terms: list[list[float]] = []

        def started(terms=terms) -> None:
            terms.append([time.monotonic(), float("inf")])

        def stopped(terms=terms) -> None:
            if terms and terms[-1][1] == float("inf"):
                terms[-1][1] = time.monotonic()

        async def lead(client=client, started=started) -> None:
            started()
            await pool.scheduler(client).run()

        task = asyncio.create_task(elector.run(lead, stopped))
        copies.append({"client": client, "elector": elector, "terms": terms, "task": task})
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while not any(c["elector"].is_leader for c in copies):
            assert loop.time() < deadline
            await asyncio.sleep(0.02)
        first = next(c for c in copies if c["elector"].is_leader)
        second = next(c for c in copies if c is not first)

        async def create(names):
            await asyncio.gather(*(pool.add_pod(n, cpu="100m") for n in names))

        batch1 = [f"first-{i}" for i in range(15)]
        await create(batch1)
        await pool.wait_bound(*batch1)

        # the leader stops while a second burst is arriving: the other takes over and binds the rest
        batch2 = [f"second-{i}" for i in range(15)]
        creating = asyncio.create_task(create(batch2))
        await asyncio.sleep(0.05)
        first["task"].cancel()
        await asyncio.gather(first["task"], return_exceptions=True)
        await creating
        batch3 = [f"third-{i}" for i in range(5)]   # surely after the hand-over
        await create(batch3)
        await pool.wait_bound(*batch2, *batch3)
    finally:
        for c in copies:
            c["task"].cancel()
        await asyncio.gather(*(c["task"] for c in copies), return_exceptions=True)
        for c in copies:
            await c["client"].close()

    assert second["terms"], "the standby never took over"
    first_ended, second_began = first["terms"][0][1], second["terms"][0][0]
    assert first_ended <= second_began, "both led at once"
    # every binding was sent by the copy leading at that moment, and no pod was bound twice
    for copy in copies:
        for at, _ in copy["client"].binds:
            assert any(start <= at <= end for start, end in copy["terms"])
    sent = [pod for c in copies for _, pod in c["client"].binds]
    assert sorted(sent) == sorted(batch1 + batch2 + batch3)
    assert set(batch3) <= {pod for _, pod in second["client"].binds}
