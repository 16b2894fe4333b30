"""Pods on a node agent with the Docker runtime, through the real API server and the host's Docker engine:
shared network namespace, environment and volumes as the kubelet makes them, command/args semantics, exit
codes and restarts, graceful stop, a missing image, resources and security context, and adoption after an
agent restart. Containers report through their termination message (/dev/termination-log), so most checks
read the pod's status from the API, as a user would."""
from __future__ import annotations

import asyncio
import base64
import dataclasses
import time
import uuid
from pathlib import Path

import pytest

from boxkube.client import resource
from tests.agent.conftest import FAST, PODS, eventually

pytestmark = pytest.mark.docker

CONFIGMAPS, SECRETS, EVENTS, SERVICES = (resource(r) for r in ("configmaps", "secrets", "events", "services"))


def pod_body(node: str, containers: list[dict], restart: str = "Never", **spec) -> dict:
    return {"metadata": {"name": f"d-{uuid.uuid4().hex[:6]}", "labels": {"app": "test", "tier": "x"}},
            "spec": {"nodeName": node, "restartPolicy": restart, "terminationGracePeriodSeconds": 1,
                     "containers": containers, **spec}}


def sh(name: str, image: str, script: str, **fields) -> dict:
    return {"name": name, "image": image, "command": ["sh", "-c", script], **fields}


def statuses(pod: dict) -> dict[str, dict]:
    return {s["name"]: s for s in (pod.get("status") or {}).get("containerStatuses") or []}


async def until(client, ns: str, name: str, check, timeout: float = 20.0) -> dict:
    """The pod once `check(pod)` holds."""
    async def look():
        p = await client.get(PODS, name, ns)
        return p if check(p) else None
    look.__name__ = getattr(check, "__name__", "check")
    return await eventually(look, timeout=timeout, interval=0.1)


def phase(wanted: str):
    def check(p):
        return (p.get("status") or {}).get("phase") == wanted
    check.__name__ = f"phase {wanted}"
    return check


def terminated(container: str):
    def check(p):
        return "terminated" in (statuses(p).get(container) or {}).get("state", {})
    check.__name__ = f"{container} terminated"
    return check


def message(p: dict, container: str) -> str:
    return statuses(p)[container]["state"]["terminated"].get("message", "")


async def test_containers_share_the_pods_network_namespace_and_hostname(client, ns, docker_agents, images):
    [node] = docker_agents.node_names()
    await docker_agents.start([node])
    server = sh("server", images.busybox, "mkdir -p /www && echo hello from `hostname` > /www/index.html "
                                          "&& exec httpd -f -p 8080 -h /www", ports=[{"containerPort": 8080}])
    fetch = sh("client", images.busybox,
               "until printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 8080 > /tmp/out && grep -q hello /tmp/out; "
               "do sleep 0.1; done; tail -n1 /tmp/out > /dev/termination-log")
    pod = await client.create(PODS, pod_body(node, [server, fetch]), ns)
    name = pod["metadata"]["name"]
    p = await until(client, ns, name, terminated("client"))
    assert message(p, "client").strip() == f"hello from {name}"
    s = statuses(p)
    assert s["client"]["state"]["terminated"]["exitCode"] == 0
    assert s["client"]["state"]["terminated"]["reason"] == "Completed"
    assert "running" in s["server"]["state"] and s["server"]["containerID"].startswith("docker://")
    assert p["status"]["phase"] == "Running" and p["status"]["podIP"]
    assert s["server"]["imageID"].startswith("sha256:")
    # The pod IP is the pause container's, and the app containers joined its namespaces.
    pause = docker_agents.containers(node, **{"io.kubernetes.pod.uid": pod["metadata"]["uid"],
                                              "io.kubernetes.docker.type": "podsandbox"})
    [sandbox] = pause
    assert sandbox.name == f"k8s_POD_{name}_{ns}_{pod['metadata']['uid']}_0"
    networks = sandbox.attrs["NetworkSettings"]["Networks"]
    assert p["status"]["podIP"] in [n["IPAddress"] for n in networks.values()]
    app = docker_agents.container(p, "server")
    assert app.name == f"k8s_server_{name}_{ns}_{pod['metadata']['uid']}_0"
    assert app.attrs["HostConfig"]["NetworkMode"] == f"container:{sandbox.id}"
    assert app.attrs["HostConfig"]["IpcMode"] == f"container:{sandbox.id}"


