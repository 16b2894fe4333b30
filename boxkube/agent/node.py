"""The Node object a node agent registers and the status it keeps posting, as the kubelet writes them.

Labels are the kubelet's own (hostname, os, arch and their beta twins), the
config's, and the control-plane role label kubeadm would add; conditions carry
upstream's reasons and messages, in the order `kubectl describe node` shows
them. The Lease is kube-node-lease/<node>, owned by the Node so it goes with it.
"""
from __future__ import annotations

import hashlib
import platform
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from boxkube import KUBERNETES_VERSION
from boxkube.agent.config import CONTROL_PLANE_ROLE, NodeSettings

Obj = dict[str, Any]

LEASE_NAMESPACE = "kube-node-lease"
KUBELET_PORT = 10250
# Go's GOARCH for the machine names Python reports.
_GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
           "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}

# type -> (status, reason, message) while all is well; Ready is computed.
_PRESSURE_OK = {
    "MemoryPressure": ("False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    "DiskPressure": ("False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    "PIDPressure": ("False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
}
# The event the kubelet records when a condition takes its value.
CONDITION_EVENTS = {("MemoryPressure", "False"): "NodeHasSufficientMemory",
                    ("DiskPressure", "False"): "NodeHasNoDiskPressure",
                    ("PIDPressure", "False"): "NodeHasSufficientPID",
                    ("Ready", "True"): "NodeReady", ("Ready", "False"): "NodeNotReady"}


def go_arch() -> str:
    machine = platform.machine().lower()
    return _GOARCH.get(machine, machine)


def _os_image() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.partition("=")[2].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def node_labels(node: NodeSettings) -> dict[str, str]:
    arch = go_arch()
    labels = {"beta.kubernetes.io/arch": arch, "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": arch,
              "kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux"}
    if node.control_plane:
        labels[CONTROL_PLANE_ROLE] = ""
    return {**labels, **node.labels}


def default_labels(node: NodeSettings) -> dict[str, str]:
    """The labels the kubelet puts right again when it finds its Node already registered."""
    return {k: v for k, v in node_labels(node).items() if k.startswith(("kubernetes.io/", "beta.kubernetes.io/"))}


def node_taints(node: NodeSettings) -> list[Obj]:
    taints = [{k: v for k, v in t.items() if v not in ("", None)} for t in node.taints]
    if node.control_plane and not any(t.get("key") == CONTROL_PLANE_ROLE for t in taints):
        taints.append({"key": CONTROL_PLANE_ROLE, "effect": "NoSchedule"})
    return taints


def conditions(ready: bool, not_ready_message: str) -> list[Obj]:
    """The kubelet's four conditions without times (see `with_times`)."""
    out = [{"type": t, "status": s, "reason": r, "message": m} for t, (s, r, m) in _PRESSURE_OK.items()]
    if ready:
        out.append({"type": "Ready", "status": "True", "reason": "KubeletReady",
                    "message": "kubelet is posting ready status"})
    else:
        out.append({"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": not_ready_message})
    return out


def with_times(new: list[Obj], old: list[Obj], now: str) -> list[Obj]:
    """Heartbeat every condition now; a transition time moves only when the status does."""
    before = {c.get("type"): c for c in old}
    out = []
    for c in new:
        prior = before.get(c["type"])
        moved = prior is None or prior.get("status") != c["status"] or not prior.get("lastTransitionTime")
        out.append({**c, "lastHeartbeatTime": now,
                    "lastTransitionTime": now if moved else prior["lastTransitionTime"]})
    return out


class NodeIdentity:
    """What stays the same while the agent runs: IDs, addresses, versions, capacity."""

    def __init__(self, node: NodeSettings, runtime_version: str):
        self.node = node
        digest = hashlib.sha256(node.name.encode()).hexdigest()
        self.node_info = {
            "machineID": digest[:32],
            "systemUUID": str(uuid.UUID(digest[:32])),
            "bootID": str(uuid.uuid4()),           # a new one per start, as after a reboot
            "kernelVersion": platform.release(),
            "osImage": _os_image(),
            "containerRuntimeVersion": runtime_version,
            "kubeletVersion": f"v{KUBERNETES_VERSION}",
            "operatingSystem": "linux",
            "architecture": go_arch(),
        }
        self.kubelet_port = KUBELET_PORT          # where the agent's kubelet API listens (boxkube.agent.server)
        self.addresses = ([{"type": "InternalIP", "address": node.internal_ip}] if node.internal_ip else []) + \
            [{"type": "Hostname", "address": node.name}]

    @property
    def boot_id(self) -> str:
        return self.node_info["bootID"]

    def reboot(self) -> None:
        """The machine booted again: a new boot ID, as /proc/sys/kernel/random/boot_id gives."""
        self.node_info["bootID"] = str(uuid.uuid4())

    def status(self, conditions_: list[Obj]) -> Obj:
        capacity = self.node.full_capacity()
        return {"capacity": capacity, "allocatable": dict(capacity), "conditions": conditions_,
                "addresses": self.addresses, "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
                "nodeInfo": self.node_info}

    def node_object(self, conditions_: list[Obj]) -> Obj:
        node = self.node
        spec: Obj = {}
        if taints := node_taints(node):
            spec["taints"] = taints
        return {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": node.name, "labels": node_labels(node),
                             "annotations": {"volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
                "spec": spec, "status": self.status(conditions_)}


def micro_time(at: datetime | None = None) -> str:
    """metav1.MicroTime as it serialises (a Lease's renewTime)."""
    return (at or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_object(node_name: str, node_uid: str, duration: int) -> Obj:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": node_name, "namespace": LEASE_NAMESPACE,
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node_name,
                                              "uid": node_uid}]},
            "spec": {"holderIdentity": node_name, "leaseDurationSeconds": duration, "renewTime": micro_time()}}
