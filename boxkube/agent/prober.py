"""Liveness, readiness and startup probes of a pod's containers, as the kubelet's prober runs them.

Runtime-independent: httpGet and tcpSocket go from the node to the pod's IP
(or the probe's `host`), exec runs in the container through the runtime
(`Runtime.exec_sync`), and a runtime may answer a probe itself instead
(`Runtime.probe`: the simulated runtime does, from annotations).

Upstream's semantics (pkg/kubelet/prober/worker.go), per container instance
and probe type, one asyncio task each:

- the first probe runs as soon as the container runs, then every
  `periodSeconds`; while the container has run less than
  `initialDelaySeconds` a tick probes nothing;
- a result counts once it repeats `successThreshold` times (success) or
  `failureThreshold` times (failure); before that the previous verdict holds.
  A probe that errors (not a failure: e.g. a named port that does not exist)
  changes nothing;
- initial verdicts: readiness false, liveness true, startup "not started";
- until the startup probe succeeds, liveness and readiness are not probed and
  the container is neither started nor ready; once it succeeds the startup
  probe stops;
- a liveness (or startup) failure at the threshold asks the pod worker to kill
  the container (`failed`); the probe then holds until a new instance runs;
- every failed probe records a `Warning Unhealthy` event ("Liveness probe
  failed: HTTP probe failed with statuscode: 500").
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import aiohttp

from boxkube.agent.runtime.base import ContainerInfo, RuntimeFailure

if TYPE_CHECKING:
    from boxkube.agent.runtime.base import Runtime

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Kind = Literal["startup", "liveness", "readiness"]
Result = Literal["success", "failure", "unknown"]

KINDS: tuple[Kind, ...] = ("startup", "liveness", "readiness")
FIELDS: dict[Kind, str] = {"startup": "startupProbe", "liveness": "livenessProbe", "readiness": "readinessProbe"}
WORDS: dict[Kind, str] = {"startup": "Startup", "liveness": "Liveness", "readiness": "Readiness"}
# The body of an HTTP probe's answer is read up to this much (upstream's maxRespBodyLength).
_MAX_BODY = 10 * 1024
USER_AGENT = "kube-probe/1.37"


@dataclass(frozen=True)
class ProbeSpec:
    """A container's probe with the API's defaults filled in."""

    handler: Obj
    initial_delay: float = 0
    period: float = 10
    timeout: float = 1
    success_threshold: int = 1
    failure_threshold: int = 3
    termination_grace: float | None = None      # probe-level terminationGracePeriodSeconds

    @classmethod
    def from_api(cls, probe: Obj) -> "ProbeSpec":
        def num(key: str, default: float, least: float) -> float:
            value = probe.get(key)
            return max(least, float(value)) if isinstance(value, (int, float)) and value else default
        handler = {k: probe[k] for k in ("exec", "httpGet", "tcpSocket", "grpc") if probe.get(k) is not None}
        grace = probe.get("terminationGracePeriodSeconds")
        return cls(handler=handler, initial_delay=num("initialDelaySeconds", 0, 0), period=num("periodSeconds", 10, 1),
                   timeout=num("timeoutSeconds", 1, 1), success_threshold=int(num("successThreshold", 1, 1)),
                   failure_threshold=int(num("failureThreshold", 3, 1)),
                   termination_grace=float(grace) if isinstance(grace, (int, float)) else None)


@dataclass(frozen=True)
class Outcome:
    result: Result
    output: str = ""


# -- the handlers ---------------------------------------------------------------------------------------


def resolve_port(port: Any, container: Obj) -> int:
    """A probe's port: a number, or the name of one of the container's ports (ValueError if neither)."""
    if isinstance(port, int) and not isinstance(port, bool):
        return port
    text = str(port)
    if text.isdigit():
        return int(text)
    for p in container.get("ports") or []:
        if p.get("name") == text and p.get("containerPort"):
            return int(p["containerPort"])
    raise ValueError(f"couldn't find port: {text} in {container.get('name', '')}")


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


async def http_get(handler: Obj, container: Obj, pod_ip: str, timeout: float) -> Outcome:
    try:
        port = resolve_port(handler.get("port"), container)
    except ValueError as e:
        return Outcome("unknown", str(e))
    scheme = str(handler.get("scheme") or "HTTP").lower()
    host = handler.get("host") or pod_ip
    path = handler.get("path") or "/"
    if not path.startswith("/"):
        path = "/" + path
    url = f"{scheme}://{_host(host)}:{port}{path}"
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    for h in handler.get("httpHeaders") or []:
        if h.get("name"):
            headers[h["name"]] = str(h.get("value", ""))
    try:
        connector = aiohttp.TCPConnector(force_close=True, ssl=False)   # upstream skips TLS verification
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout)) as s:
            async with s.get(url, headers=headers, allow_redirects=True, max_redirects=10) as r:
                body = await r.content.read(_MAX_BODY)
                if 200 <= r.status < 400:
                    return Outcome("success", body.decode(errors="replace"))
                return Outcome("failure", f"HTTP probe failed with statuscode: {r.status}")
    except asyncio.TimeoutError:
        return Outcome("failure", f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while '
                                  "awaiting headers)")
    except (aiohttp.ClientError, OSError) as e:
        return Outcome("failure", f'Get "{url}": {_dial_error(host, port, e)}')


def _dial_error(host: str, port: int, e: BaseException) -> str:
    cause = getattr(e, "os_error", None) or e
    if isinstance(cause, ConnectionRefusedError):
        return f"dial tcp {_host(host)}:{port}: connect: connection refused"
    if isinstance(cause, OSError) and cause.strerror:
        return f"dial tcp {_host(host)}:{port}: connect: {cause.strerror.lower()}"
    return str(e) or type(e).__name__


async def tcp_socket(handler: Obj, container: Obj, pod_ip: str, timeout: float) -> Outcome:
    try:
        port = resolve_port(handler.get("port"), container)
    except ValueError as e:
        return Outcome("unknown", str(e))
    host = handler.get("host") or pod_ip
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except asyncio.TimeoutError:
        return Outcome("failure", f"dial tcp {_host(host)}:{port}: i/o timeout")
    except OSError as e:
        return Outcome("failure", _dial_error(host, port, e))
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return Outcome("success")


async def exec_command(handler: Obj, runtime: "Runtime", info: ContainerInfo, timeout: float) -> Outcome:
    command = [str(c) for c in handler.get("command") or []]
    try:
        code, output = await runtime.exec_sync(info.id, command, timeout)
    except asyncio.TimeoutError:
        return Outcome("failure", f"command {_go_quote(' '.join(command))} timed out")
    except NotImplementedError as e:
        return Outcome("unknown", str(e) or f"the {runtime.name} runtime cannot exec")
    except (RuntimeFailure, OSError) as e:
        return Outcome("unknown", str(e))
    text = output.decode(errors="replace")
    return Outcome("success", text) if code == 0 else Outcome("failure", text)


def _go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- one container instance ------------------------------------------------------------------------------


@dataclass
class _Probe:
    kind: Kind
    spec: ProbeSpec
    last: Result | None = None
    run: int = 0
    task: asyncio.Task | None = None


@dataclass
class ContainerProbes:
    """The probes of one instance of one container, and their verdicts."""

    owner: "PodProbes"
    container: Obj
    info: ContainerInfo
    field_path: str
    probes: dict[Kind, _Probe] = field(default_factory=dict)
    started: bool = True
    ready: bool = True
    failed: Kind | None = None       # liveness or startup failed: the container is to be killed

    def __post_init__(self) -> None:
        for kind in KINDS:
            probe = self.container.get(FIELDS[kind])
            if probe:
                self.probes[kind] = _Probe(kind, ProbeSpec.from_api(probe))
        self.started = "startup" not in self.probes
        self.ready = "readiness" not in self.probes

    def start(self) -> None:
        for probe in self.probes.values():
            probe.task = asyncio.create_task(self._loop(probe),
                                             name=f"{probe.kind} probe {self.owner.label}/{self.info.name}")

    def tasks(self) -> list[asyncio.Task]:
        return [p.task for p in self.probes.values() if p.task is not None]

    def stop(self) -> None:
        for task in self.tasks():
            task.cancel()

    @property
    def is_ready(self) -> bool:
        return self.started and self.ready

    async def _loop(self, probe: _Probe) -> None:
        try:
            while await self._tick(probe):
                await asyncio.sleep(probe.spec.period)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s probe of %s/%s failed", probe.kind, self.owner.label, self.info.name)

    async def _tick(self, probe: _Probe) -> bool:
        """One probe (or none, when it is not yet time); whether to go on probing."""
        if probe.kind == "startup" and self.started:
            return False
        if probe.kind != "startup" and not self.started:
            return True
        ran = time.time() - (self.info.started_at or time.time())
        if int(ran) < probe.spec.initial_delay:
            return True
        outcome = await self.owner.run(self, probe)
        if outcome.result == "unknown":
            log.debug("%s probe of %s/%s errored: %s", probe.kind, self.owner.label, self.info.name, outcome.output)
            return True
        if outcome.result == "failure":
            self.owner.event("Warning", "Unhealthy", f"{WORDS[probe.kind]} probe failed: {outcome.output}",
                             self.field_path)
        probe.run = probe.run + 1 if probe.last == outcome.result else 1
        probe.last = outcome.result
        needed = probe.spec.failure_threshold if outcome.result == "failure" else probe.spec.success_threshold
        if probe.run < needed:
            return True
        success = outcome.result == "success"
        changed = False
        if probe.kind == "readiness":
            changed, self.ready = self.ready != success, success
        elif probe.kind == "startup":
            if success:
                changed, self.started = not self.started, True
            else:
                self.failed, changed = "startup", True
        elif not success:
            self.failed, changed = "liveness", True
        if changed:
            self.owner.wake()
        if not success and probe.kind in ("liveness", "startup"):
            probe.run = 0
            return False        # on hold until the container is replaced
        return not (probe.kind == "startup" and success)


# -- the pod --------------------------------------------------------------------------------------------


class PodProbes:
    """The probes of one pod's running containers (owned by its pod worker)."""

    def __init__(self, label: str, runtime: "Runtime", pod_ip: Callable[[], str], wake: Callable[[], None],
                 event: Callable[[str, str, str, str], None]):
        self.label = label
        self.runtime = runtime
        self._pod_ip, self.wake, self._event = pod_ip, wake, event
        self.pod: Obj = {}
        self.containers: dict[str, ContainerProbes] = {}    # by container name: the instance probed

    def event(self, type_: str, reason: str, message: str, field_path: str) -> None:
        self._event(type_, reason, message, field_path)

    async def run(self, c: ContainerProbes, probe: _Probe) -> Outcome:
        own = await self.runtime.probe(self.pod, c.info, probe.kind, probe.spec.handler)
        if own is not None:
            return Outcome("success" if own[0] else "failure", own[1])
        h = probe.spec.handler
        if "exec" in h:
            return await exec_command(h["exec"], self.runtime, c.info, probe.spec.timeout)
        if "httpGet" in h:
            return await http_get(h["httpGet"], c.container, self._pod_ip(), probe.spec.timeout)
        if "tcpSocket" in h:
            return await tcp_socket(h["tcpSocket"], c.container, self._pod_ip(), probe.spec.timeout)
        return Outcome("unknown", "grpc probes are not supported by boxkube" if "grpc" in h
                       else "the probe has no handler")

    def sync(self, pod: Obj, current: dict[str, ContainerInfo]) -> None:
        """Probe the running instances of the pod's containers that have probes; stop probing the rest."""
        self.pod = pod
        spec = pod.get("spec") or {}
        wanted: dict[str, tuple[Obj, str]] = {}
        for c in spec.get("initContainers") or []:
            if c.get("restartPolicy") == "Always":
                wanted[c["name"]] = (c, f"spec.initContainers{{{c['name']}}}")
        for c in spec.get("containers") or []:
            wanted[c["name"]] = (c, f"spec.containers{{{c['name']}}}")
        for name in list(self.containers):
            info = current.get(name)
            probes = self.containers[name]
            if name not in wanted or info is None or info.id != probes.info.id or info.state != "running":
                probes.stop()
                del self.containers[name]
        for name, (container, field_path) in wanted.items():
            info = current.get(name)
            if info is None or info.state != "running" or name in self.containers:
                continue
            if not any(container.get(FIELDS[k]) for k in KINDS):
                continue
            probes = ContainerProbes(self, container, info, field_path)
            self.containers[name] = probes
            probes.start()

    def _of(self, name: str, container_id: str) -> ContainerProbes | None:
        probes = self.containers.get(name)
        return probes if probes is not None and probes.info.id == container_id else None

    def started(self, container: Obj, info: ContainerInfo) -> bool:
        probes = self._of(container["name"], info.id)
        if probes is None:      # not probed (yet): started unless a startup probe has to say so
            return not container.get("startupProbe")
        return probes.started

    def ready(self, container: Obj, info: ContainerInfo) -> bool:
        probes = self._of(container["name"], info.id)
        if probes is None:
            return not (container.get("startupProbe") or container.get("readinessProbe"))
        return probes.is_ready

    def failed(self, name: str, container_id: str) -> Kind | None:
        probes = self._of(name, container_id)
        return probes.failed if probes is not None else None

    def termination_grace(self, name: str, kind: Kind) -> float | None:
        probes = self.containers.get(name)
        probe = probes.probes.get(kind) if probes is not None else None
        return probe.spec.termination_grace if probe is not None else None

    def tasks(self) -> list[asyncio.Task]:
        return [t for c in self.containers.values() for t in c.tasks()]

    def stop(self) -> None:
        for probes in self.containers.values():
            probes.stop()
        self.containers.clear()
