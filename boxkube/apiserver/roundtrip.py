"""Objects as Go's JSON round trip leaves them: what kube-apiserver stores of what a client sent.

Upstream decodes a JSON body into the Go struct of its kind and prints the
stored object from that struct again, so what a client writes comes back as
encoding/json prints it:

- a zero value of a field with omitempty that is not a pointer (`nodeName: ""`,
  `hostNetwork: false`, `generation: 0`) is dropped, as is an empty list or map
  with omitempty (`ownerReferences: []`, `labels: {}`); a set pointer keeps its
  zero (`replicas: 0`), and a struct always prints (`status: {}`, `resources: {}`)
  unless it has omitzero (metadata.creationTimestamp, dropped when null);
- JSON null leaves the Go value at its zero: a pointer, list or map with
  omitempty is dropped, one without prints null; a plain field without
  omitempty prints its zero value ("", 0, false, {} for a struct, "0" for a
  Quantity, 0 for an IntOrString, null for a Time); a null list item or map
  value becomes its element's zero value.

`normalize` does this in place, driven by the `z`/`p`/`n` flags and types of
protobuf_fields.json (see scripts/gen_protobuf_fields.py), for the built-in
types that table describes. What the table does not describe is left as it is:
kinds it lacks, unknown fields, apiVersion and kind, map values other than
null, the inside of RawExtension and FieldsV1. A scalar Go always prints that the
object lacks is added with its zero value (`nodeInfo.kubeProxyVersion: ""`,
which the official Python client requires); other fields Go always prints are
not added (a missing `containers` stays missing, where Go would print null).
The registry runs it on every object a client writes, before defaulting, as
upstream defaults the decoded struct.

Only the fields an object has are visited; the per-message lookups are built
once.
"""
from __future__ import annotations

import functools
from typing import Any

from boxkube.apiserver import protobuf

# What a field does with a value, by the table's flags (see `_prepare`).
_OMIT = 0          # "": a non-pointer scalar with omitempty: its zero value and null are dropped
_KEEP = 1          # "z": a scalar Go always prints; null becomes its zero value
_PTR_OMIT = 2      # "zp": a pointer with omitempty: null is dropped, a value kept
_PTR_NULL = 3      # "zn": a pointer without omitempty: null prints null
_STRUCT = 4        # "z": a struct Go always prints; null becomes its zero value
_OMITZERO = 5      # "": a struct with omitzero: null (or the zero value) is dropped
_LIST = 6          # "r": a list with omitempty: null and [] are dropped
_LIST_KEEP = 7     # "rz": a list without omitempty: kept as it is
_MAP = 8           # "m": a map with omitempty: null and {} are dropped
_MAP_KEEP = 9      # "mz": a map without omitempty: kept as it is

_SCALAR_ZERO: dict[str, Any] = {"string": "", "int32": 0, "int64": 0, "bool": False, "bytes": ""}
# What Go prints for the zero value of the types whose JSON is not an object of their fields.
_SPECIAL_ZERO: dict[str, Any] = {
    "io.k8s.apimachinery.pkg.api.resource.Quantity": "0",
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": 0,
    "io.k8s.apimachinery.pkg.apis.meta.v1.Time": None,
    "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime": None,
    "io.k8s.apimachinery.pkg.runtime.RawExtension": None,
    "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1": None,
}
_ZERO_TIMES = ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.000000Z")     # time.Time{}: omitzero drops it

# A prepared field: (action, fields of its message (or of its items/values), zero value of it (or of its
# items), the zero value's type). A fresh {} is made where a struct's zero value is needed.
_Field = tuple[int, "dict[str, _Field] | None", Any, type]
# The key, in a message's fields, of its scalars Go always prints: ((json name, zero value), ...).
_ALWAYS = None


def normalize(definition: str, obj: dict[str, Any]) -> None:
    """Drop and fill in place what Go's JSON round trip would; a kind the table lacks is left alone."""
    fields = _messages().get(definition)
    if fields is not None and isinstance(obj, dict):
        _walk(obj, fields)


