"""`boxkube build node-image` without Docker: names and tags, the host programs it needs and
what it says when they are missing, build contexts, input digests, and which images a build
makes (against a fake engine)."""

from __future__ import annotations

import fcntl
import io
import os
import threading
import time
import shutil
import struct
import subprocess
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest

import boxkube
from boxkube.cli.context import Context
from boxkube.cli.main import run
from boxkube.cluster.errors import ClusterError
from boxkube.cluster.images import build as build_mod
from boxkube.cluster.images import sources as sources_mod
from boxkube.cluster.images.base import (
    base_inputs_digest,
    find_debootstrap,
    find_static_busybox,
    is_static_elf,
    root_prefix,
)
from boxkube.cluster.images.build import BuildOptions, build_images
from boxkube.cluster.images.engine import split_name
from boxkube.cluster.images.names import (
    BASE_IMAGE,
    BUSYBOX_IMAGE,
    HELLO_IMAGE,
    INPUTS_LABEL,
    PAUSE_IMAGE,
    WORKLOAD_IMAGES,
    node_image,
    version_tag,
)
from boxkube.cluster.images.sources import (
    WORKLOADS,
    Sources,
    assemble_node_context,
    assemble_workload_context,
    boxkube_wheel,
    check_pip,
    check_python,
    find_sources,
    node_inputs_digest,
    package_metadata,
    tree_files,
    wheel_cache,
)
from boxkube.cluster.progress import Progress

REPO = Path(__file__).resolve().parents[2]
NODE_IMAGE = REPO / "boxkube" / "cluster" / "images" / "node-image"  # package data; REPO/node-image links to it


# -- names and tags -------------------------------------------------------------------------------------


def test_node_image_is_tagged_with_the_boxkube_version() -> None:
    assert node_image() == f"boxkube/node:{boxkube.__version__}"
    assert node_image("1.2.3") == "boxkube/node:1.2.3"


@pytest.mark.parametrize(("version", "tag"), [
    ("0.1.0", "0.1.0"),
    ("0.2.0rc1", "0.2.0rc1"),
    ("0.1.0+g1a2b3c.dirty", "0.1.0-g1a2b3c.dirty"),  # a local version: `+` cannot be in a tag
    (" 1.0 ", "1.0"),
])
def test_version_tag(version: str, tag: str) -> None:
    assert version_tag(version) == tag


def test_version_tag_refuses_what_no_tag_can_hold() -> None:
    with pytest.raises(ValueError):
        version_tag("+++")
    assert len(version_tag("1" * 300)) == 128


def test_image_names_are_the_documented_ones() -> None:
    assert (BASE_IMAGE, BUSYBOX_IMAGE, PAUSE_IMAGE, HELLO_IMAGE) == (
        "boxkube/node-base:bookworm", "boxkube/busybox:1", "boxkube/pause:1", "boxkube/hello:1")
    assert WORKLOAD_IMAGES == tuple(w.name for w in WORKLOADS)
    readme = (REPO / "node-image" / "README.md").read_text()
    for name in (BASE_IMAGE, BUSYBOX_IMAGE, PAUSE_IMAGE, HELLO_IMAGE, "boxkube/node:"):
        assert name in readme


@pytest.mark.parametrize(("name", "split"), [
    ("boxkube/node:0.1.0", ("boxkube/node", "0.1.0")),
    ("boxkube/node", ("boxkube/node", "latest")),
    ("localhost:5000/x", ("localhost:5000/x", "latest")),
])
def test_split_name(name: str, split: tuple[str, str]) -> None:
    assert split_name(name) == split


# -- host programs --------------------------------------------------------------------------------------


def test_missing_debootstrap_says_what_it_is_for_and_how_to_get_it() -> None:
    with pytest.raises(ClusterError) as e:
        find_debootstrap(which=lambda name: None)
    message = str(e.value)
    assert message.startswith("debootstrap is not installed")
    assert "Debian's packages" in message and "no registry" in message
    assert "make install" in message and "apt-get install debootstrap" in message
    # the script make install runs, where an installed boxkube has it (package data)
    script = message.rsplit("`sh ", 1)[1].split("`", 1)[0]
    assert Path(script) == NODE_IMAGE / "install-host-packages.sh" and Path(script).is_file()


