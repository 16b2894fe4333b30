"""InterPodAffinity: required pod affinity and anti-affinity by topology domain, both the incoming
pod's and the anti-affinity of pods already placed; preferred terms score.

As upstream, PreFilter counts matching pods per topology pair (key, value)
once, so each node is checked with a few dictionary lookups.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from boxkube.scheduler.framework import (
    MAX_NODE_SCORE, SKIP, CycleState, NodeInfo, Snapshot, Status, unresolvable, unschedulable,
)
from boxkube.scheduler.podinfo import AffinityTerm, PodInfo

NAME = "InterPodAffinity"
REASON_AFFINITY = "node(s) didn't match pod affinity rules"
REASON_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
REASON_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
# InterPodAffinityArgs.HardPodAffinityWeight: how much an existing pod's required affinity
# towards the incoming pod counts when scoring
HARD_POD_AFFINITY_WEIGHT = 1

TopologyPair = tuple[str, str]


@dataclass
class _FilterState:
    pod: PodInfo
    namespace_labels: Mapping[str, str]
    affinity_counts: Counter[TopologyPair]
    anti_affinity_counts: Counter[TopologyPair]
    existing_anti_affinity_counts: Counter[TopologyPair]


def _matches_all(terms: Sequence[AffinityTerm], pod: PodInfo, namespace_labels: Mapping[str, str]) -> bool:
    return bool(terms) and all(t.matches(pod, namespace_labels) for t in terms)


class InterPodAffinity:
    name = NAME

    def __init__(self, hard_pod_affinity_weight: int = HARD_POD_AFFINITY_WEIGHT):
        self.hard_pod_affinity_weight = hard_pod_affinity_weight

    # ---- filter ---------------------------------------------------------

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status | None:
        if not pod.required_affinity_terms and not pod.required_anti_affinity_terms \
                and not snapshot.pods_with_required_anti_affinity:
            return SKIP   # the common case, known without looking at every node
        nodes = snapshot.list()
        guarded = [n for n in nodes if n.pods_with_required_anti_affinity]
        if not pod.required_affinity_terms and not pod.required_anti_affinity_terms and not guarded:
            return SKIP
        ns_labels = snapshot.namespace_labels(pod.namespace)
        existing: Counter[TopologyPair] = Counter()
        for node in guarded:
            for other in node.pods_with_required_anti_affinity.values():
                for term in other.required_anti_affinity_terms:
                    if term.topology_key in node.labels and term.matches(pod, ns_labels):
                        existing[(term.topology_key, node.labels[term.topology_key])] += 1
        affinity: Counter[TopologyPair] = Counter()
        anti: Counter[TopologyPair] = Counter()
        if pod.required_affinity_terms or pod.required_anti_affinity_terms:
            for node in nodes:
                for other in node.pods.values():
                    other_ns = snapshot.namespace_labels(other.namespace)
                    if _matches_all(pod.required_affinity_terms, other, other_ns):
                        for term in pod.required_affinity_terms:
                            if term.topology_key in node.labels:
                                affinity[(term.topology_key, node.labels[term.topology_key])] += 1
                    for term in pod.required_anti_affinity_terms:
                        if term.topology_key in node.labels and term.matches(other, other_ns):
                            anti[(term.topology_key, node.labels[term.topology_key])] += 1
        state[NAME] = _FilterState(pod, ns_labels, affinity, anti, existing)
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        s: _FilterState = state[NAME]
        if not self._satisfies_affinity(s, node):
            return unresolvable(REASON_AFFINITY)
        for term in pod.required_anti_affinity_terms:
            value = node.labels.get(term.topology_key)
            if value is not None and s.anti_affinity_counts[(term.topology_key, value)] > 0:
                return unschedulable(REASON_ANTI_AFFINITY)
        for (key, value), n in s.existing_anti_affinity_counts.items():
            if n > 0 and node.labels.get(key) == value:
                return unschedulable(REASON_EXISTING_ANTI_AFFINITY)
        return None

    @staticmethod
    def _satisfies_affinity(s: _FilterState, node: NodeInfo) -> bool:
        pods_exist = True
        for term in s.pod.required_affinity_terms:
            value = node.labels.get(term.topology_key)
            if value is None:
                return False  # every topology key must be on the node
            if s.affinity_counts[(term.topology_key, value)] <= 0:
                pods_exist = False
        if pods_exist:
            return True
        # The first pod of a group with affinity to itself: allowed when no pod
        # anywhere matches yet and the pod matches its own terms.
        return not s.affinity_counts and _matches_all(s.pod.required_affinity_terms, s.pod, s.namespace_labels)

    # ---- score ----------------------------------------------------------

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot,
                  nodes: Sequence[NodeInfo]) -> Status | None:
        has_preferred = bool(pod.preferred_affinity_terms or pod.preferred_anti_affinity_terms)
        if not has_preferred and not snapshot.pods_with_affinity:
            return SKIP   # nothing anywhere to score by
        ns_labels = snapshot.namespace_labels(pod.namespace)
        scores: Counter[TopologyPair] = Counter()

        def add(term: AffinityTerm, weight: int, target: PodInfo, target_ns: Mapping[str, str], node: NodeInfo) -> None:
            value = node.labels.get(term.topology_key)
            if value is not None and term.matches(target, target_ns):
                scores[(term.topology_key, value)] += weight

        for node in snapshot.list():
            if not node.labels:
                continue
            # unless the incoming pod has preferences, only pods with affinity can contribute
            others = node.pods if has_preferred else node.pods_with_affinity
            for other in others.values():
                other_ns = snapshot.namespace_labels(other.namespace)
                for wt in pod.preferred_affinity_terms:
                    add(wt.term, wt.weight, other, other_ns, node)
                for wt in pod.preferred_anti_affinity_terms:
                    add(wt.term, -wt.weight, other, other_ns, node)
                if self.hard_pod_affinity_weight > 0:
                    for term in other.required_affinity_terms:
                        add(term, self.hard_pod_affinity_weight, pod, ns_labels, node)
                for wt in other.preferred_affinity_terms:
                    add(wt.term, wt.weight, pod, ns_labels, node)
                for wt in other.preferred_anti_affinity_terms:
                    add(wt.term, -wt.weight, pod, ns_labels, node)
        if not scores:
            return SKIP
        state[NAME + "/score"] = scores
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        scores: Counter[TopologyPair] = state[NAME + "/score"]
        keys = {key for key, _ in scores}
        return sum(scores[(key, node.labels[key])] for key in keys if key in node.labels)

    def normalize_score(self, state: CycleState, pod: PodInfo, scores: dict[str, int]) -> None:
        low, high = min(scores.values(), default=0), max(scores.values(), default=0)
        for name, s in scores.items():
            scores[name] = int(MAX_NODE_SCORE * (s - low) / (high - low)) if high > low else 0
