"""The ReplicaSet controller, run in-process against the real API server (no scheduler or node agents:
pods are made Ready here by writing their status through pods/status)."""
from __future__ import annotations

import asyncio
import json

from boxkube.api.times import now_rfc3339
from boxkube.client import resource
from boxkube.controllers.ownership import controller_of
from boxkube.controllers.replicaset import ReplicaSetController

from controller_harness import eventually, running

PODS, RS = resource("pods"), resource("replicasets")


def replica_set(name, replicas, labels=None, selector=None, **spec):
    labels = labels or {"app": name}
    return {"metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": selector or labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}, **spec}}


async def live_pods(client, ns, **selectors):
    return [p for p in (await client.list(PODS, ns, **selectors))["items"] if not p["metadata"].get("deletionTimestamp")]


async def count_is(client, ns, n, label_selector=""):
    pods = await live_pods(client, ns, label_selector=label_selector)
    return pods if len(pods) == n else False


async def set_ready(client, ns, name, ready=True, at=None):
    """What a node agent would report: Running, and Ready since `at` (default now)."""
    status = {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": at or now_rfc3339()}]}
    await client.patch_status(PODS, name, {"status": status}, ns)


async def status_is(client, ns, name, rt=RS, **wanted):
    obj = await client.get(rt, name, ns)
    status = obj.get("status") or {}
    return obj if all(status.get(k, 0) == v for k, v in wanted.items()) else False


async def test_keeps_the_count_through_scaling_and_pod_deletion(client, ns):
    async with running(client, ReplicaSetController, namespace=ns):
        rs = await client.create(RS, replica_set("web", 3), ns)
        pods = await eventually(lambda: count_is(client, ns, 3))
        for pod in pods:
            assert pod["metadata"]["generateName"] == "web-" and pod["metadata"]["labels"] == {"app": "web"}
            assert controller_of(pod) == {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                                          "uid": rs["metadata"]["uid"], "controller": True,
                                          "blockOwnerDeletion": True}
        await eventually(lambda: status_is(client, ns, "web", replicas=3, fullyLabeledReplicas=3,
                                           observedGeneration=1, terminatingReplicas=0))
        await client.scale(RS, "web", 5, ns)
        await eventually(lambda: count_is(client, ns, 5))
        await client.scale(RS, "web", 2, ns)
        await eventually(lambda: count_is(client, ns, 2))
        survivor = (await live_pods(client, ns))[0]
        await client.delete(PODS, survivor["metadata"]["name"], ns)
        healed = await eventually(lambda: count_is(client, ns, 2))
        assert survivor["metadata"]["uid"] not in {p["metadata"]["uid"] for p in healed}
        await eventually(lambda: status_is(client, ns, "web", replicas=2, observedGeneration=3))


async def test_never_creates_twice_under_a_burst_of_syncs(client, ns):
    seen: set[str] = set()

    async def watch_pods():
        async with client.watch(PODS, ns) as events:
            async for kind, pod in events:
                if kind == "ADDED":
                    seen.add(pod["metadata"]["uid"])

    watcher = asyncio.create_task(watch_pods())
    try:
        async with running(client, ReplicaSetController, namespace=ns) as controller:
            async def lag(*_):
                await asyncio.sleep(0.02)     # the pod cache falls behind the API server by ~1 s
            controller.pods.add_event_handler(on_add=lag)
            await client.create(RS, replica_set("burst", 50), ns)
            # Every write to the ReplicaSet queues another sync while its cache still misses pods.
            for i in range(20):
                await client.patch(RS, "burst", {"metadata": {"annotations": {"poke": str(i)}}}, ns)
                await asyncio.sleep(0.05)
            await eventually(lambda: count_is(client, ns, 50))
            await eventually(lambda: status_is(client, ns, "burst", replicas=50))
            await asyncio.sleep(0.5)        # room for a mistaken extra create to show up
        assert len(seen) == 50
        assert len(await live_pods(client, ns)) == 50
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


async def test_scale_down_deletes_unscheduled_and_unready_pods_first(client, ns):
    async with running(client, ReplicaSetController, namespace=ns):
        await client.create(RS, replica_set("pick", 4), ns)
        pods = await eventually(lambda: count_is(client, ns, 4))
        names = sorted(p["metadata"]["name"] for p in pods)
        for name in names[:3]:
            await client.bind(name, ns, "node-a")
        await set_ready(client, ns, names[0])
        await set_ready(client, ns, names[1])
        await client.scale(RS, "pick", 2, ns)
        kept = await eventually(lambda: count_is(client, ns, 2))
        # The unscheduled pod goes first, then the scheduled one that is not ready.
        assert sorted(p["metadata"]["name"] for p in kept) == names[:2]


async def test_adopts_orphans_and_releases_pods_that_stop_matching(client, ns):
    orphan = await client.create(PODS, {"metadata": {"name": "orphan", "labels": {"app": "web"}},
                                        "spec": {"containers": [{"name": "c", "image": "nginx"}]}}, ns)
    async with running(client, ReplicaSetController, namespace=ns):
        template_labels = {"app": "web", "tier": "front"}
        rs = await client.create(RS, replica_set("web", 2, labels=template_labels, selector={"app": "web"}), ns)
        pods = await eventually(lambda: count_is(client, ns, 2))
        adopted = next(p for p in pods if p["metadata"]["name"] == "orphan")
        assert controller_of(adopted)["uid"] == rs["metadata"]["uid"]
        assert adopted["metadata"]["uid"] == orphan["metadata"]["uid"]
        # The adopted orphan lacks the template's tier label: not fully labelled.
        await eventually(lambda: status_is(client, ns, "web", replicas=2, fullyLabeledReplicas=1))

        await client.patch(PODS, "orphan", {"metadata": {"labels": {"app": "elsewhere"}}}, ns)

        async def released():
            pod = await client.get(PODS, "orphan", ns)
            return controller_of(pod) is None
        await eventually(released)
        await eventually(lambda: count_is(client, ns, 2, "app=web"))
        await eventually(lambda: status_is(client, ns, "web", replicas=2, fullyLabeledReplicas=2))


async def test_a_replicaset_being_deleted_adopts_nothing(client, ns):
    async with running(client, ReplicaSetController, namespace=ns):
        held = replica_set("held", 0)
        held["metadata"]["finalizers"] = ["example.com/hold"]
        await client.create(RS, held, ns)
        await client.delete(RS, "held", ns)
        await client.create(PODS, {"metadata": {"name": "stray", "labels": {"app": "held"}},
                                   "spec": {"containers": [{"name": "c", "image": "nginx"}]}}, ns)
        await asyncio.sleep(0.5)
        assert controller_of(await client.get(PODS, "stray", ns)) is None
        await client.patch(RS, "held", {"metadata": {"finalizers": None}}, ns)


async def test_ready_and_available_counts_follow_min_ready_seconds(client, ns):
    async with running(client, ReplicaSetController, namespace=ns):
        await client.create(RS, replica_set("slow", 2, minReadySeconds=3), ns)
        pods = await eventually(lambda: count_is(client, ns, 2))
        for pod in pods:
            await set_ready(client, ns, pod["metadata"]["name"])
        ready = await eventually(lambda: status_is(client, ns, "slow", replicas=2, readyReplicas=2))
        assert ready["status"].get("availableReplicas", 0) == 0
        # No pod changes from here: the controller must come back by itself once minReadySeconds pass.
        await eventually(lambda: status_is(client, ns, "slow", availableReplicas=2), timeout=8)


async def test_terminating_pods_are_replaced_and_counted(client, ns):
    async with running(client, ReplicaSetController, namespace=ns):
        await client.create(RS, replica_set("term", 2), ns)
        pods = await eventually(lambda: count_is(client, ns, 2))
        victim = pods[0]["metadata"]["name"]
        await client.bind(victim, ns, "node-a")          # a bound pod is deleted gracefully
        await client.delete(PODS, victim, ns)
        await eventually(lambda: count_is(client, ns, 2))
        await eventually(lambda: status_is(client, ns, "term", replicas=2, terminatingReplicas=1))
        await client.delete(PODS, victim, ns, grace_period_seconds=0)
        await eventually(lambda: status_is(client, ns, "term", replicas=2, terminatingReplicas=0))


async def test_failed_creates_set_replica_failure_until_they_succeed(client, ns):
    async with running(client, ReplicaSetController, namespace=ns):
        bad = replica_set("bad", 3)
        bad["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx "   # refused for pods only
        await client.create(RS, bad, ns)

        async def failing():
            status = (await client.get(RS, "bad", ns)).get("status") or {}
            return [c for c in status.get("conditions") or [] if c["type"] == "ReplicaFailure"]
        [cond] = await eventually(failing)
        assert cond["status"] == "True" and cond["reason"] == "FailedCreate"
        assert "must not have leading or trailing whitespace" in cond["message"]
        await client.patch(RS, "bad", {"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "nginx"}]}}}}, ns, patch_type="strategic")
        await eventually(lambda: count_is(client, ns, 3), timeout=15)
        await eventually(lambda: _no_failure(client, ns), timeout=15)


async def _no_failure(client, ns):
    status = (await client.get(RS, "bad", ns)).get("status") or {}
    return status.get("replicas") == 3 and not status.get("conditions")


async def test_kubectl_scale_and_describe_show_the_controllers_work(cluster, client, ns):
    async with running(client, ReplicaSetController, namespace=ns) as controller:
        await client.create(RS, replica_set("shop", 1), ns)
        await eventually(lambda: count_is(client, ns, 1))
        cluster.kubectl("scale", "rs/shop", "--replicas=3", "-n", ns)
        await eventually(lambda: count_is(client, ns, 3))
        cluster.kubectl("scale", "rs/shop", "--replicas=1", "-n", ns)
        await eventually(lambda: count_is(client, ns, 1))
        await eventually(lambda: status_is(client, ns, "shop", replicas=1, observedGeneration=3))
        await controller.recorder.flush()
    described = cluster.kubectl("describe", "rs", "shop", "-n", ns).stdout
    assert "1 current / 1 desired" in described
    assert "SuccessfulCreate" in described and "Created pod: shop-" in described
    assert "SuccessfulDelete" in described and "Deleted pod: shop-" in described
    assert "replicaset-controller" in described
    got = json.loads(cluster.kubectl("get", "rs", "shop", "-n", ns, "-o", "json").stdout)
    assert got["status"]["replicas"] == 1 and got["spec"]["replicas"] == 1

