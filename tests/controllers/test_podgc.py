"""The pod garbage collector on the real API server: nodes and pods written by the test, as upstream's
integration tests do (test/integration/podgc), with a fast gc period."""
from __future__ import annotations

import asyncio
import contextlib
import uuid

from boxkube.api.times import now_rfc3339
from boxkube.client import ApiError, resource
from boxkube.controllers.base import Settings
from boxkube.controllers.manager import available_controllers
from boxkube.controllers.podgc import TAINT_OUT_OF_SERVICE, PodGCController, terminated_to_delete

from controller_harness import eventually, get_or_none, running

NODES, PODS = resource("nodes"), resource("pods")
FAST = Settings(pod_gc_period=0.1)
HOLD = "example.com/hold"


def condition_of(pod: dict, kind: str) -> dict | None:
    return next((c for c in (pod.get("status") or {}).get("conditions") or [] if c["type"] == kind), None)


async def make_node(client, ready: str = "True", taints=None) -> str:
    name = f"podgc-{uuid.uuid4().hex[:8]}"
    now = now_rfc3339()
    await client.create(NODES, {"metadata": {"name": name}, "spec": {"taints": taints or []},
                                "status": {"conditions": [{"type": "Ready", "status": ready, "reason": "Test",
                                                           "lastHeartbeatTime": now, "lastTransitionTime": now}]}})
    return name


async def make_pod(client, ns, name, *, node: str | None = None, phase: str | None = None,
                   reason: str | None = None, hold: bool = False) -> dict:
    meta: dict = {"name": name}
    if hold:
        meta["finalizers"] = [HOLD]
    spec: dict = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    pod = await client.create(PODS, {"metadata": meta, "spec": spec}, ns)
    if phase:
        pod["status"] = {"phase": phase, **({"reason": reason} if reason else {})}
        pod = await client.replace_status(PODS, pod)
    return pod


async def release(client, ns, *names: str) -> None:
    """Take the test's finalizer off, so the pods can go (and the namespace with them)."""
    for name in names:
        with contextlib.suppress(ApiError):
            await client.patch(PODS, name, {"metadata": {"finalizers": None}}, ns)


async def delete_nodes(client, *names: str) -> None:
    for name in names:
        with contextlib.suppress(ApiError):
            await client.delete(NODES, name)


def test_the_manager_finds_it_by_upstream_name():
    assert available_controllers()["pod-garbage-collector"] is PodGCController


async def test_pods_of_a_missing_node_are_failed_marked_and_force_deleted(client, ns):
    node = await make_node(client)
    missing = f"podgc-missing-{uuid.uuid4().hex[:8]}"
    try:
        await make_pod(client, ns, "kept", node=node, phase="Running")
        await make_pod(client, ns, "orphan", node=missing, phase="Running")
        await make_pod(client, ns, "orphan-held", node=missing, phase="Running", hold=True)
        await make_pod(client, ns, "done-held", node=missing, phase="Succeeded", hold=True)
        async with running(client, PodGCController, namespace=ns, settings=FAST):
            await eventually(lambda: _gone(client, ns, "orphan"), what="the orphan deleted")

            async def marked(name):
                pod = await client.get(PODS, name, ns)
                return pod if pod["metadata"].get("deletionTimestamp") else None
            held = await eventually(lambda: marked("orphan-held"), what="the held orphan terminating")
            assert held["status"]["phase"] == "Failed"
            target = condition_of(held, "DisruptionTarget")
            assert target is not None and target.get("lastTransitionTime")
            assert (target["status"], target["reason"], target["message"]) == (
                "True", "DeletionByPodGC", "PodGC: node no longer exists")
            assert held["metadata"]["deletionGracePeriodSeconds"] == 0
            # Already terminal: deleted as it is, neither re-marked nor given a condition.
            done = await eventually(lambda: marked("done-held"), what="the finished orphan terminating")
            assert done["status"]["phase"] == "Succeeded" and condition_of(done, "DisruptionTarget") is None

            # A pod of a node that exists is none of its business.
            await asyncio.sleep(0.3)
            kept = await client.get(PODS, "kept", ns)
            assert kept["status"]["phase"] == "Running" and not kept["metadata"].get("deletionTimestamp")

            # The finalizers were all that held them: off they go.
            await release(client, ns, "orphan-held", "done-held")
            await eventually(lambda: _gone(client, ns, "orphan-held"), what="the held orphan deleted")
            await eventually(lambda: _gone(client, ns, "done-held"), what="the finished orphan deleted")
    finally:
        await release(client, ns, "orphan-held", "done-held")
        await delete_nodes(client, node)


