"""A pod's volumes on its node: folders and files that the pod's containers bind-mount.

Runtime-independent kubelet work (upstream's volume manager, cut down to the
volume types a node can serve from its own disk), done once per pod before its
sandbox is made. Everything lives under the runtime's `root_dir` (the kubelet's
--root-dir), laid out as upstream's kubelet lays out /var/lib/kubelet:

    <root>/pods/<uid>/volumes/kubernetes.io~empty-dir/<volume>/
    <root>/pods/<uid>/volumes/kubernetes.io~configmap/<volume>/     files of the ConfigMap's keys
    <root>/pods/<uid>/volumes/kubernetes.io~secret/<volume>/        files of the Secret's keys
    <root>/pods/<uid>/volumes/kubernetes.io~downward-api/<volume>/
    <root>/pods/<uid>/volumes/kubernetes.io~projected/<volume>/     configMap, secret and downwardAPI sources
    <root>/pods/<uid>/containers/<container>/<id>                   terminationMessagePath of one instance

- emptyDir: a folder, world-writable as upstream's (`medium: Memory` is a folder
  too: no tmpfs yet); it lives as long as the pod is on the node.
- hostPath: the node's own path, checked or created as its `type` says
  (upstream's messages); the agent and the engine must share the node's
  filesystem, which they do inside a node container and on a test host.
- configMap, secret, downwardAPI, projected: files written by the agent as
  upstream's AtomicWriter does (a timestamped folder, a `..data` symlink to
  it, a symlink per top-level name), honouring `items`, `defaultMode` and
  per-item `mode`, and mounted read-only. They are written when the pod
  starts; they are not updated while it runs (next step: a watch-fed cache,
  see boxkube.agent.podconfig).

A volume that cannot be set up (a missing ConfigMap that is not optional, a
hostPath of the wrong type, a type boxkube does not serve) raises VolumeError,
whose str() is upstream's FailedMount event message; the pod's containers
wait in ContainerCreating and the worker tries again.

A runtime without a root_dir (the simulated one) gets the same checks but no
files: `prepare` still reads the ConfigMaps and Secrets, so a missing one holds
the pod up on a simulated node as on a real one.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import stat
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boxkube.agent.podconfig import ConfigError, ObjectSource, expand, field_value, resource_value
from boxkube.agent.runtime.base import Mount

log = logging.getLogger(__name__)

Obj = dict[str, Any]

DEFAULT_MODE = 0o644
_READ_ONLY_KINDS = ("configMap", "secret", "downwardAPI", "projected")
_PLUGIN_DIRS = {"emptyDir": "kubernetes.io~empty-dir", "configMap": "kubernetes.io~configmap",
                "secret": "kubernetes.io~secret", "downwardAPI": "kubernetes.io~downward-api",
                "projected": "kubernetes.io~projected"}
_DATA_LINK = "..data"


class VolumeError(Exception):
    """A volume could not be set up; str() is the kubelet's FailedMount event message."""

    def __init__(self, volume: str, message: str):
        super().__init__(f'MountVolume.SetUp failed for volume "{volume}" : {message}')
        self.volume = volume


def pod_dir(root: str, uid: str) -> Path:
    return Path(root) / "pods" / uid


@dataclass
class PodVolumes:
    """The volumes of one pod as set up on the node: name -> path on the node ("" when nothing is written)."""

    uid: str
    root: str | None
    paths: dict[str, str] = field(default_factory=dict)
    read_only: set[str] = field(default_factory=set)

    def mounts(self, container: Obj, env: Mapping[str, str] | None = None) -> list[Mount]:
        """The bind mounts of a container's volumeMounts (subPath and subPathExpr made inside the volume)."""
        if self.root is None:
            return []
        out = []
        for vm in container.get("volumeMounts") or []:
            name = vm.get("name", "")
            if name not in self.paths:
                raise ConfigError(f"cannot find volume \"{name}\" to mount into container \"{container.get('name')}\"")
            host = Path(self.paths[name])
            sub = vm.get("subPath") or ""
            if vm.get("subPathExpr"):
                sub = expand(vm["subPathExpr"], env or {})
            if sub:
                if os.path.isabs(sub) or ".." in Path(sub).parts:
                    raise ConfigError(f"subPath {sub!r} must be a relative path within the volume")
                host = host / sub
                if not host.exists() and not os.path.islink(host) and name not in self.read_only:
                    host.mkdir(mode=0o755, parents=True, exist_ok=True)     # as upstream, for a missing subPath
            out.append(Mount(container_path=vm.get("mountPath", ""), host_path=str(host),
                             read_only=bool(vm.get("readOnly")) or name in self.read_only))
        return out

    def termination_message_file(self, container: Obj) -> tuple[str, Mount | None]:
        """A fresh empty file for a container instance's terminationMessagePath, and its mount."""
        path = container.get("terminationMessagePath")
        if self.root is None or not path:
            return "", None
        folder = pod_dir(self.root, self.uid) / "containers" / container.get("name", "")
        folder.mkdir(parents=True, exist_ok=True)
        file = folder / secrets.token_hex(4)
        file.touch()
        file.chmod(0o666)        # whatever user the container runs as writes it
        return str(file), Mount(container_path=path, host_path=str(file))


