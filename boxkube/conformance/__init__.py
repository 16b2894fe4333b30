"""boxkube's conformance suite: pytest modules written only against the official `kubernetes`
client and a kubeconfig, so that they run against any Kubernetes cluster (see README.md here).

Run it with `boxkube conformance --kubeconfig PATH` or `pytest conformance/ --kubeconfig PATH`.
This package imports nothing at import time (the CLI finds the suite's folder through it).
"""
from pathlib import Path

SUITE_DIR = Path(__file__).resolve().parent
