"""The framework: NodeInfo accounting, the Snapshot as cache, FitError wording, host selection."""
from __future__ import annotations

import random

import pytest

from boxkube.scheduler.framework import (
    FitError, NodeInfo, NoNodesAvailable, Profile, SchedulingError, Snapshot, Status, Code,
    num_feasible_nodes_to_find, schedule, select_host, unschedulable,
)
from boxkube.scheduler.plugins import default_profile
from boxkube.scheduler.podinfo import PodInfo
from boxkube.scheduler.resources import pod_requests, pod_resource
from boxkube.scheduler.schedulername import is_responsible_for, needs_scheduling

from scheduler_builders import node, pod, place

CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


# ---- requests -------------------------------------------------------------

def test_requests_sum_containers_and_round_up_like_milli_value():
    p = pod("web", cpu="250m", memory="64Mi", containers=2)
    res = pod_resource(p)
    assert res.requests == {"cpu": 500, "memory": 2 * 64 * 1024 * 1024}
    assert pod_resource(pod("tiny", cpu="0.0001")).requests["cpu"] == 1  # MilliValue rounds up


def test_init_containers_count_as_a_maximum_and_sidecars_add_up():
    p = pod("app", cpu="500m", memory="100Mi")
    p["spec"]["initContainers"] = [
        {"name": "migrate", "image": "busybox", "resources": {"requests": {"cpu": "2", "memory": "50Mi"}}},
        {"name": "proxy", "image": "envoy", "restartPolicy": "Always",
         "resources": {"requests": {"cpu": "100m", "memory": "200Mi"}}},
        {"name": "warmup", "image": "busybox", "resources": {"requests": {"cpu": "1"}}},
    ]
    res = pod_resource(p).requests
    # cpu: max(containers 500m + sidecar 100m, migrate 2, warmup 1 + sidecar 100m) = 2
    assert res["cpu"] == 2000
    # memory: containers 100Mi + sidecar 200Mi beats every init phase
    assert res["memory"] == 300 * 1024 * 1024


def test_overhead_is_added_and_pod_level_requests_override():
    p = pod("kata", cpu="1", memory="1Gi", overhead={"cpu": "250m", "memory": "120Mi"})
    assert pod_resource(p).requests == {"cpu": 1250, "memory": (1024 + 120) * 1024 * 1024}
    p = pod("pl", cpu="100m", resources={"requests": {"cpu": "2"}})
    assert pod_requests(p)["cpu"] == 2


def test_non_zero_requests_default_for_best_effort_containers():
    res = pod_resource(pod("be", containers=2))
    assert res.requests == {}
    assert (res.non_zero_cpu, res.non_zero_memory) == (200, 2 * 200 * 1024 * 1024)


def test_extended_resources_are_counted_unknown_names_are_not():
    res = pod_resource(pod("gpu", requests={"nvidia.com/gpu": "1", "hugepages-2Mi": "4Mi", "bogus": "3"}))
    assert res.requests == {"nvidia.com/gpu": 1, "hugepages-2Mi": 4 * 1024 * 1024}


# ---- NodeInfo and Snapshot ----------------------------------------------

def test_node_info_sums_requests_and_forgets_removed_pods():
    info = NodeInfo(node("n1"))
    a, b = PodInfo(pod("a", cpu="1", node_name="n1")), PodInfo(pod("b", cpu="500m", memory="1Gi", node_name="n1"))
    info.add_pod(a)
    info.add_pod(b)
    assert info.requested == {"cpu": 1500, "memory": 1024 ** 3}
    assert info.non_zero_requested["memory"] == 200 * 1024 * 1024 + 1024 ** 3
    info.remove_pod(a.key)
    assert info.requested == {"cpu": 500, "memory": 1024 ** 3}
    assert info.allocatable["pods"] == 110 and info.allocatable["cpu"] == 4000


def test_snapshot_counts_bound_pods_and_assumed_ones():
    snap = Snapshot([node("n1"), node("n2")], [pod("bound", cpu="1", node_name="n1"), pod("pending", cpu="1")])
    assert snap.get("n1").requested["cpu"] == 1000 and not snap.get("n2").pods
    p = pod("new", cpu="2")
    assumed = snap.assume_pod(p, "n2")
    assert assumed["spec"]["nodeName"] == "n2" and snap.is_assumed(p)
    assert snap.get("n2").requested["cpu"] == 2000
    snap.forget_pod(p)
    assert snap.get("n2").requested["cpu"] == 0
    # the informer confirming the binding replaces the assumed pod, and forget no longer removes it
    snap.assume_pod(p, "n2")
    snap.update_pod(assumed)
    snap.forget_pod(p)
    assert snap.get("n2").requested["cpu"] == 2000


def test_snapshot_drops_finished_pods_and_keeps_pods_of_unknown_nodes_aside():
    done = pod("job", cpu="1", node_name="n1")
    snap = Snapshot([node("n1")], [done])
    done = dict(done, status={"phase": "Succeeded"})
    snap.update_pod(done)
    assert not snap.get("n1").pods
    snap.add_pod(pod("early", cpu="1", node_name="n9"))
    assert snap.get("n9") is None and len(snap) == 1
    snap.add_node(node("n9"))
    assert snap.get("n9").requested["cpu"] == 1000
    snap.remove_node("n9")
    assert [n.name for n in snap.list()] == ["n1"]


# ---- FitError wording ---------------------------------------------------

def test_fit_error_counts_reasons_like_upstream():
    nodes = [node(f"n{i}", cpu="1") for i in range(3)]
    with pytest.raises(FitError) as e:
        place(pod("big", cpu="2"), Snapshot(nodes))
    assert str(e.value) == "0/3 nodes are available: 3 Insufficient cpu."


