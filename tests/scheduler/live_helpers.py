"""Helpers for running the scheduler against the session cluster's real API server.

There are no node agents: nodes are Node objects created through the client,
as kwok makes them. The cluster is shared, so every test gets its own node pool
(a label its nodes carry, and its scheduler's node selector) and its own
scheduler name, and removes its nodes afterwards.
"""
from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from boxkube.client import ApiClient, resource
from boxkube.scheduler.plugins import default_profile
from boxkube.scheduler.queue import SchedulingQueue
from boxkube.scheduler.scheduler import Scheduler

NODES, PODS, NAMESPACES, EVENTS = resource("nodes"), resource("pods"), resource("namespaces"), resource("events")
POOL_LABEL = "scheduler.test.boxkube.dev/pool"


def node_body(name: str, pool: str, *, cpu: str = "2", memory: str = "4Gi", pods: str = "110",
              labels: Mapping[str, str] | None = None, taints: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    allocatable = {"cpu": cpu, "memory": memory, "pods": pods}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                              POOL_LABEL: pool, **(labels or {})}},
        "spec": {"taints": [dict(t) for t in taints]} if taints else {},
        "status": {"capacity": dict(allocatable), "allocatable": allocatable,
                   "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                   "message": "kubelet is posting ready status"}]},
    }


def pod_body(name: str, scheduler_name: str, *, cpu: str | None = None, memory: str | None = None,
             **spec: Any) -> dict[str, Any]:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    container = {"name": "app", "image": "registry.k8s.io/pause:3.10"}
    if requests:
        container["resources"] = {"requests": requests}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [container], "schedulerName": scheduler_name, **spec}}


@dataclass
class Pool:
    """A test's nodes and scheduler name on the shared cluster."""

    client: ApiClient
    namespace: str
    name: str = field(default_factory=lambda: f"p{uuid.uuid4().hex[:8]}")
    nodes: list[str] = field(default_factory=list)

    @property
    def scheduler_name(self) -> str:
        return f"sched-{self.name}"

    @property
    def node_selector(self) -> str:
        return f"{POOL_LABEL}={self.name}"

    async def add_node(self, suffix: str, **kw: Any) -> str:
        name = f"{self.name}-{suffix}"
        await self.client.create(NODES, node_body(name, self.name, **kw))
        self.nodes.append(name)
        return name

    async def add_pod(self, name: str, scheduler_name: str | None = None, **kw: Any) -> dict[str, Any]:
        return await self.client.create(PODS, pod_body(name, scheduler_name or self.scheduler_name, **kw),
                                        self.namespace)

    def scheduler(self, client: ApiClient | None = None, **kw: Any) -> Scheduler:
        # back-offs shrunk so retries happen within a test
        return Scheduler(client or self.client, profiles=[default_profile(self.scheduler_name)],
                         node_selector=self.node_selector,
                         queue=SchedulingQueue(initial_backoff=0.1, max_backoff=0.4), **kw)

    async def node_of(self, pod: str) -> str | None:
        return (await self.client.get(PODS, pod, self.namespace))["spec"].get("nodeName")

    async def wait_bound(self, *pods: str, timeout: float = 10.0) -> dict[str, str]:
        """pod -> node once every pod is bound."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            listed = (await self.client.list(PODS, self.namespace))["items"]
            bound = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in listed}
            if all(bound.get(p) for p in pods):
                return {p: bound[p] for p in pods}
            if loop.time() > deadline:
                raise AssertionError(f"not bound in {timeout}s: {[p for p in pods if not bound.get(p)]}")
            await asyncio.sleep(0.05)

    async def events(self, pod: str) -> list[dict[str, Any]]:
        items = (await self.client.list(EVENTS, self.namespace,
                                        field_selector=f"involvedObject.name={pod}"))["items"]
        return sorted(items, key=lambda e: (e.get("firstTimestamp") or "", e["metadata"]["name"]))

    async def cleanup(self) -> None:
        for name in self.nodes:
            with contextlib.suppress(Exception):
                await self.client.delete(NODES, name)


@contextlib.asynccontextmanager
async def running(scheduler: Scheduler) -> AsyncIterator[asyncio.Task]:
    """The scheduler running in the background for the block, stopped (cleanly) after it."""
    task = asyncio.create_task(scheduler.run())
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
