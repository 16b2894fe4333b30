"""The official `kubernetes` Python client against a real boxkube API server."""
from __future__ import annotations

import json

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException


def cm(name: str, labels: dict | None = None, **data: str) -> client.V1ConfigMap:
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels=labels), data=data)


def test_create_read_replace_and_stale_conflict(api, namespace):
    core = client.CoreV1Api(api)
    created = core.create_namespaced_config_map(namespace, cm("c1", a="1"))
    assert created.metadata.uid and created.metadata.resource_version and created.metadata.creation_timestamp
    read = core.read_namespaced_config_map("c1", namespace)
    read.data["a"] = "2"
    replaced = core.replace_namespaced_config_map("c1", namespace, read)
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)
    created.data["a"] = "stale"          # still carries the old resourceVersion
    with pytest.raises(ApiException) as e:
        core.replace_namespaced_config_map("c1", namespace, created)
    assert e.value.status == 409
    body = json.loads(e.value.body)
    assert body["reason"] == "Conflict"
    assert body["message"] == ('Operation cannot be fulfilled on configmaps "c1": the object has been modified; '
                               "please apply your changes to the latest version and try again")
    assert core.read_namespaced_config_map("c1", namespace).data == {"a": "2"}


def test_already_exists(api, namespace):
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, cm("dup", a="1"))
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map(namespace, cm("dup", a="2"))
    assert e.value.status == 409 and json.loads(e.value.body)["reason"] == "AlreadyExists"
    assert core.read_namespaced_config_map("dup", namespace).data == {"a": "1"}


def test_list_with_limit_and_continue(api, namespace):
    core = client.CoreV1Api(api)
    for i in range(7):
        core.create_namespaced_config_map(namespace, cm(f"page-{i}", a=str(i)))
    names, token, pages = [], None, 0
    while True:
        page = core.list_namespaced_config_map(namespace, limit=3, _continue=token)
        names += [i.metadata.name for i in page.items]
        pages += 1
        token = page.metadata._continue
        if not token:
            break
    assert pages == 3
    assert sorted(n for n in names if n.startswith("page-")) == [f"page-{i}" for i in range(7)]


def test_label_and_field_selectors(api, namespace):
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, cm("s1", {"app": "a", "tier": "web"}))
    core.create_namespaced_config_map(namespace, cm("s2", {"app": "b", "tier": "web"}))
    core.create_namespaced_config_map(namespace, cm("s3", {"app": "a"}))
    names = lambda **kw: sorted(i.metadata.name for i in core.list_namespaced_config_map(namespace, **kw).items)
    assert names(label_selector="app=a") == ["s1", "s3"]
    assert names(label_selector="app in (a,b),tier") == ["s1", "s2"]
    assert names(label_selector="!tier,app") == ["s3"]
    assert names(field_selector="metadata.name=s2") == ["s2"]
    with pytest.raises(ApiException) as e:
        core.list_namespaced_config_map(namespace, field_selector="data.a=1")
    assert e.value.status == 400


def test_watch_from_resource_version(api, namespace):
    core = client.CoreV1Api(api)
    first = core.create_namespaced_config_map(namespace, cm("w", a="1"))
    obj = core.read_namespaced_config_map("w", namespace)
    obj.data["a"] = "2"
    core.replace_namespaced_config_map("w", namespace, obj)
    core.delete_namespaced_config_map("w", namespace)
    seen = []
    for ev in watch.Watch().stream(core.list_namespaced_config_map, namespace,
                                   resource_version=first.metadata.resource_version, timeout_seconds=5):
        seen.append((ev["type"], ev["object"].metadata.name, (ev["object"].data or {}).get("a")))
        if ev["type"] == "DELETED":
            break
    assert seen == [("MODIFIED", "w", "2"), ("DELETED", "w", "2")]


def test_label_filtered_watch_sends_deleted_when_object_stops_matching(api, namespace):
    core = client.CoreV1Api(api)
    created = core.create_namespaced_config_map(namespace, cm("m", {"keep": "yes"}))
    core.patch_namespaced_config_map("m", namespace, {"metadata": {"labels": {"keep": "no"}}})
    events = []
    for ev in watch.Watch().stream(core.list_namespaced_config_map, namespace, label_selector="keep=yes",
                                   resource_version=created.metadata.resource_version, timeout_seconds=5):
        events.append(ev["type"])
        break
    assert events == ["DELETED"]


def test_bad_input_changes_nothing(api, namespace):
    core = client.CoreV1Api(api)
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map(namespace, cm("Bad_Name", a="1"))
    body = json.loads(e.value.body)
    assert e.value.status == 422 and body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "metadata.name"
    resp = api.call_api(*api.param_serialize("POST", f"/api/v1/namespaces/{namespace}/configmaps",
                                             header_params={"Content-Type": "application/json"}, body="{not json",
                                             auth_settings=["BearerToken"]))
    resp.read()
    assert resp.status == 400 and json.loads(resp.data)["reason"] == "BadRequest"
    assert core.list_namespaced_config_map(namespace).items == []


def test_list_node_reads_a_node_whose_agent_leaves_out_kube_proxy_version(api):
    # The client's NodeSystemInfo model requires kubeProxyVersion, which kubelets no longer set: the API server
    # prints it anyway ("", as Go does), or list_node() fails to decode the answer.
    core = client.CoreV1Api(api)
    name = "no-proxy-version"
    core.create_node({"metadata": {"name": name}})
    try:
        core.patch_node_status(name, {"status": {"nodeInfo": {
            "machineID": "m", "systemUUID": "s", "bootID": "b", "kernelVersion": "k", "osImage": "o",
            "containerRuntimeVersion": "docker://1", "kubeletVersion": "v1.37.0", "operatingSystem": "linux",
            "architecture": "amd64"}}})
        [node] = [n for n in core.list_node().items if n.metadata.name == name]
        assert node.status.node_info.kube_proxy_version == ""
    finally:
        core.delete_node(name)


def test_create_namespaced_pod_eviction(api, namespace):
    # The client decodes the answer (a Status) into its V1Eviction model, and a 404 into an ApiException.
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(namespace, client.V1Pod(
        metadata=client.V1ObjectMeta(name="evicted"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="nginx")])))
    answer = core.create_namespaced_pod_eviction("evicted", namespace, client.V1Eviction(
        metadata=client.V1ObjectMeta(name="evicted", namespace=namespace),
        delete_options=client.V1DeleteOptions(grace_period_seconds=0)))
    assert answer.kind == "Status"
    assert [p.metadata.name for p in core.list_namespaced_pod(namespace).items] == []   # unbound: gone at once
    with pytest.raises(ApiException) as e:
        core.create_namespaced_pod_eviction("evicted", namespace, client.V1Eviction(
            metadata=client.V1ObjectMeta(name="evicted", namespace=namespace)))
    assert e.value.status == 404 and json.loads(e.value.body)["reason"] == "NotFound"
