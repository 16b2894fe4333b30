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
from pathlib import Path
from typing import Any

import pytest

import boxkube
from boxkube.cli.context import Context
from boxkube.cli.main import run
from boxkube.cluster.errors import ClusterError
from boxkube.cluster.images import build as build_mod
from boxkube.cluster.images import sources
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
    Project,
    assemble_node_context,
    assemble_workload_context,
    check_python,
    find_project,
    node_inputs_digest,
    tree_files,
    wheel_cache,
)
from boxkube.cluster.progress import Progress

REPO = Path(__file__).resolve().parents[2]


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
    with pytest.raises(ClusterError, match=r"^busybox is not installed.*make install.*busybox-static"):
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


# -- the source tree, contexts and digests --------------------------------------------------------------


def test_the_project_is_found_beside_the_package() -> None:
    project = find_project()
    assert project.root == REPO
    packages = project.base_packages()
    for needed in ("python3", "python3-venv", "docker.io", "iptables", "iproute2", "ca-certificates", "tini"):
        assert needed in packages
    assert not any(p.startswith("#") or " " in p for p in packages)


def test_no_project_beside_an_installed_package(tmp_path: Path) -> None:
    (tmp_path / "site-packages" / "boxkube").mkdir(parents=True)
    with pytest.raises(ClusterError, match="source tree"):
        find_project(tmp_path / "site-packages" / "boxkube")


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A small copy of the source tree, its scripts without their executable bits (as a checkout may have)."""
    root = tmp_path / "src"
    shutil.copytree(REPO / "node-image", root / "node-image")
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(REPO / name, root / name)
    (root / "boxkube" / "sub").mkdir(parents=True)
    (root / "boxkube" / "__init__.py").write_text("__version__ = '0.1.0'\n")
    (root / "boxkube" / "sub" / "mod.py").write_text("x = 1\n")
    for path in (root / "node-image").rglob("*"):
        if path.is_file():
            path.chmod(0o644)
    return Project(root)


def _files(folder: Path) -> dict[str, bool]:
    """Relative path -> executable, of every file under `folder`."""
    return {str(p.relative_to(folder)): bool(p.stat().st_mode & 0o111) for p in folder.rglob("*") if p.is_file()}


def test_node_context_holds_the_dockerfile_and_an_executable_entrypoint(project: Project, tmp_path: Path) -> None:
    assemble_node_context(project, tmp_path / "ctx")
    assert _files(tmp_path / "ctx") == {"Dockerfile": False, "entrypoint.sh": True}


def test_wheel_sources_leave_out_caches(project: Project, tmp_path: Path) -> None:
    (project.root / "boxkube" / "__pycache__").mkdir()
    (project.root / "boxkube" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (project.root / "boxkube.egg-info").mkdir()
    sources.copy_wheel_sources(project, tmp_path / "copy")
    assert set(_files(tmp_path / "copy")) == {"pyproject.toml", "README.md", "boxkube/__init__.py", "boxkube/sub/mod.py"}


def test_workload_contexts(project: Project, tmp_path: Path) -> None:
    busybox = _elf(tmp_path / "busybox-bin", 1)
    contexts = {}
    for image in WORKLOADS:
        assemble_workload_context(project, image, tmp_path / image.folder, busybox if not image.from_busybox else None)
        contexts[image.name] = _files(tmp_path / image.folder)
    assert contexts[BUSYBOX_IMAGE] == {"Dockerfile": False, "busybox": True,
                                       "rootfs/etc/passwd": False, "rootfs/etc/group": False}
    assert contexts[PAUSE_IMAGE] == {"Dockerfile": False, "pause": True}
    assert contexts[HELLO_IMAGE] == {"Dockerfile": False, "hello-server": True, "www/cgi-bin/index.cgi": True}
    with pytest.raises(ValueError):
        assemble_workload_context(project, WORKLOADS[0], tmp_path / "again", None)


def test_dockerfiles_take_the_parent_images_the_build_passes() -> None:
    node = (REPO / "node-image" / "Dockerfile").read_text()
    assert "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}" in node
    assert "wheels/deps" in node and "wheels/boxkube" in node and "entrypoint.sh" in node
    assert '"/usr/local/bin/entrypoint"' in node
    for image in WORKLOADS:
        text = (REPO / "node-image" / "workloads" / image.folder / "Dockerfile").read_text()
        assert ("ARG BUSYBOX_IMAGE\nFROM ${BUSYBOX_IMAGE}" in text) == image.from_busybox
        assert ("FROM scratch" in text) != image.from_busybox


def test_entrypoint_is_valid_bash() -> None:
    subprocess.run(["bash", "-n", str(REPO / "node-image" / "entrypoint.sh")], check=True)


def test_node_digest_follows_sources_base_and_dockerfile(project: Project) -> None:
    digest = node_inputs_digest(project, "sha256:base1")
    assert node_inputs_digest(project, "sha256:base1") == digest
    assert node_inputs_digest(project, "sha256:base2") != digest
    (project.root / "boxkube" / "__pycache__").mkdir()
    (project.root / "boxkube" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"compiled")
    assert node_inputs_digest(project, "sha256:base1") == digest  # caches do not count
    (project.root / "boxkube" / "sub" / "mod.py").write_text("x = 2\n")
    assert node_inputs_digest(project, "sha256:base1") != digest


def test_base_digest_follows_the_package_list_not_its_order() -> None:
    assert base_inputs_digest(["a", "b"]) == base_inputs_digest(["b", "a"])
    assert base_inputs_digest(["a", "b"]) != base_inputs_digest(["a", "b", "c"])


def test_base_packages_file_allows_comments(project: Project) -> None:
    (project.node_image_dir / "base-packages").write_text("# header\npython3  # the node agent\n\ndocker.io\n")
    assert project.base_packages() == ["python3", "docker.io"]
    (project.node_image_dir / "base-packages").write_text("# nothing\n")
    with pytest.raises(ClusterError, match="no packages"):
        project.base_packages()


def test_tree_files_names_a_missing_source(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match="missing from boxkube's source tree"):
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

    def fake_wheels(project: Project, workdir: Path, wheels: Path, cache: Path) -> None:
        for folder in ("deps", "boxkube"):
            (wheels / folder).mkdir(parents=True)

    monkeypatch.setattr(build_mod, "build_base", fake_base)
    monkeypatch.setattr(build_mod, "build_wheels", fake_wheels)
    monkeypatch.setattr(build_mod, "find_static_busybox", lambda: _elf(tmp_path / "bb", 1))
    return engine


def _build(fake: FakeEngine, project: Project, **options: Any) -> tuple[list[str], str]:
    out = io.StringIO()
    images = build_images(fake, Progress(out, tty=False), BuildOptions(**options), project, environ={"HOME": "/h"})
    assert images.node == node_image() and images.workloads == WORKLOAD_IMAGES
    return images.built, out.getvalue()


def test_first_build_makes_everything_in_order(fake: FakeEngine, project: Project) -> None:
    built, out = _build(fake, project, mirror="http://mirror.example/debian")
    assert built == [BASE_IMAGE, node_image(), BUSYBOX_IMAGE, PAUSE_IMAGE, HELLO_IMAGE]
    assert fake.builds[0] == (BASE_IMAGE, {"mirror": "http://mirror.example/debian"})
    assert fake.builds[1] == (node_image(), {"BASE_IMAGE": BASE_IMAGE})
    assert fake.builds[3][1] == {"BUSYBOX_IMAGE": BUSYBOX_IMAGE}
    assert "The base image boxkube/node-base:bookworm is missing: building it from Debian's packages" in out
    assert " OK Building base image" in out or " ✓ Building base image" in out
    assert "Building node image boxkube/node:" in out
    assert fake.removed == []


def test_an_up_to_date_build_makes_nothing(fake: FakeEngine, project: Project) -> None:
    _build(fake, project)
    fake.builds.clear()
    built, out = _build(fake, project)
    assert built == [] and fake.builds == []
    assert "Base image boxkube/node-base:bookworm is up to date" in out
    assert f"Node image {node_image()} is up to date" in out
    assert "Workload images boxkube/busybox:1, boxkube/pause:1, boxkube/hello:1 are up to date" in out


def test_a_source_change_rebuilds_only_the_node_image(fake: FakeEngine, project: Project) -> None:
    _build(fake, project)
    old_node = fake.images[node_image()]["Id"]
    (project.root / "boxkube" / "sub" / "mod.py").write_text("x = 3\n")
    built, _ = _build(fake, project)
    assert built == [node_image()]
    assert fake.removed == [old_node]  # the image it replaced goes


def test_a_new_package_list_rebuilds_the_base_and_the_node_image(fake: FakeEngine, project: Project) -> None:
    _build(fake, project)
    old_base, old_node = fake.images[BASE_IMAGE]["Id"], fake.images[node_image()]["Id"]
    with open(project.node_image_dir / "base-packages", "a") as f:
        f.write("curl\n")
    built, out = _build(fake, project)
    assert built == [BASE_IMAGE, node_image()]
    assert "is out of date: building it" in out
    assert fake.removed == [old_node, old_base]  # the child before its parent


def test_a_new_busybox_image_rebuilds_the_images_made_from_it(fake: FakeEngine, project: Project) -> None:
    _build(fake, project)
    (project.node_image_dir / "workloads" / "busybox" / "rootfs" / "etc" / "group").write_text("root:x:0:\n")
    assert _build(fake, project)[0] == [BUSYBOX_IMAGE, PAUSE_IMAGE, HELLO_IMAGE]
    (project.node_image_dir / "workloads" / "hello" / "hello-server").write_text("#!/bin/sh\n")
    assert _build(fake, project)[0] == [HELLO_IMAGE]


def test_rebuild_flags(fake: FakeEngine, project: Project) -> None:
    _build(fake, project)
    assert _build(fake, project, rebuild=True)[0] == [node_image(), *WORKLOAD_IMAGES]
    assert _build(fake, project, rebuild_base=True)[0] == [BASE_IMAGE, node_image()]


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
