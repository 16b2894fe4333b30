"""The ReplicationController controller: the ReplicaSet controller over core/v1 ReplicationControllers.

Upstream runs the ReplicaSet code over RCs converted to ReplicaSets
(pkg/controller/replication); the only differences are the kind, the
selector — a plain label map, matched as a ReplicaSet's matchLabels — and a
status without terminatingReplicas.
"""
from __future__ import annotations

from boxkube.apiserver.selectors import LabelSelector, label_selector_from_object
from boxkube.controllers.replicaset import Obj, ReplicaSetController


class ReplicationManager(ReplicaSetController):
    name = "replicationcontroller"
    component = "replication-controller"
    resource_name = "replicationcontrollers"
    api_version = "v1"
    kind = "ReplicationController"
    reports_terminating = False

    def selector_of(self, rc: Obj) -> LabelSelector:
        return label_selector_from_object({"matchLabels": (rc.get("spec") or {}).get("selector") or {}})
