"""The Eviction API (POST pods/<name>/eviction), as upstream's EvictionREST: a pod deletion with the
eviction's delete options, answered with a Status Success (201). No disruption budgets are served, so
every eviction of an existing pod is allowed."""
from __future__ import annotations

from tests.pb_encoding import ld, v

PROTOBUF = "application/vnd.kubernetes.protobuf"


def eviction(name: str, namespace: str | None = None, version: str = "policy/v1", **delete_options) -> dict:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    body = {"apiVersion": version, "kind": "Eviction", "metadata": meta}
    if delete_options:
        body["deleteOptions"] = delete_options
    return body


def make_pod(http, ns: str, name: str, node: str | None = "node-1", phase: str = "Running") -> dict:
    """A pod bound to a node (no agent runs there: a graceful deletion stays visible) in `phase`."""
    base = f"/api/v1/namespaces/{ns}/pods"
    r = http.post(base, json={"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
    assert r.status_code == 201, r.text
    if node:
        r = http.post(f"{base}/{name}/binding", json={"apiVersion": "v1", "kind": "Binding",
                                                      "metadata": {"name": name}, "target": {"kind": "Node", "name": node}})
        assert r.status_code == 201, r.text
    if phase != "Pending":
        r = http.patch(f"{base}/{name}/status", json={"status": {"phase": phase}},
                       headers={"Content-Type": "application/merge-patch+json"})
        assert r.status_code == 200, r.text
    return http.get(f"{base}/{name}").json()


def test_eviction_is_listed_in_discovery_under_policy_v1(http):
    legacy = {r["name"]: r for r in http.get("/api/v1").json()["resources"]}
    assert legacy["pods/eviction"] == {"name": "pods/eviction", "singularName": "", "namespaced": True,
                                       "group": "policy", "version": "v1", "kind": "Eviction", "verbs": ["create"]}
    aggregated = http.get("/api", headers={"Accept": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"})
    pods = next(r for r in aggregated.json()["items"][0]["versions"][0]["resources"] if r["resource"] == "pods")
    assert {"subresource": "eviction", "responseKind": {"group": "policy", "version": "v1", "kind": "Eviction"},
            "verbs": ["create"]} in pods["subresources"]


def test_evicting_a_running_pod_deletes_it_gracefully_with_the_evictions_options(http, ns):
    make_pod(http, ns, "web")
    r = http.post(f"/api/v1/namespaces/{ns}/pods/web/eviction", json=eviction("web", ns, gracePeriodSeconds=7))
    assert r.status_code == 201, r.text
    assert r.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
    pod = http.get(f"/api/v1/namespaces/{ns}/pods/web").json()
    assert pod["metadata"]["deletionTimestamp"] and pod["metadata"]["deletionGracePeriodSeconds"] == 7
    # Evicting a pod already being deleted is a plain delete again: it may shorten the grace period.
    again = http.post(f"/api/v1/namespaces/{ns}/pods/web/eviction", json=eviction("web", gracePeriodSeconds=2))
    assert again.status_code == 201, again.text
    assert http.get(f"/api/v1/namespaces/{ns}/pods/web").json()["metadata"]["deletionGracePeriodSeconds"] == 2


def test_a_running_pod_without_delete_options_gets_its_own_grace_period(http, ns):
    make_pod(http, ns, "own")
    r = http.post(f"/api/v1/namespaces/{ns}/pods/own/eviction", json=eviction("own"))
    assert r.status_code == 201, r.text
    assert http.get(f"/api/v1/namespaces/{ns}/pods/own").json()["metadata"]["deletionGracePeriodSeconds"] == 30


def test_unscheduled_and_finished_pods_go_at_once(http, ns):
    make_pod(http, ns, "pending", node=None, phase="Pending")
    make_pod(http, ns, "done", phase="Succeeded")
    for name in ("pending", "done"):
        r = http.post(f"/api/v1/namespaces/{ns}/pods/{name}/eviction", json=eviction(name))
        assert r.status_code == 201, r.text
        assert http.get(f"/api/v1/namespaces/{ns}/pods/{name}").status_code == 404


def test_a_missing_pod_is_404(http, ns):
    r = http.post(f"/api/v1/namespaces/{ns}/pods/ghost/eviction", json=eviction("ghost"))
    assert r.status_code == 404
    status = r.json()
    assert status["reason"] == "NotFound" and status["message"] == 'pods "ghost" not found'
    assert status["details"] == {"name": "ghost", "kind": "pods"}


def test_name_or_namespace_mismatch_is_400_and_leaves_the_pod(http, ns):
    make_pod(http, ns, "keep")
    url = f"/api/v1/namespaces/{ns}/pods/keep/eviction"
    named = http.post(url, json=eviction("other"))
    assert named.status_code == 400 and named.json()["message"] == "name in URL does not match name in Eviction object"
    spaced = http.post(url, json=eviction("keep", "elsewhere"))
    assert spaced.status_code == 400
    assert spaced.json()["message"] == "the namespace of the provided object does not match the namespace sent on the request"
    wrong_kind = http.post(url, json={**eviction("keep"), "kind": "Pod"})
    assert wrong_kind.status_code == 400
    assert "deletionTimestamp" not in http.get(f"/api/v1/namespaces/{ns}/pods/keep").json()["metadata"]


def test_dry_run_from_the_query_or_the_body_changes_nothing(http, ns):
    make_pod(http, ns, "dry")
    url = f"/api/v1/namespaces/{ns}/pods/dry/eviction"
    assert http.post(url, params={"dryRun": "All"}, json=eviction("dry")).status_code == 201
    assert http.post(url, json=eviction("dry", dryRun=["All"])).status_code == 201
    assert "deletionTimestamp" not in http.get(f"/api/v1/namespaces/{ns}/pods/dry").json()["metadata"]


def test_preconditions_are_the_deletions(http, ns):
    pod = make_pod(http, ns, "pre")
    url = f"/api/v1/namespaces/{ns}/pods/pre/eviction"
    stale = http.post(url, json=eviction("pre", preconditions={"uid": "00000000-0000-4000-8000-000000000000"}))
    assert stale.status_code == 409 and stale.json()["reason"] == "Conflict"
    ok = http.post(url, json=eviction("pre", preconditions={"uid": pod["metadata"]["uid"],
                                                            "resourceVersion": pod["metadata"]["resourceVersion"]}))
    assert ok.status_code == 201, ok.text


def test_policy_v1beta1_is_accepted_and_yaml_too(http, ns):
    make_pod(http, ns, "old", node=None, phase="Pending")
    r = http.post(f"/api/v1/namespaces/{ns}/pods/old/eviction", json=eviction("old", version="policy/v1beta1"))
    assert r.status_code == 201, r.text
    make_pod(http, ns, "yml", node=None, phase="Pending")
    r = http.post(f"/api/v1/namespaces/{ns}/pods/yml/eviction", headers={"Content-Type": "application/yaml"},
                  content="apiVersion: policy/v1\nkind: Eviction\nmetadata: {name: yml}\n")
    assert r.status_code == 201, r.text


def test_a_protobuf_eviction_as_client_go_sends_it(http, ns):
    make_pod(http, ns, "pb")
    raw = ld(1, ld(1, "pb"), ld(3, ns)) + ld(2, v(1, 4))      # metadata{name, namespace}, deleteOptions{gracePeriodSeconds}
    body = b"k8s\x00" + ld(1, ld(1, "policy/v1"), ld(2, "Eviction")) + ld(2, raw)
    r = http.post(f"/api/v1/namespaces/{ns}/pods/pb/eviction", content=body, headers={"Content-Type": PROTOBUF})
    assert r.status_code == 201, r.text
    assert http.get(f"/api/v1/namespaces/{ns}/pods/pb").json()["metadata"]["deletionGracePeriodSeconds"] == 4


def test_eviction_is_create_only(http, ns):
    make_pod(http, ns, "get")
    assert http.get(f"/api/v1/namespaces/{ns}/pods/get/eviction").status_code == 405


def test_unknown_fields_follow_field_validation(http, ns):
    make_pod(http, ns, "strict", node=None, phase="Pending")
    url = f"/api/v1/namespaces/{ns}/pods/strict/eviction"
    body = {**eviction("strict"), "spec": {}}
    refused = http.post(url, params={"fieldValidation": "Strict"}, json=body)
    assert refused.status_code == 400
    assert refused.json()["message"] == ('Eviction in version "v1" cannot be handled as a Eviction: '
                                         'strict decoding error: unknown field "spec"')
    warned = http.post(url, json=body)
    assert warned.status_code == 201 and 'unknown field \\"spec\\"' in warned.headers["warning"]
