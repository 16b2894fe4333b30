"""The upstream Kubernetes 1.37 schemas, as shipped by `kubernetes-validate`.

Validation, strategic merge patch, server-side apply and the `/openapi/v3`
documents all read the same definitions through this module instead of
describing fields by hand.

A schema node is a plain dict of JSON Schema (draft 2020-12) with the upstream
`x-kubernetes-*` extensions. `$ref`s are resolved lazily by `resolve`.
"""
from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from boxkube import KUBERNETES_VERSION

Node = dict[str, Any]
_REF_PREFIX = "#/$defs/"


@functools.cache
def definitions() -> dict[str, Node]:
    """All upstream definitions, keyed like `io.k8s.api.core.v1.Pod` (loaded once; read-only)."""
    folder = resources.files("kubernetes_validate") / "kubernetes-json-schema" / f"v{KUBERNETES_VERSION}-local-strict"
    with (folder / "_definitions.json").open("rb") as f:
        return json.load(f)["$defs"]


def ref_name(node: Node) -> str | None:
    """The definition name a node refers to, if it is a `$ref`."""
    ref = node.get("$ref")
    return ref[len(_REF_PREFIX):] if ref else None


def resolve(node: Node | None) -> Node | None:
    """Follow `$ref`s until a node with content."""
    while node is not None and "$ref" in node:
        node = definitions()[ref_name(node)]
    return node


def definition(name: str) -> Node:
    return definitions()[name]


@functools.cache
def _gvk_index() -> dict[tuple[str, str, str], str]:
    index: dict[tuple[str, str, str], str] = {}
    for name, node in definitions().items():
        for gvk in node.get("x-kubernetes-group-version-kind", ()):
            # DeleteOptions, WatchEvent... are listed under every group: keep the first only.
            index.setdefault((gvk["group"], gvk["version"], gvk["kind"]), name)
    return index


def definition_for(group: str, version: str, kind: str) -> str | None:
    """The definition name of a kind, e.g. ('apps','v1','Deployment') -> io.k8s.api.apps.v1.Deployment."""
    return _gvk_index().get((group, version, kind))


def types(node: Node) -> list[str]:
    t = node.get("type", [])
    return [t] if isinstance(t, str) else list(t)


def child(node: Node | None, key: str) -> Node | None:
    """The schema of `node[key]`: a named property or the map's value schema."""
    node = resolve(node)
    if node is None:
        return None
    props = node.get("properties")
    if props and key in props:
        return resolve(props[key])
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        return resolve(extra)
    return None


def items(node: Node | None) -> Node | None:
    """The schema of the elements of a list node."""
    node = resolve(node)
    if node is None:
        return None
    it = node.get("items")
    return resolve(it) if isinstance(it, dict) else None


def is_list(node: Node | None) -> bool:
    node = resolve(node)
    return node is not None and "array" in types(node)


def is_map(node: Node | None) -> bool:
    """A map with free keys (labels, resources.limits...), as opposed to a struct."""
    node = resolve(node)
    return node is not None and "properties" not in node and isinstance(node.get("additionalProperties"), dict)


def preserves_unknown(node: Node | None) -> bool:
    node = resolve(node)
    return node is not None and bool(node.get("x-kubernetes-preserve-unknown-fields"))
