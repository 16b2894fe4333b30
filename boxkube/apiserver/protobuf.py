"""Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`) decoded to JSON objects.

kubectl and client-go's typed clients send objects this way. The wire form
(k8s.io/apimachinery/pkg/runtime/serializer/protobuf) is the 4 bytes `k8s\\x00`
and a `runtime.Unknown` message: typeMeta = 1 {apiVersion = 1, kind = 2},
raw = 2 (the object's own message), contentEncoding = 3, contentType = 4.

Field numbers come from protobuf_fields.json (see scripts/gen_protobuf_fields.py):
{definition: {number: [json name, type, flags]}}. The result is the JSON that
Go's encoding/json prints for the decoded object, which is what kubectl would
have sent as JSON: Go writes every non-pointer field, so a zero value on the
wire is dropped unless the table's `z` flag says Go prints it (a set pointer
such as `replicas: 0`, or a field without omitempty).
"""
from __future__ import annotations

import base64
import functools
import json
from datetime import datetime, timedelta, timezone
from importlib import resources
from typing import Any, Callable, Iterator

from boxkube.apiserver import schema
from boxkube.apiserver.gofmt import go_quote

MAGIC = b"k8s\x00"

VARINT, I64, LEN, I32 = 0, 1, 2, 5
_FIXED = {I64: 8, I32: 4}
_VARINT_KINDS = {"int32", "int64", "bool"}

Field = tuple[str, str, str]          # json name ("" for an embedded struct), type, flags


class DecodeError(ValueError):
    """Not a well-formed Kubernetes protobuf body; api_version/kind once the envelope named them."""

    def __init__(self, message: str, api_version: str = "", kind: str = ""):
        super().__init__(message)
        self.api_version = api_version
        self.kind = kind


@functools.cache
def table() -> dict[str, dict[int, Field]]:
    """The field table, loaded once."""
    with (resources.files(__package__) / "protobuf_fields.json").open("rb") as f:
        raw = json.load(f)
    return {name: {int(n): (e[0], e[1], e[2] if len(e) > 2 else "") for n, e in fields.items()}
            for name, fields in raw.items()}


def decode(body: bytes) -> dict[str, Any]:
    """The JSON object of a protobuf body, with apiVersion and kind from its envelope."""
    if not body:
        raise DecodeError("empty data")
    if not body.startswith(MAGIC):
        prefix = " ".join(str(b) for b in MAGIC)           # Go prints a byte slice as [107 56 115 0]
        raise DecodeError(f"provided data does not appear to be a protobuf message, expected prefix [{prefix}]")
    if len(body) == len(MAGIC):
        raise DecodeError("empty body")
    api_version = kind = ""
    raw = b""
    # contentEncoding and contentType are not consulted: upstream reads raw as protobuf regardless.
    for number, wire, value in _fields(body[len(MAGIC):], "Unknown"):
        if number == 1:
            type_meta = _parts(_expect(wire, LEN, "TypeMeta", value), "TypeMeta",
                               {1: ("APIVersion", "string"), 2: ("Kind", "string")})
            api_version, kind = type_meta.get(1, ""), type_meta.get(2, "")
        elif number == 2:
            raw = _expect(wire, LEN, "Raw", value)
    if not kind:
        type_meta_text = f"runtime.TypeMeta{{APIVersion:{go_quote(api_version)}, Kind:{go_quote(kind)}}}"   # Go's %#v
        raise DecodeError(f"Object 'Kind' is missing in '{type_meta_text}'")
    group, _, version = api_version.rpartition("/")
    definition = schema.definition_for(group, version, kind)
    if definition not in table():
        raise DecodeError(f'no kind "{kind}" is registered for version "{api_version}"', api_version, kind)
    try:
        obj = _message(raw, definition)
    except DecodeError as e:
        raise DecodeError(str(e), api_version, kind) from None
    return {"apiVersion": api_version, "kind": kind, **obj}


# -- the wire format ----------------------------------------------------------------
# Error texts follow gogo-protobuf's generated Unmarshal methods, which upstream uses.

def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if shift >= 64:
            raise DecodeError("proto: integer overflow")
        if pos >= len(buf):
            raise DecodeError("unexpected EOF")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value & 0xFFFF_FFFF_FFFF_FFFF, pos
        shift += 7


def _fields(buf: bytes, message: str) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) for each field: an int for varints, bytes otherwise."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 4:
            raise DecodeError(f"proto: {message}: wiretype end group for non-group")
        if number == 0:
            raise DecodeError(f"proto: {message}: illegal tag {number} (wire type {wire})")
        if wire == VARINT:
            value, pos = _varint(buf, pos)
        elif wire == LEN:
            size, pos = _varint(buf, pos)
            if size >= 1 << 63:
                raise DecodeError("proto: negative length found during unmarshaling")
            value, pos = buf[pos:pos + size], pos + size
        elif wire in _FIXED:
            value, pos = buf[pos:pos + _FIXED[wire]], pos + _FIXED[wire]
        else:                  # 3 (start group) has no place in Kubernetes messages
            raise DecodeError(f"proto: illegal wireType {wire}")
        if pos > len(buf):
            raise DecodeError("unexpected EOF")
        yield number, wire, value


def _expect(wire: int, wanted: int, name: str, value: Any) -> Any:
    if wire != wanted:
        raise DecodeError(f"proto: wrong wireType = {wire} for field {name}")
    return value


