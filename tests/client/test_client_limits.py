"""The client's connection and concurrency limits, against a tiny HTTP server that counts what it is sent.

The server answers every request after a pause and records how many were in
flight at once and from how many client connections (source ports), which is
what the limits are about; a `/hang` request never ends while the test runs,
as a watch holds its connection.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest
import uvicorn

from boxkube.client import ApiClient, ClientConfig, TransportError, resource
from boxkube.client.api import ClientClosed
from boxkube.cluster.etcd import HOST
from boxkube.cluster.process import free_port

PAUSE = 0.05


class CountingServer:
    def __init__(self) -> None:
        self.in_flight = self.peak = self.served = 0
        self.ports: set[int] = set()
        self.url = ""
        self.release = asyncio.Event()    # ends the /hang requests

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        self.ports.add(scope["client"][1])
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await (self.release.wait() if scope["path"] == "/hang" else asyncio.sleep(PAUSE))
        finally:
            self.in_flight -= 1
        self.served += 1
        body = json.dumps({"path": scope["path"]}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})

    def reset(self) -> None:
        self.peak = self.served = 0
        self.ports.clear()


@pytest.fixture
async def server() -> AsyncIterator[CountingServer]:
    app = CountingServer()
    port = free_port(HOST)
    runner = uvicorn.Server(uvicorn.Config(app, host=HOST, port=port, log_config=None, access_log=False,
                                           timeout_graceful_shutdown=0.1))
    task = asyncio.create_task(runner.serve())
    while not runner.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    app.url = f"http://{HOST}:{port}"
    yield app
    app.release.set()
    runner.should_exit = True
    await task


def client_of(server: CountingServer, **options) -> ApiClient:
    return ApiClient(ClientConfig(server.url), **options)


async def burst(client: ApiClient, count: int) -> list[dict]:
    return await asyncio.gather(*(client.request("GET", f"/r{i}") for i in range(count)))


async def test_max_concurrent_requests_queues_the_rest_in_order_of_arrival(server):
    async with client_of(server, max_concurrent_requests=3) as client:
        answers = await burst(client, 12)
    assert [a["path"] for a in answers] == [f"/r{i}" for i in range(12)]
    assert server.peak == 3 and server.served == 12


async def test_max_connections_are_all_kept_alive_and_reused(server):
    async with client_of(server, max_connections=4) as client:
        for _ in range(5):     # a pool keeping fewer alive than it opens would open new ones for each burst
            await burst(client, 40)
    assert server.peak <= 4
    assert len(server.ports) <= 4


async def test_pool_timeout_is_apart_from_the_request_timeout(server):
    async with client_of(server, max_connections=1, pool_timeout=0.2, timeout=30, max_retries=0) as client:
        hanging = asyncio.create_task(client.request("GET", "/hang"))   # holds the only connection
        await asyncio.sleep(0.1)
        started = asyncio.get_running_loop().time()
        with pytest.raises(TransportError) as raised:
            await client.request("GET", "/waiting")
        assert not raised.value.sent
        assert asyncio.get_running_loop().time() - started < 5
        server.release.set()
        await hanging


async def test_a_pool_timeout_is_retried_as_not_sent(server):
    async with client_of(server, max_connections=1, pool_timeout=0.1, max_retries=20) as client:
        hanging = asyncio.create_task(client.request("GET", "/hang"))
        await asyncio.sleep(0.1)
        waiting = asyncio.create_task(client.request("POST", "/create", body={}))
        await asyncio.sleep(0.3)     # timed out in the pool at least once meanwhile
        server.release.set()
        assert (await waiting)["path"] == "/create"
        await hanging


async def test_a_limited_view_has_its_own_cap_over_the_same_connections(server):
    async with client_of(server, max_connections=8) as client:
        writes = client.limited(2)
        many = asyncio.gather(*(writes.request("POST", f"/w{i}") for i in range(10)))
        await asyncio.sleep(PAUSE / 2)
        # the root client's requests don't wait behind the view's queue
        started = asyncio.get_running_loop().time()
        await client.request("GET", "/lease")
        assert asyncio.get_running_loop().time() - started < 4 * PAUSE
        await many
        assert server.peak <= 3
        assert len(server.ports) <= 8
        await writes.close()
        assert (await client.request("GET", "/still-open"))["path"] == "/still-open"


async def test_closing_a_view_refuses_the_waiting_requests_and_lets_those_in_flight_finish(server):
    async with client_of(server) as client:
        view = client.limited(1)
        tasks = [asyncio.create_task(view.request("POST", f"/b{i}")) for i in range(4)]
        await asyncio.sleep(PAUSE / 2)     # the first is in flight, three wait
        await view.close()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[0] == {"path": "/b0"}
    assert all(isinstance(r, ClientClosed) for r in results[1:])
    assert server.served == 1
    with pytest.raises(ClientClosed):
        await view.request("GET", "/after")


def test_limits_must_be_positive():
    config = ClientConfig("http://127.0.0.1:1")
    with pytest.raises(ValueError):
        ApiClient(config, max_connections=0)
    with pytest.raises(ValueError):
        ApiClient(config, max_concurrent_requests=0)


async def test_the_options_against_the_real_api_server(cluster, ns):
    """A capped client does its job against boxkube's API server (the watch does not take a slot)."""
    configmaps = resource("configmaps")
    async with ApiClient.from_kubeconfig(str(cluster.kubeconfig), max_connections=4,
                                         max_concurrent_requests=2, pool_timeout=5) as client:
        async with client.watch(configmaps, ns) as events:
            await asyncio.gather(*(client.create(configmaps, {"metadata": {"name": f"c{i}"}}, ns)
                                   for i in range(20)))
            seen = set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    async for _, obj in events:
                        seen.add(obj["metadata"]["name"])
                        if len(seen) == 20:
                            break
        assert seen == {f"c{i}" for i in range(20)}
        assert len((await client.list(configmaps, ns))["items"]) >= 20
