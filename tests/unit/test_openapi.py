"""The /openapi/v3 and /openapi/v2 documents: shape, self-containment, and what kubectl looks for."""
from __future__ import annotations

import hashlib
import json
import re

import pytest

from boxkube.apiserver import openapi, resources

GVS = resources.GROUP_VERSIONS


def _gv_key(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _walk(node, path=()):
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, path + (i,))


def _refs(doc, prefix):
    for path, node in _walk(doc):
        ref = node.get("$ref")
        if isinstance(ref, str):
            assert ref.startswith(prefix), (path, ref)
            yield path, ref[len(prefix):]


# --------------------------------------------------------------------------- index


def test_index_lists_every_group_version_with_its_hash():
    paths = openapi.v3_index()["paths"]
    for group, version in GVS:
        key = _gv_key(group, version)
        assert key in paths, key
        url = paths[key]["serverRelativeURL"]
        assert url == f"/openapi/v3/{key}?hash={openapi.document_hash(group, version)}"
    # the group-only and root documents kube-apiserver also lists
    assert {"api", "apis", "apis/apps"} <= set(paths)


def test_index_keys_parse_like_client_go():
    # client-go's openapi3.PathToGroupVersion: api/<v> or apis/<g>/<v>; others are skipped
    gvs = set()
    for key in openapi.v3_index()["paths"]:
        parts = key.split("/")
        if parts[0] == "api" and len(parts) == 2:
            gvs.add(("", parts[1]))
        elif parts[0] == "apis" and len(parts) == 3:
            gvs.add((parts[1], parts[2]))
    assert gvs == set(GVS)


def test_hash_is_upper_hex_sha512_of_the_served_bytes():
    for key in openapi.v3_keys():
        data = openapi.v3_document_bytes_at(key)
        assert openapi.document_hash_at(key) == hashlib.sha512(data).hexdigest().upper()
        assert re.fullmatch(r"[0-9A-F]{128}", openapi.document_hash_at(key))
        assert json.loads(data) == openapi.v3_document_at(key)


def test_documents_are_built_once():
    assert openapi.v3_document("apps", "v1") is openapi.v3_document("apps", "v1")
    assert openapi.v3_document_bytes("apps", "v1") is openapi.v3_document_bytes("apps", "v1")
    assert openapi.v3_document_at("/apis/apps/v1/") is openapi.v3_document("apps", "v1")


def test_unknown_documents():
    assert openapi.v3_document("apps", "v9") is None
    assert openapi.v3_document("nope.example.com", "v1") is None
    assert openapi.v3_document_bytes("apps", "v9") is None
    assert openapi.document_hash("apps", "v9") is None
    assert openapi.v3_document_at("apis/apps/v1/extra") is None


# --------------------------------------------------------------------------- documents


@pytest.mark.parametrize("key", openapi.v3_keys())
def test_every_document_is_openapi_3_and_self_contained(key):
    doc = openapi.v3_document_at(key)
    assert doc["openapi"] == "3.0.0"
    assert doc["info"]["title"] == "Kubernetes"
    assert doc["paths"]
    schemas = doc["components"]["schemas"]
    assert schemas
    missing = {name for _, name in _refs(doc, "#/components/schemas/") if name not in schemas}
    assert not missing
    # every schema is used (reachable from the paths)
    used = {name for _, name in _refs(doc["paths"], "#/components/schemas/")}
    frontier = list(used)
    while frontier:
        for _, name in _refs(schemas[frontier.pop()], "#/components/schemas/"):
            if name not in used:
                used.add(name)
                frontier.append(name)
    assert used == set(schemas)


def _schema_nodes(node, path=()):
    """Every schema node below a schema (not the property-name maps or extension values)."""
    yield path, node
    for name, prop in node.get("properties", {}).items():
        yield from _schema_nodes(prop, path + ("properties", name))
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            yield from _schema_nodes(node[key], path + (key,))
    for key in ("allOf", "oneOf", "anyOf"):
        for i, sub in enumerate(node.get(key, [])):
            yield from _schema_nodes(sub, path + (key, i))


