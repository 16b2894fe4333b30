"""Node lifecycle and taint eviction on the real API server: nodes and Leases written by the test, as kwok does."""
from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import datetime, timezone

import pytest

from boxkube.api.times import now_rfc3339
from boxkube.client import ApiError, resource
from boxkube.controllers.base import Settings
from boxkube.controllers.nodelifecycle import (
    TAINT_NOT_READY, TAINT_UNREACHABLE, NodeLifecycleController, TaintEvictionController,
    all_zones_fully_disrupted, toleration_time, wanted_taints,
)

from controller_harness import eventually, running

NODES, LEASES, PODS, EVENTS = resource("nodes"), resource("leases"), resource("pods"), resource("events")
FAST = Settings(node_monitor_grace_period=1.0)


def micro_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ready_condition(status: str = "True") -> dict:
    now = now_rfc3339()
    return {"type": "Ready", "status": status, "reason": "KubeletReady", "message": "kubelet is posting ready status",
            "lastHeartbeatTime": now, "lastTransitionTime": now}


class Kwok:
    """Nodes with Leases the test renews (or stops renewing), like a node agent would."""

    def __init__(self, client):
        self.client, self.nodes, self.renewing = client, [], set()
        self._task: asyncio.Task | None = None

    async def node(self, taints=None) -> str:
        name = f"nlc-{uuid.uuid4().hex[:8]}"
        await self.client.create(NODES, {"metadata": {"name": name}, "spec": {"taints": taints or []},
                                         "status": {"conditions": [ready_condition()]}})
        self.nodes.append(name)
        await self.client.create(LEASES, {"metadata": {"name": name, "namespace": "kube-node-lease"},
                                          "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
                                                   "renewTime": micro_now()}})
        self.renewing.add(name)
        return name

    async def renew(self) -> None:
        while True:
            for name in list(self.renewing):
                with contextlib.suppress(ApiError):
                    await self.client.patch(LEASES, name, {"spec": {"renewTime": micro_now()}}, "kube-node-lease")
            await asyncio.sleep(0.2)

    async def __aenter__(self):
        with contextlib.suppress(ApiError):
            await self.client.create(resource("namespaces"), {"metadata": {"name": "kube-node-lease"}})
        self._task = asyncio.create_task(self.renew())
        return self

    async def __aexit__(self, *exc):
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        for name in self.nodes:
            with contextlib.suppress(ApiError):
                await self.client.delete(NODES, name)
            with contextlib.suppress(ApiError):
                await self.client.delete(LEASES, name, "kube-node-lease")


async def running_pod(client, ns, node, name, tolerations) -> dict:
    pod = await client.create(PODS, {"metadata": {"name": name},
                                     "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                                              "tolerations": tolerations,
                                              "containers": [{"name": "c", "image": "busybox"}]}}, ns)
    pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True",
                                                         "lastTransitionTime": now_rfc3339()}]}
    return await client.replace_status(PODS, pod)


async def gone(client, ns, name) -> bool:
    try:
        pod = await client.get(PODS, name, ns)
    except ApiError as e:
        return e.is_not_found
    return bool(pod["metadata"].get("deletionTimestamp"))


async def events_of(client, ns, name) -> list[tuple[str, str]]:
    items = (await client.list(EVENTS, ns, field_selector=f"involvedObject.name={name}"))["items"]
    return [(e["reason"], e["message"]) for e in items]


