"""NodeResourcesBalancedAllocation: prefer nodes whose cpu and memory use stay in proportion."""
from __future__ import annotations

import math
from collections.abc import Sequence

from boxkube.scheduler.framework import (
    MAX_NODE_SCORE, SKIP, CycleState, NodeInfo, Snapshot, Status,
)
from boxkube.scheduler.podinfo import PodInfo
from boxkube.scheduler.resources import CPU, MEMORY

NAME = "NodeResourcesBalancedAllocation"
RESOURCES = (CPU, MEMORY)


def balanced_score(fractions: Sequence[float]) -> int:
    """balancedResourceScorer: (1 - standard deviation of the used fractions) x 100."""
    if len(fractions) == 2:
        std = abs(fractions[0] - fractions[1]) / 2
    elif len(fractions) > 2:
        mean = sum(fractions) / len(fractions)
        std = math.sqrt(sum((f - mean) ** 2 for f in fractions) / len(fractions))
    else:
        std = 0.0
    return int((1 - std) * MAX_NODE_SCORE)


class BalancedAllocation:
    name = NAME

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot,
                  nodes: Sequence[NodeInfo]) -> Status | None:
        requests = {r: pod.resource.requests.get(r, 0) for r in RESOURCES}
        if not any(requests.values()):
            return SKIP  # a best-effort pod changes no node's balance
        state[NAME] = requests
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        # this plugin counts actual requests, not the non-zero defaults LeastAllocated uses
        fractions = []
        for resource in RESOURCES:
            capacity = node.allocatable.get(resource, 0)
            if capacity == 0:
                continue
            used = node.requested.get(resource, 0) + state[NAME][resource]
            fractions.append(min(used / capacity, 1.0))
        return balanced_score(fractions)
