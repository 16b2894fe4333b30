"""PATCH semantics: JSON patch, merge patch and strategic merge patch, as kube-apiserver applies them."""
from __future__ import annotations

import copy
import json
from typing import Any, Callable

import pytest

from boxkube.apiserver.errors import APIError
from boxkube.apiserver.patch import (
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    apply_patch,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)

DEPLOYMENT = "io.k8s.api.apps.v1.Deployment"
POD = "io.k8s.api.core.v1.Pod"
PDB = "io.k8s.api.policy.v1.PodDisruptionBudget"


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "frontend"},
                     "annotations": {"team": "blue"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "nginx", "image": "nginx:1.25",
                         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                         "ports": [{"containerPort": 80, "protocol": "TCP"}]},
                        {"name": "sidecar", "image": "busybox:1.36", "args": ["sleep", "infinity"]},
                    ],
                    "volumes": [{"name": "cache", "emptyDir": {"medium": "Memory"}}],
                },
            },
        },
    }


def pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "default",
                     "finalizers": ["a.example.com/x", "b.example.com/y"]},
        "spec": {"containers": [{"name": "app", "image": "app:1"}, {"name": "log", "image": "log:1"},
                                {"name": "proxy", "image": "proxy:1"}]},
    }


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


def smp(original: dict, patch: Any, definition: str | None = DEPLOYMENT) -> dict:
    return apply_patch(STRATEGIC_MERGE_PATCH, original, body(patch), definition)


def api_error(call: Callable[[], Any]) -> APIError:
    with pytest.raises(APIError) as info:
        call()
    return info.value


def containers(obj: dict) -> list[dict]:
    spec = obj["spec"]["template"]["spec"] if obj["kind"] == "Deployment" else obj["spec"]
    return spec["containers"]


# --------------------------------------------------------------------------- dispatch


def test_media_type_parameters_are_ignored() -> None:
    patch = body({"spec": {"replicas": 5}})
    result = apply_patch(MERGE_PATCH + "; charset=utf-8", deployment(), patch, DEPLOYMENT)
    assert result["spec"]["replicas"] == 5


def test_unknown_media_type_is_415_listing_the_patch_types() -> None:
    error = api_error(lambda: apply_patch("application/json", deployment(), b"{}", DEPLOYMENT))
    assert (error.code, error.reason) == (415, "UnsupportedMediaType")
    assert error.message == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, "
        "application/strategic-merge-patch+json, application/apply-patch+yaml")


def test_media_type_match_is_exact_like_upstream() -> None:
    error = api_error(lambda: apply_patch("Application/Merge-Patch+JSON", deployment(), b"{}", DEPLOYMENT))
    assert error.code == 415


@pytest.mark.parametrize("definition", [None, "com.example.v1.Widget"])
def test_strategic_patch_on_a_kind_without_schema_is_415(definition: str | None) -> None:
    error = api_error(lambda: smp({"kind": "Widget"}, {"spec": {"size": 2}}, definition))
    assert error.code == 415
    assert error.message.endswith(
        "accepted media types include: application/json-patch+json, application/merge-patch+json, "
        "application/apply-patch+yaml")
    # The other two still work for such kinds.
    merged = apply_patch(MERGE_PATCH, {"kind": "Widget"}, body({"spec": {"size": 2}}), definition)
    assert merged == {"kind": "Widget", "spec": {"size": 2}}


