"""NodeName: a pod that names its node (spec.nodeName) fits only there."""
from __future__ import annotations

from boxkube.scheduler.framework import SKIP, CycleState, NodeInfo, Snapshot, Status, unresolvable
from boxkube.scheduler.podinfo import PodInfo

NAME = "NodeName"
REASON = "node(s) didn't match the requested node name"


class NodeName:
    name = NAME

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status | None:
        # not upstream's (it has no PreFilter): spares a call per node for the pods that name none
        return None if pod.node_name else SKIP

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        wanted = pod.node_name
        if wanted and wanted != node.name:
            return unresolvable(REASON)
        return None
