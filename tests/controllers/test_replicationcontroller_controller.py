"""The ReplicationController controller (the ReplicaSet code over core/v1 RCs), live against the API server."""
from __future__ import annotations

from boxkube.client import resource
from boxkube.controllers.ownership import controller_of
from boxkube.controllers.replicationcontroller import ReplicationManager

from controller_harness import eventually, running
from test_replicaset_controller import count_is, set_ready, status_is

PODS, RC = resource("pods"), resource("replicationcontrollers")


def replication_controller(name, replicas, labels=None):
    labels = labels or {"app": name}
    return {"metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": dict(labels),
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}


async def test_keeps_the_count_adopts_and_reports_status(client, ns):
    await client.create(PODS, {"metadata": {"name": "orphan", "labels": {"app": "rc"}},
                               "spec": {"containers": [{"name": "c", "image": "nginx"}]}}, ns)
    async with running(client, ReplicationManager, namespace=ns):
        rc = await client.create(RC, replication_controller("rc", 3), ns)
        pods = await eventually(lambda: count_is(client, ns, 3))
        for pod in pods:
            assert controller_of(pod) == {"apiVersion": "v1", "kind": "ReplicationController", "name": "rc",
                                          "uid": rc["metadata"]["uid"], "controller": True,
                                          "blockOwnerDeletion": True}
        assert "orphan" in {p["metadata"]["name"] for p in pods}
        for pod in pods:
            await set_ready(client, ns, pod["metadata"]["name"])
        done = await eventually(lambda: status_is(client, ns, "rc", RC, replicas=3, fullyLabeledReplicas=3,
                                                  readyReplicas=3, availableReplicas=3, observedGeneration=1))
        assert "terminatingReplicas" not in done["status"]      # not a field of ReplicationControllerStatus

        await client.patch(PODS, "orphan", {"metadata": {"labels": {"app": "gone"}}}, ns)
        await eventually(lambda: count_is(client, ns, 3, "app=rc"))

        async def released():
            return controller_of(await client.get(PODS, "orphan", ns)) is None
        await eventually(released)


async def test_kubectl_scale_rc_and_describe(cluster, client, ns):
    async with running(client, ReplicationManager, namespace=ns) as controller:
        await client.create(RC, replication_controller("legacy", 2), ns)
        await eventually(lambda: count_is(client, ns, 2))
        cluster.kubectl("scale", "rc/legacy", "--replicas=4", "-n", ns)
        await eventually(lambda: count_is(client, ns, 4))
        cluster.kubectl("scale", "rc/legacy", "--replicas=1", "-n", ns)
        await eventually(lambda: count_is(client, ns, 1))
        await eventually(lambda: status_is(client, ns, "legacy", RC, replicas=1, observedGeneration=3))
        await controller.recorder.flush()
    described = cluster.kubectl("describe", "rc", "legacy", "-n", ns).stdout
    assert "1 current / 1 desired" in described
    assert "Created pod: legacy-" in described and "Deleted pod: legacy-" in described