async def test_environment_from_literals_configmaps_secrets_and_the_downward_api(client, ns, docker_agents, images):
    [node] = docker_agents.node_names()
    await docker_agents.start([node])
    await client.create(CONFIGMAPS, {"metadata": {"name": "settings"}, "data": {"color": "blue", "size": "L"}}, ns)
    await client.create(SECRETS, {"metadata": {"name": "creds"},
                                  "data": {"token": base64.b64encode(b"s3cret").decode()}}, ns)
    # Service variables: of the Services of the namespace (with a ClusterIP) and `kubernetes` of default
    web = await client.create(SERVICES, {"metadata": {"name": "my-web"},
                                         "spec": {"ports": [{"name": "http", "port": 8080}]}}, ns)
    kubernetes = await client.get(SERVICES, "kubernetes", "default")
    env = [
        {"name": "WEB_URL", "value": "http://$(MY_WEB_SERVICE_HOST):$(MY_WEB_SERVICE_PORT)"},
        {"name": "MY_WEB_SERVICE_PORT_HTTP", "value": "mine"},      # the container's own wins
        {"name": "LITERAL", "value": "plain"},
        {"name": "EXPANDED", "value": "$(LITERAL)-more"},
        {"name": "ESCAPED", "value": "$$(LITERAL)"},
        {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "color"}}},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "TIER", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['tier']"}}},
        {"name": "MEMORY_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
    ]
    container = {"name": "app", "image": images.busybox, "env": env,
                 "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CM_"}],
                 "resources": {"limits": {"memory": "64Mi"}},
                 "command": ["sh", "-c", 'echo "ARG=$1" > /dev/termination-log; env >> /dev/termination-log', "--"],
                 "args": ["$(POD_NAME)"]}
    pod = await client.create(PODS, pod_body(node, [container]), ns)
    name = pod["metadata"]["name"]
    p = await until(client, ns, name, phase("Succeeded"))
    lines = message(p, "app").splitlines()
    seen = dict(line.split("=", 1) for line in lines if "=" in line)
    assert seen["ARG"] == name
    assert seen["LITERAL"] == "plain" and seen["EXPANDED"] == "plain-more" and seen["ESCAPED"] == "$(LITERAL)"
    assert seen["COLOR"] == "blue" and seen["TOKEN"] == "s3cret"
    assert seen["CM_color"] == "blue" and seen["CM_size"] == "L"
    assert seen["POD_NAME"] == name and seen["TIER"] == "x" and seen["MEMORY_MI"] == "64"
    assert seen["POD_IP"] == p["status"]["podIP"] and seen["POD_IP"]
    assert seen["HOSTNAME"] == name
    ip = web["spec"]["clusterIP"]
    assert seen["MY_WEB_SERVICE_HOST"] == ip and seen["WEB_URL"] == f"http://{ip}:8080"
    assert seen["MY_WEB_PORT_8080_TCP"] == f"tcp://{ip}:8080" and seen["MY_WEB_SERVICE_PORT_HTTP"] == "mine"
    assert seen["KUBERNETES_SERVICE_HOST"] == kubernetes["spec"]["clusterIP"]
    assert seen["KUBERNETES_SERVICE_PORT"] == str(kubernetes["spec"]["ports"][0]["port"])


