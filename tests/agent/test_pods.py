"""Pods on simulated nodes, through the real API server: status as the kubelet reports it, restarts with
back-off, restart policies, readiness, graceful deletion, init containers and adoption after a restart."""
from __future__ import annotations

import time
import uuid

import pytest

from boxkube.client import ApiError, resource
from tests.agent.conftest import PODS, eventually, give_pod_cidrs

EVENTS = resource("events")


def pod_body(node: str, restart: str = "Always", annotations: dict | None = None, containers=("app",),
             init=(), **spec) -> dict:
    return {"metadata": {"name": f"p-{uuid.uuid4().hex[:6]}", "annotations": annotations or {}},
            "spec": {"nodeName": node, "restartPolicy": restart,
                     "containers": [{"name": c, "image": "busybox"} for c in containers],
                     **({"initContainers": [{"name": c, "image": "busybox"} for c in init]} if init else {}),
                     **spec}}


async def create(client, ns, body):
    return await client.create(PODS, body, ns)


def first_status(pod) -> dict:
    """The first container's status, or an empty one while the agent has not reported yet."""
    return ((pod.get("status") or {}).get("containerStatuses") or [{"state": {}, "restartCount": 0}])[0]


def conditions(pod):
    return {c["type"]: c["status"] for c in (pod.get("status") or {}).get("conditions") or []}


async def events_of(client, ns, name):
    listed = await client.list(EVENTS, ns, field_selector=f"involvedObject.name={name}")
    return listed["items"]


async def test_pod_becomes_running_with_ips_conditions_and_events(client, ns, agents):
    [node] = agents.node_names()
    await agents.start([node])
    pod = await create(client, ns, pod_body(node, containers=("app", "side")))
    name = pod["metadata"]["name"]

    async def running():
        p = await client.get(PODS, name, ns)
        return p if p["status"].get("phase") == "Running" and conditions(p).get("Ready") == "True" else None
    p = await eventually(running, timeout=5)
    status = p["status"]
    assert status["podIP"].startswith("10.") and status["podIPs"] == [{"ip": status["podIP"]}]
    assert status["hostIP"].startswith("172.19.") and status["startTime"]
    assert conditions(p) == {"PodReadyToStartContainers": "True", "Initialized": "True", "Ready": "True",
                             "ContainersReady": "True", "PodScheduled": "True"}
    assert status["qosClass"] == "BestEffort"
    cs = {c["name"]: c for c in status["containerStatuses"]}
    assert set(cs) == {"app", "side"}
    assert cs["app"]["ready"] and cs["app"]["started"] and cs["app"]["restartCount"] == 0
    assert "running" in cs["app"]["state"] and cs["app"]["containerID"].startswith("simulated://")
    assert cs["app"]["image"] == "busybox"

    async def recorded():
        reasons = [(e["reason"], e["message"]) for e in await events_of(client, ns, name)]
        return reasons if ("Started", "Started container app") in reasons else None
    await eventually(recorded, timeout=5)
    events = await events_of(client, ns, name)
    created = next(e for e in events if e["reason"] == "Created" and e["message"] == "Created container: app")
    assert created["source"] == {"component": "kubelet", "host": node}
    assert created["reportingComponent"] == "kubelet" and created["reportingInstance"] == node
    assert created["involvedObject"]["fieldPath"] == "spec.containers{app}"


async def test_crashing_container_restarts_with_back_off(client, ns, agents):
    [node] = agents.node_names()
    await agents.start([node])   # back-off 0.5 s doubling to 2 s
    pod = await create(client, ns, pod_body(node, annotations={"sim.boxkube.dev/exit-after": "0.2s",
                                                               "sim.boxkube.dev/exit-code": "1"}))
    name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
    seen = {}

    async def crash_looping():
        p = await client.get(PODS, name, ns)
        s = first_status(p)
        waiting = s["state"].get("waiting") or {}
        if waiting.get("reason") == "CrashLoopBackOff":
            seen.setdefault("back-off", waiting["message"])
            seen["last"] = s["lastState"]
            seen["pod"] = (p["status"]["phase"], conditions(p)["Ready"])
        return s["restartCount"] >= 3 and "back-off" in seen
    await eventually(crash_looping, timeout=10)
    assert seen["back-off"].startswith("back-off ")
    assert seen["back-off"].endswith(f" restarting failed container=app pod={name}_{ns}({uid})")
    assert seen["last"]["terminated"]["exitCode"] == 1 and seen["last"]["terminated"]["reason"] == "Error"
    assert seen["pod"] == ("Running", "False")

    async def backoff_event():
        return [e for e in await events_of(client, ns, name) if e["reason"] == "BackOff"]
    [event] = await eventually(backoff_event, timeout=5)
    assert event["type"] == "Warning" and event["count"] >= 1
    assert event["message"] == f"Back-off restarting failed container app in pod {name}_{ns}({uid})"


