"""The namespace controller live on the real API server.

Until the API server's own namespace finalizer (boxkube/apiserver/namespaces.py)
is retired, it empties terminating namespaces too and releases the
`kubernetes` finalizer. So the controller under test answers for a finalizer
of its own here: the namespace can only go once the controller has released
it, and the conditions it reports are written by no one else.
"""
from __future__ import annotations

import uuid

import pytest

from boxkube.client import ApiError, resource
from boxkube.controllers.namespace import NamespaceController, updated_conditions

from controller_harness import eventually, running

NAMESPACES, CONFIGMAPS, PODS, SERVICES = (resource(r) for r in ("namespaces", "configmaps", "pods", "services"))
TOKEN = "test.boxkube.dev/namespace-controller"
HOLD = "test.boxkube.dev/hold"


class OwnTokenNamespaceController(NamespaceController):
    name = "namespace-test"
    finalizer_token = TOKEN


@pytest.fixture
async def doomed(client):
    """A namespace whose deletion waits for the controller under test (and the API server)."""
    name = f"ns-{uuid.uuid4().hex[:8]}"
    await client.create(NAMESPACES, {"metadata": {"name": name}, "spec": {"finalizers": ["kubernetes", TOKEN]}})
    yield name
    try:     # a failed test leaves it held: let it go
        for cm in (await client.list(CONFIGMAPS, name))["items"]:
            await client.patch(CONFIGMAPS, cm["metadata"]["name"], {"metadata": {"finalizers": None}}, name)
        ns = await client.get(NAMESPACES, name)
        ns["spec"]["finalizers"] = []
        await client.replace(NAMESPACES, ns, subresource="finalize")
        await client.delete(NAMESPACES, name)
    except ApiError:
        pass


def conditions(ns):
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in ns["status"].get("conditions") or []}


async def test_deleted_namespace_is_emptied_reported_and_released(client, doomed):
    await client.create(CONFIGMAPS, {"metadata": {"name": "plain"}}, doomed)
    await client.create(CONFIGMAPS, {"metadata": {"name": "held", "finalizers": [HOLD]}}, doomed)
    await client.create(SERVICES, {"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}]}}, doomed)
    await client.create(PODS, {"metadata": {"name": "pod"}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}},
                        doomed)
    async with running(client, OwnTokenNamespaceController, namespace=doomed):
        await client.delete(NAMESPACES, doomed)

        async def reported():
            ns = await client.get(NAMESPACES, doomed)
            return ns if "NamespaceContentRemaining" in conditions(ns) else None
        ns = await eventually(reported)
        assert ns["status"]["phase"] == "Terminating"
        assert conditions(ns) == {
            "NamespaceDeletionDiscoveryFailure": ("False", "ResourcesDiscovered", "All resources successfully discovered"),
            "NamespaceDeletionGroupVersionParsingFailure": ("False", "ParsedGroupVersions",
                                                            "All legacy kube types successfully parsed"),
            "NamespaceDeletionContentFailure": ("False", "ContentDeleted",
                                                "All content successfully deleted, may be waiting on finalization"),
            "NamespaceContentRemaining": ("True", "SomeResourcesRemain",
                                          "Some resources are remaining: configmaps. has 1 resource instances"),
            "NamespaceFinalizersRemaining": ("True", "SomeFinalizerRemain",
                                             f"Some finalizers are remaining: {HOLD} in 1 resource instances"),
        }
        assert TOKEN in ns["spec"]["finalizers"]
        for rt in (PODS, SERVICES):
            assert (await client.list(rt, doomed))["items"] == []
        assert [c["metadata"]["name"] for c in (await client.list(CONFIGMAPS, doomed))["items"]] == ["held"]

        await client.patch(CONFIGMAPS, "held", {"metadata": {"finalizers": None}}, doomed)

        async def gone():
            try:
                await client.get(NAMESPACES, doomed)
            except ApiError as e:
                return e.is_not_found
            return False
        await eventually(gone)


async def test_active_namespaces_are_left_alone(client, ns):
    async with running(client, OwnTokenNamespaceController, namespace=ns) as controller:
        await client.create(CONFIGMAPS, {"metadata": {"name": "stays"}}, ns)
        await controller.reconcile(ns)
        assert (await client.get(CONFIGMAPS, "stays", ns))["metadata"]["name"] == "stays"
        assert "conditions" not in (await client.get(NAMESPACES, ns))["status"]


def test_condition_transition_times_move_only_with_the_status():
    first = updated_conditions([], {"NamespaceContentRemaining": ("SomeResourcesRemain", "Some resources are remaining: x")})
    assert [c["type"] for c in first] == ["NamespaceDeletionDiscoveryFailure", "NamespaceDeletionGroupVersionParsingFailure",
                                          "NamespaceDeletionContentFailure", "NamespaceContentRemaining",
                                          "NamespaceFinalizersRemaining"]
    for c in first:
        c["lastTransitionTime"] = "2020-01-01T00:00:00Z"
    assert updated_conditions(first, {"NamespaceContentRemaining": ("SomeResourcesRemain", "Some resources are remaining: x")}) is None
    reworded = updated_conditions(first, {"NamespaceContentRemaining": ("SomeResourcesRemain", "Some resources are remaining: y")})
    assert {c["type"]: c["lastTransitionTime"] for c in reworded}["NamespaceContentRemaining"] == "2020-01-01T00:00:00Z"
    cleared = {c["type"]: c for c in updated_conditions(first, {})}
    assert cleared["NamespaceContentRemaining"]["status"] == "False"
    assert cleared["NamespaceContentRemaining"]["lastTransitionTime"] != "2020-01-01T00:00:00Z"
