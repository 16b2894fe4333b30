"""Garbage collection: what deleting an owner does to its dependents, by propagation policy.
Background: the owner goes at once, its dependents after it. Foreground: the owner stays, with a
deletionTimestamp and the foregroundDeletion finalizer, until its (blocking) dependents are gone.
Orphan: the dependents stay, their ownerReferences to the owner removed."""
from __future__ import annotations

import pytest

from boxkube.conformance.support import (conformance, deployment, hold, is_ready, live, poll, replicaset,
                                         retry_on_conflict, until)

# A finalizer of the test's own, which keeps a pod from going away until the test removes it.
HOLD = "conformance.boxkube.dev/hold"


def _gone(read) -> bool:
    from kubernetes.client.exceptions import ApiException
    try:
        read()
    except ApiException as e:
        if e.status == 404:
            return True
        raise
    return False


def _pods(core, namespace: str, app: str) -> list:
    return core.list_namespaced_pod(namespace, label_selector=f"app={app}").items


def _ready_pods(core, namespace: str, app: str, count: int) -> list:
    return poll(lambda: live(_pods(core, namespace, app)), lambda p: len(p) == count and all(map(is_ready, p)),
                timeout=120, what=f"{count} ready pods of app={app}")


def _owners(obj) -> list[tuple[str, str]]:
    return [(o.kind, o.name) for o in obj.metadata.owner_references or []]


def _replicasets(apps, namespace: str, app: str) -> list:
    return apps.list_namespaced_replica_set(namespace, label_selector=f"app={app}").items


@conformance(area="Garbage collection",
             upstream="[sig-api-machinery] Garbage collector should delete RS created by deployment when not "
                      "orphaning [Conformance]")
def test_background_deletion_removes_the_owner_then_its_dependents(core, apps, namespace, images):
    apps.create_namespaced_deployment(namespace, deployment("bg", "bg", images.web, images.web_port, 2))
    pods = _ready_pods(core, namespace, "bg", 2)
    [rs] = poll(lambda: _replicasets(apps, namespace, "bg"), lambda r: len(r) == 1, timeout=60,
                what="the Deployment's ReplicaSet")
    assert _owners(rs) == [("Deployment", "bg")]
    assert all(_owners(p) == [("ReplicaSet", rs.metadata.name)] for p in pods), [_owners(p) for p in pods]

    apps.delete_namespaced_deployment("bg", namespace, propagation_policy="Background")
    # The owner goes at once: no finalizer waits for its dependents.
    until(lambda: _gone(lambda: apps.read_namespaced_deployment("bg", namespace)), timeout=10,
          what="the Deployment gone right after its deletion")
    # Then its dependents, and theirs.
    until(lambda: not _replicasets(apps, namespace, "bg"), timeout=60, what="the ReplicaSet deleted")
    until(lambda: not _pods(core, namespace, "bg"), timeout=90, what="the ReplicaSet's pods deleted")


