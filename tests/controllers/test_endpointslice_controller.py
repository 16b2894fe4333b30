"""The EndpointSlice controller live on the real API server (no node agents: the test writes pods' status)."""
from __future__ import annotations

import uuid

import pytest

from boxkube.client import resource
from boxkube.controllers.endpointslice import EndpointSliceController

from controller_harness import eventually, running
from test_endpoints_controller import WEB, WEB_ALT, add_pod, remove_pod, set_ready

SERVICES, SLICES, NODES = resource("services"), resource("endpointslices"), resource("nodes")


@pytest.fixture
async def node(client):
    """A Node for the pods (the controller leaves out pods whose Node does not exist), in a zone."""
    name = f"es-{uuid.uuid4().hex[:8]}"
    await client.create(NODES, {"metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": "zone-a"}}})
    yield name
    await client.delete(NODES, name)


async def slices_of(client, ns, service):
    listed = await client.list(SLICES, ns, label_selector=f"kubernetes.io/service-name={service}")
    return listed["items"]


def summary(slices):
    """{(port name, number)...: {pod name: (ready, serving, terminating)}} over all slices."""
    out: dict = {}
    for s in slices:
        ports = tuple(sorted((p["name"], p["port"]) for p in s.get("ports") or []))
        group = out.setdefault(ports, {})
        for e in s.get("endpoints") or []:
            c = e["conditions"]
            group[e["targetRef"]["name"]] = (c["ready"], c["serving"], c["terminating"])
    return out


async def wait_for_slices(client, ns, service, wanted, count=None):
    async def check():
        slices = await slices_of(client, ns, service)
        if summary(slices) == wanted and (count is None or len(slices) == count):
            return slices
        return None
    return await eventually(check)


async def test_slices_start_with_a_placeholder_track_pods_and_end_with_it(client, ns, node):
    svc = {"metadata": {"name": "web", "labels": {"tier": "front"}},
           "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}
    service = await client.create(SERVICES, svc, ns)
    async with running(client, EndpointSliceController, namespace=ns):
        [placeholder] = await wait_for_slices(client, ns, "web", {(): {}}, count=1)
        meta = placeholder["metadata"]
        assert placeholder["addressType"] == "IPv4" and not placeholder.get("endpoints")
        assert meta["name"].startswith("web-")
        assert meta["labels"] == {"tier": "front", "kubernetes.io/service-name": "web",
                                  "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
        assert meta["ownerReferences"] == [{"apiVersion": "v1", "kind": "Service", "name": "web",
                                            "uid": service["metadata"]["uid"], "controller": True,
                                            "blockOwnerDeletion": True}]
        assert meta["annotations"]["endpoints.kubernetes.io/last-change-trigger-time"].endswith("Z")

        a = await add_pod(client, ns, "a", {"app": "web"}, WEB, "10.244.1.10", node=node)
        await add_pod(client, ns, "b", {"app": "web"}, WEB, "10.244.1.11", node=node, ready=False)
        [one] = await wait_for_slices(client, ns, "web", {(("http", 8080),): {"a": (True, True, False),
                                                                           "b": (False, False, False)}}, count=1)
        assert one["metadata"]["name"] == meta["name"]        # the placeholder was filled, not replaced
        assert one["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
        endpoint = next(e for e in one["endpoints"] if e["targetRef"]["name"] == "a")
        assert endpoint == {"addresses": ["10.244.1.10"], "conditions": {"ready": True, "serving": True, "terminating": False},
                            "nodeName": node, "zone": "zone-a",
                            "targetRef": {"kind": "Pod", "namespace": ns, "name": "a", "uid": a["metadata"]["uid"]}}

        # Another resolution of the named port is another slice; a terminating pod stays, marked so.
        await add_pod(client, ns, "c", {"app": "web"}, WEB_ALT, "10.244.1.12", node=node)
        await set_ready(client, ns, "b", True)
        await client.delete(resource("pods"), "a", ns)     # bound: lingers with a deletionTimestamp
        await wait_for_slices(client, ns, "web", {(("http", 8080),): {"a": (False, True, True), "b": (True, True, False)},
                                                  (("http", 9090),): {"c": (True, True, False)}}, count=2)

        # A pod whose Node does not exist is left out (and the Service retried).
        await add_pod(client, ns, "lost", {"app": "web"}, WEB, "10.244.1.13", node="no-such-node")
        for name in ("a", "b", "c", "lost"):
            await remove_pod(client, ns, name)
        [last] = await wait_for_slices(client, ns, "web", {(): {}}, count=1)
        assert last["addressType"] == "IPv4"


async def test_slices_hold_at_most_max_endpoints(client, ns, node):
    svc = {"metadata": {"name": "many"}, "spec": {"selector": {"app": "many"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    await client.create(SERVICES, svc, ns)
    async with running(client, EndpointSliceController, namespace=ns) as controller:
        controller.max_endpoints_per_slice = 2
        for i in range(5):
            await add_pod(client, ns, f"p{i}", {"app": "many"}, [], f"10.244.5.{i + 1}", node=node)
        ready = (True, True, False)
        slices = await wait_for_slices(client, ns, "many", {(("", 8080),): {f"p{i}": ready for i in range(5)}})
        assert sorted(len(s["endpoints"]) for s in slices) == [1, 2, 2]
        # Removing pods empties slices, which go, rather than leaving scattered endpoints behind.
        for i in range(3):
            await remove_pod(client, ns, f"p{i}")
        slices = await wait_for_slices(client, ns, "many", {(("", 8080),): {"p3": ready, "p4": ready}})
        assert sum(len(s["endpoints"]) for s in slices) == 2 and len(slices) <= 2


async def test_selectorless_and_external_name_services_get_no_slices(client, ns):
    await client.create(SERVICES, {"metadata": {"name": "manual"}, "spec": {"ports": [{"port": 80}]}}, ns)
    await client.create(SERVICES, {"metadata": {"name": "ext"},
                                   "spec": {"type": "ExternalName", "externalName": "example.test", "selector": {"a": "b"}}}, ns)
    await client.create(SERVICES, {"metadata": {"name": "marker"}, "spec": {"selector": {"a": "b"}, "ports": [{"port": 80}]}}, ns)
    async with running(client, EndpointSliceController, namespace=ns):
        await wait_for_slices(client, ns, "marker", {(): {}}, count=1)
        assert await slices_of(client, ns, "manual") == [] and await slices_of(client, ns, "ext") == []
