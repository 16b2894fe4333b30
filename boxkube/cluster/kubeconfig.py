"""Kubeconfig files: building one for a cluster, merging it into a person's, removing it again.

Which file is changed follows kubectl and kind: an explicit ``--kubeconfig``
path; else the ``KUBECONFIG`` list (entries are added to its first existing
file, or to its last file if none exists); else ``~/.kube/config``. Like
client-go, a file is locked by creating ``FILE.lock`` next to it while it is
being changed.

The merge and remove functions are pure: they take and return plain dicts.
"""

from __future__ import annotations

import copy
import errno
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from boxkube.cluster.errors import ClusterError
from boxkube.cluster.files import write_text_atomic
from boxkube.cluster.names import kubeconfig_name

log = logging.getLogger(__name__)

Kubeconfig = dict[str, Any]

# Sections whose entries are {"name": ..., <section singular>: {...}}.
_SECTIONS = ("clusters", "users", "contexts")


def build_kubeconfig(
    cluster_name: str, server: str, token: str, certificate_authority_data: str | None = None
) -> Kubeconfig:
    """A kubeconfig with one cluster, user and context, all named ``boxkube-NAME``.

    `certificate_authority_data` (base64 of the CA's PEM) is for an https `server`.
    """
    name = kubeconfig_name(cluster_name)
    cluster: dict[str, Any] = {"server": server}
    if certificate_authority_data:
        cluster["certificate-authority-data"] = certificate_authority_data
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }


def _entries(config: Mapping[str, Any], section: str) -> list[Any]:
    entries = config.get(section)
    return list(entries) if isinstance(entries, list) else []


def merge_kubeconfig(
    existing: Mapping[str, Any] | None, new: Mapping[str, Any], set_current_context: bool = True
) -> Kubeconfig:
    """`existing` with the entries of `new` added, replacing entries of the same name in place.

    Everything else in `existing` (other entries, preferences, extensions) is kept.
    Neither argument is changed.
    """
    merged: Kubeconfig = copy.deepcopy(dict(existing or {}))
    merged.setdefault("apiVersion", "v1")
    merged.setdefault("kind", "Config")
    if merged.get("preferences") is None:
        merged["preferences"] = {}
    for section in _SECTIONS:
        entries = _entries(merged, section)
        for entry in _entries(new, section):
            entry = copy.deepcopy(entry)
            for i, current in enumerate(entries):
                if isinstance(current, Mapping) and current.get("name") == entry.get("name"):
                    entries[i] = entry
                    break
            else:
                entries.append(entry)
        merged[section] = entries
    if set_current_context and new.get("current-context"):
        merged["current-context"] = new["current-context"]
    return merged


def remove_kubeconfig_entries(existing: Mapping[str, Any] | None, cluster_name: str) -> tuple[Kubeconfig, bool]:
    """`existing` without the ``boxkube-NAME`` entries of `cluster_name`, and whether anything was removed.

    A current-context pointing at the removed context is unset, as kind does.
    """
    name = kubeconfig_name(cluster_name)
    result: Kubeconfig = copy.deepcopy(dict(existing or {}))
    changed = False
    for section in _SECTIONS:
        if section not in result:
            continue
        entries = _entries(result, section)
        kept = [e for e in entries if not (isinstance(e, Mapping) and e.get("name") == name)]
        if len(kept) != len(entries):
            changed = True
            result[section] = kept
    if result.get("current-context") == name:
        result["current-context"] = ""
        changed = True
    return result, changed


def kubeconfig_paths(explicit: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> list[Path]:
    """The kubeconfig files kubectl would read: --kubeconfig, else $KUBECONFIG's list, else ~/.kube/config."""
    if explicit:
        return [Path(explicit).expanduser()]
    paths: list[Path] = []
    for part in environ.get("KUBECONFIG", "").split(os.pathsep):
        if part and Path(part).expanduser() not in paths:
            paths.append(Path(part).expanduser())
    if paths:
        return paths
    home = environ.get("HOME")
    return [(Path(home) if home else Path.home()) / ".kube" / "config"]


def path_for_merge(explicit: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> Path:
    """The file new entries go to: the first existing of the paths, else the last one (as kubectl)."""
    paths = kubeconfig_paths(explicit, environ)
    if len(paths) == 1:
        return paths[0]
    for path in paths:
        if path.is_file():
            return path
    return paths[-1]


def dump_kubeconfig(config: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(config), default_flow_style=False, sort_keys=False)


def read_kubeconfig(path: Path) -> Kubeconfig:
    """The kubeconfig in `path`; an empty dict if the file is missing or empty."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise ClusterError(f"cannot read kubeconfig {path}: {e.strerror or e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ClusterError(f"cannot parse kubeconfig {path}: {first}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ClusterError(f"cannot use kubeconfig {path}: it is not a YAML mapping")
    return data


def write_kubeconfig(path: Path, config: Mapping[str, Any]) -> None:
    try:
        write_text_atomic(path, dump_kubeconfig(config), mode=0o600)
    except OSError as e:
        raise ClusterError(f"cannot write kubeconfig {path}: {e.strerror or e}") from None


@contextmanager
def locked(path: Path, timeout: float = 10.0) -> Iterator[None]:
    """Hold ``PATH.lock`` (created exclusively, as client-go and kind do) while changing `path`."""
    lock = path.with_name(path.name + ".lock")
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ClusterError(f"cannot create the folder of {path}: {e.strerror or e}") from None
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            os.close(fd)
            break
        except FileExistsError:
            if time.monotonic() >= deadline:
                raise ClusterError(
                    f"kubeconfig {path} is locked by another program "
                    f"(if none is running, remove {lock})"
                ) from None
            time.sleep(0.05)
        except OSError as e:
            if e.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
                raise ClusterError(f"cannot lock kubeconfig {path}: {e.strerror}") from None
            raise
    try:
        yield
    finally:
        try:
            lock.unlink()
        except FileNotFoundError:
            pass


def export_kubeconfig(config: Mapping[str, Any], path: Path, set_current_context: bool = True) -> None:
    """Merge `config` into the kubeconfig file `path` (created if missing)."""
    with locked(path):
        existing = read_kubeconfig(path)
        write_kubeconfig(path, merge_kubeconfig(existing, config, set_current_context))
    log.debug("merged kubeconfig entries into %s", path)


def unexport_kubeconfig(cluster_name: str, paths: Sequence[Path]) -> list[Path]:
    """Remove the cluster's entries from each existing file of `paths`; the files that changed."""
    changed: list[Path] = []
    for path in paths:
        if not path.is_file():
            continue
        with locked(path):
            existing = read_kubeconfig(path)
            result, was_changed = remove_kubeconfig_entries(existing, cluster_name)
            if was_changed:
                write_kubeconfig(path, result)
                changed.append(path)
    return changed