@pytest.mark.parametrize("media_type, patch", [
    (JSON_PATCH, [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "nginx:1.27"},
                  {"op": "remove", "path": "/metadata/labels/tier"}]),
    (MERGE_PATCH, {"metadata": {"labels": {"tier": None}}, "spec": {"template": {"spec": {"containers": []}}}}),
    (STRATEGIC_MERGE_PATCH, {"metadata": {"labels": {"tier": None}}, "spec": {"template": {"spec": {
        "containers": [{"name": "nginx", "image": "nginx:1.27", "env": [{"name": "A", "$patch": "delete"}]}],
        "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "nginx"}]}}}}),
])
def test_original_is_never_mutated(media_type: str, patch: Any) -> None:
    original = deployment()
    snapshot = copy.deepcopy(original)
    result = apply_patch(media_type, original, body(patch), DEPLOYMENT)
    assert original == snapshot
    assert result != original
    # Nor does the result share nested objects with the original.
    result["spec"]["selector"]["matchLabels"]["app"] = "changed"
    assert original == snapshot


# --------------------------------------------------------------------------- JSON patch


def test_json_patch_add_replace_remove() -> None:
    result = apply_patch(JSON_PATCH, deployment(), body([
        {"op": "add", "path": "/metadata/labels/version", "value": "v2"},
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "nginx:1.27"},
        {"op": "remove", "path": "/spec/template/spec/containers/1"},
        {"op": "add", "path": "/spec/template/spec/containers/0/env/-", "value": {"name": "C", "value": "3"}},
        {"op": "test", "path": "/spec/replicas", "value": 2},
    ]), DEPLOYMENT)
    assert result["metadata"]["labels"] == {"app": "web", "tier": "frontend", "version": "v2"}
    assert [c["name"] for c in containers(result)] == ["nginx"]
    assert containers(result)[0]["image"] == "nginx:1.27"
    assert [e["name"] for e in containers(result)[0]["env"]] == ["A", "B", "C"]


def test_json_patch_failing_test_is_a_bare_422() -> None:
    error = api_error(lambda: apply_patch(JSON_PATCH, deployment(), body([
        {"op": "test", "path": "/spec/replicas", "value": 3},
        {"op": "replace", "path": "/spec/replicas", "value": 4},
    ]), DEPLOYMENT))
    # patch.go wraps every apply failure in NewGenericServerResponse(422), which drops the detail.
    assert error.status() == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "the server rejected our request due to an error in our request",
        "reason": "Invalid", "code": 422,
    }


@pytest.mark.parametrize("operation", [
    {"op": "remove", "path": "/metadata/labels/missing"},
    {"op": "replace", "path": "/spec/paused", "value": True},
    {"op": "add", "path": "/spec/missing/deeper", "value": 1},
    {"op": "move", "from": "/nowhere", "path": "/spec/x"},
    {"op": "frobnicate", "path": "/spec"},
])
def test_json_patch_on_a_missing_path_is_422(operation: dict) -> None:
    error = api_error(lambda: apply_patch(JSON_PATCH, deployment(), body([operation]), DEPLOYMENT))
    assert (error.code, error.reason) == (422, "Invalid")


@pytest.mark.parametrize("raw, validation, message", [
    (b"[{", "", "error decoding patch: unexpected end of JSON input"),
    (b"x", "Strict", "error decoding patch: invalid character 'x' looking for beginning of value"),
    (b"x", "Ignore", "invalid character 'x' looking for beginning of value"),
    (b'{"op": "add"}', "",
     "error decoding patch: json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp"),
    (b'{"op": "add"}', "Ignore", "json: cannot unmarshal object into Go value of type jsonpatch.Patch"),
    (b'["add"]', "Ignore", "json: cannot unmarshal string into Go value of type jsonpatch.Operation"),
    (b'[{"op": 1, "path": "/a"}]', "Warn",
     "error decoding patch: json: cannot unmarshal number into Go struct field jsonPatchOp.op of type string"),
    (b'[{"op": "add", "path": "/a"} {"op": "x"}]', "",
     "error decoding patch: invalid character '{' after array element"),
])
def test_malformed_json_patch_is_400(raw: bytes, validation: str, message: str) -> None:
    error = api_error(lambda: apply_patch(JSON_PATCH, deployment(), raw, DEPLOYMENT, field_validation=validation))
    assert (error.code, error.reason, error.message) == (400, "BadRequest", message)


def test_json_patch_null_body_changes_nothing() -> None:
    assert apply_patch(JSON_PATCH, deployment(), b"null", DEPLOYMENT) == deployment()


def test_json_patch_operation_limit_is_413() -> None:
    operations = [{"op": "test", "path": "/kind", "value": "Deployment"}] * 10001
    error = api_error(lambda: json_patch(deployment(), operations))
    assert (error.code, error.reason) == (413, "RequestEntityTooLarge")
    assert error.message == ("Request entity too large: The allowed maximum operations in a JSON patch is 10000, "
                             "got 10001")


def test_json_patch_replacing_the_object_with_a_list_is_invalid() -> None:
    error = api_error(lambda: json_patch(deployment(), [{"op": "replace", "path": "", "value": [1]}]))
    assert (error.code, error.reason) == (422, "Invalid")
    assert error.message == (
        ' "" is invalid: patch: Invalid value: "[1]": couldn\'t get version/kind; json parse error: '
        'json: cannot unmarshal array into Go value of type struct { APIVersion string '
        '"json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" }')
    assert error.details["causes"][0]["field"] == "patch"


# --------------------------------------------------------------------------- merge patch


def test_merge_patch_replaces_the_containers_list() -> None:
    result = apply_patch(MERGE_PATCH, deployment(), body({"spec": {"template": {"spec": {
        "containers": [{"name": "nginx", "image": "nginx:1.27"}]}}}}), DEPLOYMENT)
    # Lists are atomic in RFC 7386: the sidecar and the env vars are gone.
    assert containers(result) == [{"name": "nginx", "image": "nginx:1.27"}]
    assert result["spec"]["template"]["spec"]["volumes"] == deployment()["spec"]["template"]["spec"]["volumes"]


def test_merge_patch_merges_maps_and_null_deletes() -> None:
    result = merge_patch(deployment(), {
        "metadata": {"labels": {"tier": None, "version": "v2"}, "annotations": None},
        "spec": {"strategy": {"rollingUpdate": {"maxSurge": 1}}},
    })
    assert result["metadata"]["labels"] == {"app": "web", "version": "v2"}
    assert "annotations" not in result["metadata"]
    assert result["spec"]["strategy"] == {"type": "RollingUpdate",
                                          "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}}


def test_merge_patch_drops_nulls_inside_added_values() -> None:
    # evanphx/json-patch prunes nulls from values it adds, in objects and arrays alike.
    result = merge_patch({"spec": {}}, {"spec": {"new": {"a": 1, "b": None, "list": [1, None, {"c": None}]}}})
    assert result == {"spec": {"new": {"a": 1, "list": [1, {}]}}}


@pytest.mark.parametrize("raw, validation, code, message", [
    (b"null", "", 400, "Invalid JSON Patch"),
    (b'"text"', "Ignore", 400, "Invalid JSON Patch"),
    (b"{", "Ignore", 400, "Invalid JSON Patch"),
    (b'{"a" 1}', "Strict", 400, "error decoding patch: invalid character '1' after object key"),
    (b"[1]", "", 400,
     "error decoding patch: json: cannot unmarshal array into Go value of type map[string]interface {}"),
])
def test_malformed_merge_patch(raw: bytes, validation: str, code: int, message: str) -> None:
    error = api_error(lambda: apply_patch(MERGE_PATCH, deployment(), raw, DEPLOYMENT, field_validation=validation))
    assert (error.code, error.message) == (code, message)


def test_lenient_merge_patch_with_an_array_body_is_invalid() -> None:
    # With fieldValidation=Ignore the array becomes the whole document, which cannot decode.
    error = api_error(lambda: apply_patch(MERGE_PATCH, deployment(), b"[1, null]", DEPLOYMENT,
                                          field_validation="Ignore"))
    assert error.code == 422
    assert error.message.startswith(' "" is invalid: patch: Invalid value: "[1]": ')


# --------------------------------------------------------------------------- strategic merge patch


def test_smp_patches_a_container_image_by_name() -> None:
    result = smp(deployment(), {"spec": {"template": {"spec": {"containers": [
        {"name": "sidecar", "image": "busybox:1.37"}]}}}})
    assert [(c["name"], c["image"]) for c in containers(result)] == [("nginx", "nginx:1.25"),
                                                                     ("sidecar", "busybox:1.37")]
    assert containers(result)[1]["args"] == ["sleep", "infinity"]  # untouched fields stay
    assert containers(result)[0] == deployment()["spec"]["template"]["spec"]["containers"][0]


def test_smp_adds_an_env_var_to_one_container() -> None:
    result = smp(deployment(), {"spec": {"template": {"spec": {"containers": [
        {"name": "nginx", "env": [{"name": "B", "value": "two"}, {"name": "C", "value": "3"}]}]}}}})
    env = containers(result)[0]["env"]
    # Server-only items precede a patch item only when the live list had them first, so the
    # new C lands after B (its predecessor in the patch) and A keeps its place before B.
    assert env == [{"name": "A", "value": "1"}, {"name": "B", "value": "two"}, {"name": "C", "value": "3"}]
    assert containers(result)[0]["image"] == "nginx:1.25"


def test_smp_new_list_items_go_before_later_server_items() -> None:
    # upstream mergeSortedSlice: an item unknown to the server wins against server-only items.
    result = smp(deployment(), {"spec": {"template": {"spec": {"containers": [
        {"name": "nginx", "env": [{"name": "Z", "value": "26"}]}]}}}})
    assert [e["name"] for e in containers(result)[0]["env"]] == ["Z", "A", "B"]


def test_smp_follows_patch_order_without_set_element_order() -> None:
    # The example of the "preserve order in strategic merge patch" design.
    original = pod()
    original["spec"]["containers"] = [{"name": "B", "image": "b"}, {"name": "C", "image": "c"},
                                      {"name": "A", "image": "a"}]
    result = smp(original, {"spec": {"containers": [{"name": "A", "image": "a2"}, {"name": "B", "image": "b2"},
                                                    {"name": "D", "image": "d"}]}}, POD)
    assert [(c["name"], c["image"]) for c in result["spec"]["containers"]] == [
        ("C", "c"), ("A", "a2"), ("B", "b2"), ("D", "d")]


def test_smp_deletes_a_container_with_patch_delete() -> None:
    result = smp(pod(), {"spec": {"containers": [{"name": "log", "$patch": "delete"}]}}, POD)
    assert [c["name"] for c in result["spec"]["containers"]] == ["app", "proxy"]


def test_smp_set_element_order_reorders_the_list() -> None:
    result = smp(pod(), {"spec": {
        "$setElementOrder/containers": [{"name": "proxy"}, {"name": "app"}, {"name": "log"}],
        "containers": [{"name": "app", "image": "app:2"}],
    }}, POD)
    assert [(c["name"], c["image"]) for c in result["spec"]["containers"]] == [
        ("proxy", "proxy:1"), ("app", "app:2"), ("log", "log:1")]


def test_smp_set_element_order_interleaves_unlisted_server_items() -> None:
    original = pod()
    original["spec"]["containers"] = [{"name": n, "image": n.lower()} for n in "CBDAE"]
    result = smp(original, {"spec": {
        "$setElementOrder/containers": [{"name": "A"}, {"name": "B"}],
        "containers": [{"name": "A", "image": "a2"}, {"name": "B", "image": "b2"}],
    }}, POD)
    # The design proposal shows C D E A B, but upstream's mergeSortedSlice only lets a
    # server-only item go first when the live list had it before the patch item: E (after A
    # on the server) therefore follows B.
    assert [c["name"] for c in result["spec"]["containers"]] == ["C", "D", "A", "B", "E"]


def test_smp_set_element_order_of_primitives_with_a_deletion_list() -> None:
    original = pod()
    original["metadata"]["finalizers"] = ["a", "b", "c"]
    result = smp(original, {"metadata": {
        "$setElementOrder/finalizers": ["b", "a", "d"],
        "$deleteFromPrimitiveList/finalizers": ["c"],
        "finalizers": ["d"],
    }}, POD)
    assert result["metadata"]["finalizers"] == ["b", "a", "d"]


def test_smp_set_element_order_must_agree_with_the_patch() -> None:
    error = api_error(lambda: smp(pod(), {"spec": {
        "$setElementOrder/containers": [{"name": "app"}, {"name": "log"}],
        "containers": [{"name": "log", "image": "log:2"}, {"name": "app", "image": "app:2"}],
    }}, POD))
    assert error.code == 500
    assert error.message == ("The order in patch list:\n[map[image:log:2 name:log] map[image:app:2 name:app]]\n"
                             " doesn't match $setElementOrder list:\n[map[name:app] map[name:log]]\n")


def test_smp_retain_keys_switches_a_volume_source() -> None:
    result = smp(deployment(), {"spec": {"template": {"spec": {"volumes": [
        {"name": "cache", "$retainKeys": ["configMap", "name"], "configMap": {"name": "web-config"}},
        {"name": "tmp", "emptyDir": {}},
    ]}}}})
    # volumes are "merge,retainKeys": merged by name, and the old emptyDir source is dropped.
    assert result["spec"]["template"]["spec"]["volumes"] == [
        {"name": "cache", "configMap": {"name": "web-config"}},
        {"name": "tmp", "emptyDir": {}},
    ]


def test_smp_retain_keys_switches_deployment_strategy() -> None:
    result = smp(deployment(), {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}})
    assert result["spec"]["strategy"] == {"type": "Recreate"}


def test_smp_retain_keys_must_list_every_patched_field() -> None:
    error = api_error(lambda: smp(deployment(), {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate",
                                                                       "rollingUpdate": {"maxSurge": 1}}}}))
    assert (error.code, error.reason, error.message) == (400, "BadRequest", "invalid patch format of retainKeys")


