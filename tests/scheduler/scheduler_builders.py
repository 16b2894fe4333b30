"""Realistic Node and Pod dicts for scheduler tests (the shape the API server returns)."""
from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from boxkube.scheduler.framework import Profile, Snapshot, schedule
from boxkube.scheduler.plugins import default_profile

_uids = itertools.count(1)

HOSTNAME = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"


def node(name: str, *, cpu: str = "4", memory: str = "8Gi", pods: str = "110",
         labels: Mapping[str, str] | None = None, taints: Sequence[Mapping[str, Any]] = (),
         unschedulable: bool = False, zone: str | None = None,
         extra: Mapping[str, str] | None = None) -> dict[str, Any]:
    all_labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", **(labels or {})}
    if zone is not None:
        all_labels[ZONE] = zone
    allocatable = {"cpu": cpu, "memory": memory, "pods": pods, "ephemeral-storage": "20Gi", **(extra or {})}
    spec: dict[str, Any] = {"podCIDR": "10.244.0.0/24"}
    if taints:
        spec["taints"] = [dict(t) for t in taints]
    if unschedulable:
        spec["unschedulable"] = True
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "uid": f"node-{name}", "labels": all_labels, "resourceVersion": "1"},
        "spec": spec,
        "status": {"capacity": dict(allocatable), "allocatable": allocatable,
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }


def pod(name: str, *, namespace: str = "default", cpu: str | None = None, memory: str | None = None,
        labels: Mapping[str, str] | None = None, node_name: str | None = None,
        requests: Mapping[str, str] | None = None, containers: int = 1,
        **spec: Any) -> dict[str, Any]:
    reqs = dict(requests or {})
    if cpu is not None:
        reqs["cpu"] = cpu
    if memory is not None:
        reqs["memory"] = memory
    container: dict[str, Any] = {"name": "app", "image": "registry.k8s.io/pause:3.10",
                                 "imagePullPolicy": "IfNotPresent", "resources": {}}
    if reqs:
        container["resources"] = {"requests": reqs}
    body: dict[str, Any] = {
        "containers": [dict(container, name=f"app{i}" if i else "app") for i in range(containers)],
        "restartPolicy": "Always", "schedulerName": "default-scheduler",
        "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
        "tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
             "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
             "tolerationSeconds": 300},
        ],
    }
    if "tolerations" in spec:
        body["tolerations"] = body["tolerations"] + list(spec.pop("tolerations"))
    body.update(spec)
    if node_name:
        body["nodeName"] = node_name
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}-{next(_uids)}",
                     "labels": dict(labels or {}), "resourceVersion": "1"},
        "spec": body,
        "status": {"phase": "Running" if node_name else "Pending", "qosClass": "Burstable"},
    }


def owned_by(p: dict[str, Any], kind: str, name: str, api_version: str = "apps/v1") -> dict[str, Any]:
    p["metadata"]["ownerReferences"] = [{"apiVersion": api_version, "kind": kind, "name": name,
                                         "uid": f"uid-{name}", "controller": True, "blockOwnerDeletion": True}]
    return p


def anti_affinity(labels: Mapping[str, str], topology_key: str = HOSTNAME) -> dict[str, Any]:
    return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": dict(labels)}, "topologyKey": topology_key}]}}


def place(p: Mapping[str, Any], snapshot: Snapshot, profile: Profile | None = None, seed: int = 0) -> str:
    """Schedule with the default profile and a seeded tie-break."""
    import random
    return schedule(p, snapshot, profile or default_profile(), random.Random(seed)).node_name
