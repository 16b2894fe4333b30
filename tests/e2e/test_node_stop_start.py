"""`boxkube node stop/start` on a whole local cluster, as a student would use them: a stopped node is lost
(Unknown), its pods are replaced on the other node, and started again it is Ready and its old pods are
cleaned up. The cluster evicts after 1 s (podEvictionTimeout) so the healing takes seconds, not minutes."""
from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import Cluster, made_cluster, until

FAST_EVICTION = """apiVersion: boxkube.dev/v1alpha1
kind: Cluster
timings: {podEvictionTimeout: 1s}
"""


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory) -> Iterator[Cluster]:
    with made_cluster(tmp_path_factory.mktemp("power-home"), "power", "--nodes", "2", config=FAST_EVICTION) as c:
        yield c


def boxkube(cluster: Cluster, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "boxkube.cli", *args, "--name", cluster.name],
                          capture_output=True, text=True, env=cluster.env, timeout=60)


def ready_status(cluster: Cluster, node: str) -> str:
    obj = json.loads(cluster.kubectl("get", "node", node, "-o", "json").stdout)
    return next(c["status"] for c in obj["status"]["conditions"] if c["type"] == "Ready")


def pods(cluster: Cluster) -> list[dict]:
    return json.loads(cluster.kubectl("get", "pods", "-l", "app=heal", "-o", "json").stdout)["items"]


def test_a_stopped_node_is_lost_its_pods_heal_elsewhere_and_it_comes_back(two_nodes):
    cluster = two_nodes
    cluster.kubectl("create", "deployment", "heal", "--image=nginx", "--replicas=2")
    cluster.kubectl("rollout", "status", "deployment/heal", "--timeout=60s")
    victim = pods(cluster)[0]["spec"]["nodeName"]

    stopped = boxkube(cluster, "node", "stop", victim)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stderr.startswith(f'Stopped node "{victim}"')
    until(lambda: ready_status(cluster, victim) == "Unknown", what=f"{victim} Unknown", timeout=40)

    def healed():
        live = [p for p in pods(cluster) if not p["metadata"].get("deletionTimestamp")]
        return len(live) == 2 and all(p["status"].get("phase") == "Running" and p["spec"]["nodeName"] != victim
                                      for p in live)
    until(healed, what=f"2 pods Running off {victim}", timeout=40)
    # The evicted pod waits for its node to confirm it is gone: nobody is there to.
    assert any(p["metadata"].get("deletionTimestamp") and p["spec"]["nodeName"] == victim for p in pods(cluster))

    started = boxkube(cluster, "node", "start", victim)
    assert started.returncode == 0, started.stderr
    until(lambda: ready_status(cluster, victim) == "True", what=f"{victim} Ready again", timeout=40)
    until(lambda: len(pods(cluster)) == 2, what="the evicted pod cleaned up by its rebooted node", timeout=40)
    again = boxkube(cluster, "node", "start", victim)
    assert (again.returncode, again.stderr) == (0, f'Node "{victim}" is already running; nothing to do.\n')
    events = cluster.kubectl("get", "events", "--field-selector", f"involvedObject.name={victim}").stdout
    assert "Rebooted" in events
