"""`boxkube build node-image`: the base, the node image and the workload images, each
built only when it is missing or out of date, with a progress line for each.

Out of date means: the digest of what the image would be built from now (the
package list, boxkube's files, the Dockerfiles, the parent image) differs from
the one on the image's label. So an upgrade of boxkube (a new tag), a change of
its code, or a new base all make a new node image, and nothing else does.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boxkube.cluster.images.base import DEBIAN_SUITE, DEFAULT_MIRROR, base_inputs_digest, build_base, find_static_busybox
from boxkube.cluster.images.engine import Engine
from boxkube.cluster.images.names import BASE_IMAGE, BUSYBOX_IMAGE, INPUTS_LABEL, node_image
from boxkube.cluster.images.sources import (
    WORKLOADS,
    Sources,
    assemble_node_context,
    assemble_workload_context,
    build_wheels,
    file_digest,
    find_sources,
    node_inputs_digest,
    wheel_cache,
    workload_inputs_digest,
)
from boxkube.cluster.progress import Progress, SilentProgress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildOptions:
    rebuild: bool = False  # build the node and workload images even when they are up to date
    rebuild_base: bool = False  # and the base as well (debootstrap again)
    mirror: str = DEFAULT_MIRROR  # the Debian mirror debootstrap downloads from


@dataclass
class Images:
    """The names of the images, and which of them this build made."""

    base: str
    node: str
    workloads: tuple[str, ...]
    built: list[str] = field(default_factory=list)


def _inputs(found: Mapping[str, Any] | None) -> str | None:
    if found is None:
        return None
    return ((found.get("Config") or {}).get("Labels") or {}).get(INPUTS_LABEL)


def _why(found: Mapping[str, Any] | None) -> str:
    return "missing" if found is None else "out of date"


class _Build:
    def __init__(
        self, engine: Engine, sources: Sources, progress: Progress, options: BuildOptions, wheel_cache: Path
    ) -> None:
        self.engine = engine
        self.wheel_cache = wheel_cache
        self.sources = sources
        self.progress = progress
        self.options = options
        self.built: list[str] = []
        self.replaced: list[str] = []  # ids of the images that new builds took the names of

    def _made(self, name: str, found: Mapping[str, Any] | None, new_id: str) -> None:
        self.built.append(name)
        if found is not None and found["Id"] != new_id:
            self.replaced.append(found["Id"])

    def base(self) -> str:
        packages = self.sources.base_packages()
        digest = base_inputs_digest(packages)
        found = self.engine.inspect(BASE_IMAGE)
        fresh = _inputs(found) == digest
        if fresh and not self.options.rebuild_base:
            self.progress.done(f"Base image {BASE_IMAGE} is up to date")
            return found["Id"]  # type: ignore[index]
        if not fresh:
            self.progress.info(
                f"The base image {BASE_IMAGE} is {_why(found)}: building it from Debian's packages "
                f"(debootstrap {DEBIAN_SUITE}, {len(packages)} packages and what they need); this takes a few minutes"
            )
        with self.progress.step(f"Building base image {BASE_IMAGE} from Debian's packages"):
            new_id = build_base(self.engine, BASE_IMAGE, packages, digest, self.options.mirror)
        self._made(BASE_IMAGE, found, new_id)
        return new_id

    def node(self, base_id: str) -> str:
        name = node_image()
        digest = node_inputs_digest(self.sources, base_id)
        found = self.engine.inspect(name)
        if _inputs(found) == digest and not self.options.rebuild:
            self.progress.done(f"Node image {name} is up to date")
            return name
        with tempfile.TemporaryDirectory(prefix="boxkube-node-image-") as tmp:
            context = Path(tmp) / "context"
            assemble_node_context(self.sources, context)
            with self.progress.step("Building wheels of boxkube and its dependencies (pip wheel)"):
                build_wheels(self.sources, Path(tmp), context / "wheels", self.wheel_cache)
            with self.progress.step(f"Building node image {name}"):
                new_id = self.engine.build(
                    context, name, buildargs={"BASE_IMAGE": BASE_IMAGE}, labels={INPUTS_LABEL: digest}
                )
        self._made(name, found, new_id)
        return name

    def workloads(self) -> tuple[str, ...]:
        busybox = find_static_busybox()
        parent = file_digest(busybox)  # of the binary for the busybox image, then the busybox image's id
        names = tuple(image.name for image in WORKLOADS)
        stale_parent = False
        todo = []
        for image in WORKLOADS:
            found = self.engine.inspect(image.name)
            digest = workload_inputs_digest(self.sources, image, parent)
            if stale_parent or self.options.rebuild or _inputs(found) != digest:
                todo.append((image, found))
                stale_parent = stale_parent or not image.from_busybox
            elif not image.from_busybox:
                parent = found["Id"]  # type: ignore[index]
        if not todo:
            self.progress.done(f"Workload images {', '.join(names)} are up to date")
            return names
        with self.progress.step(f"Building workload images {', '.join(image.name for image, _ in todo)}"):
            with tempfile.TemporaryDirectory(prefix="boxkube-workload-") as tmp:
                for image, found in todo:
                    if image.from_busybox:
                        parent = self.engine.image_id(BUSYBOX_IMAGE) or ""
                    digest = workload_inputs_digest(self.sources, image, parent)
                    context = Path(tmp) / image.folder
                    assemble_workload_context(self.sources, image, context, busybox)
                    new_id = self.engine.build(
                        context, image.name, buildargs={"BUSYBOX_IMAGE": BUSYBOX_IMAGE} if image.from_busybox else {},
                        labels={INPUTS_LABEL: digest},
                    )
                    self._made(image.name, found, new_id)
        return names

    def drop_replaced(self) -> None:
        # Children first: an old base cannot go while the old node image made from it is there.
        for image_id in reversed(self.replaced):
            self.engine.remove_image(image_id)
        # and those that were still in use when a build replaced them, if they are not any more
        self.engine.prune_dangling(INPUTS_LABEL)


def build_images(
    engine: Engine,
    progress: Progress | None = None,
    options: BuildOptions = BuildOptions(),
    sources: Sources | None = None,
    environ: Mapping[str, str] | None = None,
) -> Images:
    """Make sure the base, the node image and the workload images are on `engine` and up to date,
    built from `sources` (by default the boxkube package that runs, installed or a source tree's).
    `environ` locates the wheel cache (XDG_CACHE_HOME or HOME; the process's by default)."""
    cache = wheel_cache(os.environ if environ is None else environ)
    progress = progress or SilentProgress()
    build = _Build(engine, sources or find_sources(), progress, options, cache)
    with _one_build_at_a_time(progress):
        base_id = build.base()
        node = build.node(base_id)
        workloads = build.workloads()
        build.drop_replaced()
    return Images(base=BASE_IMAGE, node=node, workloads=workloads, built=build.built)


@contextlib.contextmanager
def _one_build_at_a_time(progress: Progress, lock_file: Path | None = None) -> Iterator[None]:
    """Hold the machine's image-build lock: a second build (another terminal, a parallel test) waits and
    then finds the images up to date instead of building them again."""
    path = lock_file or Path(tempfile.gettempdir()) / "boxkube-image-build.lock"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)  # read-only is enough to lock, for any user
    except OSError as e:
        log.debug("building without the lock %s: %s", path, e)
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress.info("Another boxkube is building the images; waiting for it to finish")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def build_node_image(
    options: BuildOptions = BuildOptions(),
    environ: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> Images:
    """`boxkube build node-image` (and the first step of creating a docker cluster): the images on the
    Docker engine that `environ` names."""
    return build_images(Engine.connect(environ), progress, options, environ=environ)
