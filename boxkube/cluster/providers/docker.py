"""The `docker` provider: a kind-like cluster whose nodes are containers of the boxkube node image.

One Docker network per cluster (`boxkube-NAME`) holds a control-plane
container (`NAME-control-plane`) and N worker containers (`NAME-worker`,
`NAME-worker2`, ... as kind names them):

- the control plane runs etcd, the API server, the scheduler and the
  controller manager. They are started inside it by the `local` provider
  (`boxkube create cluster --provider local --nodes 0`), so a docker cluster's
  control plane is exactly a local one; it listens on 0.0.0.0:6443, published
  on the host's 127.0.0.1 (`networking.apiServerAddress`/`apiServerPort`);
- each worker runs its inner Docker engine (the node image's entrypoint starts
  it) and the node agent with the Docker runtime, which reaches the API server
  at https://NAME-control-plane:6443 (Docker's DNS on the cluster network).

`node add` makes more workers of a running cluster exactly so, from the
image and the config (networking) of its control-plane container, named the
first free of NAME-worker, NAME-worker2, ...; `node remove` cordons and
deletes a worker's Node (boxkube.cluster.providers.nodeapi), then removes its
container and volume.

Everything made is labelled `dev.boxkube.cluster=NAME`, so `delete cluster`
finds every container, volume and network again. Node containers run
`--privileged` where the engine allows it, else with the capability set of
the DinD field notes (some sandboxes refuse --privileged); the choice is made
once per engine by trying.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import os
import tarfile
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import yaml

from boxkube.cluster.config import ClusterConfig, parse_config
from boxkube.cluster.errors import ClusterError, NotSupportedError
from boxkube.cluster.files import write_text_atomic
from boxkube.cluster.kubeconfig import Kubeconfig, build_kubeconfig, dump_kubeconfig
from boxkube.cluster.names import listed_nodes, next_free_names, worker_names, worker_prefix
from boxkube.cluster.pki import certificate_authority_data
from boxkube.cluster.progress import Progress
from boxkube.cluster.providers.base import saved_kubeconfig
from boxkube.cluster.providers.nodeapi import retire_node
from boxkube.cluster.readiness import http_get, ready_node_names
from boxkube.cluster.spec import ClusterSpec, format_seconds
from boxkube.cluster.state import ClusterDir, ClusterState, cluster_dir, cluster_names
from boxkube.cluster.steps import Step, run_steps

log = logging.getLogger(__name__)

LABEL_CLUSTER = "dev.boxkube.cluster"
LABEL_ROLE = "dev.boxkube.role"
CONTROL_PLANE, WORKER = "control-plane", "worker"
API_PORT = 6443                       # the API server's port inside the control-plane container
CONFIG_DIR = "/etc/boxkube"           # files boxkube gives a node container before it starts
ADMIN_KUBECONFIG = f"{CONFIG_DIR}/admin.conf"
NODE_KUBECONFIG = f"{CONFIG_DIR}/kubeconfig"
NODE_CONFIG = f"{CONFIG_DIR}/node.json"
INNER_CLUSTER_CONFIG = f"{CONFIG_DIR}/cluster.yaml"
INNER_HOME = "/var/lib/boxkube"        # BOXKUBE_HOME of the control plane's local cluster
LOAD_DIR = "/var/boxkube-load"         # images on their way into a node's engine
DEFAULT_NODES = 1
MAX_NODES = 20                        # each worker runs an engine and an agent: a laptop holds a handful

NO_DOCKER = ("the docker provider needs a Docker engine, and {why}; "
             "start Docker, or make a cluster without it: boxkube create cluster --provider local")

# The node containers' rights where --privileged is refused (shared/notes/docker-in-docker.md): every
# capability the engine may grant, no seccomp/AppArmor confinement, all devices, and /proc and /sys
# neither masked nor read-only (the CLI's --security-opt systempaths=unconfined: empty path lists).
FALLBACK_SECURITY: dict[str, Any] = {
    "cap_add": ["ALL"],
    "cap_drop": ["SYS_RESOURCE"],
    "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
    "device_cgroup_rules": ["a *:* rwm"],
}
UNMASKED_PATHS = {"MaskedPaths": [], "ReadonlyPaths": []}
_security_by_engine: dict[str, dict[str, Any]] = {}


def node_names(cluster: str, workers: int) -> list[str]:
    """kind's names: NAME-control-plane, then NAME-worker, NAME-worker2, ..."""
    return [f"{cluster}-{CONTROL_PLANE}", *worker_names(cluster, workers)]


