"""The helpers of boxkube.testing that need no cluster: manifests and wait_for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from boxkube.testing import WaitTimeoutError, wait_for
from boxkube.testing.manifests import load_manifest

CONFIGMAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}


def test_manifest_forms(tmp_path: Path) -> None:
    text = ("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\n"
            "apiVersion: v1\nkind: Pod\nmetadata: {name: b}\n")
    (tmp_path / "m.yaml").write_text(text)
    both = [CONFIGMAP, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b"}}]
    assert load_manifest(text) == both, "empty documents are skipped"
    assert load_manifest(tmp_path / "m.yaml") == both
    assert load_manifest(str(tmp_path / "m.yaml")) == both, "a one-line string naming a file is a path"
    assert load_manifest(json.dumps(CONFIGMAP)) == [CONFIGMAP]
    assert load_manifest(CONFIGMAP) == [CONFIGMAP]
    assert load_manifest({"apiVersion": "v1", "kind": "List", "items": both}) == both


@pytest.mark.parametrize(("manifest", "message"), [
    ("- a\n- b\n", "document 1 of the manifest is not an object"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {generateName: x-}\n",
     r"document 1 of the manifest \(Pod\) has no metadata.name"),
    ("kind: List\nitems: [{kind: Pod}]\n",
     r"item 1 of document 1 of the manifest \(Pod\) has no apiVersion, metadata.name"),
])
def test_manifest_errors(manifest: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_manifest(manifest)


def test_wait_for_returns_the_result() -> None:
    results = iter([None, {"phase": "Pending"}, {"phase": "Running"}])
    running = wait_for(lambda: next(results), until=lambda r: r and r["phase"] == "Running", interval=0)
    assert running == {"phase": "Running"}


def test_wait_for_shows_the_last_observed_state() -> None:
    with pytest.raises(WaitTimeoutError, match=r"waiting for pod web Running; last observed: \{'phase': 'Pending'\}"):
        wait_for(lambda: {"phase": "Pending"}, until=lambda r: r["phase"] == "Running", timeout=0.2,
                 what="pod web Running", interval=0.05)


def test_wait_for_shows_the_last_error() -> None:
    def missing() -> None:
        raise LookupError("pods \"web\" not found")

    expected = 'waiting for missing; last observed: LookupError: pods "web" not found'
    with pytest.raises(WaitTimeoutError, match=expected) as e:
        wait_for(missing, timeout=0.1, interval=0.05)
    assert isinstance(e.value.__cause__, LookupError)
