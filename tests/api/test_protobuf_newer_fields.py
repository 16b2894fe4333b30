"""Protobuf bodies with fields newer than k8s-pb 0.9.0 (Kubernetes 1.34): their numbers come from kubectl
1.37's Go struct tags, and what they carry must arrive in the stored object, as from a JSON body."""
from __future__ import annotations

from tests.pb_encoding import ld, v

PROTOBUF = "application/vnd.kubernetes.protobuf"


def pod_body(name: str) -> bytes:
    """A Pod whose spec uses fields added in Kubernetes 1.35-1.37 (numbers from kubectl's struct tags)."""
    probe = ld(10,                                                    # Container.livenessProbe
               ld(1, ld(2, ld(1, "/healthz"), ld(2, v(2, 8080)),      # ProbeHandler.httpGet: path, port,
                        ld(6, "HTTP"))),                              # protocol (new)
               v(4, 15))                                              # periodSeconds
    container = ld(2, ld(1, "app"), ld(2, "busybox:1.36"),
                   ld(9, ld(1, "scratch"), ld(3, "/scratch"),         # volumeMounts[0]: name, mountPath,
                      ld(8, "nosuid"), ld(8, "noexec")),              # bindMountOptions (new, repeated)
                   probe)
    volume = ld(1, ld(1, "scratch"), ld(2, ld(2, v(3, 0o750))))       # Volume{VolumeSource{emptyDir{mode (new)}}}
    spec = ld(2, volume, container,
              ld(43, ld(1, "group-a")),                               # PodSpec.schedulingGroup (new message)
              ld(44, ld(1, "acme.io/drainer"), v(2, 0)))              # evictionResponders: priority 0 (*int32)
    raw = ld(1, ld(1, name)) + spec
    return b"k8s\x00" + ld(1, ld(1, "v1"), ld(2, "Pod")) + ld(2, raw)


NEWER = {
    "schedulingGroup": {"podGroupName": "group-a"},
    "evictionResponders": [{"name": "acme.io/drainer", "priority": 0}],
}


def test_newer_fields_in_a_protobuf_body_are_stored(http, ns):
    r = http.post(f"/api/v1/namespaces/{ns}/pods", content=pod_body("newer"), headers={"Content-Type": PROTOBUF})
    assert r.status_code == 201, r.text
    stored = http.get(f"/api/v1/namespaces/{ns}/pods/newer").json()
    spec = stored["spec"]
    assert {k: spec.get(k) for k in NEWER} == NEWER
    assert spec["volumes"] == [{"name": "scratch", "emptyDir": {"mode": 0o750}}]
    container = spec["containers"][0]
    assert container["volumeMounts"] == [{"name": "scratch", "mountPath": "/scratch",
                                          "bindMountOptions": ["nosuid", "noexec"]}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 8080, "protocol": "HTTP",
                                                     "scheme": "HTTP"}


def test_protobuf_and_json_bodies_store_the_same_pod(http, ns):
    assert http.post(f"/api/v1/namespaces/{ns}/pods", content=pod_body("from-pb"),
                     headers={"Content-Type": PROTOBUF}).status_code == 201
    from_pb = http.get(f"/api/v1/namespaces/{ns}/pods/from-pb").json()
    as_json = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "from-json"}, "spec": {
        **NEWER,
        "volumes": [{"name": "scratch", "emptyDir": {"mode": 0o750}}],
        "containers": [{"name": "app", "image": "busybox:1.36",
                        "volumeMounts": [{"name": "scratch", "mountPath": "/scratch",
                                          "bindMountOptions": ["nosuid", "noexec"]}],
                        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080, "protocol": "HTTP"},
                                          "periodSeconds": 15}}]}}
    assert http.post(f"/api/v1/namespaces/{ns}/pods", json=as_json).status_code == 201
    from_json = http.get(f"/api/v1/namespaces/{ns}/pods/from-json").json()
    assert from_pb["spec"] == from_json["spec"]
