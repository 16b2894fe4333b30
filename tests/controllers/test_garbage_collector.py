"""The garbage collector live on the real API server: background, foreground and orphan propagation as the
real kubectl (`delete --cascade=...`) and the official client (`propagation_policy`) ask for them."""
from __future__ import annotations

import asyncio

import pytest

from boxkube.client import resource
from boxkube.controllers.garbagecollector import GarbageCollector
from boxkube.controllers.ownership import controller_ref

from controller_harness import eventually, get_or_none, running

PODS, CONFIGMAPS = resource("pods"), resource("configmaps")
REPLICASETS, DEPLOYMENTS = resource("replicasets"), resource("deployments")
HOLD = "test.boxkube.dev/hold"


def workload(name: str) -> dict:
    labels = {"app": name}
    return {"metadata": {"name": name, "labels": labels},
            "spec": {"replicas": 0, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}}}


async def make(client, rt, ns, name, *owners, finalizers=(), block=True, **extra):
    """An object owned by `owners` (created objects; the first is its controller)."""
    refs = []
    for i, owner in enumerate(owners):
        ref = controller_ref(owner, owner["apiVersion"], owner["kind"])
        ref["controller"], ref["blockOwnerDeletion"] = i == 0, block
        refs.append(ref)
    body = workload(name) if rt in (REPLICASETS, DEPLOYMENTS) else \
        {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}} if rt is PODS else \
        {"metadata": {"name": name}, "data": {"k": "v"}}
    body["metadata"].update(ownerReferences=refs, finalizers=list(finalizers), **extra)
    created = await client.create(rt, body, ns)
    created.setdefault("apiVersion", rt.group_version)
    created.setdefault("kind", rt.kind)
    return created


async def wait_gone(client, ns, *objects):
    async def check():
        for rt, name in objects:
            if await get_or_none(client, rt, name, ns) is not None:
                return False
        return True
    await eventually(check)


def owner_uids(obj):
    return [r["uid"] for r in obj["metadata"].get("ownerReferences") or []]


async def test_background_deletes_dependents_and_keeps_those_with_another_owner(client, ns, cluster):
    async with running(client, GarbageCollector, namespace=ns):
        rs = await make(client, REPLICASETS, ns, "rs-bg")
        keeper = await make(client, CONFIGMAPS, ns, "keeper")
        for name in ("p1", "p2"):
            await make(client, PODS, ns, name, rs)
        shared = await make(client, PODS, ns, "shared", rs, keeper)
        await asyncio.to_thread(cluster.kubectl, "delete", "replicaset", "rs-bg", "-n", ns, "--cascade=background")
        await wait_gone(client, ns, (PODS, "p1"), (PODS, "p2"))

        async def kept_without_reference():
            pod = await get_or_none(client, PODS, "shared", ns)
            return pod if pod and owner_uids(pod) == [keeper["metadata"]["uid"]] else None
        pod = await eventually(kept_without_reference)
        assert pod["metadata"]["uid"] == shared["metadata"]["uid"]


async def test_foreground_with_kubectl_deletes_the_whole_chain_first(client, ns, cluster):
    async with running(client, GarbageCollector, namespace=ns):
        deploy = await make(client, DEPLOYMENTS, ns, "web")
        rs = await make(client, REPLICASETS, ns, "web-1", deploy)
        for name in ("web-1-a", "web-1-b"):
            await make(client, PODS, ns, name, rs)
        # kubectl waits for the Deployment to be gone, which it is only after its dependents.
        result = await asyncio.to_thread(cluster.kubectl, "delete", "deployment", "web", "-n", ns,
                                         "--cascade=foreground", "--timeout=20s")
        assert 'deployment.apps "web" deleted' in result.stdout
        for rt, name in ((DEPLOYMENTS, "web"), (REPLICASETS, "web-1"), (PODS, "web-1-a"), (PODS, "web-1-b")):
            assert await get_or_none(client, rt, name, ns) is None


