"""What the agent works out for a container before any runtime starts it (boxkube.agent.podconfig,
boxkube.agent.volumes): `$(VAR)` expansion, env from ConfigMaps/Secrets/the downward API with upstream's
error messages, volume files as upstream's AtomicWriter lays them out; and, on simulated nodes through the
real API server, the waiting reasons and events a missing ConfigMap gives (CreateContainerConfigError,
FailedMount), the same for every runtime. The Docker runtime's mapping of a container onto the engine is
checked here too, without an engine."""
from __future__ import annotations

import base64
import os
import uuid

import pytest

from boxkube.agent import volumes
from boxkube.agent.podconfig import (
    ConfigError,
    ObjectSource,
    command_line,
    env_var_name,
    environment,
    expand,
    field_value,
    service_environment,
    service_variables,
)
from boxkube.agent.runtime.docker import Engine, cpu_shares, hostname, resource_limits, security_context
from boxkube.client import ApiError, resource
from tests.agent.conftest import PODS, eventually

CONFIGMAPS, EVENTS, SERVICES = resource("configmaps"), resource("events"), resource("services")


class FakeClient:
    """GETs of ConfigMaps and Secrets from dicts; counts them."""

    def __init__(self, configmaps: dict | None = None, secrets: dict | None = None):
        self.objects = {"configmaps": configmaps or {}, "secrets": secrets or {}}
        self.gets = 0

    async def get(self, rt, name, namespace=None):
        self.gets += 1
        found = self.objects[rt.plural].get(name)
        if found is None:
            raise ApiError({"code": 404, "reason": "NotFound", "message": f'{rt.plural} "{name}" not found'})
        return found


def source(**kwargs) -> ObjectSource:
    return ObjectSource(FakeClient(**kwargs), "ns")  # type: ignore[arg-type]


POD = {"metadata": {"name": "web-1", "namespace": "ns", "uid": "u-1", "labels": {"app": "web", "x": 'a"b'},
                    "annotations": {"note": "hi"}},
       "spec": {"nodeName": "node-a", "serviceAccountName": "default",
                "containers": [{"name": "app", "resources": {"limits": {"cpu": "250m", "memory": "128Mi"},
                                                              "requests": {"cpu": "100m"}}}]}}


# -- expansion and environment -------------------------------------------------------------------------


@pytest.mark.parametrize("text,expected", [
    ("$(A)", "1"), ("x$(A)y$(B)z", "x1y2z"), ("$(MISSING)", "$(MISSING)"), ("$$(A)", "$(A)"), ("$$", "$"),
    ("$(A", "$(A"), ("$A", "$A"), ("a$", "a$"), ("$()", "$()"), ("$$$(A)", "$1"), ("", ""),
])
def test_expand_as_upstream(text, expected):
    assert expand(text, {"A": "1", "B": "2"}) == expected


async def test_environment_resolves_every_source_in_order():
    src = source(configmaps={"cm": {"data": {"color": "blue", "size": "L"}}},
                 secrets={"s": {"data": {"token": base64.b64encode(b"t0k").decode()}}})
    container = {
        "name": "app",
        "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"},
                    {"secretRef": {"name": "missing", "optional": True}}],
        "env": [{"name": "A", "value": "a"}, {"name": "B", "value": "$(A)-$(CM_color)-$(NOPE)"},
                {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "color"}}},
                {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "gone", "optional": True}}},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "token"}}},
                {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "CPU_M", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
                {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu"}}},
                {"name": "MEM_NODE", "valueFrom": {"resourceFieldRef": {"resource": "limits.ephemeral-storage",
                                                                         "divisor": "1Gi"}}},
                {"name": "A", "value": "again"}],
        "command": ["run", "$(NAME)"], "args": ["--ip=$(IP)", "$$(NAME)"],
        "resources": {"limits": {"cpu": "250m"}, "requests": {"cpu": "100m"}},
    }
    env = await environment(POD, container, src, pod_ip="10.1.2.3", host_ip="172.18.0.2",
                            allocatable={"ephemeral-storage": "100Gi"})
    assert env == [("CM_color", "blue"), ("CM_size", "L"), ("A", "again"), ("B", "a-blue-$(NOPE)"),
                   ("COLOR", "blue"), ("TOKEN", "t0k"), ("NAME", "web-1"), ("IP", "10.1.2.3"),
                   ("HOST", "172.18.0.2"), ("APP", "web"), ("CPU_M", "250"), ("CPU", "1"), ("MEM_NODE", "100")]
    assert command_line(container, env) == (["run", "web-1"], ["--ip=10.1.2.3", "$(NAME)"])
    assert src.client.gets == 3     # each object read once per job


