"""The simulated runtime: pods "run" without containers, driven by annotations so tests can make failures.

A container starts after a short delay (the runtime's `start_delay`, 0.2 s by
default) and then runs until stopped. Pod IPs come from the node's podCIDR.
Annotations on the pod change that, for every container of the pod or, with
the container's name in front of the key, for one (`sim.boxkube.dev/web.exit-code`
wins over `sim.boxkube.dev/exit-code` for container `web`):

    sim.boxkube.dev/start-delay   "1s"     how long starting takes
    sim.boxkube.dev/exit-after    "2s"     exit this long after starting (every instance:
                                            with restartPolicy Always it crash-loops);
                                            init containers exit at once ("0s") unless told
    sim.boxkube.dev/exit-code     "1"      the code it exits with (default 0: Completed;
                                            anything else: Error)
    sim.boxkube.dev/ready         "false"  readiness of a running container (default "true");
                                            read on every sync, so changing it flips Ready
    sim.boxkube.dev/ready-after   "3s"     not ready until it has run this long
    sim.boxkube.dev/stop-after    "5s"     how long it takes to exit after SIGTERM (default
                                            at once, code 0); past the grace period it is
                                            killed, code 137
    sim.boxkube.dev/liveness-probe  "fail" what the container's probes of that kind answer
    sim.boxkube.dev/readiness-probe "fail" (default: they succeed, with the probe's own
    sim.boxkube.dev/startup-probe   "fail" timings and thresholds); read at every probe

Probes are answered here, never sent: a simulated pod has no address to reach
and no process to exec in. Logs and exec are not served for simulated nodes
(the API server says so for them).

Durations are Go-style ("500ms", "2s", "1m") or plain seconds. A value that
does not parse fails the container's start (RunContainerError naming the
annotation), so a typo shows in `kubectl describe pod`.

One annotation goes on the Node instead, and switches the whole simulated
machine off and on (`boxkube node stop/start` sets and removes it):

    sim.boxkube.dev/power         "off"    the machine has lost power: its agent stops renewing
                                            its Lease and posting node status, stops acting on
                                            pods, and every container is gone (`lose_power`);
                                            without the annotation (or with "on") it boots
                                            again, as a rebooted kubelet (see boxkube.agent.agent)
"""
from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import boxkube
from boxkube.agent.runtime.base import ContainerConfig, ContainerInfo, Runtime, RuntimeEvent, RuntimeFailure, Sandbox
from boxkube.api.times import parse_duration

log = logging.getLogger(__name__)

Obj = dict[str, Any]

PREFIX = "sim.boxkube.dev/"
POWER_ANNOTATION = PREFIX + "power"
SIGKILL_EXIT_CODE = 137


def power_is_off(node: Obj) -> bool:
    """Whether the Node says its simulated machine is switched off (`sim.boxkube.dev/power: "off"`)."""
    value = ((node.get("metadata") or {}).get("annotations") or {}).get(POWER_ANNOTATION)
    return isinstance(value, str) and value.strip().lower() == "off"


@dataclass
class _Container:
    info: ContainerInfo
    stop_after: float = 0.0
    ready_after: float = 0.0
    stopping: bool = False     # SIGTERM sent: however many callers stop it, it is signalled once
    timers: list[asyncio.TimerHandle] = field(default_factory=list)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)

    def cancel_timers(self) -> None:
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()


