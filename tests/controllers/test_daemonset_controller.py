"""The DaemonSet controller on the real API server, with nodes made by the test (as kwok does) and the test
playing the kubelet. DaemonSets select the test's nodes by a unique label, so other nodes never count."""
from __future__ import annotations

import asyncio
import contextlib
import uuid

from boxkube.client import ApiError, resource
from boxkube.controllers.daemonset import DaemonSetController, daemon_pod_spec, node_should_run, target_node

from controller_harness import FakeKubelet, eventually, running, running_and_ready

DS, PODS, NODES, REVISIONS = (resource("daemonsets"), resource("pods"), resource("nodes"),
                              resource("controllerrevisions"))


class Nodes:
    """Nodes labelled for one test; deleted after it."""

    def __init__(self, client):
        self.client, self.label, self.made = client, uuid.uuid4().hex[:8], []

    async def add(self, taints=None, labelled=True) -> str:
        name = f"ds-{self.label}-{len(self.made)}"
        labels = {"ds-test": self.label} if labelled else {}
        await self.client.create(NODES, {"metadata": {"name": name, "labels": labels},
                                         "spec": {"taints": taints or []}})
        self.made.append(name)
        return name

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        for name in self.made:
            with contextlib.suppress(ApiError):
                await self.client.delete(NODES, name)


def daemonset(name, label, image="agent:1", **spec):
    return {"metadata": {"name": name}, "spec": {
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}},
                     "spec": {"nodeSelector": {"ds-test": label}, "terminationGracePeriodSeconds": 0,
                              "containers": [{"name": "c", "image": image}]}}, **spec}}


async def placed(client, ns, name, nodes: set[str], image=None):
    """One ready pod on each of `nodes` and none elsewhere, and a status that says so."""
    pods = [p for p in (await client.list(PODS, ns, label_selector=f"app={name}"))["items"]
            if not p["metadata"].get("deletionTimestamp")]
    by_node = {target_node(p): p for p in pods}
    if len(pods) != len(nodes) or set(by_node) != nodes or not all(running_and_ready(p) for p in pods):
        return None
    if image and any(p["spec"]["containers"][0]["image"] != image for p in pods):
        return None
    ds = await client.get(DS, name, ns)
    status = ds.get("status") or {}
    n = len(nodes)
    if (status.get("observedGeneration"), status.get("desiredNumberScheduled"), status.get("currentNumberScheduled"),
            status.get("numberReady"), status.get("numberAvailable"), status.get("updatedNumberScheduled"),
            status.get("numberMisscheduled")) != (ds["metadata"]["generation"], n, n, n, n, n, 0):
        return None
    return ds, by_node


async def test_one_pod_per_eligible_node_following_nodes(client, ns):
    async with Nodes(client) as nodes, FakeKubelet(client, ns), running(client, DaemonSetController):
        a, b = await nodes.add(), await nodes.add()
        await nodes.add(taints=[{"key": "example.com/special", "effect": "NoSchedule"}])        # not tolerated
        troubled = await nodes.add(taints=[{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}])
        await nodes.add(labelled=False)
        await client.create(DS, daemonset("agent", nodes.label), ns)
        ds, by_node = await eventually(lambda: placed(client, ns, "agent", {a, b, troubled}))
        pod = by_node[a]
        assert "nodeName" not in pod["spec"]      # the scheduler binds it
        assert pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == {
            "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [a]}]}]}
        tolerations = {(t.get("key"), t.get("effect")) for t in pod["spec"]["tolerations"]}
        assert {("node.kubernetes.io/not-ready", "NoExecute"), ("node.kubernetes.io/unreachable", "NoExecute"),
                ("node.kubernetes.io/disk-pressure", "NoSchedule"),
                ("node.kubernetes.io/unschedulable", "NoSchedule")} <= tolerations
        revisions = (await client.list(REVISIONS, ns))["items"]
        assert len(revisions) == 1
        hash_ = revisions[0]["metadata"]["labels"]["controller-revision-hash"]
        assert revisions[0]["metadata"]["name"] == f"agent-{hash_}"
        assert pod["metadata"]["labels"]["controller-revision-hash"] == hash_
        assert pod["metadata"]["labels"]["pod-template-generation"] == "1"
        assert pod["metadata"]["generateName"] == "agent-"

        c = await nodes.add()                       # a new node gets its pod
        await eventually(lambda: placed(client, ns, "agent", {a, b, troubled, c}))
        await client.delete(NODES, a)               # a node that goes loses it
        await client.patch(NODES, b, {"metadata": {"labels": {"ds-test": None}}})   # no longer eligible
        await eventually(lambda: placed(client, ns, "agent", {troubled, c}))
        events = (await client.list(resource("events"), ns))["items"]
        messages = {e["message"] for e in events if e["involvedObject"]["name"] == "agent"}
        assert f"Created pod: {pod['metadata']['name']}" in messages
        assert f"Deleted pod: {pod['metadata']['name']}" in messages


class Availability:
    """Watches a DaemonSet's pods; after `start()`, tracks the fewest nodes with an available pod
    and the most pods at once."""

    def __init__(self, client, ns, name):
        self.client, self.ns, self.name = client, ns, name
        self.pods: dict[str, dict] = {}
        self.min_available, self.max_pods, self.counting = None, 0, False

    async def _watch(self):
        async with self.client.watch(PODS, self.ns, label_selector=f"app={self.name}") as events:
            async for kind, pod in events:
                if kind == "DELETED":
                    self.pods.pop(pod["metadata"]["uid"], None)
                else:
                    self.pods[pod["metadata"]["uid"]] = pod
                if self.counting:
                    live = [p for p in self.pods.values() if not p["metadata"].get("deletionTimestamp")]
                    available = {target_node(p) for p in live if running_and_ready(p)}
                    self.max_pods = max(self.max_pods, len(live))
                    self.min_available = len(available) if self.min_available is None else min(
                        self.min_available, len(available))

    async def __aenter__(self):
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *exc):
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def _update_image(client, ns, name, image):
    await client.patch(DS, name, {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}},
                       ns, patch_type="strategic")


