"""Switching a simulated node off and on (`sim.boxkube.dev/power: "off"` on its Node, which `boxkube node
stop/start` sets and removes): off, it is a dead machine that the node lifecycle controller finds silent;
on, it boots as a rebooted kubelet and runs its pods again."""
from __future__ import annotations

import asyncio
import io
import uuid
from types import SimpleNamespace

import yaml

from boxkube.agent.node import LEASE_NAMESPACE
from boxkube.agent.runtime.simulated import POWER_ANNOTATION, SimulatedRuntime, power_is_off
from boxkube.cli.context import Context
from boxkube.cli.main import run
from boxkube.client import ApiError, resource
from boxkube.cluster.kubeconfig import build_kubeconfig
from boxkube.cluster.state import ClusterState, cluster_dir
from boxkube.controllers.base import Settings
from boxkube.controllers.nodelifecycle import NodeLifecycleController
from tests.agent.conftest import LEASES, NODES, PODS, eventually
from tests.controllers.controller_harness import running

EVENTS = resource("events")

# A node is Unknown after 2 s without a Lease renewal (the agents renew every 0.5 s).
LIFECYCLE = Settings(node_monitor_grace_period=2.0)


def pod_body(node: str, **annotations: str) -> dict:
    return {"metadata": {"name": f"p-{uuid.uuid4().hex[:6]}", "annotations": annotations},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "busybox"}]}}


def ready(node: dict) -> dict:
    return next(c for c in node["status"]["conditions"] if c["type"] == "Ready")


def app_status(pod: dict) -> dict:
    return ((pod.get("status") or {}).get("containerStatuses") or [{}])[0]


async def switch(client, node: str, off: bool) -> None:
    await client.patch(NODES, node, {"metadata": {"annotations": {POWER_ANNOTATION: "off" if off else None}}})


def test_power_annotation_values():
    def node(value):
        return {"metadata": {"annotations": {} if value is None else {POWER_ANNOTATION: value}}}
    assert power_is_off(node("off")) and power_is_off(node(" Off "))
    assert not any(power_is_off(node(v)) for v in (None, "on", "", "false"))
    assert not power_is_off({"metadata": {}})


async def test_simulated_runtime_loses_everything_with_the_power():
    runtime = SimulatedRuntime("n", start_delay=0)
    await runtime.update_pod_cidr("10.9.0.0/24")
    pod = {"metadata": {"uid": "u", "namespace": "ns", "name": "p"}, "spec": {"containers": [{"name": "c"}]}}
    sandbox = await runtime.run_sandbox(pod)
    await runtime.start_container(sandbox, pod, {"name": "c", "image": "busybox"}, 0)
    await runtime.lose_power()
    assert await runtime.list_sandboxes() == [] and await runtime.list_containers() == []
    assert runtime.network_ready()[0] is False        # the podCIDR comes again when the node boots


