"""`boxkube conformance` against a docker cluster (real nodes: containers, pod networking, Services):
every area passes, nothing is skipped."""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from boxkube.conformance.support import AREAS

from tests.conftest import Cluster, made_cluster
from tests.e2e.test_conformance_cli import table

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def docker_cluster(docker_client, tmp_path_factory) -> Iterator[Cluster]:
    with made_cluster(tmp_path_factory.mktemp("conformance-docker-home"), "confdk", "--nodes", "2", "--wait", "180",
                      provider="docker") as c:
        yield c


@pytest.mark.timeout(960)    # the whole suite on real nodes
def test_every_area_passes_on_real_nodes(docker_cluster):
    # --name: the cluster's kubeconfig, and `boxkube node stop/start` for the lost-node test
    run = subprocess.run([sys.executable, "-m", "boxkube.cli", "conformance", "--name", docker_cluster.name],
                         capture_output=True, text=True, env=docker_cluster.env, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    rows = table(run.stdout)
    assert set(AREAS) == {row[0] for row in rows.values()}
    assert len(rows) >= 30
    assert all(row[2] == "PASSED" for row in rows.values()), {n: r for n, r in rows.items() if r[2] != "PASSED"}
