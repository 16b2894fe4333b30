"""NodeResourcesBalancedAllocation: prefer nodes whose cpu and memory use stay in proportion."""
from __future__ import annotations

import math
from collections.abc import Sequence

from boxkube.scheduler.framework import (
    MAX_NODE_SCORE, SKIP, CycleState, NodeInfo, RememberedScores, Snapshot, Status,
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


class BalancedAllocation(RememberedScores):
    name = NAME

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot,
                  nodes: Sequence[NodeInfo]) -> Status | None:
        requests = {r: pod.resource.requests.get(r, 0) for r in RESOURCES}
        if not any(requests.values()):
            return SKIP  # a best-effort pod changes no node's balance
        state[NAME] = requests
        state[NAME + "/key"] = f"{NAME}\0{requests[CPU]}\0{requests[MEMORY]}"
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        # this plugin counts actual requests, not the non-zero defaults LeastAllocated uses
        allocatable, requested, wanted = node.allocatable, node.requested, state[NAME]
        cpu, memory = allocatable.get(CPU, 0), allocatable.get(MEMORY, 0)
        if cpu and memory:   # the usual case, without building a list for balanced_score
            cpu_fraction = min((requested.get(CPU, 0) + wanted[CPU]) / cpu, 1.0)
            memory_fraction = min((requested.get(MEMORY, 0) + wanted[MEMORY]) / memory, 1.0)
            return int((1 - abs(cpu_fraction - memory_fraction) / 2) * MAX_NODE_SCORE)
        fractions = []
        for resource in RESOURCES:
            capacity = allocatable.get(resource, 0)
            if capacity == 0:
                continue
            used = requested.get(resource, 0) + wanted[resource]
            fractions.append(min(used / capacity, 1.0))
        return balanced_score(fractions)
