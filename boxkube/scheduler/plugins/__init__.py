"""The in-tree plugins and the default profile (upstream's default plugin set, as far as boxkube has it)."""
from __future__ import annotations

from boxkube.scheduler.framework import DEFAULT_SCHEDULER_NAME, Profile
from boxkube.scheduler.plugins.balancedallocation import BalancedAllocation
from boxkube.scheduler.plugins.interpodaffinity import InterPodAffinity
from boxkube.scheduler.plugins.nodeaffinity import NodeAffinity
from boxkube.scheduler.plugins.nodename import NodeName
from boxkube.scheduler.plugins.noderesources import NodeResourcesFit
from boxkube.scheduler.plugins.nodeunschedulable import NodeUnschedulable
from boxkube.scheduler.plugins.podtopologyspread import PodTopologySpread
from boxkube.scheduler.plugins.taints import TaintToleration

# Score weights of upstream's default MultiPoint plugin list (config/v1/default_plugins.go).
DEFAULT_WEIGHTS = {
    "TaintToleration": 3,
    "NodeAffinity": 2,
    "NodeResourcesFit": 1,
    "PodTopologySpread": 2,
    "InterPodAffinity": 2,
    "NodeResourcesBalancedAllocation": 1,
}


def default_profile(scheduler_name: str = DEFAULT_SCHEDULER_NAME,
                    percentage_of_nodes_to_score: int | None = None) -> Profile:
    """The default profile; filters run in upstream's order, which decides the one reason a node reports."""
    return Profile(
        plugins=[
            NodeUnschedulable(),
            NodeName(),
            TaintToleration(),
            NodeAffinity(),
            NodeResourcesFit(),
            PodTopologySpread(),
            InterPodAffinity(),
            BalancedAllocation(),
        ],
        weights=DEFAULT_WEIGHTS,
        scheduler_name=scheduler_name,
        percentage_of_nodes_to_score=percentage_of_nodes_to_score,
    )


__all__ = [
    "BalancedAllocation", "DEFAULT_WEIGHTS", "InterPodAffinity", "NodeAffinity", "NodeName",
    "NodeResourcesFit", "NodeUnschedulable", "PodTopologySpread", "TaintToleration", "default_profile",
]
