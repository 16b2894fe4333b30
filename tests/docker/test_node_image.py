"""The node image for real: `build_node_image` on the host's engine (reusing what is up to date;
a first build makes the Debian base with debootstrap, a few minutes), then a node container
started with the capability set of the docker-in-docker notes runs its entrypoint, its inner
engine answers, and the workload images loaded into it run there."""

from __future__ import annotations

import io
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

from boxkube.cluster.errors import ClusterError
from boxkube.cluster.images import (
    BUSYBOX_IMAGE,
    HELLO_IMAGE,
    PAUSE_IMAGE,
    WORKLOAD_IMAGES,
    BuildOptions,
    build_node_image,
    node_image,
)
from boxkube.cluster.images.engine import Engine
from boxkube.cluster.images.names import INPUTS_LABEL
from boxkube.cluster.progress import Progress

pytestmark = pytest.mark.docker

TEST_LABEL = "dev.boxkube.test"
# Where --privileged is refused (as on this workplace's machines); works where it is not refused too.
NODE_SECURITY = [
    "--cap-add=ALL", "--cap-drop=SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--security-opt", "systempaths=unconfined", "--device-cgroup-rule=a *:* rwm",
    "--cgroupns=private", "--tmpfs", "/run", "--tmpfs", "/tmp",
]


def docker(*args: str, input: bytes | None = None, check: bool = True, timeout: float = 120) -> str:
    done = subprocess.run(["docker", *args], input=input, capture_output=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({done.returncode}):\n"
                             f"{done.stdout.decode(errors='replace')}\n{done.stderr.decode(errors='replace')}")
    return done.stdout.decode(errors="replace")


def node_logs(name: str) -> str:
    shown = subprocess.run(["docker", "logs", name], capture_output=True, text=True, timeout=60)
    return shown.stdout + shown.stderr  # the entrypoint writes to the container's stderr


@pytest.fixture(scope="module")
def images():
    if shutil.which("docker") is None:
        pytest.skip("no docker command")
    try:
        Engine.connect()
    except ClusterError as e:
        pytest.skip(str(e))
    out = io.StringIO()
    started = time.monotonic()
    built = build_node_image(BuildOptions(), progress=Progress(out, tty=False))
    print(f"build_node_image: {time.monotonic() - started:.1f} s\n{out.getvalue()}")
    return built, out.getvalue()


@pytest.fixture(scope="module")
def node(images) -> Iterator[str]:
    name = f"bk-node-image-test-{uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    docker("run", "-d", "--name", name, "--hostname", name, "--label", f"{TEST_LABEL}=node-image",
           *NODE_SECURITY, "-v", "/var/lib/docker", images[0].node)
    try:
        deadline = time.monotonic() + 60
        # ready when the entrypoint says so: the inner engine may answer a moment before that line is written
        while "dockerd is ready" not in node_logs(name) \
                or subprocess.run(["docker", "exec", name, "docker", "version"], capture_output=True, timeout=30).returncode:
            state = docker("inspect", "-f", "{{.State.Running}}", name).strip()
            assert state == "true", f"the node container stopped:\n{node_logs(name)}"
            assert time.monotonic() < deadline, f"no inner engine after 60 s:\n{node_logs(name)}"
            time.sleep(0.1)
        print(f"node started, inner engine answering after {time.monotonic() - started:.1f} s")
        yield name
    finally:
        docker("rm", "-fv", name, check=False)


@pytest.mark.timeout(1800)
def test_build_makes_every_image_and_then_nothing(images) -> None:
    built, out = images
    assert built.node == node_image()
    assert built.workloads == WORKLOAD_IMAGES
    engine = Engine.connect()
    for name in (built.base, built.node, *built.workloads):
        labels = engine.labels(name)
        assert labels is not None, f"{name} was not built"
        assert len(labels.get(INPUTS_LABEL, "")) == 64
    again = build_node_image(BuildOptions(), progress=Progress(io.StringIO(), tty=False))
    assert again.built == []


@pytest.mark.timeout(1800)
def test_node_runs_its_entrypoint_and_its_inner_engine_runs_workloads(node: str) -> None:
    logs = node_logs(node)
    assert "dockerd is ready" in logs
    assert "error" not in logs.lower()

    loaded = docker("exec", "-i", node, "docker", "load",
                    input=subprocess.run(["docker", "save", *WORKLOAD_IMAGES], capture_output=True, check=True).stdout)
    for name in WORKLOAD_IMAGES:
        assert f"Loaded image: {name}" in loaded

    assert docker("exec", node, "docker", "run", "--rm", BUSYBOX_IMAGE, "echo", "hello from the inner engine") \
        == "hello from the inner engine\n"

    # the web app answers with its pod's name, over the inner engine's bridge
    docker("exec", node, "docker", "run", "-d", "--name", "web", "-e", "POD_NAME=web-7f9c", HELLO_IMAGE)
    ip = docker("exec", node, "docker", "inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web").strip()
    request = f"for i in $(seq 50); do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc {ip} 8080 && exit 0; sleep 0.1; done"
    answer = docker("exec", node, "docker", "run", "--rm", BUSYBOX_IMAGE, "sh", "-c", request)
    assert answer.startswith("HTTP/1.") and answer.endswith("\r\n\r\nweb-7f9c\n")
    # it logs the request, and stops at once on SIGTERM (a pod's delete need not wait its grace period)
    assert "GET / -> web-7f9c" in subprocess.run(["docker", "exec", node, "docker", "logs", "web"],
                                                  capture_output=True, text=True, timeout=60).stderr
    started = time.monotonic()
    docker("exec", node, "docker", "stop", "-t", "20", "web")
    assert time.monotonic() - started < 5

    # the pause container stops at once on SIGTERM, not after the grace period
    docker("exec", node, "docker", "run", "-d", "--name", "sandbox", PAUSE_IMAGE)
    started = time.monotonic()
    docker("exec", node, "docker", "stop", "-t", "20", "sandbox")
    assert time.monotonic() - started < 5

    # boxkube and etcd in the node
    assert docker("exec", node, "boxkube", "version").startswith("boxkube ")
    assert "etcd Version: 3.5" in docker("exec", node, "etcd", "--version")
