"""Finalizers, propagation policies, grace periods and preconditions on DELETE, as upstream's generic store."""
from __future__ import annotations

import pytest

MERGE = {"Content-Type": "application/merge-patch+json"}


def _cm(http, ns: str, name: str, finalizers: list[str] | None = None) -> dict:
    meta: dict = {"name": name}
    if finalizers:
        meta["finalizers"] = finalizers
    r = http.post(f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": meta, "data": {"a": "1"}})
    assert r.status_code == 201, r.text
    return r.json()


def _delete(http, path: str, **options):
    return http.request("DELETE", path, json={"kind": "DeleteOptions", "apiVersion": "v1", **options})


def test_finalizers_hold_the_object_until_the_last_is_removed(http, ns):
    path = f"/api/v1/namespaces/{ns}/configmaps/f"
    _cm(http, ns, "f", ["example.com/a", "example.com/b"])
    r = http.delete(path)
    assert r.status_code == 200, r.text
    marked = r.json()              # not removed: the answer is the object, not a Status
    assert marked["kind"] == "ConfigMap"
    assert marked["metadata"]["deletionTimestamp"] and marked["metadata"]["deletionGracePeriodSeconds"] == 0
    live = http.get(path).json()
    assert live["metadata"]["deletionTimestamp"] == marked["metadata"]["deletionTimestamp"]

    r = http.patch(path, json={"metadata": {"finalizers": ["example.com/b"]}}, headers=MERGE)
    assert r.status_code == 200 and http.get(path).status_code == 200
    r = http.patch(path, json={"metadata": {"finalizers": []}}, headers=MERGE)
    assert r.status_code == 200, r.text
    gone = http.get(path)
    assert gone.status_code == 404 and gone.json()["message"] == 'configmaps "f" not found'


def test_no_new_finalizers_while_deleting(http, ns):
    path = f"/api/v1/namespaces/{ns}/configmaps/g"
    _cm(http, ns, "g", ["example.com/a"])
    before = http.delete(path).json()
    r = http.patch(path, json={"metadata": {"finalizers": ["example.com/a", "example.com/new"]}}, headers=MERGE)
    # ValidateObjectMetaUpdate: an Invalid (422) cause on metadata.finalizers, not a 403.
    assert r.status_code == 422, r.text
    status = r.json()
    assert status["reason"] == "Invalid"
    assert status["message"] == ('ConfigMap "g" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added '
                                 'if the object is being deleted, found new finalizers []string{"example.com/new"}')
    assert status["details"]["causes"][0]["field"] == "metadata.finalizers"
    assert http.get(path).json()["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


@pytest.mark.parametrize("policy, finalizer", [("Orphan", "orphan"), ("Foreground", "foregroundDeletion")])
def test_propagation_policy_adds_its_finalizer(http, ns, policy, finalizer):
    path = f"/api/v1/namespaces/{ns}/configmaps/p"
    _cm(http, ns, "p")
    r = _delete(http, path, propagationPolicy=policy)
    # 202 is only for orphanDependents=false (handlers/delete.go); a policy answers 200.
    assert r.status_code == 200, r.text
    assert r.json()["metadata"]["finalizers"] == [finalizer]
    live = http.get(path).json()
    assert live["metadata"]["finalizers"] == [finalizer] and live["metadata"]["deletionTimestamp"]


def test_policies_replace_each_others_finalizers(http, ns):
    path = f"/api/v1/namespaces/{ns}/configmaps/q"
    _cm(http, ns, "q", ["example.com/keep"])
    assert _delete(http, path, propagationPolicy="Orphan").json()["metadata"]["finalizers"] == ["example.com/keep", "orphan"]
    assert _delete(http, path, propagationPolicy="Foreground").json()["metadata"]["finalizers"] == \
        ["example.com/keep", "foregroundDeletion"]
    r = _delete(http, path, propagationPolicy="Background")
    assert r.json()["metadata"]["finalizers"] == ["example.com/keep"]


def test_orphan_dependents_false_on_a_held_object_is_202(http, ns):
    path = f"/api/v1/namespaces/{ns}/configmaps/h"
    _cm(http, ns, "h", ["example.com/a"])
    r = _delete(http, path, orphanDependents=False)
    assert r.status_code == 202, r.text
    assert r.json()["metadata"]["finalizers"] == ["example.com/a"]


def test_background_removes_at_once(http, ns):
    path = f"/api/v1/namespaces/{ns}/configmaps/b"
    created = _cm(http, ns, "b")
    r = _delete(http, path, propagationPolicy="Background")
    assert r.status_code == 200
    status = r.json()     # configmaps answer a removal with a Success Status naming the object
    assert status["kind"] == "Status" and status["status"] == "Success"
    assert status["details"] == {"name": "b", "kind": "configmaps", "uid": created["metadata"]["uid"]}
    again = http.delete(path)
    assert again.status_code == 404 and again.json()["reason"] == "NotFound"
    assert again.json()["message"] == 'configmaps "b" not found'


def test_grace_period_on_an_unscheduled_pod_deletes_at_once(http, ns):
    pod = {"metadata": {"name": "u"}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}
    assert http.post(f"/api/v1/namespaces/{ns}/pods", json=pod).status_code == 201
    r = _delete(http, f"/api/v1/namespaces/{ns}/pods/u", gracePeriodSeconds=30)
    assert r.status_code == 200 and r.json()["kind"] == "Pod"
    assert http.get(f"/api/v1/namespaces/{ns}/pods/u").status_code == 404


def test_grace_period_on_a_scheduled_pod_marks_it(http, ns):
    pod = {"metadata": {"name": "s"}, "spec": {"nodeName": "node-x", "containers": [{"name": "c", "image": "busybox:1.36"}]}}
    assert http.post(f"/api/v1/namespaces/{ns}/pods", json=pod).status_code == 201
    path = f"/api/v1/namespaces/{ns}/pods/s"
    r = _delete(http, path, gracePeriodSeconds=30)
    assert r.status_code == 200
    meta = http.get(path).json()["metadata"]
    assert meta["deletionGracePeriodSeconds"] == 30 and meta["deletionTimestamp"]
    assert _delete(http, path, gracePeriodSeconds=0).status_code == 200    # shortening to 0 removes it
    assert http.get(path).status_code == 404


def test_delete_preconditions(http, ns):
    path = f"/api/v1/namespaces/{ns}/configmaps/pre"
    created = _cm(http, ns, "pre")
    uid, rv = created["metadata"]["uid"], created["metadata"]["resourceVersion"]
    r = _delete(http, path, preconditions={"uid": "0000-wrong"})
    assert r.status_code == 409 and r.json()["reason"] == "Conflict"
    assert r.json()["message"] == (f'Operation cannot be fulfilled on configmaps "pre": Precondition failed: '
                                   f"UID in precondition: 0000-wrong, UID in object meta: {uid}")
    r = _delete(http, path, preconditions={"resourceVersion": "1"})
    assert r.status_code == 409
    assert r.json()["message"] == (f'Operation cannot be fulfilled on configmaps "pre": Precondition failed: '
                                   f"ResourceVersion in precondition: 1, ResourceVersion in object meta: {rv}")
    assert http.get(path).json()["metadata"]["resourceVersion"] == rv
    assert _delete(http, path, preconditions={"uid": uid, "resourceVersion": rv}).status_code == 200
    assert http.get(path).status_code == 404
