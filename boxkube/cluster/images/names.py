"""The images boxkube builds for itself, by name, and the labels that say what each was built from.

None of them comes from a registry (none is reachable on the machines boxkube
is made for): `boxkube build node-image` builds them all on the host's Docker
engine, from Debian's packages and from boxkube's own files (installed or a source tree's).
"""

from __future__ import annotations

import re

import boxkube

# The node image (both roles: control plane and worker), one tag per boxkube
# version, so that an upgrade of boxkube builds a new one.
NODE_REPOSITORY = "boxkube/node"
# Its base: Debian bookworm made by debootstrap (the suite is in the tag).
BASE_IMAGE = "boxkube/node-base:bookworm"

# Workload images for tutorials and tests, tagged with their own revision
# (bumped when what they do changes). All are Debian's static busybox.
BUSYBOX_IMAGE = "boxkube/busybox:1"  # sh, sleep, nc, httpd, ... (its wget crashes: use nc)
PAUSE_IMAGE = "boxkube/pause:1"  # holds a pod's namespaces, exits at once on SIGTERM
HELLO_IMAGE = "boxkube/hello:1"  # HTTP on 8080: answers GET / with its pod's name
WORKLOAD_IMAGES = (BUSYBOX_IMAGE, PAUSE_IMAGE, HELLO_IMAGE)

# The label on every image boxkube builds: the digest of what it was built from.
# An image whose label differs from the digest of what it would be built from
# now is out of date. (One label only: on the legacy builder each label given
# to a build is a step of its own, about 10 s on a node image.)
INPUTS_LABEL = "dev.boxkube.inputs"

_NOT_IN_TAG = re.compile(r"[^A-Za-z0-9_.-]")


def version_tag(version: str) -> str:
    """A Docker tag for a boxkube version: `0.1.0` as it is; what a tag cannot hold
    (the `+` of a local version such as `0.1.0+g1a2b`) becomes `-`."""
    tag = _NOT_IN_TAG.sub("-", version.strip()).lstrip(".-")[:128]
    if not tag:
        raise ValueError(f"no Docker tag can be made of the version {version!r}")
    return tag


def node_image(version: str | None = None) -> str:
    """The node image of a boxkube version (by default, this one): `boxkube/node:0.1.0`."""
    return f"{NODE_REPOSITORY}:{version_tag(boxkube.__version__ if version is None else version)}"
