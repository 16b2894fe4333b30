"""One pod's worker: makes the runtime match the pod and reports what it sees, as the kubelet's pod worker.

A worker is a task that sleeps until something happens to its pod — an
update from the API, a container exiting, a back-off ending — and then syncs:
it reads the pod and the runtime and takes the steps the kubelet would:

- sandbox first (its IP comes from the node's podCIDR; without one the pod
  waits, with a NetworkNotReady event), after the pod's volumes are set up
  (boxkube.agent.volumes; one that can't be, such as a missing ConfigMap, holds
  the pod in ContainerCreating with FailedMount events, retried);
- before each container starts, its environment and command line are resolved
  (boxkube.agent.podconfig) and passed to the runtime with its mounts; a
  missing ConfigMap, Secret or key makes it wait in CreateContainerConfigError;
- init containers one at a time, in order (restartable "sidecar" ones keep
  running beside the rest), then every container;
- restartPolicy decides whether an exited container comes back, after the
  back-off (CrashLoopBackOff) when it exits again too soon;
- the status (boxkube.agent.status) is written through pods/status only when
  it changed, by a writer beside the worker (the kubelet's status manager):
  the worker never waits for the API, and under load intermediate statuses
  are skipped in favour of the latest;
- a sandbox that died (its pause container killed, the node restarted) is
  replaced by a new one, and the containers start again in it (SandboxChanged);
- a container the API shows running that the runtime no longer has (its
  machine lost power, or rebooted) comes back with its restartCount counted
  up and lastState `ContainerStatusUnknown` (exit code 137), as upstream's
  kubelet shows it;
- liveness, readiness and startup probes run beside the worker
  (boxkube.agent.prober) for each running container instance: readiness
  and startup verdicts feed the status (ready, started, Ready and
  ContainersReady), and a liveness or startup failure has the worker kill the
  container ("Container web failed liveness probe, will be restarted") so
  that restartPolicy brings it back with its restartCount up;
- a pod whose phase is terminal has nothing running; a pod with a
  deletionTimestamp has its containers stopped within the grace period and is
  then deleted for good (gracePeriodSeconds=0), which is what lets the API
  server remove it.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any


from boxkube.agent import podconfig, prober, volumes
from boxkube.agent.backoff import go_duration
from boxkube.agent.runtime.base import ContainerConfig, ContainerInfo, RuntimeFailure, Sandbox
from boxkube.agent.status import KUBELET_CONDITIONS, ContainerRecord, pod_status
from boxkube.api.times import now_rfc3339
from boxkube.client import ApiError, resource

if TYPE_CHECKING:
    from boxkube.agent.agent import NodeAgent

log = logging.getLogger(__name__)

Obj = dict[str, Any]
PODS = resource("pods")

# PodStatus fields the kubelet owns: set from what it computes, cleared when it no longer has them.
_KUBELET_FIELDS = ("phase", "conditions", "message", "reason", "hostIP", "hostIPs", "podIP", "podIPs", "startTime",
                   "initContainerStatuses", "containerStatuses", "qosClass")
# After a failure (API server away, runtime error) the pod is synced again after this, doubling up to the max.
_RETRY, _RETRY_MAX = 0.5, 30.0
# A missing image is looked for again this often (someone may `boxkube load image` it), whatever its
# pull back-off says.
_IMAGE_RETRY = 5.0
# What upstream's kubelet shows for a container that was running and is gone (the runtime lost it, so
# its real end is unknown): as the last state of the one that replaces it, or as the state of a pod that ends.
_LOST_CONTAINER = {"exitCode": 137, "reason": "ContainerStatusUnknown",
                   "message": "The container could not be located when the pod was deleted.  "
                              "The container used to be Running"}
_LOST_AT_END = "The container could not be located when the pod was terminated"


def format_pod(pod: Obj) -> str:
    """The kubelet's format.Pod: name_namespace(uid)."""
    meta = pod.get("metadata") or {}
    return f"{meta.get('name', '')}_{meta.get('namespace', '')}({meta.get('uid', '')})"