@pytest.mark.parametrize("kind", [
    pytest.param("Deployment", marks=conformance(
        area="Garbage collection",
        upstream="[sig-api-machinery] Garbage collector should orphan RS created by deployment when "
                 "deleteOptions.PropagationPolicy is Orphan [Conformance]")),
    pytest.param("ReplicaSet", marks=conformance(
        area="Garbage collection",
        upstream="[sig-api-machinery] Garbage collector should orphan pods created by rc if delete options say "
                 "so [Conformance]")),
])
def test_orphan_deletion_leaves_the_dependents_without_their_owner_reference(kind, core, apps, namespace, images):
    app = f"orphan-{kind.lower()}"
    if kind == "Deployment":
        apps.create_namespaced_deployment(namespace, deployment("owner", app, images.web, images.web_port, 2))
    else:
        apps.create_namespaced_replica_set(namespace, replicaset("owner", app, images.web, images.web_port, 2))
    pods = _ready_pods(core, namespace, app, 2)
    if kind == "Deployment":
        [rs] = poll(lambda: _replicasets(apps, namespace, app), lambda r: len(r) == 1, timeout=60,
                    what="the Deployment's ReplicaSet")
        dependents = {rs.metadata.uid: rs}

        def read_dependents():
            return _replicasets(apps, namespace, app)
        delete, read_owner = apps.delete_namespaced_deployment, apps.read_namespaced_deployment
    else:
        dependents = {p.metadata.uid: p for p in pods}

        def read_dependents():
            return _pods(core, namespace, app)
        delete, read_owner = apps.delete_namespaced_replica_set, apps.read_namespaced_replica_set
    assert all(_owners(d) == [(kind, "owner")] for d in dependents.values())

    delete("owner", namespace, propagation_policy="Orphan")
    until(lambda: _gone(lambda: read_owner("owner", namespace)), timeout=60, what=f"the {kind} gone")

    def orphaned():
        now = {d.metadata.uid: d for d in read_dependents()}
        assert set(now) == set(dependents), f"dependents {sorted(set(dependents) - set(now))} went with their owner"
        assert not any(d.metadata.deletion_timestamp for d in now.values()), "a dependent is being deleted"
        return now if all(not d.metadata.owner_references for d in now.values()) else None
    until(orphaned, timeout=30, what="the dependents kept, without ownerReferences")
    # ... and they stay.
    hold(orphaned, 4)
    # The pods (of the orphaned ReplicaSet, or the orphaned pods themselves) are all still there.
    assert {p.metadata.uid for p in live(_pods(core, namespace, app))} == {p.metadata.uid for p in pods}


def _let_go(core, namespace: str, name: str) -> None:
    """Remove the test's finalizer from a pod (a read, then a replace: 409 if the pod changed between)."""
    pod = core.read_namespaced_pod(name, namespace)
    pod.metadata.finalizers = [f for f in pod.metadata.finalizers or [] if f != HOLD]
    core.replace_namespaced_pod(name, namespace, pod)


@conformance(area="Garbage collection",
             upstream="[sig-api-machinery] Garbage collector should keep the rc around until all its pods are "
                      "deleted if the deleteOptions says so [Conformance]")
def test_foreground_deletion_keeps_the_owner_until_its_dependents_are_gone(core, apps, namespace, images):
    apps.create_namespaced_replica_set(namespace, replicaset("fg", "fg", images.web, images.web_port, 3))
    pods = _ready_pods(core, namespace, "fg", 3)
    assert all(any(o.block_owner_deletion for o in p.metadata.owner_references or []) for p in pods), \
        "the ReplicaSet's pods block their owner's deletion"
    # One pod can only go once the test lets it: the ReplicaSet must wait for it.
    held = pods[0].metadata.name
    core.patch_namespaced_pod(held, namespace, {"metadata": {"finalizers": [HOLD]}})
    try:
        apps.delete_namespaced_replica_set("fg", namespace, propagation_policy="Foreground")

        def waiting_owner():
            rs = apps.read_namespaced_replica_set("fg", namespace)
            assert rs.metadata.deletion_timestamp, "the ReplicaSet has no deletionTimestamp"
            assert "foregroundDeletion" in (rs.metadata.finalizers or []), rs.metadata.finalizers
            return rs
        waiting_owner()
        # Its other pods go; the held one is being deleted but stays.
        until(lambda: [p.metadata.name for p in _pods(core, namespace, "fg")] == [held], timeout=90,
              what=f"every pod but {held} deleted")
        assert core.read_namespaced_pod(held, namespace).metadata.deletion_timestamp, f"{held} is not being deleted"

        def still_waiting():
            waiting_owner()
            assert [p.metadata.name for p in _pods(core, namespace, "fg")] == [held]
        hold(still_waiting, 4)
    finally:
        retry_on_conflict(lambda: _let_go(core, namespace, held))
    until(lambda: not _pods(core, namespace, "fg"), timeout=60, what=f"{held} gone once let go")
    until(lambda: _gone(lambda: apps.read_namespaced_replica_set("fg", namespace)), timeout=60,
          what="the ReplicaSet gone after its last pod")
