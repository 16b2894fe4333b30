"""Namespace lifecycle as upstream's NamespaceLifecycle admission and namespace controller give it."""
from __future__ import annotations

import time
import uuid

import pytest

MERGE = {"Content-Type": "application/merge-patch+json"}


def _wait_gone(http, path: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while http.get(path).status_code != 404:
        assert time.monotonic() < deadline, f"{path} still there: {http.get(path).text}"
        time.sleep(0.2)


def _new_namespace(http) -> str:
    name = f"n-{uuid.uuid4().hex[:8]}"
    assert http.post("/api/v1/namespaces", json={"metadata": {"name": name}}).status_code == 201
    return name


POD = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}
DEPLOYMENT = {"metadata": {"name": "d"}, "spec": {
    "selector": {"matchLabels": {"app": "d"}},
    "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}}}
CONTENT = {
    "/api/v1/namespaces/{ns}/configmaps": {"metadata": {"name": "cm"}, "data": {"a": "1"}},
    "/api/v1/namespaces/{ns}/secrets": {"metadata": {"name": "s"}, "stringData": {"a": "1"}},
    "/api/v1/namespaces/{ns}/services": {"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}]}},
    "/api/v1/namespaces/{ns}/pods": POD,
    "/apis/apps/v1/namespaces/{ns}/deployments": DEPLOYMENT,
    "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases": {"metadata": {"name": "l"}, "spec": {}},
}


def test_system_namespaces_exist(http):
    names = {i["metadata"]["name"] for i in http.get("/api/v1/namespaces").json()["items"]}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names
    ns = http.get("/api/v1/namespaces/default").json()
    assert ns["status"]["phase"] == "Active" and ns["spec"]["finalizers"] == ["kubernetes"]
    assert ns["metadata"]["labels"]["kubernetes.io/metadata.name"] == "default"


@pytest.mark.parametrize("name", ["default", "kube-system", "kube-public"])
def test_immortal_namespaces_cannot_be_deleted(http, name):
    before = http.get(f"/api/v1/namespaces/{name}").json()
    r = http.delete(f"/api/v1/namespaces/{name}")
    assert r.status_code == 403, r.text
    status = r.json()
    assert status["reason"] == "Forbidden"
    assert status["message"] == f'namespaces "{name}" is forbidden: this namespace may not be deleted'
    after = http.get(f"/api/v1/namespaces/{name}").json()
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert "deletionTimestamp" not in after["metadata"]


def test_create_in_missing_namespace_is_404(http):
    r = http.post("/api/v1/namespaces/no-such-ns/configmaps", json={"metadata": {"name": "x"}})
    assert r.status_code == 404, r.text
    status = r.json()
    assert status["reason"] == "NotFound" and status["message"] == 'namespaces "no-such-ns" not found'
    assert status["details"] == {"name": "no-such-ns", "kind": "namespaces"}


def test_deleting_a_namespace_empties_it_then_removes_it(http):
    ns = _new_namespace(http)
    for path, body in CONTENT.items():
        r = http.post(path.format(ns=ns), json=body)
        assert r.status_code == 201, (path, r.text)
    # A finalizer no one removes holds its object, and so the namespace, until it is patched away.
    held = http.post(f"/api/v1/namespaces/{ns}/configmaps",
                     json={"metadata": {"name": "held", "finalizers": ["example.com/hold"]}})
    assert held.status_code == 201

    r = http.delete(f"/api/v1/namespaces/{ns}")
    assert r.status_code == 200, r.text
    deleted = r.json()
    assert deleted["kind"] == "Namespace" and deleted["status"]["phase"] == "Terminating"
    assert deleted["metadata"]["deletionTimestamp"]

    refused = http.post(f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": {"name": "late"}})
    assert refused.status_code == 403, refused.text
    status = refused.json()
    assert status["reason"] == "Forbidden"
    assert status["message"] == (f'configmaps "late" is forbidden: unable to create new content in namespace {ns} '
                                 "because it is being terminated")
    assert status["details"]["causes"] == [{"reason": "NamespaceTerminating", "message": f"namespace {ns} is being terminated",
                                            "field": "metadata.namespace"}]

    deadline = time.monotonic() + 15
    while True:   # everything but the held object goes; the namespace stays Terminating meanwhile
        left = [path for path in CONTENT
                if {i["metadata"]["name"] for i in http.get(path.format(ns=ns)).json()["items"]} - {"held"}]
        if not left:
            break
        assert time.monotonic() < deadline, f"still in {ns}: {left}"
        time.sleep(0.2)
    cm = http.get(f"/api/v1/namespaces/{ns}/configmaps/held").json()
    assert cm["metadata"]["deletionTimestamp"] and cm["metadata"]["finalizers"] == ["example.com/hold"]
    assert http.get(f"/api/v1/namespaces/{ns}").json()["status"]["phase"] == "Terminating"

    r = http.patch(f"/api/v1/namespaces/{ns}/configmaps/held", json={"metadata": {"finalizers": None}}, headers=MERGE)
    assert r.status_code == 200, r.text
    _wait_gone(http, f"/api/v1/namespaces/{ns}")
    for path in CONTENT:   # nothing of it is left anywhere (cluster-wide lists by namespace)
        everywhere = path.replace("namespaces/{ns}/", "")
        assert http.get(everywhere, params={"fieldSelector": f"metadata.namespace={ns}"}).json()["items"] == []