def test_smp_patch_replace_on_a_list_replaces_it() -> None:
    result = smp(pod(), {"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "only:1",
                                                                        "command": None}]}}, POD)
    assert result["spec"]["containers"] == [{"name": "only", "image": "only:1"}]


def test_smp_patch_replace_and_delete_on_maps() -> None:
    result = smp(deployment(), {"metadata": {"labels": {"$patch": "replace", "app": "api"},
                                             "annotations": {"$patch": "delete"}}})
    assert result["metadata"]["labels"] == {"app": "api"}
    assert result["metadata"]["annotations"] == {}


def test_smp_patch_merge_in_a_list_is_refused() -> None:
    error = api_error(lambda: smp(pod(), {"spec": {"containers": [{"name": "app", "$patch": "merge"}]}}, POD))
    assert (error.code, error.message) == (500, "merging lists cannot yet be specified in the patch")
    assert "reason" not in error.status() or error.status()["reason"] == ""


@pytest.mark.parametrize("patch, message", [
    ({"metadata": {"labels": {"$patch": "merge", "app": "x"}}},
     "unknown patch type: merge in map: map[$patch:merge app:x]"),
    ({"metadata": {"labels": {"$patch": 1}}}, "unknown patch type: %!s(int64=1) in map: map[$patch:1]"),
    ({"spec": {"containers": [{"name": "app", "$patch": "remove"}]}},
     "unknown patch type: remove in map: map[$patch:remove name:app]"),
])
def test_smp_unknown_patch_directive_is_an_error(patch: dict, message: str) -> None:
    original = pod()
    original["metadata"]["labels"] = {"app": "web"}  # a `$patch` map only merges into an existing map
    error = api_error(lambda: smp(original, patch, POD))
    assert (error.code, error.message) == (500, message)


