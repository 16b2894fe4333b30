"""Shared fixtures: a real local boxkube cluster made by the `boxkube` CLI (session-wide, started on first use),
and boxkube's own client of it with a fresh namespace per test."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from boxkube.client import ApiClient, resource
from boxkube.cluster.binaries import kubectl_binary


@dataclass
class Cluster:
    name: str
    kubeconfig: Path
    env: dict[str, str]

    def kubectl_argv(self) -> list[str]:
        return [str(kubectl_binary()), "--kubeconfig", str(self.kubeconfig)]

    def kubectl(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run the real kubectl against this cluster."""
        result = subprocess.run([*self.kubectl_argv(), *args],
                                input=input, capture_output=True, text=True, timeout=timeout, env=self.env)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def server_and_token(self) -> tuple[str, str, str]:
        cfg = yaml.safe_load(self.kubeconfig.read_text())
        return (cfg["clusters"][0]["cluster"]["server"], cfg["users"][0]["user"]["token"],
                cfg["clusters"][0]["cluster"].get("certificate-authority-data", ""))


def until(check, timeout: float = 30.0, what: str = "condition", interval: float = 0.2):
    """Poll `check()` until it returns something truthy; fail naming `what` and the last value."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout} s (last: {last!r})")


def _boxkube(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "boxkube.cli", *args], capture_output=True, text=True, env=env, timeout=900)


# The API server with only the namespace controller (deleted namespaces must go): tests run their
# own scheduler or controllers in-process against it, with no built-in ones racing them
# (the cluster config's `components` switch).
API_ONLY = """apiVersion: boxkube.dev/v1alpha1
kind: Cluster
components: {scheduler: false, controllers: [namespace]}
"""


@contextlib.contextmanager
def made_cluster(home: Path, prefix: str, *flags: str, config: str | None = None,
                 provider: str = "local") -> Iterator[Cluster]:
    """A cluster made and deleted by the real `boxkube` CLI, in its own BOXKUBE_HOME (and HOME, so no
    kubeconfig of the user's is touched; the wheel cache of node image builds stays the user's)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    env = dict(os.environ, BOXKUBE_HOME=str(home), HOME=str(home), XDG_CACHE_HOME=cache)
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    kubeconfig = home / "kubeconfig"
    if config is not None:
        (home / "cluster.yaml").write_text(config)
        flags = (*flags, "--config", str(home / "cluster.yaml"))
    created = _boxkube(env, "create", "cluster", "--provider", provider, "--name", name,
                       "--kubeconfig", str(kubeconfig), *flags)
    assert created.returncode == 0, created.stderr
    try:
        yield Cluster(name, kubeconfig, env)
    finally:
        _boxkube(env, "delete", "cluster", "--name", name)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    with made_cluster(tmp_path_factory.mktemp("boxkube-home"), "compat", "--nodes", "0", config=API_ONLY) as c:
        yield c


@pytest.fixture(scope="module")
def full_cluster(tmp_path_factory) -> Iterator[Cluster]:
    """A whole cluster — scheduler, controller manager, three simulated nodes — per test module."""
    with made_cluster(tmp_path_factory.mktemp("full-home"), "e2e", "--nodes", "3") as c:
        yield c


@pytest.fixture
async def client(cluster) -> AsyncIterator[ApiClient]:
    """boxkube's own client of the session cluster, opened for the test."""
    async with ApiClient.from_kubeconfig(str(cluster.kubeconfig)) as c:
        yield c


@pytest.fixture
async def ns(client) -> AsyncIterator[str]:
    """A fresh namespace, made and removed through the client."""
    name = f"c-{uuid.uuid4().hex[:8]}"
    await client.create(resource("namespaces"), {"metadata": {"name": name}})
    yield name
    await client.delete(resource("namespaces"), name)


@pytest.fixture
def namespace(cluster) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def api(cluster):
    """The official `kubernetes` client, configured from the cluster's kubeconfig."""
    kubernetes = pytest.importorskip("kubernetes")
    client = kubernetes.config.new_client_from_config(str(cluster.kubeconfig))
    yield client
    client.close()
