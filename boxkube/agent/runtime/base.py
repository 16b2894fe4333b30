"""The runtime interface: what the node agent asks of whatever runs its pods' containers.

Shaped after the CRI the kubelet drives, cut down to what boxkube needs:

- a *sandbox* per pod holds its network namespace and pod IP (the Docker
  runtime's pause container; the simulated runtime's bookkeeping). The agent
  tells the runtime the node's podCIDR (`update_pod_cidr`, CRI's
  UpdateRuntimeConfig); pod IPs come from it.
- *containers* are started in a sandbox (create + start in one call: the agent
  records Created/Started around it) and stopped with a grace period (SIGTERM,
  then SIGKILL when it is over). Every instance of a container is a new
  `ContainerInfo` whose `attempt` is the restart count; the agent removes old
  exited instances itself (the kubelet keeps one dead instance per container
  for `lastState`).
- `events()` streams what changed on the runtime's side (a container exited,
  its readiness changed), so the agent never polls; the Docker runtime feeds
  it from the engine's event stream.
- `list_sandboxes()`/`list_containers()` tell an agent that (re)starts what
  already exists, so it adopts running pods instead of starting them twice.
- what the kubelet works out for a container before it asks the runtime —
  environment resolved from ConfigMaps, Secrets and the downward API, `$(VAR)`
  references expanded in command and args, volumes materialised as folders
  and files — is the agent's job (boxkube.agent.podconfig, boxkube.agent.volumes),
  the same for every runtime: `start_container` gets it as a `ContainerConfig`
  (the kubelet's RunContainerOptions). Volume files live under the runtime's
  `root_dir`, a folder that the agent writes and the engine can bind-mount from;
  a runtime without one (the simulated) gets none written.

Probes (boxkube.agent.prober) run HTTP and TCP checks from the node themselves;
an exec probe runs in the container through `exec_sync`, and a runtime may
answer probes itself (`probe`: the simulated runtime does). `logs` and `exec`
stream a container's output and an interactive command for the agent's
kubelet API (boxkube.agent.server), which serves `kubectl logs` and `kubectl
exec` through the API server. A runtime without real containers raises
NotImplementedError from them, with a message to show. A
runtime object belongs to one node; whoever makes it closes it (an agent that
restarts in the same process gets the same runtime back).
"""
from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

Obj = dict[str, Any]


