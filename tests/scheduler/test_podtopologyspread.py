"""PodTopologySpread: DoNotSchedule filtering, ScheduleAnyway scoring, and default spreading of replicas."""
from __future__ import annotations

import pytest

from boxkube.scheduler.framework import FitError, Snapshot
from boxkube.scheduler.plugins import PodTopologySpread
from boxkube.scheduler.plugins.defaultspreading import default_selector
from boxkube.scheduler.podinfo import PodInfo

from scheduler_builders import HOSTNAME, ZONE, node, owned_by, place, pod

WEB = {"app": "web"}


def spread(key=ZONE, max_skew=1, when="DoNotSchedule", **extra):
    return [{"maxSkew": max_skew, "topologyKey": key, "whenUnsatisfiable": when,
             "labelSelector": {"matchLabels": WEB}, **extra}]


def web(name="web-new", **kw):
    return pod(name, labels=WEB, **kw)


def cluster(*placed, extra_nodes=()):
    nodes = [node("a1", zone="a"), node("a2", zone="a"), node("b1", zone="b"), *extra_nodes]
    return Snapshot(nodes, [web(f"web-{i}", node_name=n) for i, n in enumerate(placed)])


def feasible(p, snap):
    plugin, info, state = PodTopologySpread(), PodInfo(p), {}
    if plugin.pre_filter(state, info, snap) is not None:
        return {n.name for n in snap.list()}
    return {n.name for n in snap.list() if plugin.filter(state, info, n) is None}


def test_max_skew_keeps_zones_balanced():
    assert feasible(web(topologySpreadConstraints=spread()), cluster("a1")) == {"b1"}
    assert feasible(web(topologySpreadConstraints=spread()), cluster("a1", "b1")) == {"a1", "a2", "b1"}
    assert feasible(web(topologySpreadConstraints=spread(max_skew=2)), cluster("a1")) == {"a1", "a2", "b1"}


def test_blocked_and_missing_label_messages():
    snap = cluster("a1", "a2", extra_nodes=[node("bare")])
    snap.update_node(node("b1", zone="b", unschedulable=True))
    with pytest.raises(FitError) as e:
        place(web(topologySpreadConstraints=spread()), snap)
    assert str(e.value) == (
        "0/4 nodes are available: 1 node(s) didn't match pod topology spread constraints (missing required label), "
        "1 node(s) were unschedulable, 2 node(s) didn't match pod topology spread constraints.")


def test_min_domains_treats_the_global_minimum_as_zero():
    snap = cluster("a1", "b1")
    assert feasible(web(topologySpreadConstraints=spread(minDomains=2)), snap) == {"a1", "a2", "b1"}
    assert feasible(web(topologySpreadConstraints=spread(minDomains=3)), snap) == set()


def test_node_affinity_policy_decides_which_domains_count():
    snap = Snapshot([node("a1", zone="a", labels={"tier": "web"}), node("b1", zone="b", labels={"tier": "web"}),
                     node("c1", zone="c", labels={"tier": "db"})],
                    [web("w0", node_name="a1"), web("w1", node_name="b1")])
    honor = web(nodeSelector={"tier": "web"}, topologySpreadConstraints=spread())
    # zone c is not eligible (Honor is the default), so the minimum is 1 and a1/b1 fit
    assert feasible(honor, snap) == {"a1", "b1", "c1"}
    ignore = web(nodeSelector={"tier": "web"}, topologySpreadConstraints=spread(nodeAffinityPolicy="Ignore"))
    assert feasible(ignore, snap) == {"c1"}


def test_node_taints_policy_honor_leaves_tainted_domains_out():
    taint = {"key": "maintenance", "effect": "NoSchedule"}
    snap = Snapshot([node("a1", zone="a"), node("b1", zone="b"), node("c1", zone="c", taints=[taint])],
                    [web("w0", node_name="a1"), web("w1", node_name="b1")])
    assert feasible(web(topologySpreadConstraints=spread()), snap) == {"c1"}  # Ignore by default
    assert feasible(web(topologySpreadConstraints=spread(nodeTaintsPolicy="Honor")), snap) == {"a1", "b1", "c1"}


def test_only_live_pods_of_the_namespace_count():
    terminating = web("old", node_name="a1")
    terminating["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    snap = Snapshot([node("a1", zone="a"), node("b1", zone="b")],
                    [terminating, pod("other-ns", namespace="prod", labels=WEB, node_name="a1")])
    assert feasible(web(topologySpreadConstraints=spread()), snap) == {"a1", "b1"}