def unreachable_for(seconds=None) -> dict:
    t = {"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}
    return t if seconds is None else {**t, "tolerationSeconds": seconds}


async def test_a_silent_node_goes_unknown_is_tainted_and_its_pods_evicted_by_their_tolerations(client, ns):
    async with Kwok(client) as kwok:
        good, lost = await kwok.node(), await kwok.node()
        await running_pod(client, ns, lost, "stays", [unreachable_for()])
        await running_pod(client, ns, lost, "short", [unreachable_for(1)])
        await running_pod(client, ns, lost, "default", [])      # the API server's 300 s toleration
        await running_pod(client, ns, good, "elsewhere", [])
        async with running(client, NodeLifecycleController, TaintEvictionController, settings=FAST):
            kwok.renewing.discard(lost)          # the node agent of `lost` stops

            async def unknown():
                node = await client.get(NODES, lost)
                ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
                return node if ready["status"] == "Unknown" else None
            node = await eventually(unknown)
            ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
            assert (ready["reason"], ready["message"]) == ("NodeStatusUnknown", "Kubelet stopped posting node status.")
            assert {c["type"] for c in node["status"]["conditions"] if c["status"] == "Unknown"} >= {
                "Ready", "MemoryPressure", "DiskPressure", "PIDPressure"}

            async def tainted():
                taints = (await client.get(NODES, lost))["spec"].get("taints") or []
                return taints if {(t["key"], t["effect"]) for t in taints} == {
                    (TAINT_UNREACHABLE, "NoExecute"), (TAINT_UNREACHABLE, "NoSchedule")} else None
            taints = await eventually(tainted)
            assert next(t for t in taints if t["effect"] == "NoExecute").get("timeAdded")

            await eventually(lambda: gone(client, ns, "short"), timeout=10)
            stays = await client.get(PODS, "stays", ns)
            assert next(c for c in stays["status"]["conditions"] if c["type"] == "Ready")["status"] == "False"
            assert not await gone(client, ns, "default")
            assert not (await client.get(NODES, good))["spec"].get("taints")
            elsewhere = await client.get(PODS, "elsewhere", ns)
            assert next(c for c in elsewhere["status"]["conditions"] if c["type"] == "Ready")["status"] == "True"

            await eventually(lambda: _has(client, ns, "short", ("TaintManagerEviction",
                                                                 f"Marking for deletion Pod {ns}/short")))
            await eventually(lambda: _has(client, ns, "stays", ("NodeNotReady", "Node is not ready")))
            await eventually(lambda: _has(client, "default", lost,
                                          ("NodeNotReady", f"Node {lost} status is now: NodeNotReady")))

            # The agent comes back: Ready again, taints gone.
            kwok.renewing.add(lost)
            back = await client.get(NODES, lost)
            back["status"]["conditions"] = [ready_condition()]
            await client.replace_status(NODES, back)

            async def untainted():
                return not (await client.get(NODES, lost))["spec"].get("taints")
            await eventually(untainted)
            assert not await gone(client, ns, "stays")


async def _has(client, ns, name, event):
    return event in await events_of(client, ns, name)


async def test_untolerated_no_execute_taint_evicts_at_once(client, ns):
    async with Kwok(client) as kwok:
        taint = {"key": "example.com/drain", "value": "yes", "effect": "NoExecute"}
        node = await kwok.node()
        await running_pod(client, ns, node, "intolerant", [])
        await running_pod(client, ns, node, "tolerant", [{"key": "example.com/drain", "operator": "Equal",
                                                          "value": "yes", "effect": "NoExecute"}])
        async with running(client, TaintEvictionController, settings=FAST):
            got = await client.get(NODES, node)
            got["spec"]["taints"] = [taint]
            await client.replace(NODES, got)
            await eventually(lambda: gone(client, ns, "intolerant"), timeout=5)
            pod = None
            with contextlib.suppress(ApiError):
                pod = await client.get(PODS, "intolerant", ns)
            if pod is not None:      # still there for its (zero) grace period: marked as a disruption target
                assert any(c["type"] == "DisruptionTarget" for c in pod["status"]["conditions"])
            await asyncio.sleep(0.5)
            assert not await gone(client, ns, "tolerant")
            # A new taint it does not tolerate: the tolerant pod goes too, at once.
            got = await client.get(NODES, node)
            got["spec"]["taints"] = [{"key": "example.com/soon", "effect": "NoExecute"}]
            await client.replace(NODES, got)
            await eventually(lambda: gone(client, ns, "tolerant"), timeout=5)


def test_toleration_time_is_the_shortest_matching_or_zero_when_untolerated():
    unreachable = {"key": TAINT_UNREACHABLE, "effect": "NoExecute"}
    not_ready = {"key": TAINT_NOT_READY, "effect": "NoExecute"}
    assert toleration_time([unreachable], [unreachable_for()]) is None
    assert toleration_time([unreachable], [unreachable_for(30)]) == 30
    assert toleration_time([unreachable, not_ready], [unreachable_for(30)]) == 0
    assert toleration_time([unreachable, not_ready], [unreachable_for(30), {"operator": "Exists",
                                                                            "tolerationSeconds": 5}]) == 5
    assert toleration_time([unreachable], [unreachable_for(-3)]) == 0


def test_condition_taints_keep_others_and_their_time():
    node = {"spec": {"unschedulable": True, "taints": [
        {"key": "team", "value": "a", "effect": "NoSchedule"},
        {"key": TAINT_NOT_READY, "effect": "NoExecute", "timeAdded": "2020-01-01T00:00:00Z"}]},
        "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "DiskPressure", "status": "True"}]}}
    taints = wanted_taints(node, True, "2030-01-01T00:00:00Z")
    assert {(t["key"], t["effect"]) for t in taints} == {
        ("team", "NoSchedule"), (TAINT_NOT_READY, "NoExecute"), (TAINT_NOT_READY, "NoSchedule"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"), ("node.kubernetes.io/unschedulable", "NoSchedule")}
    assert next(t for t in taints if t["effect"] == "NoExecute")["timeAdded"] == "2020-01-01T00:00:00Z"
    # In full disruption no NoExecute taint is kept or added.
    assert all(t["effect"] != "NoExecute" for t in wanted_taints(node, False, "x"))


@pytest.mark.parametrize("statuses, zones, disrupted", [
    (["Unknown", "Unknown"], ["a", "a"], True),
    (["Unknown", "True"], ["a", "a"], False),
    (["Unknown", "True"], ["a", "b"], False),
    (["Unknown", "False"], ["a", "b"], True),
    ([], [], False),
])
def test_full_disruption_means_no_node_ready_in_any_zone(statuses, zones, disrupted):
    nodes = [{"metadata": {"labels": {"topology.kubernetes.io/zone": z}},
              "status": {"conditions": [{"type": "Ready", "status": s}]}} for s, z in zip(statuses, zones)]
    assert all_zones_fully_disrupted(nodes) is disrupted