def test_smp_element_without_merge_key_is_an_error() -> None:
    error = api_error(lambda: smp(pod(), {"spec": {"containers": [{"image": "nginx:1.27"}]}}, POD))
    # What `kubectl patch` prints as "Error from server: map: ..."
    assert (error.code, error.message) == (
        500, "map: map[image:nginx:1.27] does not contain declared merge key: name")


def test_smp_merges_primitive_lists_as_sets() -> None:
    result = smp(pod(), {"metadata": {"finalizers": ["c.example.com/z", "a.example.com/x"]}}, POD)
    # Union without duplicates; patch items keep the patch's order, the new one comes first.
    assert result["metadata"]["finalizers"] == ["c.example.com/z", "a.example.com/x", "b.example.com/y"]


def test_smp_delete_from_primitive_list() -> None:
    result = smp(pod(), {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a.example.com/x"]}}, POD)
    assert result["metadata"]["finalizers"] == ["b.example.com/y"]


def test_smp_delete_from_a_missing_primitive_list_is_a_no_op() -> None:
    original = pod()
    del original["metadata"]["finalizers"]
    result = smp(original, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a.example.com/x"]}}, POD)
    assert "finalizers" not in result["metadata"]


def test_smp_delete_from_primitive_list_works_on_a_replace_list() -> None:
    # Upstream deletes from any list with this directive, whatever the field's strategy.
    result = smp(deployment(), {"spec": {"template": {"spec": {"containers": [
        {"name": "sidecar", "$deleteFromPrimitiveList/args": ["infinity"]}]}}}})
    assert containers(result)[1]["args"] == ["sleep"]


@pytest.mark.parametrize("key, message", [
    ("$deleteFromPrimitiveListfinalizers", "invalid patch format of primitive list"),
    ("$setElementOrderfinalizers", "invalid patch format of setElementOrder list"),
])
def test_smp_malformed_parallel_list_key_is_400(key: str, message: str) -> None:
    error = api_error(lambda: smp(pod(), {"metadata": {key: ["a"]}}, POD))
    assert (error.code, error.message) == (400, message)


def test_smp_null_deletes_fields() -> None:
    result = smp(deployment(), {"metadata": {"labels": {"tier": None}}, "spec": {"strategy": None},
                                "status": None})
    assert result["metadata"]["labels"] == {"app": "web"}
    assert "strategy" not in result["spec"]


def test_smp_merges_labels_and_annotations() -> None:
    result = smp(deployment(), {"metadata": {"labels": {"version": "v2"}, "annotations": {"team": "red"}}})
    assert result["metadata"]["labels"] == {"app": "web", "tier": "frontend", "version": "v2"}
    assert result["metadata"]["annotations"] == {"team": "red"}


def test_smp_non_merge_lists_are_replaced() -> None:
    result = smp(deployment(), {"spec": {"template": {"spec": {"containers": [
        {"name": "sidecar", "args": ["sleep", "10"]}]}}}})
    assert containers(result)[1]["args"] == ["sleep", "10"]


def test_smp_replace_strategy_on_a_map() -> None:
    original = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web"},
                "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web", "tier": "frontend"}}}}
    # PodDisruptionBudgetSpec.selector is patchStrategy=replace: no merging inside it.
    result = smp(original, {"spec": {"selector": {"matchLabels": {"app": "api"}}}}, PDB)
    assert result["spec"]["selector"] == {"matchLabels": {"app": "api"}}