def test_match_label_keys_narrow_to_the_same_revision():
    old = [pod(f"old-{i}", labels=WEB | {"pod-template-hash": "v1"}, node_name="a1") for i in range(3)]
    snap = Snapshot([node("a1", zone="a"), node("b1", zone="b")], old)
    new = pod("new", labels=WEB | {"pod-template-hash": "v2"},
              topologySpreadConstraints=spread(matchLabelKeys=["pod-template-hash"]))
    assert feasible(new, snap) == {"a1", "b1"}
    plain = pod("new", labels=WEB | {"pod-template-hash": "v2"}, topologySpreadConstraints=spread())
    assert feasible(plain, snap) == {"b1"}


def _scores(p, snap):
    plugin, info, state = PodTopologySpread(), PodInfo(p), {}
    if plugin.pre_score(state, info, snap, snap.list()) is not None:
        return None
    scores = {n.name: plugin.score(state, info, n) for n in snap.list()}
    plugin.normalize_score(state, info, scores)
    return scores


def test_schedule_anyway_prefers_the_emptier_domain():
    snap = cluster("a1", "a2", extra_nodes=[node("c1", zone="c"), node("bare")])
    scores = _scores(web(topologySpreadConstraints=spread(when="ScheduleAnyway")), snap)
    # raw: zone a 2 x ln(3+2) = 3.2 -> 3, zones b and c 0; the node without a zone is ignored
    assert scores == {"a1": 0, "a2": 0, "b1": 100, "c1": 100, "bare": 0}
    assert _scores(web(topologySpreadConstraints=spread()), snap) is None  # no soft constraints


def test_replicas_of_a_replicaset_spread_over_nodes_by_default():
    snap = Snapshot([node(f"n{i}", zone="a" if i < 2 else "b") for i in range(3)],
                    objects={"ReplicaSet": [{"metadata": {"name": "web-5d8f", "namespace": "default"},
                                             "spec": {"selector": {"matchLabels": WEB}}}]})
    placed = []
    for i in range(6):
        p = owned_by(web(f"web-5d8f-{i}"), "ReplicaSet", "web-5d8f")
        name = place(p, snap, seed=i)
        snap.assume_pod(p, name)
        placed.append(name)
    assert sorted(placed.count(n) for n in ("n0", "n1", "n2")) == [2, 2, 2]


def test_default_selector_merges_services_and_the_controller():
    snap = Snapshot(objects={
        "Service": [{"metadata": {"name": "web", "namespace": "default"}, "spec": {"selector": WEB}},
                    {"metadata": {"name": "other", "namespace": "default"}, "spec": {"selector": {"app": "db"}}},
                    {"metadata": {"name": "headless", "namespace": "default"}, "spec": {}}],
        "StatefulSet": [{"metadata": {"name": "web", "namespace": "default"},
                         "spec": {"selector": {"matchExpressions": [
                             {"key": "tier", "operator": "In", "values": ["front"]}]}}}],
        "ReplicationController": [{"metadata": {"name": "legacy", "namespace": "default"},
                                   "spec": {"selector": {"rc": "legacy"}}}],
    })
    plain = pod("p", labels=WEB | {"tier": "front"})
    assert str(default_selector(plain, snap)) == "app=web"
    sts = owned_by(pod("s", labels=WEB | {"tier": "front"}), "StatefulSet", "web")
    assert str(default_selector(sts, snap)) == "app=web,tier in (front)"
    rc = owned_by(pod("r", labels={"rc": "legacy"}), "ReplicationController", "legacy", api_version="v1")
    assert str(default_selector(rc, snap)) == "rc=legacy"
    assert default_selector(pod("lonely", labels={"x": "y"}), snap).empty()
    # a pod matching no Service and with no known controller gets no default constraints
    assert _scores(pod("lonely", labels={"x": "y"}), Snapshot([node("n")])) is None


def test_default_spreading_uses_hostname_even_without_zones():
    snap = Snapshot([node("n0"), node("n1")],
                    [web("web-0", node_name="n0")],
                    objects={"Service": [{"metadata": {"name": "web", "namespace": "default"},
                                          "spec": {"selector": WEB}}]})
    scores = _scores(web("web-1"), snap)
    assert scores["n1"] > scores["n0"]
    assert place(web("web-1"), snap) == "n1"


def test_hostname_counts_come_from_each_node():
    snap = Snapshot([node("n0"), node("n1"), node("n2")],
                    [web("w0", node_name="n0"), web("w1", node_name="n0"), web("w2", node_name="n1")])
    scores = _scores(web(topologySpreadConstraints=spread(HOSTNAME, when="ScheduleAnyway")), snap)
    assert scores["n2"] == 100 and scores["n2"] > scores["n1"] > scores["n0"]
