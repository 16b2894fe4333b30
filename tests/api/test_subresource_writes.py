"""What each kind of write may change: status writes keep metadata but not spec (or, per kind, labels
and ownerReferences); main writes keep status; namespaces' finalizers change only through finalize."""
from __future__ import annotations

MERGE = {"Content-Type": "application/merge-patch+json"}


def _deployment(name: str) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}


def test_deployment_status_write_keeps_annotations_but_not_spec_or_labels(http, ns):
    base = f"/apis/apps/v1/namespaces/{ns}/deployments"
    created = http.post(base, json=_deployment("d")).json()
    body = dict(created)
    body["metadata"] = {**created["metadata"], "annotations": {"deployment.kubernetes.io/revision": "1"},
                        "labels": {"app": "changed"}}
    body["spec"] = {**created["spec"], "replicas": 5}
    body["status"] = {"observedGeneration": 1, "replicas": 1}
    r = http.put(f"{base}/d/status", json=body)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["metadata"]["annotations"] == {"deployment.kubernetes.io/revision": "1"}   # as upstream: kept
    assert got["metadata"]["labels"] == {"app": "d"}         # the deployment status strategy resets labels
    assert got["spec"]["replicas"] == 1 and got["status"]["replicas"] == 1
    assert got["metadata"]["generation"] == 1


def test_pod_status_write_cannot_touch_owner_references(http, ns):
    base = f"/api/v1/namespaces/{ns}/pods"
    pod = http.post(base, json={"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                                "spec": {"containers": [{"name": "c", "image": "nginx"}]}}).json()
    body = dict(pod, status={"phase": "Running"})
    body["metadata"] = {**pod["metadata"], "labels": {"seen": "yes"}, "ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "3e1f2d1c-0000-4000-8000-000000000000"}]}
    got = http.put(f"{base}/p/status", json=body).json()
    assert got["status"]["phase"] == "Running" and got["metadata"]["labels"] == {"seen": "yes"}
    assert "ownerReferences" not in got["metadata"]


def test_main_write_cannot_change_status(http, ns):
    base = f"/apis/apps/v1/namespaces/{ns}/deployments"
    created = http.post(base, json=_deployment("m")).json()
    r = http.patch(f"{base}/m", json={"status": {"replicas": 7}, "spec": {"replicas": 2}}, headers=MERGE)
    assert r.status_code == 200, r.text
    assert r.json()["spec"]["replicas"] == 2 and "replicas" not in r.json().get("status", {})
    assert created["metadata"]["generation"] + 1 == r.json()["metadata"]["generation"]


def test_namespace_finalizers_change_only_through_finalize(http):
    name = "fin-" + __import__("uuid").uuid4().hex[:6]
    created = http.post("/api/v1/namespaces", json={"metadata": {"name": name}, "spec": {"finalizers": ["example.com/x"]}})
    assert created.json()["spec"]["finalizers"] == ["example.com/x", "kubernetes"]   # always added on create
    updated = http.put(f"/api/v1/namespaces/{name}", json={"metadata": {"name": name, "labels": {"a": "b"}}})
    assert updated.status_code == 200, updated.text
    assert updated.json()["spec"]["finalizers"] == ["example.com/x", "kubernetes"]   # a PUT keeps them
    finalized = http.put(f"/api/v1/namespaces/{name}/finalize",
                         json={"metadata": {"name": name}, "spec": {"finalizers": []}})
    assert finalized.status_code == 200, finalized.text
    assert not finalized.json()["spec"].get("finalizers")
    assert http.delete(f"/api/v1/namespaces/{name}").status_code == 200
