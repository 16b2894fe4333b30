"""NodeName: a pod that names its node (spec.nodeName) fits only there."""
from __future__ import annotations

from boxkube.scheduler.framework import CycleState, NodeInfo, Status, unresolvable
from boxkube.scheduler.podinfo import PodInfo

NAME = "NodeName"
REASON = "node(s) didn't match the requested node name"


class NodeName:
    name = NAME

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        wanted = pod.node_name
        if wanted and wanted != node.name:
            return unresolvable(REASON)
        return None