@pytest.mark.parametrize("env,message", [
    ([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}], 'configmap "nope" not found'),
    ([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}],
     "couldn't find key k in ConfigMap ns/cm"),
    ([{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}], 'secret "nope" not found'),
    ([{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}], "couldn't find key k in Secret ns/s"),
    ([{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}], "unsupported fieldPath: spec.bogus"),
])
async def test_environment_errors_are_upstreams(env, message):
    src = source(configmaps={"cm": {"data": {}}}, secrets={"s": {"data": {}}})
    with pytest.raises(ConfigError) as e:
        await environment(POD, {"name": "app", "env": env}, src)
    assert str(e.value) == message


# -- Service environment variables (upstream pkg/kubelet/envvars) --------------------------------------


def _service(name: str, namespace: str = "ns", ip: str = "10.96.5.6", ports: list | None = None) -> dict:
    return {"metadata": {"name": name, "namespace": namespace},
            "spec": {"clusterIP": ip, "ports": ports if ports is not None else [{"port": 80}]}}


KUBERNETES = _service("kubernetes", "default", "10.96.0.1", [{"name": "https", "port": 443, "protocol": "TCP"}])


def test_service_variable_names_are_upstreams():
    assert env_var_name("my-web-app") == "MY_WEB_APP"
    web = _service("my-web", ports=[{"port": 80, "protocol": "TCP"},
                                    {"name": "metrics-port", "port": 9090, "protocol": "UDP"}])
    assert service_variables([web]) == [
        ("MY_WEB_SERVICE_HOST", "10.96.5.6"), ("MY_WEB_SERVICE_PORT", "80"),
        ("MY_WEB_SERVICE_PORT_METRICS_PORT", "9090"),
        ("MY_WEB_PORT", "tcp://10.96.5.6:80"),
        ("MY_WEB_PORT_80_TCP", "tcp://10.96.5.6:80"), ("MY_WEB_PORT_80_TCP_PROTO", "tcp"),
        ("MY_WEB_PORT_80_TCP_PORT", "80"), ("MY_WEB_PORT_80_TCP_ADDR", "10.96.5.6"),
        ("MY_WEB_PORT_9090_UDP", "udp://10.96.5.6:9090"), ("MY_WEB_PORT_9090_UDP_PROTO", "udp"),
        ("MY_WEB_PORT_9090_UDP_PORT", "9090"), ("MY_WEB_PORT_9090_UDP_ADDR", "10.96.5.6"),
    ]
    # no protocol is TCP; an IPv6 ClusterIP is bracketed in the URLs
    v6 = dict(service_variables([_service("db", ip="fd00::10", ports=[{"port": 5432}])]))
    assert v6["DB_PORT"] == v6["DB_PORT_5432_TCP"] == "tcp://[fd00::10]:5432"


