"""`boxkube conformance` against a docker cluster (real nodes: containers, pod networking, Services):
every area passes, nothing is skipped."""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import Cluster, made_cluster
from tests.e2e.test_conformance_cli import table

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def docker_cluster(docker_client, tmp_path_factory) -> Iterator[Cluster]:
    with made_cluster(tmp_path_factory.mktemp("conformance-docker-home"), "confdk", "--nodes", "2", "--wait", "180",
                      provider="docker") as c:
        yield c


def test_every_area_passes_on_real_nodes(docker_cluster):
    run = subprocess.run([sys.executable, "-m", "boxkube.cli", "conformance", "--kubeconfig",
                          str(docker_cluster.kubeconfig)],
                         capture_output=True, text=True, env=docker_cluster.env, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    rows = table(run.stdout)
    assert {"API", "Self-healing", "Service routing"} == {row[0] for row in rows.values()}
    assert len(rows) >= 13
    assert all(row[2] == "PASSED" for row in rows.values()), {n: r for n, r in rows.items() if r[2] != "PASSED"}
