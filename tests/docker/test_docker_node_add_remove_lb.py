"""On one small docker cluster of its own: a LoadBalancer Service answers from the host on the EXTERNAL-IP
`kubectl get svc` shows (the nodes' addresses, as k3s's ServiceLB gives them), the worker's extra port mapping
of the cluster config file reaches a NodePort from the host's 127.0.0.1, `boxkube node add` makes a worker
that joins and serves it too, and `boxkube node remove` takes it away again, container and volume."""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator

import pytest

from tests.conftest import Cluster, made_cluster, until

pytestmark = pytest.mark.docker

WEB = "boxkube/hello:1"
NODE_PORT = 30081
MANIFESTS = f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: web, image: "{WEB}", ports: [{{containerPort: 8080}}]}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  type: LoadBalancer
  selector: {{app: web}}
  ports: [{{port: 8081, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web-np}}
spec:
  type: NodePort
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080, nodePort: {NODE_PORT}}}]
"""
# The worker publishes its NodePort on a free port of the host's 127.0.0.1, as kind's extraPortMappings.
CONFIG = f"""apiVersion: boxkube.dev/v1alpha1
kind: Cluster
nodes:
  - role: worker
    extraPortMappings: [{{containerPort: {NODE_PORT}, hostPort: 0}}]
"""


@pytest.fixture(scope="module")
def lb_cluster(docker_client, tmp_path_factory) -> Iterator[Cluster]:
    # --wait covers a node image rebuild too (the deadline counts from the start of create)
    with made_cluster(tmp_path_factory.mktemp("lb-home"), "lb", "--wait", "300",
                      provider="docker", config=CONFIG) as c:
        c.kubectl("apply", "-f", "-", input=MANIFESTS)
        c.kubectl("rollout", "status", "deployment/web", "--timeout=120s", timeout=150)
        yield c


def boxkube(cluster: Cluster, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "boxkube.cli", *args, "--name", cluster.name],
                          capture_output=True, text=True, env=cluster.env, timeout=300)


def node_ips(docker_client, cluster: Cluster) -> dict[str, str]:
    """Each worker container's address on the cluster's network."""
    workers = docker_client.containers.list(filters={"label": [f"dev.boxkube.cluster={cluster.name}",
                                                               "dev.boxkube.role=worker"]})
    return {c.name: c.attrs["NetworkSettings"]["Networks"][f"boxkube-{cluster.name}"]["IPAddress"] for c in workers}


def external_ips(cluster: Cluster) -> list[str]:
    """The EXTERNAL-IP column of `kubectl get svc web`."""
    row = cluster.kubectl("get", "svc", "web", "--no-headers").stdout.split()
    return [] if row[3] == "<pending>" else row[3].split(",")


def answer(ip: str, port: int = 8081) -> str:
    """The web app's answer through the load balancer; "" while nothing answers yet (the node's proxy
    writes its rules a moment after the Service's status shows the address)."""
    try:
        with urllib.request.urlopen(f"http://{ip}:{port}/", timeout=5) as r:
            return r.read().decode().strip()
    except OSError:
        return ""


def pod_names(cluster: Cluster) -> set[str]:
    pods = json.loads(cluster.kubectl("get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]
    return {p["metadata"]["name"] for p in pods}


def test_a_load_balancer_service_answers_from_the_host_on_its_external_ip(lb_cluster, docker_client):
    ips = until(lambda: external_ips(lb_cluster), what="an EXTERNAL-IP", timeout=30)
    assert ips == sorted(node_ips(docker_client, lb_cluster).values())
    service = json.loads(lb_cluster.kubectl("get", "svc", "web", "-o", "json").stdout)
    assert service["status"]["loadBalancer"]["ingress"] == [{"ip": ip, "ipMode": "VIP"} for ip in ips]
    assert until(lambda: answer(ips[0]), what="an HTTP answer", timeout=30) in pod_names(lb_cluster)


def test_an_extra_port_mapping_reaches_a_node_port_from_the_hosts_loopback(lb_cluster, docker_client):
    worker = docker_client.containers.get(f"{lb_cluster.name}-worker")
    [binding] = worker.attrs["NetworkSettings"]["Ports"][f"{NODE_PORT}/tcp"]
    assert binding["HostIp"] == "127.0.0.1"
    port = int(binding["HostPort"])
    assert until(lambda: answer("127.0.0.1", port), what="an HTTP answer", timeout=30) in pod_names(lb_cluster)


def test_node_add_joins_a_worker_that_serves_the_load_balancer_too(lb_cluster, docker_client):
    added = boxkube(lb_cluster, "node", "add")
    assert added.returncode == 0, added.stderr
    new = f"{lb_cluster.name}-worker2"
    for step in (f"Preparing node {new}", f"Joining node {new}", f"for node {new} to be Ready"):
        assert step in added.stderr, added.stderr
    assert boxkube(lb_cluster, "get", "nodes").stdout.split() == \
        [f"{lb_cluster.name}-control-plane", f"{lb_cluster.name}-worker", new]
    node = json.loads(lb_cluster.kubectl("get", "node", new, "-o", "json").stdout)
    assert next(c for c in node["status"]["conditions"] if c["type"] == "Ready")["status"] == "True"
    # the workload images were loaded as at creation: pods start there without a registry
    assert "boxkube/hello" in docker_client.containers.get(new).exec_run(["docker", "images"]).output.decode()
    ip = node_ips(docker_client, lb_cluster)[new]
    until(lambda: ip in external_ips(lb_cluster), what=f"{ip} in EXTERNAL-IP", timeout=30)
    assert until(lambda: answer(ip), what="an HTTP answer on the new node", timeout=30) in pod_names(lb_cluster)


def test_node_remove_takes_the_worker_away_and_refuses_the_control_plane(lb_cluster, docker_client):
    name, gone = lb_cluster.name, f"{lb_cluster.name}-worker2"
    ip = node_ips(docker_client, lb_cluster)[gone]
    removed = boxkube(lb_cluster, "node", "remove", gone)
    assert removed.returncode == 0, removed.stderr
    assert f"Cordoning and deleting Node {gone}" in removed.stderr
    assert gone not in boxkube(lb_cluster, "get", "nodes").stdout.split()
    assert not docker_client.volumes.list(filters={"name": f"{gone}-var-lib-docker"})
    assert gone not in lb_cluster.kubectl("get", "nodes").stdout
    until(lambda: ip not in external_ips(lb_cluster) and external_ips(lb_cluster), what=f"{ip} out of EXTERNAL-IP",
          timeout=30)
    lb_cluster.kubectl("rollout", "status", "deployment/web", "--timeout=120s", timeout=150)

    refused = boxkube(lb_cluster, "node", "remove", f"{name}-control-plane")
    assert refused.returncode == 1 and refused.stderr == \
        f'ERROR: node "{name}-control-plane" is the control plane; only workers can be removed\n'
    unknown = boxkube(lb_cluster, "node", "remove", f"{name}-worker9")
    assert unknown.returncode == 1 and unknown.stderr == f'ERROR: no node "{name}-worker9" in cluster "{name}"\n'
