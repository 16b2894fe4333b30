"""Kubernetes clusters for other projects' tests: a pytest plugin (boxkube.testing.plugin, loaded
through the `pytest11` entry point) and, for code that does not use pytest, `BoxkubeCluster`.

The names below are imported on first use, so that loading the plugin into every pytest run of a
project costs nothing until a test asks for a cluster.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BoxkubeCluster": "boxkube.testing.cluster",
    "Cluster": "boxkube.testing.cluster",
    "KubectlError": "boxkube.testing.cluster",
    "WaitTimeoutError": "boxkube.testing.cluster",
    "wait_for": "boxkube.testing.cluster",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
