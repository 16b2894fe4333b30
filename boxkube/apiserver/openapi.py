"""The `/openapi/v3` (and `/openapi/v2`) documents, built from the upstream schemas.

kubectl reads these documents for three things:

- `kubectl explain` renders `components.schemas` of `/openapi/v3/api/v1` or
  `/openapi/v3/apis/<group>/<version>`; it finds a resource's kind through the
  `x-kubernetes-group-version-kind` extension of the operations on the
  resource's paths, then the schema carrying the same GVK.
- `kubectl apply/create/replace --validate` looks for a `fieldValidation`
  parameter on the PATCH operation of the object's GVK. When it is there the
  validation is left to the server (`?fieldValidation=Strict`); when it is not,
  kubectl falls back to client-side validation through `/openapi/v2`.
- client-side apply looks up `x-kubernetes-patch-strategy` /
  `x-kubernetes-patch-merge-key` in the schemas.

The definitions come from `schema.definitions()` (JSON Schema with
`["string", "null"]` types, `#/$defs/` refs, `enum`s on apiVersion/kind and
`additionalProperties: false` added by kubernetes-validate); they are turned
back into the upstream OpenAPI shape here: single `type`s, refs to
`#/components/schemas/` (v3, wrapped in `allOf` when the ref has siblings such
as a description, as kube-apiserver does) or `#/definitions/` (v2).

Every document is built once per process and serialized once; the hash of a
document is the upper-case hex SHA-512 of its JSON bytes, as kube-openapi's
handler3 computes it. The index (`GET /openapi/v3`) names each document as
`/openapi/v3/<key>?hash=<hash>`.

Serving the documents the upstream way (see `v3_response`):

- `ETag: "<hash>"` on every document;
- with a `?hash=` that matches: `Cache-Control: public, immutable` and an
  `Expires` a year ahead (clients cache the document on disk for good);
- with a `?hash=` that does not match: `301` to the current URL;
- `Vary: Accept`; only JSON is served (kube-apiserver also serves the gnostic
  protobuf; boxkube answers `406` to a protobuf-only Accept).

All returned dicts are shared, read-only structures: do not mutate them.
"""
from __future__ import annotations

import email.utils
import functools
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any, Iterable

from boxkube import KUBERNETES_VERSION
from boxkube.apiserver import resources, schema
from boxkube.apiserver.resources import ResourceType

Node = dict[str, Any]

V3_REF = "#/components/schemas/"
V2_REF = "#/definitions/"

META = "io.k8s.apimachinery.pkg.apis.meta.v1."
STATUS = META + "Status"
DELETE_OPTIONS = META + "DeleteOptions"
WATCH_EVENT = META + "WatchEvent"
PATCH = META + "Patch"
API_RESOURCE_LIST = META + "APIResourceList"
API_GROUP = META + "APIGroup"
API_GROUP_LIST = META + "APIGroupList"
API_VERSIONS = META + "APIVersions"
VERSION_INFO = "io.k8s.apimachinery.pkg.version.Info"

# Media types boxkube answers with (kube-apiserver also lists protobuf and cbor).
OBJECT_MEDIA_TYPES = ("application/json", "application/yaml")
LIST_MEDIA_TYPES = ("application/json", "application/json;stream=watch", "application/yaml")
LOG_MEDIA_TYPES = ("text/plain", "application/json", "application/yaml")
PATCH_MEDIA_TYPES = (
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)

# Delete answers with the deleted object (not a Status) for these, as upstream.
_DELETE_RETURNS_OBJECT = {("", "pods"), ("", "services"), ("", "serviceaccounts")}

