"""The node image's inputs from an installed boxkube, with no source tree: a wheel of boxkube built
by setuptools as `pip install boxkube` gets it, installed into a fresh virtual environment (its
dependencies from this one: --system-site-packages), and run from there in a folder of its own.
The wheel carries the node-image folder as package data; the node build context, boxkube's own
wheel and the workload contexts are made from the installed files alone, and the node image's
input digest is the same as from the source tree (so a checkout and an installation of the same
code share the image)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from boxkube.cluster.images.sources import find_sources, node_inputs_digest

REPO = Path(__file__).resolve().parents[2]

# Run by the installed boxkube: it prints where it was imported from and what it made, as JSON.
PROBE = r"""
import json, sys
from pathlib import Path
import boxkube
from boxkube.cluster.images.sources import (
    WORKLOADS, assemble_node_context, assemble_workload_context, boxkube_wheel, find_sources,
    node_inputs_digest, package_metadata)

context = Path(sys.argv[1])
busybox = Path(sys.argv[2])
sources = find_sources()
assemble_node_context(sources, context / "node")
wheel = boxkube_wheel(sources).write(context / "node" / "wheels" / "boxkube")
for image in WORKLOADS:
    assemble_workload_context(sources, image, context / image.folder, None if image.from_busybox else busybox)
files = {str(p.relative_to(context)): bool(p.stat().st_mode & 0o111) for p in context.rglob("*") if p.is_file()}
print(json.dumps({
    "package": boxkube.__file__,
    "sys_path": sys.path,
    "metadata": package_metadata(sources).where,
    "files": files,
    "wheel": str(wheel),
    "digest": node_inputs_digest(sources, "sha256:base"),
}))
"""


def _build_wheel(src: Path, out: Path) -> Path:
    """boxkube's wheel as pip builds it (setuptools in an isolated build environment)."""
    argv = [sys.executable, "-m", "pip", "--disable-pip-version-check", "wheel", "--no-deps", "--wheel-dir",
            str(out), str(src)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        output = done.stdout + done.stderr
        if "satisfies the requirement setuptools" in output or "No matching distribution found for setuptools" in output:
            pytest.skip("no package index to get setuptools from, to build a wheel of boxkube")
        raise AssertionError(f"pip wheel failed:\n{output}")
    return next(out.glob("boxkube-*.whl"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a virtual environment with boxkube installed from its wheel (and nothing else of
    its own: its dependencies are this environment's)."""
    tmp = tmp_path_factory.mktemp("installed")
    # A clean copy of what the wheel is built from, so no build/ or egg-info of the checkout goes in.
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(REPO / name, src / name)
    shutil.copytree(REPO / "boxkube", src / "boxkube",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    wheel = _build_wheel(src, tmp / "dist")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    for needed in ("Dockerfile", "entrypoint.sh", "base-packages", "install-host-packages.sh",
                   "workloads/busybox/Dockerfile", "workloads/busybox/rootfs/etc/passwd", "workloads/pause/pause",
                   "workloads/hello/hello-server", "workloads/hello/www/cgi-bin/index.cgi"):
        assert f"boxkube/cluster/images/node-image/{needed}" in names, f"{needed} is not in the wheel"

    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    # pip of this environment (on the venv's path through --system-site-packages) installs into the venv
    subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", "install", "--no-deps", "--no-index",
                    "--quiet", str(wheel)], check=True, timeout=300)
    return python


def _probe(python: Path, tmp_path: Path) -> dict:
    busybox = tmp_path / "busybox-bin"
    busybox.write_bytes(b"\x7fELF static enough for a context")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run([str(python), "-c", PROBE, str(tmp_path / "ctx"), str(busybox)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.timeout(900)
def test_an_installed_boxkube_assembles_the_node_image_inputs_alone(installed: Path, tmp_path: Path) -> None:
    found = _probe(installed, tmp_path)
    # the installed copy ran, with no source tree around it or on its path
    site = installed.parent.parent / "lib"
    package = Path(found["package"]).parent
    assert package.is_relative_to(site), found["package"]
    assert not (package.parent / "pyproject.toml").exists()
    assert not any((tmp_path / p).resolve().is_relative_to(REPO) for p in found["sys_path"]), found["sys_path"]
    assert found["metadata"].endswith(".dist-info") and Path(found["metadata"]).parent == package.parent

    wheel = Path(found["wheel"])
    files = found["files"]
    assert files == {
        "node/Dockerfile": False,
        "node/entrypoint.sh": True,
        f"node/wheels/boxkube/{wheel.name}": False,
        "busybox/Dockerfile": False, "busybox/busybox": True,
        "busybox/rootfs/etc/passwd": False, "busybox/rootfs/etc/group": False,
        "pause/Dockerfile": False, "pause/pause": True,
        "hello/Dockerfile": False, "hello/hello-server": True, "hello/www/cgi-bin/index.cgi": True,
    }
    assert (tmp_path / "ctx" / "node" / "Dockerfile").read_bytes() == (REPO / "node-image" / "Dockerfile").read_bytes()

    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        metadata = zf.read(f"{info}/METADATA").decode()
        entry_points = zf.read(f"{info}/entry_points.txt").decode()
    assert {"boxkube/__init__.py", "boxkube/cli/main.py", "boxkube/apiserver/protobuf_fields.json",
            "boxkube/cluster/binaries.py"} <= names
    assert not any("node-image" in n for n in names)
    assert "Requires-Dist: fastapi>=0.110" in metadata and "pytest-asyncio" not in metadata  # no test extra
    assert "boxkube = boxkube.cli.main:main" in entry_points

    # the same inputs as the source tree's: a checkout and an installation share the node image
    assert found["digest"] == node_inputs_digest(find_sources(), "sha256:base")


@pytest.mark.timeout(900)
def test_boxkube_wheel_made_by_an_installation_installs_and_runs(installed: Path, tmp_path: Path) -> None:
    """What the node image's Dockerfile does with it: pip install --no-deps, then the `boxkube` command."""
    wheel = Path(_probe(installed, tmp_path)["wheel"])
    venv = tmp_path / "node-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "install", "--no-deps",
                    "--no-index", "--quiet", str(wheel)], check=True, timeout=300)
    done = subprocess.run([str(venv / "bin" / "boxkube"), "version"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("boxkube ")
