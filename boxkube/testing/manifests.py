"""Reading manifests for `Cluster.apply`: YAML or JSON text, a file, or an object, as a list of objects."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

import yaml

# What `Cluster.apply` takes: an object (dict), a path (a `Path`, or a one-line string naming an
# existing file), or YAML/JSON text with any number of documents.
Manifest = Union[Mapping[str, Any], str, "os.PathLike[str]"]


def load_manifest(manifest: Manifest) -> list[dict[str, Any]]:
    """The objects of `manifest`, in order: empty documents skipped, `kind: ...List` documents
    replaced by their items (as kubectl does). ValueError names a document that is not an object
    with apiVersion, kind and metadata.name (apply works by name)."""
    if isinstance(manifest, Mapping):
        documents: list[Any] = [manifest]
    else:
        documents = list(yaml.safe_load_all(_text(manifest)))
    objects: list[dict[str, Any]] = []
    for number, document in enumerate(documents, start=1):
        if document is None:
            continue
        if isinstance(document, Mapping) and str(document.get("kind", "")).endswith("List") and "items" in document:
            objects.extend(_checked(item, f"item {i} of document {number}")
                           for i, item in enumerate(document["items"] or [], start=1))
        else:
            objects.append(_checked(document, f"document {number}"))
    return objects


def _text(manifest: str | os.PathLike[str]) -> str:
    """The text of a manifest given as text or as a path (a one-line string is a path if such a file exists)."""
    if isinstance(manifest, os.PathLike) or ("\n" not in manifest and Path(manifest).is_file()):
        return Path(manifest).read_text(encoding="utf-8")
    return manifest


def _checked(document: Any, where: str) -> dict[str, Any]:
    """`document` as a dict if it is a Kubernetes object with a name; ValueError naming `where` if not."""
    if not isinstance(document, Mapping):
        raise ValueError(f"{where} of the manifest is not an object: {document!r:.80}")
    missing = [key for key in ("apiVersion", "kind") if not document.get(key)]
    if not (document.get("metadata") or {}).get("name"):
        missing.append("metadata.name")
    if missing:
        raise ValueError(f"{where} of the manifest ({document.get('kind', 'no kind')}) has no {', '.join(missing)}")
    return dict(document)
