"""The Docker runtime: a pod's containers run as containers of a Docker engine (inside a node: its inner engine).

Shaped after upstream's dockershim (the kubelet's Docker runtime until 1.24):

- the sandbox is a *pause* container (`pause_image`, by default boxkube's own,
  built with no registry) that holds the pod's network namespace and a
  shareable IPC namespace. In a boxkube node the pod's network is the node's
  own (`pod_bridge`, boxkube.agent.podnet: the pause starts with the engine's
  networking off, then a veth pair joins it to the node's bridge with an
  address of the podCIDR); without a bridge, the pod IP is the one the engine
  gives it on `network` (default: the engine's bridge). A hostNetwork pod's
  pause uses the host's network (and hostIPC/hostPID pods the host's IPC/PID
  namespaces);
- each pod has the kubelet's managed /etc/hosts (its own name, its
  hostAliases) and, with cluster DNS or its own network, the resolv.conf the
  kubelet derives from dnsPolicy, both files of its folder under `root_dir`
  bind-mounted into every app container;
- app containers join it: network and IPC `container:<pause>`, PID too with
  shareProcessNamespace, as upstream's modifyContainerNamespaceOptions;
- every container carries the kubelet's labels (io.kubernetes.pod.uid, ...,
  io.kubernetes.docker.type: podsandbox|container) and boxkube's marker
  `dev.boxkube.agent.node=<node>`, and is named as dockershim named them,
  `k8s_<container>_<pod>_<namespace>_<uid>_<attempt>` (`POD` for the pause):
  listing by those labels is how a restarted agent adopts what runs, and how
  two nodes sharing one engine (tests) keep apart;
- the container spec maps onto the engine's: command -> Entrypoint and
  args -> Cmd with Kubernetes' semantics (a command without args drops the
  image's CMD), the resolved env, workingDir, tty/stdin, limits.cpu ->
  NanoCpus, limits.memory -> Memory (and no swap beyond it, where the engine
  can limit swap), requests.cpu -> CpuShares as the kubelet computes them,
  securityContext runAsUser/runAsGroup/supplementalGroups/fsGroup/privileged/
  capabilities/readOnlyRootFilesystem, runAsNonRoot checked against the image's
  user; ports are recorded in a label (informational: the engine refuses
  exposed ports on a container that joins another's network);
- mounts are bind mounts of what the agent prepared under `root_dir`
  (boxkube.agent.volumes), including the terminationMessagePath file, which
  gives an exited container's `message` (or its last log lines with
  FallbackToLogsOnError);
- stop is the engine's stop (the image's STOPSIGNAL, SIGTERM by default, then
  SIGKILL after the grace period); a container's state comes from inspect
  (OOMKilled -> reason OOMKilled, exit code 0 -> Completed, else Error);
  `events()` follows the engine's event stream ("die" -> exited),
  reconnecting from the last event seen.

The engine is reached at `base_url` (a DOCKER_HOST value: unix:// or tcp://,
TLS from DOCKER_TLS_VERIFY/DOCKER_CERT_PATH), by default $DOCKER_HOST or the
local socket. The agent writes volume files that the engine bind-mounts, so
both must see the same filesystem: true for a node's inner engine and for
tests on the host's engine, not for a remote engine.

Why aiohttp over the engine's socket rather than the `docker` SDK: the SDK is
synchronous, so each call would hold a thread of an executor for its whole
length, and two of this runtime's calls are long by nature — a stop lasts up to
the pod's grace period (30 s by default; a node deleting 100 pods holds 100
threads), and the event stream never ends. As coroutines they cost nothing
while they wait and are cancelled like everything else of the agent (which
already speaks HTTP with aiohttp to the API server). The SDK still parses the
engine address and TLS settings (docker.utils), so DOCKER_HOST means what it
means to the docker CLI.
"""
from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import math
import os
import ssl
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import docker.utils

from boxkube.agent import podnet
from boxkube.agent.network import DEFAULT_CLUSTER_DOMAIN, CommandFailed, pod_dns, read_resolv_conf
from boxkube.agent.volumes import pod_dir
from boxkube.agent.runtime.base import (ContainerConfig, ContainerInfo, ExecSession, Runtime, RuntimeEvent,
                                        RuntimeFailure, Sandbox)
from boxkube.api.quantity import QuantityError, parse_quantity

try:        # the name boxkube builds its pause image under (boxkube build node-image)
    from boxkube.cluster.images.names import PAUSE_IMAGE as DEFAULT_PAUSE_IMAGE
except ImportError:     # pragma: no cover - until the image builder lands
    DEFAULT_PAUSE_IMAGE = "boxkube/pause:1"

log = logging.getLogger(__name__)

Obj = dict[str, Any]

DEFAULT_ROOT_DIR = "/var/lib/boxkube"

# The kubelet's labels (dockershim's), and boxkube's own.
LABEL_POD_NAME = "io.kubernetes.pod.name"
LABEL_POD_NAMESPACE = "io.kubernetes.pod.namespace"
LABEL_POD_UID = "io.kubernetes.pod.uid"
LABEL_CONTAINER_NAME = "io.kubernetes.container.name"
LABEL_TYPE = "io.kubernetes.docker.type"                 # "podsandbox" | "container"
LABEL_SANDBOX_ID = "io.kubernetes.sandbox.id"
LABEL_ATTEMPT = "io.kubernetes.container.attempt"
LABEL_PORTS = "io.kubernetes.container.ports"
LABEL_TERMINATION_POLICY = "io.kubernetes.container.terminationMessagePolicy"
LABEL_NODE = "dev.boxkube.agent.node"                    # the runtime marker: which node's agent made it
LABEL_CREATED = "dev.boxkube.created-at"                 # epoch seconds, finer than the engine's list shows
LABEL_TERMINATION_FILE = "dev.boxkube.termination-message-file"
TYPE_SANDBOX, TYPE_CONTAINER = "podsandbox", "container"
POD_HOSTS_FILE, POD_RESOLV_FILE = "etc-hosts", "resolv.conf"       # in the pod's folder, as the kubelet's
LABEL_POD_IP = "dev.boxkube.pod-ip"                      # a sandbox's address on the node's pod bridge

