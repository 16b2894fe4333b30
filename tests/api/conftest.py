"""Fixtures of the API-semantics tests: raw HTTP to the shared cluster, and a server that compacts etcd often."""
from __future__ import annotations

import base64
import json
import ssl
import sys
import time
import uuid

import httpx
import pytest

from boxkube.cluster.etcd import start_etcd_and_wait
from boxkube.cluster.process import free_port, start_detached, stop_process
from boxkube.cluster.readiness import wait_until_ready


@pytest.fixture(scope="session")
def http(cluster):
    """httpx against the shared cluster, with its CA and bearer token (raw requests, raw answers)."""
    server, token, ca = cluster.server_and_token()
    verify = ssl.create_default_context(cadata=base64.b64decode(ca).decode()) if ca else True
    with httpx.Client(base_url=server, headers={"Authorization": f"Bearer {token}"}, verify=verify,
                      timeout=30) as client:
        yield client


@pytest.fixture
def ns(http):
    """A fresh namespace, made over HTTP (faster than the kubectl-made `namespace` fixture)."""
    name = f"a-{uuid.uuid4().hex[:8]}"
    r = http.post("/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    assert r.status_code == 201, r.text
    yield name
    http.delete(f"/api/v1/namespaces/{name}")


@pytest.fixture(scope="session")
def own_etcd(tmp_path_factory):
    """The URL of an etcd apart from the shared cluster's."""
    root = tmp_path_factory.mktemp("own-etcd")
    etcd = start_etcd_and_wait(root / "data", root / "etcd.log")
    yield etcd.client_url
    stop_process(etcd.process)


@pytest.fixture(scope="module")
def compacting(tmp_path_factory, own_etcd):
    """An API server of its own (on `own_etcd`, no auth) whose Compactor runs every 0.5 s, so a
    revision read a moment ago is soon compacted: the way a test sees a real 410."""
    root = tmp_path_factory.mktemp("compacting")
    port = free_port()
    argv = [sys.executable, "-m", "boxkube.apiserver", "--etcd-servers", own_etcd,
            "--port", str(port), "--compaction-interval", "0.5", "--log-level", "warning"]
    apiserver = start_detached("apiserver", argv, root / "apiserver.log", cwd=root)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_ready("the API server", f"{base}/readyz", apiserver, time.monotonic() + 30)
        with httpx.Client(base_url=base, timeout=30) as client:
            yield client
    finally:
        stop_process(apiserver)


@pytest.fixture(scope="session")
def watch():
    """watch(client, path, params, stop): the events of one watch request, read until the server
    ends it or `stop(events)` is true."""
    def events_of(client: httpx.Client, path: str, params: dict, stop=lambda events: False) -> list[dict]:
        events: list[dict] = []
        with client.stream("GET", path, params={"watch": "true", **params}) as r:
            assert r.status_code == 200, r.read()
            for line in r.iter_lines():
                if line.strip():
                    events.append(json.loads(line))
                    if stop(events):
                        break
        return events
    return events_of
