"""Fixtures for the Docker runtime's tests: real containers on the host's Docker engine.

Every test here is marked `docker` (select with `-m docker`, leave out with
`-m "not docker"`) and is skipped when no engine answers. No registry is
reachable, so the images are built here FROM scratch with Debian's static
busybox (`/bin/busybox` of the busybox-static package), from the folders of
node-image/workloads/ when they exist (the images boxkube ships) and from
inline Dockerfiles otherwise, under test tags of their own.

Node agents run in the test's event loop against the session's API server (as
tests/agent's do), each node with a DockerRuntime of its own name on the host's
engine and its own root folder. Whatever a test's nodes made is removed after
it by label (`dev.boxkube.agent.node=<node>`), whatever the test did.
"""
from __future__ import annotations

import contextlib
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from boxkube.agent.agent import AgentGroup
from boxkube.agent.config import AgentSettings, NodeSettings
from boxkube.agent.node import LEASE_NAMESPACE
from boxkube.agent.runtime.docker import LABEL_CONTAINER_NAME, LABEL_NODE, LABEL_POD_UID, DockerRuntime
from boxkube.client import ApiClient, ApiError
from tests.agent.conftest import FAST, LEASES, NODES, PODS, give_pod_cidrs

docker = pytest.importorskip("docker")

REPO = Path(__file__).resolve().parents[2]
WORKLOADS = REPO / "node-image" / "workloads"
TAG = "agent-docker-tests"
TEST_LABEL = "dev.boxkube.test-image"

_BUSYBOX_DOCKERFILE = """FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", \
     "mkdir -p /sbin /usr/bin /usr/sbin /tmp && chmod 1777 /tmp && /bin/busybox --install -s"]
ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin
CMD ["sh"]
"""
_PAUSE_SCRIPT = "#!/bin/sh\ntrap 'exit 0' TERM INT\nwhile :; do sleep 3600 & wait $!; done\n"
_PAUSE_DOCKERFILE = "ARG BUSYBOX_IMAGE\nFROM ${BUSYBOX_IMAGE}\nCOPY pause /pause\nENTRYPOINT [\"/pause\"]\n"
# An image with both ENTRYPOINT and CMD, whose entrypoint says its arguments on stdout and in the
# termination message: what Kubernetes' command/args did to them shows in the pod's status.
_SAY_SCRIPT = '#!/bin/sh\necho "$*"\necho -n "$*" > /dev/termination-log\n'
_SAY_DOCKERFILE = ("ARG BUSYBOX_IMAGE\nFROM ${BUSYBOX_IMAGE}\nCOPY say /bin/say\n"
                   "ENTRYPOINT [\"/bin/say\", \"entry\"]\nCMD [\"cmd\"]\n")


TEST_NODE_PREFIX = "dock-"      # the in-process test nodes: dock-<random>-<n>

def pytest_configure(config):
    config.addinivalue_line("markers", "docker: needs a Docker engine (real containers); skipped without one")


@dataclass(frozen=True)
class Images:
    busybox: str
    pause: str
    say: str


@pytest.fixture(scope="session")
def docker_client():
    try:
        client = docker.from_env()
        client.ping()
    except Exception as e:      # no engine, no permission, no socket
        pytest.skip(f"no Docker engine answers: {e}")
    yield client
    # Whatever a test's agents left behind (a test stopped midway, a removal that raced the engine):
    # every container of the in-process test nodes goes at the end of the session.
    for container in client.containers.list(all=True, filters={"label": LABEL_NODE}):
        if container.labels.get(LABEL_NODE, "").startswith(TEST_NODE_PREFIX):
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                container.remove(force=True)
    client.close()


def _build(client, context: Path, tag: str, **buildargs: str) -> str:
    client.images.build(path=str(context), tag=tag, rm=True, buildargs=buildargs or None,
                        labels={TEST_LABEL: "1"})
    return tag


