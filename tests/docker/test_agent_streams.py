"""Probes, `kubectl logs` and `kubectl exec` on a node agent with the Docker runtime: the agent runs in the
test's event loop over the host's engine and serves its kubelet API on 127.0.0.1 (a free port, reported in
its Node's daemonEndpoints); the session's API server proxies to it; the REAL kubectl drives it."""
from __future__ import annotations

import asyncio
import subprocess

import docker
import pytest

from boxkube.agent.agent import AgentGroup
from boxkube.agent.config import NodeSettings
from boxkube.agent.runtime.docker import LABEL_CONTAINER_NAME, LABEL_POD_UID
from boxkube.agent.server import KubeletServer
from boxkube.client import resource
from tests.agent.conftest import FAST, NODES, PODS, eventually, give_pod_cidrs
from tests.docker.test_docker_pods import pod_body, sh, statuses, until

pytestmark = pytest.mark.docker

EVENTS = resource("events")


@pytest.fixture
async def node(client, docker_agents):
    """One docker node whose kubelet API listens on 127.0.0.1 (its InternalIP) and wants the cluster's token."""
    [name] = docker_agents.node_names()
    docker_agents.names.add(name)
    runtime = await docker_agents.runtime(name)
    server = KubeletServer(client.config.token, "127.0.0.1", 0)
    group = AgentGroup(client, [NodeSettings(name=name, internal_ip="127.0.0.1")], lambda n: runtime, FAST,
                       serve=server)
    docker_agents.groups.append(group)
    await group.start()
    await give_pod_cidrs(client, [name])
    return name