def test_service_environment_picks_as_the_kubelet():
    services = [
        KUBERNETES,
        _service("web"),
        _service("headless", ip="None"),
        {"metadata": {"name": "ext", "namespace": "ns"}, "spec": {"type": "ExternalName", "externalName": "x.org"}},
        _service("elsewhere", namespace="other"),
        _service("other-in-default", namespace="default"),
    ]
    env = service_environment(services, "ns")
    assert {k for k in env if k.endswith("_SERVICE_HOST")} == {"KUBERNETES_SERVICE_HOST", "WEB_SERVICE_HOST"}
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1" and env["KUBERNETES_SERVICE_PORT"] == "443"
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443" and env["KUBERNETES_PORT"] == "tcp://10.96.0.1:443"
    # enableServiceLinks: false keeps only the kubernetes Service's
    assert set(service_environment(services, "ns", False)) == set(service_environment([KUBERNETES], "other"))
    assert all(k.startswith("KUBERNETES_") for k in service_environment(services, "ns", False))
    # in default, its own Services; a Service of the pod's namespace named kubernetes hides default's
    assert "OTHER_IN_DEFAULT_SERVICE_HOST" in service_environment(services, "default")
    mine = _service("kubernetes", ip="10.96.7.7")
    for order in ([KUBERNETES, mine], [mine, KUBERNETES]):
        assert service_environment(order, "ns")["KUBERNETES_SERVICE_HOST"] == "10.96.7.7"
    assert service_environment([mine, KUBERNETES], "ns", False)["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"


async def test_service_variables_come_after_the_containers_own_which_win():
    services = service_environment([KUBERNETES, _service("web")], "ns")
    container = {"name": "app",
                 "env": [{"name": "URL", "value": "http://$(WEB_SERVICE_HOST):$(WEB_SERVICE_PORT)"},
                         {"name": "WEB_SERVICE_PORT", "value": "8080"},
                         {"name": "LATER", "value": "$(WEB_SERVICE_PORT)"}],
                 "command": ["curl", "$(URL)", "$(KUBERNETES_SERVICE_HOST)"]}
    env = await environment(POD, container, source(), services=services)
    assert env[:3] == [("URL", "http://10.96.5.6:80"), ("WEB_SERVICE_PORT", "8080"), ("LATER", "8080")]
    as_dict = dict(env)
    assert as_dict["WEB_SERVICE_PORT"] == "8080" and as_dict["WEB_SERVICE_HOST"] == "10.96.5.6"
    assert len(env) == len(as_dict) == len(set(services) | {"URL", "LATER"})
    assert command_line(container, env) == (["curl", "http://10.96.5.6:80", "10.96.0.1"], None)


def test_downward_api_maps_are_formatted_as_upstream():
    assert field_value(POD, "metadata.labels", volume=True) == 'app="web"\nx="a\\"b"'
    assert field_value(POD, "metadata.annotations['note']") == "hi"
    assert field_value(POD, "metadata.labels['none']") == ""
    with pytest.raises(ConfigError):
        field_value(POD, "status.podIP", volume=True)     # not a volume's field


# -- volumes ----------------------------------------------------------------------------------------


def _pod(volumes_: list, uid: str = "u-1") -> dict:
    return {**POD, "metadata": {**POD["metadata"], "uid": uid}, "spec": {**POD["spec"], "volumes": volumes_}}


async def test_volumes_are_written_as_upstreams_atomic_writer(tmp_path):
    src = source(configmaps={"cm": {"data": {"a.conf": "A", "b.conf": "B"}, "binaryData": {"bin": "AAE="}}},
                 secrets={"s": {"data": {"key": base64.b64encode(b"secret").decode()}}})
    host = tmp_path / "host-dir"
    pod = _pod([
        {"name": "cm", "configMap": {"name": "cm"}},
        {"name": "some", "configMap": {"name": "cm", "items": [{"key": "b.conf", "path": "deep/b", "mode": 0o600}]}},
        {"name": "s", "secret": {"secretName": "s", "defaultMode": 0o400}},
        {"name": "opt", "configMap": {"name": "absent", "optional": True}},
        {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                                                   {"path": "mem", "resourceFieldRef": {
                                                       "containerName": "app", "resource": "limits.memory",
                                                       "divisor": "1Mi"}}]}},
        {"name": "scratch", "emptyDir": {}},
        {"name": "host", "hostPath": {"path": str(host), "type": "DirectoryOrCreate"}},
    ])
    vols = await volumes.prepare(pod, src, str(tmp_path / "root"))
    base = tmp_path / "root" / "pods" / "u-1" / "volumes"
    cm = base / "kubernetes.io~configmap" / "cm"
    assert (cm / "a.conf").read_text() == "A" and (cm / "bin").read_bytes() == b"\0\1"
    assert os.readlink(cm / "a.conf") == "..data/a.conf" and os.readlink(cm / "..data").startswith("..")
    some = base / "kubernetes.io~configmap" / "some"
    assert (some / "deep" / "b").read_text() == "B"
    assert sorted(p.name for p in some.iterdir() if p.name[0] != ".") == ["deep"]
    assert oct((some / "deep" / "b").stat().st_mode & 0o777) == "0o600"
    secret = base / "kubernetes.io~secret" / "s" / "key"
    assert secret.read_bytes() == b"secret" and oct(secret.stat().st_mode & 0o777) == "0o400"
    assert [p.name for p in (base / "kubernetes.io~configmap" / "opt").iterdir() if p.name[:2] != ".."] == []
    info = base / "kubernetes.io~downward-api" / "info"
    assert (info / "labels").read_text() == 'app="web"\nx="a\\"b"' and (info / "mem").read_text() == "128"
    assert oct((base / "kubernetes.io~empty-dir" / "scratch").stat().st_mode & 0o777) == "0o777"
    assert host.is_dir()
    mounts = vols.mounts({"name": "app", "volumeMounts": [
        {"name": "cm", "mountPath": "/etc/cm"}, {"name": "scratch", "mountPath": "/data", "subPath": "sub"},
        {"name": "host", "mountPath": "/h", "readOnly": True}]})
    assert [(m.container_path, m.host_path, m.read_only) for m in mounts] == [
        ("/etc/cm", str(cm), True), ("/data", str(base / "kubernetes.io~empty-dir" / "scratch" / "sub"), False),
        ("/h", str(host), True)]
    assert (base / "kubernetes.io~empty-dir" / "scratch" / "sub").is_dir()
    # Prepared again (an agent restart): files are written afresh and emptyDirs keep what they hold.
    (base / "kubernetes.io~empty-dir" / "scratch" / "kept").write_text("k")
    src.client.objects["configmaps"]["cm"] = {"data": {"a.conf": "A2", "b.conf": "B"}}
    await volumes.prepare(pod, ObjectSource(src.client, "ns"), str(tmp_path / "root"))
    assert (cm / "a.conf").read_text() == "A2" and not (cm / "bin").exists() and not os.path.islink(cm / "bin")
    assert len([p for p in cm.iterdir() if p.name.startswith("..") and p.is_dir() and not p.is_symlink()]) == 1
    assert (base / "kubernetes.io~empty-dir" / "scratch" / "kept").exists()
    await volumes.remove_orphans(str(tmp_path / "root"), keep={"other"})
    assert not (tmp_path / "root" / "pods" / "u-1").exists()