@functools.cache
def _messages() -> dict[str, dict[str, _Field]]:
    """{definition: {json name: field}} for every message of the table, embedded structs inlined."""
    table = protobuf.table()
    prepared: dict[str, dict[str, _Field]] = {name: {} for name in table}

    def fill(definition: str, into: dict[str, _Field]) -> None:
        for name, kind, flags in table[definition].values():
            if name == "":                       # an embedded struct: encoding/json inlines its fields
                fill(kind, into)
            else:
                into[name] = _prepare(kind, flags, prepared)
    for definition, fields in prepared.items():
        fill(definition, fields)
        fields[_ALWAYS] = tuple((name, zero) for name, (action, _, zero, _) in fields.items()  # type: ignore[index]
                                if action == _KEEP)
    return prepared


def _prepare(kind: str, flags: str, prepared: dict[str, dict[str, _Field]]) -> _Field:
    message = prepared.get(kind)           # None for scalars and the special types
    shape, flags = flags[:1], flags.lstrip("rm")
    if kind in _SCALAR_ZERO:
        zero = _SCALAR_ZERO[kind]
        if kind == "bytes" and (shape or flags):
            zero = None                    # a nil []byte prints null (an empty one "", dropped by omitempty)
    else:
        zero = _SPECIAL_ZERO.get(kind)
    if shape == "r":
        action = _LIST_KEEP if flags else _LIST
    elif shape == "m":
        action = _MAP_KEEP if flags else _MAP
    elif flags == "zp":
        action = _PTR_OMIT
    elif flags == "zn":
        action = _PTR_NULL
    elif kind in _SCALAR_ZERO:
        action = _KEEP if flags else _OMIT
    else:
        action = _STRUCT if flags else _OMITZERO
    return action, message, zero, type(zero)


def _walk(obj: dict[str, Any], fields: dict[str, _Field]) -> None:
    drop = None
    for name, value in obj.items():
        field = fields.get(name)
        if field is None:
            continue                       # not a field the table knows: as it is
        action, message, zero, ztype = field
        if action == _OMIT:
            if value is None or (value == zero and type(value) is ztype):
                drop = [name] if drop is None else drop + [name]
        elif action == _KEEP:
            if value is None:
                obj[name] = zero
        elif value is None:
            if action in (_PTR_OMIT, _OMITZERO, _LIST, _MAP):
                drop = [name] if drop is None else drop + [name]
            elif action == _STRUCT:
                obj[name] = {} if message is not None else zero
        elif action <= _STRUCT:            # a pointer or a struct
            if message is not None and isinstance(value, dict):
                _walk(value, message)
        elif action >= _LIST:
            if not value and action in (_LIST, _MAP) and isinstance(value, (list, dict)):
                drop = [name] if drop is None else drop + [name]
            elif action <= _LIST_KEEP:
                if isinstance(value, list):
                    _items(value, message, zero)
            elif isinstance(value, dict):
                _values(value, message, zero)
        elif message is not None:          # _OMITZERO: only metav1.Time has it, but a struct could
            if isinstance(value, dict):
                _walk(value, message)
                if not value:
                    drop = [name] if drop is None else drop + [name]
        elif value in _ZERO_TIMES:
            drop = [name] if drop is None else drop + [name]
    if drop is not None:
        for name in drop:
            del obj[name]
    for name, zero in fields[_ALWAYS]:       # type: ignore[index]
        if name not in obj:
            obj[name] = zero


def _items(items: list[Any], message: dict[str, _Field] | None, zero: Any) -> None:
    if message is not None:
        for i, item in enumerate(items):
            if isinstance(item, dict):
                _walk(item, message)
            elif item is None:
                items[i] = {}
    elif None in items:
        items[:] = [zero if item is None else item for item in items]


def _values(values: dict[str, Any], message: dict[str, _Field] | None, zero: Any) -> None:
    if message is not None:
        for key, item in values.items():
            if isinstance(item, dict):
                _walk(item, message)
            elif item is None:
                values[key] = {}
    elif None in values.values():
        for key, item in values.items():
            if item is None:
                values[key] = zero
