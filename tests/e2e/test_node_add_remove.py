"""`boxkube node add/remove` on a whole local cluster: added simulated nodes join Ready with the addresses
their names give, LoadBalancer Services follow them (ServiceLB), a removed node's pods are made again
elsewhere, the cluster's state knows every node, and `delete cluster` stops the added ones too."""
from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from boxkube.cluster.names import next_free_names, number_of
from boxkube.cluster.process import is_running
from boxkube.cluster.state import cluster_dir
from tests.conftest import Cluster, made_cluster, until


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory) -> Iterator[Cluster]:
    with made_cluster(tmp_path_factory.mktemp("add-home"), "grow", "--nodes", "2") as c:
        yield c


def boxkube(cluster: Cluster, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "boxkube.cli", *args, "--name", cluster.name],
                          capture_output=True, text=True, env=cluster.env, timeout=120)


def api_nodes(cluster: Cluster) -> dict[str, dict]:
    items = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    return {n["metadata"]["name"]: n for n in items}


def external_ips(cluster: Cluster, service: str) -> list[str]:
    row = cluster.kubectl("get", "svc", service, "--no-headers").stdout.split()
    return [] if row[3] == "<pending>" else row[3].split(",")


def test_next_free_names_fill_gaps_in_kinds_numbering():
    assert next_free_names("c-worker", []) == ["c-worker"]
    assert next_free_names("c-worker", ["c-worker", "c-worker3"], 2) == ["c-worker2", "c-worker4"]
    assert [number_of("c-worker", n) for n in ("c-worker", "c-worker2", "c-worker12")] == [0, 1, 11]
    for other in ("c-worker1", "c-worker02", "c-workerx", "d-worker"):
        with pytest.raises(ValueError):
            number_of("c-worker", other)


def test_added_nodes_join_serve_load_balancers_and_removed_ones_go(two_nodes):
    cluster, name = two_nodes, two_nodes.name
    cluster.kubectl("create", "deployment", "web", "--image=nginx", "--replicas=4")
    cluster.kubectl("expose", "deployment", "web", "--type=LoadBalancer", "--port=80")
    until(lambda: external_ips(cluster, "web") == ["172.18.0.2", "172.18.0.3"], what="two EXTERNAL-IPs")

    added = boxkube(cluster, "node", "add", "--count", "2")
    assert added.returncode == 0, added.stderr
    new = [f"{name}-worker3", f"{name}-worker4"]
    assert added.stderr.splitlines() == [
        f'Adding 2 worker nodes to cluster "{name}" ...',
        f" ✓ Starting simulated node {new[0]}", f" ✓ Starting simulated node {new[1]}",
        f" ✓ Waiting up to 60s for nodes {new[0]}, {new[1]} to be Ready",
        f"Added {new[0]}, {new[1]}; see them with: boxkube kubectl --name {name} -- get nodes"]
    assert boxkube(cluster, "get", "nodes").stdout.split() == [f"{name}-worker", f"{name}-worker2", *new]
    nodes = api_nodes(cluster)
    assert [a["address"] for a in nodes[new[1]]["status"]["addresses"] if a["type"] == "InternalIP"] == ["172.18.0.5"]
    until(lambda: len(external_ips(cluster, "web")) == 4, what="four EXTERNAL-IPs")

    # one made at creation (its agent shares the creation's process) and one added (a process of its own)
    state = cluster_dir(Path(cluster.env["BOXKUBE_HOME"]), name).load()
    own = state.processes[f"node-{new[0]}"]
    for gone in (f"{name}-worker2", new[0]):
        removed = boxkube(cluster, "node", "remove", gone)
        assert removed.returncode == 0, removed.stderr
        assert removed.stderr.splitlines()[0] == f" ✓ Cordoning and deleting Node {gone}"
    assert not is_running(own)
    remaining = [f"{name}-worker", new[1]]
    assert boxkube(cluster, "get", "nodes").stdout.split() == remaining
    assert sorted(api_nodes(cluster)) == remaining
    until(lambda: external_ips(cluster, "web") == ["172.18.0.2", "172.18.0.5"], what="the remaining EXTERNAL-IPs")

    def moved() -> bool:     # the pods of the removed nodes are made again on the others
        pods = json.loads(cluster.kubectl("get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]
        return len(pods) == 4 and all(p["spec"].get("nodeName") in remaining and p["status"].get("phase") == "Running"
                                      for p in pods)
    until(moved, what="4 pods Running on the remaining nodes", timeout=60)

    # a free name is taken again by the next node added; a removed creation node's is not (its agent is still there)
    again = boxkube(cluster, "node", "add")
    assert again.returncode == 0, again.stderr
    assert boxkube(cluster, "get", "nodes").stdout.split() == [f"{name}-worker", *new]


def test_unknown_clusters_and_nodes_are_one_line_errors(two_nodes):
    name = two_nodes.name
    for args, message in (
        (("node", "remove", f"{name}-worker9"), f'no node "{name}-worker9" in cluster "{name}" '
                                                 f"(see: boxkube get nodes --name {name})"),
        (("node", "remove", f"{name}-control-plane"), f'no node "{name}-control-plane" in cluster "{name}" '
                                                       f"(see: boxkube get nodes --name {name})"),
    ):
        result = boxkube(two_nodes, *args)
        assert (result.returncode, result.stderr) == (1, f"ERROR: {message}\n")
    for args in (("node", "add"), ("node", "remove", "x-worker")):
        result = subprocess.run([sys.executable, "-m", "boxkube.cli", *args, "--name", "no-such-cluster"],
                                capture_output=True, text=True, env=two_nodes.env, timeout=60)
        assert (result.returncode, result.stderr) == \
            (1, 'ERROR: no cluster named "no-such-cluster" (see: boxkube get clusters)\n')
    result = boxkube(two_nodes, "node", "add", "--role", "control-plane")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1


def test_delete_cluster_stops_the_added_nodes(tmp_path):
    with made_cluster(tmp_path, "shrink", "--nodes", "1") as cluster:
        added = boxkube(cluster, "node", "add")
        assert added.returncode == 0, added.stderr
        record = cluster_dir(tmp_path, cluster.name).load().processes[f"node-{cluster.name}-worker2"]
        assert is_running(record)
    assert not is_running(record)


def test_a_node_not_ready_in_time_is_taken_away_again(two_nodes):
    before = boxkube(two_nodes, "get", "nodes").stdout
    failed = boxkube(two_nodes, "node", "add", "--wait", "0.01")
    assert failed.returncode == 1 and "ERROR: Waiting up to 0.01s for node" in failed.stderr, failed.stderr
    assert boxkube(two_nodes, "get", "nodes").stdout == before
    assert sorted(api_nodes(two_nodes)) == sorted(before.split())
