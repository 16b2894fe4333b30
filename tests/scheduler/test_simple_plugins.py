"""NodeUnschedulable, NodeName and TaintToleration."""
from __future__ import annotations

import pytest

from boxkube.scheduler.framework import FitError, NodeInfo, Snapshot
from boxkube.scheduler.plugins import NodeName, NodeUnschedulable, TaintToleration
from boxkube.scheduler.plugins.taints import find_untolerated_taint, tolerates
from boxkube.scheduler.podinfo import PodInfo

from scheduler_builders import node, place, pod

NO_SCHEDULE = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
NO_EXECUTE = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2025-01-01T00:00:00Z"}
PREFER = {"key": "spot", "value": "true", "effect": "PreferNoSchedule"}


def _filter(plugin, p, n):
    return plugin.filter({}, PodInfo(p), NodeInfo(n))


# ---- NodeUnschedulable --------------------------------------------------

def test_cordoned_node_rejects_pods_that_do_not_tolerate_it():
    status = _filter(NodeUnschedulable(), pod("p"), node("n", unschedulable=True))
    assert status.reasons == ("node(s) were unschedulable",) and status.code.name == "UNSCHEDULABLE_AND_UNRESOLVABLE"
    daemon = pod("ds", tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
                                     "effect": "NoSchedule"}])
    assert _filter(NodeUnschedulable(), daemon, node("n", unschedulable=True)) is None
    assert _filter(NodeUnschedulable(), pod("p"), node("n")) is None


def test_cordoned_cluster_message():
    with pytest.raises(FitError, match=r"^0/2 nodes are available: 2 node\(s\) were unschedulable\.$"):
        place(pod("p"), Snapshot([node("a", unschedulable=True), node("b", unschedulable=True)]))


# ---- NodeName -----------------------------------------------------------

def test_node_name_pins_the_pod():
    assert _filter(NodeName(), pod("p", node_name="a"), node("a")) is None
    assert _filter(NodeName(), pod("p", node_name="a"), node("b")).reasons == (
        "node(s) didn't match the requested node name",)
    assert _filter(NodeName(), pod("p"), node("b")) is None


# ---- TaintToleration ----------------------------------------------------

@pytest.mark.parametrize("toleration, taint, expected", [
    ({"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}, NO_SCHEDULE, True),
    ({"key": "dedicated", "value": "gpu"}, NO_SCHEDULE, True),  # empty operator means Equal, empty effect all
    ({"key": "dedicated", "value": "cpu"}, NO_SCHEDULE, False),
    ({"key": "dedicated", "operator": "Exists"}, NO_SCHEDULE, True),
    ({"operator": "Exists"}, NO_SCHEDULE, True),  # empty key with Exists tolerates everything
    ({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}, NO_SCHEDULE, False),
    ({"key": "other", "operator": "Exists"}, NO_SCHEDULE, False),
    ({"key": "dedicated", "operator": "Gt", "value": "gpu"}, NO_SCHEDULE, False),
])
def test_toleration_matching(toleration, taint, expected):
    assert tolerates(toleration, taint) is expected


def test_untolerated_no_schedule_and_no_execute_taints_filter():
    plugin = TaintToleration()
    status = _filter(plugin, pod("p"), node("gpu1", taints=[PREFER, NO_SCHEDULE]))
    assert status.reasons == ("node(s) had untolerated taint {dedicated: gpu}",)
    # the default not-ready/unreachable tolerations cover the NoExecute taint
    assert _filter(plugin, pod("p"), node("lost", taints=[NO_EXECUTE])) is None
    bare = pod("bare")
    bare["spec"]["tolerations"] = []
    assert _filter(plugin, bare, node("lost", taints=[NO_EXECUTE])).reasons == (
        "node(s) had untolerated taint {node.kubernetes.io/unreachable: }",)
    assert _filter(plugin, pod("p"), node("spot", taints=[PREFER])) is None


def test_first_untolerated_taint_is_the_one_reported():
    taints = [NO_SCHEDULE, {"key": "b", "value": "2", "effect": "NoSchedule"}]
    assert find_untolerated_taint(taints, [{"key": "dedicated", "operator": "Exists"}])["key"] == "b"


def test_fewer_intolerable_prefer_no_schedule_taints_score_higher():
    nodes = [node("clean"), node("spot", taints=[PREFER]),
             node("worse", taints=[PREFER, {"key": "old", "effect": "PreferNoSchedule"}])]
    snap = Snapshot(nodes)
    plugin, info, state = TaintToleration(), PodInfo(pod("p")), {}
    plugin.pre_score(state, info, snap, snap.list())
    scores = {n.name: plugin.score(state, info, n) for n in snap.list()}
    assert scores == {"clean": 0, "spot": 1, "worse": 2}
    plugin.normalize_score(state, info, scores)
    assert scores == {"clean": 100, "spot": 50, "worse": 0}
    tolerant = PodInfo(pod("t", tolerations=[{"key": "spot", "operator": "Exists", "effect": "PreferNoSchedule"}]))
    plugin.pre_score(state, tolerant, snap, snap.list())
    assert plugin.score(state, tolerant, snap.get("spot")) == 0


def test_scheduling_avoids_prefer_no_schedule_nodes():
    snap = Snapshot([node("spot", taints=[PREFER]), node("clean")])
    assert all(place(pod(f"p{i}"), snap, seed=i) == "clean" for i in range(5))
