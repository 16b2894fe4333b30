"""Validation of API objects, with the messages kube-apiserver 1.37 gives.

A create or update in Kubernetes goes through two gates, and clients see both:

1. **Decoding** the body into the Go type (400 BadRequest). A value of the wrong
   JSON type, a bad quantity or bad base64 fails here with Go's `encoding/json`
   wording (`decode_error`); unknown and duplicate fields are *strict decoding
   errors*, fatal with `fieldValidation=Strict` (kubectl's default), a
   `Warning` header with `Warn`, silently dropped with `Ignore`
   (`unknown_fields`, `strict_error`, `warnings_for`, `drop_unknown_fields`).
2. **Validation** of the decoded object (422 Invalid, one cause per field):
   object metadata (`validate_object_meta`), the handwritten per-kind rules
   (`KIND_RULES`) and, for updates, immutability (`validate_update`).

Everything is driven by the upstream schemas (`schema.py`), compiled once per
definition into small immutable nodes, and walked by hand: no jsonschema on
the request path. Messages follow k8s.io/apimachinery/pkg/util/validation/field
(`Required value`, `Invalid value: <value>: <detail>`, ...), where the value is
printed like Go does (`%q` for strings, JSON for maps, lists and structs).

Typical use in a create handler, once the namespace from the URL is filled in
(defaulting before `validate` makes the result exact; without it, fields that
upstream defaults are only checked when present):

    body = loads(raw)                               # keeps repeated keys visible
    findings = inspect(definition, body)            # one walk of the schema
    if (err := findings.decode_error(kind, version)) is not None:
        raise err                                   # 400, Go's decoder wording
    if findings.unknown or findings.duplicates:     # per ?fieldValidation=
        Strict: raise strict_error(findings.unknown, findings.duplicates, kind=kind, version=version)
        Warn:   add warning_header(w) for w in warnings_for(findings.unknown, findings.duplicates)
    drop_unknown_fields(definition, body)           # Go never stores them
    causes = validate_object_meta(body["metadata"], namespaced, name_rule)
    causes += validate(definition, body, findings=findings)
    if causes:
        raise invalid_error(definition, body, causes)   # 422
"""
from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from boxkube.api.quantity import Quantity, QuantityError, parse_quantity
from boxkube.apiserver import schema
from boxkube.apiserver.gofmt import Ordered, go_float, go_json, go_quote, json_kind
from boxkube.apiserver.errors import APIError, bad_request, invalid

Cause = dict[str, str]
Obj = dict[str, Any]

# --------------------------------------------------------------------------
# Field errors (k8s.io/apimachinery/pkg/util/validation/field/errors.go)
# --------------------------------------------------------------------------

def go_value(value: Any) -> str:
    """A bad value as field.Error prints it: simple types plainly, strings %q, the rest as JSON."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        return go_quote(value)
    return go_json(value)


def _cause(reason: str, path: str, message: str) -> Cause:
    return {"reason": reason, "message": message, "field": path}


def _with_detail(text: str, detail: str) -> str:
    return f"{text}: {detail}" if detail else text


def required(path: str, detail: str = "") -> Cause:
    return _cause("FieldValueRequired", path, _with_detail("Required value", detail))


def invalid_value(path: str, value: Any, detail: str = "") -> Cause:
    return _cause("FieldValueInvalid", path, _with_detail(f"Invalid value: {go_value(value)}", detail))


def type_invalid(path: str, value: Any, detail: str = "") -> Cause:
    return _cause("FieldValueTypeInvalid", path, _with_detail(f"Invalid value: {go_value(value)}", detail))


def not_supported(path: str, value: Any, supported: Iterable[str]) -> Cause:
    detail = ", ".join(go_quote(s) for s in supported)
    return _cause("FieldValueNotSupported", path,
                  _with_detail(f"Unsupported value: {go_value(value)}", f"supported values: {detail}" if detail else ""))


def duplicate(path: str, value: Any) -> Cause:
    return _cause("FieldValueDuplicate", path, f"Duplicate value: {go_value(value)}")


def not_found(path: str, value: Any, detail: str = "") -> Cause:
    return _cause("FieldValueNotFound", path, _with_detail(f"Not found: {go_value(value)}", detail))


def forbidden(path: str, detail: str = "") -> Cause:
    return _cause("FieldValueForbidden", path, _with_detail("Forbidden", detail))


def too_long(path: str, max_bytes: int) -> Cause:
    unit = "byte" if max_bytes == 1 else "bytes"
    return _cause("FieldValueTooLong", path, f"Too long: may not be more than {max_bytes} {unit}")


def child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def index(path: str, i: int) -> str:
    return f"{path}[{i}]"


def key(path: str, k: str) -> str:
    return f"{path}[{k}]"


# --------------------------------------------------------------------------
# Formats (k8s.io/apimachinery/pkg/util/validation, api/validate/content)
# --------------------------------------------------------------------------

def max_len_error(length: int) -> str:
    return f"must be no more than {length} bytes"


def regex_error(msg: str, regex: str, *examples: str) -> str:
    if not examples:
        return f"{msg} (regex used for validation is '{regex}')"
    # Upstream joins "'a', " + " or 'b', " -> the double space is theirs.
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{regex}')"


def inclusive_range_error(lo: int, hi: int) -> str:
    return f"must be between {lo} and {hi}, inclusive"


_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_LABEL_KEY_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE_FMT = "(" + _LABEL_KEY_FMT + ")?"
_CONFIG_MAP_KEY_FMT = "[-._a-zA-Z0-9]+"
_PERCENT_FMT = "[0-9]+%"
_HTTP_HEADER_FMT = "[-A-Za-z0-9]+"

_DNS1123_LABEL = re.compile(_DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN = re.compile(_DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL = re.compile(_DNS1035_LABEL_FMT)
_LABEL_KEY = re.compile(_LABEL_KEY_FMT)
_LABEL_VALUE = re.compile(_LABEL_VALUE_FMT)
_CONFIG_MAP_KEY = re.compile(_CONFIG_MAP_KEY_FMT)
_PERCENT = re.compile(_PERCENT_FMT)
_HTTP_HEADER = re.compile(_HTTP_HEADER_FMT)
_PORT_NAME_CHARS = re.compile("[-a-z0-9]+")

_DNS1123_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                      "and must start and end with an alphanumeric character")
_DNS1123_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                          "'-' or '.', and must start and end with an alphanumeric character")
_DNS1035_LABEL_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
                      "start with an alphabetic character, and end with an alphanumeric character")
_LABEL_KEY_MSG = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
_LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
                    "and must start and end with an alphanumeric character")


def is_dns1123_label(value: str) -> list[str]:
    errs = [max_len_error(63)] if len(value.encode()) > 63 else []
    if not _DNS1123_LABEL.fullmatch(value):
        if _DNS1123_SUBDOMAIN.fullmatch(value):
            errs.append("must not contain dots")
        else:
            errs.append(regex_error(_DNS1123_LABEL_MSG, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    errs = [max_len_error(253)] if len(value.encode()) > 253 else []
    if not _DNS1123_SUBDOMAIN.fullmatch(value):
        errs.append(regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def is_dns1035_label(value: str) -> list[str]:
    errs = [max_len_error(63)] if len(value.encode()) > 63 else []
    if not _DNS1035_LABEL.fullmatch(value):
        errs.append(regex_error(_DNS1035_LABEL_MSG, _DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def is_qualified_name(value: str) -> list[str]:
    """A label key: optional DNS-subdomain prefix and '/', then a 63-byte name."""
    parts = value.split("/")
    if len(parts) > 2:
        return ["a valid label key " + regex_error(_LABEL_KEY_MSG, _LABEL_KEY_FMT, "MyName", "my.name", "123-abc")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    errs: list[str] = []
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix))
    if not name:
        errs.append("name part must be non-empty")
    elif len(name.encode()) > 63:
        errs.append("name part " + max_len_error(63))
    if not _LABEL_KEY.fullmatch(name):
        errs.append("name part " + regex_error(_LABEL_KEY_MSG, _LABEL_KEY_FMT, "MyName", "my.name", "123-abc"))
    return errs


def is_label_value(value: str) -> list[str]:
    errs = [max_len_error(63)] if len(value.encode()) > 63 else []
    if not _LABEL_VALUE.fullmatch(value):
        errs.append(regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def _chdir_prefix(value: str) -> list[str]:
    if value == ".":
        return ["must not be '.'"]
    if value == "..":
        return ["must not be '..'"]
    if value.startswith(".."):
        return ["must not start with '..'"]
    return []


def is_config_map_key(value: str) -> list[str]:
    errs = [max_len_error(253)] if len(value.encode()) > 253 else []
    if not _CONFIG_MAP_KEY.fullmatch(value):
        errs.append(regex_error("a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                                _CONFIG_MAP_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    return errs + _chdir_prefix(value)


def is_valid_port_num(port: int) -> list[str]:
    return [] if 1 <= port <= 65535 else [inclusive_range_error(1, 65535)]


def is_valid_port_name(port: str) -> list[str]:
    """IANA_SVC_NAME: at most 15 characters, [-a-z0-9], at least one letter, no '--'."""
    errs = [max_len_error(15)] if len(port) > 15 else []
    if not _PORT_NAME_CHARS.fullmatch(port):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search("[a-z]", port):
        errs.append("must contain at least one letter (a-z)")
    if "--" in port:
        errs.append("must not contain consecutive hyphens")
    if port and (port[0] == "-" or port[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def is_valid_percent(value: str) -> list[str]:
    if _PERCENT.fullmatch(value):
        return []
    return [regex_error("a valid percent string must be a numeric string followed by an ending '%'",
                        _PERCENT_FMT, "1%", "93%")]


def is_relaxed_env_var_name(value: str) -> list[str]:
    """Env var names since RelaxedEnvironmentVariableValidation went GA: printable ASCII but '='."""
    if not value:
        return ["environment variable name must be non-empty"]
    if any(ord(c) > 126 or ord(c) < 32 or c == "=" for c in value):
        return ["a valid environment variable name must consist only of printable ASCII characters other than '='"]
    return []


def is_path_segment_name(value: str, prefix: bool = False) -> list[str]:
    """Names that appear as one URL path segment (RBAC roles and the like)."""
    if not prefix and value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in value]


def _mask_trailing_dash(name: str) -> str:
    # Upstream replaces the last *two* characters by "a" (name[:len-2]+"a"); we copy that.
    return name[:max(len(name) - 2, 0)] + "a" if name.endswith("-") else name


def _name_is(check: Callable[[str], list[str]]) -> Callable[[str, bool], list[str]]:
    def name_fn(name: str, prefix: bool) -> list[str]:
        return check(_mask_trailing_dash(name) if prefix else name)
    return name_fn


# name_rule -> ValidateNameFunc(name, prefix)
NAME_RULES: dict[str, Callable[[str, bool], list[str]]] = {
    "dns1123-subdomain": _name_is(is_dns1123_subdomain),
    "dns1123-label": _name_is(is_dns1123_label),
    "dns1035-label": _name_is(is_dns1035_label),
    "path-segment": is_path_segment_name,
}

# Which name rule each kind uses (core/apps validation's Validate<Kind>Name);
# kinds not listed use DNS-1123 subdomains.
KIND_NAME_RULES: dict[str, str] = {
    "Namespace": "dns1123-label",
    "Service": "dns1035-label",
    "Role": "path-segment",
    "ClusterRole": "path-segment",
    "RoleBinding": "path-segment",
    "ClusterRoleBinding": "path-segment",
}


# --------------------------------------------------------------------------
# Quantities (k8s.io/apimachinery/pkg/api/resource)
# --------------------------------------------------------------------------

def _quantity_text(value: Any) -> str:
    """The text Quantity.UnmarshalJSON parses for a JSON value."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value)


# --------------------------------------------------------------------------
# Go decoding details: base64 and RFC 3339 times
# --------------------------------------------------------------------------

