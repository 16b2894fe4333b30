"""InterPodAffinity: required (anti-)affinity both ways, namespaces, preferred terms."""
from __future__ import annotations

import pytest

from boxkube.scheduler.framework import FitError, Snapshot
from boxkube.scheduler.plugins import InterPodAffinity
from boxkube.scheduler.podinfo import PodInfo

from scheduler_builders import HOSTNAME, ZONE, anti_affinity, node, place, pod


def zones():
    return [node("a1", zone="a"), node("a2", zone="a"), node("b1", zone="b"), node("nozone")]


def affinity(labels, key=ZONE, **extra):
    return {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": labels}, "topologyKey": key, **extra}]}}


def feasible(p, snap):
    plugin, info, state = InterPodAffinity(), PodInfo(p), {}
    if plugin.pre_filter(state, info, snap) is not None:
        return {n.name for n in snap.list()}
    return {n.name for n in snap.list() if plugin.filter(state, info, n) is None}


def test_required_anti_affinity_spreads_replicas_then_refuses():
    snap = Snapshot([node("n1"), node("n2")])
    for i in range(2):
        web = pod(f"web-{i}", labels={"app": "web"}, affinity=anti_affinity({"app": "web"}))
        snap.assume_pod(web, place(web, snap, seed=i))
    assert {p.name for n in snap.list() for p in n.pods.values()} == {"web-0", "web-1"}
    assert all(len(n.pods) == 1 for n in snap.list())
    with pytest.raises(FitError) as e:
        place(pod("web-2", labels={"app": "web"}, affinity=anti_affinity({"app": "web"})), snap)
    assert str(e.value) == "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules."


def test_existing_pods_anti_affinity_keeps_the_incoming_pod_away():
    snap = Snapshot([node("n1"), node("n2")],
                    [pod("db", labels={"app": "db"}, node_name="n1", affinity=anti_affinity({"app": "web"}))])
    assert feasible(pod("web", labels={"app": "web"}), snap) == {"n2"}
    assert feasible(pod("batch", labels={"app": "batch"}), snap) == {"n1", "n2"}
    # the same pod in another namespace is not what the term (own namespace by default) means
    assert feasible(pod("web", namespace="prod", labels={"app": "web"}), snap) == {"n1", "n2"}
    snap.remove_node("n2")
    with pytest.raises(FitError, match=r"1 node\(s\) didn't satisfy existing pods anti-affinity rules\.$"):
        place(pod("web", labels={"app": "web"}), snap)


def test_required_affinity_by_zone():
    snap = Snapshot(zones(), [pod("web", labels={"app": "web"}, node_name="a1")])
    cache = pod("cache", labels={"app": "cache"}, affinity=affinity({"app": "web"}))
    assert feasible(cache, snap) == {"a1", "a2"}
    snap2 = Snapshot([node("b1", zone="b"), node("nozone")], [pod("web", labels={"app": "web"}, node_name="b1")])
    snap2.add_node(node("c1", zone="c"))
    with pytest.raises(FitError) as e:
        place(pod("cache", labels={"app": "cache"}, affinity=affinity({"app": "nothing-yet"})), snap2)
    assert str(e.value) == "0/3 nodes are available: 3 node(s) didn't match pod affinity rules."


def test_first_pod_of_a_self_affine_group_may_go_anywhere_with_the_topology_key():
    group = pod("g0", labels={"app": "group"}, affinity=affinity({"app": "group"}))
    assert feasible(group, Snapshot(zones())) == {"a1", "a2", "b1"}
    # once one exists the rest follow it
    snap = Snapshot(zones(), [pod("g1", labels={"app": "group"}, node_name="b1")])
    assert feasible(group, snap) == {"b1"}


def test_namespaces_and_namespace_selector():
    snap = Snapshot(zones(), [pod("web", namespace="shop", labels={"app": "web"}, node_name="a1")],
                    namespaces=[{"metadata": {"name": "shop", "labels": {"team": "retail"}}},
                                {"metadata": {"name": "default", "labels": {}}}])
    own_ns = pod("c", labels={"app": "c"}, affinity=affinity({"app": "web"}))
    named = pod("c", labels={"app": "c"}, affinity=affinity({"app": "web"}, namespaces=["shop"]))
    by_label = pod("c", labels={"app": "c"},
                   affinity=affinity({"app": "web"}, namespaceSelector={"matchLabels": {"team": "retail"}}))
    everywhere = pod("c", labels={"app": "c"}, affinity=affinity({"app": "web"}, namespaceSelector={}))
    wrong_team = pod("c", labels={"app": "c"},
                     affinity=affinity({"app": "web"}, namespaceSelector={"matchLabels": {"team": "infra"}}))
    assert feasible(own_ns, snap) == set()
    assert feasible(named, snap) == feasible(by_label, snap) == feasible(everywhere, snap) == {"a1", "a2"}
    assert feasible(wrong_team, snap) == set()


def test_anti_affinity_by_zone_blocks_the_whole_zone():
    snap = Snapshot(zones(), [pod("db-0", labels={"app": "db"}, node_name="a2")])
    db = pod("db-1", labels={"app": "db"}, affinity=anti_affinity({"app": "db"}, ZONE))
    assert feasible(db, snap) == {"b1", "nozone"}  # a node without the key cannot conflict


def _scores(p, snap):
    plugin, info, state = InterPodAffinity(), PodInfo(p), {}
    if plugin.pre_score(state, info, snap, snap.list()) is not None:
        return None
    scores = {n.name: plugin.score(state, info, n) for n in snap.list()}
    plugin.normalize_score(state, info, scores)
    return scores


def test_preferred_affinity_and_anti_affinity_score():
    snap = Snapshot(zones(), [pod("cache", labels={"app": "cache"}, node_name="a1"),
                              pod("noisy", labels={"app": "noisy"}, node_name="b1")])
    prefers = {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 50, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": ZONE}}]},
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "noisy"}},
                                                "topologyKey": HOSTNAME}}]}}
    scores = _scores(pod("web", affinity=prefers), snap)
    # raw: a1 50, a2 50, b1 -100, nozone 0 -> min-max normalized
    assert scores == {"a1": 100, "a2": 100, "b1": 0, "nozone": 66}
    assert place(pod("web", affinity=prefers), snap) in {"a1", "a2"}
    assert _scores(pod("plain"), snap) is None  # nothing to score: skipped


def test_existing_pods_required_affinity_attracts_with_the_hard_weight():
    snap = Snapshot(zones(), [pod("sidecar", labels={"app": "s"}, node_name="b1",
                                  affinity=affinity({"app": "main"}))])
    assert _scores(pod("main", labels={"app": "main"}), snap) == {"a1": 0, "a2": 0, "b1": 100, "nozone": 0}
