"""What the images are built from: boxkube's source tree (its node-image/ folder and
the files of the boxkube wheel), digests of those inputs, the build contexts, and
the wheels built on the host.

A build context holds only what its Dockerfile copies, so the daemon is sent no
more than that, and the digest of the inputs (put on the image as a label) says
whether an image on the engine is still what the sources would make.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import shutil
import sys
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import boxkube
from boxkube.cluster.errors import ClusterError
from boxkube.cluster.images.names import BUSYBOX_IMAGE, HELLO_IMAGE, PAUSE_IMAGE
from boxkube.cluster.images.shell import run_logged

log = logging.getLogger(__name__)

# What goes into the boxkube wheel (pyproject.toml names README.md as the readme).
WHEEL_SOURCES = ("pyproject.toml", "README.md", "boxkube")
_SKIPPED_NAMES = {"__pycache__", ".pytest_cache", ".mypy_cache"}
_SKIPPED_SUFFIXES = (".pyc", ".pyo", ".egg-info")

# The Python of the node image's base (Debian bookworm's python3). Wheels built by
# the host's Python must be for this one.
NODE_PYTHON = (3, 11)

NODE_CONTEXT_FILES = ("Dockerfile", "entrypoint.sh")
EXECUTABLES = {"entrypoint.sh"}


@dataclass(frozen=True)
class Project:
    """boxkube's source tree: pyproject.toml, boxkube/ and node-image/."""

    root: Path

    @property
    def node_image_dir(self) -> Path:
        return self.root / "node-image"

    def base_packages(self) -> list[str]:
        """The Debian packages of the base (node-image/base-packages, one a line, # comments)."""
        path = self.node_image_dir / "base-packages"
        packages = []
        for line in path.read_text(encoding="utf-8").splitlines():
            word = line.split("#", 1)[0].strip()
            if word:
                packages.append(word)
        if not packages:
            raise ClusterError(f"{path} names no packages")
        return packages


def find_project(package_dir: Path | None = None) -> Project:
    """The source tree that this boxkube runs from (installed with `pip install -e`, or run in place)."""
    package_dir = Path(boxkube.__file__).resolve().parent if package_dir is None else package_dir
    root = package_dir.parent
    if (root / "pyproject.toml").is_file() and (root / "node-image" / "Dockerfile").is_file():
        return Project(root)
    raise ClusterError(
        f"the node image is built from boxkube's source tree (its node-image/ folder), and none is beside "
        f"{package_dir}: install boxkube from its source tree (make install) to build it"
    )


# -- digests -------------------------------------------------------------------------------------------


def tree_files(root: Path, names: Iterable[str]) -> Iterator[tuple[str, Path]]:
    """(path relative to `root`, path) of every file under `names` (files or folders of `root`),
    sorted, leaving out caches and compiled files."""
    found: list[tuple[str, Path]] = []
    for name in names:
        top = root / name
        if top.is_file():
            found.append((name, top))
            continue
        if not top.is_dir():
            raise ClusterError(f"{top} is missing from boxkube's source tree")
        for path in top.rglob("*"):
            parts = path.relative_to(root).parts
            if any(p in _SKIPPED_NAMES or p.endswith(_SKIPPED_SUFFIXES) for p in parts):
                continue
            if path.is_file():
                found.append(("/".join(parts), path))
    return iter(sorted(found))