@pytest.mark.parametrize("key", openapi.v3_keys())
def test_schemas_are_openapi_3_not_json_schema(key):
    for name, definition in openapi.v3_document_at(key)["components"]["schemas"].items():
        for path, node in _schema_nodes(definition, (name,)):
            if "type" in node:
                assert node["type"] in ("object", "array", "string", "integer", "number", "boolean"), path
            assert node.get("additionalProperties") is not False, path
            assert "$defs" not in node and "const" not in node, path
            if "$ref" in node:
                # OpenAPI 3.0 ignores $ref siblings: upstream wraps the ref in allOf instead
                assert set(node) == {"$ref"}, path
                assert node["$ref"].startswith("#/components/schemas/"), path
            if path[-1] in ("apiVersion", "kind"):
                assert "enum" not in node, path


def test_property_types_are_single_strings():
    doc = openapi.v3_document("", "v1")
    spec = doc["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]
    assert spec["restartPolicy"]["type"] == "string"
    assert spec["containers"]["type"] == "array"
    assert spec["activeDeadlineSeconds"] == {**spec["activeDeadlineSeconds"], "type": "integer", "format": "int64"}


def test_pod_schema_has_its_gvk_and_patch_metadata():
    schemas = openapi.v3_document("", "v1")["components"]["schemas"]
    pod = schemas["io.k8s.api.core.v1.Pod"]
    assert pod["type"] == "object"
    assert {"group": "", "version": "v1", "kind": "Pod"} in pod["x-kubernetes-group-version-kind"]
    # apiVersion/kind are plain strings (kubernetes-validate's enums are dropped)
    assert pod["properties"]["kind"] == {"description": pod["properties"]["kind"]["description"], "type": "string"}
    assert pod["properties"]["spec"]["allOf"] == [{"$ref": "#/components/schemas/io.k8s.api.core.v1.PodSpec"}]
    assert pod["properties"]["spec"]["description"]
    containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    assert containers["items"] == {"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}


def test_int_or_string_and_quantity_are_upstream_shaped():
    schemas = openapi.v3_document("apps", "v1")["components"]["schemas"]
    ios = schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert ios["format"] == "int-or-string" and "type" not in ios
    assert {s["type"] for s in ios["oneOf"]} == {"integer", "string"}
    qty = schemas["io.k8s.apimachinery.pkg.api.resource.Quantity"]
    assert "type" not in qty and {s["type"] for s in qty["oneOf"]} == {"string", "number"}
    v2 = openapi.v2_document()["definitions"]
    assert v2["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["type"] == "string"
    assert v2["io.k8s.apimachinery.pkg.api.resource.Quantity"]["type"] == "string"


def test_meta_types_are_included():
    for group, version in GVS:
        schemas = openapi.v3_document(group, version)["components"]["schemas"]
        for name in ("Status", "DeleteOptions", "WatchEvent", "APIResourceList", "Patch", "ObjectMeta"):
            assert f"io.k8s.apimachinery.pkg.apis.meta.v1.{name}" in schemas, (group, version, name)


# --------------------------------------------------------------------------- paths and operations


def _operations(doc):
    for path, entry in doc["paths"].items():
        for method, op in entry.items():
            if method != "parameters":
                yield path, method, op


def _param_names(params):
    return {p["name"] for p in params}


@pytest.mark.parametrize("group,version", GVS)
def test_patch_operations_declare_field_validation(group, version):
    # cli-runtime's queryParamVerifierV3: the PATCH operation with the object's GVK must carry
    # a `fieldValidation` parameter of its own, or kubectl validates client-side via /openapi/v2.
    doc = openapi.v3_document(group, version)
    patches = [(path, op) for path, method, op in _operations(doc) if method == "patch"]
    assert patches
    for path, op in patches:
        names = _param_names(op["parameters"])
        assert {"fieldValidation", "dryRun", "fieldManager", "force"} <= names, path
        assert set(op["requestBody"]["content"]) == set(openapi.PATCH_MEDIA_TYPES)
        assert op["x-kubernetes-action"] == "patch"
        assert set(op["x-kubernetes-group-version-kind"]) == {"group", "version", "kind"}


def _supports_field_validation(doc, gvk):
    """cli-runtime's supportsQueryParamV3, including its early `return false`."""
    for _, entry in doc["paths"].items():
        op = entry.get("patch")
        if op is None or op.get("x-kubernetes-group-version-kind") != gvk:
            continue
        return "fieldValidation" in _param_names(op.get("parameters", []))
    return False


@pytest.mark.parametrize("r", [r for r in resources.RESOURCES if "patch" in r.verbs], ids=lambda r: r.qualified)
def test_kubectl_finds_field_validation_for_every_patchable_kind(r):
    doc = openapi.v3_document(r.group, r.version)
    assert _supports_field_validation(doc, {"group": r.group, "version": r.version, "kind": r.kind})


@pytest.mark.parametrize("r", resources.RESOURCES, ids=lambda r: r.qualified)
def test_kubectl_explain_finds_every_kind(r):
    # kubectl's explain template: a GVK on an operation of one of these four paths, then a schema
    # whose x-kubernetes-group-version-kind contains that GVK.
    doc = openapi.v3_document(r.group, r.version)
    prefix = f"/api/{r.version}" if not r.group else f"/apis/{r.group}/{r.version}"
    candidates = [f"{prefix}/{r.plural}", f"{prefix}/{r.plural}/{{name}}",
                  f"{prefix}/namespaces/{{namespace}}/{r.plural}",
                  f"{prefix}/namespaces/{{namespace}}/{r.plural}/{{name}}"]
    gvk = None
    for path in candidates:
        for method in ("get", "post", "put", "patch", "delete"):
            op = doc["paths"].get(path, {}).get(method)
            if op and "x-kubernetes-group-version-kind" in op:
                gvk = op["x-kubernetes-group-version-kind"]
                break
        if gvk:
            break
    assert gvk == {"group": r.group, "version": r.version, "kind": r.kind}
    assert any(gvk in s.get("x-kubernetes-group-version-kind", []) for s in doc["components"]["schemas"].values())


def test_namespaced_resource_paths():
    doc = openapi.v3_document("apps", "v1")
    p = doc["paths"]
    coll = p["/apis/apps/v1/namespaces/{namespace}/deployments"]
    assert coll["get"]["operationId"] == "listAppsV1NamespacedDeployment"
    assert coll["get"]["x-kubernetes-action"] == "list"
    assert coll["post"]["operationId"] == "createAppsV1NamespacedDeployment"
    assert coll["delete"]["operationId"] == "deleteAppsV1CollectionNamespacedDeployment"
    assert coll["delete"]["x-kubernetes-action"] == "deletecollection"
    assert _param_names(coll["parameters"]) == {"namespace", "pretty"}
    assert {"labelSelector", "fieldSelector", "watch", "limit", "continue", "resourceVersion",
            "sendInitialEvents", "timeoutSeconds"} <= _param_names(coll["get"]["parameters"])
    assert _param_names(coll["post"]["parameters"]) == {"dryRun", "fieldManager", "fieldValidation"}
    list_schema = coll["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert list_schema == {"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentList"}
    assert "application/json;stream=watch" in coll["get"]["responses"]["200"]["content"]

    item = p["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    assert {m: item[m]["operationId"] for m in ("get", "put", "patch", "delete")} == {
        "get": "readAppsV1NamespacedDeployment", "put": "replaceAppsV1NamespacedDeployment",
        "patch": "patchAppsV1NamespacedDeployment", "delete": "deleteAppsV1NamespacedDeployment"}
    assert [q for q in item["parameters"] if q["name"] == "name"][0]["required"] is True
    assert {"gracePeriodSeconds", "propagationPolicy", "dryRun"} <= _param_names(item["delete"]["parameters"])

    assert p["/apis/apps/v1/deployments"]["get"]["operationId"] == "listAppsV1DeploymentForAllNamespaces"
    assert p["/apis/apps/v1/watch/namespaces/{namespace}/deployments"]["get"]["x-kubernetes-action"] == "watchlist"
    assert p["/apis/apps/v1/watch/namespaces/{namespace}/deployments/{name}"]["get"]["x-kubernetes-action"] == "watch"
    assert p["/apis/apps/v1/"]["get"]["operationId"] == "getAppsV1APIResources"

    status = p["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status"]
    assert status["patch"]["operationId"] == "patchAppsV1NamespacedDeploymentStatus"
    assert status["get"]["x-kubernetes-group-version-kind"]["kind"] == "Deployment"
    assert "fieldValidation" in _param_names(status["patch"]["parameters"])

    scale = p["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
    assert scale["put"]["operationId"] == "replaceAppsV1NamespacedDeploymentScale"
    assert scale["get"]["x-kubernetes-group-version-kind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    assert "io.k8s.api.autoscaling.v1.Scale" in doc["components"]["schemas"]


def test_cluster_scoped_and_core_paths():
    p = openapi.v3_document("", "v1")["paths"]
    assert p["/api/v1/nodes"]["get"]["operationId"] == "listCoreV1Node"
    assert p["/api/v1/nodes/{name}"]["patch"]["operationId"] == "patchCoreV1Node"
    assert "namespace" not in _param_names(p["/api/v1/nodes/{name}"]["parameters"])
    assert p["/api/v1/watch/nodes"]["get"]["operationId"] == "watchCoreV1NodeList"
    # namespaces has no deletecollection upstream
    assert "delete" not in p["/api/v1/namespaces"]
    assert p["/api/v1/namespaces/{name}/finalize"]["put"]["operationId"] == "replaceCoreV1NamespaceFinalize"
    # bindings are create-only
    assert set(p["/api/v1/namespaces/{namespace}/bindings"]) == {"post", "parameters"}
    binding = p["/api/v1/namespaces/{namespace}/pods/{name}/binding"]["post"]
    assert binding["operationId"] == "createCoreV1NamespacedPodBinding"
    # an eviction is a policy/v1 Eviction posted to the pod (kubectl drain, create_namespaced_pod_eviction)
    eviction = p["/api/v1/namespaces/{namespace}/pods/{name}/eviction"]
    assert set(eviction) == {"post", "parameters"}
    assert eviction["post"]["operationId"] == "createCoreV1NamespacedPodEviction"
    assert eviction["post"]["x-kubernetes-group-version-kind"] == {"group": "policy", "kind": "Eviction", "version": "v1"}
    assert eviction["post"]["requestBody"]["content"]["*/*"]["schema"]["$ref"].endswith("policy.v1.Eviction")
    log = p["/api/v1/namespaces/{namespace}/pods/{name}/log"]
    assert log["get"]["responses"]["200"]["content"]["text/plain"]["schema"] == {"type": "string"}
    assert {"container", "follow", "tailLines", "previous"} <= _param_names(log["parameters"])
    exec_ = p["/api/v1/namespaces/{namespace}/pods/{name}/exec"]
    assert exec_["post"]["x-kubernetes-action"] == "connect"
    assert exec_["get"]["x-kubernetes-group-version-kind"]["kind"] == "PodExecOptions"
    # pods are returned by delete, configmaps answer with a Status
    pod_delete = p["/api/v1/namespaces/{namespace}/pods/{name}"]["delete"]["responses"]["200"]
    assert pod_delete["content"]["application/json"]["schema"]["$ref"].endswith("core.v1.Pod")
    cm_delete = p["/api/v1/namespaces/{namespace}/configmaps/{name}"]["delete"]["responses"]["200"]
    assert cm_delete["content"]["application/json"]["schema"]["$ref"].endswith("meta.v1.Status")


def test_operation_ids_are_unique_and_tagged():
    for key in openapi.v3_keys():
        doc = openapi.v3_document_at(key)
        ids = [op["operationId"] for _, _, op in _operations(doc)]
        assert len(ids) == len(set(ids)), key
        for path, method, op in _operations(doc):
            assert op["tags"] and op["description"], (path, method)
            assert "401" in op["responses"]
    tags = {op["tags"][0] for _, _, op in _operations(openapi.v3_document("coordination.k8s.io", "v1"))}
    assert tags == {"coordination_v1"}


def test_path_templates_declare_their_path_parameters():
    for key in openapi.v3_keys():
        for path, entry in openapi.v3_document_at(key)["paths"].items():
            wanted = set(re.findall(r"{(\w+)}", path))
            declared = {q["name"] for q in entry.get("parameters", []) if q["in"] == "path"}
            assert declared == wanted, path


def test_group_and_root_documents():
    apps = openapi.v3_document_at("apis/apps")
    assert apps["paths"]["/apis/apps/"]["get"]["operationId"] == "getAppsAPIGroup"
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.APIGroup" in apps["components"]["schemas"]
    apis = openapi.v3_document_at("apis")
    assert apis["paths"]["/apis/"]["get"]["operationId"] == "getAPIVersions"
    api = openapi.v3_document_at("api")
    assert api["paths"]["/api/"]["get"]["operationId"] == "getCoreAPIVersions"


# --------------------------------------------------------------------------- HTTP behaviour


def test_v3_response_caching_rules():
    key = "apis/apps/v1"
    etag = openapi.document_hash_at(key)
    status, headers, body = openapi.v3_response(key, etag, "application/json", now=0)
    assert status == 200 and body == openapi.v3_document_bytes_at(key)
    assert headers["Etag"] == f'"{etag}"'
    assert headers["Cache-Control"] == "public, immutable"
    assert headers["Expires"] == "Fri, 01 Jan 1971 00:00:00 GMT"
    assert headers["Content-Type"] == "application/json"

    status, headers, _ = openapi.v3_response(key, None, "application/json, */*")
    assert status == 200 and "Cache-Control" not in headers

    status, headers, _ = openapi.v3_response(key, "0" * 128, "application/json")
    assert status == 301 and headers["Location"] == f"/openapi/v3/{key}?hash={etag}"

    status, _, body = openapi.v3_response(key, None, None, if_none_match=f'"{etag}"')
    assert status == 304 and body == b""

    protobuf = "application/com.github.proto-openapi.spec.v3@v1.0+protobuf"
    assert openapi.v3_response(key, None, protobuf)[0] == 406
    assert openapi.v3_response("apis/nothing/v1")[0] == 404


def test_index_and_v2_responses():
    status, headers, body = openapi.v3_index_response()
    assert status == 200 and json.loads(body) == openapi.v3_index()
    assert openapi.v3_index_response(headers["Etag"])[0] == 304
    assert openapi.v2_response("application/com.github.proto-openapi.spec.v2@v1.0+protobuf")[0] == 406
    status, headers, body = openapi.v2_response("application/json")
    assert status == 200 and headers["Etag"] == f'"{openapi.v2_hash()}"'


# --------------------------------------------------------------------------- v2


def test_v2_document_is_swagger_and_self_contained():
    doc = openapi.v2_document()
    assert doc["swagger"] == "2.0"
    defs = doc["definitions"]
    assert not {name for _, name in _refs(doc, "#/definitions/") if name not in defs}
    pod = defs["io.k8s.api.core.v1.Pod"]
    assert pod["properties"]["spec"]["$ref"] == "#/definitions/io.k8s.api.core.v1.PodSpec"
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert "fieldValidation" in {q["name"] for q in patch["parameters"]}
    assert set(patch["consumes"]) == set(openapi.PATCH_MEDIA_TYPES)
    assert {q["name"] for q in patch["parameters"] if q["in"] == "body"} == {"body"}
    for name, definition in defs.items():
        for path, node in _schema_nodes(definition, (name,)):
            assert isinstance(node.get("type", ""), str), path
            assert "oneOf" not in node and "allOf" not in node, path


def test_documents_validate_with_openapi_spec_validator():
    validator = pytest.importorskip("openapi_spec_validator")
    for key in ("apis/apps/v1", "apis/apps", "api"):
        validator.validate(openapi.v3_document_at(key))
    validator.validate(openapi.v2_document())