async def test_a_node_missing_only_from_the_cache_is_looked_up_before_its_pods_go(client, ns):
    node = await make_node(client)
    try:
        await make_pod(client, ns, "p", node=node, phase="Running")
        # One pass at the start, then passes only when the test calls gc().
        async with running(client, PodGCController, namespace=ns,
                           settings=Settings(pod_gc_period=3600)) as gc:
            gc.quarantine_time = 0
            await eventually(lambda: gc.pods.store.get(f"{ns}/p") and gc.nodes.store.get(node),
                             what="pod and node in the caches")
            gc.nodes.store.delete(node)      # the node informer lags behind: the node is not in its cache
            await gc.gc()
            pod = await client.get(PODS, "p", ns)
            assert pod["status"]["phase"] == "Running" and not pod["metadata"].get("deletionTimestamp")

            await client.delete(NODES, node)     # now it is gone for real
            await gc.gc()
            assert await _gone(client, ns, "p")
    finally:
        await delete_nodes(client, node)


async def test_terminating_pods_of_an_out_of_service_node_are_force_deleted(client, ns):
    out = await make_node(client, ready="False", taints=[{"key": TAINT_OUT_OF_SERVICE, "effect": "NoExecute"}])
    down = await make_node(client, ready="False")
    try:
        for name, node, hold in (("free", out, False), ("held", out, True), ("waiting", down, False)):
            await make_pod(client, ns, name, node=node, phase="Running", hold=hold)
            # A long grace period: left alone, the pod would wait 300 s for a node that never answers.
            await client.delete(PODS, name, ns, grace_period_seconds=300)
        await make_pod(client, ns, "serving", node=out, phase="Running")
        async with running(client, PodGCController, namespace=ns, settings=FAST):
            await eventually(lambda: _gone(client, ns, "free"), what="the terminating pod deleted")

            async def failed():
                pod = await client.get(PODS, "held", ns)
                return pod if pod["status"]["phase"] == "Failed" else None
            held = await eventually(failed, what="the held pod Failed")
            assert condition_of(held, "DisruptionTarget") is None      # as upstream: the phase only
            assert held["metadata"]["deletionGracePeriodSeconds"] == 0

            await asyncio.sleep(0.3)
            # On a node that is merely not Ready, a terminating pod waits for its node.
            waiting = await client.get(PODS, "waiting", ns)
            assert waiting["status"]["phase"] == "Running" and waiting["metadata"]["deletionGracePeriodSeconds"] == 300
            # A pod not being deleted stays, out of service or not.
            serving = await client.get(PODS, "serving", ns)
            assert serving["status"]["phase"] == "Running" and not serving["metadata"].get("deletionTimestamp")

            await release(client, ns, "held")
            await eventually(lambda: _gone(client, ns, "held"), what="the held pod deleted")
    finally:
        await release(client, ns, "held")
        for name in ("waiting", "serving"):
            with contextlib.suppress(ApiError):
                await client.delete(PODS, name, ns, grace_period_seconds=0)
        await delete_nodes(client, out, down)


