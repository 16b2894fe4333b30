"""What a node agent is told: its node's shape (NodeSettings) and the timings every agent shares (AgentSettings).

`--node-config` takes the same node entries as the cluster config file
(labels, taints, capacity, role, count), inline as YAML/JSON or as a file:
one mapping for every node, or a list whose entries (with their counts) are
dealt out to the nodes in order.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from boxkube.cluster.config import NodeConfig

Obj = dict[str, Any]

# What a simulated node has when its config says nothing (a modest laptop-sized machine).
DEFAULT_CAPACITY = {"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "100Gi",
                    "hugepages-1Gi": "0", "hugepages-2Mi": "0"}
CONTROL_PLANE_ROLE = "node-role.kubernetes.io/control-plane"


@dataclass(frozen=True)
class AgentSettings:
    """Timings of every agent of the process. boxkube's defaults are upstream's scaled to a 10 s
    node-monitor grace period (upstream: 40 s Lease renewed every 10 s, for a 40-50 s grace)."""

    lease_duration: int = 10                 # Lease spec.leaseDurationSeconds
    lease_renew_interval: float = 0.0        # 0: a quarter of the lease duration, as upstream
    # Node status is posted when it changes and at least this often (upstream's
    # nodeStatusReportFrequency, 5 min); liveness is the Lease's job.
    status_report_interval: float = 60.0
    # configMap, secret, downwardAPI and projected volumes of running pods follow their sources, checked
    # this often (upstream: the kubelet's sync period, 1 min, plus its cache's TTL)
    volume_resync: float = 10.0
    backoff_initial: float = 10.0            # CrashLoopBackOff: 10 s doubling to 300 s, as upstream
    backoff_max: float = 300.0
    # API requests in flight from the whole process, by kind, so that a burst of pods queues here
    # instead of timing out in the client's connection pool (100 connections, shared with the watches).
    heartbeat_concurrency: int = 16          # registrations, Lease renewals, node status posts
    pod_write_concurrency: int = 32          # pod status writes and deletions
    event_concurrency: int = 16              # Events

    @property
    def renew_interval(self) -> float:
        return self.lease_renew_interval or self.lease_duration / 4


@dataclass
class NodeSettings:
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[Obj] = field(default_factory=list)
    capacity: dict[str, str] = field(default_factory=dict)   # over DEFAULT_CAPACITY; allocatable is the same
    internal_ip: str = ""
    control_plane: bool = False

    def full_capacity(self) -> dict[str, str]:
        return {**DEFAULT_CAPACITY, **self.capacity}


class NodeConfigError(ValueError):
    """A --node-config that can't be used; str() is one line naming the field."""


def read_node_configs(value: str) -> list[NodeConfig]:
    """The entries of a --node-config value: YAML/JSON text, or the path of a file holding it."""
    path = Path(value)
    source = "--node-config"
    if "\n" not in value and not value.lstrip().startswith(("{", "[")) and path.exists():
        try:
            value, source = path.read_text(), str(path)
        except OSError as e:
            raise NodeConfigError(f"cannot read {path}: {e.strerror}") from None
    try:
        data = yaml.safe_load(value)
    except yaml.YAMLError as e:
        raise NodeConfigError(f"{source}: not valid YAML or JSON: {' '.join(str(e).split())}") from None
    entries = data if isinstance(data, list) else [data or {}]
    configs = []
    for i, entry in enumerate(entries):
        try:
            configs.append(NodeConfig.model_validate(entry))
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"] if p not in ("function-after",))
            where = f"[{i}].{where}" if isinstance(data, list) else where
            raise NodeConfigError(f"{source}: {where}: {first['msg'].removeprefix('Value error, ')}") from None
    return configs


def node_settings(names: list[str], configs: list[NodeConfig]) -> list[NodeSettings]:
    """One NodeSettings per name, the configs' entries dealt out in order (the last one repeats)."""
    expanded = [c for c in configs for _ in range(c.count)] or [NodeConfig()]
    out = []
    for i, name in enumerate(names):
        c = expanded[min(i, len(expanded) - 1)]
        out.append(NodeSettings(name=name, labels=dict(c.labels),
                                taints=[t.model_dump(exclude_defaults=False) for t in c.taints],
                                capacity=dict(c.capacity), control_plane=c.role == "control-plane"))
    return out
