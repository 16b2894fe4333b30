"""`boxkube create cluster --provider docker`: a control-plane container and worker containers with
their own Docker engines, driven by the real CLI and kubectl, as a student would."""
from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import Cluster, made_cluster, until

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def docker_cluster(docker_client, tmp_path_factory) -> Iterator[Cluster]:
    with made_cluster(tmp_path_factory.mktemp("docker-home"), "dk", "--nodes", "2", "--wait", "180",
                      provider="docker") as c:
        yield c


def boxkube(cluster: Cluster, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "boxkube.cli", *args, "--name", cluster.name],
                          capture_output=True, text=True, env=cluster.env, timeout=300)


def containers(docker_client, cluster: Cluster) -> list[str]:
    return sorted(c.name for c in docker_client.containers.list(all=True,
                                                               filters={"label": f"dev.boxkube.cluster={cluster.name}"}))


def test_nodes_are_containers_named_as_kind_names_them(docker_cluster, docker_client):
    name = docker_cluster.name
    assert containers(docker_client, docker_cluster) == [f"{name}-control-plane", f"{name}-worker", f"{name}-worker2"]
    listed = boxkube(docker_cluster, "get", "nodes")
    assert listed.stdout.splitlines() == containers(docker_client, docker_cluster), listed.stderr
    nodes = json.loads(docker_cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    assert sorted(n["metadata"]["name"] for n in nodes) == [f"{name}-worker", f"{name}-worker2"]
    for node in nodes:
        assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("docker://")
        assert next(c for c in node["status"]["conditions"] if c["type"] == "Ready")["status"] == "True"


def test_a_deployment_runs_in_the_workers_engines(docker_cluster, docker_client):
    docker_cluster.kubectl("create", "deployment", "web", "--image=boxkube/hello:1", "--replicas=2")
    docker_cluster.kubectl("rollout", "status", "deployment/web", "--timeout=120s", timeout=150)
    pods = json.loads(docker_cluster.kubectl("get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]
    assert len(pods) == 2 and all(p["status"]["phase"] == "Running" for p in pods)
    for pod in pods:   # each pod's container runs in its node's inner engine
        node = docker_client.containers.get(pod["spec"]["nodeName"])
        listed = node.exec_run(["docker", "ps", "--format", "{{.Names}}"]).output.decode()
        assert f"k8s_hello_{pod['metadata']['name']}_default_" in listed


def test_a_container_killed_in_its_node_is_restarted(docker_cluster, docker_client):
    docker_cluster.kubectl("run", "victim", "--image=boxkube/hello:1")
    docker_cluster.kubectl("wait", "--for=condition=Ready", "pod/victim", "--timeout=90s", timeout=100)
    pod = json.loads(docker_cluster.kubectl("get", "pod", "victim", "-o", "json").stdout)
    node = docker_client.containers.get(pod["spec"]["nodeName"])
    killed = node.exec_run(["sh", "-c", "docker kill $(docker ps -q --filter name=k8s_victim_victim_default_)"])
    assert killed.exit_code == 0, killed.output

    def restarted() -> dict | None:
        status = json.loads(docker_cluster.kubectl("get", "pod", "victim", "-o", "json").stdout)["status"]
        [container] = status["containerStatuses"]
        return container if container["restartCount"] == 1 and "running" in container["state"] else None
    container = until(restarted, timeout=60, interval=0.5, what="the container restarted")
    assert container["lastState"]["terminated"]["exitCode"] == 137      # SIGKILL
    docker_cluster.kubectl("delete", "pod", "victim", "--now")


def test_load_image_copies_only_where_missing(docker_cluster, docker_client, images):
    first = boxkube(docker_cluster, "load", "image", images.busybox)
    assert first.returncode == 0, first.stderr
    again = boxkube(docker_cluster, "load", "image", images.busybox)
    assert again.returncode == 0, again.stderr
    assert "already" in again.stderr
    missing = boxkube(docker_cluster, "load", "image", "no-such/image:1")
    assert missing.returncode == 1 and missing.stderr.startswith("ERROR: ") and len(missing.stderr.splitlines()) == 1


def test_delete_leaves_no_container_network_or_volume(docker_client, tmp_path):
    with made_cluster(tmp_path, "gone", "--nodes", "1", "--wait", "180", provider="docker") as cluster:
        label = {"label": f"dev.boxkube.cluster={cluster.name}"}
        assert docker_client.containers.list(all=True, filters=label)
    assert not docker_client.containers.list(all=True, filters=label)
    assert not docker_client.networks.list(filters=label)
    assert not docker_client.volumes.list(filters=label)
