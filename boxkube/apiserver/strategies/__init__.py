"""The strategy of each resource type; the generic Strategy for those with nothing special."""
from __future__ import annotations

from boxkube.apiserver.resources import ResourceType
from boxkube.apiserver.strategies import apps, core
from boxkube.apiserver.strategies.base import Admission, Strategy

_BY_KIND: dict[tuple[str, str], type[Strategy]] = {
    ("", "Pod"): core.PodStrategy,
    ("", "Namespace"): core.NamespaceStrategy,
    ("", "Service"): core.ServiceStrategy,
    ("", "Node"): core.NodeStrategy,
    ("", "Secret"): core.SecretStrategy,
    ("", "Endpoints"): core.EndpointsStrategy,
    ("", "Event"): core.EventStrategy,
    ("", "ReplicationController"): core.ReplicationControllerStrategy,
    ("apps", "Deployment"): apps.DeploymentStrategy,
    ("apps", "ReplicaSet"): apps.ReplicaSetStrategy,
    ("apps", "StatefulSet"): apps.StatefulSetStrategy,
    ("apps", "DaemonSet"): apps.DaemonSetStrategy,
    ("coordination.k8s.io", "Lease"): core.LeaseStrategy,
}


def strategy_for(rt: ResourceType, admission: Admission = Admission()) -> Strategy:
    return _BY_KIND.get((rt.group, rt.kind), Strategy)(rt, admission)