@pytest.fixture(scope="session")
def images(docker_client, tmp_path_factory) -> Images:
    busybox_bin = shutil.which("busybox") or "/bin/busybox"
    if not Path(busybox_bin).exists():
        pytest.skip("no static busybox to build test images from: apt-get install -y busybox-static")
    root = tmp_path_factory.mktemp("images")

    def context(name: str, folder: str, files: dict[str, tuple[str, int]]) -> Path:
        path = root / name
        if (WORKLOADS / folder / "Dockerfile").exists():
            shutil.copytree(WORKLOADS / folder, path)
        else:
            path.mkdir()
            for file, (text, mode) in files.items():
                (path / file).write_text(text)
                (path / file).chmod(mode)
        return path

    bb = context("busybox", "busybox", {"Dockerfile": (_BUSYBOX_DOCKERFILE, 0o644)})
    shutil.copyfile(busybox_bin, bb / "busybox")
    (bb / "busybox").chmod(0o755)
    busybox = _build(docker_client, bb, f"boxkube-test/busybox:{TAG}")
    pause = _build(docker_client, context("pause", "pause", {"Dockerfile": (_PAUSE_DOCKERFILE, 0o644),
                                                             "pause": (_PAUSE_SCRIPT, 0o755)}),
                   f"boxkube-test/pause:{TAG}", BUSYBOX_IMAGE=busybox)
    say_dir = root / "say"
    say_dir.mkdir()
    (say_dir / "Dockerfile").write_text(_SAY_DOCKERFILE)
    (say_dir / "say").write_text(_SAY_SCRIPT)
    (say_dir / "say").chmod(0o755)
    say = _build(docker_client, say_dir, f"boxkube-test/say:{TAG}", BUSYBOX_IMAGE=busybox)
    return Images(busybox=busybox, pause=pause, say=say)


@pytest.fixture
async def ns(ns, client):
    """The shared fresh namespace, its pods force-deleted before it goes (no agent is left to finish them)."""
    yield ns
    with contextlib.suppress(ApiError):
        await client.delete_collection(PODS, ns, grace_period_seconds=0)


class DockerAgents:
    """Node agents with the Docker runtime on the host's engine; everything they made is removed at the end."""

    def __init__(self, client: ApiClient, docker_client, images: Images, root: Path):
        self.client, self.docker, self.images, self.root = client, docker_client, images, root
        self.groups: list[AgentGroup] = []
        self.names: set[str] = set()
        self.runtimes: list[DockerRuntime] = []

    def node_names(self, count: int = 1) -> list[str]:
        prefix = f"{TEST_NODE_PREFIX}{uuid.uuid4().hex[:6]}"
        return [f"{prefix}-{i}" for i in range(count)]

    async def runtime(self, name: str) -> DockerRuntime:
        """A new runtime object for node `name` (a restarted agent process makes a new one too)."""
        runtime = DockerRuntime(name, root_dir=str(self.root / name), pause_image=self.images.pause)
        await runtime.start()
        self.runtimes.append(runtime)
        return runtime

    async def start(self, names: list[str], settings: AgentSettings = FAST) -> AgentGroup:
        self.names.update(names)
        runtimes = {n: await self.runtime(n) for n in names}
        nodes = [NodeSettings(name=n, internal_ip=f"172.19.{200 + i}.2") for i, n in enumerate(names)]
        group = AgentGroup(self.client, nodes, lambda node: runtimes[node.name], settings)
        self.groups.append(group)
        await group.start()
        await give_pod_cidrs(self.client, names)
        return group

    async def stop(self, group: AgentGroup) -> None:
        if group in self.groups:
            self.groups.remove(group)
            await group.stop()

    def containers(self, node: str, **labels: str) -> list:
        filters = [f"{LABEL_NODE}={node}", *(f"{k}={v}" for k, v in labels.items())]
        return self.docker.containers.list(all=True, filters={"label": filters})

    def container(self, pod: dict, name: str):
        """The running (else latest) engine container of a pod's container."""
        found = self.containers(pod["spec"]["nodeName"], **{LABEL_POD_UID: pod["metadata"]["uid"],
                                                             LABEL_CONTAINER_NAME: name})
        found.sort(key=lambda c: (c.status == "running", c.attrs.get("Created", "")))
        assert found, f"no container {name} of pod {pod['metadata']['name']}"
        return found[-1]

    def exec(self, pod: dict, name: str, *cmd: str) -> str:
        result = self.container(pod, name).exec_run(list(cmd))
        assert result.exit_code == 0, result.output
        return result.output.decode()

    async def close(self) -> None:
        for group in list(self.groups):
            await self.stop(group)
        for runtime in self.runtimes:
            await runtime.close()
        for name in self.names:
            for c in self.containers(name):
                with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                    c.remove(force=True)
            with contextlib.suppress(ApiError):
                await self.client.delete(NODES, name)
            with contextlib.suppress(ApiError):
                await self.client.delete(LEASES, name, LEASE_NAMESPACE)


@pytest.fixture
async def docker_agents(client, docker_client, images, tmp_path):
    agents = DockerAgents(client, docker_client, images, tmp_path)
    yield agents
    await agents.close()