async def test_rolling_update_keeps_within_max_unavailable(client, ns):
    async with Nodes(client) as nodes, FakeKubelet(client, ns, delay=0.2), running(client, DaemonSetController), \
            Availability(client, ns, "roll") as watch:
        names = {await nodes.add() for _ in range(3)}
        await client.create(DS, daemonset("roll", nodes.label, updateStrategy={
            "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}), ns)
        await eventually(lambda: placed(client, ns, "roll", names))
        await asyncio.sleep(0.2)
        watch.counting = True
        await _update_image(client, ns, "roll", "agent:2")
        ds, _ = await eventually(lambda: placed(client, ns, "roll", names, image="agent:2"), timeout=15)
        assert watch.min_available == 2 and watch.max_pods <= 3
        assert len((await client.list(REVISIONS, ns))["items"]) == 2


async def test_surge_starts_the_new_pod_before_the_old_goes(client, ns):
    async with Nodes(client) as nodes, FakeKubelet(client, ns, delay=0.2), running(client, DaemonSetController), \
            Availability(client, ns, "surge") as watch:
        names = {await nodes.add() for _ in range(3)}
        await client.create(DS, daemonset("surge", nodes.label, updateStrategy={
            "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}), ns)
        await eventually(lambda: placed(client, ns, "surge", names))
        await asyncio.sleep(0.2)
        watch.counting = True
        await _update_image(client, ns, "surge", "agent:2")
        await eventually(lambda: placed(client, ns, "surge", names, image="agent:2"), timeout=15)
        assert watch.min_available == 3 and watch.max_pods == 4


async def test_on_delete_replaces_only_deleted_pods(client, ns):
    async with Nodes(client) as nodes, FakeKubelet(client, ns), running(client, DaemonSetController):
        a, b = await nodes.add(), await nodes.add()
        await client.create(DS, daemonset("od", nodes.label, updateStrategy={"type": "OnDelete"}), ns)
        _, by_node = await eventually(lambda: placed(client, ns, "od", {a, b}))
        await _update_image(client, ns, "od", "agent:2")
        await asyncio.sleep(0.5)
        pods = (await client.list(PODS, ns, label_selector="app=od"))["items"]
        assert {p["spec"]["containers"][0]["image"] for p in pods} == {"agent:1"}
        await client.delete(PODS, by_node[a]["metadata"]["name"], ns)

        async def replaced():
            pods = (await client.list(PODS, ns, label_selector="app=od"))["items"]
            images = {target_node(p): p["spec"]["containers"][0]["image"] for p in pods if running_and_ready(p)}
            return images == {a: "agent:2", b: "agent:1"}
        await eventually(replaced)
        ds = await client.get(DS, "od", ns)
        await eventually(lambda: _updated_count(client, ns, "od", 1))
        assert ds["spec"]["updateStrategy"]["type"] == "OnDelete"


async def _updated_count(client, ns, name, n):
    return ((await client.get(DS, name, ns)).get("status") or {}).get("updatedNumberScheduled") == n


def test_eligibility_by_selector_affinity_and_taints():
    ds = daemonset("x", "l")
    node = {"metadata": {"name": "n", "labels": {"ds-test": "l"}}, "spec": {}}
    assert node_should_run(node, ds) == (True, True)
    assert node_should_run({**node, "metadata": {"name": "n", "labels": {}}}, ds) == (False, False)
    no_schedule = {**node, "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}}
    assert node_should_run(no_schedule, ds) == (False, True)      # may keep a pod it has
    no_execute = {**node, "spec": {"taints": [{"key": "k", "effect": "NoExecute"}]}}
    assert node_should_run(no_execute, ds) == (False, False)
    unschedulable = {**node, "spec": {"taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]}}
    assert node_should_run(unschedulable, ds) == (True, True)
    host_network = daemon_pod_spec({"hostNetwork": True})
    assert {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists",
            "effect": "NoSchedule"} in host_network["tolerations"]