def test_debootstrap_is_found_in_sbin_when_not_on_path() -> None:
    assert find_debootstrap(which=lambda name: name if name == "/usr/sbin/debootstrap" else None) \
        == "/usr/sbin/debootstrap"


def test_the_base_needs_root_or_sudo() -> None:
    assert root_prefix(euid=0) == []
    assert root_prefix(euid=1000, which=lambda n: "/usr/bin/sudo", sudo_works=lambda: True) == ["sudo", "-n"]
    with pytest.raises(ClusterError, match=r"needs root .*sudo boxkube build node-image"):
        root_prefix(euid=1000, which=lambda n: "/usr/bin/sudo", sudo_works=lambda: False)
    with pytest.raises(ClusterError, match="needs root"):
        root_prefix(euid=1000, which=lambda n: None)


def _elf(path: Path, *segment_types: int) -> Path:
    """A minimal 64-bit little-endian ELF header with program headers of the given types."""
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", header, 32, 64)  # e_phoff
    struct.pack_into("<HH", header, 54, 56, len(segment_types))  # e_phentsize, e_phnum
    phdrs = b"".join(struct.pack("<I", t) + bytes(52) for t in segment_types)
    path.write_bytes(bytes(header) + phdrs)
    return path


def test_static_elf_detection(tmp_path: Path) -> None:
    assert is_static_elf(_elf(tmp_path / "static", 1, 1))  # PT_LOAD only
    assert not is_static_elf(_elf(tmp_path / "dynamic", 6, 3, 1))  # PT_PHDR, PT_INTERP, PT_LOAD
    (tmp_path / "script").write_text("#!/bin/sh\n")
    assert not is_static_elf(tmp_path / "script")
    assert not is_static_elf(Path(os.path.realpath(shutil.which("sh") or "/bin/sh")))  # a real dynamic one


def test_busybox_must_be_debians_static_one(tmp_path: Path) -> None:
    static = _elf(tmp_path / "busybox", 1)
    assert find_static_busybox([tmp_path / "none", static]) == static
    with pytest.raises(ClusterError, match=r"not statically linked.*apt-get install busybox-static"):
        find_static_busybox([_elf(tmp_path / "dynamic", 3, 1)])
    with pytest.raises(ClusterError, match=r"^busybox is not installed.*apt-get install busybox-static.*make install"):
        find_static_busybox([tmp_path / "none"])


def test_host_packages_script_is_valid_sh_and_names_both_packages() -> None:
    script = REPO / "node-image" / "install-host-packages.sh"
    subprocess.run(["sh", "-n", str(script)], check=True)
    assert "debootstrap busybox-static" in script.read_text()
    assert "node-image/install-host-packages.sh" in (REPO / "Makefile").read_text()


def test_wheels_must_be_for_the_nodes_python() -> None:
    check_python((3, 11))
    with pytest.raises(ClusterError, match=r"runs Python 3\.11 .* which is 3\.12"):
        check_python((3, 12))


def test_wheel_cache_location() -> None:
    assert wheel_cache({"XDG_CACHE_HOME": "/c", "HOME": "/h"}) == Path("/c/boxkube/wheels")
    assert wheel_cache({"HOME": "/h"}) == Path("/h/.cache/boxkube/wheels")


# -- the package data, contexts and digests ------------------------------------------------------------


def test_the_sources_are_the_running_package_and_its_node_image_folder() -> None:
    sources = find_sources()
    assert sources.package == REPO / "boxkube"
    assert sources.node_image_dir == NODE_IMAGE
    packages = sources.base_packages()
    for needed in ("python3", "python3-venv", "docker.io", "iptables", "iproute2", "ca-certificates", "tini"):
        assert needed in packages
    assert not any(p.startswith("#") or " " in p for p in packages)


