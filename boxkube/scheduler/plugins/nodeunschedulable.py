"""NodeUnschedulable: a cordoned node (spec.unschedulable) takes only pods that tolerate it."""
from __future__ import annotations

from boxkube.scheduler.framework import CycleState, NodeInfo, Status, unresolvable
from boxkube.scheduler.plugins.taints import tolerations_tolerate
from boxkube.scheduler.podinfo import PodInfo

NAME = "NodeUnschedulable"
REASON = "node(s) were unschedulable"
# the taint a cordoned node behaves as if it had (DaemonSet pods tolerate it)
UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


class NodeUnschedulable:
    name = NAME

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if node.unschedulable and not tolerations_tolerate(pod.tolerations, UNSCHEDULABLE_TAINT):
            return unresolvable(REASON)
        return None