def digest_files(files: Iterable[tuple[str, Path]], *extra: str) -> str:
    """sha256 over names and contents of `files`, and the strings `extra` (modes do not count:
    the contexts set them)."""
    h = hashlib.sha256()
    for text in extra:
        h.update(b"s\0" + text.encode() + b"\0")
    for name, path in files:
        h.update(b"f\0" + name.encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def node_inputs_digest(project: Project, base_id: str) -> str:
    """What the node image is made of: the base image, its Dockerfile and entrypoint, and boxkube's sources."""
    files = [*tree_files(project.node_image_dir, NODE_CONTEXT_FILES), *tree_files(project.root, WHEEL_SOURCES)]
    return digest_files(files, "node", base_id, boxkube.__version__)


# -- build contexts ------------------------------------------------------------------------------------


def _copy(src: Path, dest: Path, executable: bool = False) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    # Modes are set here, never taken from a checkout (and the legacy builder's cache ignores them).
    dest.chmod(0o755 if executable else 0o644)


def assemble_node_context(project: Project, context: Path) -> None:
    """The node image's Dockerfile and entrypoint in `context` (its wheels are added by build_wheels)."""
    for name in NODE_CONTEXT_FILES:
        _copy(project.node_image_dir / name, context / name, executable=name in EXECUTABLES)


def copy_wheel_sources(project: Project, dest: Path) -> None:
    """A clean copy of what the boxkube wheel is built from (no build/ or egg-info of earlier builds)."""
    for name, path in tree_files(project.root, WHEEL_SOURCES):
        _copy(path, dest / name)


@dataclass(frozen=True)
class WorkloadImage:
    """A workload image: its name and folder under node-image/workloads/."""

    name: str
    folder: str
    # busybox: the context gets the host's static busybox; the others start FROM busybox.
    from_busybox: bool
    executables: tuple[str, ...] = ()  # files of the folder that are programs


WORKLOADS = (
    WorkloadImage(BUSYBOX_IMAGE, "busybox", from_busybox=False),
    WorkloadImage(PAUSE_IMAGE, "pause", from_busybox=True, executables=("pause",)),
    WorkloadImage(HELLO_IMAGE, "hello", from_busybox=True, executables=("hello-server", "www/cgi-bin/index.cgi")),
)


def workload_dir(project: Project, image: WorkloadImage) -> Path:
    return project.node_image_dir / "workloads" / image.folder


def workload_inputs_digest(project: Project, image: WorkloadImage, parent: str) -> str:
    """Digest of a workload image's folder and its parent (the busybox binary's digest, or the busybox image's id)."""
    return digest_files(tree_files(workload_dir(project, image), ["."]), "workload", image.name, parent)


def assemble_workload_context(project: Project, image: WorkloadImage, context: Path, busybox: Path | None) -> None:
    """A workload image's folder in `context`, plus the static busybox binary for the busybox image."""
    for name, path in tree_files(workload_dir(project, image), ["."]):
        _copy(path, context / name, executable=name in image.executables)
    if not image.from_busybox:
        if busybox is None:
            raise ValueError(f"{image.name} needs the busybox binary")
        _copy(busybox, context / "busybox", executable=True)


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- wheels --------------------------------------------------------------------------------------------


def check_python(version: Sequence[int] = tuple(sys.version_info[:2])) -> None:
    """Wheels built by this Python must install on the node's Python."""
    if tuple(version[:2]) != NODE_PYTHON:
        node = ".".join(map(str, NODE_PYTHON))
        raise ClusterError(
            f"the node image runs Python {node} (Debian bookworm's), and its wheels are built by the Python that "
            f"runs boxkube, which is {'.'.join(map(str, version[:2]))}: build the node image with Python {node}"
        )


def installed_pins(exclude: str = "boxkube") -> list[str]:
    """`name==version` of every installed distribution but `exclude`: the node gets the versions the host has."""
    pins = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata.get("Name")
        if not name or name.lower().replace("_", "-") == exclude or not dist.version:
            continue
        pins.setdefault(name.lower(), f"{name}=={dist.version}")  # the first on sys.path is the one imported
    return [pins[k] for k in sorted(pins)]


def wheel_cache(environ: Mapping[str, str]) -> Path:
    """Where the wheels of the last build are kept: `$XDG_CACHE_HOME/boxkube/wheels`, else ~/.cache/boxkube/wheels."""
    base = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME") or Path.home()) / ".cache")
    return Path(base).expanduser() / "boxkube" / "wheels"


def build_requirements(project: Project) -> list[str]:
    """The [build-system] requires of pyproject.toml (what building the boxkube wheel needs)."""
    with open(project.root / "pyproject.toml", "rb") as f:
        return list(tomllib.load(f).get("build-system", {}).get("requires", []))


def _attempt(argv: Sequence[str], what: str) -> ClusterError | None:
    try:
        run_logged(argv, what)
    except ClusterError as e:
        return e
    return None


def build_wheels(project: Project, workdir: Path, wheels: Path, cache: Path) -> None:
    """Wheels of boxkube (into wheels/boxkube) and of its dependencies (wheels/deps), built by the host's pip.

    The dependencies are the versions installed on the host where they fit pyproject.toml. The wheels
    of a build are kept in `cache` (deps/, and build/ for what building boxkube's wheel needs), so the
    next build makes them offline without asking a package index; only when that fails is the index asked.
    """
    check_python()
    src = workdir / "src"
    copy_wheel_sources(project, src)
    pins = workdir / "pins.txt"
    pins.write_text("".join(f"{pin}\n" for pin in installed_pins()), encoding="utf-8")
    out = workdir / "wheelhouse"
    cached_deps, cached_build = cache / "deps", cache / "build"
    for folder in (cached_deps, cached_build):
        folder.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "wheel", "--wheel-dir", str(out),
           "--find-links", str(cached_deps), "--find-links", str(cached_build)]
    what = "pip wheel (boxkube and its dependencies)"
    # Offline from the cache first, then with the package index; each with the host's versions, then,
    # if those no longer fit pyproject.toml (a dependency added or raised since the last `make install`),
    # with the versions pip picks.
    attempts = [
        [*pip, "--no-index", "--constraint", str(pins), str(src)],
        [*pip, "--no-index", str(src)],
        [*pip, "--constraint", str(pins), str(src)],
        [*pip, str(src)],
    ]
    error: ClusterError | None = None
    for i, argv in enumerate(attempts):
        if i == 2:
            # The index is asked from here on: also fetch what building boxkube's wheel needs, so that the
            # next build can run offline.
            _attempt([*pip[:5], "--wheel-dir", str(cached_build), *build_requirements(project)],
                     "pip wheel (boxkube's build requirements)")
        shutil.rmtree(out, ignore_errors=True)
        error = _attempt(argv, what)
        if error is None:
            break
        log.debug("%s; %s", error, "trying the next way" if i + 1 < len(attempts) else "no way left")
    if error is not None:
        raise error
    (wheels / "boxkube").mkdir(parents=True, exist_ok=True)
    (wheels / "deps").mkdir(parents=True, exist_ok=True)
    found = False
    for wheel in sorted(out.glob("*.whl")):
        own = wheel.name.split("-", 1)[0].lower() == "boxkube"
        found = found or own
        shutil.move(str(wheel), wheels / ("boxkube" if own else "deps") / wheel.name)
    if not found:
        raise ClusterError("pip wheel made no boxkube wheel")
    _keep(wheels / "deps", cached_deps)


def _keep(wheels: Path, cache: Path) -> None:
    """Make `cache` hold exactly the wheels of `wheels` (those of the last build); never fails the build."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
        wanted = {w.name for w in wheels.glob("*.whl")}
        for old in cache.glob("*.whl"):
            if old.name not in wanted:
                old.unlink()
        for name in wanted:
            if not (cache / name).exists():
                shutil.copyfile(wheels / name, cache / name)
    except OSError as e:
        log.warning("could not keep the wheels in %s: %s", cache, e)
