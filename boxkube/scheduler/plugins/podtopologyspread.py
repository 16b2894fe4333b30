"""PodTopologySpread: topologySpreadConstraints with whenUnsatisfiable DoNotSchedule filter
(maxSkew, minDomains, nodeAffinityPolicy/nodeTaintsPolicy); ScheduleAnyway ones score, and so
do the system default constraints that spread replicas of one workload (defaultspreading.py).

Skew on a domain = matching pods there + 1 if the pod matches itself - the
global minimum over eligible domains (0 when fewer than minDomains exist).
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from boxkube.apiserver.errors import APIError
from boxkube.apiserver.selectors import LabelSelector, Operator, Requirement, label_selector_from_object
from boxkube.scheduler.framework import (
    MAX_NODE_SCORE, SKIP, CycleState, NodeInfo, SchedulingError, Snapshot, Status, unresolvable, unschedulable,
)
from boxkube.scheduler.plugins.defaultspreading import HOSTNAME_LABEL, SYSTEM_DEFAULT_CONSTRAINTS, default_selector
from boxkube.scheduler.plugins.nodeaffinity import RequiredNodeAffinity
from boxkube.scheduler.plugins.taints import find_untolerated_taint
from boxkube.scheduler.podinfo import PodInfo

NAME = "PodTopologySpread"
REASON = "node(s) didn't match pod topology spread constraints"
REASON_MISSING_LABEL = REASON + " (missing required label)"

TopologyPair = tuple[str, str]


@dataclass(frozen=True)
class SpreadConstraint:
    """A TopologySpreadConstraint with its selector parsed and upstream's defaults applied."""

    max_skew: int
    topology_key: str
    selector: LabelSelector
    min_domains: int = 1
    node_affinity_policy: str = "Honor"
    node_taints_policy: str = "Ignore"

    def counts_node(self, node: NodeInfo, required: RequiredNodeAffinity, pod: PodInfo) -> bool:
        """matchNodeInclusionPolicies: whether the node's domain takes part in the skew."""
        if self.node_affinity_policy == "Honor" and not required.matches(node):
            return False
        return not (self.node_taints_policy == "Honor"
                    and find_untolerated_taint(node.taints, pod.tolerations) is not None)


def _selector(raw: Mapping[str, Any], pod_labels: Mapping[str, str]) -> LabelSelector:
    try:
        selector = label_selector_from_object(raw.get("labelSelector"))
    except APIError as e:
        raise SchedulingError(f"obtaining pod's topology spread constraints: {e}") from None
    if selector.nothing:
        return selector
    # matchLabelKeys: the pod's own values for those keys narrow the selector
    pinned = tuple(Requirement(k, Operator.EQUALS, (pod_labels[k],))
                   for k in raw.get("matchLabelKeys") or [] if k in pod_labels)
    return LabelSelector(pinned + selector.requirements) if pinned else selector


def build_constraints(pod: PodInfo, action: str, snapshot: Snapshot) -> tuple[SpreadConstraint, ...]:
    """The pod's constraints with whenUnsatisfiable == action, or the system defaults for its workload."""
    own = (pod.pod.get("spec") or {}).get("topologySpreadConstraints") or []
    if own:
        return tuple(SpreadConstraint(
            max_skew=int(c.get("maxSkew", 1)), topology_key=c.get("topologyKey", ""),
            selector=_selector(c, pod.labels), min_domains=int(c.get("minDomains") or 1),
            node_affinity_policy=c.get("nodeAffinityPolicy") or "Honor",
            node_taints_policy=c.get("nodeTaintsPolicy") or "Ignore",
        ) for c in own if c.get("whenUnsatisfiable") == action)
    defaults = [c for c in SYSTEM_DEFAULT_CONSTRAINTS if c["whenUnsatisfiable"] == action]
    if not defaults:
        return ()
    selector = default_selector(pod.pod, snapshot)
    if selector.empty():
        return ()
    return tuple(SpreadConstraint(c["maxSkew"], c["topologyKey"], selector) for c in defaults)


def count_key(selector: LabelSelector, namespace: str) -> str:
    """What a count of `selector`'s pods in `namespace` is cached under in NodeInfo.memo (one string:
    its hash is computed once, not at each of the thousands of lookups a cycle makes)."""
    return f"{NAME}\0{namespace}\0{selector.nothing}\0{selector}"


def count_matching(node: NodeInfo, selector: LabelSelector, namespace: str, key: str | None = None) -> int:
    """countPodsMatchSelector: pods of the namespace on the node matching; terminating pods don't count.

    With `key` (count_key's), the count is kept on the node until its pods change: scheduling a
    ReplicaSet's pods one after another changes one node per pod, and the other nodes' counts stay.
    """
    if selector.empty():
        return 0
    if key is not None:
        cached = node.memo.get(key)
        if cached is not None:
            return cached
    n = sum(1 for p in node.pods.values()
            if p.namespace == namespace and not p.terminating and selector.matches(p.labels))
    if key is not None:
        node.memo[key] = n
    return n


def _has_all_keys(node: NodeInfo, constraints: Sequence[SpreadConstraint]) -> bool:
    return all(c.topology_key in node.labels for c in constraints)


@dataclass
class _FilterState:
    constraints: tuple[SpreadConstraint, ...]
    pair_counts: dict[TopologyPair, int]
    domains: Counter[str]
    min_counts: dict[str, int]


@dataclass
class _ScoreState:
    constraints: tuple[SpreadConstraint, ...]
    ignored: set[str]
    value_counts: list[dict[str, int]]
    weights: list[float]
    keys: list[str]