async def test_configmap_secret_and_downward_api_volumes_are_read_only_files(client, ns, docker_agents, images):
    [node] = docker_agents.node_names()
    await docker_agents.start([node])
    await client.create(CONFIGMAPS, {"metadata": {"name": "web"}, "data": {"index.html": "<h1>hi</h1>",
                                                                           "other": "o"}}, ns)
    await client.create(SECRETS, {"metadata": {"name": "tls"},
                                  "data": {"key": base64.b64encode(b"private").decode()}}, ns)
    volumes = [
        {"name": "web", "configMap": {"name": "web"}},
        {"name": "picked", "configMap": {"name": "web", "items": [{"key": "other", "path": "sub/renamed"}]}},
        {"name": "tls", "secret": {"secretName": "tls", "defaultMode": 0o400}},
        # downwardAPI files through a projected volume: the API server's validation wrongly asks plain
        # downwardAPI volume items for a `key` (tests/agent/test_pod_volumes.py covers that type directly).
        {"name": "info", "projected": {"sources": [{"downwardAPI": {"items": [
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}]}},
    ]
    mounts = [{"name": "web", "mountPath": "/etc/web"}, {"name": "picked", "mountPath": "/etc/picked"},
              {"name": "tls", "mountPath": "/etc/tls"}, {"name": "info", "mountPath": "/etc/info"}]
    script = ("{ cat /etc/web/index.html; echo; cat /etc/picked/sub/renamed; echo; cat /etc/tls/key; echo; "
              "stat -L -c %a /etc/tls/key; cat /etc/info/name; echo; cat /etc/info/labels; echo; "
              "touch /etc/web/new 2>/dev/null && echo writable || echo read-only; } > /dev/termination-log")
    pod = await client.create(PODS, pod_body(node, [sh("app", images.busybox, script, volumeMounts=mounts)],
                                             volumes=volumes), ns)
    name = pod["metadata"]["name"]
    p = await until(client, ns, name, phase("Succeeded"))
    assert message(p, "app").splitlines() == ["<h1>hi</h1>", "o", "private", "400", name,
                                              'app="test"', 'tier="x"', "read-only"]


async def test_configmap_and_secret_volumes_follow_their_sources(client, ns, docker_agents, images):
    [node] = docker_agents.node_names()
    await docker_agents.start([node], settings=dataclasses.replace(FAST, volume_resync=0.5))
    await client.create(CONFIGMAPS, {"metadata": {"name": "live"}, "data": {"color": "red"}}, ns)
    await client.create(SECRETS, {"metadata": {"name": "pw"}, "data": {"p": base64.b64encode(b"one").decode()}}, ns)
    mounts = [{"name": "live", "mountPath": "/etc/live"}, {"name": "pw", "mountPath": "/etc/pw"},
              {"name": "live", "mountPath": "/etc/color-fixed", "subPath": "color"}]
    pod = await client.create(PODS, pod_body(node, [sh("app", images.busybox, "exec sleep 3600", volumeMounts=mounts)],
                                             volumes=[{"name": "live", "configMap": {"name": "live"}},
                                                      {"name": "pw", "secret": {"secretName": "pw"}}]), ns)
    p = await until(client, ns, pod["metadata"]["name"], phase("Running"))
    assert docker_agents.exec(p, "app", "cat", "/etc/live/color") == "red"

    cm = await client.get(CONFIGMAPS, "live", ns)
    await client.replace(CONFIGMAPS, {**cm, "data": {"color": "blue", "size": "big"}})
    secret = await client.get(SECRETS, "pw", ns)
    await client.replace(SECRETS, {**secret, "data": {"p": base64.b64encode(b"two").decode()}})

    async def updated():
        seen = docker_agents.exec(p, "app", "sh", "-c", "cat /etc/live/color /etc/live/size /etc/pw/p 2>&1")
        return seen if seen == "bluebigtwo" else None
    await eventually(updated, timeout=10, interval=0.2)
    # a subPath mount keeps the file it was given, as upstream's
    assert docker_agents.exec(p, "app", "cat", "/etc/color-fixed") == "red"

    # a source that goes away leaves the volume as it was, and says why
    await client.delete(CONFIGMAPS, "live", ns)

    async def failed_mount():
        events = (await client.list(EVENTS, ns, field_selector=f"involvedObject.name={p['metadata']['name']}"))["items"]
        return [e for e in events if e["reason"] == "FailedMount"]
    [event] = await eventually(failed_mount, timeout=10, interval=0.2)
    assert 'configmap "live" not found' in event["message"]
    assert docker_agents.exec(p, "app", "cat", "/etc/live/color") == "blue"


async def test_empty_dir_is_shared_between_containers_and_removed_with_the_pod(client, ns, docker_agents, images):
    [node] = docker_agents.node_names()
    await docker_agents.start([node])
    mount = [{"name": "scratch", "mountPath": "/data"}]
    writer = sh("writer", images.busybox, "echo shared > /data/x; exec sleep 3600", volumeMounts=mount)
    reader = sh("reader", images.busybox,
                "until [ -f /data/x ]; do sleep 0.1; done; cat /data/x > /dev/termination-log", volumeMounts=mount)
    pod = await client.create(PODS, pod_body(node, [writer, reader], volumes=[{"name": "scratch", "emptyDir": {}}]),
                              ns)
    name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
    p = await until(client, ns, name, terminated("reader"))
    assert message(p, "reader") == "shared\n"
    pod_dir = Path(docker_agents.runtimes[0].root_dir) / "pods" / uid
    assert (pod_dir / "volumes" / "kubernetes.io~empty-dir" / "scratch" / "x").read_text() == "shared\n"
    await client.delete(PODS, name, ns)

    async def gone():
        return not [p for p in (await client.list(PODS, ns))["items"] if p["metadata"]["uid"] == uid]
    await eventually(gone, timeout=15)
    assert not pod_dir.exists()
    assert not docker_agents.containers(node, **{"io.kubernetes.pod.uid": uid})


async def test_command_and_args_follow_kubernetes_semantics(client, ns, docker_agents, images):
    """The image: ENTRYPOINT ["/bin/say", "entry"], CMD ["cmd"]; say prints its arguments."""
    [node] = docker_agents.node_names()
    await docker_agents.start([node])
    containers = [
        {"name": "image-defaults", "image": images.say},
        {"name": "args-only", "image": images.say, "args": ["a", "b"]},
        {"name": "command-only", "image": images.say, "command": ["/bin/say", "c"]},
        {"name": "both", "image": images.say, "command": ["/bin/say", "c"], "args": ["d"]},
    ]
    pod = await client.create(PODS, pod_body(node, containers), ns)
    p = await until(client, ns, pod["metadata"]["name"], phase("Succeeded"))
    said = {name: s["state"]["terminated"]["message"] for name, s in statuses(p).items()}
    assert said == {"image-defaults": "entry cmd", "args-only": "entry a b", "command-only": "c", "both": "c d"}


async def test_exit_codes_restarts_and_back_off(client, ns, docker_agents, images):
    [node] = docker_agents.node_names()
    await docker_agents.start([node])      # back-off 0.5 s doubling to 2 s
    crashing = await client.create(PODS, pod_body(node, [sh("app", images.busybox, "exit 3")], "OnFailure"), ns)
    done = await client.create(PODS, pod_body(node, [sh("app", images.busybox, "exit 0")], "Never"), ns)
    failed = await client.create(PODS, pod_body(node, [sh("app", images.busybox, "echo boom; exit 7",
                                                          terminationMessagePolicy="FallbackToLogsOnError")],
                                                "Never"), ns)
    seen = {}

    def crash_looping(p):
        s = statuses(p).get("app") or {}
        if (s.get("state", {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff":
            seen["back-off"] = True
        if s.get("lastState", {}).get("terminated"):
            seen["last"] = s["lastState"]["terminated"]
        return s.get("restartCount", 0) >= 2 and "back-off" in seen
    await until(client, ns, crashing["metadata"]["name"], crash_looping)
    assert seen["last"]["exitCode"] == 3 and seen["last"]["reason"] == "Error"
    assert seen["last"]["containerID"].startswith("docker://")
    p = await until(client, ns, done["metadata"]["name"], phase("Succeeded"))
    assert statuses(p)["app"]["state"]["terminated"]["reason"] == "Completed"
    p = await until(client, ns, failed["metadata"]["name"], phase("Failed"))
    term = statuses(p)["app"]["state"]["terminated"]
    assert (term["exitCode"], term["reason"], term["message"]) == (7, "Error", "boom\n")
    # Older instances are cleaned up: at most the current and the previous one of the crashing container.
    uid = crashing["metadata"]["uid"]
    assert len(docker_agents.containers(node, **{"io.kubernetes.pod.uid": uid,
                                                 "io.kubernetes.docker.type": "container"})) <= 2


async def test_a_killed_container_is_restarted(client, ns, docker_agents, images):
    [node] = docker_agents.node_names()
    await docker_agents.start([node])
    pod = await client.create(PODS, pod_body(node, [sh("app", images.busybox, "exec sleep 3600")], "Always"), ns)
    name = pod["metadata"]["name"]
    p = await until(client, ns, name, phase("Running"))
    first = statuses(p)["app"]["containerID"]
    docker_agents.container(p, "app").kill()      # SIGKILL behind the agent's back: the engine's die event

    def restarted(p):
        s = statuses(p)["app"]
        return s["restartCount"] == 1 and "running" in s["state"]
    p = await until(client, ns, name, restarted)
    s = statuses(p)["app"]
    assert s["containerID"] != first and s["lastState"]["terminated"]["containerID"] == first
    assert s["lastState"]["terminated"]["exitCode"] == 137


async def test_graceful_stop_honours_the_grace_period(client, ns, docker_agents, images):
    [node] = docker_agents.node_names()
    await docker_agents.start([node])
    stubborn = pod_body(node, [sh("app", images.busybox, "trap '' TERM; while :; do sleep 0.1; done")], "Always",
                        terminationGracePeriodSeconds=2)
    polite = pod_body(node, [sh("app", images.busybox, "trap 'exit 0' TERM; while :; do sleep 0.1; done")], "Always",
                      terminationGracePeriodSeconds=30)
    names = [(await client.create(PODS, body, ns))["metadata"]["name"] for body in (stubborn, polite)]
    for name in names:
        await until(client, ns, name, phase("Running"))

    async def deletion_time(name: str) -> float:
        started = time.monotonic()
        await client.delete(PODS, name, ns)

        async def gone():
            return name not in [p["metadata"]["name"] for p in (await client.list(PODS, ns))["items"]]
        await eventually(gone, timeout=40, interval=0.1)
        return time.monotonic() - started
    stubborn_took, polite_took = await asyncio.gather(*(deletion_time(n) for n in names))
    assert 2.0 <= stubborn_took < 6.0, stubborn_took       # SIGTERM ignored: SIGKILL after the 2 s grace
    assert polite_took < 4.0, polite_took                   # exits on SIGTERM, long before its 30 s grace


async def test_missing_image_gives_a_clear_waiting_reason(client, ns, docker_agents, images):
    [node] = docker_agents.node_names()
    await docker_agents.start([node])
    image = f"boxkube-test/not-loaded:{uuid.uuid4().hex[:6]}"
    why = f'image "{image}" is not present on node {node}; run: boxkube load image {image}'
    pod = await client.create(PODS, pod_body(node, [{"name": "app", "image": image},
                                                    {"name": "never", "image": image, "imagePullPolicy": "Never"}]),
                              ns)
    name = pod["metadata"]["name"]

    def waiting(container: str, reason: str):
        def check(p):
            return (statuses(p).get(container) or {}).get("state", {}).get("waiting", {}).get("reason") == reason
        check.__name__ = f"{container} {reason}"
        return check
    # as upstream: every pull fails (no registry), ErrImagePull, then the pull backs off (10 s doubling):
    # ImagePullBackOff; with pull policy Never: ErrImageNeverPull at once
    p = await until(client, ns, name, waiting("app", "ImagePullBackOff"))
    assert statuses(p)["app"]["state"]["waiting"]["message"] == f'Back-off pulling image "{image}": {why}'
    assert p["status"]["phase"] == "Pending"
    p = await until(client, ns, name, waiting("never", "ErrImageNeverPull"))
    assert statuses(p)["never"]["state"]["waiting"]["message"] == why
    wanted = [("Pulling", f'Pulling image "{image}"'), ("Failed", f'Failed to pull image "{image}": {why}'),
              ("Failed", "Error: ErrImagePull"), ("BackOff", f'Back-off pulling image "{image}"'),
              ("Failed", "Error: ImagePullBackOff"),
              ("ErrImageNeverPull", f'Container image "{image}" is not present with pull policy of Never')]

    async def recorded():       # events are written a moment after the status that goes with them
        reasons = [(e["reason"], e["message"]) for e in (await client.list(EVENTS, ns))["items"]
                   if e["involvedObject"].get("name") == name]
        missing = [event for event in wanted if event not in reasons]
        assert not missing, f"missing {missing} in {reasons}"
        return True
    await eventually(recorded, timeout=10, interval=0.2)

    # the image arriving (`boxkube load image`) is seen within seconds, whatever the back-off
    docker_agents.docker.images.get(images.busybox).tag(image)
    try:
        def started(p):
            return "waiting" not in (statuses(p).get("app") or {}).get("state", {"waiting": {}})
        await until(client, ns, name, started, timeout=10)
    finally:
        docker_agents.docker.images.remove(image)


async def test_resources_security_context_and_oom_kills(client, ns, docker_agents, images):
    [node] = docker_agents.node_names()
    await docker_agents.start([node])
    limited = sh("limited", images.busybox, "echo `id -u` `id -g` `pwd` > /dev/termination-log; exec sleep 3600",
                 workingDir="/tmp", securityContext={"runAsUser": 1000, "runAsGroup": 3000},
                 resources={"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": "250m"}})
    hog = sh("hog", images.busybox, "dd if=/dev/zero of=/dev/null bs=64M count=1",
             resources={"limits": {"memory": "16Mi"}})
    pod = await client.create(PODS, pod_body(node, [limited, hog]), ns)
    name = pod["metadata"]["name"]
    p = await until(client, ns, name, terminated("hog"))
    term = statuses(p)["hog"]["state"]["terminated"]
    assert (term["reason"], term["exitCode"]) == ("OOMKilled", 137)
    host_config = docker_agents.container(p, "limited").attrs["HostConfig"]
    assert host_config["NanoCpus"] == 500_000_000 and host_config["Memory"] == 64 * 2 ** 20
    assert host_config["CpuShares"] == 256
    assert docker_agents.container(p, "limited").attrs["Config"]["User"] == "1000:3000"
    assert docker_agents.exec(p, "limited", "cat", "/dev/termination-log").strip() == "1000 3000 /tmp"


async def test_host_network_pod_uses_the_nodes_network(client, ns, docker_agents, images):
    [node] = docker_agents.node_names()
    await docker_agents.start([node])
    pod = await client.create(PODS, pod_body(node, [sh("app", images.busybox, "exec sleep 3600")], "Always",
                                             hostNetwork=True), ns)
    p = await until(client, ns, pod["metadata"]["name"], phase("Running"))
    assert p["status"]["podIP"] == p["status"]["hostIP"]
    [sandbox] = docker_agents.containers(node, **{"io.kubernetes.pod.uid": pod["metadata"]["uid"],
                                                  "io.kubernetes.docker.type": "podsandbox"})
    assert sandbox.attrs["HostConfig"]["NetworkMode"] == "host"


async def test_restarted_agent_adopts_running_containers(client, ns, docker_agents, images):
    [node] = docker_agents.node_names()
    group = await docker_agents.start([node])
    pod = await client.create(PODS, pod_body(node, [sh("app", images.busybox, "exec sleep 3600")], "Always"), ns)
    name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
    before = statuses(await until(client, ns, name, phase("Running")))["app"]
    await docker_agents.stop(group)
    # A new agent with a new runtime object, as a restarted agent process has: it finds the pod by labels.
    group = await docker_agents.start([node])
    [worker] = group.agents[node].workers.values()
    assert worker.sandbox is not None and worker.current["app"].id in before["containerID"]
    other = await client.create(PODS, pod_body(node, [sh("app", images.busybox, "exec sleep 3600")], "Always"), ns)
    await until(client, ns, other["metadata"]["name"], phase("Running"))
    after = statuses(await client.get(PODS, name, ns))["app"]
    assert after["containerID"] == before["containerID"] and after["restartCount"] == 0
    mine = docker_agents.containers(node, **{"io.kubernetes.pod.uid": uid})
    assert sorted(c.labels["io.kubernetes.docker.type"] for c in mine) == ["container", "podsandbox"]
    assert all(c.status == "running" for c in mine)


async def test_a_dead_sandbox_is_replaced_and_its_containers_started_again(client, ns, docker_agents, images):
    [node] = docker_agents.node_names()
    await docker_agents.start([node])
    mount = [{"name": "scratch", "mountPath": "/data"}]
    pod = await client.create(PODS, pod_body(node, [sh("app", images.busybox, "date >> /data/starts; exec sleep 3600",
                                                       volumeMounts=mount)], "Always",
                                             volumes=[{"name": "scratch", "emptyDir": {}}]), ns)
    name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
    await until(client, ns, name, phase("Running"))
    sandbox_labels = {"io.kubernetes.pod.uid": uid, "io.kubernetes.docker.type": "podsandbox"}
    [pause] = docker_agents.containers(node, **sandbox_labels)
    pause.kill()        # the pod's network namespace is gone: the pod needs a new sandbox

    def restarted(p):
        s = statuses(p)["app"]
        return s["restartCount"] == 1 and "running" in s["state"]
    p = await until(client, ns, name, restarted)
    [fresh] = docker_agents.containers(node, **sandbox_labels)
    assert fresh.id != pause.id and fresh.name.endswith(f"_{uid}_1") and fresh.status == "running"
    assert p["status"]["podIP"] in [n["IPAddress"] for n in fresh.attrs["NetworkSettings"]["Networks"].values()]
    assert len(docker_agents.exec(p, "app", "cat", "/data/starts").splitlines()) == 2     # the emptyDir survived
    events = (await client.list(EVENTS, ns, field_selector=f"involvedObject.name={name}"))["items"]
    assert any(e["reason"] == "SandboxChanged" for e in events)


async def test_a_new_sandbox_runs_the_init_containers_again(client, ns, docker_agents, images):
    [node] = docker_agents.node_names()
    await docker_agents.start([node])
    mount = [{"name": "scratch", "mountPath": "/data"}]
    pod = await client.create(PODS, pod_body(node, [sh("app", images.busybox, "exec sleep 3600", volumeMounts=mount)],
                                             "Always", volumes=[{"name": "scratch", "emptyDir": {}}],
                                             initContainers=[sh("init", images.busybox, "echo ran >> /data/inits",
                                                                volumeMounts=mount)]), ns)
    name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
    await until(client, ns, name, phase("Running"))
    [pause] = docker_agents.containers(node, **{"io.kubernetes.pod.uid": uid, "io.kubernetes.docker.type": "podsandbox"})
    pause.kill()

    def again(p):
        app = statuses(p)["app"]
        return app["restartCount"] == 1 and "running" in app["state"]
    p = await until(client, ns, name, again)
    assert docker_agents.exec(p, "app", "cat", "/data/inits") == "ran\nran\n"
    [init] = p["status"]["initContainerStatuses"]
    assert init["restartCount"] == 1 and init["state"]["terminated"]["reason"] == "Completed"


async def test_pods_come_back_after_their_containers_died_with_the_agent_away(client, ns, docker_agents, images):
    """As after a node restart: the agent comes back to a stopped sandbox and stopped containers."""
    [node] = docker_agents.node_names()
    group = await docker_agents.start([node])
    pod = await client.create(PODS, pod_body(node, [sh("app", images.busybox, "exec sleep 3600")], "Always"), ns)
    name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
    await until(client, ns, name, phase("Running"))
    await docker_agents.stop(group)
    for c in docker_agents.containers(node, **{"io.kubernetes.pod.uid": uid}):
        c.kill()
    await docker_agents.start([node])

    def back(p):
        s = statuses(p)["app"]
        return s["restartCount"] == 1 and "running" in s["state"]
    p = await until(client, ns, name, back)
    assert statuses(p)["app"]["lastState"]["terminated"]["exitCode"] == 137
    running = [c for c in docker_agents.containers(node, **{"io.kubernetes.pod.uid": uid}) if c.status == "running"]
    assert sorted(c.labels["io.kubernetes.docker.type"] for c in running) == ["container", "podsandbox"]


async def test_run_as_non_root_is_checked_against_the_images_user(client, ns, docker_agents, images):
    [node] = docker_agents.node_names()
    await docker_agents.start([node])
    pod = await client.create(PODS, pod_body(node, [sh("root", images.busybox, "exec sleep 3600"),
                                                    sh("fine", images.busybox, "exec sleep 3600",
                                                       securityContext={"runAsUser": 1000})],
                                             securityContext={"runAsNonRoot": True}), ns)
    name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]

    def refused(p):
        s = statuses(p)
        return (s.get("root") or {}).get("state", {}).get("waiting", {}).get("reason") == \
            "CreateContainerConfigError" and "running" in (s.get("fine") or {}).get("state", {})
    p = await until(client, ns, name, refused)
    assert statuses(p)["root"]["state"]["waiting"]["message"] == \
        f'container has runAsNonRoot and image will run as root (pod: "{name}_{ns}({uid})", container: root)'
