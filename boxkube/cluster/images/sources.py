"""What the images are built from: the boxkube package that runs, with its node-image/
folder (package data: the Dockerfiles, the entrypoint, the base's package list, the
workload images), digests of those inputs, the build contexts, and the wheels.

It is the same whether boxkube was installed from a wheel (`pip install boxkube`, no
source tree anywhere) or runs from a source checkout (`make install`, editable): the
node image's boxkube wheel is made here from the package's own files (a zip, with no
build backend), and the wheels of its dependencies are built by the host's pip.

A build context holds only what its Dockerfile copies, so the daemon is sent no
more than that, and the digest of the inputs (put on the image as a label) says
whether an image on the engine is still what the sources would make.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import importlib.util
import itertools
import logging
import re
import shutil
import sys
import tomllib
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import boxkube
from boxkube.cluster.errors import ClusterError
from boxkube.cluster.images.names import BUSYBOX_IMAGE, HELLO_IMAGE, PAUSE_IMAGE
from boxkube.cluster.images.shell import run_logged

log = logging.getLogger(__name__)

DIST_NAME = "boxkube"
# The node image's inputs, as package data (pyproject.toml's [tool.setuptools.package-data]
# ships them): relative to the boxkube package. The top-level node-image of the source tree
# is a symlink to this folder.
NODE_IMAGE_DIR = ("cluster", "images", "node-image")

_SKIPPED_NAMES = {"__pycache__", ".pytest_cache", ".mypy_cache"}
_SKIPPED_SUFFIXES = (".pyc", ".pyo", ".egg-info")

# The Python of the node image's base (Debian bookworm's python3). Wheels built by
# the host's Python must be for this one.
NODE_PYTHON = (3, 11)

NODE_CONTEXT_FILES = ("Dockerfile", "entrypoint.sh")
EXECUTABLES = {"entrypoint.sh"}

# Fixed zip entry times, so that the same files make the same wheel, byte for byte.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Sources:
    """The boxkube package the images are built from (its directory, e.g. site-packages/boxkube or
    a checkout's boxkube/), with the node-image/ folder inside it."""

    package: Path
    version: str = field(default_factory=lambda: boxkube.__version__)

    @property
    def node_image_dir(self) -> Path:
        return self.package.joinpath(*NODE_IMAGE_DIR)

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


def find_sources(package_dir: Path | None = None) -> Sources:
    """The boxkube package that runs (installed from a wheel, or a source tree's), checked to hold
    the node image's files."""
    package_dir = Path(boxkube.__file__).resolve().parent if package_dir is None else package_dir
    sources = Sources(package_dir)
    if not (sources.node_image_dir / "Dockerfile").is_file():
        raise ClusterError(
            f"boxkube's node image files are missing: there is no {sources.node_image_dir / 'Dockerfile'} "
            f"(boxkube's installation is incomplete: reinstall it)"
        )
    return sources


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
            raise ClusterError(f"{top} is missing (boxkube's installation is incomplete: reinstall it)")
        for path in top.rglob("*"):
            parts = path.relative_to(root).parts
            if any(p in _SKIPPED_NAMES or p.endswith(_SKIPPED_SUFFIXES) for p in parts):
                continue
            if path.is_file():
                found.append(("/".join(parts), path))
    return iter(sorted(found))


def digest_files(files: Iterable[tuple[str, Path | bytes]], *extra: str) -> str:
    """sha256 over names and contents of `files` (a path, or the content itself), and the strings
    `extra` (modes do not count: the contexts set them)."""
    h = hashlib.sha256()
    for text in extra:
        h.update(b"s\0" + text.encode() + b"\0")
    for name, content in files:
        h.update(b"f\0" + name.encode() + b"\0")
        h.update(hashlib.sha256(content if isinstance(content, bytes) else content.read_bytes()).digest())
    return h.hexdigest()


def node_inputs_digest(sources: Sources, base_id: str) -> str:
    """What the node image is made of: the base image, its Dockerfile and entrypoint, and what goes
    into boxkube's wheel (the package's files and its metadata)."""
    files = [*tree_files(sources.node_image_dir, NODE_CONTEXT_FILES), *boxkube_wheel(sources).entries]
    return digest_files(files, "node", base_id, sources.version)


# -- build contexts ------------------------------------------------------------------------------------


def _copy(src: Path, dest: Path, executable: bool = False) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    # Modes are set here, never taken from a checkout or an installation (and the legacy builder's
    # cache ignores them).
    dest.chmod(0o755 if executable else 0o644)


def assemble_node_context(sources: Sources, context: Path) -> None:
    """The node image's Dockerfile and entrypoint in `context` (its wheels are added by build_wheels)."""
    for name in NODE_CONTEXT_FILES:
        _copy(sources.node_image_dir / name, context / name, executable=name in EXECUTABLES)


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


def workload_dir(sources: Sources, image: WorkloadImage) -> Path:
    return sources.node_image_dir / "workloads" / image.folder


def workload_inputs_digest(sources: Sources, image: WorkloadImage, parent: str) -> str:
    """Digest of a workload image's folder and its parent (the busybox binary's digest, or the busybox image's id)."""
    return digest_files(tree_files(workload_dir(sources, image), ["."]), "workload", image.name, parent)


def assemble_workload_context(sources: Sources, image: WorkloadImage, context: Path, busybox: Path | None) -> None:
    """A workload image's folder in `context`, plus the static busybox binary for the busybox image."""
    for name, path in tree_files(workload_dir(sources, image), ["."]):
        _copy(path, context / name, executable=name in image.executables)
    if not image.from_busybox:
        if busybox is None:
            raise ValueError(f"{image.name} needs the busybox binary")
        _copy(busybox, context / "busybox", executable=True)


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- boxkube's own wheel -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metadata:
    """What boxkube's wheel says of itself besides its files: what pip needs to install it in the node
    (with --no-deps) and to resolve its dependencies on the host."""

    requires: tuple[str, ...]  # Requires-Dist, without those of extras (the node needs none)
    requires_python: str | None
    scripts: tuple[tuple[str, str], ...]  # console scripts: (name, module:function)
    where: str  # where it was read, for messages


def _is_boxkube_project(path: Path) -> dict | None:
    """The [project] table of `path` if it is boxkube's pyproject.toml."""
    try:
        with open(path, "rb") as f:
            project = tomllib.load(f).get("project") or {}
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return project if project.get("name") == DIST_NAME else None


def _without_extras(requires: Iterable[str]) -> tuple[str, ...]:
    """The requirements that hold without an extra (`x; extra == "test"` is left out)."""
    kept = []
    for requirement in requires:
        _, _, marker = requirement.partition(";")
        if re.search(r"\bextra\b", marker):
            continue
        kept.append(requirement.strip())
    return tuple(kept)


def package_metadata(sources: Sources) -> Metadata:
    """boxkube's metadata: from the pyproject.toml beside the package in a source tree (it may be newer
    than what `pip install -e` recorded), else from the installed distribution's metadata (the
    dist-info beside the package, else any of this version on sys.path)."""
    pyproject = sources.package.parent / "pyproject.toml"
    project = _is_boxkube_project(pyproject) if pyproject.is_file() else None
    if project is not None:
        return Metadata(
            requires=_without_extras(project.get("dependencies") or ()),
            requires_python=project.get("requires-python"),
            scripts=tuple(sorted((project.get("scripts") or {}).items())),
            where=str(pyproject),
        )
    dist = _installed_distribution(sources)
    return Metadata(
        requires=_without_extras(dist.requires or ()),
        requires_python=dist.metadata.get("Requires-Python"),
        scripts=tuple(sorted((ep.name, ep.value) for ep in dist.entry_points if ep.group == "console_scripts")),
        where=str(getattr(dist, "_path", DIST_NAME)),
    )


def _installed_distribution(sources: Sources) -> importlib.metadata.Distribution:
    """The dist-info installed with the package (beside it), else one of the same version on sys.path
    (a copy of the package run in place)."""
    beside = importlib.metadata.distributions(name=DIST_NAME, path=[str(sources.package.parent)])
    for dist in itertools.chain(beside, importlib.metadata.distributions(name=DIST_NAME)):
        if dist.version == sources.version:
            return dist
    raise ClusterError(
        f"boxkube {sources.version} at {sources.package} has no metadata (no dist-info of it, and no source tree "
        f"around it): install boxkube with pip to build the node image"
    )


@dataclass(frozen=True)
class Wheel:
    """boxkube's wheel for the node image: its version and its entries (name, content), RECORD aside
    (it follows from them)."""

    version: str  # as the file name spells it
    entries: list[tuple[str, bytes]]

    @property
    def filename(self) -> str:
        return f"{DIST_NAME}-{self.version}-py3-none-any.whl"

    @property
    def dist_info(self) -> str:
        return f"{DIST_NAME}-{self.version}.dist-info"

    def write(self, folder: Path) -> Path:
        """The wheel file in `folder`: the same bytes for the same entries (fixed times and modes)."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / self.filename
        record = [f"{name},sha256={_b64(hashlib.sha256(data).digest())},{len(data)}" for name, data in self.entries]
        record.append(f"{self.dist_info}/RECORD,,")
        entries = [*self.entries, (f"{self.dist_info}/RECORD", ("\n".join(record) + "\n").encode())]
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in entries:
                info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, data)
        return path


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _wheel_version(version: str) -> str:
    """A version as a wheel's file name spells it (PEP 427: `-` cannot be in a part)."""
    return re.sub(r"[^\w.+!]+", "_", version)


def boxkube_wheel(sources: Sources, metadata: Metadata | None = None) -> Wheel:
    """boxkube's wheel, made of the package's own files (not its node-image/ folder: the node builds no
    images), with no build backend: the same from an installed package as from a source tree."""
    metadata = package_metadata(sources) if metadata is None else metadata
    version = _wheel_version(sources.version)
    dist_info = Wheel(version, []).dist_info
    left_out = "/".join(NODE_IMAGE_DIR) + "/"
    entries = [(f"{DIST_NAME}/{name}", path.read_bytes())
               for name, path in tree_files(sources.package, ["."]) if not name.startswith(left_out)]
    lines = ["Metadata-Version: 2.1", f"Name: {DIST_NAME}", f"Version: {sources.version}"]
    if metadata.requires_python:
        lines.append(f"Requires-Python: {metadata.requires_python}")
    lines += [f"Requires-Dist: {requirement}" for requirement in metadata.requires]
    entries.append((f"{dist_info}/METADATA", ("\n".join(lines) + "\n").encode()))
    entries.append((f"{dist_info}/WHEEL",
                    b"Wheel-Version: 1.0\nGenerator: boxkube\nRoot-Is-Purelib: true\nTag: py3-none-any\n"))
    if metadata.scripts:
        scripts = "".join(f"{name} = {target}\n" for name, target in metadata.scripts)
        entries.append((f"{dist_info}/entry_points.txt", f"[console_scripts]\n{scripts}".encode()))
    return Wheel(version, entries)


# -- wheels --------------------------------------------------------------------------------------------


def check_python(version: Sequence[int] = tuple(sys.version_info[:2])) -> None:
    """Wheels built by this Python must install on the node's Python."""
    if tuple(version[:2]) != NODE_PYTHON:
        node = ".".join(map(str, NODE_PYTHON))
        raise ClusterError(
            f"the node image runs Python {node} (Debian bookworm's), and its wheels are built by the Python that "
            f"runs boxkube, which is {'.'.join(map(str, version[:2]))}: build the node image with Python {node}"
        )


def check_pip(find_spec=importlib.util.find_spec) -> None:
    """The wheels of the dependencies are built by `python -m pip` of the Python that runs boxkube."""
    if find_spec("pip") is None:
        raise ClusterError(
            f"building the node image needs pip in the Python environment of boxkube ({sys.executable}), and it "
            f"has none: install it (`{sys.executable} -m ensurepip`, or `uv pip install pip`)"
        )


def installed_pins(exclude: str = DIST_NAME) -> list[str]:
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


def _attempt(argv: Sequence[str], what: str) -> ClusterError | None:
    try:
        run_logged(argv, what)
    except ClusterError as e:
        return e
    return None


def build_wheels(sources: Sources, workdir: Path, wheels: Path, cache: Path) -> None:
    """boxkube's wheel (into wheels/boxkube, made of the package's files) and the wheels of its
    dependencies (wheels/deps), built by the host's pip.

    The dependencies are the versions installed on the host where they fit boxkube's requirements.
    The wheels of a build are kept in `cache` (deps/), so the next build makes them offline without
    asking a package index; only when that fails is the index asked.
    """
    check_python()
    check_pip()
    metadata = package_metadata(sources)
    log.debug("boxkube's wheel: the files of %s, the metadata of %s", sources.package, metadata.where)
    own = boxkube_wheel(sources, metadata).write(wheels / "boxkube")
    pins = workdir / "pins.txt"
    pins.write_text("".join(f"{pin}\n" for pin in installed_pins()), encoding="utf-8")
    out = workdir / "wheelhouse"
    cached_deps = cache / "deps"
    cached_deps.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "wheel", "--wheel-dir", str(out),
           "--find-links", str(cached_deps)]
    what = "pip wheel (boxkube's dependencies)"
    # Offline from the cache first, then with the package index; each with the host's versions, then,
    # if those no longer fit boxkube's requirements (a dependency added or raised since the host's
    # install), with the versions pip picks. pip reads the requirements from boxkube's wheel.
    attempts = [
        [*pip, "--no-index", "--constraint", str(pins), str(own)],
        [*pip, "--no-index", str(own)],
        [*pip, "--constraint", str(pins), str(own)],
        [*pip, str(own)],
    ]
    error: ClusterError | None = None
    for i, argv in enumerate(attempts):
        shutil.rmtree(out, ignore_errors=True)
        error = _attempt(argv, what)
        if error is None:
            break
        log.debug("%s; %s", error, "trying the next way" if i + 1 < len(attempts) else "no way left")
    if error is not None:
        raise error
    (wheels / "deps").mkdir(parents=True, exist_ok=True)
    for wheel in sorted(out.glob("*.whl")):
        if wheel.name.split("-", 1)[0].lower() != DIST_NAME:  # pip's copy of boxkube's own wheel stays out
            shutil.move(str(wheel), wheels / "deps" / wheel.name)
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
