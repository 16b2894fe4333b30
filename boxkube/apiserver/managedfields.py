"""Server-side apply and `metadata.managedFields` tracking.

This is a port of the behaviour of two upstream pieces, written from their
semantics (no I/O, plain dicts in and out):

* sigs.k8s.io/structured-merge-diff: field sets (`fieldpath.Set`) and their
  FieldsV1 encoding, the typed walkers (to-field-set, compare, merge, remove)
  driven by the schema's `x-kubernetes-list-type` / `-list-map-keys` /
  `-map-type`, and `merge.Updater` (Update; Apply with pruning of fields the
  applier dropped and conflicts with other managers).
* k8s.io/apimachinery/pkg/util/managedfields/internal (the kube-apiserver
  field manager chain): manager identifiers, the "current-operation" trick
  that only stamps an Update entry when the object changed, the metadata
  fields that are never tracked, the strategies' reset fields, the cap of 10
  Update managers ("ancient-changes"), the client-side-apply upgrade path for
  the "kubectl" applier and the sync of its last-applied annotation, the
  version check and the 409 Status of conflicts; and the scale subresource
  mapping of `spec.replicas` (managedfields.ScaleHandler).

How the API server uses it:

* create / update / patch (not apply): after decoding and defaulting the new
  object, call ``track_update(old, new, ...)`` (``old=None`` for a create) and
  store what it returns. For the scale subresource pass the *parent* objects
  (old and new Deployment...) with ``subresource="scale"``.
* apply patch: ``validate_patch_options`` first, ``decode_apply_patch(body)``,
  then ``apply(live_or_None, applied, ...)``; default, run the strategy
  (status reset, generation) and validate what it returns, then store it.
"""
from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

import yaml

from boxkube.api import jsonio
from boxkube.apiserver import schema
from boxkube.apiserver.gofmt import GO_MAP, go_type, go_v, json_kind
from boxkube.apiserver.errors import APIError, bad_request, field_cause, invalid

log = logging.getLogger(__name__)

__all__ = [
    "LAST_APPLIED_ANNOTATION",
    "apply",
    "decode_apply_patch",
    "fields_of",
    "manager_for_request",
    "reset_fields_for",
    "track_update",
    "validate_field_manager",
    "validate_patch_options",
]

LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
MAX_UPDATE_MANAGERS = 10  # DefaultMaxUpdateManagers
FIELD_MANAGER_MAX_LENGTH = 128
_ANNOTATIONS_MAX_BYTES = 256 * 1024  # TotalAnnotationSizeLimitB
_CURRENT_OPERATION = "current-operation"
_ANCIENT = "ancient-changes"

# A path element is a small tuple:
#   ("f", name)                       field of a struct or key of a map
#   ("k", ((key, canon_json), ...))   item of a list of type map (keys sorted by name)
#   ("v", canon_json)                 item of a list of type set
#   ("i", index)                      item of an atomic list (validation errors only)
# A path is a tuple of path elements; a field set is a Python set of paths
# (its members; parents are members only when inserted themselves).
PE = tuple
Path = tuple
FieldSet = set

_ABSENT: Any = type("_Absent", (), {"__repr__": lambda self: "<absent>"})()  # Go's nil value (JSON null is None)

# Fields a manager never owns (stripmeta.go).
_STRIP = {
    (("f", "apiVersion"),),
    (("f", "kind"),),
    (("f", "metadata"),),
    (("f", "metadata"), ("f", "name")),
    (("f", "metadata"), ("f", "namespace")),
    (("f", "metadata"), ("f", "creationTimestamp")),
    (("f", "metadata"), ("f", "selfLink")),
    (("f", "metadata"), ("f", "uid")),
    (("f", "metadata"), ("f", "clusterName")),
    (("f", "metadata"), ("f", "generation")),
    (("f", "metadata"), ("f", "managedFields")),
    (("f", "metadata"), ("f", "resourceVersion")),
}

# Defaults of list-map key fields that upstream's OpenAPI carries (`+default=`)
# but the kubernetes-validate schemas drop; SMD uses them to key items that omit them.
_KEY_DEFAULTS: dict[str, dict[str, Any]] = {
    "io.k8s.api.core.v1.ContainerPort": {"protocol": "TCP"},
    "io.k8s.api.core.v1.ServicePort": {"protocol": "TCP"},
    "io.k8s.api.core.v1.LocalObjectReference": {"name": ""},
}

# Reset fields of the strategies (GetResetFields), per definition and subresource.
_STATUS = [("status",)]
_SPEC = [("spec",)]
_RESET_FIELDS: dict[tuple[str, str], list[tuple[str, ...]]] = {
    ("io.k8s.api.core.v1.Pod", ""): _STATUS,
    ("io.k8s.api.core.v1.Pod", "status"): [("spec",), ("metadata", "deletionTimestamp"),
                                           ("metadata", "ownerReferences")],
    ("io.k8s.api.core.v1.Namespace", ""): _STATUS,
    ("io.k8s.api.core.v1.Namespace", "status"): _SPEC,
    ("io.k8s.api.core.v1.Namespace", "finalize"): _STATUS,
    ("io.k8s.api.core.v1.Service", ""): _STATUS,
    ("io.k8s.api.core.v1.Service", "status"): _SPEC,
    ("io.k8s.api.core.v1.Node", ""): _STATUS,
    ("io.k8s.api.core.v1.Node", "status"): _SPEC,
    ("io.k8s.api.core.v1.ReplicationController", ""): _STATUS,
    ("io.k8s.api.core.v1.ReplicationController", "status"): _SPEC,
    ("io.k8s.api.apps.v1.Deployment", ""): _STATUS,
    ("io.k8s.api.apps.v1.Deployment", "status"): [("spec",), ("metadata", "labels")],
    ("io.k8s.api.apps.v1.ReplicaSet", ""): _STATUS,
    ("io.k8s.api.apps.v1.ReplicaSet", "status"): _SPEC,
    ("io.k8s.api.apps.v1.StatefulSet", ""): _STATUS,
    ("io.k8s.api.apps.v1.StatefulSet", "status"): _SPEC,
    ("io.k8s.api.apps.v1.DaemonSet", ""): _STATUS,
    ("io.k8s.api.apps.v1.DaemonSet", "status"): _SPEC,
}

