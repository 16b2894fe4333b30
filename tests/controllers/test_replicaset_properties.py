"""Properties of the ReplicaSet controller's pure parts: victim ranking, status counting,
slow-start batches and expectations (a stateful model)."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from boxkube.api.pods import is_ready
from boxkube.api.times import now_rfc3339
from boxkube.controllers.expectations import Expectations
from boxkube.controllers.replicaset import (
    DELETION_COST_ANNOTATION,
    calculate_status,
    delete_first,
    pods_to_delete,
    rank_by_colocation,
    slow_start_batch,
)

NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)
SETTINGS = settings(max_examples=200, deadline=None)


@st.composite
def a_pod(draw, i: int):
    """A pod a ReplicaSet may hold: any node, phase, readiness, cost, restarts and age."""
    node = draw(st.sampled_from(["", "n1", "n2", "n3"]))
    phase = draw(st.sampled_from(["Pending", "Unknown", "Running"]))
    ready = draw(st.booleans())
    ready_for = draw(st.integers(0, 4000))
    status = {"phase": phase,
              "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                              "lastTransitionTime": now_rfc3339(NOW - timedelta(seconds=ready_for))}],
              "containerStatuses": [{"name": "c", "restartCount": draw(st.integers(0, 3))}]}
    meta = {"name": f"p{i}", "namespace": "ns", "uid": f"uid-{draw(st.integers(0, 10**6)):07d}-{i}",
            "creationTimestamp": now_rfc3339(NOW - timedelta(seconds=ready_for + draw(st.integers(0, 4000)))),
            "labels": draw(st.sampled_from([{"app": "web"}, {"app": "web", "tier": "front"}]))}
    cost = draw(st.sampled_from([None, "-5", "0", "10", "junk"]))
    if cost is not None:
        meta["annotations"] = {DELETION_COST_ANNOTATION: cost}
    return {"metadata": meta, "spec": {"nodeName": node} if node else {}, "status": status}


@st.composite
def pod_lists(draw, max_size=12):
    n = draw(st.integers(0, max_size))
    return [draw(a_pod(i)) for i in range(n)]


def leading_rules(pod: dict, rank: int) -> tuple:
    """The rules that decide before any time comparison, as a sort key (smaller goes first)."""
    try:
        cost = int((pod["metadata"].get("annotations") or {}).get(DELETION_COST_ANNOTATION, "0"))
    except ValueError:
        cost = 0
    phase = {"Pending": 0, "Unknown": 1, "Running": 2}[pod["status"]["phase"]]
    return (bool(pod["spec"].get("nodeName")), phase, is_ready(pod), cost, -rank)


@SETTINGS
@given(pod_lists(), st.integers(0, 14))
def test_pods_to_delete_takes_the_count_in_rank_order(pods, count):
    victims = pods_to_delete(pods, pods, count, NOW)
    assert len(victims) == min(count, len(pods))
    names = [p["metadata"]["name"] for p in victims]
    assert len(set(names)) == len(names) and set(names) <= {p["metadata"]["name"] for p in pods}
    ranks = dict(zip((p["metadata"]["name"] for p in pods), rank_by_colocation(pods, pods)))
    survivors = [p for p in pods if p["metadata"]["name"] not in names]
    for v in victims:
        for s in survivors:
            assert leading_rules(v, ranks[v["metadata"]["name"]]) <= leading_rules(s, ranks[s["metadata"]["name"]])


@SETTINGS
@given(a_pod(0), a_pod(1), st.integers(0, 3), st.integers(0, 3))
def test_delete_first_is_antisymmetric_and_follows_the_leading_rules(a, b, rank_a, rank_b):
    first, second = delete_first(a, rank_a, b, rank_b, NOW), delete_first(b, rank_b, a, rank_a, NOW)
    assert not (first and second)
    ka, kb = leading_rules(a, rank_a), leading_rules(b, rank_b)
    if ka != kb:
        assert first == (ka < kb) and second == (kb < ka)


def test_unscheduled_pending_unready_go_before_running_ready():
    def pod(name, node, phase, ready):
        return {"metadata": {"name": name, "uid": name, "creationTimestamp": now_rfc3339(NOW)},
                "spec": {"nodeName": node} if node else {},
                "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                                           "lastTransitionTime": now_rfc3339(NOW)}]}}
    pods = [pod("ready", "n1", "Running", True), pod("unready", "n1", "Running", False),
            pod("pending", "n1", "Pending", False), pod("unscheduled", "", "Pending", False)]
    order = [p["metadata"]["name"] for p in pods_to_delete(pods, pods, 3, NOW)]
    assert order == ["unscheduled", "pending", "unready"]


@SETTINGS
@given(pod_lists(), st.integers(0, 5000), st.integers(0, 20))
def test_status_counts(pods, min_ready, replicas):
    rs = {"metadata": {"generation": 1},
          "spec": {"replicas": replicas, "minReadySeconds": min_ready,
                   "template": {"metadata": {"labels": {"app": "web", "tier": "front"}}}}}
    status = calculate_status(rs, pods, [], None, NOW)
    ready = sum(is_ready(p) for p in pods)
    assert status["replicas"] == len(pods)
    assert status.get("readyReplicas", 0) == ready
    assert status.get("availableReplicas", 0) <= ready
    assert status.get("fullyLabeledReplicas", 0) == sum(p["metadata"]["labels"].get("tier") == "front" for p in pods)
    assert status["terminatingReplicas"] == 0
    if min_ready == 0:
        assert status.get("availableReplicas", 0) == ready
    failed = calculate_status(rs, pods, None, RuntimeError("quota"), NOW)
    [cond] = failed["conditions"]
    assert cond["type"] == "ReplicaFailure" and cond["message"] == "quota"
    assert cond["reason"] == ("FailedCreate" if len(pods) < replicas else "FailedDelete" if len(pods) > replicas else "")
    assert "terminatingReplicas" not in failed
    assert "conditions" not in calculate_status({**rs, "status": failed}, pods, None, None, NOW)


@SETTINGS
@given(st.integers(0, 40), st.one_of(st.none(), st.integers(0, 39)))
def test_slow_start_stops_after_the_first_failing_batch(count, fail_at):
    calls = []

    async def create():
        calls.append(None)
        if len(calls) - 1 == fail_at:
            raise RuntimeError("refused")

    successes, error = asyncio.run(slow_start_batch(count, create))
    # The batches are 1, 2, 4, ... capped by what remains; the batch holding the failure completes.
    batches, left, size = [], count, 1
    while left > 0:
        size = min(size, left)
        batches.append(size)
        left -= size
        size *= 2
    if fail_at is None or fail_at >= count:
        assert (successes, error, len(calls)) == (count, None, count)
    else:
        attempted = next(sum(batches[:i + 1]) for i in range(len(batches)) if sum(batches[:i + 1]) > fail_at)
        assert len(calls) == attempted and successes == attempted - 1 and str(error) == "refused"


class ExpectationsModel(RuleBasedStateMachine):
    """Expectations against a plain model: satisfied exactly when every expected creation
    and deletion was observed, or the wait expired."""

    def __init__(self):
        super().__init__()
        self.now = 0.0
        self.exp = Expectations(timeout=300, clock=lambda: self.now)
        self.adds, self.deletes, self.since = 0, set(), None

    @rule(n=st.integers(0, 5))
    def expect_creations(self, n):
        self.exp.expect_creations("ns/rs", n)
        self.adds, self.deletes, self.since = n, set(), self.now

    @rule(keys=st.sets(st.sampled_from(["ns/a", "ns/b", "ns/c"])))
    def expect_deletions(self, keys):
        self.exp.expect_deletions("ns/rs", keys)
        self.adds, self.deletes, self.since = 0, set(keys), self.now

    @rule(n=st.integers(0, 5), keys=st.sets(st.sampled_from(["ns/a", "ns/b", "ns/c"])))
    def expect_both(self, n, keys):        # a DaemonSet sync creates on some nodes and deletes on others
        self.exp.expect("ns/rs", n, keys)
        self.adds, self.deletes, self.since = n, set(keys), self.now

    @rule()
    def observe_creation(self):
        self.exp.creation_observed("ns/rs")
        if self.since is not None:
            self.adds -= 1

    @rule(key=st.sampled_from(["ns/a", "ns/b", "ns/c"]))
    def observe_deletion(self, key):
        self.exp.deletion_observed("ns/rs", key)      # reported twice (terminating, then gone): counted once
        self.deletes.discard(key)

    @rule(seconds=st.sampled_from([1.0, 100.0, 301.0]))
    def time_passes(self, seconds):
        self.now += seconds

    @precondition(lambda self: self.since is not None)
    @rule()
    def controller_deleted(self):
        self.exp.delete("ns/rs")
        self.adds, self.deletes, self.since = 0, set(), None

    @invariant()
    def satisfied_as_modelled(self):
        fulfilled = self.adds <= 0 and not self.deletes
        expired = self.since is not None and self.now - self.since > 300
        assert self.exp.satisfied("ns/rs") == (self.since is None or fulfilled or expired)
        assert self.exp.pending("ns/rs") == ((max(self.adds, 0), len(self.deletes)) if self.since is not None else (0, 0))


TestExpectations = ExpectationsModel.TestCase
TestExpectations.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)