def test_smp_unknown_fields_get_merge_patch_semantics() -> None:
    original = deployment()
    original["spec"]["extension"] = {"keep": 1, "drop": 2, "items": [{"name": "a", "v": 1}]}
    result = smp(original, {"spec": {"extension": {"drop": None, "add": 3, "items": [{"name": "b"}]}}})
    assert result["spec"]["extension"] == {"keep": 1, "add": 3, "items": [{"name": "b"}]}


def test_smp_new_fields_are_copied_without_nulls_or_directives() -> None:
    original = pod()
    del original["spec"]["containers"][0]["image"]
    result = smp(original, {"spec": {
        "containers": [{"name": "app", "image": "app:2", "env": [{"name": "X", "value": None},
                                                                 {"name": "GONE", "$patch": "delete"}]}],
        "nodeSelector": {"$patch": "replace", "disk": "ssd"},
    }}, POD)
    assert result["spec"]["containers"][0] == {"name": "app", "image": "app:2", "env": [{"name": "X"}]}
    assert "nodeSelector" not in result["spec"]  # a `$patch` map with nothing to merge into is dropped


def test_smp_list_of_lists_is_unprocessable() -> None:
    original = pod()
    original["metadata"]["finalizers"] = []
    error = api_error(lambda: smp(original, {"metadata": {"finalizers": [["a"]]}}, POD))
    assert (error.code, error.reason) == (422, "Invalid")


