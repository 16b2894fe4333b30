"""Kubernetes protobuf request bodies: the wire reader, the special types, errors, and the field table."""
from __future__ import annotations

import json
from importlib import resources

import pytest

from boxkube.apiserver import codec, errors, protobuf, schema
from boxkube.apiserver.resources import RESOURCES
from tests.pb_encoding import ld, v, varint

# -- test messages -------------------------------------------------------------------


def entry(number: int, key: str, value: bytes | str) -> bytes:
    return ld(number, ld(1, key), ld(2, value))


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    return protobuf.MAGIC + ld(1, ld(1, api_version), ld(2, kind)) + ld(2, raw)


def decode(api_version: str, kind: str, *fields: bytes) -> dict:
    return protobuf.decode(envelope(api_version, kind, b"".join(fields)))


# What kubectl 1.37 sent for `kubectl create deployment web --image=nginx:1.25 --replicas=0 --port=80 -n default`:
# every non-pointer field is on the wire, set or not.
KUBECTL_DEPLOYMENT = bytes.fromhex(
    "6b3873000a150a07617070732f7631120a4465706c6f796d656e7412c4010a260a0377656212001a0764656661756c7422002a00"
    "3200380042005a0a0a036170701203776562128b010800120c0a0a0a0361707012037765621a710a1c0a0012001a0022002a0032"
    "00380042005a0a0a036170701203776562125112330a056e67696e78120a6e67696e783a312e32352a00320a0a00100018502200"
    "2a0042006a007200800100880100900100a201001a00320042004a0052005800600068008201008a01009a0100c2010022020a00"
    "280038001a0c0800100018002000280038001a002200")


def test_kubectl_deployment_decodes_to_what_kubectl_prints_as_json():
    assert protobuf.decode(KUBECTL_DEPLOYMENT) == {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25",
                                                       "ports": [{"containerPort": 80}], "resources": {}}]}},
                 "strategy": {}},
        "status": {}}


# -- scalars and presence ----------------------------------------------------------


def test_zero_values_follow_go_json():
    obj = decode("apps/v1", "Deployment",
                 ld(1, ld(1, "d"), ld(2, ""), v(7, 0)),               # name, generateName "", generation 0
                 ld(2, v(1, 0), v(5, 0), v(7, 0), v(6, 0)))           # replicas 0 (a pointer), minReadySeconds,
    assert obj["metadata"] == {"name": "d"}                           # paused, revisionHistoryLimit 0 (a pointer)
    assert obj["spec"] == {"replicas": 0, "revisionHistoryLimit": 0}


def test_pointer_bool_false_is_kept_and_plain_false_dropped():
    obj = decode("v1", "ServiceAccount", ld(1, ld(1, "sa")), v(4, 0))
    assert obj["automountServiceAccountToken"] is False
    pod = decode("v1", "Pod", ld(2, v(11, 0), v(11, 1)))              # hostNetwork false, then true: last wins
    assert pod["spec"] == {"hostNetwork": True}
    assert decode("v1", "Pod", ld(2, v(11, 0)))["spec"] == {}


def test_fields_without_omitempty_keep_their_zero():
    pod = decode("v1", "Pod", ld(2, ld(2, ld(1, ""), ld(2, "busybox"))))
    assert pod["spec"]["containers"] == [{"name": "", "image": "busybox"}]


def test_int32_and_int64_widths_and_signs():
    pod = decode("v1", "Pod", ld(2, v(4, -1), v(5, 2**40)))           # terminationGracePeriodSeconds, activeDeadline
    assert pod["spec"] == {"terminationGracePeriodSeconds": -1, "activeDeadlineSeconds": 2**40}
    d = decode("apps/v1", "Deployment", ld(2, v(1, -5), v(6, 2**32 + 7)))
    assert d["spec"] == {"replicas": -5, "revisionHistoryLimit": 7}   # Go truncates to int32