def test_fit_error_with_several_reasons_sorted_as_sort_strings():
    nodes = [
        node("cp", labels={"disk": "ssd"}, taints=[CONTROL_PLANE_TAINT]),
        node("small1", memory="1Gi", labels={"disk": "ssd"}),
        node("small2", memory="1Gi", labels={"disk": "ssd"}),
        node("hdd1"), node("hdd2"),
    ]
    with pytest.raises(FitError) as e:
        place(pod("db", memory="4Gi", nodeSelector={"disk": "ssd"}), Snapshot(nodes))
    assert str(e.value) == (
        "0/5 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, "
        "2 Insufficient memory, 2 node(s) didn't match Pod's node affinity/selector.")
    assert e.value.unschedulable_plugins == {"TaintToleration", "NodeResourcesFit", "NodeAffinity"}


def test_fit_error_sorts_counts_as_strings_and_keeps_every_reason_of_a_node():
    statuses = {f"n{i}": unschedulable("Insufficient cpu") for i in range(10)}
    statuses.update({"x1": unschedulable("Insufficient cpu", "Too many pods"),
                     "x2": unschedulable("Too many pods")})
    msg = str(FitError({}, 12, statuses))
    assert msg == "0/12 nodes are available: 11 Insufficient cpu, 2 Too many pods."
    statuses = {f"n{i}": unschedulable("b") for i in range(10)} | {"m": unschedulable("a"), "o": unschedulable("a")}
    assert str(FitError({}, 12, statuses)) == "0/12 nodes are available: 10 b, 2 a."


def test_pre_filter_rejection_is_reported_alone():
    class Gate:
        name = "Gate"

        def pre_filter(self, state, pod_, snapshot):
            return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ("waiting for the gate",))

    with pytest.raises(FitError) as e:
        schedule(pod("p"), Snapshot([node("a"), node("b")]), Profile([Gate()]))
    assert str(e.value) == "0/2 nodes are available: waiting for the gate."


def test_no_nodes_at_all():
    with pytest.raises(NoNodesAvailable, match="^no nodes available to schedule pods$"):
        place(pod("p"), Snapshot())


def test_invalid_affinity_selector_is_a_scheduling_error_not_a_fit_error():
    bad = pod("p", affinity={"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchExpressions": [{"key": "app", "operator": "Bogus"}]}, "topologyKey": "zone"}]}})
    with pytest.raises(SchedulingError):
        place(bad, Snapshot([node("a")]))


def test_scores_out_of_range_are_errors():
    class Wild:
        name = "Wild"

        def score(self, state, pod_, node_):
            return 101

    with pytest.raises(SchedulingError, match="invalid score 101"):
        schedule(pod("p"), Snapshot([node("a"), node("b")]), Profile([Wild()]))


# ---- host selection -----------------------------------------------------

def test_select_host_takes_the_best_and_spreads_ties_evenly():
    assert select_host({"a": 10, "b": 30, "c": 20}, random.Random(0)) == "b"
    rng = random.Random(42)
    picks = [select_host({"a": 5, "b": 5, "c": 5, "d": 1}, rng) for _ in range(3000)]
    counts = {n: picks.count(n) for n in "abcd"}
    assert counts["d"] == 0 and all(900 < counts[n] < 1100 for n in "abc")


def test_weights_decide_between_plugins():
    class Prefers:
        def __init__(self, name, favourite):
            self.name, self.favourite = name, favourite

        def score(self, state, pod_, node_):
            return 100 if node_.name == self.favourite else 0

    snap = Snapshot([node("a"), node("b")])
    profile = Profile([Prefers("A", "a"), Prefers("B", "b")], weights={"A": 1, "B": 3})
    assert schedule(pod("p"), snap, profile, random.Random(0)).node_name == "b"


def test_num_feasible_nodes_to_find_follows_upstream():
    assert num_feasible_nodes_to_find(None, 50) == 50
    assert num_feasible_nodes_to_find(None, 1000) == 420  # 50 - 1000/125 = 42 %
    assert num_feasible_nodes_to_find(None, 5000) == 500  # 10 %
    assert num_feasible_nodes_to_find(None, 100000) == 5000  # the 5 % floor
    assert num_feasible_nodes_to_find(1, 1000) == 100  # never fewer than 100
    assert num_feasible_nodes_to_find(100, 1000) == 1000


def test_big_cluster_stops_filtering_early_and_rotates_the_start():
    snap = Snapshot([node(f"n{i:03}") for i in range(200)])
    result = schedule(pod("p"), snap, default_profile(), random.Random(0), start_index=150)
    assert (result.evaluated_nodes, result.feasible_nodes) == (100, 100)  # 50 - 200/125 = 49 % -> floor 100
    snap2 = Snapshot([node(f"n{i:03}") for i in range(200)])
    names = {n.name for n in snap2.list()[150:]} | {n.name for n in snap2.list()[:50]}
    assert result.node_name in names


# ---- schedulerName ------------------------------------------------------

def test_scheduler_name_and_which_pods_need_scheduling():
    p = pod("p")
    assert is_responsible_for(p) and needs_scheduling(p)
    assert not needs_scheduling(pod("q", node_name="n1"))
    other = pod("r", schedulerName="my-scheduler")
    assert not is_responsible_for(other) and is_responsible_for(other, {"my-scheduler"})
    del p["spec"]["schedulerName"]
    assert needs_scheduling(p)
    p["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    assert not needs_scheduling(p)
    assert not needs_scheduling(dict(pod("s"), status={"phase": "Failed"}))