async def test_switched_off_node_goes_silent_and_comes_back_as_after_a_reboot(client, ns, agents):
    name, other = agents.node_names(2)
    group = await agents.start([name, other])
    agent = group.agents[name]
    kept = await client.create(PODS, pod_body(name), ns)
    doomed = await client.create(PODS, pod_body(name), ns)

    async def both_running():
        pods = [await client.get(PODS, p["metadata"]["name"], ns) for p in (kept, doomed)]
        return pods if all(p["status"].get("phase") == "Running" for p in pods) else None
    before = app_status((await eventually(both_running, timeout=10))[0])
    assert before["restartCount"] == 0
    boot_id = (await client.get(NODES, name))["status"]["nodeInfo"]["bootID"]

    async with running(client, NodeLifecycleController, settings=LIFECYCLE):
        await switch(client, name, off=True)

        async def dark():           # powered_off is set as the switch-off begins; the containers go at its end
            return agent.powered_off and await agents.runtimes[name].list_containers() == []
        await eventually(dark, timeout=5)
        assert agent not in group.leases._members and not agent.workers

        # No Lease renewals any more (every 0.5 s while it was on), and so the node goes Unknown.
        renewed = (await client.get(LEASES, name, LEASE_NAMESPACE))["spec"]["renewTime"]

        async def unknown():
            node = await client.get(NODES, name)
            return node if ready(node)["status"] == "Unknown" else None
        node = await eventually(unknown, timeout=15)
        assert ready(node)["reason"] == "NodeStatusUnknown"
        assert (await client.get(LEASES, name, LEASE_NAMESPACE))["spec"]["renewTime"] == renewed
        assert ready(await client.get(NODES, other))["status"] == "True"

        # Nothing acts on its pods: a new one gets no status, a deleted one stays Terminating.
        late = await client.create(PODS, pod_body(name), ns)
        await client.delete(PODS, doomed["metadata"]["name"], ns)
        await asyncio.sleep(1.0)
        assert not (await client.get(PODS, late["metadata"]["name"], ns)).get("status", {}).get("containerStatuses")
        assert (await client.get(PODS, doomed["metadata"]["name"], ns))["metadata"].get("deletionTimestamp")
        assert (await client.get(LEASES, name, LEASE_NAMESPACE))["spec"]["renewTime"] == renewed

        await switch(client, name, off=False)

        async def ready_again():
            node = await client.get(NODES, name)
            return node if ready(node)["status"] == "True" and ready(node)["reason"] == "KubeletReady" else None
        node = await eventually(ready_again, timeout=10)
        assert node["status"]["nodeInfo"]["bootID"] != boot_id          # it rebooted
        assert not agent.powered_off and agent in group.leases._members
        renewed_again = (await client.get(LEASES, name, LEASE_NAMESPACE))["spec"]["renewTime"]
        assert renewed_again != renewed

        # Its pods: the one still bound runs again, one restart later; the one deleted meanwhile is gone.
        async def kept_running():
            p = await client.get(PODS, kept["metadata"]["name"], ns)
            s = app_status(p)
            return s if p["status"]["phase"] == "Running" and "running" in s.get("state", {}) else None
        after = await eventually(kept_running, timeout=10)
        assert after["restartCount"] == 1 and after["containerID"] != before["containerID"]
        assert after["lastState"]["terminated"]["reason"] == "ContainerStatusUnknown"
        assert after["lastState"]["terminated"]["exitCode"] == 137

        async def late_running():
            return (await client.get(PODS, late["metadata"]["name"], ns))["status"].get("phase") == "Running"
        await eventually(late_running, timeout=10)

        async def doomed_gone():
            try:
                await client.get(PODS, doomed["metadata"]["name"], ns)
            except ApiError as e:
                return e.is_not_found
            return False
        await eventually(doomed_gone, timeout=10)

        async def rebooted_event():
            events = await client.list(EVENTS, "default", field_selector=f"involvedObject.name={name}")
            return any(e["reason"] == "Rebooted" for e in events["items"])
        await eventually(rebooted_event, timeout=10)


async def test_node_switched_off_before_its_agent_starts_stays_dark_until_switched_on(client, ns, agents):
    [name] = agents.node_names()
    group = await agents.start([name])
    pod = await client.create(PODS, pod_body(name), ns)

    async def pod_running():
        return (await client.get(PODS, pod["metadata"]["name"], ns))["status"].get("phase") == "Running"
    await eventually(pod_running, timeout=10)
    # The agent process goes away, the node is switched off meanwhile, and the process comes back.
    await agents.stop(group)
    await switch(client, name, off=True)
    renewed = (await client.get(LEASES, name, LEASE_NAMESPACE))["spec"]["renewTime"]
    group = await agents.start([name])
    agent = group.agents[name]
    assert agent.powered_off and await agents.runtimes[name].list_containers() == []
    await asyncio.sleep(1.0)
    assert (await client.get(LEASES, name, LEASE_NAMESPACE))["spec"]["renewTime"] == renewed

    await switch(client, name, off=False)

    async def restarted():
        s = app_status(await client.get(PODS, pod["metadata"]["name"], ns))
        return s if "running" in s.get("state", {}) and s["restartCount"] == 1 else None
    await eventually(restarted, timeout=10)
    assert (await client.get(LEASES, name, LEASE_NAMESPACE))["spec"]["renewTime"] != renewed


