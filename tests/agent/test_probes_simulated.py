"""Probes on simulated nodes: answered by the runtime (success unless `sim.boxkube.dev/<kind>-probe: fail`),
with upstream's timings and thresholds; and what the API server says to logs/exec for a simulated pod."""
from __future__ import annotations

import pytest

from boxkube.agent import prober
from boxkube.client import ApiError
from tests.agent.conftest import PODS, eventually
from tests.agent.test_pods import conditions, create, events_of, first_status, pod_body


def probed(node: str, annotations: dict | None = None, **probes) -> dict:
    body = pod_body(node, annotations=annotations)
    body["spec"]["containers"][0].update(probes)
    body["spec"]["terminationGracePeriodSeconds"] = 0
    return body


EXEC = {"exec": {"command": ["true"]}, "periodSeconds": 1, "failureThreshold": 1}


async def test_probes_succeed_by_default(client, ns, agents):
    [node] = agents.node_names()
    await agents.start([node])
    pod = await create(client, ns, probed(node, livenessProbe=EXEC, readinessProbe=EXEC, startupProbe=EXEC))
    name = pod["metadata"]["name"]

    async def ready():
        p = await client.get(PODS, name, ns)
        s = first_status(p)
        return p if conditions(p).get("Ready") == "True" and s.get("started") and s.get("ready") else None
    p = await eventually(ready, timeout=10)
    assert first_status(p)["restartCount"] == 0


async def test_an_annotated_liveness_failure_restarts(client, ns, agents):
    [node] = agents.node_names()
    await agents.start([node])
    pod = await create(client, ns, probed(node, {"sim.boxkube.dev/liveness-probe": "fail"}, livenessProbe=EXEC))
    name = pod["metadata"]["name"]

    async def restarted():
        p = await client.get(PODS, name, ns)
        return p if first_status(p).get("restartCount", 0) >= 1 else None
    await eventually(restarted, timeout=10)
    reasons = {(e["reason"], e["message"]) for e in await events_of(client, ns, name)}
    assert ("Killing", "Container app failed liveness probe, will be restarted") in reasons
    assert ("Unhealthy", "Liveness probe failed: simulated failure (sim.boxkube.dev/liveness-probe)") in reasons


async def test_readiness_waits_for_the_probe_and_its_initial_delay(client, ns, agents):
    [node] = agents.node_names()
    await agents.start([node])
    pod = await create(client, ns, probed(node, {"sim.boxkube.dev/readiness-probe": "fail"},
                                          readinessProbe={**EXEC, "failureThreshold": 3}))
    name = pod["metadata"]["name"]

    async def running():
        p = await client.get(PODS, name, ns)
        return p if "running" in first_status(p).get("state", {}) else None
    p = await eventually(running, timeout=10)
    assert conditions(p)["Ready"] == "False" and first_status(p)["ready"] is False
    await client.patch(PODS, name, {"metadata": {"annotations": {"sim.boxkube.dev/readiness-probe": None}}}, ns)

    async def ready():
        p = await client.get(PODS, name, ns)
        return p if conditions(p).get("Ready") == "True" else None
    await eventually(ready, timeout=10)


async def test_logs_and_exec_of_a_simulated_pod_say_why_not(client, ns, agents):
    [node] = agents.node_names()
    await agents.start([node])
    pod = await create(client, ns, pod_body(node))
    name = pod["metadata"]["name"]
    for sub, params in (("log", ()), ("exec", (("command", "true"),))):
        with pytest.raises(ApiError) as e:
            await client.request("GET", f"/api/v1/namespaces/{ns}/pods/{name}/{sub}", params=params)
        assert e.value.code == 400
        assert f"runs on the simulated node {node}, whose containers do not really run" in e.value.message


def test_probe_defaults_and_ports():
    spec = prober.ProbeSpec.from_api({"httpGet": {"port": 80}})
    assert (spec.initial_delay, spec.period, spec.timeout, spec.success_threshold, spec.failure_threshold) == \
        (0, 10, 1, 1, 3)
    assert prober.resolve_port("http", {"ports": [{"name": "http", "containerPort": 8080}]}) == 8080
    assert prober.resolve_port(81, {}) == 81
    with pytest.raises(ValueError):
        prober.resolve_port("nope", {"name": "c"})