def _string(value: bytes) -> str:
    # Go strings may hold any bytes; encoding/json prints invalid UTF-8 as U+FFFD.
    return value.decode("utf-8", "replace")


def _scalar(kind: str, value: Any) -> Any:
    if kind == "string":
        return _string(value)
    if kind == "bytes":                # []byte: base64 in JSON
        return base64.b64encode(value).decode()
    if kind == "bool":
        return value != 0
    bits = 32 if kind == "int32" else 64  # Go truncates a wider varint to the field's width
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


# -- messages -----------------------------------------------------------------------

def _message(buf: bytes, definition: str) -> Any:
    if definition in _SPECIAL:
        return _SPECIAL[definition](buf)
    fields = table()[definition]
    name_of = definition.rsplit(".", 1)[1]
    out: dict[str, Any] = {}
    for number, wire, value in _fields(buf, name_of):
        field = fields.get(number)
        if field is None:              # newer than the table: skipped, as upstream skips unknown fields
            continue
        name, kind, flags = field
        if "m" in flags:
            key, item = _map_entry(_expect(wire, LEN, name, value), kind, name_of)
            out.setdefault(name, {})[key] = item
        elif "r" in flags:
            out.setdefault(name, []).extend(_repeated(wire, value, kind, name))
        elif name == "":               # an embedded struct: encoding/json inlines its fields
            out.update(_message(_expect(wire, LEN, kind, value), kind))
        else:
            item = _value(wire, value, kind, name)
            if "z" in flags or item not in ("", 0, None, {}):   # 0 also matches False
                out[name] = item
            else:
                out.pop(name, None)
    return out


def _value(wire: int, value: Any, kind: str, name: str) -> Any:
    if kind in _VARINT_KINDS:
        return _scalar(kind, _expect(wire, VARINT, name, value))
    value = _expect(wire, LEN, name, value)
    return _scalar(kind, value) if kind in ("string", "bytes") else _message(value, kind)


def _repeated(wire: int, value: Any, kind: str, name: str) -> list[Any]:
    if kind in _VARINT_KINDS and wire == LEN:      # packed: varints back to back
        items, pos = [], 0
        while pos < len(value):
            item, pos = _varint(value, pos)
            items.append(_scalar(kind, item))
        return items
    return [_value(wire, value, kind, name)]


def _map_entry(buf: bytes, kind: str, message: str) -> tuple[str, Any]:
    """A map entry is a message {key = 1, value = 2}; a missing part is its zero value."""
    parts = _parts(buf, message, {1: ("key", "string"), 2: ("value", kind)})
    if 2 not in parts:
        parts[2] = _scalar(kind, 0) if kind in _VARINT_KINDS else _value(LEN, b"", kind, "value")
    return parts.get(1, ""), parts[2]


# -- types whose JSON is not an object of their fields --------------------------------

def _parts(buf: bytes, message: str, fields: dict[int, tuple[str, str]]) -> dict[int, Any]:
    """The values of a small message's fields, by number: {number: (name, type)}."""
    found: dict[int, Any] = {}
    for number, wire, value in _fields(buf, message):
        if number in fields:
            name, kind = fields[number]
            found[number] = _value(wire, value, kind, name)
    return found


def _quantity(buf: bytes) -> str:
    # Go clients send the canonical string (Quantity.String()); the zero Quantity prints "0".
    return _parts(buf, "Quantity", {1: ("String", "string")}).get(1) or "0"


def _time(fmt: str) -> Callable[[bytes], str | None]:
    """Time and MicroTime: a Timestamp {seconds = 1, nanos = 2}; no bytes at all is the zero time (null)."""
    def decode(buf: bytes) -> str | None:
        if not buf:
            return None
        parts = _parts(buf, "Timestamp", {1: ("Seconds", "int64"), 2: ("Nanos", "int32")})
        try:
            when = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=parts.get(1, 0),
                                                                       microseconds=parts.get(2, 0) // 1000)
        except OverflowError:
            raise DecodeError("Time.MarshalJSON: year outside of range [0,9999]") from None
        return when.strftime(fmt)
    return decode


def _int_or_string(buf: bytes) -> int | str:
    parts = _parts(buf, "IntOrString", {1: ("Type", "int64"), 2: ("IntVal", "int32"), 3: ("StrVal", "string")})
    if parts.get(1, 0) == 0:
        return parts.get(2, 0)
    if parts[1] == 1:
        return parts.get(3, "")
    raise DecodeError("impossible IntOrString.Type")


def _raw_json(message: str) -> Callable[[bytes], Any]:
    """RawExtension and FieldsV1: raw = 1 holds JSON, printed as it is; none prints null."""
    def decode(buf: bytes) -> Any:
        raw = None
        for number, wire, value in _fields(buf, message):
            if number == 1:
                raw = _expect(wire, LEN, "Raw", value)
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as e:
            raise DecodeError(f"{message}: raw is not JSON: {e}") from None
    return decode


_SPECIAL: dict[str, Callable[[bytes], Any]] = {
    "io.k8s.apimachinery.pkg.api.resource.Quantity": _quantity,
    "io.k8s.apimachinery.pkg.apis.meta.v1.Time": _time("%Y-%m-%dT%H:%M:%SZ"),
    "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime": _time("%Y-%m-%dT%H:%M:%S.%fZ"),
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": _int_or_string,
    "io.k8s.apimachinery.pkg.runtime.RawExtension": _raw_json("RawExtension"),
    "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1": _raw_json("FieldsV1"),
}