async def test_a_quick_off_and_on_settles_in_the_last_state(client, ns, agents):
    [name] = agents.node_names()
    group = await agents.start([name])
    agent = group.agents[name]
    for off in (True, False, True, False, True):
        await switch(client, name, off=off)
    await eventually(lambda: _is(agent.powered_off and not agent.running), timeout=5)
    await switch(client, name, off=False)

    async def ready_again():
        node = await client.get(NODES, name)
        return not agent.powered_off and ready(node)["status"] == "True"
    await eventually(ready_again, timeout=10)


# -- the `boxkube node` commands, against the session cluster and nodes run here ---------------------------


def boxkube_cli(cluster, *argv: str) -> tuple[int, str]:
    """Run the CLI in-process on the session cluster; its exit code and stderr."""
    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), Context.create(environ=cluster.env, stdout=out, stderr=err))
    return code, err.getvalue()


async def test_node_stop_and_start_commands(cluster, client, agents):
    [name] = agents.node_names()
    group = await agents.start([name])
    agent = group.agents[name]

    async def cli(*argv: str) -> tuple[int, str]:   # in a thread: the command runs an event loop of its own
        return await asyncio.to_thread(boxkube_cli, cluster, *argv)

    code, err = await cli("node", "stop", name, "--name", cluster.name)
    assert code == 0, err
    assert err.startswith(f'Stopped node "{name}"') and f"boxkube node start {name} --name {cluster.name}" in err
    assert (await client.get(NODES, name))["metadata"]["annotations"][POWER_ANNOTATION] == "off"
    await eventually(lambda: _is(agent.powered_off), timeout=5)
    assert await cli("node", "stop", name, "--name", cluster.name) == (
        0, f'Node "{name}" is already stopped; nothing to do.\n')

    code, err = await cli("node", "start", name, "--name", cluster.name)
    assert code == 0, err
    assert err.startswith(f'Started node "{name}"')
    assert POWER_ANNOTATION not in (await client.get(NODES, name))["metadata"].get("annotations", {})
    await eventually(lambda: _is(not agent.powered_off and agent.running), timeout=5)
    assert await cli("node", "start", name, "--name", cluster.name) == (
        0, f'Node "{name}" is already running; nothing to do.\n')


async def test_node_commands_say_what_is_wrong_in_one_line(cluster, client):
    handmade = f"handmade-{uuid.uuid4().hex[:6]}"     # a Node no node agent runs
    await client.create(NODES, {"metadata": {"name": handmade}})
    try:
        cases = [
            (("node", "stop", "n1", "--name", "ghost"), 1,
             'ERROR: no cluster named "ghost" (see: boxkube get clusters)'),
            (("node", "start", "nope", "--name", cluster.name), 1,
             f'ERROR: no node "nope" in cluster "{cluster.name}" '
             f"(see: boxkube kubectl --name {cluster.name} -- get nodes)"),
            (("node", "stop", handmade, "--name", cluster.name), 1,
             f'ERROR: node "{handmade}" is not a simulated node (no node agent has registered it); '
             "the local provider can stop and start only its simulated nodes"),
            (("node", "stop", "../etc", "--name", cluster.name), 1, 'ERROR: invalid node name "../etc"'),
            (("node", "stop"), 2, "ERROR: the following arguments are required: NODE"),
        ]
        for argv, code, message in cases:
            got, err = await asyncio.to_thread(boxkube_cli, cluster, *argv)
            assert got == code and len(err.splitlines()) == 1 and err.startswith(message), (argv, err)
            assert "Traceback" not in err
    finally:
        await client.delete(NODES, handmade)


async def test_node_command_on_a_cluster_whose_api_server_is_gone(tmp_path):
    home = tmp_path / "boxkube"
    cdir = cluster_dir(home, "dead")
    cdir.claim(ClusterState(name="dead", provider="local", server="http://127.0.0.1:1", token="t"))
    cdir.kubeconfig_file.write_text(yaml.safe_dump(build_kubeconfig("dead", "http://127.0.0.1:1", "t")))
    gone = SimpleNamespace(env={"BOXKUBE_HOME": str(home), "HOME": str(tmp_path)})
    code, err = await asyncio.to_thread(boxkube_cli, gone, "node", "stop", "dead-worker", "--name", "dead")
    assert code == 1 and err.startswith('ERROR: cannot reach the API server of cluster "dead"'), err
    assert len(err.splitlines()) == 1


async def _is(value: bool) -> bool:
    return value