@pytest.mark.parametrize("volume,message", [
    ({"name": "v", "configMap": {"name": "cm"}}, 'MountVolume.SetUp failed for volume "v" : configmap "cm" not found'),
    ({"name": "v", "secret": {"secretName": "s"}}, 'MountVolume.SetUp failed for volume "v" : secret "s" not found'),
    ({"name": "v", "configMap": {"name": "there", "items": [{"key": "k", "path": "p"}]}},
     'MountVolume.SetUp failed for volume "v" : configmap references non-existent config key: k'),
    ({"name": "v", "hostPath": {"path": "/definitely/not/here", "type": "Directory"}},
     'MountVolume.SetUp failed for volume "v" : hostPath type check failed: /definitely/not/here is not a directory'),
    ({"name": "v", "persistentVolumeClaim": {"claimName": "c"}}, "do not serve persistentVolumeClaim volumes"),
])
async def test_volume_errors_are_failed_mount_messages(tmp_path, volume, message):
    with pytest.raises(volumes.VolumeError) as e:
        await volumes.prepare(_pod([volume]), source(configmaps={"there": {"data": {}}}), str(tmp_path))
    assert message in str(e.value)


async def test_a_runtime_without_a_root_gets_the_checks_but_no_files(tmp_path):
    with pytest.raises(volumes.VolumeError):
        await volumes.prepare(_pod([{"name": "v", "configMap": {"name": "cm"}}]), source(), None)
    vols = await volumes.prepare(_pod([{"name": "v", "emptyDir": {}}]), source(), None)
    assert vols.mounts({"name": "app", "volumeMounts": [{"name": "v", "mountPath": "/v"}]}) == []
    container = {"name": "app", "terminationMessagePath": "/dev/termination-log"}
    assert vols.termination_message_file(container) == ("", None)