def _rfc3339(at: float | None) -> str | None:
    return None if at is None else now_rfc3339(datetime.fromtimestamp(at, timezone.utc))


def _is_sidecar(container: Obj) -> bool:
    return container.get("restartPolicy") == "Always"


def _should_restart(policy: str, info: ContainerInfo) -> bool:
    return policy == "Always" or (policy == "OnFailure" and info.exit_code != 0)


class PodWorker:
    def __init__(self, node: "NodeAgent", pod: Obj):
        meta = pod["metadata"]
        self.node = node
        self.uid, self.namespace, self.name = meta["uid"], meta["namespace"], meta["name"]
        self.pod = pod
        self.gone = False                               # deleted from the API
        self.sandbox: Sandbox | None = None
        self._dead_sandbox = ""                         # replaced by a new one, to be removed
        self.pod_ip = ""
        self.volumes: volumes.PodVolumes | None = None  # set up on the node (before the sandbox)
        self._volumes_at = 0.0                          # when they were last set up (monotonic)
        self._init_again: dict[str, str] = {}           # init container -> id of its run in a replaced sandbox
        self.current: dict[str, ContainerInfo] = {}     # latest instance of each container
        self.previous: dict[str, ContainerInfo] = {}    # the one before it: lastState
        self.waiting: dict[str, tuple[str, str]] = {}   # why a container is not running: (reason, message)
        self.lost: dict[str, int] = {}                  # running per the API, gone from the runtime: its restartCount
        self.start_time: str | None = (pod.get("status") or {}).get("startTime")
        self.reported: Obj | None = None                # the status last written
        self.finished = False                           # terminal phase: nothing runs any more
        self.deleting = False                           # stopped and deleted; waiting for the API to drop it
        self._noted_network = False
        self._noted_backoff: dict[str, str] = {}        # container -> id of the exit its BackOff event is about
        self._wake = asyncio.Event()
        self.probes = prober.PodProbes(f"{self.namespace}/{self.name}", node.runtime, lambda: self.pod_ip, self.wake,
                                       lambda t, r, m, f: self._event(self.pod, t, r, m, f))
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._failures = 0
        self._config_failures: dict[str, int] = {}      # volumes (""), a container's config: failed attempts in a row
        self._desired: Obj | None = None                # the status waiting to be written
        self._writer: asyncio.Task | None = None
        self.task: asyncio.Task | None = None

    def __repr__(self) -> str:
        return f"<PodWorker {self.namespace}/{self.name} on {self.node.name}>"

    # -- feeding the worker -------------------------------------------------------

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"pod {self.namespace}/{self.name}")
        self.wake()

    def update(self, pod: Obj) -> None:
        self.pod = pod
        self.wake()

    def removed(self) -> None:
        self.gone = True
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    def _wake_at(self, when: float) -> None:
        """Sync again at epoch time `when` (the earliest of the wake-ups asked for wins)."""
        if self._timer is not None:
            if self._timer_at <= when:
                return
            self._timer.cancel()
        self._timer_at = when
        self._timer = asyncio.get_running_loop().call_later(max(0.0, when - time.time()), self._timer_fired)

    def _retry_later(self) -> None:
        self._wake_at(time.time() + min(_RETRY * 2 ** self._failures, _RETRY_MAX))
        self._failures += 1

    def tasks(self) -> list[asyncio.Task]:
        return [t for t in (self.task, self._writer) if t is not None] + self.probes.tasks()

    def _timer_fired(self) -> None:
        self._timer = None
        self.wake()

    def adopt(self, sandboxes: Sequence[Sandbox], containers: Sequence[ContainerInfo]) -> list[str]:
        """Take over what the runtime already has of this pod; the ids of instances too old to keep."""
        mine = sorted((s for s in sandboxes if s.pod_uid == self.uid), key=lambda s: s.created_at)
        if mine:
            self.sandbox = mine[-1]
            self.pod_ip = self.sandbox.ip or self.node.host_ip
        by_name: dict[str, list[ContainerInfo]] = {}
        for c in containers:
            if c.pod_uid == self.uid and self.sandbox and c.sandbox_id == self.sandbox.id:
                by_name.setdefault(c.name, []).append(c)
        stale = [s.id for s in mine[:-1]]
        for name, instances in by_name.items():
            instances.sort(key=lambda c: c.attempt)
            self.current[name] = instances[-1]
            if len(instances) > 1:
                self.previous[name] = instances[-2]
            stale += [c.id for c in instances[:-2]]
        self._note_lost()
        return stale

    def _note_lost(self) -> None:
        """Containers the API shows running that the runtime does not have: they died with the machine.
        Starting again counts a restart (not for a pod being deleted, as upstream) and shows the loss
        in lastState; a pod that ends instead shows them terminated with it."""
        meta, status = self.pod.get("metadata") or {}, self.pod.get("status") or {}
        restart = 0 if meta.get("deletionTimestamp") else 1
        for s in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
            name = s.get("name")
            if name and name not in self.current and "running" in (s.get("state") or {}):
                self.lost[name] = int(s.get("restartCount") or 0) + restart

    @property
    def has_runtime_state(self) -> bool:
        return self.sandbox is not None

    # -- the loop -----------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                if await self._sync():
                    break
                self._failures = 0
            except asyncio.CancelledError:
                raise
            except (ApiError, RuntimeFailure, OSError) as e:
                log.warning("%s/%s on %s: %s; retrying", self.namespace, self.name, self.node.name,
                            e or type(e).__name__)
                self._retry_later()
            except Exception:
                log.exception("syncing %s/%s on %s failed; retrying", self.namespace, self.name, self.node.name)
                self._retry_later()
        if self._timer is not None:
            self._timer.cancel()
        self.probes.stop()
        self.node.worker_done(self)

    async def _sync(self) -> bool:
        """One step toward what the pod wants; True when the worker is done (the pod is gone)."""
        await self._refresh()
        pod = self.pod
        meta = pod.get("metadata") or {}
        if self.gone:
            self.probes.stop()
            await self._stop_all(pod, 0.0, record=False)
            await self._remove_sandbox()
            return True
        if self.deleting:
            return False
        if meta.get("deletionTimestamp"):
            await self._terminate(pod)
            return False
        if self.finished or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            await self._finish(pod)
            return False
        await self._run_pod(pod)
        return False

    async def _refresh(self) -> None:
        """The runtime's latest word on the containers that were running."""
        for name, info in list(self.current.items()):
            if info.state != "exited":
                fresh = await self.node.runtime.container_status(info.id)
                if fresh is not None:
                    self.current[name] = fresh

    # -- running --------------------------------------------------------------------

    async def _run_pod(self, pod: Obj) -> None:
        if self.start_time is None:
            self.start_time = now_rfc3339()
        runtime = self.node.runtime
        if self.sandbox is not None and not await self._sandbox_alive(pod):
            return
        host_network = bool((pod.get("spec") or {}).get("hostNetwork"))
        if self.sandbox is None:
            ready, why = runtime.network_ready()
            if not ready and not host_network:     # host-network pods need no pod network
                if not self._noted_network:
                    self._noted_network = True
                    self._event(pod, "Warning", "NetworkNotReady",
                                "network is not ready: container runtime network not ready: NetworkReady=false "
                                f"reason:NetworkPluginNotReady message:{why}")
                self._publish(pod)
                return          # the node wakes its pods when the podCIDR arrives
        if self.volumes is None and not await self._set_up_volumes(pod):
            self._publish(pod)
            return
        await self._refresh_volumes(pod)
        if self.sandbox is None:
            self._publish(pod)
            try:
                self.sandbox = await runtime.run_sandbox(pod)
            except RuntimeFailure as e:
                self._event(pod, "Warning", "FailedCreatePodSandBox", f"Failed to create pod sandbox: {e}")
                raise
            self.pod_ip = self.node.host_ip if host_network else self.sandbox.ip
            if self._dead_sandbox:
                await runtime.remove_sandbox(self._dead_sandbox)
                self._dead_sandbox = ""
        self._publish(pod)
        await self._kill_unhealthy(pod)
        if await self._init_containers(pod):
            for c in (pod.get("spec") or {}).get("containers") or []:
                info = self.current.get(c["name"])
                if info is None or (info.state == "exited" and
                                    _should_restart((pod.get("spec") or {}).get("restartPolicy", "Always"), info)):
                    await self._start_or_back_off(pod, c, "spec.containers")
        status = self._status(pod)
        if status["phase"] in ("Succeeded", "Failed"):
            await self._finish(pod)
            return
        self.probes.sync(pod, self.current)
        self._publish(pod, status)

    async def _kill_unhealthy(self, pod: Obj) -> None:
        """Kill the containers whose liveness (or startup) probe failed; restartPolicy then decides, as
        for any exit, whether and when they come back."""
        spec = pod.get("spec") or {}
        sidecars = {c["name"] for c in spec.get("initContainers") or [] if _is_sidecar(c)}
        for name, info in list(self.current.items()):
            kind = self.probes.failed(name, info.id) if info.state == "running" else None
            if kind is None:
                continue
            field = "spec.initContainers" if name in sidecars else "spec.containers"
            self._event(pod, "Normal", "Killing", f"Container {name} failed {kind} probe, will be restarted",
                        f"{field}{{{name}}}")
            grace = self.probes.termination_grace(name, kind)
            await self.node.runtime.stop_container(info.id, self._grace(pod) if grace is None else grace)
            fresh = await self.node.runtime.container_status(info.id)
            if fresh is not None:
                self.current[name] = fresh
        self.probes.sync(pod, self.current)

    async def _sandbox_alive(self, pod: Obj) -> bool:
        """Whether the pod's sandbox still holds its namespaces. A dead one (its pause container was
        killed, or the node restarted) is replaced, its containers stopped and started again in the new
        one, as upstream's computePodActions; a restartPolicy Never pod whose containers already ran gets
        no new sandbox and ends instead. False when this sync is over."""
        assert self.sandbox is not None
        fresh = await self.node.runtime.sandbox_status(self.sandbox.id)
        if fresh is not None and fresh.ready:
            return True
        if (pod.get("spec") or {}).get("restartPolicy", "Always") == "Never" and self.current:
            await self._finish(pod)
            return False
        self._event(pod, "Normal", "SandboxChanged", "Pod sandbox changed, it will be killed and re-created.")
        await self._stop_all(pod, self._grace(pod), record=True)
        # a new sandbox runs the init containers again, from the first (upstream's computePodActions)
        self._init_again = {c["name"]: self.current[c["name"]].id
                            for c in (pod.get("spec") or {}).get("initContainers") or [] if c["name"] in self.current}
        # Removed once the new one exists, so that the runtime counts the new one as the next attempt.
        self._dead_sandbox, self.sandbox, self.pod_ip = self.sandbox.id, None, ""
        return True

    async def _init_containers(self, pod: Obj) -> bool:
        """Move the init containers along; whether they are done (sidecars: started) so the rest may start."""
        spec = pod.get("spec") or {}
        policy = spec.get("restartPolicy", "Always")
        for c in spec.get("initContainers") or []:
            info = self.current.get(c["name"])
            if info is not None and self._init_again.get(c["name"]) == info.id:
                info = None         # its run was in the sandbox that was replaced
            if _is_sidecar(c):
                if info is None or info.state == "exited":
                    if not await self._start_or_back_off(pod, c, "spec.initContainers"):
                        return False
                continue
            if info is None:
                await self._start_or_back_off(pod, c, "spec.initContainers")
                return False
            if info.state != "exited":
                return False
            if info.exit_code == 0:
                continue
            if policy != "Never":
                await self._start_or_back_off(pod, c, "spec.initContainers")
            return False
        return True

    async def _start_or_back_off(self, pod: Obj, container: Obj, field: str) -> bool:
        """Start (again) a container, unless its last exit was too recent; whether it now runs."""
        name = container["name"]
        info = self.current.get(name)
        backoff = self.node.backoff
        key = (self.uid, name)
        if info is not None and info.finished_at is not None:
            if backoff.in_backoff_since(key, info.finished_at):
                message = (f"back-off {go_duration(backoff.get(key))} restarting failed container={name} "
                           f"pod={format_pod(pod)}")
                self.waiting[name] = ("CrashLoopBackOff", message)
                if self._noted_backoff.get(name) != info.id:
                    self._noted_backoff[name] = info.id
                    self._event(pod, "Warning", "BackOff",
                                f"Back-off restarting failed container {name} in pod {format_pod(pod)}",
                                f"{field}{{{name}}}")
                self._wake_at(backoff.until(key, info.finished_at))
                return False
            backoff.next(key, info.finished_at)
        return await self._start(pod, container, field)

    async def _start(self, pod: Obj, container: Obj, field: str) -> bool:
        name, image = container["name"], container.get("image", "")
        runtime = self.node.runtime
        ref = f"{field}{{{name}}}"
        if not await runtime.image_present(image):
            self._image_missing(pod, container, ref)
            return False
        self.node.backoff.forget((self.uid, f"image {image}"))
        if runtime.records_image_events:
            self._event(pod, "Normal", "Pulled", f'Container image "{image}" already present on machine', ref)
        assert self.sandbox is not None
        info = self.current.get(name)
        attempt = info.attempt + 1 if info is not None else self._seed_attempt(pod, name)
        try:
            config = await self._container_config(pod, container)
        except podconfig.ConfigError as e:
            # Upstream's kubelet tries again at its next sync of the pod; not a crash, so no back-off.
            self.waiting[name] = ("CreateContainerConfigError", str(e))
            self._event(pod, "Warning", "Failed", f"Error: {e}", ref)
            self._retry_config(name)
            return False
        try:
            started = await runtime.start_container(self.sandbox, pod, container, attempt, config)
        except RuntimeFailure as e:
            self.waiting[name] = (e.reason, str(e))
            self._event(pod, "Warning", "Failed", f"Error: {e}", ref)
            # A start that fails is retried under the same back-off as a container that exits.
            self.node.backoff.next((self.uid, name), time.time())
            self._wake_at(time.time() + self.node.backoff.get((self.uid, name)))
            return False
        older = self.previous.pop(name, None)
        if older is not None:       # keep one dead instance per container, as the kubelet's GC does
            await runtime.remove_container(older.id)
        if info is not None:
            self.previous[name] = info
        self.current[name] = started
        self.waiting.pop(name, None)
        self._event(pod, "Normal", "Created", f"Created container: {name}", ref)
        self._event(pod, "Normal", "Started", f"Started container {name}", ref)
        return started.state == "running"

    async def _prepare_volumes(self, pod: Obj) -> None:
        """Set up the pod's volumes on the node (again); volumes.VolumeError when one can't be."""
        source = podconfig.ObjectSource(self.node.client, self.namespace)
        try:
            self.volumes = await volumes.prepare(pod, source, self.node.runtime.root_dir,
                                                 self.node.settings.full_capacity())
        finally:
            self._volumes_at = time.monotonic()

    def _image_missing(self, pod: Obj, container: Obj, ref: str) -> None:
        """A container whose image its node lacks waits as upstream's kubelet shows it (EnsureImageExists):
        ErrImageNeverPull with pull policy Never; else every pull fails (boxkube nodes reach no registry):
        ErrImagePull, then ImagePullBackOff until the image back-off (10 s doubling to 300 s) is over. The
        node is looked at again every few seconds all the same, so a `boxkube load image` is taken at once."""
        name, image = container["name"], container.get("image", "")
        why = f'image "{image}" is not present on node {self.node.name}; run: boxkube load image {image}'
        now, backoff, key = time.time(), self.node.backoff, (self.uid, f"image {image}")
        previous = self.waiting.get(name, ("",))[0]
        if container.get("imagePullPolicy") == "Never":
            if previous != "ErrImageNeverPull":
                self._event(pod, "Warning", "ErrImageNeverPull",
                            f'Container image "{image}" is not present with pull policy of Never', ref)
            self.waiting[name] = ("ErrImageNeverPull", why)
        elif backoff.in_backoff_since(key, backoff.last_update(key)):
            if previous != "ImagePullBackOff":
                self._event(pod, "Normal", "BackOff", f'Back-off pulling image "{image}"', ref)
                self._event(pod, "Warning", "Failed", "Error: ImagePullBackOff", ref)
            self.waiting[name] = ("ImagePullBackOff", f'Back-off pulling image "{image}": {why}')
        else:
            self._event(pod, "Normal", "Pulling", f'Pulling image "{image}"', ref)
            self._event(pod, "Warning", "Failed", f'Failed to pull image "{image}": {why}', ref)
            self._event(pod, "Warning", "Failed", "Error: ErrImagePull", ref)
            self.waiting[name] = ("ErrImagePull", why)
            backoff.next(key, now)
        self._wake_at(now + _IMAGE_RETRY)

    async def _set_up_volumes(self, pod: Obj) -> bool:
        """Make the pod's volumes on the node; False (with a FailedMount event, and a sync later) when one can't be."""
        try:
            await self._prepare_volumes(pod)
        except volumes.VolumeError as e:
            self._event(pod, "Warning", "FailedMount", str(e))
            self._retry_config("")
            return False
        self._config_failures.pop("", None)
        return True

    async def _refresh_volumes(self, pod: Obj) -> None:
        """Running pods' configMap, secret, downwardAPI and projected volumes follow their sources (each file
        swapped atomically, as upstream's AtomicWriter; subPath mounts keep what they had, as upstream).
        A source that cannot be read now keeps the volume as it was, with a FailedMount event."""
        assert self.volumes is not None
        if not self.volumes.read_only or self.volumes.root is None:     # nothing written (simulated nodes)
            return
        period = self.node.group.settings.volume_resync
        if time.monotonic() - self._volumes_at >= period:
            try:
                await self._prepare_volumes(pod)
            except volumes.VolumeError as e:
                self._event(pod, "Warning", "FailedMount", str(e))
        self._wake_at(time.time() + period)

    async def _container_config(self, pod: Obj, container: Obj) -> ContainerConfig:
        """What the runtime needs resolved to start the container (ConfigError when it cannot be)."""
        assert self.volumes is not None
        source = podconfig.ObjectSource(self.node.client, self.namespace)
        links = (pod.get("spec") or {}).get("enableServiceLinks")
        services = self.node.group.service_environment(self.namespace, links is not False)
        env = await podconfig.environment(pod, container, source, pod_ip=self.pod_ip, host_ip=self.node.host_ip,
                                          allocatable=self.node.settings.full_capacity(), services=services)
        command, args = podconfig.command_line(container, env)
        mounts = self.volumes.mounts(container, dict(env))
        message_file, message_mount = self.volumes.termination_message_file(container)
        if message_mount is not None:
            mounts.append(message_mount)
        self._config_failures.pop(container["name"], None)
        return ContainerConfig(env=env, command=command, args=args, mounts=mounts,
                               termination_message_file=message_file)

    def _retry_config(self, what: str) -> None:
        """Sync again soon, then less often (upstream's kubelet: its pod worker's back-off after a failed sync)."""
        failures = self._config_failures.get(what, 0)
        self._wake_at(time.time() + min(_RETRY * 2 ** failures, _RETRY_MAX))
        self._config_failures[what] = failures + 1

    def _seed_attempt(self, pod: Obj, name: str) -> int:
        """The first instance this agent starts: after the runtime lost a container (a node
        restarted), the count goes on from what the API last showed instead of from zero."""
        if name in self.lost:
            return self.lost[name]
        status = pod.get("status") or {}
        for s in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
            if s.get("name") == name:
                count = int(s.get("restartCount") or 0)
                return count + 1 if s.get("containerID") else count
        return 0

    # -- ending ---------------------------------------------------------------------

    async def _finish(self, pod: Obj) -> None:
        """A terminal pod: stop what still runs (sidecars), stop the sandbox (its IP given back), report the
        end once. Its exited containers, their logs and its folder stay until the pod is deleted."""
        self.probes.stop()
        if not self.finished:
            await self._stop_all(pod, self._grace(pod), record=True)
            if self.sandbox is not None:
                await self.node.runtime.stop_sandbox(self.sandbox.id)
            self.finished = True
        self._publish(pod, self._status(pod, terminal=True))

    async def _terminate(self, pod: Obj) -> None:
        self.probes.stop()
        await self._stop_all(pod, self._grace(pod), record=True)
        await self._remove_sandbox()
        self.finished = True
        self._publish(pod, self._status(pod, terminal=True))
        await self._flush()
        try:
            async with self.node.group.pod_write_limit:
                await self.node.client.delete(PODS, self.name, self.namespace, grace_period_seconds=0,
                                              preconditions={"uid": self.uid})
        except ApiError as e:
            if not (e.is_not_found or e.is_conflict):
                raise
        self.deleting = True

    def _grace(self, pod: Obj) -> float:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        return float(grace)

    async def _stop_all(self, pod: Obj, grace: float, record: bool) -> None:
        running = [(name, info) for name, info in self.current.items() if info.state != "exited"]
        if not running:
            return
        spec = pod.get("spec") or {}
        inits = {c["name"] for c in spec.get("initContainers") or []}
        if record:
            for name, _ in running:
                field = "spec.initContainers" if name in inits else "spec.containers"
                self._event(pod, "Normal", "Killing", f"Stopping container {name}", f"{field}{{{name}}}")
        await asyncio.gather(*(self.node.runtime.stop_container(info.id, grace) for _, info in running))
        await self._refresh()

    async def _remove_sandbox(self) -> None:
        """Give back the sandbox, and the pod's folder on the node with its volumes."""
        if self._dead_sandbox:
            await self.node.runtime.remove_sandbox(self._dead_sandbox)
            self._dead_sandbox = ""
        if self.sandbox is not None:
            await self.node.runtime.remove_sandbox(self.sandbox.id)
            self.sandbox = None
        await volumes.remove_pod_dir(self.node.runtime.root_dir, self.uid)
        self.volumes = None

    # -- status ---------------------------------------------------------------------

    def _record(self, pod: Obj, container: Obj, init: bool, initialized: bool, terminal: bool) -> ContainerRecord:
        name, image = container["name"], container.get("image", "")
        info, prev = self.current.get(name), self.previous.get(name)
        last = _terminated(prev, self.node.runtime.name) if prev is not None and prev.state == "exited" else None
        if last is None and name in self.lost:
            last = dict(_LOST_CONTAINER)
        waiting = self.waiting.get(name)
        if info is None and terminal and name in self.lost:
            return ContainerRecord(name, "terminated", reason=_LOST_CONTAINER["reason"],
                                   message=_LOST_AT_END, exit_code=_LOST_CONTAINER["exitCode"],
                                   restart_count=self.lost[name], image=image)
        if info is None:
            reason, message = waiting or ("PodInitializing" if init or not initialized else "ContainerCreating", "")
            return ContainerRecord(name, "waiting", reason=reason, message=message, image=image, last_terminated=last,
                                   restart_count=self._seed_attempt(pod, name) if waiting or name in self.lost else 0)
        cid = f"{self.node.runtime.name}://{info.id}"
        common: Obj = dict(restart_count=info.attempt, image=image, image_id=info.image_id, container_id=cid)
        if info.state == "running":
            verdict = self.node.runtime.readiness(pod, info)
            return ContainerRecord(name, "running", started_at=_rfc3339(info.started_at), last_terminated=last,
                                   ready=verdict is not False and self.probes.ready(container, info),
                                   started=self.probes.started(container, info), **common)
        if info.state == "created":
            return ContainerRecord(name, "waiting", reason="ContainerCreating", last_terminated=last, **common)
        if waiting and not terminal:
            return ContainerRecord(name, "waiting", reason=waiting[0], message=waiting[1],
                                   last_terminated=_terminated(info, self.node.runtime.name), **common)
        return ContainerRecord(name, "terminated", reason=info.reason, message=info.message, exit_code=info.exit_code,
                               started_at=_rfc3339(info.started_at), finished_at=_rfc3339(info.finished_at),
                               last_terminated=last, ready=init and info.exit_code == 0 and not _is_sidecar(container),
                               **common)

    def _status(self, pod: Obj, terminal: bool = False) -> Obj:
        spec = pod.get("spec") or {}
        inits = spec.get("initContainers") or []
        initialized = all(
            (self.current.get(c["name"]) is not None and
             (self.current[c["name"]].state == "running" if _is_sidecar(c)
              else self.current[c["name"]].state == "exited" and self.current[c["name"]].exit_code == 0))
            for c in inits)
        init_records = [self._record(pod, c, True, initialized, terminal) for c in inits]
        records = [self._record(pod, c, False, initialized, terminal) for c in spec.get("containers") or []]
        known = {**pod, "status": self._known_status(pod)}
        return pod_status(known, init_records, records, sandbox_ready=self.sandbox is not None, now=now_rfc3339(),
                          pod_ip=self.pod_ip, host_ip=self.node.host_ip, start_time=self.start_time,
                          terminal=terminal)

    def _known_status(self, pod: Obj) -> Obj:
        """The pod's status as far as we know: the API's, with what we last wrote over it (our
        write may not have come back through the watch yet)."""
        api = pod.get("status") or {}
        if self.reported is None:
            return api
        others = [c for c in api.get("conditions") or [] if c.get("type") not in KUBELET_CONDITIONS]
        mine = [c for c in self.reported.get("conditions") or [] if c.get("type") in KUBELET_CONDITIONS]
        return {**api, **self.reported, "conditions": others + mine}

    def _publish(self, pod: Obj, status: Obj | None = None) -> None:
        """Have the status written (soon, by the writer task) if it differs from what the API has."""
        self._desired = self._status(pod) if status is None else status
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_statuses(), name=f"status {self.namespace}/{self.name}")

    async def _flush(self) -> None:
        """Wait until the published status is written; its failure is the caller's."""
        while self._writer is not None and not self._writer.done():
            await asyncio.wait([self._writer])
        if self._desired is not None:
            status, self._desired = self._desired, None
            async with self.node.group.pod_write_limit:
                await self._write(status)

    async def _write_statuses(self) -> None:
        async with self.node.group.pod_write_limit:
            while self._desired is not None:
                status, self._desired = self._desired, None
                try:
                    await self._write(status)
                except (ApiError, OSError) as e:
                    log.warning("status of %s/%s on %s: %s; retrying", self.namespace, self.name, self.node.name,
                                e or type(e).__name__)
                    self._retry_later()     # the next sync computes and publishes it again
                    return

    async def _write(self, status: Obj) -> None:
        """Write the status through pods/status if it differs from what the API has (as far as we know)."""
        pod = self.pod
        old = self._known_status(pod)
        patch = {k: v for k, v in status.items() if old.get(k) != v}
        patch.update({k: None for k in _KUBELET_FIELDS if k in old and k not in status})
        if not patch:
            return
        live = self.node.live_pod(self.namespace, self.name)
        if live is None or live["metadata"].get("uid") != self.uid:
            return              # deleted, or a new pod of the same name: not ours to write
        try:
            await self.node.client.patch_status(PODS, self.name, {"status": patch}, self.namespace)
        except ApiError as e:
            if e.is_not_found:
                return
            raise
        self.reported = status

    def _event(self, pod: Obj, type_: str, reason: str, message: str, field_path: str = "") -> None:
        # No resourceVersion in the reference: repeats of one event about a pod whose status keeps
        # changing must still count up on one Event (client-go's aggregation key has none either).
        meta = pod.get("metadata") or {}
        ref = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace"), "uid": meta.get("uid")}}
        self.node.recorder.event(ref, type_, reason, message, field_path)


def _terminated(info: ContainerInfo, scheme: str) -> Obj:
    out = {"exitCode": info.exit_code, "reason": info.reason, "message": info.message,
           "startedAt": _rfc3339(info.started_at), "finishedAt": _rfc3339(info.finished_at),
           "containerID": f"{scheme}://{info.id}"}
    return {k: v for k, v in out.items() if v not in (None, "")}