async def test_foreground_owner_waits_for_blocking_dependents(client, ns, api):
    kubernetes = pytest.importorskip("kubernetes")
    async with running(client, GarbageCollector, namespace=ns):
        deploy = await make(client, DEPLOYMENTS, ns, "app")
        rs = await make(client, REPLICASETS, ns, "app-1", deploy)
        await make(client, PODS, ns, "app-1-free", rs)
        await make(client, PODS, ns, "app-1-held", rs, finalizers=[HOLD])
        await make(client, CONFIGMAPS, ns, "app-notes", deploy, block=False)
        await asyncio.to_thread(kubernetes.client.AppsV1Api(api).delete_namespaced_deployment, "app", ns,
                                propagation_policy="Foreground")
        # Everything that can go goes; the held pod keeps its ReplicaSet, which keeps the Deployment.
        await wait_gone(client, ns, (PODS, "app-1-free"), (CONFIGMAPS, "app-notes"))

        async def held():
            pod = await get_or_none(client, PODS, "app-1-held", ns)
            return pod if pod and pod["metadata"].get("deletionTimestamp") else None
        await eventually(held)
        await asyncio.sleep(0.3)
        for rt, name in ((REPLICASETS, "app-1"), (DEPLOYMENTS, "app")):
            obj = await get_or_none(client, rt, name, ns)
            assert obj["metadata"]["deletionTimestamp"] and obj["metadata"]["finalizers"] == ["foregroundDeletion"]

        await client.patch(PODS, "app-1-held", {"metadata": {"finalizers": None}}, ns)
        await wait_gone(client, ns, (PODS, "app-1-held"), (REPLICASETS, "app-1"), (DEPLOYMENTS, "app"))


async def test_orphan_keeps_dependents_without_the_reference(client, ns, cluster, api):
    kubernetes = pytest.importorskip("kubernetes")
    async with running(client, GarbageCollector, namespace=ns):
        by_kubectl = await make(client, REPLICASETS, ns, "rs-kubectl")
        by_client = await make(client, REPLICASETS, ns, "rs-client")
        other = await make(client, CONFIGMAPS, ns, "other")
        await make(client, PODS, ns, "k1", by_kubectl)
        await make(client, PODS, ns, "k2", by_kubectl, other)
        await make(client, PODS, ns, "c1", by_client)

        await asyncio.to_thread(cluster.kubectl, "delete", "replicaset", "rs-kubectl", "-n", ns, "--cascade=orphan")
        await asyncio.to_thread(kubernetes.client.AppsV1Api(api).delete_namespaced_replica_set, "rs-client", ns,
                                propagation_policy="Orphan")
        await wait_gone(client, ns, (REPLICASETS, "rs-kubectl"), (REPLICASETS, "rs-client"))
        await asyncio.sleep(0.3)       # and nothing else goes later
        pods = {name: await get_or_none(client, PODS, name, ns) for name in ("k1", "k2", "c1")}
        assert {n: owner_uids(p) for n, p in pods.items()} == {"k1": [], "k2": [other["metadata"]["uid"]], "c1": []}
        assert not any(p["metadata"].get("deletionTimestamp") for p in pods.values())


async def test_dangling_references_are_collected(client, ns):
    async with running(client, GarbageCollector, namespace=ns):
        real = await make(client, CONFIGMAPS, ns, "real")
        impostor = {**real, "metadata": {**real["metadata"], "uid": "00000000-0000-0000-0000-000000000001"}}
        never = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                 "metadata": {"name": "never-there", "uid": "00000000-0000-0000-0000-000000000002"}}
        await make(client, PODS, ns, "wrong-uid", impostor)
        await make(client, PODS, ns, "no-owner", never)
        await make(client, CONFIGMAPS, ns, "owned", real)
        await wait_gone(client, ns, (PODS, "wrong-uid"), (PODS, "no-owner"))
        assert owner_uids(await get_or_none(client, CONFIGMAPS, "owned", ns)) == [real["metadata"]["uid"]]
