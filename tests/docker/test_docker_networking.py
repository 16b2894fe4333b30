"""The pod network, Services and cluster DNS of a docker cluster (issue 4 §4), on real node containers:
pod IPs from each node's podCIDR reaching each other across nodes, a ClusterIP Service balancing over
every endpoint from a pod on each node, NodePort from the host, and Service names resolving in pods."""
from __future__ import annotations

import ipaddress
import json
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.conftest import Cluster, made_cluster

pytestmark = pytest.mark.docker

WEB, BUSYBOX = "boxkube/hello:1", "boxkube/busybox:1"
CLUSTER_DNS = "10.96.0.10"

MANIFESTS = f"""
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: web}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: web, image: "{WEB}", ports: [{{containerPort: 8080}}]}}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: client}}
spec:
  selector: {{matchLabels: {{app: client}}}}
  template:
    metadata: {{labels: {{app: client}}}}
    spec:
      containers: [{{name: c, image: "{BUSYBOX}", command: [sleep, "3600"]}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  type: NodePort
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: sticky}}
spec:
  selector: {{app: web}}
  sessionAffinity: ClientIP
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: hl}}
spec:
  clusterIP: None
  selector: {{app: named}}
  ports: [{{port: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: only-named}}
spec:
  selector: {{app: named}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: named, labels: {{app: named}}}}
spec:
  hostname: h0
  subdomain: hl
  containers: [{{name: web, image: "{WEB}"}}]
"""


@pytest.fixture(scope="module")
def net_cluster(docker_client, tmp_path_factory) -> Iterator[Cluster]:
    # --wait covers a node image rebuild too (the deadline counts from the start of create)
    with made_cluster(tmp_path_factory.mktemp("net-home"), "net", "--nodes", "2", "--wait", "300",
                      provider="docker") as c:
        c.kubectl("apply", "-f", "-", input=MANIFESTS)
        c.kubectl("rollout", "status", "daemonset/web", "--timeout=120s", timeout=150)
        c.kubectl("rollout", "status", "daemonset/client", "--timeout=120s", timeout=150)
        c.kubectl("wait", "pod/named", "--for=condition=Ready", "--timeout=120s", timeout=150)
        yield c


def _pods(cluster: Cluster, app: str) -> list[dict]:
    pods = json.loads(cluster.kubectl("get", "pods", "-l", f"app={app}", "-o", "json").stdout)["items"]
    assert pods and all(p["status"].get("podIP") for p in pods), pods
    return pods


def _exec(docker_client, pod: dict, container: str, *cmd: str) -> tuple[int, str]:
    """Run a command in a pod's container through its node's inner engine."""
    node = docker_client.containers.get(pod["spec"]["nodeName"])
    found = node.exec_run(["docker", "ps", "-q", "-f", f"label=io.kubernetes.pod.uid={pod['metadata']['uid']}",
                           "-f", f"label=io.kubernetes.container.name={container}"]).output.decode().split()
    assert found, f"no running container {container} of {pod['metadata']['name']}"
    result = node.exec_run(["docker", "exec", found[0], *cmd])
    return result.exit_code, result.output.decode(errors="replace")


def _http_get(docker_client, client_pod: dict, host: str, port: int, container: str = "c") -> str:
    """The last line of an HTTP answer (the hello image answers with its pod's name), through busybox nc."""
    code, out = _exec(docker_client, client_pod, container, "sh", "-c",
                      f'printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 3 {host} {port}')
    lines = [line for line in out.strip().splitlines() if line.strip()]
    return lines[-1].strip() if code == 0 and lines else f"(exit {code}: {out.strip()})"


def _node_cidrs(cluster: Cluster) -> dict[str, str]:
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    return {n["metadata"]["name"]: n["spec"]["podCIDR"] for n in nodes}


def test_pod_ips_come_from_their_nodes_pod_cidr_and_reach_across_nodes(net_cluster, docker_client):
    cidrs = _node_cidrs(net_cluster)
    assert len(set(cidrs.values())) == 2
    web, clients = _pods(net_cluster, "web"), _pods(net_cluster, "client")
    assert len({p["spec"]["nodeName"] for p in web}) == 2
    for pod in web + clients:
        assert ipaddress.ip_address(pod["status"]["podIP"]) in ipaddress.ip_network(cidrs[pod["spec"]["nodeName"]])
    for client in clients:      # every client reaches every web pod by pod IP, on its node and on the other
        for target in web:
            assert _http_get(docker_client, client, target["status"]["podIP"], 8080) == target["metadata"]["name"]


