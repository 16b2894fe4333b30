"""The node image's base, made with no registry: a Debian root filesystem from
Debian's packages (debootstrap --variant=minbase), trimmed and imported into the
engine as an image (like `tar -C ROOTFS -c . | docker import - NAME`).

It also finds the other host program the images need: Debian's static busybox,
of which the workload images are made.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Protocol

from boxkube.cluster.errors import ClusterError
from boxkube.cluster.images.names import INPUTS_LABEL
from boxkube.cluster.images.shell import run_logged

log = logging.getLogger(__name__)

DEBIAN_SUITE = "bookworm"
DEBOOTSTRAP_VARIANT = "minbase"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Bump when the way the base is made changes (trimming, image config), so that it is rebuilt.
BASE_REVISION = "1"

# Removed from the root filesystem before it is imported: package caches and lists,
# documentation, and the host's files that debootstrap copied (Docker provides them).
TRIMMED = (
    "var/cache/apt/archives/*.deb",
    "var/cache/apt/*.bin",
    "var/lib/apt/lists/*",
    "usr/share/doc/*",
    "usr/share/man/*",
    "usr/share/info/*",
    "etc/hostname",
    "etc/hosts",
    "etc/resolv.conf",
)

BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Where Debian's busybox-static puts its binary (/bin is /usr/bin on merged-/usr systems).
BUSYBOX_CANDIDATES = (Path("/bin/busybox"), Path("/usr/bin/busybox"))

# The host programs: apt-get, or the script of the node-image folder (package data) that `make install` runs.
HOST_PACKAGES_SCRIPT = Path(__file__).resolve().parent / "node-image" / "install-host-packages.sh"
INSTALL_HINT = ("install it with `sudo apt-get install {}`, or with `sh " + str(HOST_PACKAGES_SCRIPT)
                + "` (which `make install` runs in boxkube's source tree)")


def base_inputs_digest(packages: Sequence[str]) -> str:
    """What the base is made of: suite, variant, package list and the way it is made (not the mirror)."""
    text = "\0".join(["base", BASE_REVISION, DEBIAN_SUITE, DEBOOTSTRAP_VARIANT, *sorted(packages)])
    return hashlib.sha256(text.encode()).hexdigest()


def find_debootstrap(which: Callable[[str], str | None] = shutil.which) -> str:
    """The debootstrap program; ClusterError saying how to get it when it is missing."""
    # As root, the sbin folders may be missing from PATH (e.g. `su` without `-`).
    found = which("debootstrap") or next(
        (str(p) for p in (Path("/usr/sbin/debootstrap"), Path("/sbin/debootstrap")) if which(str(p))), None
    )
    if found is None:
        raise ClusterError(
            "debootstrap is not installed: it builds the node image's base from Debian's packages, "
            "as no registry is reachable; " + INSTALL_HINT.format("debootstrap")
        )
    return found


def root_prefix(
    euid: int | None = None, which: Callable[[str], str | None] = shutil.which, sudo_works: Callable[[], bool] | None = None
) -> list[str]:
    """[] as root, ["sudo", "-n"] where sudo needs no password; else ClusterError: debootstrap needs root."""
    if (os.geteuid() if euid is None else euid) == 0:
        return []
    if which("sudo") and (sudo_works or _sudo_works)():
        return ["sudo", "-n"]
    raise ClusterError(
        "building the node image's base needs root (debootstrap makes device files and runs package scripts "
        "in a chroot): run `sudo boxkube build node-image` once; later builds reuse the base"
    )


def _sudo_works() -> bool:
    try:
        return subprocess.run(["sudo", "-n", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def is_static_elf(path: Path) -> bool:
    """Whether `path` is an ELF executable without a program interpreter (statically linked)."""
    with open(path, "rb") as f:
        header = f.read(64)
        if len(header) < 52 or header[:4] != b"\x7fELF":
            return False
        is64, little = header[4] == 2, header[5] == 1
        end = "<" if little else ">"
        if is64:
            phoff, = struct.unpack_from(end + "Q", header, 32)
            phentsize, phnum = struct.unpack_from(end + "HH", header, 54)
        else:
            phoff, = struct.unpack_from(end + "I", header, 28)
            phentsize, phnum = struct.unpack_from(end + "HH", header, 42)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            entry = f.read(4)
            if len(entry) < 4:
                return False
            p_type, = struct.unpack(end + "I", entry)
            if p_type == 3:  # PT_INTERP: loaded by a dynamic linker
                return False
    return True


def find_static_busybox(candidates: Sequence[Path] = BUSYBOX_CANDIDATES) -> Path:
    """Debian's static busybox, of which the workload images are made (FROM scratch)."""
    for path in candidates:
        if path.is_file():
            if is_static_elf(path):
                return path
            raise ClusterError(
                f"{path} is not statically linked, so it cannot run in an image of its own: "
                + INSTALL_HINT.format("busybox-static")
            )
    raise ClusterError(
        "busybox is not installed: the workload images (pause, busybox, hello) are made of Debian's static "
        "busybox; " + INSTALL_HINT.format("busybox-static")
    )


def _scratch_dir() -> Path:
    """A folder for the root filesystem: on disk (/var/tmp), not a tmpfs /tmp that may be small or nodev."""
    parent = Path("/var/tmp")
    return Path(tempfile.mkdtemp(prefix="boxkube-base-", dir=parent if parent.is_dir() else None)).resolve()


def _chunks(stream: IO[bytes], size: int = 1 << 20) -> Iterator[bytes]:
    while chunk := stream.read(size):
        yield chunk


class Importer(Protocol):
    """What build_base needs of the engine (engine.Engine has it)."""

    def import_rootfs(self, chunks: Iterator[bytes], name: str, changes: Sequence[str]) -> str: ...

    def remove_image(self, image: str) -> None: ...


def build_base(
    engine: Importer,
    name: str,
    packages: Sequence[str],
    digest: str,
    mirror: str = DEFAULT_MIRROR,
) -> str:
    """Make the base image `name` from Debian's packages; its image id."""
    debootstrap = find_debootstrap()
    prefix = root_prefix()
    workdir = _scratch_dir()
    rootfs = workdir / "rootfs"
    try:
        run_logged(
            [*prefix, debootstrap, f"--variant={DEBOOTSTRAP_VARIANT}", f"--include={','.join(packages)}",
             DEBIAN_SUITE, str(rootfs), mirror],
            f"debootstrap {DEBIAN_SUITE} from {mirror}",
        )
        run_logged([*prefix, "sh", "-c", "rm -rf " + " ".join(TRIMMED)], "trimming the root filesystem", cwd=rootfs)
        errors = workdir / "tar.err"
        with open(errors, "wb") as err:
            tar = subprocess.Popen(
                [*prefix, "tar", "--numeric-owner", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE, stderr=err
            )
        assert tar.stdout is not None
        with tar:
            image_id = engine.import_rootfs(
                _chunks(tar.stdout),
                name,
                changes=[f"ENV PATH={BASE_PATH}", 'CMD ["/bin/bash"]', f"LABEL {INPUTS_LABEL}={digest}"],
            )
        if tar.returncode != 0:
            engine.remove_image(image_id)  # made of part of the files: never leave it as the base
            raise ClusterError(
                f"tar of the root filesystem failed (exit code {tar.returncode})",
                details=errors.read_text(errors="replace").splitlines()[-20:],
            )
        return image_id
    finally:
        subprocess.run([*prefix, "rm", "-rf", "--one-file-system", str(workdir)], check=False)
