"""Cluster names and the names derived from them."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection

from boxkube.cluster.errors import ClusterError

DEFAULT_CLUSTER_NAME = "boxkube"

# A DNS-1123 label, a bit shorter than 63 characters so that derived names
# ("boxkube-NAME", container names of the docker provider) stay valid too.
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_NAME_LENGTH = 50


def validate_cluster_name(name: str) -> str:
    """Return `name` if it is a valid cluster name, else raise ClusterError."""
    if not name or len(name) > MAX_NAME_LENGTH or not _NAME_RE.match(name):
        raise ClusterError(
            f"invalid cluster name {name!r}: use lower-case letters, digits and '-', "
            f"starting and ending with a letter or digit, at most {MAX_NAME_LENGTH} characters"
        )
    return name


def kubeconfig_name(cluster_name: str) -> str:
    """The name of the cluster, user and context entries in a kubeconfig."""
    return f"boxkube-{cluster_name}"


def numbered_names(prefix: str, count: int) -> list[str]:
    """kind's way of naming alike nodes: PREFIX, PREFIX2, PREFIX3, ..."""
    return [prefix if i == 0 else f"{prefix}{i + 1}" for i in range(count)]


def number_of(prefix: str, name: str) -> int:
    """Where `name` is in PREFIX, PREFIX2, PREFIX3, ...: 0, 1, 2, ...; ValueError for another name."""
    rest = name.removeprefix(prefix) if name.startswith(prefix) else None
    if rest == "":
        return 0
    if rest is None or not rest.isdigit() or rest.startswith("0") or int(rest) < 2:
        raise ValueError(f"{name!r} is not one of {prefix}, {prefix}2, ...")
    return int(rest) - 1


def worker_prefix(cluster_name: str) -> str:
    return f"{cluster_name}-worker"


def worker_names(cluster_name: str, count: int) -> list[str]:
    """The workers of a cluster: NAME-worker, NAME-worker2, ..."""
    return numbered_names(worker_prefix(cluster_name), count)


def next_free_names(prefix: str, taken: Collection[str], count: int = 1) -> list[str]:
    """The first `count` of PREFIX, PREFIX2, ... that are not `taken`: the names of nodes added to a cluster
    (one removed leaves a gap that the next one added fills, as a new machine takes a free slot)."""
    candidates = numbered_names(prefix, len(taken) + count)
    return [name for name in candidates if name not in taken][:count]


def listed_nodes(nodes: list[str]) -> str:
    """Nodes as progress lines name them: "node A", "nodes A, B"."""
    return f"node {nodes[0]}" if len(nodes) == 1 else f"nodes {', '.join(nodes)}"


# Simulated nodes' InternalIPs, as the nodes of a kind cluster get them from its Docker network.
_SIMULATED_NODE_NETWORK = ipaddress.ip_network("172.18.0.0/16")


def simulated_node_ip(index: int) -> str:
    """The InternalIP of the simulated node numbered `index` (0 for PREFIX, 1 for PREFIX2, ...): one
    address per name, whichever process runs the node."""
    return str(_SIMULATED_NODE_NETWORK.network_address + 2 + index)