# What the Go zero value of a kind serializes to (non-omitempty structs and
# nil slices/pointers without omitempty). A create is compared against it, so
# that, as upstream, `f:spec` or `f:containers` get no "." while `f:labels` does.
_POD_TEMPLATE0 = {"metadata": {"creationTimestamp": None}, "spec": {"containers": None}}
_WORKLOAD0 = {"selector": None, "template": _POD_TEMPLATE0}
_ZERO: dict[str, dict[str, Any]] = {
    "io.k8s.api.apps.v1.Deployment": {"spec": {**_WORKLOAD0, "strategy": {}}, "status": {}},
    "io.k8s.api.apps.v1.ReplicaSet": {"spec": dict(_WORKLOAD0), "status": {}},
    "io.k8s.api.apps.v1.StatefulSet": {"spec": {**_WORKLOAD0, "updateStrategy": {}}, "status": {}},
    "io.k8s.api.apps.v1.DaemonSet": {"spec": {**_WORKLOAD0, "updateStrategy": {}}, "status": {}},
    "io.k8s.api.apps.v1.ControllerRevision": {"data": None},
    "io.k8s.api.core.v1.Pod": {"spec": {"containers": None}, "status": {}},
    "io.k8s.api.core.v1.Service": {"spec": {}, "status": {"loadBalancer": {}}},
    "io.k8s.api.core.v1.Node": {"spec": {}, "status": {"daemonEndpoints": {"kubeletEndpoint": {}}, "nodeInfo": {}}},
    "io.k8s.api.core.v1.Event": {"involvedObject": {}, "source": {}, "firstTimestamp": None,
                                 "lastTimestamp": None, "eventTime": None},
    "io.k8s.api.core.v1.Binding": {"target": {}},
    "io.k8s.api.discovery.v1.EndpointSlice": {"endpoints": None},
}

# The replicas field the scale subresource maps to, for every scalable kind here.
_REPLICAS_PATH: Path = (("f", "spec"), ("f", "replicas"))


# --------------------------------------------------------------------------
# JSON as Go writes it, values and path elements
# --------------------------------------------------------------------------

def _go_json(value: Any, sort_keys: bool = True) -> str:
    """Compact JSON with encoding/json's HTML-safe escapes."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _normalize(value: Any) -> Any:
    """Integral floats are the same value as ints (value.Equals compares numerically)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, dict):
        return {k: _normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalize(v) for v in value]
    return value


def _canon(value: Any) -> str:
    return _go_json(_normalize(value))


@functools.lru_cache(maxsize=4096)
def _uncanon(text: str) -> Any:
    return json.loads(text)


def _value_key(value: Any) -> tuple:
    """value.Compare's total order: numbers < strings < bools < lists < maps < null."""
    if isinstance(value, bool):
        return (2, value)
    if isinstance(value, (int, float)):
        return (0, value)
    if isinstance(value, str):
        return (1, value)
    if isinstance(value, list):
        return (3, tuple(_value_key(v) for v in value))
    if isinstance(value, dict):
        return (4, tuple((k, _value_key(value[k])) for k in sorted(value)))
    return (5,)


def _pe_key(pe: PE) -> tuple:
    kind = pe[0]
    if kind == "f":
        return (0, pe[1])
    if kind == "k":
        return (1, tuple((name, _value_key(_uncanon(v))) for name, v in pe[1]))
    if kind == "v":
        return (2, _value_key(_uncanon(pe[1])))
    return (3, pe[1])