def network_name(cluster: str) -> str:
    return f"boxkube-{cluster}"


def volume_name(node: str) -> str:
    """The volume of a node's inner engine (/var/lib/docker)."""
    return f"{node}-var-lib-docker"


def _tar(files: Mapping[str, tuple[str, int]]) -> bytes:
    """A tar of {path: (text, mode)}, for put_archive at /."""
    return _tar_bytes({path: text.encode() for path, (text, _mode) in files.items()},
                      {path: mode for path, (_text, mode) in files.items()})


def _tar_bytes(files: Mapping[str, bytes], modes: Mapping[str, int] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode, info.mtime = len(data), (modes or {}).get(path, 0o644), int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _read_file(container: Any, path: str) -> str | None:
    """A file of a container (running or not), or None if it is not there yet."""
    import docker

    try:
        stream, _stat = container.get_archive(path)
    except docker.errors.NotFound:
        return None
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        member = tar.next()
        extracted = tar.extractfile(member) if member is not None else None
        return extracted.read().decode() if extracted is not None else None


def _last_logs(container: Any, lines: int = 20) -> list[str]:
    try:
        text = container.logs(tail=lines).decode("utf-8", "replace")
    except Exception as e:   # the container may be gone
        return [f"(no logs: {e})"]
    return [f"last lines of docker logs {container.name}:", *(f"  {line}" for line in text.splitlines())]


T = TypeVar("T")


class _NotYet(Exception):
    """What a wait still waits for; `stuck`: the nodes whose logs explain it (default: all waited on)."""

    def __init__(self, reason: str, stuck: list[Any] | None = None):
        super().__init__(reason)
        self.stuck = stuck


def _wait_for(what: str, check: Callable[[], T], nodes: list[Any], deadline: float, interval: float = 0.2) -> T:
    """check() until it returns instead of raising _NotYet. A ClusterError with the logs when one of
    `nodes` stops, or when the deadline passes before `what`."""
    last = _NotYet("no answer yet")
    while True:
        try:
            return check()
        except _NotYet as e:
            last = e
        for node in nodes:
            node.reload()
            if node.status not in ("created", "running"):
                raise ClusterError(f"node {node.name} stopped ({node.status})", _last_logs(node))
        if time.monotonic() > deadline:
            stuck = nodes if last.stuck is None else last.stuck
            raise ClusterError(f"{what} in time ({last}; give more time with --wait)",
                               [line for node in stuck for line in _last_logs(node, 10)])
        time.sleep(interval)


def _engine_version(node: Any) -> str:
    done = node.exec_run(["docker", "version", "--format", "{{.Server.Version}}"])
    if done.exit_code != 0:
        raise _NotYet("its Docker engine does not answer yet")
    return done.output.decode().strip()


def _node_images(node: Any) -> dict[str, str]:
    """{repository:tag: image ID} of a node's engine."""
    listed = node.exec_run(["docker", "images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"])
    if listed.exit_code != 0:
        raise ClusterError(f"could not list the images of node {node.name}: "
                           f"{listed.output.decode(errors='replace').strip()}")
    return dict(line.split(" ", 1) for line in listed.output.decode().splitlines() if " " in line)


def _each(work: Callable[[Any], T], nodes: list[Any]) -> list[T]:
    """work(node) for every node at once (each is mostly waiting on the engine); the first error raised."""
    if len(nodes) < 2:
        return [work(node) for node in nodes]
    with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
        return list(pool.map(work, nodes))


def node_host_config(client: Any, security: Mapping[str, Any], volume: str, network: str | None = None,
                     ports: Mapping[str, tuple[str, int | None]] | None = None) -> dict[str, Any]:
    """How a node container runs: with `security` (see DockerProvider.security), the inner engine's data
    on `volume` (overlay2 cannot sit on overlay), its own cgroup namespace, tmpfs /run and /tmp."""
    host_config = client.api.create_host_config(
        network_mode=network, port_bindings=dict(ports or {}), binds={volume: {"bind": "/var/lib/docker", "mode": "rw"}},
        tmpfs={"/run": "", "/tmp": ""}, cgroupns="private", **security)
    if not security.get("privileged"):
        host_config.update(UNMASKED_PATHS)
    return host_config


class DockerProvider:
    """Clusters whose nodes are Docker containers."""

    name = "docker"

    def __init__(self, home: Path, environ: Mapping[str, str] | None = None, *, stop_timeout: int = 10) -> None:
        self.home = home
        self.environ = dict(os.environ if environ is None else environ)
        self.stop_timeout = stop_timeout
        self._client: Any = None

    # -- the engine ---------------------------------------------------------

    def docker(self) -> Any:
        """The Docker client of the engine DOCKER_HOST names; ClusterError (one sentence) without one."""
        if self._client is None:
            try:
                import docker
            except ImportError as e:  # pragma: no cover - docker is a dependency
                raise ClusterError(NO_DOCKER.format(why=f"its Python SDK is missing ({e})")) from None
            try:
                client = docker.from_env(environment=self.environ, timeout=120)
                client.ping()
            except docker.errors.DockerException:
                where = self.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
                raise ClusterError(NO_DOCKER.format(why=f"none answers at {where}")) from None
            self._client = client
        return self._client

    def security(self, image: str) -> dict[str, Any]:
        """--privileged if the engine grants it, else the fallback rights; tried once per engine."""
        import docker

        client = self.docker()
        engine = client.info().get("ID", "")
        if engine not in _security_by_engine:
            probe = client.containers.create(image, ["true"], entrypoint=[], privileged=True,
                                             labels={LABEL_ROLE: "privilege-probe"})
            try:
                probe.start()
                probe.wait(timeout=60)
                _security_by_engine[engine] = {"privileged": True}
            except docker.errors.APIError as e:
                log.info("the engine refuses --privileged (%s); using the capability fallback", e)
                _security_by_engine[engine] = dict(FALLBACK_SECURITY)
            finally:
                probe.remove(force=True)
        return _security_by_engine[engine]

    # -- Provider interface -------------------------------------------------

    def validate(self, spec: ClusterSpec) -> ClusterSpec:
        config = spec.config or ClusterConfig(apiVersion="boxkube.dev/v1alpha1", kind="Cluster")
        nodes = spec.nodes if spec.nodes is not None else (config.worker_count() or DEFAULT_NODES)
        if nodes > MAX_NODES:
            raise NotSupportedError(f"the docker provider runs at most {MAX_NODES} worker nodes, not {nodes} "
                                    "(the local provider simulates thousands)")
        self.docker()   # no engine: say so before anything is made
        return replace(spec, nodes=nodes, config=config)

    def create(self, spec: ClusterSpec, progress: Progress) -> None:
        from boxkube.cluster.images import BuildOptions, build_node_image

        cdir = cluster_dir(self.home, spec.name)
        state = cdir.load()
        config, workers = spec.config, spec.nodes or 0
        assert config is not None
        # --wait counts from when the nodes start: building the image first may take minutes, once
        deadline = [0.0]
        image: list[str] = []

        names = node_names(spec.name, workers)[1:]

        def ensure_image() -> None:
            image.append(build_node_image(BuildOptions(), environ=self.environ, progress=progress).node)

        def prepare() -> None:
            # Every node starts at once: the control plane boots while the workers' engines start and
            # take the workload images; the workers' agents wait for their kubeconfig (see _join_workers).
            self._prepare(spec, image[0], workers)
            deadline[0] = time.monotonic() + spec.wait
            self._container(node_names(spec.name, 0)[0]).start()
            self._start_workers(names, deadline[0])

        steps = [
            Step("Ensuring node image", ensure_image),
            Step("Preparing nodes", prepare),
            Step("Starting control plane", lambda: self._await_control_plane(cdir, state, spec, deadline[0])),
        ]
        if workers:
            steps += [
                Step(f"Joining {workers} worker{'s' if workers > 1 else ''}",
                     lambda: self._join_workers(state, spec.name, names)),
                Step(f"Waiting up to {format_seconds(spec.wait)} for the nodes to be Ready",
                     lambda: self._wait_for_nodes(state, spec.name, names, deadline[0])),
            ]
        run_steps(steps, progress)

    def delete(self, name: str, progress: Progress) -> None:
        client = self.docker()
        label = f"{LABEL_CLUSTER}={name}"
        containers = client.containers.list(all=True, filters={"label": label})
        if containers:
            with progress.step(f"Deleting {len(containers)} node container{'s' if len(containers) > 1 else ''}"):
                for container in containers:
                    container.remove(force=True, v=True)
        for volume in client.volumes.list(filters={"label": label}):
            volume.remove(force=True)
        for network in client.networks.list(filters={"label": label}):
            with progress.step(f"Deleting network {network.name}"):
                network.remove()
        cdir = cluster_dir(self.home, name)
        if cdir.exists():
            with progress.step(f"Removing {cdir.root}"):
                cdir.remove()

    def list(self) -> list[str]:
        return cluster_names(self.home, self.name)

    def kubeconfig(self, name: str) -> Kubeconfig:
        return saved_kubeconfig(self.home, name)

    def nodes(self, name: str) -> list[str]:
        cluster_dir(self.home, name).load()     # a clear error for a cluster that does not exist
        return sorted(c.name for c in self._cluster_containers(name))

    def stop_node(self, name: str, node: str) -> bool:
        container = self._worker(name, node, "stopped and started")
        container.reload()
        if container.status != "running":
            return False
        container.stop(timeout=0)     # as a machine losing power: no graceful shutdown
        return True

    def start_node(self, name: str, node: str) -> bool:
        container = self._worker(name, node, "stopped and started")
        container.reload()
        if container.status == "running":
            return False
        container.start()
        return True

    def add_nodes(self, name: str, count: int, wait: float, progress: Progress) -> list[str]:
        state = cluster_dir(self.home, name).load()
        containers = self._cluster_containers(name)
        control_plane = next((c for c in containers if c.labels.get(LABEL_ROLE) == CONTROL_PLANE), None)
        text = _read_file(control_plane, INNER_CLUSTER_CONFIG) if control_plane is not None else None
        if control_plane is None or text is None or not state.token:
            raise ClusterError(f'cluster "{name}" has no control plane to join (was its creation interrupted?)')
        # the image the cluster was made from: a node image rebuilt since would run other code than its peers
        image, config = control_plane.attrs["Image"], parse_config(text, INNER_CLUSTER_CONFIG)
        added = next_free_names(worker_prefix(name), [c.name for c in containers], count)
        deadline = time.monotonic() + wait

        def prepare() -> None:
            security = self.security(image)
            for node in added:
                self._create_node(name, image, security, node, WORKER, self._worker_command(config, node))
            self._start_workers(added, deadline)

        try:
            run_steps([
                Step(f"Preparing {listed_nodes(added)}", prepare),
                Step(f"Joining {listed_nodes(added)}", lambda: self._join_workers(state, name, added)),
                Step(f"Waiting up to {format_seconds(wait)} for {listed_nodes(added)} to be Ready",
                     lambda: self._wait_for_nodes(state, name, added, deadline)),
            ], progress)
        except BaseException:
            # as a failed creation: what was made goes (a Node one of them registered too)
            for node in added:
                self._remove_node_container(node)
                with contextlib.suppress(ClusterError):
                    retire_node(cluster_dir(self.home, name), node)
            raise
        return added

    def remove_node(self, name: str, node: str, progress: Progress) -> None:
        self._worker(name, node, "removed")
        with progress.step(f"Cordoning and deleting Node {node}"):
            retire_node(cluster_dir(self.home, name), node)
        with progress.step(f"Deleting node container {node}"):
            self._remove_node_container(node)

    # -- steps --------------------------------------------------------------

    def _labels(self, cluster: str, role: str) -> dict[str, str]:
        return {LABEL_CLUSTER: cluster, LABEL_ROLE: role}

    def _prepare(self, spec: ClusterSpec, image: str, workers: int) -> None:
        """The network, and the node containers created (not started) with their volumes."""
        client = self.docker()
        client.networks.create(network_name(spec.name), driver="bridge", labels=self._labels(spec.name, "network"))
        security = self.security(image)
        assert spec.config is not None
        api_host = spec.config.networking.api_server_address
        api_port = spec.config.networking.api_server_port or None      # None: Docker picks a free one
        worker_configs = self._worker_configs(spec.config, workers)
        for node in node_names(spec.name, workers):
            role = CONTROL_PLANE if node.endswith(f"-{CONTROL_PLANE}") else WORKER
            environment: dict[str, str] = {}
            ports: dict[str, tuple[str, int | None]] = {}
            files: dict[str, tuple[str, int]] = {}
            if role == CONTROL_PLANE:
                # the cluster DNS serves on the usual port there (the kube-dns Service's endpoints say so)
                environment = {"BOXKUBE_DOCKERD": "0", "BOXKUBE_HOME": INNER_HOME, "BOXKUBE_DNS_PORT": "53"}
                ports[f"{API_PORT}/tcp"] = (api_host, api_port)
                command = ["sh", "-c", self._control_plane_script(spec)]
                files[INNER_CLUSTER_CONFIG] = (self._inner_config(spec.config), 0o644)
            else:
                command = self._worker_command(spec.config, node)
                node_config = worker_configs.pop(0)
                if node_config is not None:
                    ports.update({f"{m.container_port}/{m.protocol.lower()}": (m.listen_address, m.host_port or None)
                                  for m in node_config.extra_port_mappings})
                    command += ["--node-config", NODE_CONFIG]
                    own = node_config.model_dump(by_alias=True, exclude={"extra_port_mappings", "count", "role"})
                    files[NODE_CONFIG] = (json.dumps(own), 0o644)
            self._create_node(spec.name, image, security, node, role, command, environment, ports, files)

    def _create_node(self, cluster: str, image: str, security: Mapping[str, Any], node: str, role: str,
                     command: list[str], environment: Mapping[str, str] | None = None,
                     ports: Mapping[str, tuple[str, int | None]] | None = None,
                     files: Mapping[str, tuple[str, int]] | None = None) -> None:
        """One node container on the cluster's network, created (not started) with its volume and `files`."""
        client = self.docker()
        volume = client.volumes.create(volume_name(node), labels=self._labels(cluster, role))
        ports = dict(ports or {})
        host_config = node_host_config(client, security, volume.name, network_name(cluster), ports)
        created = client.api.create_container(
            image, command, name=node, hostname=node, labels=self._labels(cluster, role),
            environment=dict(environment or {}), ports=[tuple(p.split("/")) for p in ports], host_config=host_config)
        if files:
            client.api.put_archive(created["Id"], "/", _tar(files))

    def _worker_command(self, config: ClusterConfig, node: str) -> list[str]:
        return ["python", "-m", "boxkube.agent", "--runtime", "docker", "--node-name", node,
                # it starts with the control plane, and is given its kubeconfig once that answers
                "--kubeconfig", NODE_KUBECONFIG, "--wait-for-kubeconfig", *self._network_flags(config)]

    def _cluster_containers(self, name: str) -> list[Any]:
        return self.docker().containers.list(all=True, filters={"label": f"{LABEL_CLUSTER}={name}"})

    def _remove_node_container(self, node: str) -> None:
        """A node's container and its volume; gone already is fine."""
        import docker

        client = self.docker()
        with contextlib.suppress(docker.errors.NotFound):
            client.containers.get(node).remove(force=True, v=True)
        with contextlib.suppress(docker.errors.NotFound):
            client.volumes.get(volume_name(node)).remove(force=True)

    @staticmethod
    def _network_flags(config: ClusterConfig) -> list[str]:
        """The agent's pod network: the inner engine's pods on a network of the node's podCIDR, routes and
        iptables of the node its own (boxkube.agent.network, .proxy), pods resolving through cluster DNS."""
        from boxkube.dns import cluster_dns_ip

        networking = config.networking
        return ["--node-network", "--cluster-cidr", networking.pod_subnet,
                "--cluster-dns", cluster_dns_ip(networking.service_subnet)]

    @staticmethod
    def _worker_configs(config: ClusterConfig, workers: int) -> list[Any]:
        """Each worker's entry of the config file (labels, taints, port mappings), dealt out in order."""
        entries = [entry for entry in config.workers() for _ in range(entry.count)]
        return (entries + [None] * workers)[:workers]

    @staticmethod
    def _inner_config(config: ClusterConfig) -> str:
        """The control plane's own cluster config: the user's networking, timings and components,
        listening on every address of the container."""
        data = config.model_dump(by_alias=True, exclude={"nodes", "name"})
        data["networking"].update(apiServerAddress="0.0.0.0", apiServerPort=API_PORT)
        return json.dumps(data)     # JSON is YAML

    @staticmethod
    def _control_plane_script(spec: ClusterSpec) -> str:
        create = (f"boxkube create cluster --provider local --nodes 0 --name {spec.name} "
                  f"--config {INNER_CLUSTER_CONFIG} --kubeconfig {ADMIN_KUBECONFIG} --wait {spec.wait:g}")
        # the control plane's processes run detached; the container lives as long as this shell
        return f"{create} && exec sleep infinity"

    def _container(self, name: str) -> Any:
        return self.docker().containers.get(name)

    def _await_control_plane(self, cdir: ClusterDir, state: ClusterState, spec: ClusterSpec,
                             deadline: float) -> None:
        """Until the started control plane's API server answers on the host; its address, token and CA saved."""
        container = self._container(node_names(spec.name, 0)[0])

        def admin_kubeconfig() -> str:     # written by the inner `create cluster` once its API server is ready
            text = _read_file(container, ADMIN_KUBECONFIG)
            if text is None:
                raise _NotYet("the control plane is starting")
            return text

        inner = yaml.safe_load(_wait_for("the control plane was not ready", admin_kubeconfig, [container], deadline))
        token = inner["users"][0]["user"]["token"]
        ca_pem = base64.b64decode(inner["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
        container.reload()
        host_ip, host_port = self._published_api(container)
        ca_file = cdir.pki_dir / "ca.crt"
        cdir.pki_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_text_atomic(ca_file, ca_pem, mode=0o644)
        state.token, state.certificate_authority = token, str(ca_file)
        state.server = f"https://{host_ip}:{host_port}"
        state.ports["apiserver"] = host_port
        cdir.save(state)
        # The published port answers once the engine's proxy is up: wait for it as the user will see it.
        def published_ready() -> None:
            try:
                status, _ = http_get(f"{state.server}/readyz", {"Authorization": f"Bearer {token}"},
                                     timeout=2.0, ca_file=ca_file)
            except OSError as e:
                raise _NotYet(f"{state.server}: {getattr(e, 'reason', e)}") from None
            if status != 200:
                raise _NotYet(f"{state.server}/readyz answered {status}")

        _wait_for(f"the API server did not answer on {state.server}", published_ready, [container], deadline)

    @staticmethod
    def _published_api(container: Any) -> tuple[str, int]:
        bindings = (container.attrs["NetworkSettings"]["Ports"] or {}).get(f"{API_PORT}/tcp") or []
        if not bindings:
            raise ClusterError("the control plane's API port is not published", _last_logs(container))
        host_ip = bindings[0].get("HostIp") or "127.0.0.1"
        return ("127.0.0.1" if host_ip in ("0.0.0.0", "") else host_ip), int(bindings[0]["HostPort"])

    def _start_workers(self, nodes: list[str], deadline: float) -> None:
        """Start the workers `nodes` and give their engines the images every node needs (pause) and the
        tutorials use; their agents wait for the kubeconfig of _join_workers."""
        from boxkube.cluster.images import WORKLOAD_IMAGES

        workers = [self._container(node) for node in nodes]
        for container in workers:
            container.start()

        def engine_answers(node: Any) -> None:      # the entrypoint starts it before the agent
            _wait_for(f"the Docker engine of node {node.name} did not start",
                      lambda: _engine_version(node), [node], deadline, interval=0.1)

        _each(engine_answers, workers)
        self._load(workers, list(WORKLOAD_IMAGES))

    def _join_workers(self, state: ClusterState, cluster: str, nodes: list[str]) -> None:
        """Give the workers `nodes` their kubeconfig for the control plane: their agents start."""
        assert state.token and state.certificate_authority
        ca = certificate_authority_data(Path(state.certificate_authority))
        control_plane = node_names(cluster, 0)[0]
        kubeconfig = dump_kubeconfig(build_kubeconfig(cluster, f"https://{control_plane}:{API_PORT}", state.token, ca))
        for node in nodes:
            # one small file written in one piece: the agent goes on once it is there
            self._container(node).put_archive("/", _tar({NODE_KUBECONFIG: (kubeconfig, 0o600)}))

    def _load(self, nodes: list[Any], images: list[str]) -> list[tuple[str, str]]:
        """Copy host images into the nodes' engines (`docker save | docker load`), skipping a node that
        has the image already (same ID), all nodes at once; the (node, image) pairs copied."""
        import docker

        client = self.docker()
        wanted: dict[str, str] = {}
        for image in images:
            try:
                wanted[image] = client.images.get(image).id
            except docker.errors.ImageNotFound:
                raise ClusterError(f'image "{image}" is not on this machine (see: docker images)') from None
        present = dict(zip(nodes, _each(_node_images, nodes)))
        needing = {node: [i for i in images if present[node].get(i) != wanted[i]] for node in nodes}
        archives = {image: b"".join(client.api.get_image(image))
                    for image in images if any(image in need for need in needing.values())}

        def load(node: Any) -> None:
            files = {f"{LOAD_DIR}/{n}.tar": archives[image] for n, image in enumerate(needing[node])}
            if not files:
                return
            # into the container's own filesystem: the archive API does not see its tmpfs /tmp
            node.put_archive("/", _tar_bytes(files))
            loaded = node.exec_run(["sh", "-c", f"status=0; for f in {' '.join(files)}; do "
                                                f"docker load -q -i $f || status=$?; done; "
                                                f"rm -rf {LOAD_DIR}; exit $status"])
            if loaded.exit_code != 0:
                raise ClusterError(f"could not load {', '.join(needing[node])} into node {node.name}: "
                                   f"{loaded.output.decode(errors='replace').strip()}")

        _each(load, nodes)
        return [(node.name, image) for node in nodes for image in needing[node]]

    def load_images(self, name: str, images: list[str]) -> list[tuple[str, str]]:
        """`boxkube load image`: copy host images into every worker of cluster `name`."""
        nodes = self.docker().containers.list(filters={"label": [f"{LABEL_CLUSTER}={name}", f"{LABEL_ROLE}={WORKER}"]})
        if not nodes:
            raise ClusterError(f'cluster "{name}" has no running worker nodes')
        return self._load(sorted(nodes, key=lambda c: c.name), images)

    def _wait_for_nodes(self, state: ClusterState, name: str, nodes: list[str], deadline: float) -> None:
        """Until the workers `nodes` are Ready; a node of the cluster (the control plane too) stopping fails it."""
        assert state.server and state.token
        containers = self._cluster_containers(name)

        def all_ready() -> None:
            try:
                status, body = http_get(f"{state.server}/api/v1/nodes", {"Authorization": f"Bearer {state.token}"},
                                        ca_file=state.certificate_authority)
                ready = ready_node_names(status, body)
            except (OSError, ValueError) as e:
                raise _NotYet(str(e)) from None
            late = [c for c in containers if c.name in nodes and c.name not in ready]
            if late:
                raise _NotYet(f"{len(nodes) - len(late)} of {len(nodes)} Ready", stuck=late)

        _wait_for("the nodes were not Ready", all_ready, containers, deadline, interval=0.5)

    def _worker(self, name: str, node: str, what: str) -> Any:
        """The container of worker `node` of cluster `name`, which is to be `what` (for the errors)."""
        import docker

        try:
            container = self._container(node)
        except docker.errors.NotFound:
            raise ClusterError(f'no node "{node}" in cluster "{name}"') from None
        labels = container.labels or {}
        if labels.get(LABEL_CLUSTER) != name:
            raise ClusterError(f'no node "{node}" in cluster "{name}"')
        if labels.get(LABEL_ROLE) != WORKER:
            raise ClusterError(f'node "{node}" is the control plane; only workers can be {what}')
        return container
