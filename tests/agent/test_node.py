"""A node agent registers its Node as the kubelet does, keeps its Lease renewed, and many share one process."""
from __future__ import annotations

import time

from boxkube.agent.config import AgentSettings
from boxkube.agent.node import LEASE_NAMESPACE
from tests.agent.conftest import FAST, LEASES, NODES, eventually, give_pod_cidrs


def conditions(node):
    return {c["type"]: c for c in node["status"]["conditions"]}


async def test_node_registers_and_becomes_ready_with_lease_renewed(client, agents):
    [name] = agents.node_names()
    await agents.start([name], pod_cidrs=False, labels={"disk": "ssd"},
                       taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
    node = await client.get(NODES, name)
    labels = node["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == name and labels["kubernetes.io/os"] == "linux"
    assert labels["kubernetes.io/arch"] and labels["beta.kubernetes.io/os"] == "linux" and labels["disk"] == "ssd"
    assert node["spec"]["taints"] == [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]
    status = node["status"]
    assert status["capacity"]["cpu"] == "4" and status["allocatable"]["pods"] == "110"
    assert status["nodeInfo"]["kubeletVersion"] == "v1.37.0"
    assert status["nodeInfo"]["containerRuntimeVersion"].startswith("simulated://")
    assert {"type": "Hostname", "address": name} in status["addresses"]
    assert status["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
    c = conditions(node)
    assert [x["type"] for x in status["conditions"]] == ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
    assert c["MemoryPressure"]["reason"] == "KubeletHasSufficientMemory"
    # Without a podCIDR the network is not ready, so neither is the node.
    assert c["Ready"]["status"] == "False" and c["Ready"]["reason"] == "KubeletNotReady"
    assert "NetworkPluginNotReady" in c["Ready"]["message"]

    await give_pod_cidrs(client, [name])

    async def ready():
        c = conditions(await client.get(NODES, name))["Ready"]
        return c["status"] == "True" and c["reason"] == "KubeletReady" and \
            c["message"] == "kubelet is posting ready status"
    await eventually(ready, timeout=5)

    lease = await client.get(LEASES, name, LEASE_NAMESPACE)
    assert lease["spec"]["holderIdentity"] == name and lease["spec"]["leaseDurationSeconds"] == 2
    assert lease["metadata"]["ownerReferences"][0]["kind"] == "Node"
    first = lease["spec"]["renewTime"]

    async def renewed():
        return (await client.get(LEASES, name, LEASE_NAMESPACE))["spec"]["renewTime"] != first
    await eventually(renewed, timeout=3)


async def test_fifty_nodes_in_one_process_register_quickly(client, agents):
    names = agents.node_names(50)
    started = time.monotonic()
    group = await agents.start(names, settings=AgentSettings(lease_duration=10, status_report_interval=60))
    assert len(group.leases) == 50

    async def all_ready():
        listed = await client.list(NODES)
        mine = [n for n in listed["items"] if n["metadata"]["name"] in set(names)]
        return len(mine) == 50 and all(conditions(n)["Ready"]["status"] == "True" for n in mine)
    await eventually(all_ready, timeout=10)
    assert time.monotonic() - started < 10
    leases = [l for l in (await client.list(LEASES, LEASE_NAMESPACE))["items"] if l["metadata"]["name"] in names]
    assert len(leases) == 50


async def test_deleted_node_stops_its_heartbeats(client, agents):
    [name] = agents.node_names()
    group = await agents.start([name], settings=FAST)
    await client.delete(NODES, name)
    await eventually(lambda: _removed(group, name), timeout=5)
    assert len(group.leases) == 0 and len(group.statuses) == 0


async def _removed(group, name):
    return group.agents[name].removed
