"""Cluster names and the names derived from them."""

from __future__ import annotations

import re

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


def worker_names(cluster_name: str, count: int) -> list[str]:
    """The workers of a cluster: NAME-worker, NAME-worker2, ..."""
    return numbered_names(f"{cluster_name}-worker", count)