@pytest.mark.parametrize("restart,code,phase,restarts", [
    ("Never", "0", "Succeeded", 0),
    ("Never", "3", "Failed", 0),
    ("OnFailure", "0", "Succeeded", 0),
])
async def test_restart_policy_ends_in_a_terminal_phase(client, ns, agents, restart, code, phase, restarts):
    [node] = agents.node_names()
    await agents.start([node])
    pod = await create(client, ns, pod_body(node, restart, {"sim.boxkube.dev/exit-after": "0.1s",
                                                            "sim.boxkube.dev/exit-code": code}))
    name = pod["metadata"]["name"]

    async def done():
        p = await client.get(PODS, name, ns)
        return p if p["status"]["phase"] == phase else None
    p = await eventually(done, timeout=5)
    s = p["status"]["containerStatuses"][0]
    assert s["state"]["terminated"]["exitCode"] == int(code)
    assert s["state"]["terminated"]["reason"] == ("Completed" if code == "0" else "Error")
    assert s["restartCount"] == restarts
    assert conditions(p)["Ready"] == "False"


async def test_on_failure_restarts_a_failed_container_until_it_succeeds(client, ns, agents):
    [node] = agents.node_names()
    await agents.start([node])
    pod = await create(client, ns, pod_body(node, "OnFailure", {"sim.boxkube.dev/exit-after": "0.1s",
                                                                "sim.boxkube.dev/exit-code": "1"}))
    name = pod["metadata"]["name"]

    async def restarted():
        return first_status(await client.get(PODS, name, ns))["restartCount"] >= 1
    await eventually(restarted, timeout=5)
    assert (await client.get(PODS, name, ns))["status"]["phase"] in ("Running", "Pending")
    await client.patch(PODS, name, {"metadata": {"annotations": {"sim.boxkube.dev/exit-code": "0"}}}, ns)

    async def succeeded():
        return (await client.get(PODS, name, ns))["status"]["phase"] == "Succeeded"
    await eventually(succeeded, timeout=8)


async def test_readiness_annotation_flips_ready(client, ns, agents):
    [node] = agents.node_names()
    await agents.start([node])
    pod = await create(client, ns, pod_body(node, annotations={"sim.boxkube.dev/ready": "false"}))
    name = pod["metadata"]["name"]

    async def state(phase, ready):
        async def check():
            p = await client.get(PODS, name, ns)
            return p["status"]["phase"] == phase and conditions(p).get("Ready") == ready
        return check
    await eventually(await state("Running", "False"), timeout=5)
    p = await client.get(PODS, name, ns)
    assert p["status"]["containerStatuses"][0]["ready"] is False
    await client.patch(PODS, name, {"metadata": {"annotations": {"sim.boxkube.dev/ready": "true"}}}, ns)
    await eventually(await state("Running", "True"), timeout=5)
    await client.patch(PODS, name, {"metadata": {"annotations": {"sim.boxkube.dev/ready": "false"}}}, ns)
    await eventually(await state("Running", "False"), timeout=5)


async def test_graceful_delete_stops_containers_then_removes_the_pod(client, ns, agents):
    [node] = agents.node_names()
    await agents.start([node])
    pod = await create(client, ns, pod_body(node, annotations={"sim.boxkube.dev/stop-after": "1s"},
                                            terminationGracePeriodSeconds=5))
    name = pod["metadata"]["name"]

    async def running():
        return (await client.get(PODS, name, ns))["status"]["phase"] == "Running"
    await eventually(running, timeout=5)
    started = time.monotonic()
    deleted = await client.delete(PODS, name, ns)
    assert deleted["metadata"]["deletionTimestamp"]   # held for the grace period

    async def gone():
        try:
            await client.get(PODS, name, ns)
        except ApiError as e:
            return e.is_not_found
        return False
    await eventually(gone, timeout=5)
    took = time.monotonic() - started
    assert 0.9 < took < 5       # the container took its second to stop; the grace period was not waited out
    killing = [e for e in await events_of(client, ns, name) if e["reason"] == "Killing"]
    assert killing and killing[0]["message"] == "Stopping container app"