_B64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def go_base64_error(text: str) -> int | None:
    """Offset Go's base64.StdEncoding.Decode reports as corrupt, or None if it decodes."""
    src = text.encode()
    try:
        if b"\n" not in src and b"\r" not in src:
            base64.b64decode(src, validate=True)
            return None
    except (binascii.Error, ValueError):
        pass
    si, n = 0, len(src)
    while si < n:
        j = 0
        while j < 4:
            if si == n:
                if j == 0:
                    return None
                return si - j  # padding is required: a short final quantum is corrupt
            ch = src[si]
            si += 1
            if ch in _B64_ALPHABET:
                j += 1
                continue
            if ch in b"\r\n":
                continue
            if ch != ord("="):
                return si - 1
            return _b64_padding_error(src, si, j)
    return None


def _b64_padding_error(src: bytes, si: int, j: int) -> int | None:
    """Go's checks once '=' is seen at position j of a quantum (si is past it)."""
    n = len(src)
    if j in (0, 1):
        return si - 1
    if j == 2:
        while si < n and src[si] in b"\r\n":
            si += 1
        if si == n:
            return n
        if src[si] != ord("="):
            return si - 1
        si += 1
    while si < n and src[si] in b"\r\n":
        si += 1
    return si if si < n else None


_RFC3339_LAYOUT = "2006-01-02T15:04:05Z07:00"
_RFC3339_PARTS = (("2006", r"\d{4}"), ("-", "-"), ("01", r"\d{2}"), ("-", "-"), ("02", r"\d{2}"), ("T", "T"),
                  ("15", r"\d{2}"), (":", ":"), ("04", r"\d{2}"), (":", ":"), ("05", r"\d{2}(?:\.\d+)?"),
                  ("Z07:00", r"Z|[+-]\d{2}:\d{2}"))


# The whole layout at once: nearly every timestamp is well-formed (the server wrote it).
_RFC3339_WHOLE = re.compile("".join(pattern if len(pattern) == 1 else f"(?:{pattern})" for _, pattern in _RFC3339_PARTS))


def go_time_error(text: str) -> str | None:
    """time.Parse(time.RFC3339, text)'s error, roughly, or None if it parses."""
    if _RFC3339_WHOLE.fullmatch(text):
        return None
    rest = text
    for element, pattern in _RFC3339_PARTS:
        match = re.match(pattern, rest)
        if not match:
            return (f"parsing time {go_quote(text)} as {go_quote(_RFC3339_LAYOUT)}: "
                    f"cannot parse {go_quote(rest)} as {go_quote(element)}")
        rest = rest[match.end():]
    if rest:
        return f"parsing time {go_quote(text)}: extra text: {go_quote(rest)}"
    return None


# --------------------------------------------------------------------------
# Compiled schemas
# --------------------------------------------------------------------------

_INTSTR = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
# Objects that hold arbitrary JSON (no unknown fields, no type checks inside).
_FREE_FORM = frozenset({
    "io.k8s.apimachinery.pkg.runtime.RawExtension",
    "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON",
})
_INT_BITS = {"int32": 32, "int64": 64}

# Required properties whose absence upstream reports through a handwritten rule
# on the zero value (another message or path), not as "Required value".
_ZERO_VALUE_REQUIRED: dict[str, frozenset[str]] = {
    "io.k8s.api.apps.v1.Deployment": frozenset({"spec"}),
    "io.k8s.api.apps.v1.StatefulSet": frozenset({"spec"}),
    "io.k8s.api.apps.v1.DaemonSet": frozenset({"spec"}),
    "io.k8s.api.apps.v1.DeploymentSpec": frozenset({"template"}),
    "io.k8s.api.apps.v1.ReplicaSetSpec": frozenset({"template"}),
    "io.k8s.api.apps.v1.StatefulSetSpec": frozenset({"template"}),
    "io.k8s.api.apps.v1.DaemonSetSpec": frozenset({"template", "selector"}),
    "io.k8s.api.core.v1.ServicePort": frozenset({"port"}),
    "io.k8s.api.core.v1.EndpointPort": frozenset({"port"}),
    "io.k8s.api.core.v1.HTTPGetAction": frozenset({"port"}),
    "io.k8s.api.core.v1.TCPSocketAction": frozenset({"port"}),
    "io.k8s.api.core.v1.GRPCAction": frozenset({"port"}),
    "io.k8s.api.core.v1.TopologySpreadConstraint": frozenset({"maxSkew"}),
    "io.k8s.api.core.v1.PreferredSchedulingTerm": frozenset({"weight"}),
    "io.k8s.api.core.v1.WeightedPodAffinityTerm": frozenset({"weight"}),
    "io.k8s.api.core.v1.SleepAction": frozenset({"seconds"}),
    "io.k8s.api.core.v1.NodeSelectorRequirement": frozenset({"key", "operator"}),
    "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelectorRequirement": frozenset({"key", "operator"}),
    "io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference": frozenset({"apiVersion", "kind", "name", "uid"}),
    "io.k8s.apimachinery.pkg.apis.meta.v1.Condition": frozenset({"message"}),
    "io.k8s.api.apps.v1.ControllerRevision": frozenset({"data"}),
}

@dataclass(frozen=True, slots=True)
class Node:
    """One compiled schema node. `kind` decides how the walker treats a value."""

    kind: str  # struct | map | list | string | int | float | bool | intstr | quantity | time | bytes | any
    go_type: str  # for Go's "of type ..." ("v1.PodSpec", "[]v1.Container", "int32")
    struct_name: str = ""  # "PodSpec": Go's "Go struct field PodSpec.spec..."
    props: Mapping[str, Any] = field(default_factory=dict)
    required: tuple[str, ...] = ()  # schema order, so causes come out in a stable order
    elem: Any = None  # list items or map values
    bits: int = 64
    enum: frozenset[Any] | None = None
    open: bool = False  # unknown fields are kept (x-kubernetes-preserve-unknown-fields)


def _go_named(definition_name: str) -> str:
    parts = definition_name.split(".")
    return f"{parts[-2]}.{parts[-1]}"


def _child(node: Mapping[str, Any]) -> Any:
    ref = schema.ref_name(node)  # type: ignore[arg-type]
    return ref if ref else _compile(node, None)


_SPECIAL_GO_TYPES = {_INTSTR: "intstr.IntOrString", _QUANTITY: "resource.Quantity"}


def _go_type_of(item: Any) -> str:
    if isinstance(item, str):
        if item in _SPECIAL_GO_TYPES:
            return _SPECIAL_GO_TYPES[item]
        return _go_named(item)
    return item.go_type


def _compile(node: Mapping[str, Any], name: str | None) -> Node:
    if name == _INTSTR or node.get("x-kubernetes-int-or-string"):
        return Node("intstr", "intstr.IntOrString")
    if name == _QUANTITY:
        return Node("quantity", "resource.Quantity")
    if name in _FREE_FORM or ("oneOf" in node or "anyOf" in node):
        return Node("any", "interface {}")
    kinds = [t for t in schema.types(node) if t != "null"]  # type: ignore[arg-type]
    if not kinds:
        return Node("any", "interface {}")
    kind = kinds[0]
    if kind == "object":
        return _compile_object(node, name)
    if kind == "array":
        elem = _child(node.get("items") or {})
        return Node("list", "[]" + _go_type_of(elem), elem=elem)
    enum = frozenset(node["enum"]) if "enum" in node else None
    if kind == "string":
        fmt = node.get("format")
        if fmt == "byte":
            return Node("bytes", "[]uint8")
        if fmt == "date-time":
            return Node("time", _go_named(name) if name else "v1.Time")
        return Node("string", "string", enum=enum)
    if kind == "integer":
        bits = _INT_BITS.get(node.get("format", ""), 64)
        return Node("int", f"int{bits}" if "format" in node else "int", bits=bits, enum=enum)
    if kind == "number":
        return Node("float", "float64")
    return Node("bool", "bool")


def _compile_object(node: Mapping[str, Any], name: str | None) -> Node:
    extra = node.get("additionalProperties")
    open_ = bool(node.get("x-kubernetes-preserve-unknown-fields"))
    if "properties" in node or (name and extra is None and not open_):
        # A struct; a named definition without properties is an empty Go struct.
        props = {k: _child(v) for k, v in (node.get("properties") or {}).items()}
        skip = _ZERO_VALUE_REQUIRED.get(name or "", frozenset())
        required = tuple(r for r in node.get("required", ()) if r not in skip)
        struct_name = name.rsplit(".", 1)[-1] if name else ""
        return Node("struct", _go_named(name) if name else "struct", struct_name, props, required,
                    open=open_ or isinstance(extra, dict) or extra is True)
    if isinstance(extra, dict):
        elem = _child(extra)
        go_elem = _go_type_of(elem)
        go_type = "v1.ResourceList" if elem == _QUANTITY else f"map[string]{go_elem}"
        return Node("map", go_type, elem=elem)
    return Node("any", "map[string]interface {}")


@functools.cache
def compiled(definition_name: str) -> Node:
    """The compiled node of an upstream definition (cached: the schemas never change)."""
    return _compile(schema.definition(definition_name), definition_name)


def _resolve(item: Any) -> Node:
    return compiled(item) if isinstance(item, str) else item


# --------------------------------------------------------------------------
# JSON with duplicate keys
# --------------------------------------------------------------------------

class DupDict(dict):
    """A JSON object that repeated some keys (the last value won, like Go)."""

    duplicate_keys: tuple[str, ...] = ()


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()
    dups = []
    for k, _ in pairs:
        if k in seen:
            dups.append(k)
        seen.add(k)
    out = DupDict(obj)
    out.duplicate_keys = tuple(dups)
    return out


def loads(body: bytes | str) -> Any:
    """json.loads that remembers repeated keys, for strict decoding's `duplicate field`."""
    return json.loads(body, object_pairs_hook=_pairs_hook)


# --------------------------------------------------------------------------
# The schema walk: type errors, unknown and duplicate fields, required fields
# --------------------------------------------------------------------------

@dataclass
class _TypeProblem:
    fatal: bool  # a custom UnmarshalJSON error stops Go's decoder at once
    go_message: str
    cause: Cause


@dataclass
class Findings:
    """What one walk of an object against its schema found."""

    type_problems: list[_TypeProblem] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # "spec.foo", "spec.containers[0].bar"
    duplicates: list[str] = field(default_factory=list)  # "spec.replicas"
    missing: list[Cause] = field(default_factory=list)  # schema-required fields absent
    enum: list[Cause] = field(default_factory=list)

    def decode_error(self, kind: str, version: str) -> APIError | None:
        """The 400 kube-apiserver answers when the body does not decode into the Go type."""
        message = self.go_decode_message()
        if message is None:
            return None
        return bad_request(f"{kind} in version {go_quote(version)} cannot be handled as a {kind}: {message}")

    def go_decode_message(self) -> str | None:
        """Go's error text: the first custom-unmarshaler error, else the first type error."""
        if not self.type_problems:
            return None
        fatal = next((p for p in self.type_problems if p.fatal), None)
        return (fatal or self.type_problems[0]).go_message


# A path segment: ("f", json_name, go_struct_name) | ("i", index, "") | ("k", map_key, "")
_Seg = tuple[str, Any, str]


def _field_path(path: list[_Seg]) -> str:
    out = ""
    for kind, name, _ in path:
        if kind == "f":
            out = f"{out}.{name}" if out else name
        else:
            out = f"{out}[{name}]"
    return out


def _strict_path(path: list[_Seg]) -> str:
    # sigs.k8s.io/json: ".field", "[3]" for list items, ".key" for map keys.
    out = ""
    for kind, name, _ in path:
        if kind == "i":
            out = f"{out}[{name}]"
        else:
            out = f"{out}.{name}" if out else str(name)
    return out


def _go_context(path: list[_Seg]) -> tuple[str, str]:
    """Go's errorContext: the innermost struct and the dotted JSON field names (no indices)."""
    fields = [name for kind, name, _ in path if kind == "f"]
    struct = next((s for kind, _, s in reversed(path) if kind == "f"), "")
    return struct, ".".join(fields)


def _openapi_kind(value: Any) -> str:
    kind = json_kind(value)
    if kind == "bool":
        return "boolean"
    if kind == "number":
        return "integer" if isinstance(value, int) else "number"
    return kind