# -- the Docker runtime's mapping onto the engine (no engine needed) ------------------------------------------


def test_cpu_and_memory_map_onto_the_engine_as_the_kubelet_does():
    assert cpu_shares({"resources": {}}) == 2
    assert cpu_shares({"resources": {"requests": {"cpu": "250m"}}}) == 256
    assert cpu_shares({"resources": {"limits": {"cpu": "2"}}}) == 2048
    assert cpu_shares({"resources": {"requests": {"cpu": "1m"}}}) == 2
    assert resource_limits({"resources": {"limits": {"cpu": "1500m", "memory": "1Gi"}}}, swap_limit=True) == {
        "CpuShares": 1536, "NanoCpus": 1_500_000_000, "Memory": 2 ** 30, "MemorySwap": 2 ** 30}
    assert resource_limits({"resources": {"limits": {"cpu": "1m"}}}, swap_limit=False)["NanoCpus"] == 10_000_000


def test_security_context_and_hostname():
    pod = {"metadata": {"name": "p" * 70}, "spec": {"securityContext": {"runAsUser": 5, "runAsGroup": 6}}}
    assert security_context(pod, {"securityContext": {"runAsUser": 7}}) == {"runAsUser": 7, "runAsGroup": 6}
    assert hostname(pod) == "p" * 63
    assert hostname({"metadata": {"name": "x"}, "spec": {"hostname": "h"}}) == "h"


def test_engine_addresses():
    assert Engine("unix:///run/x.sock")._socket == "/run/x.sock"
    assert Engine("tcp://10.0.0.1:2375")._base == "http://10.0.0.1:2375"
    with pytest.raises(ValueError, match="not supported"):
        Engine("ssh://user@host")


# -- on simulated nodes, through the API --------------------------------------------------------------------


def _body(node: str, **container) -> dict:
    return {"metadata": {"name": f"cfg-{uuid.uuid4().hex[:6]}"},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "busybox", **container}]}}


def _state(pod: dict) -> dict:
    return (((pod.get("status") or {}).get("containerStatuses") or [{}])[0]).get("state") or {}