def _go_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _to_string(value: Any) -> str:
    """value.ToString, as used in path strings."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if not value.is_integer() else str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _go_quote(value)
    if isinstance(value, list):
        return "[" + ",".join(_to_string(v) for v in value) + "]"
    if isinstance(value, dict):
        return "".join(f"{k}={_to_string(v)}" for k, v in value.items())
    return str(value)


def _pe_str(pe: PE) -> str:
    kind = pe[0]
    if kind == "f":
        return "." + pe[1]
    if kind == "k":
        return "[" + ",".join(f"{name}={_to_string(_uncanon(v))}" for name, v in pe[1]) + "]"
    if kind == "v":
        return f"[={_to_string(_uncanon(pe[1]))}]"
    return f"[{pe[1]}]"


def _path_str(path: Path) -> str:
    return "".join(_pe_str(pe) for pe in path)


def _pe_serialize(pe: PE) -> str:
    kind = pe[0]
    if kind == "f":
        return "f:" + pe[1]
    if kind == "k":
        return "k:{" + ",".join(f"{_go_json(name)}:{v}" for name, v in pe[1]) + "}"
    if kind == "v":
        return "v:" + pe[1]
    return f"i:{pe[1]}"


class _UnknownPathElement(ValueError):
    pass


def _pe_parse(text: str) -> PE:
    if len(text) < 2:
        raise ValueError("key must be 2 characters long:")
    if text[1] != ":":
        raise ValueError(f"missing colon: {text}")
    kind, body = text[0], text[2:]
    if kind == "f":
        return ("f", body)
    if kind == "v":
        return ("v", _canon(json.loads(body)))
    if kind == "k":
        fields = json.loads(body)
        if not isinstance(fields, dict):
            raise ValueError(f"expected a key object: {text}")
        return ("k", tuple(sorted((name, _canon(v)) for name, v in fields.items())))
    if kind == "i":
        return ("i", int(body))
    raise _UnknownPathElement("unknown path element type")


# --------------------------------------------------------------------------
# Field sets: FieldsV1 encoding and set operations
# --------------------------------------------------------------------------

class _Node:
    __slots__ = ("member", "children")

    def __init__(self) -> None:
        self.member = False
        self.children: dict[PE, _Node] = {}


def _trie(paths: Iterable[Path]) -> _Node:
    root = _Node()
    for path in paths:
        node = root
        for pe in path:
            node = node.children.setdefault(pe, _Node())
        node.member = True
    return root


def _emit(node: _Node) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pe in sorted(node.children, key=_pe_key):
        child = node.children[pe]
        if child.children:
            body: dict[str, Any] = {".": {}} if child.member else {}
            body.update(_emit(child))
            out[_pe_serialize(pe)] = body
        else:
            out[_pe_serialize(pe)] = {}
    return out


def set_to_fields(paths: Iterable[Path]) -> dict[str, Any]:
    """A field set as its FieldsV1 JSON object (keys in upstream's order)."""
    return _emit(_trie(paths))


def fields_to_set(fields: Any) -> FieldSet:
    """Parse FieldsV1; raises ValueError on malformed input (unknown element kinds are skipped)."""
    if not isinstance(fields, dict):
        raise ValueError("FieldsV1 must be a JSON object")
    out: FieldSet = set()

    def walk(obj: dict[str, Any], prefix: Path) -> None:
        for key, sub in obj.items():
            if key == ".":
                continue
            try:
                pe = _pe_parse(key)
            except _UnknownPathElement:
                continue
            if not isinstance(sub, dict):
                raise ValueError(f"expected an object for {key}")
            path = prefix + (pe,)
            has_children = any(k != "." for k in sub)
            if "." in sub or not has_children:
                out.add(path)
            walk(sub, path)

    walk(fields, ())
    return out


def _iterate(paths: Iterable[Path]) -> list[Path]:
    """Set.Iterate order: at each level the members, then the children's subtrees."""
    result: list[Path] = []

    def walk(node: _Node, prefix: Path) -> None:
        ordered = sorted(node.children, key=_pe_key)
        for pe in ordered:
            if node.children[pe].member:
                result.append(prefix + (pe,))
        for pe in ordered:
            if node.children[pe].children:
                walk(node.children[pe], prefix + (pe,))

    walk(_trie(paths), ())
    return result


def _with_prefix(paths: Iterable[Path], pe: PE) -> FieldSet:
    return {p[1:] for p in paths if len(p) > 1 and p[0] == pe}


def _recursive_difference(paths: Iterable[Path], exclude: FieldSet) -> FieldSet:
    if not exclude:
        return set(paths)
    return {p for p in paths if not any(p[:i] in exclude for i in range(1, len(p) + 1))}


# --------------------------------------------------------------------------
# Schema: the structured-merge-diff view of an upstream definition
# --------------------------------------------------------------------------

class _Type:
    """kind is "map" (struct fields and/or map values), "list", "scalar" or "untyped"."""

    __slots__ = ("kind", "atomic", "fields", "elem", "list_kind", "keys", "key_defaults", "scalar")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.atomic = False
        self.fields: dict[str, Any] = {}
        self.elem: Any = None
        self.list_kind = "atomic"
        self.keys: tuple[str, ...] = ()
        self.key_defaults: dict[str, Any] = {}
        self.scalar = "untyped"

    def field_type(self, name: str) -> _Type | None:
        raw = self.fields.get(name)
        if raw is None:
            raw = self.elem
        return _type_of(raw) if raw is not None else None

    def elem_type(self) -> _Type | None:
        return _type_of(self.elem) if self.elem is not None else None


_TYPES: dict[int, tuple[Any, _Type]] = {}


def _type_of(raw: dict[str, Any] | None) -> _Type | None:
    if raw is None:
        return None
    hit = _TYPES.get(id(raw))
    if hit is not None and hit[0] is raw:
        return hit[1]
    built = _build_type(raw)
    _TYPES[id(raw)] = (raw, built)
    return built


def _build_type(raw: dict[str, Any]) -> _Type:
    node = schema.resolve(raw) or {}
    ext = {k: v for k, v in node.items() if k.startswith("x-kubernetes-")}
    ext.update({k: v for k, v in raw.items() if k.startswith("x-kubernetes-")})
    props = node.get("properties")
    extra = node.get("additionalProperties")
    kinds = schema.types(node)
    if props or isinstance(extra, dict):
        t = _Type("map")
        t.fields = dict(props or {})
        t.elem = extra if isinstance(extra, dict) else None
        t.atomic = ext.get("x-kubernetes-map-type") == "atomic"
        return t
    if "array" in kinds or isinstance(node.get("items"), dict):
        t = _Type("list")
        t.elem = node.get("items") if isinstance(node.get("items"), dict) else None
        list_type = ext.get("x-kubernetes-list-type")
        if list_type == "map":
            t.list_kind = "map"
            t.keys = tuple(ext.get("x-kubernetes-list-map-keys") or ())
            t.key_defaults = _KEY_DEFAULTS.get(schema.ref_name(t.elem) or "", {}) if t.elem else {}
        elif list_type == "set":
            t.list_kind = "set"
        t.atomic = t.list_kind == "atomic"
        return t
    if "oneOf" in node or "anyOf" in node:
        return _Type("scalar")
    concrete = [k for k in kinds if k != "null"]
    if not concrete or concrete == ["object"]:
        t = _Type("untyped")
        t.atomic = True
        return t
    t = _Type("scalar")
    if len(concrete) == 1:
        t.scalar = {"integer": "numeric", "number": "numeric", "string": "string",
                    "boolean": "boolean"}.get(concrete[0], "untyped")
    return t


def _root_type(definition_name: str) -> _Type:
    t = _type_of(schema.definition(definition_name))
    assert t is not None
    return t


def _mode(t: _Type | None, value: Any) -> str:
    """How a walker handles `value` of type `t`: "map", "list" or "leaf"."""
    if t is None or t.kind in ("scalar", "untyped"):
        return "leaf"
    if t.kind == "map":
        return "map" if value is _ABSENT or value is None or isinstance(value, dict) else "leaf"
    return "list" if value is _ABSENT or value is None or isinstance(value, list) else "leaf"


def _pair_mode(t: _Type | None, lhs: Any, rhs: Any) -> str:
    if rhs is _ABSENT:
        return _mode(t, lhs)
    mode = _mode(t, rhs)
    if lhs is _ABSENT or _mode(t, lhs) == mode:
        return mode
    return "leaf"


def _item_pe(t: _Type, item: Any, index: int) -> tuple[PE | None, str | None]:
    """listItemToPathElement: the path element of a list item, or an error."""
    if t.list_kind == "map":
        if item is None:
            return None, "associative list with keys may not have a null element"
        if not isinstance(item, dict):
            return None, "associative list with keys may not have non-map elements"
        fields = []
        for key in t.keys:
            if key in item:
                fields.append((key, _canon(item[key])))
            elif key in t.key_defaults:
                fields.append((key, _canon(t.key_defaults[key])))
            else:
                return None, (f"associative list with keys has an element that omits key field {_go_quote(key)}"
                              " (and doesn't have default value)")
        return ("k", tuple(sorted(fields))), None
    if t.list_kind == "set":
        if isinstance(item, dict):
            return None, "associative list without keys has an element that's a map type"
        if isinstance(item, list):
            return None, "not supported: associative list with lists as elements"
        if item is None:
            return None, "associative list without keys has an element that's an explicit null"
        return ("v", _canon(item)), None
    return ("i", index), None


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if type(a) is not type(b):
        return False
    return a == b


# --------------------------------------------------------------------------
# Typed walkers
# --------------------------------------------------------------------------

def _to_field_set(value: Any, t: _Type | None, path: Path, out: FieldSet) -> None:
    """TypedValue.ToFieldSet (tolerant: values that do not fit the schema are leaves)."""
    mode = _mode(t, value)
    if mode == "leaf":
        if path:
            out.add(path)
        return
    assert t is not None
    if t.atomic:
        if path:
            out.add(path)
        return
    if mode == "map":
        if not isinstance(value, dict):
            return
        for key, child in value.items():
            child_path = path + (("f", key),)
            _to_field_set(child, t.field_type(key), child_path, out)
            if child is None or (isinstance(child, dict) and not child) or key not in t.fields:
                out.add(child_path)
        return
    if not isinstance(value, list):
        return
    items = []
    for i, item in enumerate(value):
        pe, err = _item_pe(t, item, i)
        if pe is not None:
            items.append((pe, item))
    counts: dict[PE, int] = {}
    for pe, _ in items:
        counts[pe] = counts.get(pe, 0) + 1
    elem = t.elem_type()
    for pe, item in items:
        child_path = path + (pe,)
        if counts[pe] == 1:
            _to_field_set(item, elem, child_path, out)
        out.add(child_path)


@dataclass
class _Comparison:
    added: FieldSet
    modified: FieldSet
    removed: FieldSet

    def exclude(self, ignored: FieldSet) -> _Comparison:
        if not ignored:
            return self
        return _Comparison(_recursive_difference(self.added, ignored),
                           _recursive_difference(self.modified, ignored),
                           _recursive_difference(self.removed, ignored))


def _compare(lhs: Any, rhs: Any, t: _Type | None) -> _Comparison:
    c = _Comparison(set(), set(), set())
    _compare_walk(lhs, rhs, t, (), c)
    return c


def _compare_walk(lhs: Any, rhs: Any, t: _Type | None, path: Path, c: _Comparison) -> None:
    mode = _pair_mode(t, lhs, rhs)
    leaf = mode == "leaf"
    if mode == "map":
        assert t is not None
        lmap = lhs if isinstance(lhs, dict) else None
        rmap = rhs if isinstance(rhs, dict) else None
        if t.atomic or (not lmap and not rmap):
            leaf = True
        else:
            keys = list(lmap or {}) + [k for k in (rmap or {}) if k not in (lmap or {})]
            for key in keys:
                _compare_walk((lmap or {}).get(key, _ABSENT), (rmap or {}).get(key, _ABSENT),
                              t.field_type(key), path + (("f", key),), c)
    elif mode == "list":
        assert t is not None
        llist = lhs if isinstance(lhs, list) else None
        rlist = rhs if isinstance(rhs, list) else None
        if t.atomic or (not llist and not rlist):
            leaf = True
        else:
            elem = t.elem_type()
            lvalues: dict[PE, Any] = {}
            for i, item in enumerate(llist or []):
                pe, _ = _item_pe(t, item, i)
                if pe is not None:
                    lvalues.setdefault(pe, item)
            rvalues: dict[PE, Any] = {}
            for i, item in enumerate(rlist or []):
                pe, _ = _item_pe(t, item, i)
                if pe is None or pe in rvalues:
                    continue
                rvalues[pe] = item
                _compare_walk(lvalues.get(pe, _ABSENT), item, elem, path + (pe,), c)
            for i, item in enumerate(llist or []):
                pe, _ = _item_pe(t, item, i)
                if pe is None or pe in rvalues:
                    continue
                _compare_walk(item, _ABSENT, elem, path + (pe,), c)
    if not path:
        return
    if lhs is _ABSENT:
        c.added.add(path)
    elif rhs is _ABSENT:
        c.removed.add(path)
    elif leaf and not _equal(lhs, rhs):
        c.modified.add(path)


def _merge(lhs: Any, rhs: Any, t: _Type | None) -> Any:
    """TypedValue.Merge with ruleKeepRHS; returns _ABSENT when there is nothing."""
    mode = _pair_mode(t, lhs, rhs)
    if mode == "map":
        assert t is not None
        lmap = lhs if isinstance(lhs, dict) else None
        rmap = rhs if isinstance(rhs, dict) else None
        if not t.atomic and (lmap or rmap):
            out: dict[str, Any] = {}
            keys = list(lmap or {}) + [k for k in (rmap or {}) if k not in (lmap or {})]
            for key in keys:
                merged = _merge((lmap or {}).get(key, _ABSENT), (rmap or {}).get(key, _ABSENT), t.field_type(key))
                if merged is not _ABSENT:
                    out[key] = merged
            return out if out else _ABSENT
    elif mode == "list":
        assert t is not None
        llist = lhs if isinstance(lhs, list) else None
        rlist = rhs if isinstance(rhs, list) else None
        if not t.atomic and (llist or rlist):
            merged_list = _merge_list(t, llist or [], rlist or [])
            return merged_list if merged_list else _ABSENT
    return jsonio.copy(rhs if rhs is not _ABSENT else lhs)


_DUP = object()


def _merge_list(t: _Type, lhs: list, rhs: list) -> list:
    """visitListItems of the merging walker: keeps the live order, moves shared items as the config orders them."""
    elem = t.elem_type()
    lhs_pes: list[tuple[Any, Any]] = []
    observed_lhs: dict[Any, Any] = {}
    for i, item in enumerate(lhs):
        pe, _ = _item_pe(t, item, i)
        if pe is None:
            pe = ("!", i)  # unkeyable live item: kept where it is
        lhs_pes.append((pe, item))
        observed_lhs[pe] = _DUP if pe in observed_lhs else item
    rhs_pes: list[tuple[Any, Any]] = []
    observed_rhs: dict[Any, Any] = {}
    for i, item in enumerate(rhs):
        pe, _ = _item_pe(t, item, i)
        if pe is None or pe in observed_rhs:
            continue  # the config was validated: cannot happen
        rhs_pes.append((pe, item))
        observed_rhs[pe] = item

    def lchild(pe: Any) -> Any:
        value = observed_lhs.get(pe, _ABSENT)
        return _ABSENT if value is _DUP else value

    shared = [pe for pe, _ in rhs_pes if pe in observed_lhs]
    shared.reverse()
    next_shared = shared.pop() if shared else None
    merged_rhs: set[Any] = set()
    out: list[Any] = []
    li, ri = 0, 0
    while li < len(lhs_pes) or ri < len(rhs_pes):
        if li < len(lhs_pes) and ri < len(rhs_pes):
            pe = lhs_pes[li][0]
            if pe == rhs_pes[ri][0]:
                merged_rhs.add(pe)
                value = _merge(lchild(pe), observed_rhs[pe], elem)
                if value is not _ABSENT:
                    out.append(value)
                li += 1
                ri += 1
                next_shared = shared.pop() if shared else None
                continue
            if pe in observed_rhs and next_shared is not None and next_shared != pe:
                li += 1
                continue
        if li < len(lhs_pes):
            pe, item = lhs_pes[li]
            if pe not in observed_rhs:
                value = _merge(item, _ABSENT, elem)
                if value is not _ABSENT:
                    out.append(value)
                li += 1
                continue
            if pe in merged_rhs:
                li += 1
                continue
        if ri < len(rhs_pes):
            pe = rhs_pes[ri][0]
            merged_rhs.add(pe)
            value = _merge(lchild(pe), observed_rhs[pe], elem)
            if value is not _ABSENT:
                out.append(value)
            ri += 1
            if next_shared is not None and next_shared == pe:
                next_shared = shared.pop() if shared else None
    return out


def _remove_items(value: Any, to_remove: FieldSet, t: _Type | None) -> Any:
    """TypedValue.RemoveItems: a container left empty becomes null, as upstream."""
    mode = _mode(t, value)
    if mode == "leaf":
        return value
    assert t is not None
    if mode == "map":
        if not isinstance(value, dict) or not value or t.atomic:
            return None
        out: dict[str, Any] = {}
        for key, child in value.items():
            pe = ("f", key)
            if (pe,) in to_remove:
                continue
            sub = _with_prefix(to_remove, pe)
            out[key] = _remove_items(child, sub, t.field_type(key)) if sub else child
        return out or None
    if not isinstance(value, list) or not value or t.atomic:
        return None
    elem = t.elem_type()
    items: list[Any] = []
    for i, item in enumerate(value):
        pe, _ = _item_pe(t, item, i)
        if pe is not None:
            if (pe,) in to_remove:
                continue
            sub = _with_prefix(to_remove, pe)
            if sub:
                item = _remove_items(item, sub, elem)
        items.append(item)
    return items or None


def _ensure_named_fields(paths: FieldSet, root: _Type) -> FieldSet:
    """Set.EnsureNamedFieldsAreMembers: struct fields holding owned children become members."""
    out = set(paths)
    for path in paths:
        t: _Type | None = root
        for i in range(len(path) - 1):
            pe = path[i]
            if t is None:
                break
            if pe[0] == "f" and t.kind == "map":
                if pe[1] in t.fields:
                    out.add(path[:i + 1])
                t = t.field_type(pe[1])
            elif pe[0] == "k" and t.kind == "list":
                t = t.elem_type()
            else:
                t = None
    return out


def _validate(value: Any, t: _Type | None, path: str, errors: list[tuple[str, str]]) -> None:
    """The validating walker run when the applied config is made typed."""
    if t is None or value is None or t.kind == "untyped":
        return
    if t.kind == "scalar":
        if t.scalar == "numeric" and (isinstance(value, bool) or not isinstance(value, (int, float))):
            errors.append((path, f"expected numeric (int or float), got {go_type(value)}"))
        elif t.scalar == "string" and not isinstance(value, str):
            errors.append((path, f"expected string, got &value.valueUnstructured{{Value:{go_v(value)}}}"))
        elif t.scalar == "boolean" and not isinstance(value, bool):
            errors.append((path, f"expected boolean, got &{{{go_v(value)}}}"))
        return
    if t.kind == "map":
        if not isinstance(value, dict):
            errors.append((path, f"expected map, got &{{{go_v(value)}}}"))
            return
        for key, child in value.items():
            if key not in t.fields and t.elem is None:
                errors.append((f"{path}.{key}", "field not declared in schema"))
                return
            _validate(child, t.field_type(key), f"{path}.{key}", errors)
        return
    if not isinstance(value, list):
        errors.append((path, f"expected list, got &{{{go_v(value)}}}"))
        return
    seen: set[PE] = set()
    elem = t.elem_type()
    for i, item in enumerate(value):
        pe, err = _item_pe(t, item, i)
        if pe is None:
            errors.append((path, f"element {i}: {err}"))
            return
        if t.list_kind != "atomic":
            if pe in seen:
                errors.append((path, f"duplicate entries for key {_pe_str(pe)}"))
            seen.add(pe)
        _validate(item, elem, path + _pe_str(pe), errors)


# --------------------------------------------------------------------------
# merge.Updater
# --------------------------------------------------------------------------

@dataclass
class _VersionedSet:
    paths: FieldSet
    api_version: str
    applied: bool


Managers = dict[str, _VersionedSet]


class _Conflicts(Exception):
    def __init__(self, conflicts: dict[str, FieldSet]):
        super().__init__("conflicts")
        self.conflicts = conflicts


def _smd_update(old: Any, new: Any, version: str, managers: Managers, workflow: str, force: bool,
                t: _Type, ignored: FieldSet) -> tuple[Managers, _Comparison]:
    cmp = _compare(old, new, t).exclude(ignored)
    conflicts: dict[str, FieldSet] = {}
    removed: dict[str, FieldSet] = {}
    changed = cmp.modified | cmp.added
    for manager, vs in managers.items():
        if manager == workflow:
            continue
        clash = vs.paths & changed
        if clash:
            conflicts[manager] = clash
        if cmp.removed:
            removed[manager] = cmp.removed
    if not force and conflicts:
        raise _Conflicts(conflicts)
    for manager, clash in conflicts.items():
        vs = managers[manager]
        managers[manager] = _VersionedSet(vs.paths - clash, vs.api_version, vs.applied)
    for manager, gone in removed.items():
        vs = managers[manager]
        managers[manager] = _VersionedSet(vs.paths - gone, vs.api_version, vs.applied)
    return {m: vs for m, vs in managers.items() if vs.paths}, cmp


def _smd_update_op(live: Any, new: Any, version: str, managers: Managers, manager: str,
                   t: _Type, ignored: FieldSet) -> Managers:
    managers, cmp = _smd_update(live, new, version, dict(managers), manager, True, t, ignored)
    previous = managers.get(manager)
    paths = (previous.paths if previous else set()) | cmp.modified | cmp.added
    paths = _recursive_difference(paths - cmp.removed, ignored)
    managers[manager] = _VersionedSet(paths, version, False)
    if not paths:
        del managers[manager]
    return managers


def _smd_apply(live: Any, config: Any, version: str, managers: Managers, manager: str, force: bool,
               t: _Type, ignored: FieldSet) -> tuple[Any, Managers]:
    managers = dict(managers)
    merged = _merge(live, config, t)
    last = managers.get(manager)
    config_set: FieldSet = set()
    _to_field_set(config, t, (), config_set)
    config_set = _recursive_difference(config_set, ignored)
    managers[manager] = _VersionedSet(config_set, version, True)
    merged = _prune(merged, managers, last, t)
    managers, _ = _smd_update(live, merged, version, managers, manager, force, t, ignored)
    if _equal(_strip_nulls(live), _strip_nulls(merged)):
        return _ABSENT, managers
    return merged, managers


def _field_set(value: Any, t: _Type) -> FieldSet:
    out: FieldSet = set()
    _to_field_set(value, t, (), out)
    return out


def _prune(merged: Any, managers: Managers, last: _VersionedSet | None, t: _Type) -> Any:
    """Remove what the applier applied last time, dropped now, and nobody else owns."""
    if last is None or not last.paths:
        return merged
    pruned = _remove_items(merged, _ensure_named_fields(last.paths, t), t)
    # addBackOwnedItems
    managed: FieldSet = set()
    for vs in managers.values():
        managed |= vs.paths
    merged_set = _ensure_named_fields(_field_set(merged, t), t)
    pruned_set = _ensure_named_fields(_field_set(pruned, t), t)
    pruned = _remove_items(merged, merged_set - (pruned_set | _ensure_named_fields(managed, t)), t)
    # addBackDanglingItems
    pruned_set = _ensure_named_fields(_field_set(pruned, t), t)
    return _remove_items(merged, (merged_set - pruned_set) & _ensure_named_fields(last.paths, t), t)


# --------------------------------------------------------------------------
# managedFields entries <-> managers
# --------------------------------------------------------------------------

def _manager_key(manager: str, operation: str, api_version: str, subresource: str) -> str:
    """BuildManagerIdentifier: appliers are keyed without their apiVersion."""
    ident: dict[str, Any] = {}
    if manager:
        ident["manager"] = manager
    ident["operation"] = operation
    if operation != "Apply" and api_version:
        ident["apiVersion"] = api_version
    if subresource:
        ident["subresource"] = subresource
    return _go_json(ident, sort_keys=False)


def _decode(entries: Any) -> tuple[Managers, dict[str, str | None]]:
    managers: Managers = {}
    times: dict[str, str | None] = {}
    if entries is None:
        return managers, times
    if not isinstance(entries, list):
        raise ValueError("managedFields must be a list")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ValueError(f"invalid managed fields entry {i}")
        operation = entry.get("operation")
        if operation not in ("Apply", "Update"):
            raise ValueError("operation must be `Apply` or `Update`")
        api_version = entry.get("apiVersion") or ""
        if not api_version:
            raise ValueError("apiVersion must not be empty")
        fields_type = entry.get("fieldsType") or ""
        if fields_type != "FieldsV1":
            if not fields_type:
                raise ValueError(f"missing fieldsType in managed fields entry {i}")
            raise ValueError(f"invalid fieldsType {_go_quote(fields_type)} in managed fields entry {i}")
        key = _manager_key(entry.get("manager") or "", operation, api_version, entry.get("subresource") or "")
        managers[key] = _VersionedSet(fields_to_set(entry.get("fieldsV1") or {}), api_version, operation == "Apply")
        times[key] = entry.get("time")
    return managers, times


def _seconds(timestamp: str | None) -> float:
    if not timestamp:
        return 0
    try:
        return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


def _encode(managers: Managers, times: dict[str, str | None]) -> list[dict[str, Any]] | None:
    entries: list[dict[str, Any]] = []
    for key, vs in managers.items():
        ident = json.loads(key)
        entry: dict[str, Any] = {}
        if ident.get("manager"):
            entry["manager"] = ident["manager"]
        entry["operation"] = "Apply" if vs.applied else ident.get("operation", "Update")
        if vs.api_version:
            entry["apiVersion"] = vs.api_version
        if times.get(key):
            entry["time"] = times[key]
        entry["fieldsType"] = "FieldsV1"
        entry["fieldsV1"] = set_to_fields(vs.paths)
        if ident.get("subresource"):
            entry["subresource"] = ident["subresource"]
        entries.append(entry)
    entries.sort(key=lambda e: (e["operation"], _seconds(e.get("time")), e.get("manager", ""),
                                e.get("apiVersion", ""), e.get("subresource", "")))
    return entries or None


def _set_managed_fields(obj: dict[str, Any], entries: list[dict[str, Any]] | None) -> None:
    meta = obj.setdefault("metadata", {})
    if entries:
        meta["managedFields"] = entries
    else:
        meta.pop("managedFields", None)


def _without_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """`obj` without metadata.managedFields: a shallow view (the comparison only reads it)."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or "managedFields" not in meta:
        return obj
    return {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}


def _strip(managers: Managers, key: str) -> None:
    vs = managers.get(key)
    if vs is None:
        return
    paths = vs.paths - _STRIP
    if paths:
        managers[key] = _VersionedSet(paths, vs.api_version, vs.applied)
    else:
        del managers[key]


def _cap_update_managers(managers: Managers, times: dict[str, str | None]) -> None:
    """capManagersManager: fold the oldest Update entries into "ancient-changes" buckets."""
    updaters = [m for m, vs in managers.items() if not vs.applied]
    if len(updaters) <= MAX_UPDATE_MANAGERS:
        return
    updaters.sort(key=lambda m: (_seconds(times.get(m)), m))
    first_of_version: dict[str, str] = {}
    length = len(updaters)
    for manager in updaters:
        if length <= MAX_UPDATE_MANAGERS:
            break
        vs = managers[manager]
        bucket = _manager_key(_ANCIENT, "Update", vs.api_version, "")
        first = first_of_version.get(vs.api_version)
        if first is None:
            first_of_version[vs.api_version] = manager
            continue
        if bucket not in managers:
            managers[bucket] = managers.pop(first)
        managers[bucket] = _VersionedSet(vs.paths | managers[bucket].paths, vs.api_version, vs.applied)
        del managers[manager]
        length -= 1
        times[bucket] = times.get(manager)


def _is_reset(entries: Any) -> bool:
    """isResetManagedFields: `[]` or `[{}]` in a write wipes the managed fields."""
    if not isinstance(entries, list):
        return False
    return len(entries) == 0 or (len(entries) == 1 and entries[0] == {})


def _ignored(definition_name: str, subresource: str, reset_fields: Iterable[Iterable[str]] | None) -> FieldSet:
    paths = reset_fields if reset_fields is not None else _RESET_FIELDS.get((definition_name, subresource), [])
    return {tuple(("f", name) for name in path) for path in paths}


def reset_fields_for(definition_name: str, subresource: str = "") -> list[tuple[str, ...]]:
    """The fields a write never owns (and the strategy resets) for this resource/subresource."""
    return list(_RESET_FIELDS.get((definition_name, subresource), []))


# --------------------------------------------------------------------------
# Objects
# --------------------------------------------------------------------------

def _zero_object(definition_name: str, like: dict[str, Any]) -> dict[str, Any]:
    """The Go zero value of the kind, as the create/apply-create paths compare against."""
    zero: dict[str, Any] = {}
    for key in ("apiVersion", "kind"):
        if key in like:
            zero[key] = like[key]
    zero["metadata"] = {"creationTimestamp": None}
    if definition_name in _ZERO:
        zero.update(jsonio.copy(_ZERO[definition_name]))
    else:
        props = schema.definition(definition_name).get("properties", {})
        for key in ("spec", "status"):
            if key in props:
                zero[key] = {}
    return zero


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_nulls(v) for v in value]
    return value


def _group_version(api_version: str) -> tuple[str, str] | None:
    parts = api_version.split("/")
    if len(parts) == 1:
        return "", parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    return None


def _gvk_string(api_version: Any, kind: Any) -> str:
    gv = _group_version(api_version) if isinstance(api_version, str) else None
    group, version = gv if gv else ("", "")
    return f"{group}/{version}, Kind={kind if isinstance(kind, str) else ''}"


def _expected_kind(definition_name: str, api_version: str) -> str:
    gv = _group_version(api_version) or ("", "")
    gvks = schema.definition(definition_name).get("x-kubernetes-group-version-kind", [])
    for gvk in gvks:
        if (gvk.get("group", ""), gvk.get("version", "")) == gv:
            return gvk["kind"]
    return gvks[0]["kind"] if gvks else definition_name.rsplit(".", 1)[-1]


def _print_manager(key: str) -> str:
    try:
        ident = json.loads(key)
    except ValueError:
        return _go_quote(key)
    text = _go_quote(ident.get("manager", ""))
    if ident.get("subresource"):
        text += f" with subresource {_go_quote(ident['subresource'])}"
    if ident.get("operation") == "Update":
        text += f" using {ident.get('apiVersion', '')}"
    return text


def _conflict_error(conflicts: dict[str, FieldSet]) -> APIError:
    """NewConflictError: 409 Conflict with one FieldManagerConflict cause per field."""
    listed = [(key, path) for key in sorted(conflicts) for path in _iterate(conflicts[key])]
    causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {_print_manager(key)}",
               "field": _path_str(path)} for key, path in listed]
    if len(listed) == 1:
        key, path = listed[0]
        message = f"Apply failed with 1 conflict: conflict with {_print_manager(key)}: {_path_str(path)}"
    else:
        lines: list[str] = []
        for key in sorted(conflicts):
            lines.append(f"conflicts with {_print_manager(key)}:")
            lines.extend(f"- {_path_str(path)}" for path in _iterate(conflicts[key]))
        message = f"Apply failed with {len(listed)} conflicts: " + "\n".join(lines)
    return APIError(409, "Conflict", message, {"causes": causes})


def _annotations(obj: dict[str, Any]) -> dict[str, Any] | None:
    meta = obj.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    return annotations if isinstance(annotations, dict) else None


def _allowed_conflicts_from_last_applied(live: dict[str, Any], api_version: str, t: _Type) -> FieldSet | None:
    """lastAppliedManager: fields of the client-side last-applied config that still match the live object."""
    annotations = _annotations(live) or {}
    text = annotations.get(LAST_APPLIED_ANNOTATION)
    if not isinstance(text, str) or not text:
        return None
    try:
        last_applied = json.loads(text)
    except ValueError:
        return None
    if not isinstance(last_applied, dict) or last_applied.get("apiVersion") != api_version:
        return None
    errors: list[tuple[str, str]] = []
    _validate(last_applied, t, "", errors)
    if errors:
        return None
    cmp = _compare(last_applied, live, t)
    return _field_set(last_applied, t) - cmp.modified - cmp.added - cmp.removed


def _build_last_applied(applied: dict[str, Any]) -> str:
    obj = jsonio.copy(applied)
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        annotations = meta.get("annotations")
        if isinstance(annotations, dict):
            annotations.pop(LAST_APPLIED_ANNOTATION, None)
        else:
            meta.pop("annotations", None)
    return _go_json(obj) + "\n"


def _set_last_applied(obj: dict[str, Any], value: str) -> None:
    meta = obj.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    annotations[LAST_APPLIED_ANNOTATION] = value
    size = sum(len(k.encode()) + len(str(v).encode()) for k, v in annotations.items())
    if size > _ANNOTATIONS_MAX_BYTES:
        annotations.pop(LAST_APPLIED_ANNOTATION)
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)


# --------------------------------------------------------------------------
# Public interface
# --------------------------------------------------------------------------

def fields_of(obj: dict[str, Any], definition_name: str) -> dict[str, Any]:
    """The FieldsV1 set of every field of `obj` (TypedValue.ToFieldSet, nothing stripped)."""
    t = _root_type(definition_name)
    return set_to_fields(_field_set(obj, t))


def track_update(old: dict[str, Any] | None, new: dict[str, Any], *, manager: str, definition_name: str,
                 api_version: str, now: str, subresource: str = "",
                 reset_fields: Iterable[Iterable[str]] | None = None) -> dict[str, Any]:
    """managedFields of `new` after a create/update/patch that is not an apply.

    The fields that changed from `old` (None for a create) to `new` become owned
    by the entry (manager, Update, api_version, subresource), stamped `now`;
    other managers lose the fields that changed or went away. Fields in the
    strategy's reset fields, and object metadata like name/uid/resourceVersion,
    are never owned. Returns a copy of `new`.
    """
    # Only metadata.managedFields of the result is written: a fresh metadata dict keeps `new` as it was.
    result = {**new, "metadata": dict(new.get("metadata") or {})}
    live = old if old is not None else _zero_object(definition_name, new)
    live_entries = (live.get("metadata") or {}).get("managedFields")
    try:
        if subresource == "scale":
            return _track_scale(live, result, manager or "unknown", api_version)
        t = _root_type(definition_name)
        new_entries = (result.get("metadata") or {}).get("managedFields")
        if subresource:
            managers, times = _decode_or_empty(live_entries)
        elif _is_reset(new_entries):
            managers, times = {}, {}
        else:
            try:
                managers, times = _decode(new_entries)
            except ValueError:
                managers, times = {}, {}
            if not managers:
                managers, times = _decode_or_empty(live_entries)
        ignored = _ignored(definition_name, subresource, reset_fields)
        key = _manager_key(manager or "unknown", "Update", api_version, subresource)
        managers = _smd_update_op(_without_managed_fields(live), _without_managed_fields(result), api_version,
                                  managers, _CURRENT_OPERATION, t, ignored)
        _strip(managers, _CURRENT_OPERATION)
        if _CURRENT_OPERATION in managers:
            current = managers.pop(_CURRENT_OPERATION)
            previous = managers.get(key)
            paths = current.paths | (previous.paths if previous else set())
            managers[key] = _VersionedSet(paths, current.api_version, False)
            times[key] = now
        _cap_update_managers(managers, times)
        _set_managed_fields(result, _encode(managers, times))
    except Exception:  # UpdateNoErrors: keep the live object's managedFields
        log.exception("failed to update managedFields of %s %s (kept the previous ones)", definition_name,
                      (new.get("metadata") or {}).get("name"))
        result = jsonio.copy(new)
        _set_managed_fields(result, live_entries if isinstance(live_entries, list) else None)
    return result


def _decode_or_empty(entries: Any) -> tuple[Managers, dict[str, str | None]]:
    try:
        return _decode(entries)
    except ValueError:
        return {}, {}


def _track_scale(live: dict[str, Any], result: dict[str, Any], manager: str, api_version: str) -> dict[str, Any]:
    """An update through /scale, given the parent objects (ScaleHandler.ToSubresource/ToParent)."""
    managers, times = _decode_or_empty((live.get("metadata") or {}).get("managedFields"))
    before = (live.get("spec") or {}).get("replicas", _ABSENT)
    after = (result.get("spec") or {}).get("replicas", _ABSENT)
    if before is not _ABSENT and after is not _ABSENT and _equal(before, after):
        _set_managed_fields(result, _encode(managers, times))
        return result
    for key in list(managers):
        vs = managers[key]
        if _REPLICAS_PATH in vs.paths:
            paths = vs.paths - {_REPLICAS_PATH}
            if paths:
                managers[key] = _VersionedSet(paths, vs.api_version, vs.applied)
            else:
                del managers[key]
                times.pop(key, None)
    if after is not _ABSENT:
        key = _manager_key(manager, "Update", api_version, "scale")
        managers[key] = _VersionedSet({_REPLICAS_PATH}, api_version, False)
        times.pop(key, None)  # ToParent takes the time from the parent's entries: scale entries carry none
    _set_managed_fields(result, _encode(managers, times))
    return result


def apply(live: dict[str, Any] | None, applied: dict[str, Any], *, manager: str, force: bool,
          definition_name: str, api_version: str, now: str, subresource: str = "",
          reset_fields: Iterable[Iterable[str]] | None = None) -> dict[str, Any]:
    """Server-side apply of the partial object `applied` onto `live` (None: create).

    Returns the merged object with its managedFields (nulls dropped; not yet
    defaulted), or raises APIError: 400 for a wrong apiVersion/kind or
    managedFields in the body, 409 Conflict (reason FieldManagerConflict causes)
    when another manager owns a field set to another value and `force` is false,
    500 (no reason, like upstream) when the body does not fit the schema.
    """
    kind = _expected_kind(definition_name, api_version)
    if applied.get("apiVersion") != api_version or applied.get("kind") != kind:
        raise bad_request(f"invalid object type: {_gvk_string(applied.get('apiVersion'), applied.get('kind'))}")
    meta = applied.get("metadata")
    if isinstance(meta, dict) and meta.get("managedFields") is not None:
        raise bad_request("metadata.managedFields must be nil")
    t = _root_type(definition_name)
    errors: list[tuple[str, str]] = []
    _validate(applied, t, "", errors)
    if errors:
        name = meta.get("name", "") if isinstance(meta, dict) else ""
        namespace = meta.get("namespace", "") if isinstance(meta, dict) else ""
        text = (f"{errors[0][0]}: {errors[0][1]}" if errors[0][0] else errors[0][1]) if len(errors) == 1 else \
            "errors:\n" + "\n".join(f"  {p}: {m}" if p else f"  {m}" for p, m in errors)
        raise APIError(500, "", f"failed to create typed patch object ({namespace}/{name}; "
                                f"{_gvk_string(applied.get('apiVersion'), applied.get('kind'))}): {text}")

    live_obj = jsonio.copy(live) if live is not None else _zero_object(definition_name, applied)
    try:
        managers, times = _decode((live_obj.get("metadata") or {}).get("managedFields"))
    except ValueError as e:
        raise APIError(500, "", f"failed to decode managed fields: {e}") from None
    live_obj = _without_managed_fields(live_obj)
    ignored = _ignored(definition_name, subresource, reset_fields)
    key = _manager_key(manager, "Apply", api_version, subresource)
    config = jsonio.copy(applied)

    try:
        merged, managers = _smd_apply(live_obj, config, api_version, managers, key, force, t, ignored)
    except _Conflicts as conflict:
        if manager != "kubectl":
            raise _conflict_error(conflict.conflicts) from None
        # Upgrade from client-side apply: conflicts on fields the last-applied
        # annotation set, to the values they still have, are not conflicts.
        allowed = _allowed_conflicts_from_last_applied(live_obj, api_version, t)
        if allowed is None:
            raise _conflict_error(conflict.conflicts) from None
        remaining = {m: paths - allowed for m, paths in conflict.conflicts.items()}
        remaining = {m: paths for m, paths in remaining.items() if paths}
        if remaining:
            raise _conflict_error(remaining) from None
        merged, managers = _smd_apply(live_obj, config, api_version, managers, key, True, t, ignored)

    _strip(managers, key)
    if merged is not _ABSENT:
        times[key] = now
        result = _strip_nulls(merged)
    else:
        result = live_obj
    if manager == "kubectl" and (_annotations(result) or {}).get(LAST_APPLIED_ANNOTATION):
        _set_last_applied(result, _build_last_applied(applied))
    _set_managed_fields(result, _encode(managers, times))
    return result


# --------------------------------------------------------------------------
# Request helpers
# --------------------------------------------------------------------------

def manager_for_request(field_manager: str | None, user_agent: str | None) -> str:
    """managerOrUserAgent: the fieldManager query parameter, else the User-Agent's program name."""
    if field_manager:
        return field_manager
    prefix = (user_agent or "").split("/")[0]
    out = ""
    for ch in prefix:
        if not ch.isprintable():
            continue
        if len(out.encode()) >= FIELD_MANAGER_MAX_LENGTH:
            break
        out += ch
    return out


def _field_manager_causes(field_manager: str | None) -> list[dict[str, str]]:
    causes: list[dict[str, str]] = []
    if not field_manager:
        return causes
    if len(field_manager.encode()) > FIELD_MANAGER_MAX_LENGTH:
        causes.append(field_cause("fieldManager", f"Too long: may not be more than {FIELD_MANAGER_MAX_LENGTH} bytes",
                                  "FieldValueTooLong"))
    position = 0
    for ch in field_manager:
        if not ch.isprintable():
            causes.append(field_cause("fieldManager",
                                      f"Invalid value: {_go_quote(field_manager)}: invalid character "
                                      f"U+{ord(ch):04X} (at position {position})"))
        position += len(ch.encode())
    return causes


def validate_field_manager(field_manager: str | None, options_kind: str = "UpdateOptions") -> None:
    """ValidateFieldManager for create/update (options_kind CreateOptions/UpdateOptions): 422 when invalid."""
    causes = _field_manager_causes(field_manager)
    if causes:
        raise invalid(options_kind, "", causes, group="meta.k8s.io")


def validate_patch_options(patch_type: str, field_manager: str | None, force: bool | None) -> None:
    """ValidatePatchOptions: apply needs a fieldManager, only apply takes force (422 PatchOptions)."""
    causes: list[dict[str, str]] = []
    is_apply = patch_type.startswith("application/apply-patch")
    if not is_apply:
        if force is not None:
            causes.append(field_cause("force", "Forbidden: may not be specified for non-apply patch",
                                      "FieldValueForbidden"))
    elif not field_manager:
        causes.append(field_cause("fieldManager", "Required value: is required for apply patch",
                                  "FieldValueRequired"))
    causes.extend(_field_manager_causes(field_manager))
    if causes:
        raise invalid("PatchOptions", "", causes, group="meta.k8s.io")


class _ApplyLoader(yaml.SafeLoader):
    """YAML as sigs.k8s.io/yaml reads it into JSON: timestamps stay strings."""


_ApplyLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def decode_apply_patch(body: bytes | str) -> dict[str, Any]:
    """The apply-patch body (YAML or JSON) as an object; 400 "error decoding YAML: ..." otherwise."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    try:
        value = yaml.load(text, Loader=_ApplyLoader) if text.strip() else {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise bad_request(f"error decoding YAML: error converting YAML to JSON: yaml: {line}{problem}") from None
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise bad_request("error decoding YAML: error unmarshaling JSON: while decoding JSON: json: "
                          f"cannot unmarshal {json_kind(value)} into Go value of type {GO_MAP}")
    return _jsonable(value)


def _jsonable(value: Any) -> Any:
    """Non-string keys become strings, as in the YAML-to-JSON conversion."""
    if isinstance(value, dict):
        return {("true" if k else "false") if isinstance(k, bool) else str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value