async def test_container_stopping_past_the_grace_period_is_killed(client, ns, agents):
    [node] = agents.node_names()
    group = await agents.start([node])
    pod = await create(client, ns, pod_body(node, annotations={"sim.boxkube.dev/stop-after": "30s"},
                                            terminationGracePeriodSeconds=1))
    name = pod["metadata"]["name"]

    async def running():
        return (await client.get(PODS, name, ns))["status"]["phase"] == "Running"
    await eventually(running, timeout=5)
    started = time.monotonic()
    await client.delete(PODS, name, ns)

    async def gone():
        try:
            await client.get(PODS, name, ns)
        except ApiError as e:
            return e.is_not_found
        return False
    await eventually(gone, timeout=5)
    assert time.monotonic() - started < 3
    assert not group.agents[node].workers


async def test_init_containers_run_in_order_before_the_containers(client, ns, agents):
    [node] = agents.node_names()
    await agents.start([node])
    pod = await create(client, ns, pod_body(node, init=("first", "second"),
                                            annotations={"sim.boxkube.dev/first.exit-after": "0.3s"}))
    name = pod["metadata"]["name"]

    async def initializing():
        p = await client.get(PODS, name, ns)
        init = {s["name"]: s for s in p["status"].get("initContainerStatuses") or []}
        return p if "running" in (init.get("first") or {}).get("state", {}) else None
    p = await eventually(initializing, timeout=5)
    assert p["status"]["phase"] == "Pending" and conditions(p)["Initialized"] == "False"
    init = {s["name"]: s for s in p["status"]["initContainerStatuses"]}
    assert init["second"]["state"]["waiting"]["reason"] == "PodInitializing"
    assert p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "PodInitializing"

    async def running():
        p = await client.get(PODS, name, ns)
        return p if p["status"]["phase"] == "Running" and conditions(p)["Ready"] == "True" else None
    p = await eventually(running, timeout=5)
    init = {s["name"]: s for s in p["status"]["initContainerStatuses"]}
    assert all(s["state"]["terminated"]["reason"] == "Completed" and s["ready"] for s in init.values())
    assert init["first"]["state"]["terminated"]["finishedAt"] <= init["second"]["state"]["terminated"]["startedAt"]


async def test_pods_wait_for_the_pod_cidr(client, ns, agents):
    [node] = agents.node_names()
    await agents.start([node], pod_cidrs=False)
    pod = await create(client, ns, pod_body(node))
    name = pod["metadata"]["name"]

    async def network_event():
        return [e for e in await events_of(client, ns, name) if e["reason"] == "NetworkNotReady"]
    [event] = await eventually(network_event, timeout=5)
    assert event["type"] == "Warning" and event["message"].startswith("network is not ready: ")

    async def creating():     # the status is written apart from the event, maybe a moment after it
        p = await client.get(PODS, name, ns)
        statuses = p["status"].get("containerStatuses") or [{}]
        return p if (statuses[0].get("state") or {}).get("waiting", {}).get("reason") == "ContainerCreating" else None
    p = await eventually(creating, timeout=5)
    assert p["status"]["phase"] == "Pending"
    await give_pod_cidrs(client, [node])

    async def running():
        return (await client.get(PODS, name, ns))["status"]["phase"] == "Running"
    await eventually(running, timeout=5)


async def test_restarted_agent_adopts_running_pods(client, ns, agents):
    [node] = agents.node_names()
    group = await agents.start([node])
    pod = await create(client, ns, pod_body(node))
    name = pod["metadata"]["name"]

    async def running():
        p = await client.get(PODS, name, ns)
        return p if p["status"]["phase"] == "Running" and conditions(p).get("Ready") == "True" else None
    before = (await eventually(running, timeout=5))["status"]["containerStatuses"][0]
    await agents.stop(group)
    group = await agents.start([node])
    [worker] = group.agents[node].workers.values()
    assert worker.sandbox is not None and worker.current["app"].id in before["containerID"]
    # A new pod still starts; the adopted one was not started again.
    other = await create(client, ns, pod_body(node))

    async def other_running():
        return (await client.get(PODS, other["metadata"]["name"], ns))["status"]["phase"] == "Running"
    await eventually(other_running, timeout=5)
    after = (await client.get(PODS, name, ns))["status"]["containerStatuses"][0]
    assert after["containerID"] == before["containerID"] and after["restartCount"] == 0
    assert len(await agents.runtimes[node].list_containers()) == 2


async def test_host_network_pod_runs_on_the_node_ip_without_a_pod_cidr(client, ns, agents):
    [node] = agents.node_names()
    await agents.start([node], pod_cidrs=False)
    pod = await create(client, ns, pod_body(node, hostNetwork=True))

    async def running():
        p = await client.get(PODS, pod["metadata"]["name"], ns)
        return p if p["status"].get("phase") == "Running" else None
    p = await eventually(running, timeout=5)
    assert p["status"]["podIP"] == p["status"]["hostIP"]