async def prepare(pod: Obj, source: ObjectSource, root: str | None,
                  allocatable: Mapping[str, str] | None = None) -> PodVolumes:
    """Set up every volume of the pod (idempotent: emptyDirs keep their contents, files are written afresh)."""
    meta = pod.get("metadata") or {}
    uid = meta.get("uid", "")
    result = PodVolumes(uid=uid, root=root)
    writes: list[tuple[str, Path | None, Obj]] = []       # what to do on disk, once everything resolved
    base = pod_dir(root, uid) / "volumes" if root is not None else None
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        name = volume.get("name", "")
        kind = next((k for k in volume if k != "name"), "")
        try:
            if kind == "hostPath":
                target = Path(volume["hostPath"].get("path") or "/")
                writes.append(("hostPath", target, volume["hostPath"]))
            elif kind == "emptyDir":
                target = base / _PLUGIN_DIRS[kind] / name if base else None
                writes.append(("dir", target, {"mode": 0o777}))
            elif kind in ("configMap", "secret", "downwardAPI", "projected"):
                payload = await _payload(pod, kind, volume[kind], source, allocatable or {})
                for rel in payload:
                    if not rel or os.path.isabs(rel) or ".." in Path(rel).parts:
                        raise ConfigError(f"invalid path {rel!r} in the volume's items")
                target = base / _PLUGIN_DIRS[kind] / name if base else None
                writes.append(("files", target, payload))
                result.read_only.add(name)
            else:
                raise VolumeError(name, f"boxkube nodes do not serve {kind or 'empty'} volumes yet "
                                        "(emptyDir, hostPath, configMap, secret, downwardAPI and projected do)")
        except ConfigError as e:
            raise VolumeError(name, str(e)) from None
        if root is not None:
            result.paths[name] = str(writes[-1][1])
        else:
            result.paths[name] = ""
    if root is not None:
        await asyncio.to_thread(_write_all, [(n, *w) for n, w in zip(result.paths, writes)])
    return result


def _write_all(writes: Iterable[tuple[str, str, Path | None, Any]]) -> None:
    for name, what, target, arg in writes:
        if target is None:
            continue
        try:
            if what == "hostPath":
                _check_host_path(name, target, arg.get("type") or "")
            elif what == "dir":
                if not target.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    target.chmod(arg["mode"])
            else:
                write_atomically(target, arg)
        except OSError as e:
            raise VolumeError(name, f"{e.strerror or e}: {e.filename or target}") from None


def _check_host_path(volume: str, path: Path, kind: str) -> None:
    """hostPath's `type` (upstream's hostPath type checker and its messages)."""
    def fail(what: str) -> None:
        raise VolumeError(volume, f"hostPath type check failed: {path} is not {what}")
    if kind in ("", "DirectoryOrCreate"):
        if not path.exists():      # "" makes a missing path a folder, as the engine would
            path.mkdir(mode=0o755, parents=True, exist_ok=True)
        elif kind and not path.is_dir():
            fail("a directory")
    elif kind == "FileOrCreate":
        if not path.exists():
            try:
                path.touch(mode=0o644)
            except OSError as e:
                raise VolumeError(volume, f"hostPath type check failed: {path}: {e.strerror}") from None
        elif not path.is_file():
            fail("a file")
    elif kind == "Directory":
        if not path.is_dir():
            fail("a directory")
    elif kind == "File":
        if not path.is_file():
            fail("a file")
    elif kind in ("Socket", "CharDevice", "BlockDevice"):
        test = {"Socket": stat.S_ISSOCK, "CharDevice": stat.S_ISCHR, "BlockDevice": stat.S_ISBLK}[kind]
        try:
            mode = path.stat().st_mode
        except OSError:
            mode = 0
        if not test(mode):
            fail({"Socket": "a socket file", "CharDevice": "a character device", "BlockDevice": "a block device"}[kind])
    else:
        raise VolumeError(volume, f"hostPath type {kind} is not known")


# -- payloads of configMap, secret, downwardAPI and projected volumes ------------------------------------