def test_repeated_packed_and_unpacked():
    unpacked = ld(14, v(4, 1), v(4, 2))                                # PodSecurityContext.supplementalGroups
    packed = ld(14, ld(4, varint(3), varint(2**33)))
    assert decode("v1", "Pod", ld(2, unpacked))["spec"]["securityContext"] == {"supplementalGroups": [1, 2]}
    assert decode("v1", "Pod", ld(2, packed))["spec"]["securityContext"] == {"supplementalGroups": [3, 2**33]}
    pod = decode("v1", "Pod", ld(2, ld(2, ld(1, "c"), ld(3, "sh"), ld(3, "-c"))))
    assert pod["spec"]["containers"][0]["command"] == ["sh", "-c"]


def test_strings_with_invalid_utf8_become_replacement_characters():
    assert decode("v1", "Namespace", ld(1, ld(1, b"a\xffb")))["metadata"]["name"] == "a\ufffdb"


# -- maps and bytes --------------------------------------------------------------------


def test_maps_of_strings_bytes_and_quantities():
    secret = decode("v1", "Secret", ld(1, ld(1, "s"), entry(11, "app", "x")),
                    entry(2, "bin", b"\xff\x00"), entry(2, "empty", b""), entry(4, "plain", "text"), ld(3, "Opaque"))
    assert secret == {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "labels": {"app": "x"}},
                      "data": {"bin": "/wA=", "empty": ""}, "stringData": {"plain": "text"}, "type": "Opaque"}
    cm = decode("v1", "ConfigMap", entry(3, "blob", b"\x00\x01"), entry(2, "k", "v"))
    assert cm["binaryData"] == {"blob": "AAE="} and cm["data"] == {"k": "v"}
    limits = ld(8, entry(1, "cpu", ld(1, "500m")), entry(1, "memory", ld(1, "64Mi")))
    pod = decode("v1", "Pod", ld(2, ld(2, ld(1, "c"), limits)))
    assert pod["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "500m", "memory": "64Mi"}}


def test_map_entry_missing_a_part_has_its_zero_value():
    cm = decode("v1", "ConfigMap", ld(2, ld(1, "k")), ld(2, ld(2, "v")))
    assert cm["data"] == {"k": "", "": "v"}
    pod = decode("v1", "Pod", ld(2, ld(2, ld(1, "c"), ld(8, ld(1, ld(1, "cpu"))))))
    assert pod["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "0"}}


# -- special types ------------------------------------------------------------------------


def test_time_and_micro_time():
    meta = ld(1, ld(1, "e"), ld(8, ""), ld(9, v(1, 1704164645), v(2, 999_000_000)))
    event = decode("v1", "Event", meta, ld(10, v(1, 1704164645), v(2, 123_456_789)), ld(6, v(1, 0), v(2, 0)))
    assert event["metadata"] == {"name": "e", "deletionTimestamp": "2024-01-02T03:04:05Z"}  # zero creation: omitzero
    assert event["eventTime"] == "2024-01-02T03:04:05.123456Z"
    assert event["firstTimestamp"] == "1970-01-01T00:00:00Z"           # a set epoch is not the zero time
    assert decode("v1", "Event", ld(7, ""))["lastTimestamp"] is None  # the zero time prints null
    assert decode("v1", "Event", ld(10, ""))["eventTime"] is None


def test_time_out_of_range():
    with pytest.raises(protobuf.DecodeError, match="year outside of range"):
        decode("v1", "Event", ld(6, v(1, 10**12)))


def test_int_or_string():
    def port(*target: bytes):
        svc = decode("v1", "Service", ld(2, ld(1, v(3, 80), ld(4, *target))))
        return svc["spec"]["ports"][0]["targetPort"]
    assert port(v(2, 8080)) == 8080
    assert port(v(1, 1), ld(3, "http")) == "http"
    assert port() == 0
    with pytest.raises(protobuf.DecodeError, match="impossible IntOrString.Type"):
        port(v(1, 2))


def test_raw_extension_and_fields_v1():
    rev = decode("apps/v1", "ControllerRevision", ld(1, ld(1, "r")), ld(2, ld(1, b'{"spec":{"a":1}}')), v(3, 2))
    assert rev["data"] == {"spec": {"a": 1}} and rev["revision"] == 2
    assert decode("apps/v1", "ControllerRevision", ld(2, b""))["data"] is None
    managed = ld(17, ld(1, "kubectl"), ld(2, "Update"), ld(6, "FieldsV1"), ld(7, ld(1, b'{"f:data":{}}')))
    assert decode("v1", "ConfigMap", ld(1, managed))["metadata"]["managedFields"] == [
        {"manager": "kubectl", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {}}}]
    with pytest.raises(protobuf.DecodeError, match="RawExtension: raw is not JSON"):
        decode("apps/v1", "ControllerRevision", ld(2, ld(1, b"{nope")))


def test_embedded_structs_are_inlined():
    volume = ld(1, ld(1, "v"), ld(2, ld(19, ld(1, ld(1, "cm")), v(3, 0o644))))  # Volume{VolumeSource{ConfigMap}}
    pod = decode("v1", "Pod", ld(2, volume))
    assert pod["spec"]["volumes"] == [{"name": "v", "configMap": {"name": "cm", "defaultMode": 0o644}}]


def test_delete_options_and_eviction():
    opts = decode("v1", "DeleteOptions", v(1, 0), ld(4, "Foreground"), ld(5, "All"))
    assert opts == {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                    "propagationPolicy": "Foreground", "dryRun": ["All"]}
    eviction = decode("policy/v1", "Eviction", ld(1, ld(1, "p")), ld(2, v(1, 30)))
    assert eviction["deleteOptions"] == {"gracePeriodSeconds": 30}


def test_unknown_fields_of_every_wire_type_are_skipped():
    unknown = v(99, 1) + varint(98 << 3 | 1) + b"\0" * 8 + varint(97 << 3 | 5) + b"\0" * 4 + ld(96, "x")
    assert decode("v1", "Namespace", ld(1, ld(1, "ns"), unknown), unknown)["metadata"] == {"name": "ns"}


def test_envelope_content_type_fields_are_ignored():
    body = envelope("v1", "Namespace", ld(1, ld(1, "ns"))) + ld(3, "") + ld(4, "application/vnd.kubernetes.protobuf")
    assert protobuf.decode(body)["metadata"] == {"name": "ns"}


# -- malformed input ----------------------------------------------------------------------


@pytest.mark.parametrize("body, message", [
    (b"", "empty data"),
    (b'{"kind":"Namespace"}', "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"),
    (b"k8s\x00", "empty body"),
    (b"k8s\x00\x0a", "unexpected EOF"),
    (b"k8s\x00\x0a\x05\x0a\x01", "unexpected EOF"),
    (b"k8s\x00\x0a" + b"\xff" * 10, "proto: integer overflow"),
    (b"k8s\x00\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "proto: negative length found during unmarshaling"),
    (b"k8s\x00\x00\x00", "proto: Unknown: illegal tag 0 (wire type 0)"),
    (b"k8s\x00\x0c", "proto: Unknown: wiretype end group for non-group"),
    (b"k8s\x00\x0b", "proto: illegal wireType 3"),
    (b"k8s\x00\x08\x01", "proto: wrong wireType = 0 for field TypeMeta"),
    (b"k8s\x00" + ld(2, "raw"), """Object 'Kind' is missing in 'runtime.TypeMeta{APIVersion:"", Kind:""}'"""),
])
def test_malformed_envelopes(body, message):
    with pytest.raises(protobuf.DecodeError) as e:
        protobuf.decode(body)
    assert str(e.value) == message and e.value.kind == ""


@pytest.mark.parametrize("raw, message", [
    (ld(1, ld(1, "x"))[:-1], "unexpected EOF"),
    (v(1, 5), "proto: wrong wireType = 0 for field metadata"),
    (ld(1, v(1, 5)), "proto: wrong wireType = 0 for field name"),
    (ld(1, ld(11, v(1, 1))), "proto: wrong wireType = 0 for field key"),
])
def test_malformed_objects_name_the_kind(raw, message):
    with pytest.raises(protobuf.DecodeError) as e:
        protobuf.decode(envelope("v1", "Namespace", raw))
    assert (str(e.value), e.value.api_version, e.value.kind) == (message, "v1", "Namespace")


def test_unknown_kind():
    with pytest.raises(protobuf.DecodeError, match='no kind "Gadget" is registered for version "v1"'):
        protobuf.decode(envelope("v1", "Gadget", b""))


def test_codec_turns_failures_into_upstreams_400s():
    pb = "application/vnd.kubernetes.protobuf"
    with pytest.raises(errors.APIError) as e:
        codec.decode_body(pb, envelope("apps/v1", "Deployment", v(1, 1)))
    assert (e.value.code, e.value.reason) == (400, "BadRequest")
    assert e.value.message == 'Deployment in version "v1" cannot be handled as a Deployment: ' \
                              "proto: wrong wireType = 0 for field metadata"
    with pytest.raises(errors.APIError) as e:
        codec.decode_body(pb, b'{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"x"}}')
    assert e.value.code == 400
    assert e.value.message == ("the object provided is unrecognized: provided data does not appear to be a protobuf "
                               'message, expected prefix [107 56 115 0] ({"apiVersion":"v1","kind":"Nam ...)')
    with pytest.raises(errors.APIError) as e:
        codec.decode_body(pb, b"k8s\x00\x0a")
    assert e.value.message == "the object provided is unrecognized: unexpected EOF (6b3873000a)"
    assert codec.decode_body(f"{pb}; charset=utf-8", envelope("v1", "Namespace", ld(1, ld(1, "n"))))["metadata"] \
        == {"name": "n"}


def test_protobuf_is_an_object_media_type():
    assert codec.check_media_type("application/vnd.kubernetes.protobuf", codec.OBJECT_TYPES) == codec.PROTOBUF


# -- the table ------------------------------------------------------------------------------


def _raw_table() -> dict:
    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        assert len(keys) == len(set(keys)), f"duplicate keys {keys}"
        return dict(pairs)
    with (resources.files("boxkube.apiserver") / "protobuf_fields.json").open("rb") as f:
        return json.load(f, object_pairs_hook=no_duplicates)


def test_table_field_names_and_types_match_the_openapi_schema():
    table = protobuf.table()
    _raw_table()                                    # field numbers are unique per message
    embedded_in = {f[1]: parent for parent, fields in table.items() for f in fields.values() if f[0] == ""}
    for name, fields in table.items():
        owner = name
        while owner not in schema.definitions():    # an embedded struct's fields are its parent's properties
            owner = embedded_in[owner]
        props = schema.definition(owner)["properties"]
        json_names = [f[0] for f in fields.values() if f[0]]
        assert len(json_names) == len(set(json_names)), name
        for number, (json_name, kind, flags) in fields.items():
            assert number > 0 and flags in ("", "z", "zp", "zn", "r", "rz", "m", "mz"), (name, number)
            if kind in ("string", "int32", "int64", "bool", "bytes"):
                assert json_name in props, f"{name}.{json_name}"
                continue
            assert kind in table or kind in protobuf._SPECIAL, f"{name}.{json_name}: {kind}"
            if json_name:
                prop = props[json_name]
                node = prop.get("items") if flags[:1] == "r" else prop.get("additionalProperties") if flags[:1] == "m" else prop
                assert schema.ref_name(node) == kind, f"{name}.{json_name}"


def test_every_served_kind_has_a_message():
    table = protobuf.table()
    for rt in RESOURCES:
        assert schema.definition_for(rt.group, rt.version, rt.kind) in table, rt.kind
    for group, version, kind in [("autoscaling", "v1", "Scale"), ("", "v1", "DeleteOptions"),
                                 ("apps", "v1", "DeleteOptions"), ("policy", "v1", "Eviction")]:
        assert schema.definition_for(group, version, kind) in table, kind
