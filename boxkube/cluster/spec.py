"""What a person asks for when creating a cluster."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from boxkube.cluster.config import ClusterConfig
from boxkube.cluster.names import DEFAULT_CLUSTER_NAME

DEFAULT_WAIT_SECONDS = 60.0


@dataclass(frozen=True)
class ClusterSpec:
    """The options of ``boxkube create cluster``."""

    name: str = DEFAULT_CLUSTER_NAME
    provider: str = "local"
    # None: the provider's default.
    nodes: int | None = None
    # An explicit kubeconfig file to merge into; None: $KUBECONFIG or ~/.kube/config.
    kubeconfig: Path | None = None
    # Seconds to wait for the control plane to be ready.
    wait: float = DEFAULT_WAIT_SECONDS
    # Keep what was made when creation fails, for debugging.
    retain: bool = False
    # The --config file: node labels/taints/capacity, networking, control-loop timings.
    config: ClusterConfig | None = None


def format_seconds(seconds: float) -> str:
    """60 -> '60s', 90.5 -> '90.5s'."""
    return f"{seconds:g}s"