# Definitions that kubernetes-validate turned into bare JSON Schema `oneOf`s. Upstream
# describes them with their Go type's OpenAPI hooks: in v2 a string (IntOrString with
# format int-or-string), in v3 a `oneOf` of the accepted types and no `type` (so that
# `kubectl explain` prints <IntOrString> / <Quantity>).
_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
_SCALARS: dict[str, Node] = {
    _INT_OR_STRING: {
        "description": "IntOrString is a type that can hold an int32 or a string.  When used in JSON or "
        "YAML marshalling and unmarshalling, it produces or consumes the inner type.  This allows you "
        "to have, for example, a JSON field that can accept a name or number.",
        "format": "int-or-string",
    },
    _QUANTITY: {
        "description": "Quantity is a fixed-point representation of a number. It provides convenient "
        "marshaling/unmarshaling in JSON and YAML, in addition to String() and AsInt64() accessors.\n\n"
        "The serialization format is:\n\n"
        "``` <quantity>        ::= <signedNumber><suffix>\n\n"
        "\t(Note that <suffix> may be empty, from the \"\" case in <decimalSI>.)\n\n"
        "<digit>           ::= 0 | 1 | ... | 9 <digits>          ::= <digit> | <digit><digits> "
        "<number>          ::= <digits> | <digits>.<digits> | <digits>. | .<digits> "
        "<sign>            ::= \"+\" | \"-\" <signedNumber>    ::= <number> | <sign><number> "
        "<suffix>          ::= <binarySI> | <decimalExponent> | <decimalSI> "
        "<binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei\n\n"
        "\t(International System of units; See: http://physics.nist.gov/cuu/Units/binary.html)\n\n"
        "<decimalSI>       ::= m | \"\" | k | M | G | T | P | E\n\n"
        "\t(Note that 1024 = 1Ki but 1000 = 1k; I didn't choose the capitalization.)\n\n"
        "<decimalExponent> ::= \"e\" <signedNumber> | \"E\" <signedNumber> ```\n\n"
        "No matter which of the three exponent forms is used, no quantity may represent a number "
        "greater than 2^63-1 in magnitude, nor may it have more than 3 decimal places. Numbers larger "
        "or more precise will be capped or rounded up. (E.g.: 0.1m will rounded up to 1m.) This may be "
        "extended in the future if we require larger or smaller quantities.\n\n"
        "When a Quantity is parsed from a string, it will remember the type of suffix it had, and will "
        "use the same type again when it is serialized.\n\n"
        "Before serializing, Quantity will be put in \"canonical form\". This means that "
        "Exponent/suffix will be adjusted up or down (with a corresponding increase or decrease in "
        "Mantissa) such that:\n\n"
        "- No precision is lost - No fractional digits will be emitted - The exponent (or suffix) is "
        "as large as possible.\n\n"
        "The sign will be omitted unless the number is negative.\n\n"
        "Examples:\n\n- 1.5 will be serialized as \"1500m\" - 1.5Gi will be serialized as \"1536Mi\"\n\n"
        "Note that the quantity will NEVER be internally represented by a floating point number. That "
        "is the whole point of this exercise.\n\n"
        "Non-canonical values will still parse as long as they are well formed, but will be "
        "re-emitted in their canonical form. (So always use canonical form, or don't diff.)\n\n"
        "This format is intended to make it difficult to use these numbers without writing some sort "
        "of special handling code in the hopes that that will cause implementors to also use a fixed "
        "point implementation.",
    },
}
_SCALAR_TYPES = {  # name -> (v2 type, v3 oneOf types)
    _INT_OR_STRING: ("string", ("integer", "string")),
    _QUANTITY: ("string", ("string", "number")),
}


def _scalar(name: str, v3: bool) -> Node:
    v2_type, v3_types = _SCALAR_TYPES[name]
    if v3:
        return {**_SCALARS[name], "oneOf": [{"type": t} for t in v3_types]}
    return {**_SCALARS[name], "type": v2_type}


# --------------------------------------------------------------------------- schemas


def _convert(node: Node, ref_prefix: str, wrap_refs: bool) -> Node:
    """One schema node from kubernetes-validate's JSON Schema to upstream OpenAPI."""
    out: Node = {}
    ref: str | None = None
    for key, value in node.items():
        if key == "$ref":
            ref = ref_prefix + value.rsplit("/", 1)[-1]
        elif key == "type":
            kept = [t for t in ([value] if isinstance(value, str) else value) if t != "null"]
            if len(kept) == 1:
                out["type"] = kept[0]
            elif kept:
                out["type"] = kept
        elif key == "properties":
            props: Node = {}
            for name, prop in value.items():
                converted = _convert(prop, ref_prefix, wrap_refs)
                if name in ("apiVersion", "kind"):
                    # kubernetes-validate pins apiVersion/kind with an enum; upstream does not.
                    converted.pop("enum", None)
                props[name] = converted
            out["properties"] = props
        elif key == "additionalProperties":
            if isinstance(value, dict):
                out[key] = _convert(value, ref_prefix, wrap_refs)
            elif value is not False:  # `false` is kubernetes-validate's strict mode
                out[key] = value
        elif key == "items" and isinstance(value, dict):
            out[key] = _convert(value, ref_prefix, wrap_refs)
        elif key in ("allOf", "anyOf", "oneOf", "not") and value:
            out[key] = ([_convert(v, ref_prefix, wrap_refs) for v in value]
                        if isinstance(value, list) else _convert(value, ref_prefix, wrap_refs))
        else:
            out[key] = value
    if ref is None:
        return out
    if not out:
        return {"$ref": ref}
    if wrap_refs:
        # OpenAPI 3.0 ignores siblings of $ref; kube-apiserver wraps the ref in allOf.
        return {"allOf": [{"$ref": ref}], **out}
    return {"$ref": ref, **out}


@functools.cache
def _converted(name: str, v3: bool) -> Node:
    if name in _SCALARS:
        return _scalar(name, v3)
    return _convert(schema.definition(name), V3_REF if v3 else V2_REF, wrap_refs=v3)


