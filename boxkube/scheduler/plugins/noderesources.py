"""NodeResourcesFit: requests must fit in allocatable minus what the node's pods already request;
scored LeastAllocated (the emptier node wins), as upstream's default scoring strategy."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from boxkube.scheduler.framework import (
    MAX_NODE_SCORE, CycleState, NodeInfo, RememberedScores, Snapshot, Status, unschedulable,
)
from boxkube.scheduler.podinfo import PodInfo
from boxkube.scheduler.resources import CPU, EPHEMERAL_STORAGE, MEMORY, PODS

NAME = "NodeResourcesFit"
TOO_MANY_PODS = "Too many pods"
# LeastAllocated's default resources and weights (NodeResourcesFitArgs.ScoringStrategy)
DEFAULT_SCORING_RESOURCES: Mapping[str, int] = {CPU: 1, MEMORY: 1}
_NATIVE = (CPU, MEMORY, EPHEMERAL_STORAGE)
_NON_ZERO = frozenset((CPU, MEMORY))   # scored with a container's default requests when it has none
_UNKNOWN = object()


def insufficient_resources(pod: PodInfo, node: NodeInfo) -> list[str]:
    """fitsRequest: every reason the pod does not fit, pods count first."""
    reasons = []
    if len(node.pods) + 1 > node.allocatable.get(PODS, 0):
        reasons.append(TOO_MANY_PODS)
    requests = pod.resource.requests
    # requests hold only cpu, memory, ephemeral-storage and scalar resources; upstream checks them in that order
    for name in (*_NATIVE, *(n for n in requests if n not in _NATIVE)):
        wanted = requests.get(name, 0)
        if wanted > 0 and wanted > node.allocatable.get(name, 0) - node.requested.get(name, 0):
            reasons.append(f"Insufficient {name}")
    return reasons


def least_requested_score(requested: int, capacity: int) -> int:
    if capacity == 0 or requested > capacity:
        return 0
    return (capacity - requested) * MAX_NODE_SCORE // capacity


class NodeResourcesFit(RememberedScores):
    name = NAME

    def __init__(self, scoring_resources: Mapping[str, int] = DEFAULT_SCORING_RESOURCES):
        self.scoring_resources = dict(scoring_resources)

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        key = pod.resource.fit_key
        verdict = node.memo.get(key, _UNKNOWN)
        if verdict is _UNKNOWN:
            verdict = node.memo[key] = self._fits(pod, node)
        return verdict

    @staticmethod
    def _fits(pod: PodInfo, node: NodeInfo) -> Status | None:
        # the common case (it fits) in a few lookups; the reasons are gathered only for a misfit
        allocatable, requested = node.allocatable, node.requested
        if len(node.pods) < allocatable.get(PODS, 0):
            for name, wanted in pod.resource.positive:
                if wanted > allocatable.get(name, 0) - requested.get(name, 0):
                    break
            else:
                return None
        return unschedulable(*insufficient_resources(pod, node))

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot,
                  nodes: Sequence[NodeInfo]) -> Status | None:
        # scoring counts a container without requests as the defaults (100m, 200Mi)
        state[NAME] = {CPU: pod.resource.non_zero_cpu, MEMORY: pod.resource.non_zero_memory,
                       **{r: pod.resource.requests.get(r, 0) for r in self.scoring_resources if r not in (CPU, MEMORY)}}
        state[NAME + "/key"] = f"{NAME}/score\0{sorted(self.scoring_resources.items())}\0{sorted(state[NAME].items())}"
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        pod_requests = state[NAME]
        allocatable, non_zero, requested = node.allocatable, node.non_zero_requested, node.requested
        total = weights = 0
        for resource, weight in self.scoring_resources.items():
            capacity = allocatable.get(resource, 0)
            if capacity == 0:
                continue  # a resource the node does not have is left out, weight included
            used = (non_zero if resource in _NON_ZERO else requested).get(resource, 0) + pod_requests.get(resource, 0)
            # leastRequestedScore, inline: this runs for every feasible node of every pod
            if used <= capacity:
                total += (capacity - used) * MAX_NODE_SCORE // capacity * weight
            weights += weight
        return total // weights if weights else 0