def annotation(pod: Obj, container: str, key: str) -> str | None:
    """The container's own `sim.boxkube.dev/<container>.<key>`, else the pod-wide `sim.boxkube.dev/<key>`."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(f"{PREFIX}{container}.{key}")
    return value if value is not None else annotations.get(PREFIX + key)


def _seconds(pod: Obj, container: str, key: str, default: float | None) -> float | None:
    text = annotation(pod, container, key)
    if text is None:
        return default
    try:
        return float(text) if text.replace(".", "", 1).isdigit() else parse_duration(text)
    except ValueError as e:
        raise RuntimeFailure("RunContainerError", f"annotation {PREFIX}{key}: {e}") from None


def _int(pod: Obj, container: str, key: str, default: int) -> int:
    text = annotation(pod, container, key)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise RuntimeFailure("RunContainerError", f'annotation {PREFIX}{key}: "{text}" is not an integer') from None


class _Addresses:
    """Pod IPs of one podCIDR: the first address is the bridge's (gateway), the rest are handed out."""

    def __init__(self, cidr: str):
        self.network = ipaddress.ip_network(cidr)
        self._used: set[int] = set()
        self._next = 2

    def take(self) -> str:
        size = self.network.num_addresses
        last = size - (1 if self.network.version == 4 else 0)   # IPv4's broadcast address is not for pods
        for _ in range(size):
            if self._next >= last:
                self._next = 2
            offset, self._next = self._next, self._next + 1
            if offset not in self._used:
                self._used.add(offset)
                return str(self.network.network_address + offset)
        raise RuntimeFailure("NetworkNotReady", f"no free pod IP left in {self.network}")

    def reserve(self, ip: str) -> None:
        """Mark an address taken (a sandbox that existed before this podCIDR was told again)."""
        address = ipaddress.ip_address(ip)
        if address in self.network:
            self._used.add(int(address) - int(self.network.network_address))

    def give_back(self, ip: str) -> None:
        try:
            self._used.discard(int(ipaddress.ip_address(ip)) - int(self.network.network_address))
        except ValueError:
            pass