async def _payload(pod: Obj, kind: str, spec: Obj, source: ObjectSource,
                   allocatable: Mapping[str, str]) -> dict[str, tuple[bytes, int]]:
    """The files of one volume: relative path -> (content, mode)."""
    if kind == "projected":
        out: dict[str, tuple[bytes, int]] = {}
        default = _mode(spec.get("defaultMode"))
        for src in spec.get("sources") or []:
            sub_kind = next((k for k in src if src[k] is not None), "")
            if sub_kind not in ("configMap", "secret", "downwardAPI"):
                raise ConfigError(f"projected {sub_kind or 'empty'} sources are not served by boxkube nodes yet")
            out.update(await _payload(pod, sub_kind, {**src[sub_kind], "defaultMode": default}, source, allocatable))
        return out
    default = _mode(spec.get("defaultMode"))
    if kind == "downwardAPI":
        out = {}
        for item in spec.get("items") or []:
            if item.get("fieldRef") is not None:
                value = field_value(pod, item["fieldRef"].get("fieldPath", ""), volume=True)
            elif item.get("resourceFieldRef") is not None:
                value = resource_value(pod, None, item["resourceFieldRef"], allocatable)
            else:
                continue
            out[item.get("path", "")] = (value.encode(), _mode(item.get("mode"), default))
        return out
    optional = bool(spec.get("optional"))
    if kind == "configMap":
        data = await source.configmap(spec.get("name", ""), optional)
        missing = "configmap references non-existent config key: {}"
    else:
        data = await source.secret(spec.get("secretName") or spec.get("name") or "", optional)
        missing = "references non-existent secret key: {}"
    if data is None:
        return {}
    items = spec.get("items")
    if not items:
        return {k: (v, default) for k, v in data.items()}
    out = {}
    for item in items:
        key = item.get("key", "")
        if key not in data:
            if optional:
                continue
            raise ConfigError(missing.format(key))
        out[item.get("path") or key] = (data[key], _mode(item.get("mode"), default))
    return out


def _mode(value: Any, default: int = DEFAULT_MODE) -> int:
    return int(value) & 0o777 if value is not None else default


def _written(target: Path, payload: Mapping[str, tuple[bytes, int]]) -> bool:
    """Whether `target`'s current `..data` holds exactly `payload` (files, contents and modes)."""
    data = target / _DATA_LINK
    if not data.is_dir():
        return False
    files = {str(f.relative_to(data)) for f in data.rglob("*") if f.is_file()}
    if files != set(payload):
        return False
    for rel, (content, mode) in payload.items():
        file = data / rel
        if file.stat().st_mode & 0o777 != mode or file.read_bytes() != content:
            return False
    return True


def write_atomically(target: Path, payload: Mapping[str, tuple[bytes, int]]) -> None:
    """Write `payload` into `target` as upstream's AtomicWriter: into a new timestamped folder, then
    swap the `..data` symlink to it, with a symlink per top-level name through `..data`. Nothing is
    written when `target` holds the payload already (volumes are set up again as their sources change)."""
    if _written(target, payload):
        return
    target.mkdir(parents=True, exist_ok=True)
    target.chmod(0o755)
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime()) + secrets.token_hex(4)
    new = target / stamp
    new.mkdir(mode=0o755)
    for rel, (content, mode) in payload.items():
        file = new / rel       # paths checked by prepare: relative, no ".."
        file.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        file.write_bytes(content)
        file.chmod(mode)
    old = os.readlink(target / _DATA_LINK) if os.path.islink(target / _DATA_LINK) else None
    tmp_link = target / "..data_tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp_link.unlink()
    tmp_link.symlink_to(stamp)
    os.replace(tmp_link, target / _DATA_LINK)
    tops = {Path(rel).parts[0] for rel in payload}
    for top in tops:
        link = target / top
        if not os.path.islink(link):
            link.symlink_to(f"{_DATA_LINK}/{top}")
    for entry in target.iterdir():      # names of the old payload that the new one has not
        if entry.name.startswith(".."):
            continue
        if entry.name not in tops and os.path.islink(entry):
            entry.unlink()
    if old and old != stamp:
        shutil.rmtree(target / old, ignore_errors=True)


# -- cleaning up ----------------------------------------------------------------------------------------


async def remove_pod_dir(root: str | None, uid: str) -> None:
    """Remove a pod's folder (its volumes, termination messages) once nothing of it runs."""
    if root is None or not uid:
        return
    await asyncio.to_thread(_remove, pod_dir(root, uid))


async def remove_orphans(root: str | None, keep: set[str]) -> None:
    """Remove the folders of pods that are no longer bound here (upstream cleanupOrphanedPodDirs)."""
    if root is None:
        return
    pods = Path(root) / "pods"

    def orphans() -> list[Path]:
        try:
            return [p for p in pods.iterdir() if p.is_dir() and p.name not in keep]
        except FileNotFoundError:
            return []
    for path in await asyncio.to_thread(orphans):
        log.info("removing the folder of pod %s, which is no longer on this node", path.name)
        await asyncio.to_thread(_remove, path)


def _remove(path: Path) -> None:
    def failed(function: Any, name: str, exc: Any) -> None:
        log.warning("could not remove %s: %s", name, exc[1] if isinstance(exc, tuple) else exc)
    shutil.rmtree(path, onerror=failed) if path.exists() else None