async def kubectl(cluster, *args: str, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """The real kubectl, off the event loop (the agent it talks to runs in it)."""
    return await asyncio.to_thread(cluster.kubectl, *args, input=input, check=False, timeout=timeout)


async def events(client, ns: str, name: str) -> list[dict]:
    found = (await client.list(EVENTS, ns))["items"]
    return [e for e in found if e["involvedObject"].get("name") == name]


def running(container: str):
    def check(p):
        s = statuses(p).get(container) or {}
        return "running" in s.get("state", {})
    check.__name__ = f"{container} running"
    return check


async def test_node_reports_its_kubelet_port(client, node):
    n = await client.get(NODES, node)
    port = n["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
    assert port not in (0, 10250)


async def test_a_failing_liveness_probe_restarts_the_container(client, ns, node, images):
    c = sh("app", images.busybox, "touch /tmp/alive; exec sleep 3600",
           livenessProbe={"exec": {"command": ["sh", "-c", "test -f /tmp/alive && rm /tmp/alive"]},
                          "periodSeconds": 1, "failureThreshold": 2})
    pod = await client.create(PODS, pod_body(node, [c], restart="Always", terminationGracePeriodSeconds=0), ns)
    name = pod["metadata"]["name"]

    def restarted(times: int):
        def check(p):
            s = statuses(p).get("app") or {}
            return s.get("restartCount", 0) >= times and "running" in s.get("state", {})
        check.__name__ = f"restarted {times}x"
        return check
    p = await until(client, ns, name, restarted(1), timeout=30)
    last = statuses(p)["app"]["lastState"]["terminated"]
    assert last["exitCode"] == 137 and last["reason"] == "Error"
    await until(client, ns, name, restarted(2), timeout=30)      # after the back-off (FAST: 0.5 s)
    seen = {(e["reason"], e["message"]) for e in await events(client, ns, name)}
    assert ("Killing", "Container app failed liveness probe, will be restarted") in seen
    assert any(r == "Unhealthy" and m.startswith("Liveness probe failed:") for r, m in seen)


async def test_readiness_follows_an_http_probe(client, ns, node, images):
    c = sh("web", images.busybox, "mkdir -p /www && echo ok > /www/ready && exec httpd -f -p 8080 -h /www",
           ports=[{"name": "http", "containerPort": 8080}],
           readinessProbe={"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 1})
    pod = await client.create(PODS, pod_body(node, [c], restart="Always"), ns)
    name = pod["metadata"]["name"]

    def ready(value: bool):
        def check(p):
            conditions = {c["type"]: c["status"] for c in (p.get("status") or {}).get("conditions") or []}
            wanted = "True" if value else "False"
            return conditions.get("Ready") == wanted and conditions.get("ContainersReady") == wanted and \
                (statuses(p).get("web") or {}).get("ready") is value and "running" in statuses(p)["web"]["state"]
        check.__name__ = f"ready={value}"
        return check
    await until(client, ns, name, ready(True), timeout=20)
    p = await client.get(PODS, name, ns)
    await asyncio.to_thread(_exec, p, "web", "rm", "/www/ready")
    await until(client, ns, name, ready(False), timeout=20)
    seen = [e["message"] for e in await events(client, ns, name) if e["reason"] == "Unhealthy"]
    assert any(m == "Readiness probe failed: HTTP probe failed with statuscode: 404" for m in seen), seen


def _engine_container(pod: dict, container: str):
    """The running engine container of a pod's container (host engine, straight)."""
    client = docker.from_env()
    found = client.containers.list(filters={"label": [f"{LABEL_POD_UID}={pod['metadata']['uid']}",
                                                      f"{LABEL_CONTAINER_NAME}={container}"]})
    assert found
    return found[0]


def _exec(pod: dict, container: str, *cmd: str) -> None:
    assert _engine_container(pod, container).exec_run(list(cmd)).exit_code == 0


def _kill(pod: dict, container: str) -> None:
    _engine_container(pod, container).kill()


async def test_a_startup_probe_holds_readiness_and_liveness(client, ns, node, images):
    c = sh("app", images.busybox, "sleep 2; touch /tmp/started; exec sleep 3600",
           startupProbe={"exec": {"command": ["test", "-f", "/tmp/started"]}, "periodSeconds": 1,
                         "failureThreshold": 30},
           livenessProbe={"tcpSocket": {"port": 9}, "periodSeconds": 1, "failureThreshold": 1})
    pod = await client.create(PODS, pod_body(node, [c], restart="Always", terminationGracePeriodSeconds=0), ns)
    name = pod["metadata"]["name"]
    p = await until(client, ns, name, running("app"), timeout=20)
    s = statuses(p)["app"]
    assert s["started"] is False and s["ready"] is False
    # Once started, the liveness probe (nothing listens on port 9) kills it.
    p = await until(client, ns, name, lambda p: (statuses(p).get("app") or {}).get("restartCount", 0) >= 1,
                    timeout=30)
    seen = {(e["reason"], e["message"]) for e in await events(client, ns, name)}
    assert ("Killing", "Container app failed liveness probe, will be restarted") in seen
    assert any(r == "Unhealthy" and "connection refused" in m for r, m in seen), seen


async def test_kubectl_logs(client, ns, node, images, cluster):
    c = sh("app", images.busybox, "for i in 1 2 3 4 5; do echo line $i; done; sleep 0.3; echo oops >&2; exec sleep 3600")
    other = sh("side", images.busybox, "echo from side; exec sleep 3600")
    pod = await client.create(PODS, pod_body(node, [c, other], restart="Always"), ns)
    name = pod["metadata"]["name"]
    await until(client, ns, name, lambda p: running("app")(p) and running("side")(p), timeout=20)
    await asyncio.sleep(1.0)
    r = await kubectl(cluster, "logs", "-n", ns, name, "-c", "app")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "line 1\nline 2\nline 3\nline 4\nline 5\noops\n"
    r = await kubectl(cluster, "logs", "-n", ns, name, "-c", "app", "--tail=2")
    assert r.stdout == "line 5\noops\n"
    r = await kubectl(cluster, "logs", "-n", ns, name, "-c", "side", "--timestamps")
    stamp, _, text = r.stdout.strip().partition(" ")
    assert text == "from side" and stamp.endswith("Z") and "T" in stamp
    r = await kubectl(cluster, "logs", "-n", ns, name, "-c", "app", "--since=1h")
    assert r.stdout.startswith("line 1\n")
    r = await kubectl(cluster, "logs", "-n", ns, name)      # kubectl picks the first container itself
    assert r.returncode == 0 and r.stdout.startswith("line 1\n")
    assert 'Defaulted container "app" out of: app, side' in r.stderr
    r = await kubectl(cluster, "logs", "-n", ns, name, "-c", "nope")
    assert r.returncode == 1 and "container nope is not valid for pod" in r.stderr
    r = await kubectl(cluster, "logs", "-n", ns, name, "-c", "app", "--previous")
    assert r.returncode == 1 and 'previous terminated container "app" in pod' in r.stderr


async def test_a_finished_pod_keeps_its_logs_until_it_is_deleted(client, ns, node, images, cluster, docker_agents):
    pod = await client.create(PODS, pod_body(node, [sh("job", images.busybox, "echo all done")]), ns)
    name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
    await until(client, ns, name, lambda p: p["status"].get("phase") == "Succeeded")
    r = await kubectl(cluster, "logs", "-n", ns, name)
    assert r.returncode == 0 and r.stdout == "all done\n", r.stderr
    # the sandbox is stopped (its IP given back), the exited container kept, as the kubelet does
    kept = {c.labels["io.kubernetes.docker.type"]: c.status for c in docker_agents.containers(
        node, **{LABEL_POD_UID: uid})}
    assert kept == {"podsandbox": "exited", "container": "exited"}
    await client.delete(PODS, name, ns)

    async def removed():
        return not docker_agents.containers(node, **{LABEL_POD_UID: uid})
    await eventually(removed, timeout=10)


async def test_kubectl_logs_follow_and_previous(client, ns, node, images, cluster):
    c = sh("app", images.busybox, "echo start $(cat /proc/sys/kernel/random/uuid); i=0; "
                                  "while [ $i -lt 600 ]; do echo tick $i; i=$((i+1)); sleep 0.2; done")
    pod = await client.create(PODS, pod_body(node, [c], restart="Always", terminationGracePeriodSeconds=0), ns)
    name = pod["metadata"]["name"]
    await until(client, ns, name, running("app"), timeout=20)
    proc = await asyncio.create_subprocess_exec(*cluster.kubectl_argv(), "logs", "-f", "-n", ns, name,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                env=cluster.env)
    lines = []
    try:
        async with asyncio.timeout(20):
            while len(lines) < 8:
                line = await proc.stdout.readline()
                assert line, (await proc.stderr.read()).decode()
                lines.append(line.decode())
    finally:
        proc.kill()
        await proc.wait()
    assert lines[0].startswith("start ") and lines[1:4] == ["tick 0\n", "tick 1\n", "tick 2\n"]
    first = lines[0]
    # Kill it: the next instance logs anew, --previous shows the one before.
    p = await client.get(PODS, name, ns)
    await asyncio.to_thread(_kill, p, "app")
    await until(client, ns, name, lambda p: (statuses(p).get("app") or {}).get("restartCount", 0) >= 1
                and running("app")(p), timeout=20)
    r = await kubectl(cluster, "logs", "-n", ns, name, "--previous")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(first)
    await asyncio.sleep(0.3)
    r = await kubectl(cluster, "logs", "-n", ns, name)
    assert r.stdout.startswith("start ") and not r.stdout.startswith(first)


async def test_kubectl_exec(client, ns, node, images, cluster):
    c = sh("app", images.busybox, "exec sleep 3600")
    pod = await client.create(PODS, pod_body(node, [c], restart="Always", terminationGracePeriodSeconds=0), ns)
    name = pod["metadata"]["name"]
    await until(client, ns, name, running("app"), timeout=20)
    r = await kubectl(cluster, "exec", "-n", ns, name, "--", "sh", "-c", "echo out; echo err >&2; hostname")
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"out\n{name}\n" and r.stderr == "err\n"
    r = await kubectl(cluster, "exec", "-n", ns, name, "--", "sh", "-c", "exit 3")
    assert r.returncode == 3, (r.stdout, r.stderr)
    r = await kubectl(cluster, "exec", "-i", "-n", ns, name, "--", "sh", "-c", "tr a-z A-Z; echo done",
                      input="hello\nworld\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "HELLO\nWORLD\ndone\n"
    r = await kubectl(cluster, "exec", "-n", ns, name, "-c", "nope", "--", "true")
    assert r.returncode != 0 and "container nope is not valid for pod" in r.stderr, r.stderr


async def test_the_kubelet_api_wants_the_token(client, ns, node):
    import aiohttp
    n = await client.get(NODES, node)
    port = n["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{port}/containerLogs/{ns}/x/y") as r:
            assert r.status == 401
        async with s.get(f"http://127.0.0.1:{port}/containerLogs/{ns}/x/y",
                         headers={"Authorization": f"Bearer {client.config.token}"}) as r:
            assert r.status == 404
        async with s.get(f"http://127.0.0.1:{port}/healthz") as r:
            assert r.status == 200
