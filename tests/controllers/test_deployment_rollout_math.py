"""The Deployment controller's arithmetic, without a cluster: fenceposts, rolling steps, proportional
scaling (upstream's conformance numbers), the pod-template-hash, revisions, history and progress."""
from __future__ import annotations

import copy
import os
from datetime import datetime, timedelta, timezone
from itertools import count

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from boxkube.controllers import deployment_util as du
from boxkube.controllers.deployment_rollout import (
    history_to_delete,
    is_scaling_event,
    new_rs_new_replicas,
    reconcile_new_replica_set,
    reconcile_old_replica_sets,
    scale_plan,
    scaled,
)

_created = count()
# BOXKUBE_HYPOTHESIS_EXAMPLES raises the example count for long runs.
EXAMPLES = max(200, int(os.environ.get("BOXKUBE_HYPOTHESIS_EXAMPLES", "0")))


def deployment(replicas=10, surge=3, unavailable=2, image="web:1", generation=1, **spec):
    return {"metadata": {"name": "web", "namespace": "ns", "uid": "d-uid", "generation": generation},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "strategy": {"type": "RollingUpdate",
                                  "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}},
                     "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600, **spec},
            "status": {}}


def replica_set(d, size, available=None, revision=1, name=None):
    """A ReplicaSet of `d`'s template as the controller makes it, its status settled at `available`."""
    n = next(_created)
    available = size if available is None else available
    rs = {"metadata": {"name": name or f"rs{n}", "namespace": "ns", "uid": f"uid{n}", "generation": 1,
                       "creationTimestamp": f"2024-01-01T00:{n // 60 % 60:02d}:{n % 60:02d}Z",
                       "annotations": {du.REVISION: str(revision)}},
          "spec": {"replicas": 0, "template": copy.deepcopy(d["spec"]["template"])},
          "status": {"replicas": size, "availableReplicas": available, "readyReplicas": available,
                     "observedGeneration": 1}}
    return scaled(rs, size, d)


def settle(rs, available=None):
    """The ReplicaSet controller caught up: pods as wanted, `available` of them available."""
    size = du.replicas(rs)
    rs["status"].update(replicas=size, availableReplicas=size if available is None else min(available, size))
    return rs


def sizes(rss):
    return [du.replicas(rs) for rs in rss]


# -- fenceposts ----------------------------------------------------------------

@pytest.mark.parametrize("surge, unavailable, desired, expected", [
    ("0%", "0%", 0, (0, 1)),
    ("39%", "39%", 10, (4, 3)),
    (None, "39%", 10, (0, 3)),
    ("39%", None, 10, (4, 0)),
    (None, None, 10, (0, 1)),
    ("25%", "25%", 3, (1, 0)),
    (1, 0, 3, (1, 0)),
    ("1%", "0%", 2, (1, 0)),
])
def test_resolve_fenceposts_rounds_surge_up_and_unavailable_down(surge, unavailable, desired, expected):
    assert du.resolve_fenceposts(surge, unavailable, desired) == expected


@pytest.mark.parametrize("surge, unavailable", [("oops", "1%"), ("55%", "urg"), ("5", 1)])
def test_resolve_fenceposts_refuses_what_is_not_a_percentage(surge, unavailable):
    with pytest.raises(ValueError):
        du.resolve_fenceposts(surge, unavailable, 10)


def test_max_unavailable_is_capped_by_replicas_and_zero_for_recreate():
    assert du.max_unavailable(deployment(replicas=2, surge=0, unavailable=5)) == 2
    assert du.max_unavailable(deployment(replicas=0)) == 0
    recreate = deployment()
    recreate["spec"]["strategy"] = {"type": "Recreate"}
    assert (du.max_unavailable(recreate), du.max_surge(recreate)) == (0, 0)
    assert new_rs_new_replicas(recreate, [], replica_set(recreate, 0)) == 10


# -- rolling steps and proportional scaling ---------------------------------------------

def rolling_step(d, old, new):
    """One rolling-update reconcile on settled ReplicaSets: grow the new one, else shrink old ones."""
    all_rss = [*old, new]
    target = reconcile_new_replica_set(d, all_rss, new)
    if target != du.replicas(new):
        return old, scaled(new, target, d)
    latest = {du.uid(rs): rs for rs in old}
    for step in reconcile_old_replica_sets(d, all_rss, du.active(old), new):
        latest[du.uid(step.rs)] = scaled(latest[du.uid(step.rs)], step.replicas, d)
    return [latest[du.uid(rs)] for rs in old], new


def apply_plan(d, plan, rss):
    latest = {du.uid(rs): rs for rs in rss}
    for step in plan:
        latest[du.uid(step.rs)] = scaled(latest[du.uid(step.rs)], step.replicas, d)
    return [latest[du.uid(rs)] for rs in rss]


def test_proportional_scaling_with_upstream_conformance_numbers():
    """10 replicas, maxSurge 3, maxUnavailable 2; a new template whose pods never become available
    stops at old 8 / new 5; scaling to 30 then gives old 20 / new 13 (test/e2e/apps/deployment.go)."""
    d = deployment()
    old = [replica_set(d, 10)]
    d2 = deployment(image="web:404", generation=2)
    new = replica_set(d2, 0, revision=2)
    new = scaled(new, new_rs_new_replicas(d2, [*old, new], new), d2)
    assert du.replicas(new) == 3
    for _ in range(5):
        old, new = rolling_step(d2, [settle(rs) for rs in old], settle(new, available=0))
    assert (sizes(old), du.replicas(new)) == ([8], 5)

    d30 = deployment(replicas=30, image="web:404", generation=3)
    assert is_scaling_event(d30, new, old)
    old_after, new_after = apply_plan(d30, scale_plan(d30, new, old), [*old, new])
    assert (du.replicas(old_after), du.replicas(new_after)) == (20, 13)
    assert du.annotations(new_after)[du.DESIRED_REPLICAS] == "30"
    assert du.annotations(old_after)[du.MAX_REPLICAS] == "33"
    assert not is_scaling_event(d30, new_after, [old_after])


def test_scaling_down_during_a_rollout_takes_from_the_larger_and_older_first():
    d = deployment(replicas=10, surge=3, unavailable=2)
    old, new = replica_set(d, 8), replica_set(deployment(image="b"), 5, available=0)
    d5 = deployment(replicas=5, surge=3, unavailable=2)
    old_after, new_after = apply_plan(d5, scale_plan(d5, new, [old]), [old, new])
    # 8 + 5 = 13 must become 5 + 3 = 8: 8*8/13 = 4.92 -> 5 (-3), 5*8/13 = 3.08 -> 3 (-2)
    assert (du.replicas(old_after), du.replicas(new_after)) == (5, 3)


def test_one_active_replica_set_takes_the_whole_scale_and_a_saturated_new_one_ends_the_old():
    d = deployment(replicas=4)
    only = replica_set(d, 3)
    assert [(s.rs is only, s.replicas) for s in scale_plan(d, only, [])] == [(True, 4)]
    new = settle(scaled(replica_set(d, 0), 4, d))
    old = replica_set(deployment(image="old"), 2)
    assert [(du.uid(s.rs), s.replicas) for s in scale_plan(d, new, [old])] == [(du.uid(old), 0)]


def test_old_replica_sets_lose_unavailable_pods_first():
    d = deployment(replicas=4, surge=1, unavailable=1)
    broken_old = replica_set(deployment(image="old"), 3, available=1)
    new = replica_set(d, 2, available=2)
    plan = reconcile_old_replica_sets(d, [broken_old, new], [broken_old], new)
    # 5 pods, 3 must stay available, new has none unavailable: 2 may go; the 2 unavailable go first,
    # then available 3 - min 3 = 0 more.
    assert [s.replicas for s in plan] == [1]


def test_an_old_replica_set_whose_status_lags_its_scale_down_is_never_scaled_back_up():
    """Old ReplicaSet just scaled down from 3 to 1, its status still counting 3 available pods: no
    unhealthy pods to clean up there (upstream refuses such a "scale down" to a larger size), so the plan
    only takes it on down. (Found by the conformance suite's property test: the old ReplicaSet went back
    up to 3 beside a full new one, 6 pods wanted for replicas 3 + maxSurge 2.)"""
    d = deployment(replicas=3, surge=2, unavailable=0, image="v2")
    old = replica_set(deployment(replicas=3, surge=2, unavailable=0, image="v1"), 1, revision=1)
    old["status"].update(replicas=3, availableReplicas=3, readyReplicas=3)
    new = replica_set(d, 3, revision=2)
    plan = reconcile_old_replica_sets(d, [old, new], [old], new)
    assert [(du.uid(s.rs), s.replicas) for s in plan] == [(du.uid(old), 0)]


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(replicas=st.integers(1, 12),
       surge=st.one_of(st.integers(0, 4), st.sampled_from(["0%", "25%", "50%", "100%"])),
       unavailable=st.one_of(st.integers(0, 4), st.sampled_from(["0%", "25%", "50%"])),
       steps=st.lists(st.sampled_from(["deployment", "replicasets", "ready", "ready", "new-good", "new-bad"]),
                      min_size=5, max_size=60))
# A scaled-down ReplicaSet whose status still counts an available pod: not availability to spend.
@example(replicas=1, surge=1, unavailable=0, steps=["new-good", "new-good", "replicasets", "deployment", "deployment",
                                                    "ready", "new-good", "deployment", "replicasets"])
def test_rolling_update_keeps_availability_and_surge_bounds(replicas, surge, unavailable, steps):
    """Random interleavings of the Deployment controller, the ReplicaSet controller (which removes
    unready pods first, and pods it removes stop counting at once, as terminating pods do), pods
    becoming ready, and new templates (good or never ready): available pods never drop below
    replicas - maxUnavailable, pods and the ReplicaSets' sizes never exceed replicas + maxSurge."""
    d = deployment(replicas=replicas, surge=surge, unavailable=unavailable)
    low, high = replicas - du.max_unavailable(d), replicas + du.max_surge(d)
    first = replica_set(d, replicas)
    pods = {du.uid(first): [True] * replicas}           # readiness of each pod
    good = {du.uid(first): True}
    rss = [first]

    def refresh():
        for rs in rss:
            ready = sum(pods[du.uid(rs)])
            rs["status"].update(replicas=len(pods[du.uid(rs)]), availableReplicas=ready, readyReplicas=ready)

    def check():
        total = sum(len(p) for p in pods.values())
        available = sum(sum(p) for p in pods.values())
        assert total <= high and available >= low, (total, available)
        # upstream's own bound, on what the ReplicaSets are told to run
        assert sum(du.replicas(rs) for rs in rss) <= high, [du.replicas(rs) for rs in rss]

    for version, step in enumerate(steps, start=2):
        if step.startswith("new-"):
            d = deployment(replicas=replicas, surge=surge, unavailable=unavailable, image=f"v{version}")
            rs = replica_set(d, 0, revision=version)
            rs = scaled(rs, new_rs_new_replicas(d, [*rss, rs], rs), d)
            pods[du.uid(rs)], good[du.uid(rs)] = [], step == "new-good"
            rss.append(rs)
        elif step == "deployment":
            new, old = rss[-1], rss[:-1]
            old, new = rolling_step(d, old, new)
            rss = [*old, new]
        elif step == "replicasets":
            for rs in rss:       # deletions before creations: the removed pods are gone first
                mine = pods[du.uid(rs)]
                excess = max(len(mine) - du.replicas(rs), 0)
                mine.sort()      # unready (False) first
                del mine[:excess]
            for rs in rss:
                mine = pods[du.uid(rs)]
                mine.extend([False] * max(du.replicas(rs) - len(mine), 0))
        else:
            for rs in rss:
                mine = pods[du.uid(rs)]
                if good[du.uid(rs)] and False in mine:
                    mine[mine.index(False)] = True
                    break
        refresh()
        check()


# -- the pod-template-hash -------------------------------------------------------

def test_hash_is_stable_safe_and_moved_by_collision_count():
    template = deployment()["spec"]["template"]
    h = du.compute_hash(template, None)
    assert h == du.compute_hash(copy.deepcopy(template), None)
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789") and 1 <= len(h) <= 10
    assert du.compute_hash(template, 0) != h != du.compute_hash(template, 1) != du.compute_hash(template, 0)
    other = deployment(image="web:2")["spec"]["template"]
    assert du.compute_hash(other, None) != h
    # key order, nulls and empty maps are not differences
    shuffled = {"spec": template["spec"], "metadata": {**template["metadata"], "annotations": {}}}
    assert du.compute_hash(shuffled, None) == h


def test_safe_encode_string_maps_every_byte_to_a_consonant_or_digit():
    assert du.safe_encode_string("0123456789") == "456789bcdf"


def test_equal_ignore_hash():
    t = deployment()["spec"]["template"]
    hashed = copy.deepcopy(t)
    hashed["metadata"]["labels"][du.UNIQUE_LABEL] = "abc"
    assert du.equal_ignore_hash(t, hashed)
    assert not du.equal_ignore_hash(t, deployment(image="x")["spec"]["template"])


# -- revisions and annotations -----------------------------------------------------

def test_rollback_to_an_old_replica_set_moves_its_revision_into_history():
    d = deployment()
    d["metadata"]["annotations"] = {"team": "a", du.LAST_APPLIED: "{}", du.REVISION: "3"}
    rs = replica_set(d, 0, revision=1)
    rs["metadata"]["annotations"][du.REVISION_HISTORY] = ""
    assert du.set_new_replica_set_annotations(d, rs, 4, exists=True)
    anns = du.annotations(rs)
    assert anns[du.REVISION] == "4" and anns[du.REVISION_HISTORY] == "1" and anns["team"] == "a"
    assert du.LAST_APPLIED not in anns
    assert du.set_new_replica_set_annotations(d, rs, 6, exists=True)
    assert du.annotations(rs)[du.REVISION_HISTORY] == "1,4"
    assert not du.set_new_replica_set_annotations(d, rs, 5, exists=True)   # never lowered


def test_new_replica_set_gets_replicas_annotations():
    d = deployment(replicas=4, surge="25%")
    rs = {"metadata": {}, "spec": {"replicas": 0}}
    du.set_new_replica_set_annotations(d, rs, 1, exists=False)
    assert du.annotations(rs) == {du.REVISION: "1", du.DESIRED_REPLICAS: "4", du.MAX_REPLICAS: "5"}


def test_history_cleanup_deletes_oldest_idle_revisions_beyond_the_limit():
    d = deployment(revisionHistoryLimit=2)
    olds = [replica_set(d, 0, revision=r) for r in (5, 1, 3, 2)]
    olds[3]["status"]["replicas"] = 1          # revision 2 still has a pod: kept
    assert [du.revision(rs) for rs in history_to_delete(d, olds)] == [1]
    d["spec"]["revisionHistoryLimit"] = 0
    assert [du.revision(rs) for rs in history_to_delete(d, olds)] == [1, 3, 5]
    del d["spec"]["revisionHistoryLimit"]
    assert history_to_delete(d, olds) == []


# -- status and progress -----------------------------------------------------------

NOW = datetime(2024, 1, 1, 12, 0, 0, tzinfo=timezone.utc)


def test_status_counts_and_available_condition():
    d = deployment(replicas=3, surge=1, unavailable=1)
    new = replica_set(d, 2, available=1)
    new["status"]["terminatingReplicas"] = 1
    old = replica_set(deployment(image="old"), 2, available=2)
    old["status"]["terminatingReplicas"] = 0
    st_ = du.calculate_status([old, new], new, d, "2024-01-01T12:00:00Z")
    assert {k: v for k, v in st_.items() if k != "conditions"} == {
        "observedGeneration": 1, "replicas": 4, "updatedReplicas": 2, "readyReplicas": 3,
        "availableReplicas": 3, "unavailableReplicas": 1, "terminatingReplicas": 1}
    assert du.get_condition(st_, "Available")["reason"] == "MinimumReplicasAvailable"
    del old["status"]["terminatingReplicas"]             # synced, but not reporting: unknown
    assert "terminatingReplicas" not in du.calculate_status([old, new], new, d)


def test_progressing_condition_progress_then_deadline():
    d = deployment(replicas=2, progressDeadlineSeconds=30)
    new = replica_set(d, 2, available=0, name="web-abc")
    d["status"] = {"replicas": 2, "conditions": [du.new_condition(
        "Progressing", "True", "NewReplicaSetCreated", 'Created new replica set "web-abc"', "2024-01-01T11:59:50Z")]}
    st_ = du.rollout_status([new], new, d, NOW)
    progressing = du.get_condition(st_, "Progressing")
    assert (progressing["reason"], progressing["message"]) == ("ReplicaSetUpdated", 'ReplicaSet "web-abc" is progressing.')
    assert progressing["lastTransitionTime"] == "2024-01-01T11:59:50Z"
    d["status"] = st_
    assert du.rollout_status([new], new, d, NOW + timedelta(seconds=10)) == st_     # no progress, not yet late
    assert 19 < du.progress_check_delay(d, st_, NOW + timedelta(seconds=10)) <= 20
    late = du.rollout_status([new], new, d, NOW + timedelta(seconds=31))
    timed_out = du.get_condition(late, "Progressing")
    assert (timed_out["status"], timed_out["reason"], timed_out["message"]) == (
        "False", "ProgressDeadlineExceeded", 'ReplicaSet "web-abc" has timed out progressing.')
    settle(new)
    d["status"] = late
    done = du.get_condition(du.rollout_status([new], new, d, NOW), "Progressing")
    assert (done["status"], done["reason"], done["message"]) == (
        "True", "NewReplicaSetAvailable", 'ReplicaSet "web-abc" has successfully progressed.')


def test_replica_failure_is_carried_over_from_the_new_replica_set():
    d = deployment(replicas=1)
    new = replica_set(d, 1, available=0)
    new["status"]["conditions"] = [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                                    "message": "quota", "lastTransitionTime": "2024-01-01T00:00:00Z"}]
    failure = du.get_condition(du.rollout_status([new], new, d, NOW), "ReplicaFailure")
    assert failure["reason"] == "FailedCreate" and failure["lastUpdateTime"] == "2024-01-01T00:00:00Z"