def test_the_top_level_node_image_folder_is_a_relative_symlink_to_the_package_data() -> None:
    link = REPO / "node-image"
    assert link.is_symlink()
    assert os.readlink(link) == "boxkube/cluster/images/node-image"  # relative: right in any clone
    assert link.resolve() == NODE_IMAGE


def _node_image_files() -> set[str]:
    return {str(p.relative_to(REPO / "boxkube")) for p in NODE_IMAGE.rglob("*") if p.is_file()}


def test_the_package_data_holds_every_node_image_file() -> None:
    """pyproject.toml's package-data patterns (setuptools' globs, `**` recursive) take in every file of
    the node-image folder, so a wheel of boxkube carries them."""
    files = _node_image_files()
    for needed in ("Dockerfile", "entrypoint.sh", "base-packages", "install-host-packages.sh", "README.md",
                   *(f"workloads/{image.folder}/Dockerfile" for image in WORKLOADS)):
        assert f"cluster/images/node-image/{needed}" in files
    with open(REPO / "pyproject.toml", "rb") as f:
        patterns = tomllib.load(f)["tool"]["setuptools"]["package-data"]["boxkube"]
    declared = {str(p.relative_to(REPO / "boxkube")) for pattern in patterns
                for p in (REPO / "boxkube").glob(pattern) if p.is_file()}
    assert files <= declared


def test_a_package_without_its_node_image_files_says_so(tmp_path: Path) -> None:
    (tmp_path / "site-packages" / "boxkube").mkdir(parents=True)
    with pytest.raises(ClusterError, match="node image files are missing.*reinstall"):
        find_sources(tmp_path / "site-packages" / "boxkube")


@pytest.fixture
def sources(tmp_path: Path) -> Sources:
    """A small source tree (pyproject.toml beside a boxkube package with its node-image folder), its
    scripts without their executable bits (as a checkout may have)."""
    root = tmp_path / "src"
    package = root / "boxkube"
    shutil.copytree(NODE_IMAGE, package / "cluster" / "images" / "node-image")
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(REPO / name, root / name)
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("__version__ = '0.1.0'\n")
    (package / "sub" / "mod.py").write_text("x = 1\n")
    for path in package.rglob("*"):
        if path.is_file():
            path.chmod(0o644)
    return Sources(package)


def _files(folder: Path) -> dict[str, bool]:
    """Relative path -> executable, of every file under `folder`."""
    return {str(p.relative_to(folder)): bool(p.stat().st_mode & 0o111) for p in folder.rglob("*") if p.is_file()}


def test_node_context_holds_the_dockerfile_and_an_executable_entrypoint(sources: Sources, tmp_path: Path) -> None:
    assemble_node_context(sources, tmp_path / "ctx")
    assert _files(tmp_path / "ctx") == {"Dockerfile": False, "entrypoint.sh": True}


