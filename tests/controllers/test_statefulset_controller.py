"""The StatefulSet controller on the real API server, with the test playing the kubelet (pods become Running
and Ready when the test says so)."""
from __future__ import annotations

import asyncio
import contextlib
import os
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from boxkube.client import ApiClient, ApiError, resource
from boxkube.controllers.statefulset import POD_INDEX_LABEL, POD_NAME_LABEL, StatefulSetController

from controller_harness import FakeKubelet, eventually, running, running_and_ready

STS, PODS, REVISIONS, EVENTS = (resource("statefulsets"), resource("pods"), resource("controllerrevisions"),
                                resource("events"))
NAMESPACES = resource("namespaces")
HOLD = "test.boxkube.dev/not-ready"      # the fake kubelet leaves pods with this annotation Pending


def kubelet(client, ns):
    """Makes every new pod of `ns` Running and Ready, unless it carries the HOLD annotation."""
    return FakeKubelet(client, ns, hold_annotation=HOLD)


class PodLog:
    """Every pod event of a namespace, in order, from one watch."""

    def __init__(self, client, ns):
        self.client, self.ns, self.events = client, ns, []

    async def _watch(self):
        async with self.client.watch(PODS, self.ns) as events:
            async for kind, pod in events:
                self.events.append((kind, pod))

    async def __aenter__(self):
        self._task = asyncio.create_task(self._watch())
        await asyncio.sleep(0.1)
        return self

    async def __aexit__(self, *exc):
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def names(self, kind):
        return [p["metadata"]["name"] for k, p in self.events if k == kind]

    def check_created_in_order(self, start=0):
        """Each pod was created only once every lower ordinal existed Running and Ready (OrderedReady)."""
        live: dict[str, dict] = {}
        for kind, pod in self.events:
            name = pod["metadata"]["name"]
            if kind == "ADDED":
                prefix, ordinal = name.rsplit("-", 1)
                for lower in range(start, int(ordinal)):
                    other = live.get(f"{prefix}-{lower}")
                    assert other is not None and running_and_ready(other), f"{name} created before {prefix}-{lower} was ready"
            if kind == "DELETED":
                live.pop(name, None)
            else:
                live[name] = pod


def statefulset(name, replicas, image="nginx:1", **spec):
    return {"metadata": {"name": name}, "spec": {
        "replicas": replicas, "serviceName": name, "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}},
                     "spec": {"terminationGracePeriodSeconds": 0,
                              "containers": [{"name": "c", "image": image}]}}, **spec}}


async def pods_of(client, ns, name):
    pods = (await client.list(PODS, ns, label_selector=f"app={name}"))["items"]
    return {p["metadata"]["name"]: p for p in pods}


async def settled(client, ns, name, expected: set[str], image=None):
    """The set's pods are exactly `expected`, all ready (and at `image`), and its status says so."""
    sts = await client.get(STS, name, ns)
    pods = await pods_of(client, ns, name)
    if set(pods) != expected or not all(running_and_ready(p) and not p["metadata"].get("deletionTimestamp")
                                        for p in pods.values()):
        return None
    if image and any(p["spec"]["containers"][0]["image"] != image for p in pods.values()):
        return None
    status = sts.get("status") or {}
    if status.get("observedGeneration") != sts["metadata"]["generation"] or status.get("readyReplicas", 0) != len(
            expected) or status.get("replicas") != len(expected):
        return None
    return sts, pods


