"""Fixtures for the node agent tests: simulated nodes run in the test's event loop against the session cluster.

Nodes are cluster-scoped and the cluster is shared by every test, so each test
gets nodes of its own unique names and removes them (with their Leases) after.
No controller manager may be running to hand out podCIDRs, so `give_pod_cidrs`
sets them as node IPAM would. `client` and `ns` are tests/conftest.py's.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import pytest

from boxkube.agent.agent import AgentGroup
from boxkube.agent.config import AgentSettings, NodeSettings
from boxkube.agent.node import LEASE_NAMESPACE
from boxkube.agent.runtime.simulated import SimulatedRuntime
from boxkube.client import ApiClient, ApiError, resource

NODES, PODS, LEASES = resource("nodes"), resource("pods"), resource("leases")

# Short timings so a test sees restarts, back-off and renewals within seconds.
FAST = AgentSettings(lease_duration=2, status_report_interval=5.0, backoff_initial=0.5, backoff_max=2.0)


@pytest.fixture
async def ns(ns, client):
    """The shared fresh namespace, its pods force-deleted before it goes: no node agent may be left to
    finish their graceful deletion, which would hold the namespace up."""
    yield ns
    with contextlib.suppress(ApiError):
        await client.delete_collection(PODS, ns, grace_period_seconds=0)


async def eventually(check, timeout: float = 10.0, interval: float = 0.05):
    """Await `check()` until it returns something truthy (or stops raising AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = await check()
            if result:
                return result
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s: {check.__name__}")
        await asyncio.sleep(interval)


async def give_pod_cidrs(client: ApiClient, names: list[str], first: int = 0) -> None:
    """Set spec.podCIDR on nodes that have none, as the controller manager's node IPAM would."""
    for i, name in enumerate(names):
        node = await client.get(NODES, name)
        if not (node.get("spec") or {}).get("podCIDR"):
            cidr = f"10.{200 + (first + i) // 256}.{(first + i) % 256}.0/24"
            with contextlib.suppress(ApiError):
                await client.patch(NODES, name, {"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}})


class Agents:
    """Start and stop groups of simulated nodes; everything made is removed at the end."""

    def __init__(self, client: ApiClient):
        self.client = client
        self.groups: list[AgentGroup] = []
        self.names: set[str] = set()
        self.runtimes: dict[str, SimulatedRuntime] = {}

    def node_names(self, count: int = 1) -> list[str]:
        prefix = f"agent-{uuid.uuid4().hex[:6]}"
        return [f"{prefix}-{i}" for i in range(count)]

    async def start(self, names: list[str], settings: AgentSettings = FAST, pod_cidrs: bool = True,
                    **node_kwargs) -> AgentGroup:
        nodes = [NodeSettings(name=n, internal_ip=f"172.19.{i // 250}.{i % 250 + 2}", **node_kwargs)
                 for i, n in enumerate(names)]
        self.names.update(names)
        for n in names:   # the same runtime again when a test restarts a node's agent
            self.runtimes.setdefault(n, SimulatedRuntime(n, start_delay=0.05))
        group = AgentGroup(self.client, nodes, lambda node: self.runtimes[node.name], settings)
        self.groups.append(group)
        await group.start()
        if pod_cidrs:
            await give_pod_cidrs(self.client, names)
        return group

    async def stop(self, group: AgentGroup) -> None:
        if group in self.groups:
            self.groups.remove(group)
            await group.stop()

    async def close(self) -> None:
        for group in list(self.groups):
            await self.stop(group)
        for name in self.names:
            with contextlib.suppress(ApiError):
                await self.client.delete(NODES, name)
            with contextlib.suppress(ApiError):
                await self.client.delete(LEASES, name, LEASE_NAMESPACE)
        for runtime in self.runtimes.values():
            await runtime.close()


@pytest.fixture
async def agents(client):
    a = Agents(client)
    yield a
    await a.close()