_EXPECTED = {"struct": "object", "map": "object", "list": "array", "string": "string", "int": "integer",
             "float": "number", "bool": "boolean", "bytes": "string", "time": "string", "intstr": "integer,string"}


class _Walker:
    """One depth-first walk; paths are kept as segment lists and rendered only on a finding."""

    def __init__(self, findings: Findings, prune: bool):
        self.f = findings
        self.prune = prune
        self.path: list[_Seg] = []

    def value(self, node: Node, value: Any) -> None:
        if value is None:
            return  # JSON null decodes to the zero value in Go
        handler = self._HANDLERS[node.kind]
        handler(self, node, value)

    # -- problems --------------------------------------------------------

    def type_error(self, node: Node, value: Any, go_kind: str | None = None) -> None:
        struct, fields = _go_context(self.path)
        go_kind = go_kind or json_kind(value)
        if struct or fields:
            message = f"json: cannot unmarshal {go_kind} into Go struct field {struct}.{fields} of type {node.go_type}"
        else:
            message = f"json: cannot unmarshal {go_kind} into Go value of type {node.go_type}"
        path = _field_path(self.path)
        kind = _openapi_kind(value)
        cause = type_invalid(path, kind, f"{path} in body must be of type {_EXPECTED.get(node.kind, 'object')}: "
                                         f"{go_quote(kind)}")
        self.f.type_problems.append(_TypeProblem(False, message, cause))

    def custom_error(self, value: Any, message: str, fatal: bool) -> None:
        path = _field_path(self.path)
        self.f.type_problems.append(_TypeProblem(fatal, message, type_invalid(path, value, message)))

    # -- kinds -----------------------------------------------------------

    def _struct(self, node: Node, value: Any) -> None:
        if not isinstance(value, dict):
            self.type_error(node, value)
            return
        props = node.props
        dups = value.duplicate_keys if type(value) is DupDict else ()
        drop = []
        for name, item in value.items():
            if name in dups:
                self.f.duplicates.append(_strict_path(self.path + [("f", name, "")]))
            sub = props.get(name)
            if sub is None:
                if not node.open:
                    self.f.unknown.append(_strict_path(self.path + [("f", name, "")]))
                    drop.append(name)
                continue
            if item is None:
                continue
            self.path.append(("f", name, node.struct_name))
            sub = _resolve(sub)
            if sub.enum is not None:
                self._enum(sub, name, item)
            self.value(sub, item)
            self.path.pop()
        if node.required:
            self._required(node, value)
        if self.prune:
            for name in drop:
                del value[name]

    def _enum(self, node: Node, name: str, item: Any) -> None:
        if len(self.path) == 1 and name in ("apiVersion", "kind"):
            return  # the request handler answers a wrong apiVersion or kind, as upstream's decoder does
        if isinstance(item, (str, int)) and item not in node.enum:  # type: ignore[operator]
            self.f.enum.append(not_supported(_field_path(self.path), item, sorted(map(str, node.enum or ()))))

    def _required(self, node: Node, value: dict) -> None:
        if self.path and self.path[0][1] == "status":
            return  # status is the system's report; upstream does not require its fields
        for name in node.required:
            item = value.get(name)
            if item is None or item == "" or item == []:
                self.f.missing.append(required(child(_field_path(self.path), name)))

    def _map(self, node: Node, value: Any) -> None:
        if not isinstance(value, dict):
            self.type_error(node, value)
            return
        sub = _resolve(node.elem)
        dups = value.duplicate_keys if type(value) is DupDict else ()
        for name, item in value.items():
            if name in dups:
                self.f.duplicates.append(_strict_path(self.path + [("k", name, "")]))
            if item is None:
                continue
            self.path.append(("k", name, ""))
            self.value(sub, item)
            self.path.pop()

    def _list(self, node: Node, value: Any) -> None:
        if not isinstance(value, list):
            self.type_error(node, value)
            return
        sub = _resolve(node.elem)
        for i, item in enumerate(value):
            if item is None:
                continue
            self.path.append(("i", i, ""))
            self.value(sub, item)
            self.path.pop()

    def _string(self, node: Node, value: Any) -> None:
        if not isinstance(value, str):
            self.type_error(node, value)

    def _int(self, node: Node, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.type_error(node, value)
            return
        limit = 1 << (node.bits - 1)
        if isinstance(value, float) or not -limit <= value < limit:
            # Go's decoder parses the literal as an integer: "1.5", "3.0" or an overflow fail.
            self.type_error(node, value, f"number {value!r}")

    def _float(self, node: Node, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.type_error(node, value)

    def _bool(self, node: Node, value: Any) -> None:
        if not isinstance(value, bool):
            self.type_error(node, value)

    def _intstr(self, node: Node, value: Any) -> None:
        if isinstance(value, str):
            return
        # IntOrString.UnmarshalJSON decodes anything but a string into an int32, with no context.
        if isinstance(value, int) and not isinstance(value, bool) and -(1 << 31) <= value < (1 << 31):
            return
        kind = f"number {value!r}" if isinstance(value, (int, float)) and not isinstance(value, bool) else json_kind(value)
        self.custom_error(value, f"json: cannot unmarshal {kind} into Go value of type int32", fatal=True)

    def _quantity(self, node: Node, value: Any) -> None:
        try:
            parse_quantity(_quantity_text(value))
        except QuantityError as err:
            self.custom_error(value, str(err), fatal=True)

    def _time(self, node: Node, value: Any) -> None:
        if not isinstance(value, str):
            self.custom_error(value, f"json: cannot unmarshal {json_kind(value)} into Go value of type string", True)
            return
        message = go_time_error(value)
        if message:
            self.custom_error(value, message, fatal=True)

    def _bytes(self, node: Node, value: Any) -> None:
        if isinstance(value, list):
            return  # a JSON array of numbers also decodes into []byte
        if not isinstance(value, str):
            self.type_error(node, value)
            return
        offset = go_base64_error(value)
        if offset is not None:
            self.custom_error("<value omitted>", f"illegal base64 data at input byte {offset}", fatal=False)

    def _any(self, node: Node, value: Any) -> None:
        return

    _HANDLERS: dict[str, Callable[["_Walker", Node, Any], None]] = {
        "struct": _struct, "map": _map, "list": _list, "string": _string, "int": _int, "float": _float,
        "bool": _bool, "intstr": _intstr, "quantity": _quantity, "time": _time, "bytes": _bytes, "any": _any,
    }


def inspect(definition_name: str, obj: Any, prune: bool = False) -> Findings:
    """Walk `obj` against its schema once. With prune, unknown fields are removed in place."""
    findings = Findings()
    _Walker(findings, prune).value(compiled(definition_name), obj)
    return findings


def decode_error(definition_name: str, obj: Any, kind: str | None = None,
                 version: str | None = None) -> APIError | None:
    """The 400 of a body that does not decode into the Go type (wrong JSON type, bad quantity...)."""
    gvk = _gvk(definition_name)
    return inspect(definition_name, obj).decode_error(kind or gvk[2], version or gvk[1])


def unknown_fields(definition_name: str, obj: Any) -> list[str]:
    """Paths of the fields the schema does not declare, in document order ("spec.foo")."""
    return inspect(definition_name, obj).unknown


def drop_unknown_fields(definition_name: str, obj: Any) -> list[str]:
    """Remove the undeclared fields in place (what Go's decoder does); returns their paths."""
    return inspect(definition_name, obj, prune=True).unknown


def strict_messages(unknown: Iterable[str], duplicates: Iterable[str] = ()) -> list[str]:
    return ([f"unknown field {go_quote(p)}" for p in unknown]
            + [f"duplicate field {go_quote(p)}" for p in duplicates])


def strict_error(unknown: Iterable[str], duplicates: Iterable[str] = (), *, kind: str | None = None,
                 version: str | None = None) -> APIError:
    """400 for fieldValidation=Strict.

    With kind and version it is what create and update (PUT) answer:
    `Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown field "spec.foo"`;
    without, what a json or merge patch answers: `strict decoding error: unknown field "spec.foo"`.
    """
    message = "strict decoding error: " + ", ".join(strict_messages(unknown, duplicates))
    if kind:
        message = f"{kind} in version {go_quote(version or '')} cannot be handled as a {kind}: {message}"
    return bad_request(message)


def strict_patch_error(unknown: Iterable[str], patch: Any, duplicates: Iterable[str] = ()) -> APIError:
    """422 for a strict strategic-merge patch: `"" is invalid: patch: Invalid value: "map[...]": strict decoding error: ...`."""
    detail = "strict decoding error: " + ", ".join(strict_messages(unknown, duplicates))
    return invalid("", "", [invalid_value("patch", go_map_format(patch), detail)])


def warnings_for(unknown: Iterable[str], duplicates: Iterable[str] = ()) -> list[str]:
    """The texts of fieldValidation=Warn warnings; send each as `Warning: warning_header(text)`."""
    return strict_messages(unknown, duplicates)


def warning_header(text: str) -> str:
    """A Warning header value as kube-apiserver writes it: `299 - "unknown field \\"spec.foo\\""`."""
    return f"299 - {go_quote(text)}"


def go_map_format(value: Any) -> str:
    """Go's `%+v` of decoded JSON (map[string]interface{}): `map[a:1 b:[x y]]`, keys sorted."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_map_format(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_map_format(v) for v in value) + "]"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    return str(value)


# --------------------------------------------------------------------------
# Small readers of plain-dict objects (wrong types read as the zero value)
# --------------------------------------------------------------------------

def _d(obj: Any, name: str) -> dict:
    value = obj.get(name) if isinstance(obj, dict) else None
    return value if isinstance(value, dict) else {}


def _l(obj: Any, name: str) -> list:
    value = obj.get(name) if isinstance(obj, dict) else None
    return value if isinstance(value, list) else []


def _s(obj: Any, name: str) -> str:
    value = obj.get(name) if isinstance(obj, dict) else None
    return value if isinstance(value, str) else ""


def _i(obj: Any, name: str, default: int | None = None) -> int | None:
    value = obj.get(name) if isinstance(obj, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(v, str)}


def _invalids(path: str, value: Any, messages: Iterable[str]) -> list[Cause]:
    return [invalid_value(path, value, m) for m in messages]


def _nonnegative(obj: Any, name: str, path: str) -> list[Cause]:
    value = _i(obj, name)
    if value is not None and value < 0:
        return [invalid_value(child(path, name), value, "must be greater than or equal to 0")]
    return []


# --------------------------------------------------------------------------
# Object metadata (k8s.io/apimachinery/pkg/api/validation/objectmeta.go)
# --------------------------------------------------------------------------

TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024
_STANDARD_FINALIZERS = frozenset({"kubernetes", "orphan", "foregroundDeletion"})


def validate_labels(labels: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for k, v in _str_map(labels).items():
        causes += _invalids(path, k, is_qualified_name(k))
        causes += _invalids(path, v, is_label_value(v))
    return causes


def validate_annotations(annotations: Any, path: str) -> list[Cause]:
    values = _str_map(annotations)
    causes: list[Cause] = []
    for k in values:
        # Case does not matter in annotation keys: upstream lowercases before checking.
        causes += _invalids(path, k, is_qualified_name(k.lower()))
    if sum(len(k.encode()) + len(v.encode()) for k, v in values.items()) > TOTAL_ANNOTATION_SIZE_LIMIT:
        causes.append(too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT))
    return causes


def _owner_reference(ref: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    api_version, kind = _s(ref, "apiVersion"), _s(ref, "kind")
    version = api_version.rsplit("/", 1)[-1] if api_version.count("/") <= 1 else ""
    if not version:
        causes.append(invalid_value(child(path, "apiVersion"), api_version, "version must not be empty"))
    for name in ("kind", "name", "uid"):
        if not _s(ref, name):
            causes.append(invalid_value(child(path, name), _s(ref, name), "must not be empty"))
    if api_version == "v1" and kind == "Event":
        causes.append(invalid_value(path, _owner_json(ref), "/v1, Kind=Event is disallowed from being an owner"))
    return causes


_OWNER_FIELDS = ("apiVersion", "kind", "name", "uid", "controller", "blockOwnerDeletion")


def _owner_json(ref: Any) -> Any:
    # json.Marshal of metav1.OwnerReference: declaration order, not sorted.
    return Ordered({k: ref[k] for k in _OWNER_FIELDS if isinstance(ref, dict) and k in ref})


def validate_owner_references(refs: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    refs = refs if isinstance(refs, list) else []
    controllers: list[str] = []
    for ref in refs:
        causes += _owner_reference(ref, path)
        if isinstance(ref, dict) and ref.get("controller") is True:
            controllers.append(f"{_s(ref, 'kind')}/{_s(ref, 'name')}")
            if len(controllers) > 1:
                causes.append(_cause("FieldValueInvalid", path,
                                     f"Invalid value: {go_json([_owner_json(r) for r in refs])}: "
                                     "Only one reference can have Controller set to true. Found \"true\" in "
                                     f"references for {controllers[0]} and {controllers[-1]}"))
    return causes


def validate_finalizers(finalizers: Any, path: str) -> list[Cause]:
    names = [f for f in (finalizers if isinstance(finalizers, list) else []) if isinstance(f, str)]
    causes: list[Cause] = []
    for name in names:
        causes += _invalids(path, name, is_qualified_name(name))
    if "orphan" in names and "foregroundDeletion" in names:
        causes.append(invalid_value(path, names, "finalizer orphan and foregroundDeletion cannot be both set"))
    return causes


def _kube_finalizer_names(finalizers: Any, path: str, indexed: bool = True) -> list[Cause]:
    """Core's extra rule: an unqualified finalizer must be one of the standard ones."""
    causes: list[Cause] = []
    for i, name in enumerate(finalizers if isinstance(finalizers, list) else []):
        if isinstance(name, str) and "/" not in name and name not in _STANDARD_FINALIZERS:
            causes.append(invalid_value(index(path, i) if indexed else path, name,
                                        "name is neither a standard finalizer name nor is it fully qualified"))
    return causes


def _managed_fields(entries: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, entry in enumerate(entries if isinstance(entries, list) else []):
        at = index(path, i)
        if _s(entry, "operation") not in ("Apply", "Update"):
            causes.append(invalid_value(child(at, "operation"), _s(entry, "operation"), "must be `Apply` or `Update`"))
        fields_type = _s(entry, "fieldsType")
        if fields_type and fields_type != "FieldsV1":
            causes.append(invalid_value(child(at, "fieldsType"), fields_type, "must be `FieldsV1`"))
        manager = _s(entry, "manager")
        if len(manager.encode()) > 128:
            causes.append(too_long(child(at, "manager"), 128))
        if len(_s(entry, "subresource").encode()) > 256:
            causes.append(too_long(child(at, "subresource"), 256))
    return causes


def validate_object_meta(meta: Any, namespaced: bool, name_rule: str = "dns1123-subdomain",
                         path: str = "metadata") -> list[Cause]:
    """ValidateObjectMeta of core types, on create.

    The name may be empty when generateName is set: the caller generates it
    (upstream generates it before validating). For namespaced kinds the
    namespace from the URL must already be filled in; for cluster-scoped kinds
    upstream clears a stray namespace before validation, so a caller that does
    the same never sees the Forbidden cause here.
    """
    meta = meta if isinstance(meta, dict) else {}
    name_fn = NAME_RULES[name_rule]
    causes: list[Cause] = []
    name, generate_name = _s(meta, "name"), _s(meta, "generateName")
    if generate_name:
        causes += _invalids(child(path, "generateName"), generate_name, name_fn(generate_name, True))
    if name:
        causes += _invalids(child(path, "name"), name, name_fn(name, False))
    elif not generate_name:
        causes.append(required(child(path, "name"), "name or generateName is required"))
    causes += _namespace(meta, namespaced, path)
    causes += _nonnegative(meta, "generation", path)
    causes += validate_labels(meta.get("labels"), child(path, "labels"))
    causes += validate_annotations(meta.get("annotations"), child(path, "annotations"))
    causes += validate_owner_references(meta.get("ownerReferences"), child(path, "ownerReferences"))
    causes += validate_finalizers(meta.get("finalizers"), child(path, "finalizers"))
    causes += _managed_fields(meta.get("managedFields"), child(path, "managedFields"))
    causes += _kube_finalizer_names(meta.get("finalizers"), child(path, "finalizers"))
    return causes


def _namespace(meta: dict, namespaced: bool, path: str) -> list[Cause]:
    namespace = _s(meta, "namespace")
    if not namespaced:
        return [forbidden(child(path, "namespace"), "not allowed on this type")] if namespace else []
    if not namespace:
        return [required(child(path, "namespace"))]
    return _invalids(child(path, "namespace"), namespace, is_dns1123_label(namespace))


FIELD_IMMUTABLE = "field is immutable"


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _normalized(value: Any) -> Any:
    """Go's semantic equality: an absent field, null, "" and empty lists/maps are all the zero value."""
    if isinstance(value, dict):
        value = {k: _normalized(v) for k, v in value.items()}
        value = {k: v for k, v in value.items() if v is not None}
    elif isinstance(value, list):
        value = [_normalized(v) for v in value]
    return None if _empty(value) else value


def _get_path(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def immutable_changes(old: Any, new: Any, paths: Iterable[str]) -> list[Cause]:
    """`<path>: Invalid value: <new value>: field is immutable` for each dotted path that changed."""
    causes: list[Cause] = []
    for dotted in paths:
        before, after = _get_path(old, dotted), _get_path(new, dotted)
        if _normalized(before) != _normalized(after):
            causes.append(invalid_value(dotted, after, FIELD_IMMUTABLE))
    return causes


def validate_object_meta_update(new: Any, old: Any, path: str = "metadata") -> list[Cause]:
    """ValidateObjectMetaUpdate: identity fields are immutable, generation never decreases."""
    new, old = (new if isinstance(new, dict) else {}), (old if isinstance(old, dict) else {})
    causes: list[Cause] = []
    if old.get("deletionTimestamp"):
        added = sorted(set(_l(new, "finalizers")) - set(_l(old, "finalizers")))
        if added:
            causes.append(forbidden(child(path, "finalizers"),
                                    "no new finalizers can be added if the object is being deleted, "
                                    f"found new finalizers []string{{{', '.join(go_quote(f) for f in added)}}}"))
    new_gen, old_gen = _i(new, "generation", 0), _i(old, "generation", 0)
    if new_gen < old_gen:  # type: ignore[operator]
        causes.append(invalid_value(child(path, "generation"), new_gen, "must not be decremented"))
    for name in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
        if _normalized(new.get(name)) != _normalized(old.get(name)):
            causes.append(invalid_value(child(path, name), new.get(name, ""), FIELD_IMMUTABLE))
    causes += validate_labels(new.get("labels"), child(path, "labels"))
    causes += validate_annotations(new.get("annotations"), child(path, "annotations"))
    causes += validate_owner_references(new.get("ownerReferences"), child(path, "ownerReferences"))
    causes += _managed_fields(new.get("managedFields"), child(path, "managedFields"))
    causes += _kube_finalizer_names(new.get("finalizers"), child(path, "finalizers"))
    return causes


# --------------------------------------------------------------------------
# Label selectors (apimachinery meta/v1/validation, labels)
# --------------------------------------------------------------------------

def validate_label_selector(selector: Any, path: str) -> list[Cause]:
    if not isinstance(selector, dict):
        return []
    causes = validate_labels(selector.get("matchLabels"), child(path, "matchLabels"))
    for i, req in enumerate(_l(selector, "matchExpressions")):
        causes += _selector_requirement(req, index(child(path, "matchExpressions"), i))
    return causes


def _selector_requirement(req: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    operator, values = _s(req, "operator"), _l(req, "values")
    if operator in ("In", "NotIn"):
        if not values:
            causes.append(required(child(path, "values"), "must be specified when `operator` is 'In' or 'NotIn'"))
    elif operator in ("Exists", "DoesNotExist"):
        if values:
            causes.append(forbidden(child(path, "values"),
                                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
    else:
        causes.append(invalid_value(child(path, "operator"), operator, "not a valid selector operator"))
    key_ = _s(req, "key")
    causes += _invalids(child(path, "key"), key_, is_qualified_name(key_))
    for i, value in enumerate(values):
        if isinstance(value, str):
            causes += _invalids(index(child(path, "values"), i), value, is_label_value(value))
    return causes


def selector_matches(selector: Any, labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelectorAsSelector(selector).Matches(labels); a nil selector matches nothing."""
    if not isinstance(selector, dict):
        return False
    for k, v in _str_map(selector.get("matchLabels")).items():
        if labels.get(k) != v:
            return False
    for req in _l(selector, "matchExpressions"):
        k, op, values = _s(req, "key"), _s(req, "operator"), _l(req, "values")
        present = k in labels
        if op == "In" and not (present and labels[k] in values):
            return False
        if op == "NotIn" and present and labels[k] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


# --------------------------------------------------------------------------
# Pod specs (pkg/apis/core/validation: ValidatePodSpec and its helpers)
# --------------------------------------------------------------------------

# In the order validateVolumeSource looks at them.
_VOLUME_SOURCES = ("emptyDir", "hostPath", "gitRepo", "gcePersistentDisk", "awsElasticBlockStore", "secret", "nfs",
                   "iscsi", "glusterfs", "flocker", "persistentVolumeClaim", "rbd", "cinder", "cephfs", "quobyte",
                   "downwardAPI", "fc", "flexVolume", "configMap", "azureFile", "vsphereVolume",
                   "photonPersistentDisk", "portworxVolume", "azureDisk", "storageos", "projected", "scaleIO", "csi",
                   "ephemeral", "image")
# volume source -> its name field that must be set
_VOLUME_NAME_FIELDS = {"hostPath": ("path",), "secret": ("secretName",), "configMap": ("name",),
                       "persistentVolumeClaim": ("claimName",), "nfs": ("server", "path"), "csi": ("driver",),
                       "gitRepo": ("repository",)}
_PROTOCOLS = ("SCTP", "TCP", "UDP")
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_RESTART_POLICIES = ("Always", "OnFailure", "Never")
_DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
_TERMINATION_MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")
_ENV_FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
                    "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs")
# What ConvertDownwardAPIFieldLabel understands at all (env vars accept fewer).
_DOWNWARD_API_LABELS = frozenset(_ENV_FIELD_PATHS + ("metadata.annotations", "metadata.labels", "spec.restartPolicy",
                                                     "spec.schedulerName", "status.phase"))
_STANDARD_CONTAINER_RESOURCES = frozenset({"cpu", "memory", "ephemeral-storage"})
MAX_INT32 = 2 ** 31 - 1


def validate_pod_spec(spec: Any, path: str, *, is_pod: bool = True) -> list[Cause]:
    """ValidatePodSpec. Fields upstream defaults (restartPolicy, protocol...) are checked only when set."""
    spec = spec if isinstance(spec, dict) else {}
    volumes, causes = _volumes(_l(spec, "volumes"), child(path, "volumes"))
    causes += _containers(spec, volumes, path)
    causes += _init_containers(spec, volumes, path)
    if _l(spec, "ephemeralContainers") and not is_pod:
        causes.append(forbidden(child(path, "ephemeralContainers"), "ephemeral containers not allowed in pod template"))
    causes += _host_network_ports(spec, path)
    causes += _enum(spec, "restartPolicy", _RESTART_POLICIES, path)
    causes += _enum(spec, "dnsPolicy", _DNS_POLICIES, path)
    causes += validate_labels(spec.get("nodeSelector"), child(path, "nodeSelector"))
    causes += _dns_config(spec, path)
    causes += _readiness_gates(spec, path)
    causes += _scheduling_gates(spec, path)
    causes += _pod_names(spec, path)
    causes += _active_deadline(spec, path)
    causes += _dns_labels(spec, ("hostname", "subdomain"), path)
    causes += _tolerations(_l(spec, "tolerations"), child(path, "tolerations"))
    return causes


def _enum(obj: Any, name: str, allowed: tuple[str, ...], path: str) -> list[Cause]:
    value = obj.get(name) if isinstance(obj, dict) else None
    if isinstance(value, str) and value and value not in allowed:
        return [not_supported(child(path, name), value, allowed)]
    return []


def _volumes(volumes: list, path: str) -> tuple[set[str], list[Cause]]:
    """ValidateVolumes: returns the names of the valid volumes (mounts may only use those)."""
    names: set[str] = set()
    causes: list[Cause] = []
    for i, volume in enumerate(volumes):
        at = index(path, i)
        name = _s(volume, "name")
        errs = _volume_source(volume, at)
        errs += [required(child(at, "name"))] if not name else _invalids(child(at, "name"), name, is_dns1123_label(name))
        if name in names:
            errs.append(duplicate(child(at, "name"), name))
        if errs:
            causes += errs
        else:
            names.add(name)
    return names, causes


def _volume_source(volume: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    count = 0
    for source in _VOLUME_SOURCES:
        if not isinstance(volume, dict) or volume.get(source) is None:
            continue
        if count:
            causes.append(forbidden(child(path, source), "may not specify more than 1 volume type"))
            continue
        count += 1
        for name_field in _VOLUME_NAME_FIELDS.get(source, ()):
            if not _s(volume[source], name_field):
                causes.append(required(child(child(path, source), name_field)))
        causes += _key_to_paths(volume[source], child(path, source))
    if not count:
        causes.append(required(path, "must specify a volume type"))
    return causes


def _key_to_paths(source: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, item in enumerate(_l(source, "items")):
        at = index(child(path, "items"), i)
        if not _s(item, "key"):
            causes.append(required(child(at, "key")))
        if not _s(item, "path"):
            causes.append(required(child(at, "path")))
        else:
            causes += _local_descending_path(_s(item, "path"), child(at, "path"))
    return causes


def _local_descending_path(target: str, path: str) -> list[Cause]:
    causes = [invalid_value(path, target, "must be a relative path")] if target.startswith("/") else []
    if ".." in target.split("/"):
        causes.append(invalid_value(path, target, "must not contain '..'"))
    return causes


def _containers(spec: dict, volumes: set[str], path: str) -> list[Cause]:
    at = child(path, "containers")
    containers = _l(spec, "containers")
    if not containers:
        return [required(at)]
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, ctr in enumerate(containers):
        ctr_path = index(at, i)
        causes += _container_common(ctr, volumes, ctr_path)
        name = _s(ctr, "name")
        if name in seen:
            causes.append(duplicate(child(ctr_path, "name"), name))
        seen.add(name)
        causes += _probes(ctr, ctr_path)
    return causes + _host_port_conflicts(containers, at)


def _init_containers(spec: dict, volumes: set[str], path: str) -> list[Cause]:
    at = child(path, "initContainers")
    causes: list[Cause] = []
    seen = {_s(c, "name") for c in _l(spec, "containers")}
    for i, ctr in enumerate(_l(spec, "initContainers")):
        ctr_path = index(at, i)
        causes += _container_common(ctr, volumes, ctr_path)
        restart = ctr.get("restartPolicy") if isinstance(ctr, dict) else None
        if restart is not None and restart != "Always":
            causes.append(not_supported(child(ctr_path, "restartPolicy"), restart, ("Always",)))
        name = _s(ctr, "name")
        if name in seen:
            causes.append(duplicate(child(ctr_path, "name"), name))
        elif name:
            seen.add(name)
        causes += _host_port_conflicts([ctr], at)
        if restart == "Always":
            causes += _probes(ctr, ctr_path)
        else:
            for probe in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
                if isinstance(ctr, dict) and ctr.get(probe) is not None:
                    causes.append(forbidden(child(ctr_path, probe),
                                            "may not be set for init containers without restartPolicy=Always"))
    return causes


def _container_common(ctr: Any, volumes: set[str], path: str) -> list[Cause]:
    """validateContainerCommon: name, image, ports, env, mounts, pull policy, resources."""
    causes: list[Cause] = []
    name = _s(ctr, "name")
    causes += [required(child(path, "name"))] if not name else _invalids(child(path, "name"), name, is_dns1123_label(name))
    if not _s(ctr, "image"):
        causes.append(required(child(path, "image")))
    causes += _enum(ctr, "terminationMessagePolicy", _TERMINATION_MESSAGE_POLICIES, path)
    causes += _container_ports(_l(ctr, "ports"), child(path, "ports"))
    causes += _env(_l(ctr, "env"), child(path, "env"))
    causes += _env_from(_l(ctr, "envFrom"), child(path, "envFrom"))
    causes += _volume_mounts(_l(ctr, "volumeMounts"), volumes, child(path, "volumeMounts"))
    causes += _enum(ctr, "imagePullPolicy", _PULL_POLICIES, path)
    causes += validate_resource_requirements(_d(ctr, "resources"), child(path, "resources"))
    return causes


def _container_ports(ports: list, path: str) -> list[Cause]:
    causes: list[Cause] = []
    names: set[str] = set()
    for i, port in enumerate(ports):
        at = index(path, i)
        name = _s(port, "name")
        if name:
            errs = is_valid_port_name(name)
            if errs:
                causes += _invalids(child(at, "name"), name, errs)
            elif name in names:
                causes.append(duplicate(child(at, "name"), name))
            names.add(name)
        container_port = _i(port, "containerPort", 0)
        if not container_port:
            causes.append(required(child(at, "containerPort")))
        else:
            causes += _invalids(child(at, "containerPort"), container_port, is_valid_port_num(container_port))
        host_port = _i(port, "hostPort", 0)
        if host_port:
            causes += _invalids(child(at, "hostPort"), host_port, is_valid_port_num(host_port))
        causes += _protocol(port, at)
    return causes


def _protocol(port: Any, path: str) -> list[Cause]:
    protocol = port.get("protocol") if isinstance(port, dict) else None
    if isinstance(protocol, str) and protocol not in _PROTOCOLS:
        if not protocol:
            return [required(child(path, "protocol"))]
        return [not_supported(child(path, "protocol"), protocol, _PROTOCOLS)]
    return []


def _host_port_conflicts(containers: list, path: str) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[str] = set()
    for ci, ctr in enumerate(containers):
        for pi, port in enumerate(_l(ctr, "ports")):
            host_port = _i(port, "hostPort", 0)
            if not host_port:
                continue
            ident = f"{_s(port, 'protocol') or 'TCP'}/{_s(port, 'hostIP')}/{host_port}"
            if ident in seen:
                causes.append(duplicate(child(index(child(index(path, ci), "ports"), pi), "hostPort"), ident))
            seen.add(ident)
    return causes


def _env(env: list, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, var in enumerate(env):
        at = index(path, i)
        name = _s(var, "name")
        if not name:
            causes.append(required(child(at, "name")))
        else:
            causes += _invalids(child(at, "name"), name, is_relaxed_env_var_name(name))
        causes += _env_value_from(var, child(at, "valueFrom"))
    return causes


def _env_value_from(var: Any, path: str) -> list[Cause]:
    source = _d(var, "valueFrom")
    if not isinstance(var, dict) or var.get("valueFrom") is None:
        return []
    causes: list[Cause] = []
    count = 0
    if source.get("fieldRef") is not None:
        count += 1
        causes += _field_ref(_d(source, "fieldRef"), child(path, "fieldRef"))
    if source.get("resourceFieldRef") is not None:
        count += 1
        if not _s(source["resourceFieldRef"], "resource"):
            causes.append(required(child(child(path, "resourceFieldRef"), "resource")))
    for ref in ("configMapKeyRef", "secretKeyRef"):
        if source.get(ref) is not None:
            count += 1
            causes += _key_selector(_d(source, ref), child(path, ref))
    if source.get("fileKeyRef") is not None:
        count += 1
    if count == 0:
        causes.append(invalid_value(path, "", "must specify one of: `fieldRef`, `resourceFieldRef`, "
                                              "`configMapKeyRef` or `secretKeyRef`"))
    elif _s(var, "value"):
        causes.append(invalid_value(path, "", "may not be specified when `value` is not empty"))
    elif count > 1:
        causes.append(invalid_value(path, "", "may not have more than one field specified at a time"))
    return causes


def _field_ref(ref: dict, path: str) -> list[Cause]:
    field_path = _s(ref, "fieldPath")
    if not field_path:
        return [required(child(path, "fieldPath"))]
    match = re.fullmatch(r"(metadata\.(?:labels|annotations))\['(.*)'\]", field_path)
    if match:
        subscript = match.group(2).lower() if match.group(1).endswith("annotations") else match.group(2)
        return _invalids(path, subscript, is_qualified_name(subscript))
    if field_path not in _DOWNWARD_API_LABELS:
        return [invalid_value(child(path, "fieldPath"), field_path,
                              f"error converting fieldPath: field label not supported: {field_path}")]
    if field_path not in _ENV_FIELD_PATHS:
        return [not_supported(child(path, "fieldPath"), field_path, _ENV_FIELD_PATHS)]
    return []


def _key_selector(ref: dict, path: str) -> list[Cause]:
    name = _s(ref, "name")
    causes = _invalids(child(path, "name"), name, is_dns1123_subdomain(name))
    key_ = _s(ref, "key")
    if not key_:
        causes.append(required(child(path, "key")))
    else:
        causes += _invalids(child(path, "key"), key_, is_config_map_key(key_))
    return causes


def _env_from(sources: list, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, source in enumerate(sources):
        at = index(path, i)
        prefix = _s(source, "prefix")
        if prefix:
            causes += _invalids(child(at, "prefix"), prefix, is_relaxed_env_var_name(prefix))
        count = 0
        for ref in ("configMapRef", "secretRef"):
            if isinstance(source, dict) and source.get(ref) is not None:
                count += 1
                name = _s(source[ref], "name")
                ref_path = child(child(at, ref), "name")
                causes += [required(ref_path)] if not name else _invalids(ref_path, name, NAME_RULES["dns1123-subdomain"](name, True))
        if count == 0:
            causes.append(invalid_value(path, "", "must specify one of: `configMapRef` or `secretRef`"))
        elif count > 1:
            causes.append(invalid_value(path, "", "may not have more than one field specified at a time"))
    return causes


def _volume_mounts(mounts: list, volumes: set[str], path: str) -> list[Cause]:
    causes: list[Cause] = []
    mount_points: set[str] = set()
    for i, mount in enumerate(mounts):
        at = index(path, i)
        name, mount_path = _s(mount, "name"), _s(mount, "mountPath")
        if not name:
            causes.append(required(child(at, "name")))
        if name not in volumes:
            causes.append(not_found(child(at, "name"), name))
        if not mount_path:
            causes.append(required(child(at, "mountPath")))
        if mount_path in mount_points:
            causes.append(invalid_value(child(at, "mountPath"), mount_path, "must be unique"))
        mount_points.add(mount_path)
        sub_path, sub_path_expr = _s(mount, "subPath"), _s(mount, "subPathExpr")
        if sub_path:
            # Upstream reports these at volumeMounts.subPath, without the index.
            causes += _local_descending_path(sub_path, child(path, "subPath"))
        if sub_path_expr:
            if sub_path:
                causes.append(invalid_value(child(at, "subPathExpr"), sub_path_expr,
                                            "subPathExpr and subPath are mutually exclusive"))
            causes += _local_descending_path(sub_path_expr, child(path, "subPathExpr"))
    return causes


def _is_native_resource(name: str) -> bool:
    return "/" not in name or "kubernetes.io/" in name


def _overcommit_allowed(name: str) -> bool:
    return _is_native_resource(name) and not name.startswith("hugepages-")


def _container_resource_name(name: str, path: str) -> list[Cause]:
    causes = _invalids(path, name, is_qualified_name(name))
    if "/" not in name:
        if name not in _STANDARD_CONTAINER_RESOURCES and not name.startswith("hugepages-"):
            causes.append(invalid_value(path, name, "must be a standard resource for containers"))
    elif not _is_native_resource(name) and (name.startswith("requests.") or is_qualified_name("requests." + name)):
        causes.append(invalid_value(path, name, "doesn't follow extended resource name standard"))
    return causes


def _quantities(resources: dict, name: str) -> dict[str, Quantity]:
    out: dict[str, Quantity] = {}
    for resource_name, raw in _d(resources, name).items():
        try:
            out[resource_name] = parse_quantity(_quantity_text(raw))
        except QuantityError:
            continue  # a decode error, reported by the schema walk
    return out


def _quantity_value(path: str, resource_name: str, q: Quantity) -> list[Cause]:
    causes: list[Cause] = []
    if q.value < 0:
        causes.append(invalid_value(path, str(q), "must be greater than or equal to 0"))
    if not _is_native_resource(resource_name) and q.value.denominator != 1:
        causes.append(invalid_value(path, str(q), "must be an integer"))
    return causes


def validate_resource_requirements(resources: dict, path: str) -> list[Cause]:
    """ValidateResourceRequirements: names, non-negative quantities, requests <= limits."""
    causes: list[Cause] = []
    lim_path, req_path = child(path, "limits"), child(path, "requests")
    limits, requests = _quantities(resources, "limits"), _quantities(resources, "requests")
    for name, q in limits.items():
        causes += _container_resource_name(name, key(lim_path, name))
        causes += _quantity_value(key(lim_path, name), name, q)
    for name, q in requests.items():
        causes += _container_resource_name(name, key(req_path, name))
        causes += _quantity_value(key(req_path, name), name, q)
        limit = limits.get(name)
        if limit is not None:
            if q.value != limit.value and not _overcommit_allowed(name):
                causes.append(invalid_value(req_path, str(q), f"must be equal to {name} limit of {limit}"))
            elif q.value > limit.value:
                causes.append(invalid_value(req_path, str(q), f"must be less than or equal to {name} limit of {limit}"))
        elif not _overcommit_allowed(name):
            causes.append(required(lim_path, "Limit must be set for non overcommitable resources"))
    return causes


def _probes(ctr: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if isinstance(ctr, dict) and isinstance(ctr.get("lifecycle"), dict):
        for hook in ("postStart", "preStop"):
            if ctr["lifecycle"].get(hook) is not None:
                causes += _handler(_d(ctr["lifecycle"], hook), child(child(path, "lifecycle"), hook),
                                   ("exec", "httpGet", "tcpSocket", "sleep"))
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if not isinstance(ctr, dict) or ctr.get(probe) is None:
            continue
        at, body = child(path, probe), _d(ctr, probe)
        causes += _handler(body, at, ("exec", "httpGet", "tcpSocket", "grpc"))
        for name in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"):
            causes += _nonnegative(body, name, at)
        threshold = _i(body, "successThreshold")
        if probe != "readinessProbe" and threshold is not None and threshold != 1:
            causes.append(invalid_value(child(at, "successThreshold"), threshold, "must be 1"))
    return causes


def _handler(handler: dict, path: str, kinds: tuple[str, ...]) -> list[Cause]:
    causes: list[Cause] = []
    count = 0
    for kind in kinds:
        if handler.get(kind) is None:
            continue
        if count:
            causes.append(forbidden(child(path, kind), "may not specify more than 1 handler type"))
            continue
        count += 1
        causes += _handler_action(kind, _d(handler, kind), child(path, kind))
    if not count:
        causes.append(required(path, "must specify a handler type"))
    return causes


def _handler_action(kind: str, action: dict, path: str) -> list[Cause]:
    if kind == "exec":
        return [] if _l(action, "command") else [required(child(path, "command"))]
    causes: list[Cause] = []
    if kind in ("httpGet", "tcpSocket", "grpc"):
        causes += validate_port_num_or_name(action.get("port", 0), child(path, "port"))
    if kind == "httpGet":
        scheme = action.get("scheme")
        if isinstance(scheme, str) and scheme not in ("HTTP", "HTTPS"):
            causes.append(not_supported(child(path, "scheme"), scheme, ("HTTP", "HTTPS")))
        for header in _l(action, "httpHeaders"):
            name = _s(header, "name")
            if not _HTTP_HEADER.fullmatch(name):
                causes.append(invalid_value(child(path, "httpHeaders"), name, regex_error(
                    "a valid HTTP header must consist of alphanumeric characters or '-'", _HTTP_HEADER_FMT,
                    "X-Header-Name")))
    return causes


def validate_port_num_or_name(port: Any, path: str) -> list[Cause]:
    """ValidatePortNumOrName for an int-or-string port."""
    if isinstance(port, str):
        return _invalids(path, port, is_valid_port_name(port))
    if isinstance(port, int) and not isinstance(port, bool):
        return _invalids(path, port, is_valid_port_num(port))
    return []


def _host_network_ports(spec: dict, path: str) -> list[Cause]:
    if _d(spec, "securityContext").get("hostNetwork") is not True and spec.get("hostNetwork") is not True:
        return []
    causes: list[Cause] = []
    for ci, ctr in enumerate(_l(spec, "containers")):
        for pi, port in enumerate(_l(ctr, "ports")):
            host_port, container_port = _i(port, "hostPort", 0), _i(port, "containerPort", 0)
            if host_port and host_port != container_port:
                at = child(index(child(index(child(path, "containers"), ci), "ports"), pi), "hostPort")
                causes.append(invalid_value(at, host_port, "must match `containerPort` when `hostNetwork` is true"))
    return causes


def _dns_config(spec: dict, path: str) -> list[Cause]:
    if _s(spec, "dnsPolicy") != "None":
        return []
    if spec.get("dnsConfig") is None:
        return [required(child(path, "dnsConfig"), "must provide `dnsConfig` when `dnsPolicy` is None")]
    if not _l(_d(spec, "dnsConfig"), "nameservers"):
        return [required(child(child(path, "dnsConfig"), "nameservers"),
                         "must provide at least one DNS nameserver when `dnsPolicy` is None")]
    return []


def _readiness_gates(spec: dict, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, gate in enumerate(_l(spec, "readinessGates")):
        value = _s(gate, "conditionType")
        causes += _invalids(child(index(child(path, "readinessGates"), i), "conditionType"), value,
                            is_qualified_name(value))
    return causes


def _scheduling_gates(spec: dict, path: str) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, gate in enumerate(_l(spec, "schedulingGates")):
        at, name = index(child(path, "schedulingGates"), i), _s(gate, "name")
        causes += _invalids(at, name, is_qualified_name(name))
        if name in seen:
            causes.append(duplicate(at, name))
        seen.add(name)
    return causes


def _pod_names(spec: dict, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for name in ("serviceAccountName", "nodeName", "priorityClassName"):
        value = _s(spec, name)
        if value:
            causes += _invalids(child(path, name), value, is_dns1123_subdomain(value))
    return causes


def _active_deadline(spec: dict, path: str) -> list[Cause]:
    value = _i(spec, "activeDeadlineSeconds")
    if value is not None and not 1 <= value <= MAX_INT32:
        return [invalid_value(child(path, "activeDeadlineSeconds"), value, inclusive_range_error(1, MAX_INT32))]
    return []


def _dns_labels(spec: dict, names: tuple[str, ...], path: str) -> list[Cause]:
    causes: list[Cause] = []
    for name in names:
        value = _s(spec, name)
        if value:
            causes += _invalids(child(path, name), value, is_dns1123_label(value))
    return causes


def _toleration_struct(tol: dict) -> Ordered:
    # The internal core.Toleration has no JSON tags: Go prints its field names.
    return Ordered({"Key": _s(tol, "key"), "Operator": _s(tol, "operator"), "Value": _s(tol, "value"),
                     "Effect": _s(tol, "effect"), "TolerationSeconds": tol.get("tolerationSeconds")})


def _tolerations(tolerations: list, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, tol in enumerate(tolerations):
        at = index(path, i)
        key_, operator, value, effect = _s(tol, "key"), _s(tol, "operator"), _s(tol, "value"), _s(tol, "effect")
        if key_:
            causes += _invalids(child(at, "key"), key_, is_qualified_name(key_))
        if not key_ and operator != "Exists":
            causes.append(invalid_value(child(at, "operator"), operator,
                                        "operator must be Exists when `key` is empty, which means "
                                        "\"match all values and all keys\""))
        if isinstance(tol, dict) and tol.get("tolerationSeconds") is not None and effect != "NoExecute":
            causes.append(invalid_value(child(at, "effect"), effect,
                                        "effect must be 'NoExecute' when `tolerationSeconds` is set"))
        if operator in ("Equal", ""):
            errs = is_label_value(value)
            if errs:
                causes.append(invalid_value(child(at, "operator"), value, ";".join(errs)))
        elif operator == "Exists":
            if value:
                causes.append(_cause("FieldValueInvalid", child(at, "operator"),
                                     f"Invalid value: {go_json(_toleration_struct(tol))}: "
                                     "value must be empty when `operator` is 'Exists'"))
        else:
            causes.append(not_supported(child(at, "operator"), operator, ("Equal", "Exists")))
        if effect and effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            causes.append(not_supported(child(at, "effect"), effect, ("NoSchedule", "PreferNoSchedule", "NoExecute")))
    return causes


def validate_pod_template(template: Any, path: str) -> list[Cause]:
    """ValidatePodTemplateSpec. Upstream reports template labels at `<path>.labels` (sic)."""
    template = template if isinstance(template, dict) else {}
    meta = _d(template, "metadata")
    causes = validate_labels(meta.get("labels"), child(path, "labels"))
    causes += validate_annotations(meta.get("annotations"), child(path, "annotations"))
    causes += validate_pod_spec(_d(template, "spec"), child(path, "spec"), is_pod=False)
    return causes


# --------------------------------------------------------------------------
# Rules per kind (what the schemas cannot say)
# --------------------------------------------------------------------------

def _pod_rules(obj: Obj) -> list[Cause]:
    spec = _d(obj, "spec")
    causes = validate_pod_spec(spec, "spec", is_pod=True)
    for list_name in ("containers", "initContainers"):
        for i, ctr in enumerate(_l(spec, list_name)):
            image = _s(ctr, "image")
            if image != image.strip():
                causes.append(invalid_value(child(index(child("spec", list_name), i), "image"), image,
                                            "must not have leading or trailing whitespace"))
    if _l(spec, "ephemeralContainers"):
        causes.append(forbidden("spec.ephemeralContainers", "cannot be set on create"))
    if _s(spec, "nodeName") and _l(spec, "schedulingGates"):
        causes.append(forbidden("spec.nodeName", "cannot be set until all schedulingGates have been cleared"))
    return causes


def selector_json(selector: Any) -> Any:
    """A metav1.LabelSelector as json.Marshal prints it (matchLabels before matchExpressions)."""
    if not isinstance(selector, dict):
        return selector
    return Ordered((k, selector[k]) for k in ("matchLabels", "matchExpressions") if selector.get(k))


def _selector(spec: dict, path: str, kind_word: str) -> tuple[list[Cause], bool]:
    """The selector checks of ValidateDeploymentSpec & co; the flag says whether it converts to a selector."""
    selector = spec.get("selector")
    at = child(path, "selector")
    if not isinstance(selector, dict):
        return [required(at)], True  # a nil selector converts to "nothing" and matches no labels
    errs = validate_label_selector(selector, at)
    causes = list(errs)
    if not _str_map(selector.get("matchLabels")) and not _l(selector, "matchExpressions"):
        causes.append(invalid_value(at, selector_json(selector), f"empty selector is invalid for {kind_word}"))
    if errs:
        # LabelSelectorAsSelector rejects what ValidateLabelSelector rejects.
        causes.append(invalid_value(at, selector_json(selector), "invalid label selector"))
    return causes, not errs


def _template_matches(spec: dict, path: str) -> list[Cause]:
    """The selector must select the pods the template makes (a nil selector matches nothing)."""
    template_labels = _d(_d(spec, "template"), "metadata").get("labels")
    if selector_matches(spec.get("selector"), _str_map(template_labels)):
        return []
    value = template_labels if isinstance(template_labels, dict) else None
    return [invalid_value(child(child(path, "template"), "metadata.labels"), value,
                          "`selector` does not match template `labels`")]


def _template_for_replicas(spec: dict, path: str, owner: str) -> list[Cause]:
    template_path = child(path, "template")
    template_spec = _d(_d(spec, "template"), "spec")
    causes = validate_pod_template(spec.get("template"), template_path)
    restart = template_spec.get("restartPolicy")
    if isinstance(restart, str) and restart != "Always":
        causes.append(not_supported(child(template_path, "spec.restartPolicy"), restart, ("Always",)))
    if template_spec.get("activeDeadlineSeconds") is not None:
        causes.append(forbidden(child(template_path, "spec.activeDeadlineSeconds"),
                                f"activeDeadlineSeconds in {owner} is not Supported"))
    return causes


def _int_or_percent(value: Any, path: str) -> list[Cause]:
    if isinstance(value, str):
        return _invalids(path, value, is_valid_percent(value))
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        return [invalid_value(path, value, "must be greater than or equal to 0")]
    return []


def _int_or_percent_value(value: Any) -> int:
    if isinstance(value, str):
        return int(value[:-1]) if _PERCENT.fullmatch(value) else 0
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _not_more_than_100(value: Any, path: str) -> list[Cause]:
    if isinstance(value, str) and _PERCENT.fullmatch(value) and int(value[:-1]) > 100:
        return [invalid_value(path, value, "must not be greater than 100%")]
    return []


def _deployment_strategy(spec: dict, path: str) -> list[Cause]:
    strategy = _d(spec, "strategy")
    kind = strategy.get("type")
    at = child(path, "strategy")
    rolling = strategy.get("rollingUpdate")
    if kind is None or kind == "RollingUpdate":
        if not isinstance(rolling, dict):
            return []  # defaulted upstream
        ru_path = child(at, "rollingUpdate")
        unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
        causes = _int_or_percent(unavailable, child(ru_path, "maxUnavailable"))
        causes += _int_or_percent(surge, child(ru_path, "maxSurge"))
        if "maxUnavailable" in rolling and "maxSurge" in rolling and \
                _int_or_percent_value(unavailable) == 0 and _int_or_percent_value(surge) == 0:
            causes.append(invalid_value(child(ru_path, "maxUnavailable"), unavailable,
                                        "may not be 0 when `maxSurge` is 0"))
        return causes + _not_more_than_100(unavailable, child(ru_path, "maxUnavailable"))
    if kind == "Recreate":
        if rolling is not None:
            return [forbidden(child(at, "rollingUpdate"), "may not be specified when strategy `type` is 'Recreate'")]
        return []
    internal = Ordered({"Type": kind, "RollingUpdate": None if rolling is None else Ordered(
        {"MaxUnavailable": _d(strategy, "rollingUpdate").get("maxUnavailable"),
         "MaxSurge": _d(strategy, "rollingUpdate").get("maxSurge")})})
    return [_cause("FieldValueNotSupported", at, f"Unsupported value: {go_json(internal)}: "
                                                 'supported values: "Recreate", "RollingUpdate"')]


def _selector_and_template(spec: dict, kind_word: str, owner: str) -> list[Cause]:
    causes, converts = _selector(spec, "spec", kind_word)
    if converts:  # upstream skips the whole template when the selector does not convert
        causes += _template_matches(spec, "spec")
        causes += _template_for_replicas(spec, "spec", owner)
    return causes


def _deployment_rules(obj: Obj) -> list[Cause]:
    spec = _d(obj, "spec")
    causes = _nonnegative(spec, "replicas", "spec")
    causes += _selector_and_template(spec, "deployment", "ReplicaSet")
    causes += _deployment_strategy(spec, "spec")
    causes += _nonnegative(spec, "minReadySeconds", "spec")
    causes += _nonnegative(spec, "revisionHistoryLimit", "spec")
    deadline = _i(spec, "progressDeadlineSeconds")
    if deadline is not None:
        causes += _nonnegative(spec, "progressDeadlineSeconds", "spec")
        if deadline <= (_i(spec, "minReadySeconds", 0) or 0):
            causes.append(invalid_value("spec.progressDeadlineSeconds", deadline,
                                        "must be greater than minReadySeconds"))
    return causes


def _replica_set_rules(obj: Obj) -> list[Cause]:
    spec = _d(obj, "spec")
    causes = _nonnegative(spec, "replicas", "spec")
    causes += _nonnegative(spec, "minReadySeconds", "spec")
    # Upstream's ReplicaSet message says "deployment" too.
    return causes + _selector_and_template(spec, "deployment", "ReplicaSet")


def _daemon_set_rules(obj: Obj) -> list[Cause]:
    spec = _d(obj, "spec")
    selector = spec.get("selector")
    # No "Required" here upstream: a nil selector just matches nothing.
    causes = validate_label_selector(selector, "spec.selector")
    if not causes:
        causes += _template_matches(spec, "spec")
    if isinstance(selector, dict) and not selector.get("matchLabels") and not selector.get("matchExpressions"):
        causes.append(invalid_value("spec.selector", selector_json(selector), "empty selector is invalid for daemonset"))
    causes += _template_for_replicas(spec, "spec", "DaemonSet")
    causes += _nonnegative(spec, "minReadySeconds", "spec")
    causes += _nonnegative(spec, "revisionHistoryLimit", "spec")
    kind = _d(spec, "updateStrategy").get("type")
    if isinstance(kind, str) and kind not in ("RollingUpdate", "OnDelete"):
        internal = Ordered({"Type": kind, "RollingUpdate": None})
        causes.append(_cause("FieldValueNotSupported", "spec.updateStrategy",
                             f"Unsupported value: {go_json(internal)}: "
                             'supported values: "RollingUpdate", "OnDelete"'))
    return causes


def _stateful_set_rules(obj: Obj) -> list[Cause]:
    spec = _d(obj, "spec")
    causes: list[Cause] = []
    policy = spec.get("podManagementPolicy")
    if isinstance(policy, str) and policy not in ("OrderedReady", "Parallel"):
        causes.append(invalid_value("spec.podManagementPolicy", policy, "must be 'OrderedReady' or 'Parallel'"))
    kind = _d(spec, "updateStrategy").get("type")
    if isinstance(kind, str) and kind not in ("RollingUpdate", "OnDelete"):
        causes.append(invalid_value("spec.updateStrategy", _d(spec, "updateStrategy"),
                                    "must be 'RollingUpdate' or 'OnDelete'"))
    causes += _nonnegative(spec, "replicas", "spec")
    causes += _nonnegative(spec, "minReadySeconds", "spec")
    selector_causes, converts = _selector(spec, "spec", "statefulset")
    causes += selector_causes
    if converts:
        causes += _template_matches(spec, "spec")
    causes += validate_pod_template(spec.get("template"), "spec.template")
    template_spec = _d(_d(spec, "template"), "spec")
    restart = template_spec.get("restartPolicy")
    if isinstance(restart, str) and restart != "Always":
        causes.append(not_supported("spec.template.spec.restartPolicy", restart, ("Always",)))
    if template_spec.get("activeDeadlineSeconds") is not None:
        causes.append(invalid_value("spec.template.spec.activeDeadlineSeconds",
                                    template_spec["activeDeadlineSeconds"], "must not be specified"))
    return causes


def _replication_controller_rules(obj: Obj) -> list[Cause]:
    spec = _d(obj, "spec")
    causes = _nonnegative(spec, "minReadySeconds", "spec")
    template_labels = _d(_d(spec, "template"), "metadata").get("labels")
    # An empty selector is defaulted from the template labels upstream.
    selector = _str_map(spec.get("selector")) or _str_map(template_labels)
    if not selector:
        causes.append(required("spec.selector"))
    causes += _nonnegative(spec, "replicas", "spec")
    if spec.get("template") is None:
        return causes + [required("spec.template")]
    labels = _str_map(template_labels)
    if selector and any(labels.get(k) != v for k, v in selector.items()):
        causes.append(invalid_value("spec.template.metadata.labels", template_labels,
                                    "`selector` does not match template `labels`"))
    return causes + _template_for_replicas(spec, "spec", "ReplicationController")


_SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")


def _service_port_json(protocol: str, port: int) -> str:
    # The duplicate key is an internal core.ServicePort: Go field names, no tags.
    return (f'{{"Name":"","Protocol":{json.dumps(protocol)},"AppProtocol":null,"Port":{port},'
            '"TargetPort":0,"NodePort":0}')


def _service_rules(obj: Obj) -> list[Cause]:
    spec = _d(obj, "spec")
    ports = _l(spec, "ports")
    kind = _s(spec, "type") or "ClusterIP"
    cluster_ip = (_l(spec, "clusterIPs") or [_s(spec, "clusterIP")])[0]
    headless = cluster_ip == "None"
    causes: list[Cause] = []
    if not ports and not headless and kind != "ExternalName":
        causes.append(required("spec.ports"))
    causes += _service_type_rules(spec, kind, headless)
    names: set[str] = set()
    for i, port in enumerate(ports):
        causes += _service_port(port, len(ports) > 1, names, index("spec.ports", i))
    causes += validate_labels(spec.get("selector"), "spec.selector")
    causes += _enum(spec, "sessionAffinity", ("ClientIP", "None"), "spec")
    causes += _enum(spec, "type", _SERVICE_TYPES, "spec")
    causes += _service_port_uniqueness(ports, kind)
    causes += _traffic_policies(spec, kind)
    return causes


def _service_type_rules(spec: dict, kind: str, headless: bool) -> list[Cause]:
    causes: list[Cause] = []
    if kind == "LoadBalancer":
        for i, port in enumerate(_l(spec, "ports")):
            if _i(port, "port") == 10250:
                causes.append(invalid_value(index("spec.ports", i), 10250,
                                            "may not expose port 10250 externally since it is used by kubelet"))
    if kind in ("LoadBalancer", "NodePort") and headless:
        causes.append(invalid_value("spec.clusterIPs[0]", "None", f"may not be set to 'None' for {kind} services"))
    if kind == "ExternalName":
        if _s(spec, "clusterIP") or _l(spec, "clusterIPs"):
            causes.append(forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
        cname = _s(spec, "externalName").removesuffix(".")
        causes += _invalids("spec.externalName", cname, is_dns1123_subdomain(cname)) if cname else \
            [required("spec.externalName")]
    return causes


def _service_port(port: Any, require_name: bool, names: set[str], path: str) -> list[Cause]:
    causes: list[Cause] = []
    name = _s(port, "name")
    if require_name and not name:
        causes.append(required(child(path, "name")))
    elif name:
        causes += _invalids(child(path, "name"), name, is_dns1123_label(name))
        if name in names:
            causes.append(duplicate(child(path, "name"), name))
        names.add(name)
    number = _i(port, "port", 0)
    causes += _invalids(child(path, "port"), number, is_valid_port_num(number))  # type: ignore[arg-type]
    causes += _protocol(port, path)
    if isinstance(port, dict) and port.get("targetPort") is not None:
        causes += validate_port_num_or_name(port["targetPort"], child(path, "targetPort"))
    app_protocol = _s(port, "appProtocol")
    if app_protocol:
        causes += _invalids(child(path, "appProtocol"), app_protocol, is_qualified_name(app_protocol))
    return causes


def _service_port_uniqueness(ports: list, kind: str) -> list[Cause]:
    causes: list[Cause] = []
    if kind == "ClusterIP":
        for i, port in enumerate(ports):
            if _i(port, "nodePort", 0):
                causes.append(forbidden(child(index("spec.ports", i), "nodePort"),
                                        "may not be used when `type` is 'ClusterIP'"))
    node_ports: set[tuple[str, int]] = set()
    for i, port in enumerate(ports):
        node_port = _i(port, "nodePort", 0)
        if node_port:
            ident = (_s(port, "protocol") or "TCP", node_port)
            if ident in node_ports:
                causes.append(duplicate(child(index("spec.ports", i), "nodePort"), node_port))
            node_ports.add(ident)
    seen: set[tuple[str, int]] = set()
    for i, port in enumerate(ports):
        ident = (_s(port, "protocol") or "TCP", _i(port, "port", 0) or 0)
        if ident in seen:
            causes.append(_cause("FieldValueDuplicate", index("spec.ports", i),
                                 f"Duplicate value: {_service_port_json(*ident)}"))
        seen.add(ident)
    return causes


def _traffic_policies(spec: dict, kind: str) -> list[Cause]:
    causes: list[Cause] = []
    external = spec.get("externalTrafficPolicy")
    accessible = kind in ("NodePort", "LoadBalancer") or bool(_l(spec, "externalIPs"))
    if isinstance(external, str) and external:
        if not accessible:
            causes.append(invalid_value("spec.externalTrafficPolicy", external,
                                        "may only be set for externally-accessible services"))
        elif external not in ("Cluster", "Local"):
            causes.append(not_supported("spec.externalTrafficPolicy", external, ("Cluster", "Local")))
    causes += _enum(spec, "internalTrafficPolicy", ("Cluster", "Local"), "spec")
    return causes


MAX_SECRET_SIZE = 1024 * 1024


def _decoded_len(value: Any) -> int:
    if not isinstance(value, str):
        return 0
    try:
        return len(base64.b64decode(value, validate=False))
    except (binascii.Error, ValueError):
        return 0


def _config_map_rules(obj: Obj) -> list[Cause]:
    causes: list[Cause] = []
    data, binary = _d(obj, "data"), _d(obj, "binaryData")
    total = 0
    for k, value in data.items():
        causes += _invalids(key("data", k), k, is_config_map_key(k))
        if k in binary:
            causes.append(invalid_value(key("data", k), k, "duplicate of key present in binaryData"))
        total += len(value.encode()) if isinstance(value, str) else 0
    for k, value in binary.items():
        causes += _invalids(key("binaryData", k), k, is_config_map_key(k))
        total += _decoded_len(value)
    if total > MAX_SECRET_SIZE:
        causes.append(too_long("", MAX_SECRET_SIZE))
    return causes


# secret type -> data keys that must be present
_SECRET_REQUIRED_KEYS = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}


def _secret_rules(obj: Obj) -> list[Cause]:
    # stringData is merged into data before validation upstream, so its keys are reported as data[...].
    data = {**_d(obj, "data"), **{k: None for k in _d(obj, "stringData")}}
    causes: list[Cause] = []
    total = 0
    for k, value in data.items():
        causes += _invalids(key("data", k), k, is_config_map_key(k))
        total += _decoded_len(value) if value is not None else len(str(_d(obj, "stringData").get(k, "")).encode())
    if total > MAX_SECRET_SIZE:
        causes.append(too_long("data", MAX_SECRET_SIZE))
    secret_type = _s(obj, "type")
    if secret_type == "kubernetes.io/service-account-token":
        if not _s(_d(obj, "metadata").get("annotations"), "kubernetes.io/service-account.name"):
            causes.append(required("metadata.annotations[kubernetes.io/service-account.name]"))
    elif secret_type == "kubernetes.io/basic-auth":
        if "username" not in data and "password" not in data:
            causes += [required("data[username]"), required("data[password]")]
    elif secret_type == "kubernetes.io/ssh-auth":
        if not data.get("ssh-privatekey") and "ssh-privatekey" not in _d(obj, "stringData"):
            causes.append(required("data[ssh-privatekey]"))
    else:
        causes += [required(key("data", k)) for k in _SECRET_REQUIRED_KEYS.get(secret_type, ()) if k not in data]
    return causes


def _namespace_rules(obj: Obj) -> list[Cause]:
    causes: list[Cause] = []
    for name in _l(_d(obj, "spec"), "finalizers"):
        if isinstance(name, str):
            causes += _invalids("spec.finalizers", name, is_qualified_name(name))
            causes += _kube_finalizer_names([name], "spec.finalizers", indexed=False)
    return causes


def _controller_revision_rules(obj: Obj) -> list[Cause]:
    causes = [] if obj.get("data") is not None else [required("data", "data is mandatory")]
    return causes + _nonnegative(obj, "revision", "")


def _endpoints_rules(obj: Obj) -> list[Cause]:
    causes: list[Cause] = []
    for i, subset in enumerate(_l(obj, "subsets")):
        at = index("subsets", i)
        if not _l(subset, "addresses") and not _l(subset, "notReadyAddresses"):
            causes.append(required(at, "must specify `addresses` or `notReadyAddresses`"))
        for list_name in ("addresses", "notReadyAddresses"):
            for j, address in enumerate(_l(subset, list_name)):
                ip = _s(address, "ip")
                if not _is_ip(ip):
                    causes.append(invalid_value(child(index(child(at, list_name), j), "ip"), ip,
                                                "must be a valid IP address"))
        ports = _l(subset, "ports")
        for j, port in enumerate(ports):
            port_path = index(child(at, "ports"), j)
            name = _s(port, "name")
            if len(ports) > 1 and not name:
                causes.append(required(child(port_path, "name")))
            elif name:
                causes += _invalids(child(port_path, "name"), name, is_dns1123_label(name))
            number = _i(port, "port", 0) or 0
            causes += _invalids(child(port_path, "port"), number, is_valid_port_num(number))
            causes += _protocol(port, port_path)
    return causes


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def _binding_rules(obj: Obj) -> list[Cause]:
    target = _d(obj, "target")
    causes: list[Cause] = []
    if _s(target, "kind") and _s(target, "kind") != "Node":
        causes.append(not_supported("target.kind", _s(target, "kind"), ("Node", "<empty>")))
    if not _s(target, "name"):
        causes.append(required("target.name"))
    return causes


# kind -> rules beyond the schema and the metadata, in upstream order
KIND_RULES: dict[str, tuple[Callable[[Obj], list[Cause]], ...]] = {
    "Pod": (_pod_rules,),
    "Deployment": (_deployment_rules,),
    "ReplicaSet": (_replica_set_rules,),
    "DaemonSet": (_daemon_set_rules,),
    "StatefulSet": (_stateful_set_rules,),
    "ReplicationController": (_replication_controller_rules,),
    "Service": (_service_rules,),
    "ConfigMap": (_config_map_rules,),
    "Secret": (_secret_rules,),
    "Namespace": (_namespace_rules,),
    "ControllerRevision": (_controller_revision_rules,),
    "Endpoints": (_endpoints_rules,),
    "Binding": (_binding_rules,),
}
# Kinds whose upstream validation does not look at metadata.
_NO_META_VALIDATION = frozenset({"Binding"})


# --------------------------------------------------------------------------
# Updates
# --------------------------------------------------------------------------

# kind -> dotted paths that may not change ("<path>: Invalid value: ...: field is immutable")
IMMUTABLE_FIELDS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec.selector",),
    "ReplicaSet": ("spec.selector",),
    "DaemonSet": ("spec.selector",),
    "Secret": ("type",),
}

_UPDATABLE_POD_FIELDS = ("`spec.containers[*].image`", "`spec.initContainers[*].image`",
                         "`spec.activeDeadlineSeconds`",
                         "`spec.tolerations` (only additions to existing tolerations)",
                         "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)")


def _immutable_data(new: Obj, old: Obj, fields: tuple[str, ...]) -> list[Cause]:
    """ConfigMaps and Secrets with `immutable: true` keep their data."""
    if old.get("immutable") is not True:
        return []
    detail = "field is immutable when `immutable` is set"
    causes = [] if new.get("immutable") is True else [forbidden("immutable", detail)]
    return causes + [forbidden(name, detail) for name in fields
                     if _normalized(new.get(name)) != _normalized(old.get(name))]


def _pod_update(new: Obj, old: Obj) -> list[Cause]:
    new_spec, old_spec = _d(new, "spec"), _d(old, "spec")
    causes: list[Cause] = []
    for list_name in ("containers", "initContainers"):
        if len(_l(new_spec, list_name)) != len(_l(old_spec, list_name)):
            return [forbidden(child("spec", list_name), "pod updates may not add or remove containers")]
    munged = json.loads(json.dumps(new_spec))
    for list_name in ("containers", "initContainers"):
        for ctr, before in zip(_l(munged, list_name), _l(old_spec, list_name)):
            if isinstance(ctr, dict):
                ctr["image"] = _s(before, "image")
    for name in ("activeDeadlineSeconds", "tolerations", "schedulingGates"):
        munged[name] = old_spec.get(name)
    if _normalized(munged) != _normalized(old_spec):
        diff = _simple_diff(_normalized(old_spec), _normalized(munged), "spec")
        causes.append(forbidden("spec", "pod updates may not change fields other than "
                                + ",".join(_UPDATABLE_POD_FIELDS) + "\n" + diff))
    return causes


def _simple_diff(old: Any, new: Any, path: str) -> str:
    """A short listing of what changed (upstream prints go-cmp's diff, which we do not copy)."""
    lines: list[str] = []

    def walk(a: Any, b: Any, at: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                walk(a.get(k), b.get(k), child(at, k))
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b)):
                walk(x, y, index(at, i))
        elif a != b:
            lines.append(f"- {at}: {go_json(a)}\n+ {at}: {go_json(b)}")

    walk(old, new, path)
    return "\n".join(lines)


def _update_rules(kind: str, new: Obj, old: Obj, subresource: str) -> list[Cause]:
    causes = immutable_changes(old, new, IMMUTABLE_FIELDS.get(kind, ()))
    if kind == "ConfigMap":
        causes += _immutable_data(new, old, ("data", "binaryData"))
    elif kind == "Secret":
        causes += _immutable_data(new, old, ("data",))
    elif kind == "Pod" and subresource != "binding":
        causes += _pod_update(new, old)     # a binding sets spec.nodeName, which no pod update may
    return causes


# --------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------

@functools.cache
def _gvk(definition_name: str) -> tuple[str, str, str]:
    gvks = schema.definition(definition_name).get("x-kubernetes-group-version-kind") or [{}]
    gvk = gvks[0]
    return gvk.get("group", ""), gvk.get("version", ""), gvk.get("kind", "")


def _namespaced(group: str, version: str, kind: str) -> bool:
    from boxkube.apiserver import resources  # the resource table decides the scope

    resource = resources.by_kind(group, version, kind)
    return resource.namespaced if resource else True


def _merge(primary: list[Cause], extra: Iterable[Cause]) -> list[Cause]:
    """Add generic causes whose field a handwritten rule has not already reported on."""
    seen = {c["field"] for c in primary}
    return primary + [c for c in extra if c["field"] not in seen]


def validate(definition_name: str, obj: Obj, *, meta: bool = False, namespaced: bool | None = None,
             findings: Findings | None = None) -> list[Cause]:
    """The 422 causes of an object beyond its metadata, in upstream order.

    Decode-level problems (wrong JSON types, bad quantities) come first as
    FieldValueTypeInvalid causes; upstream answers them with a 400 before
    validating, see `decode_error`. Then the per-kind rules (`KIND_RULES`) and
    the schema's required fields that no rule reported already.

    Metadata is `validate_object_meta`'s job (call it first: upstream reports
    metadata first); `meta=True` does it here too, with the kind's name rule
    and scope. Pass the `findings` of an earlier `inspect` to walk only once.
    """
    findings = findings if findings is not None else inspect(definition_name, obj)
    group, version, kind = _gvk(definition_name)
    causes = [p.cause for p in findings.type_problems]
    if not isinstance(obj, dict):
        return causes
    if kind and meta and kind not in _NO_META_VALIDATION:
        scope = _namespaced(group, version, kind) if namespaced is None else namespaced
        causes += validate_object_meta(obj.get("metadata"), scope, KIND_NAME_RULES.get(kind, "dns1123-subdomain"))
    for rule in KIND_RULES.get(kind, ()):
        causes += rule(obj)
    return _merge(causes, findings.missing + findings.enum)


def validate_update(definition_name: str, new: Obj, old: Obj, *, namespaced: bool | None = None,
                    subresource: str = "", findings: Findings | None = None) -> list[Cause]:
    """Causes of an update: metadata update rules, the object's own validity, immutable fields."""
    group, version, kind = _gvk(definition_name)
    causes = validate_object_meta_update(new.get("metadata"), old.get("metadata"))
    causes = _merge(causes, validate(definition_name, new, meta=True, namespaced=namespaced, findings=findings))
    return causes + _update_rules(kind, new, old, subresource)


def invalid_error(definition_name: str, obj: Obj, causes: list[Cause]) -> APIError:
    """The 422 `<Kind> "<name>" is invalid: ...` for these causes."""
    group, _, kind = _gvk(definition_name)
    return invalid(kind, _s(_d(obj, "metadata"), "name"), causes, group)