# Upstream's limits on what a termination message shows (kubecontainer.MaxContainerTerminationMessage*).
_MESSAGE_MAX = 4096
_LOG_MESSAGE_MAX, _LOG_MESSAGE_LINES = 2048, 80
# The kubelet's CPU shares: 1024 per CPU requested, at least 2 (MilliCPUToShares).
_SHARES_PER_CPU, _MIN_SHARES, _MAX_SHARES = 1024, 2, 262144
_MIN_NANO_CPUS = 10_000_000            # the engine refuses less than 0.01 CPU
_ZERO_TIME = "0001-01-01T00:00:00Z"
_EVENTS_RETRY, _EVENTS_RETRY_MAX = 0.5, 10.0


class EngineError(RuntimeFailure):
    """The engine answered with an error status."""

    def __init__(self, status: int, message: str, reason: str = "RuntimeError"):
        super().__init__(reason, message)
        self.status = status


class EngineUnreachable(ConnectionError):
    """The engine did not answer (an OSError: the pod worker retries it)."""


# -- the engine's HTTP API --------------------------------------------------------------------------------


class Engine:
    """A small asyncio client of the Docker engine API."""

    def __init__(self, base_url: str | None = None, timeout: float = 60.0):
        env = docker.utils.kwargs_from_env()
        tls = env.get("tls")
        url = docker.utils.parse_host(base_url or env.get("base_url"), False, tls=bool(tls))
        self.address = url
        self.timeout = timeout
        self._ssl: ssl.SSLContext | bool = False
        if url.startswith("http+unix://"):
            self._socket: str | None = url[len("http+unix://"):]
            self._base = "http://docker"
        elif url.startswith(("http://", "https://")):
            self._socket = None
            self._base = url.rstrip("/")
            if url.startswith("https://") and tls:
                self._ssl = _ssl_context(tls)
        else:
            raise ValueError(f"the Docker engine address {url} is not supported: use unix:// or tcp://")
        self._prefix = ""
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> Obj:
        """Connect; the engine's /version (its API version is used from then on)."""
        if self._session is None:
            if self._socket is not None:
                connector: aiohttp.BaseConnector = aiohttp.UnixConnector(path=self._socket, limit=0)
            else:
                connector = aiohttp.TCPConnector(limit=0, ssl=self._ssl)
            self._session = aiohttp.ClientSession(connector=connector)
        version = await self.request("GET", "/version", versioned=False)
        self._prefix = f"/v{version['ApiVersion']}"
        return version

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _url(self, path: str, versioned: bool = True) -> str:
        return self._base + (self._prefix if versioned else "") + path

    async def request(self, method: str, path: str, *, params: dict[str, str] | None = None, body: Any = None,
                      timeout: float | None = None, versioned: bool = True, raw: bool = False) -> Any:
        if self._session is None:
            raise EngineUnreachable(f"not connected to the Docker engine at {self.address}")
        try:
            async with self._session.request(
                    method, self._url(path, versioned), params=params, json=body,
                    timeout=aiohttp.ClientTimeout(total=timeout or self.timeout)) as r:
                data = await r.read()
                if r.status >= 400:
                    raise EngineError(r.status, _error_message(data))
                if raw:
                    return data
                if not data or r.status in (204, 304):
                    return None
                return json.loads(data) if "json" in r.headers.get("Content-Type", "") else data
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            raise EngineUnreachable(f"the Docker engine at {self.address} did not answer "
                                    f"{method} {path}: {e or type(e).__name__}") from None

    @contextlib.asynccontextmanager
    async def _long_get(self, path: str, params: dict[str, str]) -> AsyncIterator[aiohttp.ClientResponse]:
        """A GET whose answer may never end (no read timeout); engine errors raised before the body."""
        if self._session is None:
            raise EngineUnreachable(f"not connected to the Docker engine at {self.address}")
        async with self._session.get(self._url(path), params=params,
                                     timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as r:
            if r.status >= 400:
                raise EngineError(r.status, _error_message(await r.read()))
            yield r

    async def stream(self, path: str, params: dict[str, str]) -> AsyncIterator[Obj]:
        """The JSON objects of a never-ending answer (the event stream), one a line."""
        async with self._long_get(path, params) as r:
            async for line in r.content:
                if line.strip():
                    yield json.loads(line)

    async def stream_bytes(self, path: str, params: dict[str, str]) -> AsyncIterator[bytes]:
        """The raw bytes of a long answer (a followed log) as they come."""
        async with self._long_get(path, params) as r:
            async for chunk in r.content.iter_any():
                yield chunk

    async def hijack(self, path: str, body: Obj) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """POST `path` asking the engine to upgrade the connection to a raw stream (an exec's start with
        its streams attached): the connection, past the engine's answer."""
        if self._socket is not None:
            reader, writer = await asyncio.open_unix_connection(self._socket)
            host = "docker"
        else:
            u = urlsplit(self._base)
            reader, writer = await asyncio.open_connection(u.hostname, u.port or 2375,
                                                           ssl=self._ssl if u.scheme == "https" else None)
            host = u.netloc
        data = json.dumps(body).encode()
        writer.write((f"POST {self._prefix}{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                      f"Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: {len(data)}\r\n\r\n").encode() + data)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status >= 400:
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            text = await reader.read(length) if length else b""
            writer.close()
            raise EngineError(status, _error_message(text))
        return reader, writer


def _ssl_context(tls: Any) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=tls.ca_cert) if tls.verify else ssl.create_default_context()
    if not tls.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if tls.cert:
        ctx.load_cert_chain(*tls.cert)
    return ctx


def _error_message(data: bytes) -> str:
    try:
        return str(json.loads(data).get("message") or data.decode(errors="replace")).strip()
    except (ValueError, AttributeError):
        return data.decode(errors="replace").strip()


def _filters(**labels: str) -> str:
    return json.dumps({"label": [f"{k}={v}" for k, v in labels.items()]})


def _epoch(text: str | None) -> float | None:
    if not text or text.startswith("0001-01-01"):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _demux(data: bytes) -> bytes:
    """The payload of a non-tty container's log stream (8-byte frame headers: stream, 0, 0, 0, size)."""
    out, i = bytearray(), 0
    while i + 8 <= len(data) and data[i] in (0, 1, 2) and data[i + 1:i + 4] == b"\0\0\0":
        size = int.from_bytes(data[i + 4:i + 8], "big")
        out += data[i + 8:i + 8 + size]
        i += 8 + size
    return bytes(out) if i else data


# -- mapping a pod onto the engine ----------------------------------------------------------------------


def _quantity(text: Any) -> Any:
    try:
        return parse_quantity(str(text)).value
    except QuantityError as e:
        raise RuntimeFailure("CreateContainerConfigError", f"{text}: {e}") from None


def cpu_shares(container: Obj) -> int:
    """The kubelet's CPU shares: the CPU request (the limit when only that is set) at 1024 per CPU, at least 2."""
    resources = container.get("resources") or {}
    request = (resources.get("requests") or {}).get("cpu") or (resources.get("limits") or {}).get("cpu")
    milli = math.ceil(_quantity(request) * 1000) if request is not None else 0
    if milli == 0:
        return _MIN_SHARES
    return max(_MIN_SHARES, min(_MAX_SHARES, milli * _SHARES_PER_CPU // 1000))


def resource_limits(container: Obj, swap_limit: bool) -> Obj:
    """HostConfig fields of the container's resources."""
    limits = (container.get("resources") or {}).get("limits") or {}
    out: Obj = {"CpuShares": cpu_shares(container)}
    if limits.get("cpu") is not None:
        out["NanoCpus"] = max(_MIN_NANO_CPUS, math.ceil(_quantity(limits["cpu"]) * 1_000_000_000))
    if limits.get("memory") is not None:
        out["Memory"] = math.ceil(_quantity(limits["memory"]))
        if swap_limit:
            out["MemorySwap"] = out["Memory"]       # no swap beyond the limit: over it is an OOM kill
    return out


def security_context(pod: Obj, container: Obj) -> Obj:
    """The container's effective securityContext: its own fields over the pod's
    (upstream's DetermineEffectiveSecurityContext)."""
    pod_sc = (pod.get("spec") or {}).get("securityContext") or {}
    own = container.get("securityContext") or {}
    out = {k: pod_sc[k] for k in ("runAsUser", "runAsGroup", "runAsNonRoot") if pod_sc.get(k) is not None}
    out.update({k: v for k, v in own.items() if v is not None})
    return out


def hostname(pod: Obj) -> str:
    """The pod's hostname: spec.hostname, else its name, cut to 63 characters (GeneratePodHostNameAndDomain)."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    return (spec.get("hostname") or meta.get("name", ""))[:63].rstrip("-.")


def _format_pod(pod: Obj) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('name', '')}_{meta.get('namespace', '')}({meta.get('uid', '')})"


class DockerRuntime(Runtime):
    name = "docker"

    def __init__(self, node_name: str, *, base_url: str | None = None, root_dir: str = DEFAULT_ROOT_DIR,
                 pause_image: str = DEFAULT_PAUSE_IMAGE, network: str | None = None,
                 pod_bridge: podnet.PodBridge | None = None,
                 cluster_dns: list[str] | None = None, cluster_domain: str = DEFAULT_CLUSTER_DOMAIN):
        self.node_name = node_name
        self.root_dir = root_dir
        self.pause_image = pause_image
        # Pods' network: the node's bridge when given; else the engine's network of this name (None: its bridge).
        self.pod_bridge = pod_bridge
        self.network = network
        self.cluster_dns = list(cluster_dns or [])      # the kubelet's --cluster-dns: pods' nameservers
        self.cluster_domain = cluster_domain
        self.engine = Engine(base_url)
        self._engine_version = ""
        self._swap_limit = False
        self._pod_cidr = ""
        self._started = False
        self._closed = False

    def __repr__(self) -> str:
        return f"<DockerRuntime {self.node_name} at {self.engine.address}>"

    async def start(self) -> None:
        """Connect to the engine (again after close). Safe to call twice: the agent's group calls it too."""
        if self._started:
            return
        self._closed = False
        version = await self.engine.open()
        self._engine_version = str(version.get("Version") or "unknown")
        info = await self.engine.request("GET", "/info")
        self._swap_limit = bool(info.get("SwapLimit"))
        self._started = True
        log.info("node %s: Docker engine %s at %s (API %s)", self.node_name, self._engine_version,
                 self.engine.address, version.get("ApiVersion"))

    async def close(self) -> None:
        self._closed = True
        self._started = False
        await self.engine.close()

    def version(self) -> str:
        return f"docker://{self._engine_version or 'unknown'}"

    async def update_pod_cidr(self, cidr: str) -> None:
        if cidr == self._pod_cidr:
            return
        if self.pod_bridge is not None:
            await self._make_pod_bridge(cidr)
            return
        self._pod_cidr = cidr
        # The engine hands out the pod IPs: from its network, which should lie in the podCIDR.
        network = self.network or "bridge"
        try:
            details = await self.engine.request("GET", f"/networks/{quote(network, safe='')}")
            subnets = [c.get("Subnet") for c in (details.get("IPAM") or {}).get("Config") or [] if c.get("Subnet")]
            wanted = ipaddress.ip_network(cidr, strict=False)
            if not any(ipaddress.ip_network(s, strict=False).subnet_of(wanted)      # type: ignore[arg-type]
                       for s in subnets if ipaddress.ip_network(s, strict=False).version == wanted.version):
                log.warning("node %s: the engine's network %s (%s) is not inside the node's podCIDR %s: pod IPs "
                            "come from the engine's network", self.node_name, network, ", ".join(subnets) or "?", cidr)
        except (RuntimeFailure, OSError, ValueError) as e:
            log.warning("node %s: could not read the engine's network %s: %s", self.node_name, network, e)

    async def _make_pod_bridge(self, cidr: str) -> None:
        """The node's bridge on the podCIDR, and the addresses of the sandboxes already running taken; until
        both are done the network is not ready (no sandbox starts), so this tries until it succeeds."""
        assert self.pod_bridge is not None
        delay = _EVENTS_RETRY
        while True:
            try:
                await self.pod_bridge.set_range(cidr)
                for sandbox in await self._list(TYPE_SANDBOX):
                    if sandbox.get("State") == "running":       # a stopped one gave its address back
                        self.pod_bridge.reserve((sandbox.get("Labels") or {}).get(LABEL_POD_IP, ""), sandbox["Id"])
                break
            except (CommandFailed, RuntimeFailure, OSError) as e:
                log.warning("node %s: making the pod bridge on %s: %s; trying again in %.0fs", self.node_name,
                            cidr, e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _EVENTS_RETRY_MAX)
        self._pod_cidr = cidr

    def network_ready(self) -> tuple[bool, str]:
        if not self._started:
            return False, f"the Docker engine at {self.engine.address} is not connected"
        if not self._pod_cidr:
            return False, "the node has no podCIDR yet"
        return True, ""

    # -- sandboxes --------------------------------------------------------------

    def _labels(self, pod: Obj, container: str, kind: str) -> dict[str, str]:
        meta = pod.get("metadata") or {}
        return {LABEL_POD_NAME: meta.get("name", ""), LABEL_POD_NAMESPACE: meta.get("namespace", ""),
                LABEL_POD_UID: meta.get("uid", ""), LABEL_CONTAINER_NAME: container, LABEL_TYPE: kind,
                LABEL_NODE: self.node_name, LABEL_CREATED: f"{time.time():.6f}"}

    def _not_present(self, image: str) -> str:
        return f'image "{image}" is not present on node {self.node_name}; run: boxkube load image {image}'

    async def run_sandbox(self, pod: Obj) -> Sandbox:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        host_network = bool(spec.get("hostNetwork"))
        if not host_network and not self._pod_cidr:
            raise RuntimeFailure("NetworkNotReady", "the node has no podCIDR yet")
        if not await self.image_present(self.pause_image):
            raise RuntimeFailure("CreatePodSandboxError", self._not_present(self.pause_image))
        uid = meta.get("uid", "")
        earlier = await self._list(TYPE_SANDBOX, **{LABEL_POD_UID: uid})
        attempt = 1 + max((int(c["Labels"].get(LABEL_ATTEMPT, "0")) for c in earlier), default=-1)
        labels = {**self._labels(pod, "POD", TYPE_SANDBOX), LABEL_ATTEMPT: str(attempt)}
        bridge = None if host_network else self.pod_bridge
        host_config: Obj = {
            "NetworkMode": "host" if host_network else "none" if bridge else (self.network or "bridge"),
            "IpcMode": "host" if spec.get("hostIPC") else "shareable",
            "RestartPolicy": {"Name": "no"},
        }
        if spec.get("hostPID"):
            host_config["PidMode"] = "host"
        if host_network:
            host_config["UTSMode"] = "host"
        sysctls = {s["name"]: str(s.get("value", "")) for s in
                   ((spec.get("securityContext") or {}).get("sysctls") or []) if s.get("name")}
        if sysctls:
            host_config["Sysctls"] = sysctls
        body: Obj = {"Image": self.pause_image, "Labels": labels, "HostConfig": host_config}
        if not host_network:
            body["Hostname"] = hostname(pod)
        if bridge is not None:
            try:
                labels[LABEL_POD_IP] = address = bridge.allocate(uid)
            except podnet.NoAddressLeft as e:
                raise RuntimeFailure("CreatePodSandboxError", str(e)) from None
            body["NetworkDisabled"] = True      # a network namespace of its own, that the bridge joins
        name = f"k8s_POD_{meta.get('name')}_{meta.get('namespace')}_{uid}_{attempt}"
        created = ""
        try:
            created = await self._create(name, body, "CreatePodSandboxError")
            if bridge is not None:
                bridge.rename(address, created)
            await self.engine.request("POST", f"/containers/{created}/start")
            details = await self.engine.request("GET", f"/containers/{created}/json")
            if bridge is not None:
                await bridge.attach(created, int((details.get("State") or {}).get("Pid") or 0), address)
                ip = address
            else:
                ip = "" if host_network else _ip(details.get("NetworkSettings") or {})
            if not host_network:
                self._write_pod_files(pod, ip, bridge is not None)
        except (RuntimeFailure, CommandFailed, OSError) as e:
            if bridge is not None:
                bridge.release(created or uid)
            if not created:
                raise       # the create's own failure, with its reason
            await self._remove(created)
            raise RuntimeFailure("CreatePodSandboxError", f"starting the pause container: {e}") from None
        log.debug("node %s: sandbox %s of %s/%s is up at %s", self.node_name, created[:12], meta.get("namespace"),
                  meta.get("name"), ip)
        return Sandbox(id=created, pod_uid=uid, namespace=meta.get("namespace", ""), name=meta.get("name", ""),
                       ip=ip, created_at=float(labels[LABEL_CREATED]), ready=True)

    def _write_pod_files(self, pod: Obj, ip: str, own_network: bool) -> None:
        """The pod's managed /etc/hosts, and its resolv.conf: the one dnsPolicy asks for, or, on the node's
        own network (where the engine writes none), the node's."""
        folder = pod_dir(self.root_dir, (pod.get("metadata") or {}).get("uid", ""))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / POD_HOSTS_FILE).write_text(podnet.managed_hosts(pod, [ip] if ip else [], hostname(pod),
                                                                  self.cluster_domain))
        dns = pod_dns(pod, self.cluster_dns, self.cluster_domain)
        if dns is None and own_network:
            dns = read_resolv_conf()
        if dns is not None:
            (folder / POD_RESOLV_FILE).write_text(podnet.resolv_conf(*dns))

    def _pod_file_mounts(self, pod: Obj) -> list[Obj]:
        folder = pod_dir(self.root_dir, (pod.get("metadata") or {}).get("uid", ""))
        return [{"Type": "bind", "Source": str(folder / name), "Target": target, "ReadOnly": False}
                for name, target in ((POD_HOSTS_FILE, "/etc/hosts"), (POD_RESOLV_FILE, "/etc/resolv.conf"))
                if not (pod.get("spec") or {}).get("hostNetwork") and (folder / name).exists()]

    async def stop_sandbox(self, sandbox_id: str) -> None:
        # The pause's end takes its network namespace, and so its end of the bridge, with it.
        await self.stop_container(sandbox_id, 0)
        if self.pod_bridge is not None:
            self.pod_bridge.release(sandbox_id)

    async def remove_sandbox(self, sandbox_id: str) -> None:
        for c in await self._list(TYPE_CONTAINER, **{LABEL_SANDBOX_ID: sandbox_id}):
            await self._remove(c["Id"])
        await self._remove(sandbox_id)
        if self.pod_bridge is not None:
            self.pod_bridge.release(sandbox_id)

    async def list_sandboxes(self) -> list[Sandbox]:
        out = []
        for c in await self._list(TYPE_SANDBOX):
            labels = c.get("Labels") or {}
            running = c.get("State") == "running"
            host = (c.get("HostConfig") or {}).get("NetworkMode") == "host"
            out.append(Sandbox(id=c["Id"], pod_uid=labels.get(LABEL_POD_UID, ""),
                               namespace=labels.get(LABEL_POD_NAMESPACE, ""), name=labels.get(LABEL_POD_NAME, ""),
                               ip="" if host or not running else _sandbox_ip(labels, c),
                               created_at=_float(labels.get(LABEL_CREATED), float(c.get("Created") or 0)),
                               ready=running))
        return out

    async def sandbox_status(self, sandbox_id: str) -> Sandbox | None:
        try:
            c = await self.engine.request("GET", f"/containers/{sandbox_id}/json")
        except EngineError as e:
            if e.status == 404:
                return None
            raise
        labels = (c.get("Config") or {}).get("Labels") or {}
        running = bool((c.get("State") or {}).get("Running"))
        host = (c.get("HostConfig") or {}).get("NetworkMode") == "host"
        return Sandbox(id=c["Id"], pod_uid=labels.get(LABEL_POD_UID, ""), namespace=labels.get(LABEL_POD_NAMESPACE, ""),
                       name=labels.get(LABEL_POD_NAME, ""),
                       ip="" if host or not running else _sandbox_ip(labels, c),
                       created_at=_float(labels.get(LABEL_CREATED), 0.0), ready=running)

    # -- containers -------------------------------------------------------------

    async def image_present(self, image: str) -> bool:
        try:
            await self.engine.request("GET", f"/images/{quote(image, safe='/:@')}/json")
            return True
        except EngineError as e:
            if e.status == 404:
                return False
            raise

    async def _image_user(self, image: str) -> str:
        try:
            details = await self.engine.request("GET", f"/images/{quote(image, safe='/:@')}/json")
        except EngineError as e:
            if e.status == 404:
                raise RuntimeFailure("ErrImageNeverPull", self._not_present(image)) from None
            raise
        return str(((details or {}).get("Config") or {}).get("User") or "")

    async def _user(self, pod: Obj, container: Obj, image: str) -> str:
        """The engine's User: runAsUser[:runAsGroup]; runAsNonRoot checked against it (or the image's user)
        with the kubelet's messages (verifyRunAsNonRoot)."""
        sc = security_context(pod, container)
        uid, gid = sc.get("runAsUser"), sc.get("runAsGroup")
        image_user = await self._image_user(image) if uid is None and (gid is not None or sc.get("runAsNonRoot")) \
            else ""
        if sc.get("runAsNonRoot"):
            where = f'(pod: "{_format_pod(pod)}", container: {container.get("name")})'
            if uid is not None:
                if int(uid) == 0:
                    raise RuntimeFailure("CreateContainerConfigError",
                                         f"container's runAsUser breaks non-root policy {where}")
            else:
                user = image_user.split(":", 1)[0]
                if not user or user == "root":
                    raise RuntimeFailure("CreateContainerConfigError",
                                         f"container has runAsNonRoot and image will run as root {where}")
                if not user.isdigit():
                    raise RuntimeFailure("CreateContainerConfigError",
                                         f"container has runAsNonRoot and image has non-numeric user ({user}), "
                                         f"cannot verify user is non-root {where}")
                if int(user) == 0:
                    raise RuntimeFailure("CreateContainerConfigError",
                                         f"container has runAsNonRoot and image will run as root {where}")
        if uid is None and gid is None:
            return ""
        user = str(uid) if uid is not None else (image_user.split(":", 1)[0] or "0")
        return f"{user}:{gid}" if gid is not None else user

    async def start_container(self, sandbox: Sandbox, pod: Obj, container: Obj, attempt: int,
                              config: ContainerConfig | None = None) -> ContainerInfo:
        config = config if config is not None else ContainerConfig.literal(container)
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        name, image = container["name"], container.get("image", "")
        labels = {**self._labels(pod, name, TYPE_CONTAINER), LABEL_SANDBOX_ID: sandbox.id,
                  LABEL_ATTEMPT: str(attempt),
                  LABEL_TERMINATION_POLICY: container.get("terminationMessagePolicy") or "File"}
        if container.get("ports"):
            labels[LABEL_PORTS] = json.dumps(container["ports"], separators=(",", ":"))
        if config.termination_message_file:
            labels[LABEL_TERMINATION_FILE] = config.termination_message_file
        sc = container.get("securityContext") or {}
        pod_sc = spec.get("securityContext") or {}
        ns_mode = f"container:{sandbox.id}"
        host_config: Obj = {
            "NetworkMode": ns_mode,
            "IpcMode": "host" if spec.get("hostIPC") else ns_mode,
            "RestartPolicy": {"Name": "no"},
            "Mounts": [*({"Type": "bind", "Source": m.host_path, "Target": m.container_path, "ReadOnly": m.read_only}
                         for m in config.mounts), *self._pod_file_mounts(pod)],
            **resource_limits(container, self._swap_limit),
        }
        if spec.get("hostPID"):
            host_config["PidMode"] = "host"
        elif spec.get("shareProcessNamespace"):
            host_config["PidMode"] = ns_mode
        if spec.get("hostNetwork"):
            host_config["UTSMode"] = "host"
        groups = list(pod_sc.get("supplementalGroups") or [])
        if pod_sc.get("fsGroup") is not None:       # the kubelet adds fsGroup to the supplemental groups
            groups.append(pod_sc["fsGroup"])
        if groups:
            host_config["GroupAdd"] = [str(g) for g in groups]
        if sc.get("privileged"):
            host_config["Privileged"] = True
        caps = sc.get("capabilities") or {}
        if caps.get("add"):
            host_config["CapAdd"] = list(caps["add"])
        if caps.get("drop"):
            host_config["CapDrop"] = list(caps["drop"])
        if sc.get("readOnlyRootFilesystem"):
            host_config["ReadonlyRootfs"] = True
        body: Obj = {
            "Image": image, "Labels": labels, "Env": [f"{k}={v}" for k, v in config.env],
            "WorkingDir": container.get("workingDir") or "",
            "User": await self._user(pod, container, image),
            "Tty": bool(container.get("tty")), "OpenStdin": bool(container.get("stdin")),
            "StdinOnce": bool(container.get("stdinOnce")), "HostConfig": host_config,
        }
        # Kubernetes' command and args: command replaces the ENTRYPOINT and, args or not, drops the image's
        # CMD (the engine keeps CMD only when no Entrypoint is given); args alone replace just the CMD.
        if config.command:
            body["Entrypoint"] = list(config.command)
            body["Cmd"] = list(config.args or [])
        elif config.args:
            body["Cmd"] = list(config.args)
        cname = f"k8s_{name}_{meta.get('name')}_{meta.get('namespace')}_{meta.get('uid')}_{attempt}"
        created = await self._create(cname, body, "CreateContainerError", image=image)
        try:
            await self.engine.request("POST", f"/containers/{created}/start")
        except EngineError as e:
            await self._remove(created)
            raise RuntimeFailure("RunContainerError", str(e)) from None
        log.debug("node %s: started %s (%s)", self.node_name, cname, created[:12])
        info = await self.container_status(created)
        if info is None:
            raise RuntimeFailure("RunContainerError", f"container {created[:12]} vanished as it started")
        return info

    async def _create(self, name: str, body: Obj, reason: str, image: str = "") -> str:
        """Create a container; a leftover of the same name (an instance this runtime lost track of) is
        removed and the create tried again, as dockershim did."""
        for retry in (True, False):
            try:
                created = await self.engine.request("POST", "/containers/create", params={"name": name}, body=body)
                return str(created["Id"])
            except EngineError as e:
                if e.status == 404 and image:
                    raise RuntimeFailure("ErrImageNeverPull", self._not_present(image)) from None
                if e.status == 409 and retry:
                    log.info("node %s: removing the leftover container %s", self.node_name, name)
                    await self._remove(name)
                    continue
                raise RuntimeFailure(reason, str(e)) from None
        raise AssertionError("unreachable")

    async def stop_container(self, container_id: str, grace_period: float) -> None:
        t = max(0, math.ceil(grace_period))
        started = time.monotonic()
        try:
            await self.engine.request("POST", f"/containers/{container_id}/stop", params={"t": str(t)},
                                      timeout=t + self.engine.timeout)
        except EngineError as e:
            if e.status not in (404, 304):
                raise
        log.debug("node %s: stopped %s in %.2fs (grace %ss)", self.node_name, container_id[:12],
                  time.monotonic() - started, t)

    async def remove_container(self, container_id: str) -> None:
        """Remove an old instance, and the file behind its termination message."""
        with contextlib.suppress(RuntimeFailure):
            details = await self.engine.request("GET", f"/containers/{container_id}/json")
            path = ((details.get("Config") or {}).get("Labels") or {}).get(LABEL_TERMINATION_FILE)
            if path and self.root_dir and os.path.realpath(path).startswith(os.path.realpath(self.root_dir) + os.sep):
                with contextlib.suppress(OSError):
                    os.unlink(path)
        await self._remove(container_id)

    async def _remove(self, container: str) -> None:
        try:
            await self.engine.request("DELETE", f"/containers/{quote(container, safe='')}",
                                      params={"force": "1", "v": "1"})
        except EngineError as e:
            if e.status not in (404, 409):      # 409: already being removed
                raise

    async def container_status(self, container_id: str) -> ContainerInfo | None:
        try:
            details = await self.engine.request("GET", f"/containers/{container_id}/json")
        except EngineError as e:
            if e.status == 404:
                return None
            raise
        return await self._info(details)

    async def _info(self, c: Obj) -> ContainerInfo:
        labels = (c.get("Config") or {}).get("Labels") or {}
        state = c.get("State") or {}
        status = state.get("Status", "")
        kind = "running" if status in ("running", "paused", "restarting") else \
            "exited" if status in ("exited", "dead", "removing") else "created"
        info = ContainerInfo(
            id=c["Id"], sandbox_id=labels.get(LABEL_SANDBOX_ID, ""), pod_uid=labels.get(LABEL_POD_UID, ""),
            name=labels.get(LABEL_CONTAINER_NAME, ""), attempt=int(labels.get(LABEL_ATTEMPT) or 0),
            image=(c.get("Config") or {}).get("Image", ""), image_id=c.get("Image", ""),
            state=kind,  # type: ignore[arg-type]
            started_at=_epoch(state.get("StartedAt")), finished_at=_epoch(state.get("FinishedAt")),
            exit_code=int(state.get("ExitCode") or 0))
        if kind == "exited":
            info.reason = "OOMKilled" if state.get("OOMKilled") else "Completed" if info.exit_code == 0 else "Error"
            info.message = await self._termination_message(c, labels, info.exit_code)
        return info

    async def _termination_message(self, c: Obj, labels: dict[str, str], exit_code: int) -> str:
        """What the container wrote to its terminationMessagePath, or with FallbackToLogsOnError and a
        failure, the end of its log (upstream's limits)."""
        message = ""
        path = labels.get(LABEL_TERMINATION_FILE)
        if path:
            with contextlib.suppress(OSError):
                with open(path, "rb") as f:
                    message = f.read(_MESSAGE_MAX).decode(errors="replace")
        if not message and exit_code != 0 and labels.get(LABEL_TERMINATION_POLICY) == "FallbackToLogsOnError":
            with contextlib.suppress(RuntimeFailure, OSError):
                data = await self.engine.request("GET", f"/containers/{c['Id']}/logs", raw=True,
                                                 params={"stdout": "1", "stderr": "1",
                                                         "tail": str(_LOG_MESSAGE_LINES)})
                tty = bool((c.get("Config") or {}).get("Tty"))
                text = (data if tty else _demux(data))[-_LOG_MESSAGE_MAX:]
                message = text.decode(errors="replace")
        return message

    async def list_containers(self) -> list[ContainerInfo]:
        found = await self._list(TYPE_CONTAINER)

        async def one(c: Obj) -> ContainerInfo | None:
            return await self.container_status(c["Id"])
        return [i for i in await asyncio.gather(*(one(c) for c in found)) if i is not None]

    async def _list(self, kind: str, **labels: str) -> list[Obj]:
        return await self.engine.request("GET", "/containers/json", params={
            "all": "1", "filters": _filters(**{LABEL_NODE: self.node_name, LABEL_TYPE: kind, **labels})}) or []

    # -- events -----------------------------------------------------------------

    async def events(self) -> AsyncIterator[RuntimeEvent]:   # type: ignore[override]
        """The engine's "die" events of this node's containers, as they happen. A broken stream is
        opened again from the last event seen (the engine replays what came meanwhile)."""
        since = time.time() - 1.0
        failures = 0
        filters = json.dumps({"type": ["container"], "event": ["die"], "label": [f"{LABEL_NODE}={self.node_name}"]})
        while not self._closed:
            try:
                async for event in self.engine.stream("/events", {"since": f"{since:.9f}", "filters": filters}):
                    failures = 0
                    if event.get("timeNano"):
                        since = max(since, int(event["timeNano"]) / 1e9)
                    actor = event.get("Actor") or {}
                    attributes = actor.get("Attributes") or {}
                    uid = attributes.get(LABEL_POD_UID)
                    if uid and event.get("Action") == "die":
                        yield RuntimeEvent(uid, actor.get("ID") or event.get("id", ""), "exited")
            except (RuntimeFailure, OSError, aiohttp.ClientError, asyncio.TimeoutError, ValueError) as e:
                if self._closed:
                    break
                delay = min(_EVENTS_RETRY * 2 ** failures, _EVENTS_RETRY_MAX)
                failures += 1
                log.warning("node %s: the engine's event stream broke (%s); again in %.1fs", self.node_name,
                            e or type(e).__name__, delay)
                await asyncio.sleep(delay)
                continue
            if not self._closed:        # the engine ended the stream (it restarted?): open it again
                await asyncio.sleep(_EVENTS_RETRY)

    # -- exec and logs (probes, kubectl exec and logs) ------------------------------

    async def _exec_create(self, container_id: str, command: list[str], stdin: bool, tty: bool) -> str:
        body = {"AttachStdin": stdin, "AttachStdout": True, "AttachStderr": not tty, "Tty": tty, "Cmd": command}
        try:
            created = await self.engine.request("POST", f"/containers/{container_id}/exec", body=body)
        except EngineError as e:
            raise RuntimeFailure("ExecError", f"cannot exec in container {container_id[:12]}: {e}") from None
        return str(created["Id"])

    async def exec_sync(self, container_id: str, command: list[str], timeout: float) -> tuple[int, bytes]:
        exec_id = await self._exec_create(container_id, command, False, False)
        data = await asyncio.wait_for(
            self.engine.request("POST", f"/exec/{exec_id}/start", body={"Detach": False, "Tty": False}, raw=True,
                                timeout=timeout + self.engine.timeout), timeout)
        details = await self.engine.request("GET", f"/exec/{exec_id}/json")
        return int(details.get("ExitCode") or 0), _demux(data or b"")

    async def logs(self, container_id: str, *, follow: bool = False, tail: int | None = None,  # type: ignore[override]
                   since: float | None = None, timestamps: bool = False) -> AsyncIterator[bytes]:
        details = await self.engine.request("GET", f"/containers/{container_id}/json")
        tty = bool((details.get("Config") or {}).get("Tty"))
        params = {"stdout": "1", "stderr": "1", "follow": "1" if follow else "0",
                  "timestamps": "1" if timestamps else "0", "tail": "all" if tail is None else str(max(0, tail))}
        if since is not None:
            params["since"] = f"{since:.9f}"
        frames = _Frames()
        async for chunk in self.engine.stream_bytes(f"/containers/{container_id}/logs", params):
            if tty:
                yield chunk
                continue
            out = b"".join(data for _, data in frames.feed(chunk))
            if out:
                yield out

    async def exec(self, container_id: str, command: list[str], *, stdin: bool, tty: bool) -> ExecSession:
        exec_id = await self._exec_create(container_id, command, stdin, tty)
        reader, writer = await self.engine.hijack(f"/exec/{exec_id}/start", {"Detach": False, "Tty": tty})
        return _DockerExec(self.engine, exec_id, reader, writer, tty)

    async def attach(self, container_id: str, *, stdin: bool) -> ExecSession:
        """The running container's own stdio (the engine's attach, for kubectl attach): only what it writes
        from now on; raw when the container has a terminal, else multiplexed as an exec's output."""
        details = await self.engine.request("GET", f"/containers/{container_id}/json")
        tty = bool((details.get("Config") or {}).get("Tty"))
        reader, writer = await self.engine.hijack(
            f"/containers/{container_id}/attach?stream=1&stdin={int(stdin)}&stdout=1&stderr=1", {})
        return _DockerAttach(self.engine, container_id, reader, writer, tty)


class _Frames:
    """Splits the engine's multiplexed stream (8-byte headers: stream, 0, 0, 0, big-endian size) as it comes."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buffer += data
        out = []
        while len(self._buffer) >= 8:
            size = int.from_bytes(self._buffer[4:8], "big")
            if len(self._buffer) < 8 + size:
                break
            out.append((self._buffer[0] or 1, bytes(self._buffer[8:8 + size])))
            del self._buffer[:8 + size]
        return out


class _DockerExec(ExecSession):
    """An exec's streams over the connection the engine hijacked."""

    def __init__(self, engine: Engine, exec_id: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 tty: bool):
        self.engine, self.exec_id, self.reader, self.writer, self.tty = engine, exec_id, reader, writer, tty
        self._frames = _Frames()
        self._pending: list[tuple[int, bytes]] = []

    async def read(self) -> tuple[int, bytes] | None:
        while not self._pending:
            chunk = await self.reader.read(65536)
            if not chunk:
                return None
            if self.tty:
                return 1, chunk
            self._pending = self._frames.feed(chunk)
        return self._pending.pop(0)

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def close_stdin(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            if self.writer.can_write_eof():
                self.writer.write_eof()

    async def resize(self, width: int, height: int) -> None:
        with contextlib.suppress(RuntimeFailure, OSError):
            await self.engine.request("POST", f"/exec/{self.exec_id}/resize", params={"h": str(height), "w": str(width)})

    async def exit_code(self) -> int:
        for _ in range(50):     # the engine may say Running for a moment after the streams end
            details = await self.engine.request("GET", f"/exec/{self.exec_id}/json")
            if not details.get("Running"):
                return int(details.get("ExitCode") or 0)
            await asyncio.sleep(0.05)
        return int(details.get("ExitCode") or 0)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await self.writer.wait_closed()


class _DockerAttach(_DockerExec):
    """An attach's streams: an exec's, but the terminal and the exit code are the container's (`exec_id`
    holds the container's id)."""

    async def resize(self, width: int, height: int) -> None:
        with contextlib.suppress(RuntimeFailure, OSError):
            await self.engine.request("POST", f"/containers/{self.exec_id}/resize",
                                      params={"h": str(height), "w": str(width)})

    async def exit_code(self) -> int:
        details = await self.engine.request("GET", f"/containers/{self.exec_id}/json")
        return int((details.get("State") or {}).get("ExitCode") or 0)


def _sandbox_ip(labels: dict[str, str], c: Obj) -> str:
    """A running sandbox's pod IP: its address on the node's bridge, else the engine's."""
    return labels.get(LABEL_POD_IP) or _ip(c.get("NetworkSettings") or {})


def _ip(settings: Obj) -> str:
    for network in (settings.get("Networks") or {}).values():
        if (network or {}).get("IPAddress"):
            return str(network["IPAddress"])
    return str(settings.get("IPAddress") or "")


def _float(text: str | None, default: float) -> float:
    try:
        return float(text) if text else default
    except ValueError:
        return default


__all__ = ["DEFAULT_PAUSE_IMAGE", "DEFAULT_ROOT_DIR", "DockerRuntime", "Engine", "EngineError", "EngineUnreachable"]
