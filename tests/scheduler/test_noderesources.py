"""NodeResourcesFit (filter and LeastAllocated score) and BalancedAllocation."""
from __future__ import annotations

import pytest

from boxkube.scheduler.framework import FitError, Snapshot
from boxkube.scheduler.plugins import BalancedAllocation, NodeResourcesFit
from boxkube.scheduler.plugins.balancedallocation import balanced_score
from boxkube.scheduler.podinfo import PodInfo

from scheduler_builders import node, place, pod


def _filter(p, snap, name):
    return NodeResourcesFit().filter({}, PodInfo(p), snap.get(name))


def test_requests_fit_counting_pods_already_on_the_node():
    snap = Snapshot([node("n", cpu="2", memory="4Gi")], [pod("a", cpu="1500m", memory="1Gi", node_name="n")])
    assert _filter(pod("p", cpu="500m"), snap, "n") is None
    assert _filter(pod("p", cpu="501m", memory="4Gi"), snap, "n").reasons == ("Insufficient cpu", "Insufficient memory")


def test_too_many_pods_and_best_effort_pods():
    snap = Snapshot([node("n", pods="2")], [pod("a", node_name="n"), pod("b", node_name="n")])
    assert _filter(pod("p"), snap, "n").reasons == ("Too many pods",)
    assert _filter(pod("p", cpu="100m"), Snapshot([node("m")]), "m") is None


def test_ephemeral_storage_and_extended_resources():
    snap = Snapshot([node("gpu", extra={"nvidia.com/gpu": "2"}), node("plain")],
                    [pod("trainer", requests={"nvidia.com/gpu": "1"}, node_name="gpu")])
    want_two = pod("p", requests={"nvidia.com/gpu": "2", "ephemeral-storage": "30Gi"})
    assert _filter(want_two, snap, "gpu").reasons == ("Insufficient ephemeral-storage", "Insufficient nvidia.com/gpu")
    with pytest.raises(FitError) as e:
        place(pod("p", requests={"nvidia.com/gpu": "2"}), snap)
    assert str(e.value) == "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."


def test_assumed_pods_count():
    snap = Snapshot([node("n", cpu="1")])
    first = pod("first", cpu="600m")
    snap.assume_pod(first, place(first, snap))
    with pytest.raises(FitError, match="1 Insufficient cpu"):
        place(pod("second", cpu="600m"), snap)


def _scores(plugin, p, snap):
    info, state = PodInfo(p), {}
    plugin.pre_score(state, info, snap, snap.list())
    return {n.name: plugin.score(state, info, n) for n in snap.list()}


def test_least_allocated_score_matches_upstream_arithmetic():
    snap = Snapshot([node("a", cpu="4", memory="10000"), node("b", cpu="6", memory="10000")],
                    [pod("x", cpu="1", memory="2000", node_name="a"), pod("y", cpu="2", memory="3000", node_name="b")])
    scores = _scores(NodeResourcesFit(), pod("p", cpu="3", memory="5000"), snap)
    # a: cpu (4000-4000)*100/4000 = 0, mem (10000-7000)*100/10000 = 30 -> 15
    # b: cpu (6000-5000)*100/6000 = 16, mem (10000-8000)*100/10000 = 20 -> 18
    assert scores == {"a": 15, "b": 18}


def test_least_allocated_counts_best_effort_pods_with_default_requests():
    snap = Snapshot([node("a", cpu="1", memory="1Gi"), node("b", cpu="1", memory="1Gi")],
                    [pod("be", node_name="a")])
    scores = _scores(NodeResourcesFit(), pod("p"), snap)
    assert scores["a"] < scores["b"]
    assert all(place(pod(f"p{i}"), snap, seed=i) == "b" for i in range(5))


def test_balanced_allocation():
    assert balanced_score([0.5, 0.5]) == 100
    assert balanced_score([0.25, 0.75]) == 75
    snap = Snapshot([node("a", cpu="4", memory="4Gi"), node("b", cpu="4", memory="4Gi")],
                    [pod("x", cpu="2", node_name="a"), pod("y", cpu="2", memory="2Gi", node_name="b")])
    scores = _scores(BalancedAllocation(), pod("p", cpu="1", memory="1Gi"), snap)
    # a: cpu 3/4, mem 1/4 -> std 0.25 -> 75; b: 3/4 and 3/4 -> 100
    assert scores == {"a": 75, "b": 100}
    assert BalancedAllocation().pre_score({}, PodInfo(pod("be")), snap, snap.list()).code.name == "SKIP"
