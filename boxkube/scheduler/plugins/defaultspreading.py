"""Default spreading of replicas: which pods count as "the same workload" as a pod without
topologySpreadConstraints of its own.

Upstream's old SelectorSpread plugin became PodTopologySpread's system default
constraints (spread over hostnames with maxSkew 3 and zones with maxSkew 5,
ScheduleAnyway), with the selector built by helper.DefaultSelector from the
Services selecting the pod and the ReplicationController, ReplicaSet or
StatefulSet controlling it.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from boxkube.apiserver.errors import APIError
from boxkube.apiserver.selectors import (
    EVERYTHING, LabelSelector, Operator, Requirement, label_selector_from_object,
)
from boxkube.scheduler.framework import Snapshot

HOSTNAME_LABEL = "kubernetes.io/hostname"
ZONE_LABEL = "topology.kubernetes.io/zone"

SYSTEM_DEFAULT_CONSTRAINTS: tuple[Mapping[str, Any], ...] = (
    {"topologyKey": HOSTNAME_LABEL, "whenUnsatisfiable": "ScheduleAnyway", "maxSkew": 3},
    {"topologyKey": ZONE_LABEL, "whenUnsatisfiable": "ScheduleAnyway", "maxSkew": 5},
)

# controllers whose selector groups a pod's replicas, by the (apiVersion, kind) of the controller reference
_SET_BASED_OWNERS = {("apps/v1", "ReplicaSet"): "ReplicaSet", ("apps/v1", "StatefulSet"): "StatefulSet"}


def controller_of(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """metav1.GetControllerOf: the owner reference with controller: true."""
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def default_selector(pod: Mapping[str, Any], snapshot: Snapshot) -> LabelSelector:
    """helper.DefaultSelector: selectors of the pod's Services and controller, merged (empty if none)."""
    meta = pod.get("metadata") or {}
    namespace, labels = meta.get("namespace", ""), meta.get("labels") or {}
    merged: dict[str, str] = {}
    for svc in snapshot.objects_in("Service", namespace):
        selector = (svc.get("spec") or {}).get("selector")
        # a nil selector selects nothing; the pods a Service selects agree on its labels, so merging is safe
        if selector is not None and all(labels.get(k) == v for k, v in selector.items()):
            merged.update(selector)
    extra: tuple[Requirement, ...] = ()
    owner = controller_of(pod)
    if owner is not None:
        key = (owner.get("apiVersion"), owner.get("kind"))
        if key == ("v1", "ReplicationController"):
            rc = snapshot.get_object("ReplicationController", namespace, owner.get("name", ""))
            if rc is not None:
                merged.update((rc.get("spec") or {}).get("selector") or {})
        elif key in _SET_BASED_OWNERS:
            obj = snapshot.get_object(_SET_BASED_OWNERS[key], namespace, owner.get("name", ""))
            if obj is not None:
                try:
                    extra = label_selector_from_object((obj.get("spec") or {}).get("selector")).requirements
                except APIError:
                    extra = ()  # an invalid selector adds nothing, as upstream ignores the error
    requirements = tuple(Requirement(k, Operator.EQUALS, (v,)) for k, v in sorted(merged.items())) + extra
    return LabelSelector(requirements) if requirements else EVERYTHING
