"""Written objects are stored as Go's JSON round trip leaves them (boxkube/apiserver/roundtrip.py).

kube-apiserver decodes a request into the Go struct of its kind and prints the stored object from it:
a zero value of a non-pointer field with omitempty (`nodeName: ""`, `hostNetwork: false`), an empty
list or map with omitempty (`ownerReferences: []`, `labels: {}`) and a JSON null are gone; a set
pointer keeps its zero (`replicas: 0`); structs always print (`status: {}`); map values and free-form
data are what the client sent.
"""
from __future__ import annotations

import json

import yaml

MERGE = {"Content-Type": "application/merge-patch+json"}


def _both(http, path: str, body: dict) -> list[dict]:
    """The create's answer and what a later GET returns."""
    r = http.post(path, json=body)
    assert r.status_code == 201, r.text
    return [r.json(), http.get(f"{path}/{body['metadata']['name']}").json()]


def test_empty_lists_maps_strings_and_false_are_not_stored(http, ns):
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "zeros", "labels": {}, "annotations": {}, "ownerReferences": [], "finalizers": [],
                        "generateName": "", "creationTimestamp": None},
           "spec": {"nodeName": "", "hostNetwork": False, "nodeSelector": {}, "volumes": [], "hostname": "",
                    "containers": [{"name": "c", "image": "busybox", "ports": [], "workingDir": "", "stdin": False,
                                    "env": [{"name": "A", "value": ""}], "args": []}]}}
    for obj in _both(http, f"/api/v1/namespaces/{ns}/pods", pod):
        meta, spec = obj["metadata"], obj["spec"]
        assert not {"labels", "annotations", "ownerReferences", "finalizers", "generateName"} & set(meta)
        assert meta["creationTimestamp"]                     # the server's, not the client's null
        assert not {"nodeName", "hostNetwork", "nodeSelector", "volumes", "hostname"} & set(spec)
        container = spec["containers"][0]
        assert not {"ports", "workingDir", "stdin", "args"} & set(container)
        assert container["env"] == [{"name": "A"}]           # EnvVar.value has omitempty
        assert container["resources"] == {}                  # a struct: always printed


def test_kubectl_get_shows_no_empty_owner_references(cluster, ns):
    manifest = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "shown", "ownerReferences": [], "labels": {}, "finalizers": []},
                "data": {"k": "v"}}
    cluster.kubectl("-n", ns, "create", "-f", "-", input=json.dumps(manifest))
    shown = yaml.safe_load(cluster.kubectl("-n", ns, "get", "configmap", "shown", "-o", "yaml").stdout)
    assert not {"ownerReferences", "labels", "finalizers"} & set(shown["metadata"])
    assert "ownerReferences" not in cluster.kubectl("-n", ns, "get", "configmap", "shown", "-o", "yaml").stdout


def test_pointer_zeros_are_kept_and_plain_zeros_dropped(http, ns):
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "zero", "generation": 0},
                  "spec": {"replicas": 0, "revisionHistoryLimit": 0, "paused": False, "minReadySeconds": 0,
                           "selector": {"matchLabels": {"app": "zero"}, "matchExpressions": []},
                           "template": {"metadata": {"labels": {"app": "zero"}, "creationTimestamp": None},
                                        "spec": {"containers": [{"name": "c", "image": "busybox"}],
                                                 "enableServiceLinks": False}}}}
    for obj in _both(http, f"/apis/apps/v1/namespaces/{ns}/deployments", deployment):
        spec = obj["spec"]
        assert spec["replicas"] == 0 and spec["revisionHistoryLimit"] == 0        # *int32: set to 0
        assert "paused" not in spec and "minReadySeconds" not in spec            # bool, int32 with omitempty
        assert spec["selector"] == {"matchLabels": {"app": "zero"}}
        assert spec["template"]["metadata"] == {"labels": {"app": "zero"}}       # creationTimestamp: omitzero
        assert spec["template"]["spec"]["enableServiceLinks"] is False           # *bool: kept
        assert obj["metadata"]["generation"] == 1


def test_null_is_the_go_zero_value(http, ns):
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nulls", "labels": None},
                  "spec": {"replicas": None, "selector": {"matchLabels": {"app": "n"}},
                           "template": {"metadata": {"labels": {"app": "n"}},
                                        "spec": {"terminationGracePeriodSeconds": None, "nodeName": None,
                                                 "containers": [{"name": "c", "image": "busybox",
                                                                 "resources": None, "command": None}]}}}}
    for obj in _both(http, f"/apis/apps/v1/namespaces/{ns}/deployments", deployment):
        assert "labels" not in obj["metadata"]
        assert obj["spec"]["replicas"] == 1                      # a nil pointer: defaulted
        pod_spec = obj["spec"]["template"]["spec"]
        assert pod_spec["terminationGracePeriodSeconds"] == 30 and "nodeName" not in pod_spec
        assert pod_spec["containers"][0]["resources"] == {} and "command" not in pod_spec["containers"][0]