def test_smp_mixed_element_types_are_an_error() -> None:
    error = api_error(lambda: smp(pod(), {"metadata": {"finalizers": [1]}}, POD))
    assert (error.code, error.message) == (
        500, "list element types are not identical: [[a.example.com/x b.example.com/y] [1]]")


@pytest.mark.parametrize("raw, message", [
    (b"[]", "json: cannot unmarshal array into Go value of type map[string]interface {}"),
    (b'{"spec": }', "invalid character '}' looking for beginning of value"),
    (b'{"spec": {"a": 1,}}', "invalid character '}' looking for beginning of object key string"),
    (b'{"spec": NaN}', "invalid character 'N' looking for beginning of value"),
    (b"", "unexpected end of JSON input"),
])
def test_malformed_strategic_patch_is_400(raw: bytes, message: str) -> None:
    error = api_error(lambda: apply_patch(STRATEGIC_MERGE_PATCH, deployment(), raw, DEPLOYMENT))
    assert (error.code, error.reason, error.message) == (400, "BadRequest", message)


def test_smp_null_body_changes_nothing() -> None:
    assert apply_patch(STRATEGIC_MERGE_PATCH, deployment(), b"null", DEPLOYMENT) == deployment()


def test_strategic_merge_patch_function_directly() -> None:
    original = pod()
    result = strategic_merge_patch(original, {"spec": {"containers": [{"name": "app", "image": "app:9"}]}}, POD)
    assert result["spec"]["containers"][0]["image"] == "app:9"
    assert original["spec"]["containers"][0]["image"] == "app:1"