class PodTopologySpread:
    name = NAME

    # ---- filter ---------------------------------------------------------

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status | None:
        constraints = build_constraints(pod, "DoNotSchedule", snapshot)
        if not constraints:
            return SKIP
        required = RequiredNodeAffinity(pod.pod)
        keys = [count_key(c.selector, pod.namespace) for c in constraints]
        counts: dict[TopologyPair, int] = {}
        for node in snapshot.list():
            if not _has_all_keys(node, constraints):
                continue
            for c, key in zip(constraints, keys):
                if c.counts_node(node, required, pod):
                    pair = (c.topology_key, node.labels[c.topology_key])
                    counts[pair] = counts.get(pair, 0) + count_matching(node, c.selector, pod.namespace, key)
        min_counts: dict[str, int] = {}
        for (key, _), n in counts.items():
            min_counts[key] = min(n, min_counts.get(key, n))
        state[NAME] = _FilterState(constraints, counts, Counter(key for key, _ in counts), min_counts)
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        s: _FilterState = state[NAME]
        for c in s.constraints:
            value = node.labels.get(c.topology_key)
            if value is None:
                return unresolvable(REASON_MISSING_LABEL)
            if c.topology_key not in s.min_counts:
                continue  # no eligible domain at all: upstream skips the constraint
            minimum = 0 if s.domains[c.topology_key] < c.min_domains else s.min_counts[c.topology_key]
            self_match = 1 if c.selector.matches(pod.labels) else 0
            if s.pair_counts.get((c.topology_key, value), 0) + self_match - minimum > c.max_skew:
                return unschedulable(REASON)
        return None

    # ---- score ----------------------------------------------------------

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot,
                  nodes: Sequence[NodeInfo]) -> Status | None:
        constraints = build_constraints(pod, "ScheduleAnyway", snapshot)
        if not constraints or not len(snapshot):
            return SKIP
        # only the pod's own constraints demand every topology key: a node without a
        # zone label still gets hostname spreading from the system defaults
        require_all = bool((pod.pod.get("spec") or {}).get("topologySpreadConstraints"))
        ignored: set[str] = set()
        # per-node counts (hostname) are taken in score(); other keys count per domain over all nodes
        domain_keys = [i for i, c in enumerate(constraints) if c.topology_key != HOSTNAME_LABEL]
        value_counts: list[dict[str, int]] = [{} for _ in constraints]
        # upstream files a node without the label under the domain "", which only a node labelled ""
        # ever reads: such nodes count towards the number of domains, but are counted only if one does
        unlabelled = [False] * len(constraints)
        if require_all or domain_keys:
            for node in nodes:
                if require_all and not _has_all_keys(node, constraints):
                    ignored.add(node.name)
                    continue
                for i in domain_keys:
                    value = node.labels.get(constraints[i].topology_key)
                    if value is None:
                        unlabelled[i] = True
                    else:
                        value_counts[i].setdefault(value, 0)
        weights = [_normalizing_weight(len(nodes) - len(ignored) if c.topology_key == HOSTNAME_LABEL
                                       else len(value_counts[i]) + (unlabelled[i] and "" not in value_counts[i]))
                   for i, c in enumerate(constraints)]
        keys = [count_key(c.selector, pod.namespace) for c in constraints]
        counted = [i for i in domain_keys if value_counts[i]]
        if counted:
            required = RequiredNodeAffinity(pod.pod)
            for node in snapshot.list():
                if require_all and not _has_all_keys(node, constraints):
                    continue
                for i in counted:
                    c = constraints[i]
                    value = node.labels.get(c.topology_key, "")
                    if value in value_counts[i] and c.counts_node(node, required, pod):
                        value_counts[i][value] += count_matching(node, c.selector, pod.namespace, keys[i])
        state[NAME + "/score"] = _ScoreState(constraints, ignored, value_counts, weights, keys)
        return None

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        s: _ScoreState = state[NAME + "/score"]
        # what score() looks up per constraint, looked up once
        plan = [(c.topology_key, c.topology_key == HOSTNAME_LABEL, c.selector, s.keys[i], s.value_counts[i],
                 s.weights[i], c.max_skew - 1) for i, c in enumerate(s.constraints)]
        namespace, ignored, scores = pod.namespace, s.ignored, []
        for node in nodes:
            if node.name in ignored:
                scores.append(0)
                continue
            labels, total = node.labels, 0.0
            for key, per_node, selector, count_key_, value_counts, weight, slack in plan:
                value = labels.get(key)
                if value is None:
                    continue
                n = count_matching(node, selector, namespace, count_key_) if per_node else value_counts[value]
                # maxSkew - 1 waters down differences the constraint would tolerate anyway
                total += n * weight + slack
            scores.append(math.floor(total + 0.5))   # Go's math.Round for non-negative values
        return scores

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        return self.score_nodes(state, pod, [node])[0]

    def normalize_score(self, state: CycleState, pod: PodInfo, scores: dict[str, int]) -> None:
        s: _ScoreState = state[NAME + "/score"]
        counted = [v for name, v in scores.items() if name not in s.ignored]
        low, high = min(counted, default=0), max(counted, default=0)
        for name, v in scores.items():
            if name in s.ignored:
                scores[name] = 0
            elif high == 0:
                scores[name] = MAX_NODE_SCORE
            else:
                # fewer matching pods is better
                scores[name] = MAX_NODE_SCORE * (high + low - v) // high


def _normalizing_weight(size: int) -> float:
    """topologyNormalizingWeight: domains of small topologies count more than of big ones."""
    return math.log(size + 2)