async def test_ordered_ready_creates_in_order_with_stable_identity_and_scales_down_in_reverse(client, ns):
    async with kubelet(client, ns), PodLog(client, ns) as log, running(client, StatefulSetController):
        await client.create(STS, statefulset("web", 3), ns)
        sts, pods = await eventually(lambda: settled(client, ns, "web", {"web-0", "web-1", "web-2"}))
        assert log.names("ADDED") == ["web-0", "web-1", "web-2"]
        log.check_created_in_order()
        status = sts["status"]
        assert status["currentRevision"] == status["updateRevision"]
        assert (status["replicas"], status["readyReplicas"], status["currentReplicas"], status["updatedReplicas"],
                status["availableReplicas"], status["collisionCount"]) == (3, 3, 3, 3, 3, 0)
        for ordinal in range(3):
            pod = pods[f"web-{ordinal}"]
            assert pod["metadata"]["labels"][POD_NAME_LABEL] == f"web-{ordinal}"
            assert pod["metadata"]["labels"][POD_INDEX_LABEL] == str(ordinal)
            assert pod["metadata"]["labels"]["controller-revision-hash"] == status["updateRevision"]
            assert (pod["spec"]["hostname"], pod["spec"]["subdomain"]) == (f"web-{ordinal}", "web")
            assert pod["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"
        revisions = (await client.list(REVISIONS, ns))["items"]
        assert [(r["metadata"]["name"], r["revision"]) for r in revisions] == [(status["updateRevision"], 1)]

        await client.scale(STS, "web", 1, ns)
        await eventually(lambda: settled(client, ns, "web", {"web-0"}))
        assert log.names("DELETED") == ["web-2", "web-1"]
        messages = [e["message"] for e in (await client.list(EVENTS, ns))["items"]
                    if e["involvedObject"]["name"] == "web"]
        assert "create Pod web-0 in StatefulSet web successful" in messages
        assert "delete Pod web-2 in StatefulSet web successful" in messages


async def test_rolling_update_from_the_top_down_to_the_partition(client, ns):
    async with kubelet(client, ns), PodLog(client, ns) as log, running(client, StatefulSetController):
        spec = statefulset("db", 3, updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 1}})
        await client.create(STS, spec, ns)
        sts, _ = await eventually(lambda: settled(client, ns, "db", {"db-0", "db-1", "db-2"}))
        first = sts["status"]["updateRevision"]
        await client.patch(STS, "db", {"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "nginx:2"}]}}}}, ns, patch_type="strategic")

        async def partly_updated():
            got = await settled(client, ns, "db", {"db-0", "db-1", "db-2"})
            if got is None:
                return None
            images = {n: p["spec"]["containers"][0]["image"] for n, p in got[1].items()}
            return got if images == {"db-0": "nginx:1", "db-1": "nginx:2", "db-2": "nginx:2"} else None
        sts, pods = await eventually(partly_updated)
        assert log.names("DELETED") == ["db-2", "db-1"]
        status = sts["status"]
        assert status["currentRevision"] == first != status["updateRevision"]
        assert (status["currentReplicas"], status["updatedReplicas"]) == (1, 2)
        assert pods["db-0"]["metadata"]["labels"]["controller-revision-hash"] == first

        await client.patch(STS, "db", {"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}}, ns)
        sts, _ = await eventually(lambda: settled(client, ns, "db", {"db-0", "db-1", "db-2"}, image="nginx:2"))
        status = sts["status"]
        assert status["currentRevision"] == status["updateRevision"] != first
        assert status["currentReplicas"] == status["updatedReplicas"] == 3
        # Back to the first template: its revision is renumbered instead of copied.
        await client.patch(STS, "db", {"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "nginx:1"}]}}}}, ns, patch_type="strategic")
        sts, _ = await eventually(lambda: settled(client, ns, "db", {"db-0", "db-1", "db-2"}, image="nginx:1"))
        assert sts["status"]["updateRevision"] == first
        numbers = {r["metadata"]["name"]: r["revision"] for r in (await client.list(REVISIONS, ns))["items"]}
        assert numbers[first] == 3 and len(numbers) == 2


async def test_parallel_on_delete_and_start_ordinal(client, ns):
    async with kubelet(client, ns), running(client, StatefulSetController):
        spec = statefulset("par", 3, podManagementPolicy="Parallel", updateStrategy={"type": "OnDelete"},
                           ordinals={"start": 5})
        spec["spec"]["template"]["metadata"]["annotations"] = {HOLD: "yes"}
        await client.create(STS, spec, ns)
        # Parallel: all made at once, though none is ready.
        pods = await eventually(lambda: _names_are(client, ns, "par", {"par-5", "par-6", "par-7"}))
        assert not any(running_and_ready(p) for p in pods.values())
        await client.patch(STS, "par", {"spec": {"template": {"metadata": {"annotations": {HOLD: None}},
                                                              "spec": {"containers": [
                                                                  {"name": "c", "image": "nginx:2"}]}}}},
                           ns, patch_type="strategic")
        await asyncio.sleep(0.5)     # OnDelete: nothing replaced
        pods = await pods_of(client, ns, "par")
        assert {p["spec"]["containers"][0]["image"] for p in pods.values()} == {"nginx:1"}
        await client.delete(PODS, "par-6", ns)

        async def replaced():
            pods = await pods_of(client, ns, "par")
            new = pods.get("par-6")
            return new if new and new["spec"]["containers"][0]["image"] == "nginx:2" else None
        await eventually(replaced)


async def _names_are(client, ns, name, expected):
    pods = await pods_of(client, ns, name)
    return pods if set(pods) == expected else None


async def test_a_failed_pod_is_recreated_after_it_is_gone(client, ns):
    async with kubelet(client, ns), running(client, StatefulSetController):
        await client.create(STS, statefulset("fl", 2), ns)
        _, pods = await eventually(lambda: settled(client, ns, "fl", {"fl-0", "fl-1"}))
        failed = pods["fl-1"]
        failed["status"]["phase"] = "Failed"
        await client.replace_status(PODS, failed)

        async def new_pod():
            got = await settled(client, ns, "fl", {"fl-0", "fl-1"})
            return got if got and got[1]["fl-1"]["metadata"]["uid"] != failed["metadata"]["uid"] else None
        await eventually(new_pod)
        reasons = {e["reason"] for e in (await client.list(EVENTS, ns))["items"]}
        assert "RecreatingFailedPod" in reasons


# -- property: random scaling and pod deletions --------------------------------------------------

EXAMPLES = int(os.environ.get("BOXKUBE_HYPOTHESIS_EXAMPLES", "3"))
operations = st.lists(st.one_of(st.tuples(st.just("scale"), st.integers(0, 4)),
                                st.tuples(st.just("delete"), st.integers(0, 3))), min_size=1, max_size=5)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(ops=operations)
def test_random_scaling_and_deletions_keep_ordinals_unique_and_ordered(cluster, ops):
    asyncio.run(_scale_and_delete(cluster, ops))


async def _scale_and_delete(cluster, ops):
    async with ApiClient.from_kubeconfig(str(cluster.kubeconfig)) as client:
        ns = f"sts-{uuid.uuid4().hex[:8]}"
        await client.create(NAMESPACES, {"metadata": {"name": ns}})
        try:
            async with kubelet(client, ns), PodLog(client, ns) as log, running(client, StatefulSetController):
                replicas = 2
                await client.create(STS, statefulset("p", replicas), ns)
                await eventually(lambda: settled(client, ns, "p", {f"p-{i}" for i in range(replicas)}))
                for op, n in ops:
                    if op == "scale":
                        replicas = n
                        await client.scale(STS, "p", n, ns)
                    else:
                        with contextlib.suppress(ApiError):
                            await client.delete(PODS, f"p-{n}", ns)
                    await eventually(lambda: settled(client, ns, "p", {f"p-{i}" for i in range(replicas)}))
                log.check_created_in_order()
                # One watch saw every pod: never two of one ordinal alive at once.
                alive: dict[str, str] = {}
                for kind, pod in log.events:
                    name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
                    if kind == "DELETED":
                        alive.pop(name, None)
                    else:
                        assert alive.setdefault(name, uid) == uid, f"two pods named {name} at once"
        finally:
            await client.delete(NAMESPACES, ns)