def _pyproject_dependencies() -> list[str]:
    with open(REPO / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["dependencies"]


def test_boxkube_wheel_is_the_package_files_and_its_metadata(sources: Sources, tmp_path: Path) -> None:
    (sources.package / "__pycache__").mkdir()
    (sources.package / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    wheel = boxkube_wheel(sources)
    assert wheel.filename == f"boxkube-{boxkube.__version__}-py3-none-any.whl"
    info = wheel.dist_info
    entries = dict(wheel.entries)
    # no caches, and not the node-image folder (the node builds no images)
    assert set(entries) == {"boxkube/__init__.py", "boxkube/sub/mod.py",
                            f"{info}/METADATA", f"{info}/WHEEL", f"{info}/entry_points.txt"}
    metadata = entries[f"{info}/METADATA"].decode()
    assert f"Name: boxkube\nVersion: {boxkube.__version__}\nRequires-Python: >=3.11\n" in metadata
    requires = [line.split(": ", 1)[1] for line in metadata.splitlines() if line.startswith("Requires-Dist: ")]
    assert requires == _pyproject_dependencies()  # read from pyproject.toml in a source tree; no extras
    assert entries[f"{info}/entry_points.txt"] == b"[console_scripts]\nboxkube = boxkube.cli.main:main\n"

    first = wheel.write(tmp_path / "a")
    assert first.read_bytes() == boxkube_wheel(sources).write(tmp_path / "b").read_bytes()  # the same bytes
    with zipfile.ZipFile(first) as zf:
        assert zf.testzip() is None
        record = zf.read(f"{info}/RECORD").decode().splitlines()
        assert sorted(line.split(",")[0] for line in record) == sorted([*entries, f"{info}/RECORD"])
        assert zf.read("boxkube/sub/mod.py") == b"x = 1\n"


def _dist_info(site: Path, version: str, requires: list[str]) -> None:
    info = site / f"boxkube-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", "Name: boxkube", f"Version: {version}", "Requires-Python: >=3.11",
             *(f"Requires-Dist: {r}" for r in requires)]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    (info / "entry_points.txt").write_text("[console_scripts]\nboxkube = boxkube.cli.main:main\n")


def test_metadata_of_an_installed_package_comes_from_its_dist_info(sources: Sources, tmp_path: Path) -> None:
    """Installed from a wheel there is no pyproject.toml: the dist-info beside the package says it."""
    site = tmp_path / "site-packages"
    shutil.copytree(sources.package, site / "boxkube")
    _dist_info(site, "7.7.7", ["fastapi>=0.110", 'pytest>=8; extra == "test"', "orjson>=3.9"])
    metadata = package_metadata(Sources(site / "boxkube", version="7.7.7"))
    assert metadata.requires == ("fastapi>=0.110", "orjson>=3.9")  # not the test extra's
    assert metadata.requires_python == ">=3.11"
    assert metadata.scripts == (("boxkube", "boxkube.cli.main:main"),)
    assert metadata.where.endswith("boxkube-7.7.7.dist-info")
    # the wheel made of it holds the same package files as the source tree's
    installed = dict(boxkube_wheel(Sources(site / "boxkube", version="7.7.7")).entries)
    assert {n: d for n, d in installed.items() if n.startswith("boxkube/")} \
        == {n: d for n, d in boxkube_wheel(sources).entries if n.startswith("boxkube/")}


def test_a_package_with_no_metadata_anywhere_says_so(sources: Sources, tmp_path: Path) -> None:
    shutil.copytree(sources.package, tmp_path / "site-packages" / "boxkube")
    with pytest.raises(ClusterError, match="has no metadata"):
        package_metadata(Sources(tmp_path / "site-packages" / "boxkube", version="9.9.9"))


def test_the_dependency_wheels_are_built_from_boxkube_wheel(
    sources: Sources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip is given the boxkube wheel made of the package (it reads the requirements from it): offline
    with the host's versions first; its copy of boxkube's wheel stays out of the dependencies."""
    calls: list[list[str]] = []

    def fake_attempt(argv: list[str], what: str) -> ClusterError | None:
        calls.append(list(argv))
        if "--no-index" in argv:
            return ClusterError("offline: no luck")
        out = Path(argv[argv.index("--wheel-dir") + 1])
        out.mkdir(parents=True)
        shutil.copyfile(argv[-1], out / Path(argv[-1]).name)
        (out / "fastapi-1.0-py3-none-any.whl").write_bytes(b"wheel")
        return None

    monkeypatch.setattr(sources_mod, "_attempt", fake_attempt)
    wheels, cache = tmp_path / "ctx" / "wheels", tmp_path / "cache"
    (tmp_path / "work").mkdir()
    sources_mod.build_wheels(sources, tmp_path / "work", wheels, cache)
    own = wheels / "boxkube" / boxkube_wheel(sources).filename
    assert [c[-1] for c in calls] == [str(own)] * 3
    assert "--no-index" in calls[0] and "--constraint" in calls[0]
    assert "--no-index" not in calls[2] and "--constraint" in calls[2]
    assert _files(wheels) == {f"boxkube/{own.name}": False, "deps/fastapi-1.0-py3-none-any.whl": False}
    assert _files(cache / "deps") == {"fastapi-1.0-py3-none-any.whl": False}


def test_pip_is_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    check_pip()
    with pytest.raises(ClusterError, match="needs pip .*ensurepip"):
        check_pip(find_spec=lambda name: None)


def test_workload_contexts(sources: Sources, tmp_path: Path) -> None:
    busybox = _elf(tmp_path / "busybox-bin", 1)
    contexts = {}
    for image in WORKLOADS:
        assemble_workload_context(sources, image, tmp_path / image.folder, busybox if not image.from_busybox else None)
        contexts[image.name] = _files(tmp_path / image.folder)
    assert contexts[BUSYBOX_IMAGE] == {"Dockerfile": False, "busybox": True,
                                       "rootfs/etc/passwd": False, "rootfs/etc/group": False}
    assert contexts[PAUSE_IMAGE] == {"Dockerfile": False, "pause": True}
    assert contexts[HELLO_IMAGE] == {"Dockerfile": False, "hello-server": True, "www/cgi-bin/index.cgi": True}
    with pytest.raises(ValueError):
        assemble_workload_context(sources, WORKLOADS[0], tmp_path / "again", None)


def test_dockerfiles_take_the_parent_images_the_build_passes() -> None:
    node = (NODE_IMAGE / "Dockerfile").read_text()
    assert "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}" in node
    assert "wheels/deps" in node and "wheels/boxkube" in node and "entrypoint.sh" in node
    assert '"/usr/local/bin/entrypoint"' in node
    for image in WORKLOADS:
        text = (NODE_IMAGE / "workloads" / image.folder / "Dockerfile").read_text()
        assert ("ARG BUSYBOX_IMAGE\nFROM ${BUSYBOX_IMAGE}" in text) == image.from_busybox
        assert ("FROM scratch" in text) != image.from_busybox


def test_entrypoint_is_valid_bash() -> None:
    subprocess.run(["bash", "-n", str(REPO / "node-image" / "entrypoint.sh")], check=True)


def test_node_digest_follows_sources_base_and_dockerfile(sources: Sources) -> None:
    digest = node_inputs_digest(sources, "sha256:base1")
    assert node_inputs_digest(sources, "sha256:base1") == digest
    assert node_inputs_digest(sources, "sha256:base2") != digest
    (sources.package / "__pycache__").mkdir()
    (sources.package / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"compiled")
    assert node_inputs_digest(sources, "sha256:base1") == digest  # caches do not count
    # nor the workload images' files (the node's boxkube leaves out the node-image folder)
    (sources.node_image_dir / "workloads" / "pause" / "pause").write_text("#!/bin/sh\nexit 0\n")
    assert node_inputs_digest(sources, "sha256:base1") == digest
    (sources.package / "sub" / "mod.py").write_text("x = 2\n")
    changed = node_inputs_digest(sources, "sha256:base1")
    assert changed != digest
    (sources.node_image_dir / "entrypoint.sh").write_text("#!/bin/bash\nexec \"$@\"\n")
    assert node_inputs_digest(sources, "sha256:base1") != changed
    changed = node_inputs_digest(sources, "sha256:base1")
    pyproject = sources.package.parent / "pyproject.toml"  # boxkube's requirements are in its wheel
    pyproject.write_text(pyproject.read_text().replace('"orjson>=3.9"', '"orjson>=3.10"'))
    assert node_inputs_digest(sources, "sha256:base1") != changed


def test_base_digest_follows_the_package_list_not_its_order() -> None:
    assert base_inputs_digest(["a", "b"]) == base_inputs_digest(["b", "a"])
    assert base_inputs_digest(["a", "b"]) != base_inputs_digest(["a", "b", "c"])


def test_base_packages_file_allows_comments(sources: Sources) -> None:
    (sources.node_image_dir / "base-packages").write_text("# header\npython3  # the node agent\n\ndocker.io\n")
    assert sources.base_packages() == ["python3", "docker.io"]
    (sources.node_image_dir / "base-packages").write_text("# nothing\n")
    with pytest.raises(ClusterError, match="no packages"):
        sources.base_packages()


def test_tree_files_names_a_missing_source(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match="boxkube is missing .*installation is incomplete"):
        list(tree_files(tmp_path, ["boxkube"]))


# -- which images a build makes (fake engine) -----------------------------------------------------------


class FakeEngine:
    """Images by name: {"Id", "Config": {"Labels"}}; builds and imports recorded, ids counted up."""

    def __init__(self) -> None:
        self.images: dict[str, dict[str, Any]] = {}
        self.builds: list[tuple[str, dict[str, str]]] = []
        self.removed: list[str] = []
        self.count = 0

    def _store(self, name: str, labels: dict[str, str]) -> str:
        self.count += 1
        image_id = f"sha256:{self.count:04d}"
        self.images[name] = {"Id": image_id, "Config": {"Labels": labels}}
        return image_id

    def inspect(self, name: str) -> dict[str, Any] | None:
        return self.images.get(name)

    def image_id(self, name: str) -> str | None:
        found = self.images.get(name)
        return None if found is None else found["Id"]

    def build(self, context: Path, name: str, buildargs: dict[str, str] | None = None,
              labels: dict[str, str] | None = None) -> str:
        assert (context / "Dockerfile").is_file()
        self.builds.append((name, dict(buildargs or {})))
        return self._store(name, dict(labels or {}))

    def remove_image(self, image: str) -> None:
        self.removed.append(image)

    def prune_dangling(self, label: str) -> None:
        assert label == INPUTS_LABEL


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeEngine:
    engine = FakeEngine()

    def fake_base(engine_: FakeEngine, name: str, packages: list[str], digest: str, mirror: str) -> str:
        engine_.builds.append((name, {"mirror": mirror}))
        return engine_._store(name, {INPUTS_LABEL: digest})

    def fake_wheels(sources: Sources, workdir: Path, wheels: Path, cache: Path) -> None:
        for folder in ("deps", "boxkube"):
            (wheels / folder).mkdir(parents=True)

    monkeypatch.setattr(build_mod, "build_base", fake_base)
    monkeypatch.setattr(build_mod, "build_wheels", fake_wheels)
    monkeypatch.setattr(build_mod, "find_static_busybox", lambda: _elf(tmp_path / "bb", 1))
    return engine


def _build(fake: FakeEngine, sources: Sources, **options: Any) -> tuple[list[str], str]:
    out = io.StringIO()
    images = build_images(fake, Progress(out, tty=False), BuildOptions(**options), sources, environ={"HOME": "/h"})
    assert images.node == node_image() and images.workloads == WORKLOAD_IMAGES
    return images.built, out.getvalue()


def test_first_build_makes_everything_in_order(fake: FakeEngine, sources: Sources) -> None:
    built, out = _build(fake, sources, mirror="http://mirror.example/debian")
    assert built == [BASE_IMAGE, node_image(), BUSYBOX_IMAGE, PAUSE_IMAGE, HELLO_IMAGE]
    assert fake.builds[0] == (BASE_IMAGE, {"mirror": "http://mirror.example/debian"})
    assert fake.builds[1] == (node_image(), {"BASE_IMAGE": BASE_IMAGE})
    assert fake.builds[3][1] == {"BUSYBOX_IMAGE": BUSYBOX_IMAGE}
    assert "The base image boxkube/node-base:bookworm is missing: building it from Debian's packages" in out
    assert " OK Building base image" in out or " ✓ Building base image" in out
    assert "Building node image boxkube/node:" in out
    assert fake.removed == []


def test_an_up_to_date_build_makes_nothing(fake: FakeEngine, sources: Sources) -> None:
    _build(fake, sources)
    fake.builds.clear()
    built, out = _build(fake, sources)
    assert built == [] and fake.builds == []
    assert "Base image boxkube/node-base:bookworm is up to date" in out
    assert f"Node image {node_image()} is up to date" in out
    assert "Workload images boxkube/busybox:1, boxkube/pause:1, boxkube/hello:1 are up to date" in out


def test_a_source_change_rebuilds_only_the_node_image(fake: FakeEngine, sources: Sources) -> None:
    _build(fake, sources)
    old_node = fake.images[node_image()]["Id"]
    (sources.package / "sub" / "mod.py").write_text("x = 3\n")
    built, _ = _build(fake, sources)
    assert built == [node_image()]
    assert fake.removed == [old_node]  # the image it replaced goes


def test_a_new_package_list_rebuilds_the_base_and_the_node_image(fake: FakeEngine, sources: Sources) -> None:
    _build(fake, sources)
    old_base, old_node = fake.images[BASE_IMAGE]["Id"], fake.images[node_image()]["Id"]
    with open(sources.node_image_dir / "base-packages", "a") as f:
        f.write("curl\n")
    built, out = _build(fake, sources)
    assert built == [BASE_IMAGE, node_image()]
    assert "is out of date: building it" in out
    assert fake.removed == [old_node, old_base]  # the child before its parent


def test_a_new_busybox_image_rebuilds_the_images_made_from_it(fake: FakeEngine, sources: Sources) -> None:
    _build(fake, sources)
    (sources.node_image_dir / "workloads" / "busybox" / "rootfs" / "etc" / "group").write_text("root:x:0:\n")
    assert _build(fake, sources)[0] == [BUSYBOX_IMAGE, PAUSE_IMAGE, HELLO_IMAGE]
    (sources.node_image_dir / "workloads" / "hello" / "hello-server").write_text("#!/bin/sh\n")
    assert _build(fake, sources)[0] == [HELLO_IMAGE]


def test_rebuild_flags(fake: FakeEngine, sources: Sources) -> None:
    _build(fake, sources)
    assert _build(fake, sources, rebuild=True)[0] == [node_image(), *WORKLOAD_IMAGES]
    assert _build(fake, sources, rebuild_base=True)[0] == [BASE_IMAGE, node_image()]


def test_a_second_build_waits_for_the_first(tmp_path: Path) -> None:
    lock = tmp_path / "build.lock"
    out = io.StringIO()
    entered = threading.Event()

    def second() -> None:
        with build_mod._one_build_at_a_time(Progress(out, tty=False), lock):
            entered.set()

    with open(lock, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.3)
        assert not entered.is_set()
        assert "Another boxkube is building the images; waiting for it to finish" in out.getvalue()
    thread.join(5)  # closing the file released the lock
    assert entered.is_set()


# -- the command -----------------------------------------------------------------------------------------


def _cli(environ: dict[str, str], *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), Context.create(environ=environ, stdout=out, stderr=err))
    return code, out.getvalue(), err.getvalue()


def test_command_without_an_engine_says_so(tmp_path: Path) -> None:
    environ = {"HOME": str(tmp_path), "BOXKUBE_HOME": str(tmp_path / "bk"),
               "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock", "PATH": os.environ.get("PATH", "")}
    code, out, err = _cli(environ, "build", "node-image")
    assert code == 1
    assert err.startswith("ERROR: cannot reach the Docker engine")
    assert "building images needs Docker" in err


def test_command_passes_its_flags_and_names_the_images(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[BuildOptions] = []

    def fake_build(options: BuildOptions, environ: Any = None, progress: Any = None) -> build_mod.Images:
        seen.append(options)
        return build_mod.Images(BASE_IMAGE, node_image(), WORKLOAD_IMAGES)

    import boxkube.cli.commands as commands

    monkeypatch.setattr(commands, "build_node_image", fake_build)
    code, out, err = _cli({"HOME": str(tmp_path)}, "build", "node-image", "--rebuild", "--debian-mirror", "http://m/d")
    assert code == 0
    assert seen == [BuildOptions(rebuild=True, rebuild_base=False, mirror="http://m/d")]
    assert f"Node image: {node_image()}" in err
    assert "Workload images: boxkube/busybox:1, boxkube/pause:1, boxkube/hello:1" in err
    code, _, err = _cli({"HOME": str(tmp_path)}, "build", "node-image", "--help")
    assert code == 0
