"""`kubectl drain` on a whole local cluster, with the real kubectl: it finds pods/eviction in discovery, so
it evicts each pod (POST pods/<name>/eviction) rather than deleting it, waits until the node's pods are
gone, and the Deployment makes them again on the other node."""
from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.conftest import Cluster, made_cluster, until


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory) -> Iterator[Cluster]:
    with made_cluster(tmp_path_factory.mktemp("drain-home"), "drain", "--nodes", "2") as c:
        yield c


def running(cluster: Cluster) -> list[dict]:
    items = json.loads(cluster.kubectl("get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]
    return [p for p in items if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]


def test_drain_evicts_the_nodes_pods_and_they_come_back_elsewhere(two_nodes):
    c = two_nodes
    worker, other = f"{c.name}-worker", f"{c.name}-worker2"
    c.kubectl("create", "deployment", "web", "--image=boxkube/hello:1", "--replicas=4")
    c.kubectl("rollout", "status", "deployment/web", "--timeout=120s", timeout=150)
    on_worker = {p["metadata"]["name"] for p in running(c) if p["spec"]["nodeName"] == worker}
    assert on_worker, "the scheduler spreads 4 replicas over both nodes"

    # Server-side dry run evicts nothing.
    dry = c.kubectl("drain", worker, "--ignore-daemonsets", "--dry-run=server")
    assert "(server dry run)" in dry.stdout
    c.kubectl("uncordon", worker)
    assert on_worker <= {p["metadata"]["name"] for p in running(c)}

    out = c.kubectl("drain", worker, "--ignore-daemonsets", "--timeout=120s", timeout=150)
    text = out.stdout + out.stderr
    for name in on_worker:
        assert f"evicting pod default/{name}" in text
        assert f"pod/{name} evicted" in text
    assert "deleted" not in text             # no fallback to plain deletion
    assert out.stdout.rstrip().endswith(f"node/{worker} drained")
    node = json.loads(c.kubectl("get", "node", worker, "-o", "json").stdout)
    assert node["spec"]["unschedulable"] is True

    until(lambda: len(running(c)) == 4 and {p["spec"]["nodeName"] for p in running(c)} == {other},
          timeout=60, what="4 replicas Running, all on the other node")
