"""roundtrip.normalize: an object as Go's JSON round trip leaves it, field by field."""
from __future__ import annotations

import copy

from boxkube.apiserver import roundtrip

POD = "io.k8s.api.core.v1.Pod"


def normalized(definition: str, obj: dict) -> dict:
    obj = copy.deepcopy(obj)
    roundtrip.normalize(definition, obj)
    return obj


def test_plain_zeros_go_and_pointer_zeros_stay():
    pod = {"spec": {"hostNetwork": False, "nodeName": "", "priority": 0, "enableServiceLinks": False,
                    "activeDeadlineSeconds": 0, "hostname": "h", "securityContext": {}}}
    assert normalized(POD, pod)["spec"] == {"priority": 0, "enableServiceLinks": False, "activeDeadlineSeconds": 0,
                                            "hostname": "h", "securityContext": {}}


def test_fields_without_omitempty_keep_zeros():
    status = {"containerStatuses": [{"name": "", "ready": False, "restartCount": 0, "image": "", "imageID": ""}]}
    assert normalized(POD, {"status": status})["status"] == status


def test_lists_and_maps():
    pod = {"metadata": {"labels": {}, "finalizers": [], "annotations": {"a": ""}},
           "spec": {"containers": [], "volumes": [], "nodeSelector": {}}}
    assert normalized(POD, pod) == {"metadata": {"annotations": {"a": ""}}, "spec": {"containers": []}}


def test_nulls():
    pod = {"metadata": {"labels": None, "creationTimestamp": None, "deletionTimestamp": None},
           "spec": {"containers": [{"name": None, "resources": None, "args": ["a", None], "env": None,
                                    "livenessProbe": {"httpGet": {"port": None}}}],
                    "nodeSelector": {"k": None}, "priority": None, "affinity": None},
           "status": None}
    assert normalized(POD, pod) == {
        "metadata": {},
        "spec": {"containers": [{"name": "", "resources": {}, "args": ["a", ""],
                                 "livenessProbe": {"httpGet": {"port": 0}}}],
                 "nodeSelector": {"k": ""}},
        "status": {}}
    selector = normalized("io.k8s.api.apps.v1.Deployment", {"spec": {"selector": None, "replicas": None}})
    assert selector == {"spec": {"selector": None}}                 # *LabelSelector without omitempty
    quantities = normalized(POD, {"spec": {"containers": [{"resources": {"limits": {"cpu": None}}}]}})
    assert quantities["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "0"}}
    secret = normalized("io.k8s.api.core.v1.Secret", {"data": {"k": None, "e": ""}})
    assert secret == {"data": {"k": None, "e": ""}}                  # a nil []byte prints null


def test_omitzero_time():
    for value in (None, "0001-01-01T00:00:00Z"):
        assert normalized(POD, {"metadata": {"creationTimestamp": value}}) == {"metadata": {}}
    conditions = [{"type": "Ready", "status": "True", "lastProbeTime": None, "lastTransitionTime": None}]
    assert normalized(POD, {"status": {"conditions": conditions}})["status"]["conditions"] == conditions


def test_embedded_structs_are_inlined():
    volume = {"name": "v", "hostPath": {"path": "/x", "type": ""}, "emptyDir": {"medium": ""}, "secret": None}
    assert normalized(POD, {"spec": {"volumes": [volume]}})["spec"]["volumes"] == [
        {"name": "v", "hostPath": {"path": "/x", "type": ""}, "emptyDir": {}}]


def test_what_the_table_does_not_describe_is_untouched():
    unknown = {"spec": {"x": "", "hostNetwork": False}, "custom": {"a": []}}
    assert normalized("io.example.v1.Gadget", unknown) == unknown
    pod = {"apiVersion": "", "kind": "", "spec": {"notAField": "", "containers": [{"name": "c", "extra": []}]}}
    assert normalized(POD, pod) == pod
    raw = {"data": {"x": "", "y": [], "z": None}, "revision": 0}
    assert normalized("io.k8s.api.apps.v1.ControllerRevision", raw) == raw
    managed = {"metadata": {"managedFields": [{"manager": "m", "fieldsType": "FieldsV1", "fieldsV1": {"f:a": {}}}]}}
    assert normalized(POD, managed) == managed


def test_wrong_types_are_left_for_validation():
    pod = {"spec": {"hostNetwork": 0, "nodeName": 0, "priority": "0", "containers": {"a": 1}, "volumes": "",
                    "securityContext": []}}
    assert normalized(POD, pod) == pod


def test_missing_scalars_go_always_prints_are_added_with_their_zero():
    # the kubelet no longer fills nodeInfo.kubeProxyVersion; kube-apiserver still prints it ("", no omitempty)
    info = {"machineID": "m", "kubeletVersion": "v1.37.0"}
    node = normalized("io.k8s.api.core.v1.Node", {"status": {"nodeInfo": info}})
    assert node["status"]["nodeInfo"]["kubeProxyVersion"] == ""
    assert node["status"]["nodeInfo"]["machineID"] == "m"
    # omitempty fields stay out, and nothing is added where the object has no such message
    assert "hostname" not in normalized(POD, {"spec": {}})["spec"]
