"""The few things the image build asks of the host's Docker engine, through docker-py's
low-level API: look an image up, build one, import a root filesystem, remove one."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from boxkube.cluster.errors import ClusterError

log = logging.getLogger(__name__)

# Seconds docker-py waits for a reply; a build step (pip install of every wheel) may be quiet for a while.
TIMEOUT = 900


class Engine:
    """The host's Docker engine, as the image build uses it."""

    def __init__(self, api: Any) -> None:
        self.api = api  # a docker.APIClient

    @classmethod
    def connect(cls, environ: Mapping[str, str] | None = None) -> "Engine":
        """The engine that DOCKER_HOST (or the default socket) names; ClusterError when it does not answer."""
        import docker  # here, not at the top: the CLI's other commands should not pay for importing it

        try:
            client = docker.from_env(environment=dict(environ) if environ is not None else None, timeout=TIMEOUT)
            client.api.ping()
        except docker.errors.DockerException as e:
            raise ClusterError(
                f"cannot reach the Docker engine ({e}); building images needs Docker running on this machine"
            ) from e
        return cls(client.api)

    def inspect(self, image: str) -> dict[str, Any] | None:
        """The engine's description of `image` (name or id), or None when there is none."""
        import docker

        try:
            return self.api.inspect_image(image)
        except docker.errors.ImageNotFound:
            return None

    def image_id(self, image: str) -> str | None:
        found = self.inspect(image)
        return None if found is None else found["Id"]

    def labels(self, image: str) -> dict[str, str] | None:
        """The labels of `image`, or None when there is no such image."""
        found = self.inspect(image)
        if found is None:
            return None
        return dict((found.get("Config") or {}).get("Labels") or {})

    def build(
        self, context: Path, name: str, buildargs: Mapping[str, str] | None = None, labels: Mapping[str, str] | None = None
    ) -> str:
        """`docker build -t NAME CONTEXT`; the new image's id. A failed step raises ClusterError with its output."""
        import docker

        tail: deque[str] = deque(maxlen=20)
        try:
            stream = self.api.build(
                path=str(context), tag=name, buildargs=dict(buildargs or {}), labels=dict(labels or {}),
                rm=True, forcerm=True, pull=False, decode=True,
            )
            for chunk in stream:
                text = chunk.get("stream") or chunk.get("status")
                if text:
                    for line in text.rstrip("\n").splitlines():
                        log.debug("build %s: %s", name, line)
                        tail.append(line)
                if "error" in chunk:
                    raise ClusterError(f"docker build of {name} failed: {chunk['error'].strip()}", details=list(tail))
        except docker.errors.DockerException as e:
            raise ClusterError(f"docker build of {name} failed: {e}", details=list(tail)) from e
        image_id = self.image_id(name)
        if image_id is None:
            raise ClusterError(f"docker build of {name} ended without an image", details=list(tail))
        return image_id

    def import_rootfs(self, chunks: Iterator[bytes], name: str, changes: Sequence[str]) -> str:
        """`docker import` of a root filesystem tar, streamed: the new image's id."""
        import docker

        repository, tag = split_name(name)
        try:
            reply = self.api.import_image(
                src=chunks, repository=repository, tag=tag, changes=list(changes), stream_src=True
            )
        except docker.errors.DockerException as e:
            raise ClusterError(f"docker import of {name} failed: {e}") from e
        log.debug("import %s: %s", name, reply)
        image_id = self.image_id(name)
        if image_id is None:
            raise ClusterError(f"docker import of {name} made no image: {reply}")
        return image_id

    def remove_image(self, image: str) -> None:
        """Remove `image` if nothing uses it (an old build that a new one replaced); never fails."""
        import docker

        try:
            self.api.remove_image(image, noprune=False)
        except docker.errors.APIError as e:
            log.debug("keeping image %s: %s", image, e)

    def prune_dangling(self, label: str) -> None:
        """Remove the untagged images carrying `label` that no container uses (builds that newer ones
        replaced while a container still used them); never fails."""
        import docker

        try:
            pruned = self.api.prune_images(filters={"dangling": True, "label": [label]})
            log.debug("pruned images: %s", pruned)
        except docker.errors.APIError as e:
            log.debug("could not prune old images: %s", e)


def split_name(name: str) -> tuple[str, str]:
    """`boxkube/node:0.1.0` -> ("boxkube/node", "0.1.0"); no tag means `latest` (a registry's :port is no tag)."""
    repository, colon, tag = name.rpartition(":")
    if not colon or "/" in tag:
        return name, "latest"
    return repository, tag