class RuntimeFailure(Exception):
    """The runtime could not do what was asked. `reason` is the kubelet's waiting reason to show
    (CreateContainerError, RunContainerError, NetworkNotReady...); str() the message."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class Sandbox:
    id: str
    pod_uid: str
    namespace: str
    name: str
    ip: str                    # "" for a pod on the host's network
    created_at: float          # epoch seconds
    ready: bool = True         # the network namespace exists (pause container running)


@dataclass
class ContainerInfo:
    """One instance of one container of a pod."""

    id: str
    sandbox_id: str
    pod_uid: str
    name: str
    attempt: int               # 0 for the first instance; the restartCount it shows
    image: str
    image_id: str = ""
    state: Literal["created", "running", "exited"] = "created"
    started_at: float | None = None    # epoch seconds (sub-second: back-off windows may be short)
    finished_at: float | None = None
    exit_code: int = 0
    reason: str = ""           # exited: Completed, Error, OOMKilled
    message: str = ""


@dataclass(frozen=True)
class Mount:
    """A folder or file of the node (`host_path`) bind-mounted into a container at `container_path`."""

    container_path: str
    host_path: str
    read_only: bool = False


@dataclass
class ContainerConfig:
    """What the agent resolved for one container before starting it (the kubelet's RunContainerOptions):
    the runtime uses these instead of the pod spec's `env`, `command` and `args`."""

    env: list[tuple[str, str]] = field(default_factory=list)   # in order, every value literal
    command: list[str] | None = None      # $(VAR) expanded; None: the image's ENTRYPOINT
    args: list[str] | None = None         # $(VAR) expanded; None: the image's CMD (unless command is given)
    mounts: list[Mount] = field(default_factory=list)
    # The node's file behind the container's terminationMessagePath ("" when none is mounted).
    termination_message_file: str = ""

    @classmethod
    def literal(cls, container: Obj) -> "ContainerConfig":
        """The container's own literal values, nothing resolved (for callers that resolve nothing)."""
        env = [(e["name"], e.get("value") or "") for e in container.get("env") or [] if "valueFrom" not in e]
        return cls(env=env, command=container.get("command") or None, args=container.get("args") or None)


@dataclass(frozen=True)
class RuntimeEvent:
    """Something changed for a container of pod `pod_uid`: the agent re-syncs that pod."""

    pod_uid: str
    container_id: str
    kind: Literal["exited", "readiness"]


class ExecSession(abc.ABC):
    """A command running in a container, its streams attached (`Runtime.exec`)."""

    @abc.abstractmethod
    async def read(self) -> tuple[int, bytes] | None:
        """The next piece of output as (1 stdout | 2 stderr, data); None once the command's output ended."""

    @abc.abstractmethod
    async def write(self, data: bytes) -> None:
        """Feed the command's stdin."""

    @abc.abstractmethod
    async def close_stdin(self) -> None:
        """End the command's stdin (EOF)."""

    async def resize(self, width: int, height: int) -> None:
        """The terminal's new size (tty sessions)."""

    @abc.abstractmethod
    async def exit_code(self) -> int:
        """The command's exit code, once its output has ended."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Let go of the streams."""


class Runtime(abc.ABC):
    name: ClassVar[str]                    # the containerID scheme: "<name>://<id>"
    # Whether starting a container records the kubelet's Pulled event ("already present on
    # machine"): a simulated node has no images to speak of.
    records_image_events: ClassVar[bool] = True
    # Whether the agent may switch this machine off and on when its Node says so (the simulated
    # runtime's `sim.boxkube.dev/power` annotation); a real node is switched off by stopping it.
    simulates_power: ClassVar[bool] = False
    # The folder where the agent writes pods' volumes for the engine to bind-mount (the kubelet's
    # --root-dir); None: the runtime mounts nothing, so no files are written.
    root_dir: str | None = None

    async def start(self) -> None:
        """Connect to the engine (nothing to do for the simulated runtime)."""

    async def close(self) -> None:
        """Let go of the engine; running containers keep running."""

    async def lose_power(self) -> None:
        """The machine lost power: forget every sandbox and container as if they had never run (only
        a runtime that `simulates_power` can)."""
        raise NotImplementedError(f"the {self.name} runtime cannot simulate a power cut")

    @abc.abstractmethod
    def version(self) -> str:
        """nodeInfo.containerRuntimeVersion, e.g. docker://27.3.1."""

    @abc.abstractmethod
    async def update_pod_cidr(self, cidr: str) -> None:
        """The node's podCIDR, once the control plane has given one; pod IPs come from it."""

    @abc.abstractmethod
    def network_ready(self) -> tuple[bool, str]:
        """Whether sandboxes can be made, and why not (the Ready condition's message quotes it)."""

    @abc.abstractmethod
    async def run_sandbox(self, pod: Obj) -> Sandbox:
        """Make the pod's sandbox (network namespace and IP; a hostNetwork pod gets neither).
        RuntimeFailure when it can't."""

    @abc.abstractmethod
    async def remove_sandbox(self, sandbox_id: str) -> None:
        """Remove a sandbox whose containers are stopped, giving back its IP; no error if gone."""

    async def stop_sandbox(self, sandbox_id: str) -> None:
        """The sandbox of a pod that has ended: its IP given back, its exited containers (and their logs)
        kept until the pod is deleted, as the kubelet keeps them. By default: removed with them."""
        await self.remove_sandbox(sandbox_id)

    @abc.abstractmethod
    async def image_present(self, image: str) -> bool: ...

    @abc.abstractmethod
    async def start_container(self, sandbox: Sandbox, pod: Obj, container: Obj, attempt: int,
                              config: ContainerConfig | None = None) -> ContainerInfo:
        """Create and start instance `attempt` of `container` (the pod spec's entry) in `sandbox`, with
        the environment, command, args and mounts the agent resolved (`config`; without one, the
        container's literal values); returns it running (or already exited). RuntimeFailure when it can't."""

    @abc.abstractmethod
    async def stop_container(self, container_id: str, grace_period: float) -> None:
        """Stop a container: SIGTERM, then SIGKILL after `grace_period` seconds; returns once it has
        exited. No error if it is not running."""

    @abc.abstractmethod
    async def remove_container(self, container_id: str) -> None:
        """Remove an exited container; no error if gone."""

    @abc.abstractmethod
    async def container_status(self, container_id: str) -> ContainerInfo | None:
        """The container's current state (an engine's inspect); None if it is gone."""

    @abc.abstractmethod
    async def list_sandboxes(self) -> list[Sandbox]: ...

    async def sandbox_status(self, sandbox_id: str) -> Sandbox | None:
        """The sandbox as it is now (`ready`: its namespaces are still held, e.g. the pause container
        runs); None if it is gone. A runtime with a cheaper way than listing them all overrides it."""
        return next((s for s in await self.list_sandboxes() if s.id == sandbox_id), None)

    @abc.abstractmethod
    async def list_containers(self) -> list[ContainerInfo]:
        """Every container instance, running or exited, of every sandbox."""

    @abc.abstractmethod
    def events(self) -> AsyncIterator[RuntimeEvent]:
        """Changes as they happen, for one consumer (the node's agent), until the runtime closes."""

    def readiness(self, pod: Obj, container: ContainerInfo) -> bool | None:
        """The runtime's own verdict on a running container's readiness (a simulated node's
        annotation); None leaves it to the agent's probes."""
        return None

    async def probe(self, pod: Obj, container: ContainerInfo, kind: str, handler: Obj) -> tuple[bool, str] | None:
        """The runtime's own answer to a probe (success, output); None has the prober run it (HTTP and TCP
        from the node, exec through `exec_sync`)."""
        return None

    async def exec_sync(self, container_id: str, command: list[str], timeout: float) -> tuple[int, bytes]:
        """Run `command` in the container to its end: (exit code, stdout and stderr); asyncio.TimeoutError
        after `timeout` seconds (exec probes)."""
        raise NotImplementedError(f"the {self.name} runtime cannot run commands in containers")

    def logs(self, container_id: str, *, follow: bool = False, tail: int | None = None, since: float | None = None,
             timestamps: bool = False) -> AsyncIterator[bytes]:
        """The container's log (stdout and stderr as written), from `since` (epoch seconds) or its last
        `tail` lines; with `follow`, on until the container ends."""
        raise NotImplementedError(f"the {self.name} runtime keeps no container logs")

    async def exec(self, container_id: str, command: list[str], *, stdin: bool, tty: bool) -> ExecSession:
        """Start `command` in the running container with its streams attached."""
        raise NotImplementedError(f"the {self.name} runtime cannot run commands in containers")

    async def attach(self, container_id: str, *, stdin: bool) -> ExecSession:
        """The running container's own streams (its stdin too with `stdin`)."""
        raise NotImplementedError(f"the {self.name} runtime cannot attach to containers")