class SimulatedRuntime(Runtime):
    name = "simulated"
    records_image_events = False
    simulates_power = True

    def __init__(self, node_name: str, start_delay: float = 0.2):
        self.node_name = node_name
        self.start_delay = start_delay
        self._addresses: _Addresses | None = None
        self._sandboxes: dict[str, Sandbox] = {}
        self._containers: dict[str, _Container] = {}
        self._events: asyncio.Queue[RuntimeEvent] = asyncio.Queue()

    def version(self) -> str:
        return f"simulated://{boxkube.__version__}"

    async def update_pod_cidr(self, cidr: str) -> None:
        if self._addresses is None or str(self._addresses.network) != cidr:
            self._addresses = _Addresses(cidr)
            for sandbox in self._sandboxes.values():   # keep what adopted pods already have
                if sandbox.ip:
                    self._addresses.reserve(sandbox.ip)

    def network_ready(self) -> tuple[bool, str]:
        if self._addresses is None:
            return False, "the node has no podCIDR yet"
        return True, ""

    async def close(self) -> None:
        for c in self._containers.values():
            c.cancel_timers()

    async def lose_power(self) -> None:
        """The machine lost power: every sandbox and container is gone, without an exit to report, and the
        podCIDR is forgotten (the agent tells it again when it boots)."""
        for c in self._containers.values():
            c.cancel_timers()
            c.stopped.set()          # nobody may wait for ever on a container that no longer exists
        self._containers.clear()
        self._sandboxes.clear()
        self._addresses = None
        while not self._events.empty():
            self._events.get_nowait()

    # -- sandboxes --------------------------------------------------------------

    async def run_sandbox(self, pod: Obj) -> Sandbox:
        host_network = bool((pod.get("spec") or {}).get("hostNetwork"))
        if self._addresses is None and not host_network:
            raise RuntimeFailure("NetworkNotReady", "the node has no podCIDR yet")
        meta = pod.get("metadata") or {}
        ip = "" if host_network or self._addresses is None else self._addresses.take()
        sandbox = Sandbox(id=secrets.token_hex(32), pod_uid=meta.get("uid", ""), namespace=meta.get("namespace", ""),
                          name=meta.get("name", ""), ip=ip, created_at=time.time())
        self._sandboxes[sandbox.id] = sandbox
        return sandbox

    async def remove_sandbox(self, sandbox_id: str) -> None:
        sandbox = self._sandboxes.pop(sandbox_id, None)
        if sandbox is None:
            return
        for cid in [cid for cid, c in self._containers.items() if c.info.sandbox_id == sandbox_id]:
            self._containers.pop(cid).cancel_timers()
        if self._addresses is not None and sandbox.ip:
            self._addresses.give_back(sandbox.ip)

    async def list_sandboxes(self) -> list[Sandbox]:
        return list(self._sandboxes.values())

    async def sandbox_status(self, sandbox_id: str) -> Sandbox | None:
        return self._sandboxes.get(sandbox_id)

    # -- containers -------------------------------------------------------------

    async def image_present(self, image: str) -> bool:
        return True

    async def start_container(self, sandbox: Sandbox, pod: Obj, container: Obj, attempt: int,
                              config: ContainerConfig | None = None) -> ContainerInfo:
        # `config` (resolved env, mounts) has nothing to act on here: the agent resolving it is what
        # makes a missing ConfigMap key fail the start on a simulated node as on a real one.
        if sandbox.id not in self._sandboxes:
            raise RuntimeFailure("CreateContainerError", f"sandbox {sandbox.id[:12]} does not exist")
        name = container["name"]
        init = container.get("restartPolicy") != "Always" and \
            any(c.get("name") == name for c in (pod.get("spec") or {}).get("initContainers") or [])
        # Read every annotation before "starting": a bad one fails the start, as a bad config would.
        delay = _seconds(pod, name, "start-delay", self.start_delay) or 0.0
        exit_after = _seconds(pod, name, "exit-after", 0.0 if init else None)
        exit_code = _int(pod, name, "exit-code", 0)
        stop_after = _seconds(pod, name, "stop-after", 0.0) or 0.0
        ready_after = _seconds(pod, name, "ready-after", 0.0) or 0.0
        image = container.get("image", "")
        info = ContainerInfo(id=secrets.token_hex(32), sandbox_id=sandbox.id, pod_uid=sandbox.pod_uid, name=name,
                             attempt=attempt, image=image,
                             image_id="sha256:" + hashlib.sha256(image.encode()).hexdigest())
        c = _Container(info, stop_after=stop_after, ready_after=ready_after)
        self._containers[info.id] = c
        if delay:
            await asyncio.sleep(delay)
        info.state, info.started_at = "running", time.time()
        loop = asyncio.get_running_loop()
        if exit_after is not None:
            c.timers.append(loop.call_later(exit_after, self._exited, c, exit_code))
        if ready_after:
            c.timers.append(loop.call_later(ready_after, self._emit, c, "readiness"))
        return info

    async def stop_container(self, container_id: str, grace_period: float) -> None:
        c = self._containers.get(container_id)
        if c is None or c.info.state != "running":
            return
        if not c.stopping:
            c.stopping = True
            c.cancel_timers()
            loop = asyncio.get_running_loop()
            if c.stop_after <= grace_period:
                c.timers.append(loop.call_later(c.stop_after, self._exited, c, 0))
            else:
                c.timers.append(loop.call_later(max(grace_period, 0.0), self._exited, c, SIGKILL_EXIT_CODE))
        await c.stopped.wait()

    async def remove_container(self, container_id: str) -> None:
        c = self._containers.pop(container_id, None)
        if c is not None:
            c.cancel_timers()

    async def container_status(self, container_id: str) -> ContainerInfo | None:
        c = self._containers.get(container_id)
        return c.info if c is not None else None

    async def list_containers(self) -> list[ContainerInfo]:
        return [c.info for c in self._containers.values()]

    def readiness(self, pod: Obj, container: ContainerInfo) -> bool | None:
        if (annotation(pod, container.name, "ready") or "true").lower() == "false":
            return False
        c = self._containers.get(container.id)
        if c is not None and c.ready_after and container.started_at is not None:
            return time.time() - container.started_at >= c.ready_after
        return True

    async def probe(self, pod: Obj, container: ContainerInfo, kind: str, handler: Obj) -> tuple[bool, str] | None:
        if (annotation(pod, container.name, f"{kind}-probe") or "").strip().lower() == "fail":
            return False, f"simulated failure ({PREFIX}{kind}-probe)"
        return True, ""

    async def events(self) -> AsyncIterator[RuntimeEvent]:   # type: ignore[override]
        while True:
            yield await self._events.get()

    def _exited(self, c: _Container, code: int) -> None:
        if c.info.state != "running":
            return
        c.cancel_timers()
        c.info.state, c.info.finished_at, c.info.exit_code = "exited", time.time(), code
        c.info.reason = "Completed" if code == 0 else "Error"
        c.stopped.set()
        self._emit(c, "exited")

    def _emit(self, c: _Container, kind: str) -> None:
        self._events.put_nowait(RuntimeEvent(c.info.pod_uid, c.info.id, kind))  # type: ignore[arg-type]