def test_status_struct_is_printed_and_its_zeros_dropped(http, ns):
    base = f"/apis/apps/v1/namespaces/{ns}"
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "st"}, "status": {},
                  "spec": {"selector": {"matchLabels": {"app": "st"}},
                           "template": {"metadata": {"labels": {"app": "st"}},
                                        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
    for obj in _both(http, f"{base}/deployments", deployment):
        assert obj["status"] == {}
    current = http.get(f"{base}/deployments/st").json()
    current["status"] = {"replicas": 0, "observedGeneration": 0, "conditions": [], "collisionCount": 0}
    r = http.put(f"{base}/deployments/st/status", json=current)
    assert r.status_code == 200, r.text
    for obj in (r.json(), http.get(f"{base}/deployments/st").json()):
        assert obj["status"] == {"collisionCount": 0}        # DeploymentStatus: all omitempty but *collisionCount

    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "st"},
          "spec": {"selector": {"matchLabels": {"app": "st"}},
                   "template": {"metadata": {"labels": {"app": "st"}},
                                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
    assert http.post(f"{base}/replicasets", json=rs).status_code == 201
    r = http.patch(f"{base}/replicasets/st/status", headers=MERGE,
                   content=json.dumps({"status": {"replicas": 0, "readyReplicas": 0, "fullyLabeledReplicas": 0}}))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == {"replicas": 0}              # ReplicaSetStatus.replicas has no omitempty


def test_patch_and_update_results_are_normalised(http, ns):
    path = f"/apis/apps/v1/namespaces/{ns}/deployments"
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "patched", "labels": {"a": "b"}},
                  "spec": {"selector": {"matchLabels": {"app": "p"}},
                           "template": {"metadata": {"labels": {"app": "p"}},
                                        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
    assert http.post(path, json=deployment).status_code == 201
    r = http.patch(f"{path}/patched", headers=MERGE, content=json.dumps({
        "metadata": {"labels": None, "annotations": {}, "ownerReferences": []},
        "spec": {"paused": False, "replicas": 0, "template": {"spec": {"hostNetwork": False}}}}))
    assert r.status_code == 200, r.text
    for obj in (r.json(), http.get(f"{path}/patched").json()):
        assert not {"labels", "annotations", "ownerReferences"} & set(obj["metadata"])
        assert "paused" not in obj["spec"] and obj["spec"]["replicas"] == 0
        assert "hostNetwork" not in obj["spec"]["template"]["spec"]
    current = http.get(f"{path}/patched").json()
    current["metadata"]["finalizers"] = []
    current["spec"]["template"]["spec"]["dnsConfig"] = {"nameservers": [], "searches": []}
    r = http.put(f"{path}/patched", json=current)
    assert r.status_code == 200, r.text
    assert "finalizers" not in r.json()["metadata"]
    assert r.json()["spec"]["template"]["spec"]["dnsConfig"] == {}     # a pointer to a struct: kept, its lists not


def test_map_values_and_free_form_data_are_kept(http, ns):
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "cm", "annotations": {"empty": ""}, "labels": {"l": ""}},
          "data": {"empty": "", "k": "v"}, "binaryData": {}}
    for obj in _both(http, f"/api/v1/namespaces/{ns}/configmaps", cm):
        assert obj["data"] == {"empty": "", "k": "v"}         # map values are not omitempty
        assert obj["metadata"]["annotations"] == {"empty": ""} and obj["metadata"]["labels"] == {"l": ""}
        assert "binaryData" not in obj

    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"empty": ""}, "type": "Opaque"}
    for obj in _both(http, f"/api/v1/namespaces/{ns}/secrets", secret):
        assert obj["data"] == {"empty": ""}

    raw = {"spec": {"template": {"x": "", "y": [], "z": False, "n": None, "m": {}}}}
    revision = {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {"name": "rev"},
                "data": raw, "revision": 0}
    for obj in _both(http, f"/apis/apps/v1/namespaces/{ns}/controllerrevisions", revision):
        assert obj["data"] == raw                             # a RawExtension: stored as sent
        assert obj["revision"] == 0                           # no omitempty