async def test_missing_configmap_keys_wait_in_create_container_config_error(client, ns, agents):
    [node] = agents.node_names()
    await agents.start([node])
    env = [{"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "color"}}}]
    pod = await client.create(PODS, _body(node, env=env), ns)
    name = pod["metadata"]["name"]

    async def waiting_for(message):
        async def check():
            waiting = _state(await client.get(PODS, name, ns)).get("waiting") or {}
            return waiting.get("reason") == "CreateContainerConfigError" and waiting.get("message") == message
        check.__name__ = f"waiting: {message}"
        await eventually(check, timeout=10)
    await waiting_for('configmap "settings" not found')
    events = (await client.list(EVENTS, ns, field_selector=f"involvedObject.name={name}"))["items"]
    assert any(e["reason"] == "Failed" and e["message"] == 'Error: configmap "settings" not found' for e in events)
    await client.create(CONFIGMAPS, {"metadata": {"name": "settings"}, "data": {"size": "L"}}, ns)
    await waiting_for(f"couldn't find key color in ConfigMap {ns}/settings")
    await client.patch(CONFIGMAPS, "settings", {"data": {"color": "blue"}}, ns)

    async def running():
        return "running" in _state(await client.get(PODS, name, ns))
    await eventually(running, timeout=10)


async def test_missing_configmap_volume_holds_the_pod_in_container_creating(client, ns, agents):
    [node] = agents.node_names()
    await agents.start([node])
    body = _body(node, volumeMounts=[{"name": "cfg", "mountPath": "/etc/cfg"}])
    body["spec"]["volumes"] = [{"name": "cfg", "configMap": {"name": "later"}}]
    pod = await client.create(PODS, body, ns)
    name = pod["metadata"]["name"]

    async def failed_mount():
        events = (await client.list(EVENTS, ns, field_selector=f"involvedObject.name={name}"))["items"]
        return [e for e in events if e["reason"] == "FailedMount"]
    [event] = await eventually(failed_mount, timeout=10)
    assert event["type"] == "Warning"
    assert event["message"] == 'MountVolume.SetUp failed for volume "cfg" : configmap "later" not found'
    p = await client.get(PODS, name, ns)
    assert p["status"]["phase"] == "Pending" and _state(p)["waiting"]["reason"] == "ContainerCreating"
    await client.create(CONFIGMAPS, {"metadata": {"name": "later"}, "data": {"k": "v"}}, ns)

    async def running():
        return "running" in _state(await client.get(PODS, name, ns))
    await eventually(running, timeout=10)


async def test_containers_get_the_service_variables_of_the_services_there_when_they_start(client, ns, agents):
    [node] = agents.node_names()
    group = await agents.start([node])
    runtime = agents.runtimes[node]
    envs: dict[str, dict[str, str]] = {}
    start = runtime.start_container

    async def recording(sandbox, pod, container, attempt, config=None):
        envs[pod["metadata"]["name"]] = dict(config.env)
        return await start(sandbox, pod, container, attempt, config)
    runtime.start_container = recording
    web = await client.create(SERVICES, {"metadata": {"name": "my-web"},
                                         "spec": {"ports": [{"name": "http", "port": 8080}]}}, ns)
    await client.create(SERVICES, {"metadata": {"name": "headless"},
                                   "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}, ns)

    async def cached():
        return "MY_WEB_SERVICE_HOST" in group.service_environment(ns)
    await eventually(cached)
    linked = await client.create(PODS, _body(node, env=[{"name": "WEB", "value": "$(MY_WEB_SERVICE_HOST)"}]), ns)
    unlinked = _body(node)
    unlinked["spec"]["enableServiceLinks"] = False
    unlinked = await client.create(PODS, unlinked, ns)

    async def started():
        return {linked["metadata"]["name"], unlinked["metadata"]["name"]} <= set(envs)
    await eventually(started)
    env = envs[linked["metadata"]["name"]]
    ip = web["spec"]["clusterIP"]
    assert env["WEB"] == env["MY_WEB_SERVICE_HOST"] == ip and env["MY_WEB_SERVICE_PORT_HTTP"] == "8080"
    assert env["MY_WEB_PORT"] == f"tcp://{ip}:8080" and not any(k.startswith("HEADLESS_") for k in env)
    kubernetes = await client.get(SERVICES, "kubernetes", "default")
    assert env["KUBERNETES_SERVICE_HOST"] == kubernetes["spec"]["clusterIP"]
    assert {k for k in envs[unlinked["metadata"]["name"]] if not k.startswith("KUBERNETES_")} == set()
    assert "KUBERNETES_SERVICE_PORT" in envs[unlinked["metadata"]["name"]]