def test_pod_to_pod_traffic_keeps_its_source_address(net_cluster, docker_client):
    """Not masqueraded across nodes: a pod sees its peer's pod IP as the connection's source."""
    a, b = _pods(net_cluster, "client")[:2]
    assert a["spec"]["nodeName"] != b["spec"]["nodeName"]
    _exec(docker_client, b, "c", "sh", "-c", "nc -l -p 9000 >/dev/null 2>&1 </dev/null &")
    time.sleep(0.5)
    _exec(docker_client, a, "c", "sh", "-c", f"(sleep 5 | nc {b['status']['podIP']} 9000) >/dev/null 2>&1 &")
    deadline, table = time.monotonic() + 5, ""
    while time.monotonic() < deadline:
        _code, table = _exec(docker_client, b, "c", "netstat", "-tn")
        if f"{a['status']['podIP']}:" in table:
            break
        time.sleep(0.3)
    assert f"{a['status']['podIP']}:" in table, table


def test_cluster_ip_answers_from_a_pod_on_each_node_with_every_endpoint(net_cluster, docker_client):
    service = json.loads(net_cluster.kubectl("get", "service", "web", "-o", "json").stdout)
    ip = service["spec"]["clusterIP"]
    names = {p["metadata"]["name"] for p in _pods(net_cluster, "web")}
    for client in _pods(net_cluster, "client"):
        seen: set[str] = set()
        for _ in range(60):
            answer = _http_get(docker_client, client, ip, 80)
            assert answer in names, answer
            seen.add(answer)
            if seen == names:
                break
        assert seen == names, f"from {client['spec']['nodeName']}: only {seen} of {names}"


def test_a_pod_reaches_itself_through_its_own_service(net_cluster, docker_client):
    """Hairpin: the Service's only endpoint is the asking pod; the answer must come back to it through
    its own bridge port (hairpin mode), as the kubelet's bridge sets it up."""
    named = _pods(net_cluster, "named")[0]
    ip = json.loads(net_cluster.kubectl("get", "service", "only-named", "-o", "json").stdout)["spec"]["clusterIP"]
    direct = _http_get(docker_client, named, named["status"]["podIP"], 8080, container="web")
    assert not direct.startswith("(exit"), direct
    assert _http_get(docker_client, named, ip, 80, container="web") == direct


def test_session_affinity_client_ip_keeps_a_client_on_one_endpoint(net_cluster, docker_client):
    names = {p["metadata"]["name"] for p in _pods(net_cluster, "web")}
    for client in _pods(net_cluster, "client"):
        answers = {_http_get(docker_client, client, "sticky", 80) for _ in range(8)}
        assert len(answers) == 1 and answers <= names, answers


def test_node_port_answers_from_the_host_on_every_node(net_cluster, docker_client):
    service = json.loads(net_cluster.kubectl("get", "service", "web", "-o", "json").stdout)
    node_port = service["spec"]["ports"][0]["nodePort"]
    names = {p["metadata"]["name"] for p in _pods(net_cluster, "web")}
    for node in _node_cidrs(net_cluster):
        container = docker_client.containers.get(node)
        address = next(iter(container.attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]
        with urllib.request.urlopen(f"http://{address}:{node_port}/", timeout=5) as r:
            assert r.read().decode().strip() in names


def test_service_names_resolve_in_pods_through_cluster_dns(net_cluster, docker_client):
    service = json.loads(net_cluster.kubectl("get", "service", "web", "-o", "json").stdout)
    names = {p["metadata"]["name"] for p in _pods(net_cluster, "web")}
    named = _pods(net_cluster, "named")[0]
    for client in _pods(net_cluster, "client"):
        code, resolv = _exec(docker_client, client, "c", "cat", "/etc/resolv.conf")
        assert code == 0
        assert resolv.split("\n")[0] == f"nameserver {CLUSTER_DNS}"
        assert "search default.svc.cluster.local svc.cluster.local cluster.local" in resolv
        assert "options ndots:5" in resolv
        code, out = _exec(docker_client, client, "c", "nslookup", "web.default.svc.cluster.local")
        assert code == 0 and service["spec"]["clusterIP"] in out, out
        # the short name through the search path, used for a request
        assert _http_get(docker_client, client, "web", 80) in names
        # a pod's hostname under its headless Service (as a StatefulSet's pods are named)
        code, out = _exec(docker_client, client, "c", "nslookup", "h0.hl.default.svc.cluster.local")
        assert code == 0 and named["status"]["podIP"] in out, out
        # the headless Service: its ready endpoints' IPs
        code, out = _exec(docker_client, client, "c", "nslookup", "hl.default.svc.cluster.local")
        assert code == 0 and named["status"]["podIP"] in out, out
