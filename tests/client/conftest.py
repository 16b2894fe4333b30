"""Fixtures for the client tests: the session cluster's etcd and a second API server (`client` and `ns`
come from tests/conftest.py).

The second API server is boxkube's own app, run in the test's event loop on the
cluster's etcd (as a second kube-apiserver of an HA control plane would be).
A test can stop and start it, which is how an informer's connection loss and
an API server restart onto a compacted etcd are made real.
"""
from __future__ import annotations

import asyncio

import pytest
import uvicorn

from boxkube.apiserver.app import ServerConfig, create_app
from boxkube.client import ApiClient, ClientConfig
from boxkube.cluster.etcd import HOST
from boxkube.cluster.process import free_port
from boxkube.cluster.state import boxkube_home, cluster_dir
from boxkube.storage.etcd import EtcdStore

@pytest.fixture(scope="session")
def etcd_url(cluster) -> str:
    state = cluster_dir(boxkube_home(cluster.env), cluster.name).load()
    return f"http://{HOST}:{state.ports['etcd']}"


async def compact_etcd(etcd_url: str) -> int:
    """Compact the cluster's etcd at its current revision, behind the API servers' backs; the revision."""
    store = EtcdStore(etcd_url)
    try:
        revision = await store.revision()
        await store.compact(revision)
        return revision
    finally:
        await store.close()


class SecondServer:
    """boxkube's API server on the cluster's etcd, plain HTTP, started and stopped by the test."""

    def __init__(self, etcd_url: str, token: str, bookmark_interval: float):
        self.config = ServerConfig(etcd_servers=etcd_url, token=token, compaction_interval=0,
                                   bookmark_interval=bookmark_interval)
        self.port = free_port(HOST)
        self.url = f"http://{HOST}:{self.port}"
        self.app = None
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self.app = create_app(self.config)
        config = uvicorn.Config(self.app, host=HOST, port=self.port, log_config=None,
                                access_log=False, timeout_graceful_shutdown=0.1)
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        """Stop within 0.1 s, breaking open watches as a crash or restart would."""
        if self._server is not None:
            self._server.should_exit = True
            await self._task
            self._server = self._task = None

    async def compact(self) -> int:
        """Compact etcd now, the way the server's own Compactor does every interval."""
        return await self.app.state.compactor.compact_now()

    def client(self) -> ApiClient:
        return ApiClient(ClientConfig(self.url, token=self.config.token))


@pytest.fixture
async def second_server(cluster, etcd_url):
    _, token, _ = cluster.server_and_token()
    server = SecondServer(etcd_url, token, bookmark_interval=0.2)
    await server.start()
    yield server
    await server.stop()
