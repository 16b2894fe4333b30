"""Clients of the session cluster for controller tests."""
from __future__ import annotations

import uuid

import pytest

from boxkube.client import ApiClient, resource


@pytest.fixture
async def client(cluster):
    async with ApiClient.from_kubeconfig(str(cluster.kubeconfig)) as c:
        yield c


@pytest.fixture
async def ns(client):
    name = f"ctl-{uuid.uuid4().hex[:8]}"
    await client.create(resource("namespaces"), {"metadata": {"name": name}})
    yield name
    await client.delete(resource("namespaces"), name)