def _refs(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value.rsplit("/", 1)[-1]
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


@functools.cache
def _direct_refs(name: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(_refs(schema.definition(name))))


def _closure(roots: Iterable[str]) -> list[str]:
    """The definitions reachable from roots (roots included), sorted by name."""
    seen: set[str] = set()
    stack = [r for r in roots if r]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        if name not in _SCALARS:
            stack.extend(_direct_refs(name))
    return sorted(seen)


def _schemas(roots: Iterable[str], v3: bool) -> Node:
    return {name: _converted(name, v3) for name in _closure(roots)}


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class _Param:
    name: str
    type: str
    description: str
    location: str = "query"

    def v3(self) -> Node:
        p: Node = {"description": self.description, "in": self.location, "name": self.name}
        if self.location == "path":
            p["required"] = True
        p["schema"] = {"type": self.type, "uniqueItems": True}
        return p

    def v2(self) -> Node:
        p: Node = {"description": self.description, "in": self.location, "name": self.name}
        if self.location == "path":
            p["required"] = True
        p["type"] = self.type
        p["uniqueItems"] = True
        return p


def _delete_option(name: str, type_: str) -> _Param:
    prop = schema.definition(DELETE_OPTIONS).get("properties", {}).get(name, {})
    return _Param(name, type_, prop.get("description", ""))


@functools.cache
def _params() -> dict[str, _Param]:
    ps = [
        _Param("pretty", "string", "If 'true', then the output is pretty printed. Defaults to 'false' "
               "unless the user-agent indicates a browser or command-line HTTP tool (curl and wget)."),
        _Param("namespace", "string", "object name and auth scope, such as for teams and projects", "path"),
        # list / watch
        _Param("allowWatchBookmarks", "boolean", "allowWatchBookmarks requests watch events with type "
               "\"BOOKMARK\". Servers may ignore it and send bookmarks at their discretion; clients must "
               "not assume bookmarks arrive at any interval. Ignored unless this is a watch."),
        _Param("continue", "string", "The continue option should be set when retrieving more results "
               "from the server. Its value is server defined: clients may only use the continue value "
               "of a previous result with identical query parameters. An expired value is answered "
               "with 410 ResourceExpired. Not supported when watch is true."),
        _Param("fieldSelector", "string", "A selector to restrict the list of returned objects by their "
               "fields. Defaults to everything."),
        _Param("labelSelector", "string", "A selector to restrict the list of returned objects by their "
               "labels. Defaults to everything."),
        _Param("limit", "integer", "limit is a maximum number of responses to return for a list call. "
               "If more items exist, the server sets the `continue` field on the list metadata to a value "
               "that can be used with the same initial query to retrieve the next set of results. Not "
               "supported if watch is true."),
        _Param("resourceVersion", "string", "resourceVersion sets a constraint on what resource versions "
               "a request may be served from. See https://kubernetes.io/docs/reference/using-api/"
               "api-concepts/#resource-versions for details.\n\nDefaults to unset"),
        _Param("resourceVersionMatch", "string", "resourceVersionMatch determines how resourceVersion is "
               "applied to list calls. See https://kubernetes.io/docs/reference/using-api/api-concepts/"
               "#resource-versions for details.\n\nDefaults to unset"),
        _Param("sendInitialEvents", "boolean", "`sendInitialEvents=true` may be set together with "
               "`watch=true`: the watch stream then begins with synthetic events for the current state "
               "of the collection, followed by a bookmark annotated "
               "`\"k8s.io/initial-events-end\": \"true\"`. Requires `resourceVersionMatch`."),
        _Param("timeoutSeconds", "integer", "Timeout for the list/watch call. This limits the duration "
               "of the call, regardless of any activity or inactivity."),
        _Param("watch", "boolean", "Watch for changes to the described resources and return them as a "
               "stream of add, update, and remove notifications. Specify resourceVersion."),
        # writes
        _Param("dryRun", "string", schema.definition(DELETE_OPTIONS)["properties"]["dryRun"]["description"]),
        _Param("fieldManager", "string", "fieldManager is a name associated with the actor or entity that "
               "is making these changes. The value must be less than or 128 characters long, and only "
               "contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint."),
        _Param("fieldValidation", "string", "fieldValidation instructs the server on how to handle "
               "objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid "
               "values are: - Ignore: unknown fields are silently dropped and all but the last duplicate "
               "field are ignored. - Warn: a warning is sent for each unknown or duplicate field, the "
               "request still succeeds. This is the default in v1.23+ - Strict: the request fails with a "
               "BadRequest error listing every unknown and duplicate field."),
        _Param("force", "boolean", "Force is going to \"force\" Apply requests. It means user will "
               "re-acquire conflicting fields owned by other people. Force flag must be unset for "
               "non-apply patch requests."),
        _delete_option("gracePeriodSeconds", "integer"),
        _delete_option("ignoreStoreReadErrorWithClusterBreakingPotential", "boolean"),
        _delete_option("orphanDependents", "boolean"),
        _delete_option("propagationPolicy", "string"),
        # pods/log
        _Param("container", "string", "The container for which to stream logs. Defaults to only "
               "container if there is one container in the pod."),
        _Param("follow", "boolean", "Follow the log stream of the pod. Defaults to false."),
        _Param("insecureSkipTLSVerifyBackend", "boolean", "insecureSkipTLSVerifyBackend indicates that "
               "the apiserver should not confirm the validity of the serving certificate of the backend "
               "it is connecting to."),
        _Param("limitBytes", "integer", "If set, the number of bytes to read from the server before "
               "terminating the log output."),
        _Param("previous", "boolean", "Return previous terminated container logs. Defaults to false."),
        _Param("sinceSeconds", "integer", "A relative time in seconds before the current time from which "
               "to show logs."),
        _Param("stream", "string", "Specify which container log stream to return to the client. "
               "Acceptable values are \"All\", \"Stdout\" and \"Stderr\". Defaults to \"All\"."),
        _Param("tailLines", "integer", "If set, the number of lines from the end of the logs to show."),
        _Param("timestamps", "boolean", "If true, add an RFC3339 or RFC3339Nano timestamp at the "
               "beginning of every line of log output. Defaults to false."),
        # pods/exec, pods/attach, pods/portforward
        _Param("command", "string", "Command is the remote command to execute. argv array. Not executed "
               "within a shell."),
        _Param("stdin", "boolean", "Redirect the standard input stream of the pod for this call. "
               "Defaults to false."),
        _Param("stdout", "boolean", "Redirect the standard output stream of the pod for this call."),
        _Param("stderr", "boolean", "Redirect the standard error stream of the pod for this call."),
        _Param("tty", "boolean", "TTY if true indicates that a tty will be allocated for the call. "
               "Defaults to false."),
        _Param("ports", "integer", "List of ports to forward Required when using WebSockets"),
    ]
    return {p.name: p for p in ps}


def _name_param(kind: str) -> _Param:
    return _Param("name", "string", f"name of the {kind}", "path")


def _path_params(names: Iterable[str], kind: str = "") -> tuple[_Param, ...]:
    return tuple(_name_param(kind) if n == "name" else _params()[n] for n in names)


LIST_PARAMS = ("allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit",
               "resourceVersion", "resourceVersionMatch", "sendInitialEvents", "timeoutSeconds", "watch")
WRITE_PARAMS = ("dryRun", "fieldManager", "fieldValidation")
PATCH_PARAMS = ("dryRun", "fieldManager", "fieldValidation", "force")
DELETE_PARAMS = ("dryRun", "gracePeriodSeconds", "ignoreStoreReadErrorWithClusterBreakingPotential",
                 "orphanDependents", "propagationPolicy")
DELETECOLLECTION_PARAMS = tuple(sorted(set(DELETE_PARAMS) | set(LIST_PARAMS) - {"allowWatchBookmarks", "watch"}))
LOG_PARAMS = ("container", "follow", "insecureSkipTLSVerifyBackend", "limitBytes", "previous",
              "sinceSeconds", "stream", "tailLines", "timestamps")
EXEC_PARAMS = ("command", "container", "stderr", "stdin", "stdout", "tty")
ATTACH_PARAMS = ("container", "stderr", "stdin", "stdout", "tty")
PORTFORWARD_PARAMS = ("ports",)

_PATCH_DESCRIPTION_APPLY = (" This field is required for apply requests (application/apply-patch) but "
                            "optional for non-apply patch types (JsonPatch, MergePatch, StrategicMergePatch).")

# --------------------------------------------------------------------------- operations

_STRING = "<string>"  # a response or body that is a plain string, not a definition


@dataclass(frozen=True)
class _Op:
    method: str
    operation_id: str
    description: str
    tag: str
    params: tuple[_Param, ...] = ()
    body: str | None = None            # definition name, or PATCH for the patch media types
    responses: tuple[tuple[str, str | None], ...] = (("200", None),)  # (code, definition or _STRING)
    media: tuple[str, ...] = OBJECT_MEDIA_TYPES
    action: str | None = None
    gvk: tuple[str, str, str] | None = None  # (group, version, kind)
    body_media: tuple[str, ...] = ("*/*",)


@dataclass(frozen=True)
class _Path:
    path: str
    params: tuple[_Param, ...]
    ops: tuple[_Op, ...]


_CODE_TEXT = {"200": "OK", "201": "Created", "202": "Accepted", "401": "Unauthorized"}


def _camel_group(group: str) -> str:
    """'' -> Core, apps -> Apps, rbac.authorization.k8s.io -> RbacAuthorization (upstream operationIds)."""
    if not group:
        return "Core"
    name = group[: -len(".k8s.io")] if group.endswith(".k8s.io") else group
    return "".join(part[:1].upper() + part[1:] for part in name.replace("-", ".").split(".") if part)


def _lower_first(s: str) -> str:
    return s[:1].lower() + s[1:]


def _gv_camel(group: str, version: str) -> str:
    return _camel_group(group) + version[:1].upper() + version[1:]


def _tag(group: str, version: str) -> str:
    return f"{_lower_first(_camel_group(group))}_{version}"


def _article(kind: str) -> str:
    return "an" if kind[:1] in "AEIOU" else "a"


def _root(group: str, version: str) -> str:
    return f"/api/{version}" if not group else f"/apis/{group}/{version}"


def _kind_of(group: str, version: str, kind: str) -> tuple[str, str, str, str] | None:
    """(group, version, kind, definition) of a kind served at group/version (or its foreign home)."""
    g, v = resources.SUBRESOURCE_KIND_HOMES.get(kind, (group, version))
    name = schema.definition_for(g, v, kind)
    return (g, v, kind, name) if name else None


def _resource_paths(r: ResourceType) -> list[_Path]:
    kind_name = schema.definition_for(r.group, r.version, r.kind)
    if kind_name is None:
        return []
    list_name = schema.definition_for(r.group, r.version, r.list_kind)
    gv = _gv_camel(r.group, r.version)
    tag = _tag(r.group, r.version)
    gvk = (r.group, r.version, r.kind)
    verbs = set(r.verbs)
    root = _root(r.group, r.version)
    ns = "Namespaced" if r.namespaced else ""
    collection = f"{root}/namespaces/{{namespace}}/{r.plural}" if r.namespaced else f"{root}/{r.plural}"
    item = collection + "/{name}"
    coll_params = _path_params(("namespace", "pretty") if r.namespaced else ("pretty",))
    item_params = _path_params(("name", "namespace", "pretty") if r.namespaced else ("name", "pretty"), r.kind)
    a = _article(r.kind)
    paths: list[_Path] = []

    def op(method: str, prefix: str, suffix: str, description: str, **kw: Any) -> _Op:
        return _Op(method, f"{prefix}{gv}{suffix}", description, tag, **kw)

    ops: list[_Op] = []
    if "list" in verbs and list_name:
        ops.append(op("get", "list", f"{ns}{r.kind}", f"list or watch objects of kind {r.kind}",
                      params=_path_params(LIST_PARAMS), responses=(("200", list_name),),
                      media=LIST_MEDIA_TYPES, action="list", gvk=gvk))
    if "create" in verbs:
        ops.append(op("post", "create", f"{ns}{r.kind}", f"create {a} {r.kind}",
                      params=_path_params(WRITE_PARAMS), body=kind_name,
                      responses=(("200", kind_name), ("201", kind_name), ("202", kind_name)),
                      action="post", gvk=gvk))
    if "deletecollection" in verbs:
        ops.append(op("delete", "delete", f"Collection{ns}{r.kind}", f"delete collection of {r.kind}",
                      params=_path_params(DELETECOLLECTION_PARAMS), body=DELETE_OPTIONS,
                      responses=(("200", STATUS),), action="deletecollection", gvk=gvk))
    if ops:
        paths.append(_Path(collection, coll_params, tuple(ops)))

    ops = []
    if "get" in verbs:
        ops.append(op("get", "read", f"{ns}{r.kind}", f"read the specified {r.kind}",
                      responses=(("200", kind_name),), action="get", gvk=gvk))
    if "update" in verbs:
        ops.append(op("put", "replace", f"{ns}{r.kind}", f"replace the specified {r.kind}",
                      params=_path_params(WRITE_PARAMS), body=kind_name,
                      responses=(("200", kind_name), ("201", kind_name)), action="put", gvk=gvk))
    if "patch" in verbs:
        ops.append(_patch_op(gv, ns + r.kind, f"partially update the specified {r.kind}", tag,
                             kind_name, gvk))
    if "delete" in verbs:
        deleted = kind_name if (r.group, r.plural) in _DELETE_RETURNS_OBJECT else STATUS
        ops.append(op("delete", "delete", f"{ns}{r.kind}", f"delete {a} {r.kind}",
                      params=_path_params(DELETE_PARAMS), body=DELETE_OPTIONS,
                      responses=(("200", deleted), ("202", deleted)), action="delete", gvk=gvk))
    if ops:
        paths.append(_Path(item, item_params, tuple(ops)))

    if r.namespaced and "list" in verbs and list_name:
        paths.append(_Path(f"{root}/{r.plural}", _path_params(LIST_PARAMS + ("pretty",)), (
            op("get", "list", f"{r.kind}ForAllNamespaces", f"list or watch objects of kind {r.kind}",
               responses=(("200", list_name),), media=LIST_MEDIA_TYPES, action="list", gvk=gvk),)))

    if "watch" in verbs:
        watch_root = f"{root}/watch"
        watch_coll = (f"{watch_root}/namespaces/{{namespace}}/{r.plural}" if r.namespaced
                      else f"{watch_root}/{r.plural}")
        list_note = "deprecated: use the 'watch' parameter with a list operation instead"
        watch_kw = dict(responses=(("200", WATCH_EVENT),), media=LIST_MEDIA_TYPES, gvk=gvk)
        scope = ("namespace",) if r.namespaced else ()
        paths.append(_Path(watch_coll, _path_params(LIST_PARAMS + scope + ("pretty",)), (
            op("get", "watch", f"{ns}{r.kind}List",
               f"watch individual changes to a list of {r.kind}. {list_note}.",
               action="watchlist", **watch_kw),)))
        paths.append(_Path(watch_coll + "/{name}",
                           _path_params(LIST_PARAMS + ("name",) + scope + ("pretty",), r.kind), (
            op("get", "watch", f"{ns}{r.kind}",
               f"watch changes to an object of kind {r.kind}. {list_note}, filtered to a single item "
               "with the 'fieldSelector' parameter.", action="watch", **watch_kw),)))
        if r.namespaced:
            paths.append(_Path(f"{watch_root}/{r.plural}", _path_params(LIST_PARAMS + ("pretty",)), (
                op("get", "watch", f"{r.kind}ListForAllNamespaces",
                   f"watch individual changes to a list of {r.kind}. {list_note}.",
                   action="watchlist", **watch_kw),)))

    for sub, sub_kind in sorted(r.subresources.items()):
        paths.extend(_subresource_paths(r, sub, sub_kind, item, item_params, kind_name))
    return paths


def _patch_op(gv: str, suffix: str, description: str, tag: str, kind_name: str,
              gvk: tuple[str, str, str]) -> _Op:
    p = _params()
    manager = p["fieldManager"]
    manager = _Param(manager.name, manager.type, manager.description + _PATCH_DESCRIPTION_APPLY)
    params = (p["dryRun"], manager, p["fieldValidation"], p["force"])
    return _Op("patch", f"patch{gv}{suffix}", description, tag, params=params, body=PATCH,
               body_media=PATCH_MEDIA_TYPES, responses=(("200", kind_name), ("201", kind_name)),
               action="patch", gvk=gvk)


def _subresource_paths(r: ResourceType, sub: str, sub_kind: str, item: str,
                       item_params: tuple[_Param, ...], kind_name: str) -> list[_Path]:
    gv = _gv_camel(r.group, r.version)
    tag = _tag(r.group, r.version)
    ns = "Namespaced" if r.namespaced else ""
    path = f"{item}/{sub}"
    title = sub[:1].upper() + sub[1:]
    gvk = (r.group, r.version, r.kind)

    def op(method: str, prefix: str, suffix: str, description: str, **kw: Any) -> _Op:
        return _Op(method, f"{prefix}{gv}{suffix}", description, tag, **kw)

    if sub in ("status", "scale", "ephemeralcontainers", "resize"):
        target = _kind_of(r.group, r.version, sub_kind) if sub_kind else (r.group, r.version, r.kind, kind_name)
        if target is None:
            return []
        sub_gvk, name = target[:3], target[3]
        suffix = f"{ns}{r.kind}{title}"
        ops = (
            op("get", "read", suffix, f"read {sub} of the specified {r.kind}",
               responses=(("200", name),), action="get", gvk=sub_gvk),
            _patch_op(gv, suffix, f"partially update {sub} of the specified {r.kind}", tag, name, sub_gvk),
            op("put", "replace", suffix, f"replace {sub} of the specified {r.kind}",
               params=_path_params(WRITE_PARAMS), body=name,
               responses=(("200", name), ("201", name)), action="put", gvk=sub_gvk),
        )
        return [_Path(path, item_params, ops)]
    if sub in ("binding", "eviction"):
        target = _kind_of(r.group, r.version, sub_kind)
        if target is None:
            return []
        sub_gvk, name = target[:3], target[3]
        return [_Path(path, item_params, (
            op("post", "create", f"{ns}{r.kind}{title}", f"create {sub} of {_article(r.kind)} {r.kind}",
               params=_path_params(WRITE_PARAMS), body=name,
               responses=(("200", name), ("201", name), ("202", name)), action="post", gvk=sub_gvk),))]
    if sub == "finalize":
        return [_Path(path, _path_params(("dryRun", "fieldManager", "fieldValidation", "name", "pretty"), r.kind), (
            op("put", "replace", f"{ns}{r.kind}{title}", f"replace {sub} of the specified {r.kind}",
               body=kind_name, responses=(("200", kind_name), ("201", kind_name)),
               action="put", gvk=gvk),))]
    if sub == "log":
        names = ("container", "follow", "insecureSkipTLSVerifyBackend", "limitBytes", "name") + (
            ("namespace",) if r.namespaced else ()) + ("pretty", "previous", "sinceSeconds", "stream",
                                                       "tailLines", "timestamps")
        return [_Path(path, _path_params(names, r.kind), (
            op("get", "read", f"{ns}{r.kind}Log", f"read log of the specified {r.kind}",
               responses=(("200", _STRING),), media=LOG_MEDIA_TYPES, action="get", gvk=gvk),))]
    connect = {"exec": (EXEC_PARAMS, "PodExecOptions"), "attach": (ATTACH_PARAMS, "PodAttachOptions"),
               "portforward": (PORTFORWARD_PARAMS, "PodPortForwardOptions")}
    if sub in connect:
        query, options_kind = connect[sub]
        names = tuple(sorted(query + ("name",) + (("namespace",) if r.namespaced else ())))
        conn_gvk = (r.group, r.version, options_kind)
        ops = tuple(
            op(method, "connect", f"{method.capitalize()}{ns}{r.kind}{title}",
               f"connect {method.upper()} requests to {sub} of {r.kind}",
               responses=(("200", _STRING),), media=("*/*",), action="connect", gvk=conn_gvk)
            for method in ("get", "post"))
        return [_Path(path, _path_params(names, r.kind), ops)]
    return []


def _discovery_op(path: str, operation_id: str, description: str, tag: str, definition: str) -> _Path:
    media = ("application/json", "application/yaml")
    return _Path(path, (), (_Op("get", operation_id, description, tag,
                                responses=(("200", definition),), media=media),))


# --------------------------------------------------------------------------- documents


@functools.cache
def _keys() -> tuple[str, ...]:
    """The index keys, in kube-apiserver's naming: api, api/v1, apis, apis/<g>, apis/<g>/<v>, version."""
    keys = ["api", "apis", "version"]
    for group, version in resources.GROUP_VERSIONS:
        if not group:
            keys.append(f"api/{version}")
        else:
            keys.append(f"apis/{group}")
            keys.append(f"apis/{group}/{version}")
    return tuple(sorted(dict.fromkeys(keys)))


def _parse_key(key: str) -> tuple[str, str, str] | None:
    """('gv'|'group'|'api'|'apis'|'version', group, version) of an index key, or None."""
    key = key.strip("/")
    if key not in _keys():
        return None
    parts = key.split("/")
    if key in ("api", "apis", "version"):
        return key, "", ""
    if parts[0] == "api":
        return "gv", "", parts[1]
    if len(parts) == 2:
        return "group", parts[1], ""
    return "gv", parts[1], parts[2]


def _paths_for(key: str) -> tuple[list[_Path], list[str]]:
    """The paths of one document and the definitions they use."""
    what, group, version = _parse_key(key)  # type: ignore[misc]
    if what == "api":
        return [_discovery_op("/api/", "getCoreAPIVersions", "get available API versions", "core",
                              API_VERSIONS)], [API_VERSIONS]
    if what == "apis":
        return [_discovery_op("/apis/", "getAPIVersions", "get available API versions", "apis",
                              API_GROUP_LIST)], [API_GROUP_LIST]
    if what == "version":
        return [_discovery_op("/version/", "getCodeVersion", "get the version information for this server",
                              "version", VERSION_INFO)], [VERSION_INFO]
    if what == "group":
        return [_discovery_op(f"/apis/{group}/", f"get{_camel_group(group)}APIGroup",
                              "get information of a group", _lower_first(_camel_group(group)),
                              API_GROUP)], [API_GROUP]
    paths = [_discovery_op(f"{_root(group, version)}/", f"get{_gv_camel(group, version)}APIResources",
                           "get available resources", _tag(group, version), API_RESOURCE_LIST)]
    for r in resources.RESOURCES:
        if r.group == group and r.version == version:
            paths.extend(_resource_paths(r))
    used: list[str] = []
    for path in paths:
        for o in path.ops:
            if o.body and o.body != _STRING:
                used.append(o.body)
            used.extend(d for _, d in o.responses if d and d != _STRING)
    return paths, used


def _gvk_ext(gvk: tuple[str, str, str]) -> Node:
    return {"group": gvk[0], "kind": gvk[2], "version": gvk[1]}


def _v3_operation(o: _Op) -> Node:
    out: Node = {"description": o.description, "operationId": o.operation_id}
    if o.params:
        out["parameters"] = [p.v3() for p in o.params]
    if o.body:
        body_schema = {"$ref": V3_REF + o.body}
        out["requestBody"] = {"content": {m: {"schema": body_schema} for m in o.body_media}}
        if o.body != DELETE_OPTIONS:
            out["requestBody"]["required"] = True
    responses: Node = {}
    for code, definition in o.responses:
        resp: Node = {"description": _CODE_TEXT[code]}
        if definition:
            s = {"type": "string"} if definition == _STRING else {"$ref": V3_REF + definition}
            resp = {"content": {m: {"schema": s} for m in o.media}, **resp}
        responses[code] = resp
    responses["401"] = {"description": _CODE_TEXT["401"]}
    out["responses"] = responses
    out["tags"] = [o.tag]
    if o.action:
        out["x-kubernetes-action"] = o.action
    if o.gvk:
        out["x-kubernetes-group-version-kind"] = _gvk_ext(o.gvk)
    return out


def _v2_operation(o: _Op) -> Node:
    out: Node = {"consumes": list(o.body_media) if o.body else ["*/*"],
                 "description": o.description, "operationId": o.operation_id}
    params = [p.v2() for p in o.params]
    if o.body:
        body: Node = {"in": "body", "name": "body", "schema": {"$ref": V2_REF + o.body}}
        if o.body != DELETE_OPTIONS:
            body["required"] = True
        params.insert(0, body)
    if params:
        out["parameters"] = params
    out["produces"] = list(o.media)
    responses: Node = {}
    for code, definition in o.responses:
        resp: Node = {"description": _CODE_TEXT[code]}
        if definition:
            resp["schema"] = {"type": "string"} if definition == _STRING else {"$ref": V2_REF + definition}
        responses[code] = resp
    responses["401"] = {"description": _CODE_TEXT["401"]}
    out["responses"] = responses
    out["schemes"] = ["https"]
    out["tags"] = [o.tag]
    if o.action:
        out["x-kubernetes-action"] = o.action
    if o.gvk:
        out["x-kubernetes-group-version-kind"] = _gvk_ext(o.gvk)
    return out


_SECURITY_SCHEME = {"description": "Bearer Token authentication", "in": "header",
                    "name": "authorization", "type": "apiKey"}


@functools.cache
def _v3_document_at(key: str) -> Node | None:
    if _parse_key(key) is None:
        return None
    paths, used = _paths_for(key.strip("/"))
    doc_paths: Node = {}
    for path in paths:
        entry: Node = {o.method: _v3_operation(o) for o in path.ops}
        if path.params:
            entry["parameters"] = [p.v3() for p in path.params]
        doc_paths[path.path] = entry
    return {
        "components": {
            "schemas": _schemas(used, v3=True),
            "securitySchemes": {"BearerToken": _SECURITY_SCHEME},
        },
        "info": {"title": "Kubernetes", "version": f"v{KUBERNETES_VERSION}"},
        "openapi": "3.0.0",
        "paths": doc_paths,
        "security": [{"BearerToken": []}],
    }


def _serialize(doc: Node) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@functools.cache
def _v3_bytes_at(key: str) -> bytes | None:
    doc = _v3_document_at(key.strip("/"))
    return None if doc is None else _serialize(doc)


def _hash(data: bytes) -> str:
    return hashlib.sha512(data).hexdigest().upper()


@functools.cache
def _hash_at(key: str) -> str | None:
    data = _v3_bytes_at(key.strip("/"))
    return None if data is None else _hash(data)


def _gv_key(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


# --------------------------------------------------------------------------- public interface


def v3_keys() -> list[str]:
    """The keys of `GET /openapi/v3` (`api/v1`, `apis/apps`, `apis/apps/v1`, ...)."""
    return list(_keys())


@functools.cache
def v3_index() -> Node:
    """`GET /openapi/v3`: every document with its cache-busting URL."""
    return {"paths": {key: {"serverRelativeURL": f"/openapi/v3/{key}?hash={_hash_at(key)}"}
                      for key in _keys()}}


@functools.cache
def v3_index_bytes() -> bytes:
    return _serialize(v3_index())


def v3_document_at(key: str) -> Node | None:
    """The document of an index key (`api`, `apis/apps`, `apis/apps/v1`, `version`...), or None."""
    return _v3_document_at(key.strip("/"))


def v3_document_bytes_at(key: str) -> bytes | None:
    return _v3_bytes_at(key.strip("/"))


def document_hash_at(key: str) -> str | None:
    """Upper-case hex SHA-512 of the serialized document (the `hash` and ETag upstream use)."""
    return _hash_at(key.strip("/"))


def v3_document(group: str, version: str) -> Node | None:
    """`GET /openapi/v3/api/v1` (group '') or `/openapi/v3/apis/<group>/<version>`; None if not served."""
    return v3_document_at(_gv_key(group, version))


def v3_document_bytes(group: str, version: str) -> bytes | None:
    return v3_document_bytes_at(_gv_key(group, version))


def document_hash(group: str, version: str) -> str | None:
    return document_hash_at(_gv_key(group, version))


def v3_index_response(if_none_match: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body for `GET /openapi/v3` (ETag, 304 on a matching If-None-Match)."""
    data = v3_index_bytes()
    headers = {"Content-Type": "application/json", "Etag": f'"{_hash(data)}"'}
    if _etag_matches(if_none_match, headers["Etag"]):
        return 304, headers, b""
    return 200, headers, data


def v3_response(key: str, hash_param: str | None = None, accept: str | None = None,
                if_none_match: str | None = None, now: float | None = None,
                ) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body for `GET /openapi/v3/<key>[?hash=...]`, as kube-openapi's handler3.

    404 for an unknown key; 406 if Accept rules out JSON (the gnostic protobuf form is not
    served); 301 to the current URL when `hash` is stale; with a matching `hash` the document
    may be cached for good (`Cache-Control: public, immutable`); 304 on a matching
    If-None-Match.
    """
    key = key.strip("/")
    data = v3_document_bytes_at(key)
    if data is None:
        return 404, {"Content-Type": "text/plain; charset=utf-8"}, b"404 page not found\n"
    headers = {"Vary": "Accept"}
    if not _accepts_json(accept):
        return 406, headers, b""
    etag = _hash_at(key)
    headers["Content-Type"] = "application/json"
    headers["Etag"] = f'"{etag}"'
    if hash_param:
        if hash_param != etag:
            headers["Location"] = f"/openapi/v3/{key}?hash={etag}"
            return 301, headers, b""
        headers["Cache-Control"] = "public, immutable"
        expires = (now if now is not None else time.time()) + 365 * 24 * 3600
        headers["Expires"] = email.utils.formatdate(expires, usegmt=True)
    if _etag_matches(if_none_match, headers["Etag"]):
        return 304, headers, b""
    return 200, headers, data


def v2_response(accept: str | None = None, if_none_match: str | None = None,
                ) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body for `GET /openapi/v2`: JSON only, 406 for a protobuf-only Accept.

    client-go (kubectl) asks for protobuf only; on 406 it tries /swagger-2.0.0.pb-v1 and then
    reports the error, which only matters for `kubectl explain --output=plaintext-openapiv2`
    and for client-side validation when the v3 documents are unusable.
    """
    if not _accepts_json(accept):
        return 406, {}, b""
    data = v2_document_bytes()
    headers = {"Content-Type": "application/json", "Etag": f'"{v2_hash()}"'}
    if _etag_matches(if_none_match, headers["Etag"]):
        return 304, headers, b""
    return 200, headers, data


def _etag_matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = [t.strip() for t in if_none_match.split(",")]
    return "*" in tags or etag in tags or etag in (t.removeprefix("W/") for t in tags)


def _accepts_json(accept: str | None) -> bool:
    if not accept:
        return True
    for clause in accept.split(","):
        media, _, rest = clause.partition(";")
        if media.strip().lower() in ("*/*", "application/*", "application/json"):
            if "q=0" not in rest.replace(" ", "") or "q=0." in rest.replace(" ", ""):
                return True
    return False


@functools.cache
def v2_document() -> Node:
    """`GET /openapi/v2` as JSON (swagger 2.0): every path and definition boxkube serves.

    client-go asks /openapi/v2 for gnostic protobuf; this JSON form is for other clients.
    """
    doc_paths: Node = {}
    used: list[str] = []
    for key in _keys():
        paths, defs = _paths_for(key)
        used.extend(defs)
        for path in paths:
            entry: Node = {o.method: _v2_operation(o) for o in path.ops}
            if path.params:
                entry["parameters"] = [p.v2() for p in path.params]
            doc_paths[path.path] = entry
    return {
        "definitions": _schemas(used, v3=False),
        "info": {"title": "Kubernetes", "version": f"v{KUBERNETES_VERSION}"},
        "paths": doc_paths,
        "security": [{"BearerToken": []}],
        "securityDefinitions": {"BearerToken": _SECURITY_SCHEME},
        "swagger": "2.0",
    }


@functools.cache
def v2_document_bytes() -> bytes:
    return _serialize(v2_document())


@functools.cache
def v2_hash() -> str:
    return _hash(v2_document_bytes())