async def test_unscheduled_terminating_pods_are_marked_failed_and_force_deleted(client, ns):
    try:
        await make_pod(client, ns, "unbound", hold=True)
        await make_pod(client, ns, "pending")
        # Unbound, it has no grace period: only the finalizer keeps it terminating.
        await client.delete(PODS, "unbound", ns)
        async with running(client, PodGCController, namespace=ns, settings=FAST):
            async def failed():
                pod = await client.get(PODS, "unbound", ns)
                return pod if pod["status"]["phase"] == "Failed" else None
            pod = await eventually(failed, what="the unscheduled terminating pod Failed")
            # The force delete cannot override a finalizer: the pod waits for it, as upstream.
            assert pod["metadata"]["deletionTimestamp"] and pod["metadata"]["finalizers"] == [HOLD]
            assert condition_of(pod, "DisruptionTarget") is None
            await asyncio.sleep(0.3)
            assert (await client.get(PODS, "unbound", ns))["metadata"]["finalizers"] == [HOLD]
            await release(client, ns, "unbound")
            await eventually(lambda: _gone(client, ns, "unbound"), what="the pod deleted")
            # An unscheduled pod not being deleted is the scheduler's, not the collector's.
            pending = await client.get(PODS, "pending", ns)
            assert pending["status"]["phase"] == "Pending" and not pending["metadata"].get("deletionTimestamp")
    finally:
        await release(client, ns, "unbound")


async def test_terminated_pods_beyond_the_threshold_go_oldest_first(client, ns):
    # Names against age: deleting by name would pick "a-mid" first, by age "z-old".
    await make_pod(client, ns, "z-old", phase="Failed")
    await asyncio.sleep(1.05)            # creationTimestamps have whole seconds
    await make_pod(client, ns, "a-mid", phase="Succeeded")
    await make_pod(client, ns, "b-new", phase="Failed")
    await make_pod(client, ns, "pending")       # not terminated: not counted
    async with running(client, PodGCController, namespace=ns,
                       settings=Settings(pod_gc_period=0.1, terminated_pod_gc_threshold=2)):
        await eventually(lambda: _gone(client, ns, "z-old"), what="the oldest terminated pod deleted")
        await asyncio.sleep(0.4)
        left = {p["metadata"]["name"] for p in (await client.list(PODS, ns))["items"]}
        assert left == {"a-mid", "b-new", "pending"}


async def test_a_threshold_of_zero_keeps_every_terminated_pod(client, ns):
    for name, phase in (("one", "Failed"), ("two", "Succeeded"), ("three", "Failed")):
        await make_pod(client, ns, name, phase=phase)
    async with running(client, PodGCController, namespace=ns,
                       settings=Settings(pod_gc_period=0.05, terminated_pod_gc_threshold=0)) as gc:
        await asyncio.sleep(0.5)
        await gc.gc()
        left = {p["metadata"]["name"] for p in (await client.list(PODS, ns))["items"]}
        assert left == {"one", "two", "three"}


def test_terminated_pods_go_evicted_first_then_oldest_then_by_name():
    def pod(name, phase, created, reason=None):
        status = {"phase": phase, **({"reason": reason} if reason else {})}
        return {"metadata": {"name": name, "creationTimestamp": created}, "status": status}
    pods = [pod("running", "Running", "2020-01-01T00:00:00Z"),
            pod("b", "Succeeded", "2021-01-01T00:00:00Z"),
            pod("a", "Failed", "2021-01-01T00:00:00Z"),
            pod("old", "Failed", "2020-06-01T00:00:00Z"),
            pod("evicted", "Failed", "2022-01-01T00:00:00Z", reason="Evicted"),
            pod("newest", "Succeeded", "2023-01-01T00:00:00Z")]
    names = [p["metadata"]["name"] for p in terminated_to_delete(pods, 1)]
    assert names == ["evicted", "old", "a", "b"]
    assert [p["metadata"]["name"] for p in terminated_to_delete(pods, 4)] == ["evicted"]
    assert terminated_to_delete(pods, 5) == [] and terminated_to_delete(pods, 0) == []


async def _gone(client, ns, name) -> bool:
    return await get_or_none(client, PODS, name, ns) is None
