"""Node agents: one NodeAgent per node, many of them sharing one AgentGroup.

A NodeAgent is what the kubelet is for one node: it registers the Node, keeps
its Lease and status fresh, and runs a PodWorker for every pod bound to it.
The AgentGroup is what they share so that a thousand simulated nodes in one
process stay cheap: one API client, ONE pod informer (indexed by
spec.nodeName), one node informer instead of a watch per node, one Service
informer (the containers' Service environment variables), and two
batched schedules (boxkube.agent.heartbeat) for all Lease renewals and all
node status posts. A single real node is a group of one, whose informers
select just its own pods and Node.

A simulated node can be switched off and on (`boxkube node stop/start`) by the
annotation `sim.boxkube.dev/power: "off"` on its Node, which the group's node
informer brings to the NodeAgent. Switched off, it is a dead machine: no Lease
renewals, no node status, no pod status or container starts, and the
runtime's containers are gone (`Runtime.lose_power`); only the group's watch
still sees its Node, to notice the annotation go. Switched on, it boots as a
rebooted kubelet: a new bootID (with a Rebooted event), registration, an
immediate status post and Lease renewal, then its pods are reconciled as after
any agent start: those still bound run again with their restartCount counted
up (lastState ContainerStatusUnknown, as upstream shows a container lost with
its machine), those deleted meanwhile are finished off.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from boxkube.agent import podconfig, volumes
from boxkube.agent.backoff import Backoff
from boxkube.agent.config import AgentSettings, NodeSettings
from boxkube.agent.heartbeat import Periodic
from boxkube.agent.node import (
    CONDITION_EVENTS,
    LEASE_NAMESPACE,
    NodeIdentity,
    conditions,
    default_labels,
    lease_object,
    with_times,
)
from boxkube.agent.podworker import PodWorker
from boxkube.agent.runtime.base import Runtime
from boxkube.agent.runtime.simulated import POWER_ANNOTATION, power_is_off
from boxkube.agent.server import KubeletServer
from boxkube.api.times import now_rfc3339
from boxkube.client import ApiClient, ApiError, DeletedFinalStateUnknown, EventRecorder, Informer, resource
from boxkube.client.store import NAMESPACE_INDEX

log = logging.getLogger(__name__)

Obj = dict[str, Any]
NODES, PODS, LEASES, SERVICES = resource("nodes"), resource("pods"), resource("leases"), resource("services")
NODE_INDEX = "nodeName"
# How long shutting down waits for queued events to be written.
_EVENT_FLUSH_TIMEOUT = 2.0
# A failed Lease renewal is tried again this soon (upstream: 200 ms doubling up to 7 s).
_LEASE_RETRY = 0.2
# A switched-on node that cannot register (API server away) tries again after this, doubling up to the max.
_BOOT_RETRY, _BOOT_RETRY_MAX = 0.5, 10.0


def _pod_node(pod: Obj) -> list[str]:
    node = (pod.get("spec") or {}).get("nodeName")
    return [node] if node else []


def _is_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


class NodeAgent:
    """The kubelet of one node."""

    def __init__(self, group: "AgentGroup", settings: NodeSettings, runtime: Runtime):
        self.group, self.settings, self.runtime = group, settings, runtime
        self.name = settings.name
        self.client = group.client
        self.recorder = EventRecorder(group.event_client, "kubelet", host=self.name)
        self.backoff = Backoff(group.settings.backoff_initial, group.settings.backoff_max)
        self.identity = NodeIdentity(settings, runtime.version())
        self.host_ip = settings.internal_ip
        self.workers: dict[str, PodWorker] = {}     # by pod uid
        self.node_uid = ""
        self.pod_cidr = ""
        self.conditions: list[Obj] = []             # as last posted, with their times
        self.lease: Obj | None = None
        self.running = False
        self.removed = False                        # our Node was deleted: this agent is done
        self.powered_off = False                    # the simulated machine is switched off (a dead machine)
        self.power_off_wanted = False               # what the Node's sim.boxkube.dev/power asks for
        self.started = False                        # start() has run once: power changes are followed from then
        self._power_task: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()

    def __repr__(self) -> str:
        return f"<NodeAgent {self.name}>"

    # -- registration and heartbeats ------------------------------------------------

    def _ready(self) -> tuple[bool, str]:
        ok, why = self.runtime.network_ready()
        return ok, ("" if ok else "container runtime network not ready: NetworkReady=false "
                    f"reason:NetworkPluginNotReady message:{why}")

    async def register(self) -> None:
        """Create our Node (or find it registered already, as after a restart) and our Lease. A simulated
        machine whose Node says it is switched off does neither: it stays dark (`powered_off`)."""
        now = now_rfc3339()
        wanted = with_times(conditions(*self._ready()), [], now)
        try:
            node = await self.client.create(NODES, self.identity.node_object(wanted))
            self.conditions = wanted
        except ApiError as e:
            if not e.is_already_exists:
                raise
            node = await self.client.get(NODES, self.name)
            if self.runtime.simulates_power and power_is_off(node):
                self.node_uid = node["metadata"]["uid"]
                self.power_off_wanted = self.powered_off = True
                log.info("node %s is switched off (%s); it stays off until that annotation goes",
                         self.name, POWER_ANNOTATION)
                return
            labels = (node.get("metadata") or {}).get("labels") or {}
            fix = {k: v for k, v in default_labels(self.settings).items() if labels.get(k) != v}
            if fix:
                node = await self.client.patch(NODES, self.name, {"metadata": {"labels": fix}})
            self.conditions = list((node.get("status") or {}).get("conditions") or [])
        self.node_uid = node["metadata"]["uid"]
        self.recorder.event(self._ref(), "Normal", "Starting", "Starting kubelet.")
        if self.conditions is wanted:
            self._condition_events([], wanted)
        await self._take_pod_cidr(node)
        await self.renew_lease()

    def _ref(self) -> Obj:
        # The kubelet's events name the node with its name as uid (upstream's nodeRef).
        return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": self.name, "uid": self.name}}

    def _condition_events(self, old: list[Obj], new: list[Obj]) -> None:
        before = {c.get("type"): c.get("status") for c in old}
        for c in new:
            reason = CONDITION_EVENTS.get((c["type"], c["status"]))
            if reason and before.get(c["type"]) != c["status"]:
                self.recorder.event(self._ref(), "Normal", reason, f"Node {self.name} status is now: {reason}")

    async def post_status(self) -> float | None:
        """Post the node's status (the group calls this periodically and when poked)."""
        if self.removed or self.powered_off:
            return None
        new = with_times(conditions(*self._ready()), self.conditions, now_rfc3339())
        try:
            await self.client.patch_status(NODES, self.name, {"status": self.identity.status(new)},
                                           patch_type="strategic")
        except ApiError as e:
            if e.is_not_found:
                self.node_deleted()
                return None
            raise
        self._condition_events(self.conditions, new)
        self.conditions = new
        return None

    async def renew_lease(self) -> float | None:
        if self.removed or self.powered_off:
            return None
        duration = self.group.settings.lease_duration
        try:
            if self.lease is None:
                try:    # creating first costs one request for a new node, two after a restart
                    self.lease = await self.client.create(LEASES, lease_object(self.name, self.node_uid, duration))
                    return None
                except ApiError as e:
                    if not e.is_already_exists:
                        raise
                self.lease = await self.client.get(LEASES, self.name, LEASE_NAMESPACE)
            fresh = lease_object(self.name, self.node_uid, duration)
            # Our Node may be a new one of the same name: the Lease belongs to the Node that is there now.
            lease = {**self.lease, "metadata": {**self.lease["metadata"],
                                                "ownerReferences": fresh["metadata"]["ownerReferences"]},
                     "spec": {**(self.lease.get("spec") or {}), **fresh["spec"]}}
            self.lease = await self.client.replace(LEASES, lease)
        except ApiError as e:
            if not (e.is_conflict or e.is_not_found):
                raise
            log.debug("lease of %s: %s; reading it again", self.name, e)
            self.lease = None
            return _LEASE_RETRY
        return None

    # -- the node object ------------------------------------------------------------

    def node_changed(self, node: Obj) -> None:
        if self.removed:
            return
        if self.runtime.simulates_power and power_is_off(node) != self.power_off_wanted:
            self.power_off_wanted = not self.power_off_wanted
            if self.started:        # before that, start() looks at it when it is done
                self._follow_power()
        cidr = (node.get("spec") or {}).get("podCIDR") or ""
        if cidr and cidr != self.pod_cidr and self.node_uid and not self.powered_off:
            self._spawn(self._take_pod_cidr(node), "podCIDR")

    async def _take_pod_cidr(self, node: Obj) -> None:
        cidr = (node.get("spec") or {}).get("podCIDR") or ""
        if not cidr or cidr == self.pod_cidr:
            return
        self.pod_cidr = cidr
        await self.runtime.update_pod_cidr(cidr)
        log.info("node %s: podCIDR %s", self.name, cidr)
        self.group.statuses.poke(self)
        for worker in self.workers.values():
            worker.wake()

    def node_deleted(self) -> None:
        """Our Node is gone from the cluster: its pods can no longer run here, so stop them and
        remove them from the API at once (what the pod GC would do later), and stop heartbeats."""
        if self.removed:
            return
        self.removed = True
        if self.powered_off:        # a dark machine notices nothing, and has nothing running to stop
            log.info("node %s was deleted from the cluster while switched off", self.name)
            return
        log.warning("node %s was deleted from the cluster; stopping its pods and heartbeats", self.name)
        self.group.leases.remove(self)
        self.group.statuses.remove(self)
        for worker in list(self.workers.values()):
            worker.removed()
        self._spawn(self._delete_pods(), "delete pods")

    async def _delete_pods(self) -> None:
        for pod in self.group.pods_of(self.name):
            meta = pod["metadata"]
            with contextlib.suppress(ApiError):
                async with self.group.pod_write_limit:
                    await self.client.delete(PODS, meta["name"], meta["namespace"], grace_period_seconds=0,
                                             preconditions={"uid": meta["uid"]})

    # -- power (simulated nodes) ------------------------------------------------------

    def _follow_power(self) -> None:
        """Switch the machine off or on as the Node's annotation says, one change at a time."""
        if self._power_task is None or self._power_task.done():
            self._power_task = asyncio.create_task(self._power_loop(), name=f"{self.name} power")
            self._power_task.add_done_callback(self._task_done)

    async def _power_loop(self) -> None:
        failures = 0
        while not self.removed and self.powered_off != self.power_off_wanted:
            if self.power_off_wanted:
                await self._power_off()
                continue
            try:
                await self._power_on()
                failures = 0
            except Exception as e:      # API server away, or refusing: a machine that is on keeps trying
                delay = min(_BOOT_RETRY * 2 ** failures, _BOOT_RETRY_MAX)
                failures += 1
                log.warning("node %s: booting failed: %s; trying again in %.1fs", self.name,
                            e or type(e).__name__, delay)
                await asyncio.sleep(delay)

    async def _power_off(self) -> None:
        """Lose power: heartbeats and pod workers stop where they are, and every container is gone."""
        log.info("node %s switched off (%s=off): no more Lease renewals or status; its containers are gone",
                 self.name, POWER_ANNOTATION)
        self.powered_off = True
        await self._stop_work()
        self.lease = None
        self.pod_cidr = ""
        await self.runtime.lose_power()

    async def _power_on(self) -> None:
        """Boot as a rebooted kubelet: register again, post status and renew the Lease at once, and
        reconcile the pods bound here (their containers did not survive; `start` restarts them)."""
        log.info("node %s switched on: booting", self.name)
        self.identity.reboot()
        self.backoff = Backoff(self.group.settings.backoff_initial, self.group.settings.backoff_max)
        self.lease = None
        self.pod_cidr = ""
        self.powered_off = False
        try:
            await self.register()
        except BaseException:
            self.powered_off = True
            raise
        if not self.powered_off and not self.removed:
            self.recorder.event(self._ref(), "Warning", "Rebooted",
                                f"Node {self.name} has been rebooted, boot id: {self.identity.boot_id}")
        await self.start(status_now=True)

    # -- pods -----------------------------------------------------------------------

    async def start(self, status_now: bool = False) -> None:
        """Adopt what the runtime runs, start a worker per pod, clean up the rest, begin heartbeats
        (the first status post at once with `status_now`). A machine switched off starts dark."""
        if self.powered_off:
            await self.runtime.lose_power()     # whatever the runtime had did not survive the power cut
            self._started()
            return
        sandboxes = await self.runtime.list_sandboxes()
        containers = await self.runtime.list_containers()
        stale: list[str] = []
        pods = self.group.pods_of(self.name)
        for pod in pods:
            worker = PodWorker(self, pod)
            stale += worker.adopt(sandboxes, containers)
            if _is_terminal(pod) and not worker.has_runtime_state and not pod["metadata"].get("deletionTimestamp"):
                continue
            self._add_worker(worker)
        self.running = True
        self._spawn(self._runtime_events(), "runtime events")
        self.group.leases.add(self)
        # Post at once if the API shows other conditions than ours (a podCIDR came while registering,
        # or the node controller marked us Unknown while we were away).
        shown = [(c.get("type"), c.get("status"), c.get("reason")) for c in self.conditions]
        wanted = [(c["type"], c["status"], c["reason"]) for c in conditions(*self._ready())]
        self.group.statuses.add(self, first_in=0.0 if status_now or shown != wanted else None)
        known = {p["metadata"]["uid"] for p in pods}
        adopted = sum(1 for w in self.workers.values() if w.has_runtime_state)
        if adopted:
            log.info("node %s: adopted %d running pod(s)", self.name, adopted)
        for cid in stale:
            await self.runtime.remove_container(cid)
        for sandbox in sandboxes:
            if sandbox.pod_uid not in known:
                log.info("node %s: removing pod %s/%s, which is no longer bound here", self.name,
                         sandbox.namespace, sandbox.name)
                for c in containers:
                    if c.sandbox_id == sandbox.id:
                        await self.runtime.stop_container(c.id, 0)
                await self.runtime.remove_sandbox(sandbox.id)
        await volumes.remove_orphans(self.runtime.root_dir, known)     # folders of pods deleted meanwhile
        self._started()

    def _started(self) -> None:
        self.started = True
        if self.runtime.simulates_power and self.powered_off != self.power_off_wanted:
            self._follow_power()     # the annotation changed while starting

    def _add_worker(self, worker: PodWorker) -> None:
        self.workers[worker.uid] = worker
        worker.start()

    def worker_done(self, worker: PodWorker) -> None:
        if self.workers.get(worker.uid) is worker:
            del self.workers[worker.uid]

    def pod_changed(self, pod: Obj) -> None:
        if not self.running or self.removed:
            return
        uid = pod["metadata"]["uid"]
        worker = self.workers.get(uid)
        if worker is not None:
            worker.update(pod)
        elif not _is_terminal(pod):
            self._add_worker(PodWorker(self, pod))

    def pod_removed(self, pod: Obj) -> None:
        worker = self.workers.get((pod.get("metadata") or {}).get("uid", ""))
        if worker is not None:
            worker.removed()

    def live_pod(self, namespace: str, name: str) -> Obj | None:
        return self.group.pods.store.get_object(name, namespace)

    async def _runtime_events(self) -> None:
        async for event in self.runtime.events():
            worker = self.workers.get(event.pod_uid)
            if worker is not None:
                worker.wake()

    def _spawn(self, coro: Any, what: str) -> None:
        task = asyncio.create_task(coro, name=f"{self.name} {what}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("node %s: %s failed: %s", self.name, task.get_name(), task.exception())

    async def _stop_work(self) -> None:
        """Heartbeats, status posts and pod workers stop where they are."""
        self.running = False
        self.group.leases.remove(self)
        self.group.statuses.remove(self)
        tasks = [*self._tasks, *(t for w in self.workers.values() for t in w.tasks())]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.workers.clear()

    async def stop(self) -> None:
        """Stop the agent; the pods' containers keep running (a restarted agent adopts them)."""
        self.running = False
        if self._power_task is not None:
            self._power_task.cancel()
            await asyncio.gather(self._power_task, return_exceptions=True)
        await self._stop_work()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_EVENT_FLUSH_TIMEOUT):
                await self.recorder.close()


class AgentGroup:
    """The node agents of one process, sharing a client, informers and heartbeat schedules.

    `runtime_for(node)` gives each node its runtime; the runtimes belong to the
    caller, who closes them (a group restarted in the same process adopts from them).
    """

    def __init__(self, client: ApiClient, nodes: list[NodeSettings], runtime_for: Callable[[NodeSettings], Runtime],
                 settings: AgentSettings = AgentSettings(), serve: KubeletServer | None = None):
        if not nodes:
            raise ValueError("no nodes to run")
        # The kubelet API (logs, exec) the API server proxies to; started before the Nodes register, so
        # that their daemonEndpoints say its port. None: not served (simulated nodes).
        self.server = serve
        if serve is not None:
            serve.find = self.find_worker
        self.client, self.settings = client, settings
        single = nodes[0].name if len(nodes) == 1 else ""
        # One node: watch just its pods and Node. Many: every bound pod and every Node, dispatched by name.
        self.pods = Informer(client, PODS, field_selector=f"spec.nodeName={single}" if single else "spec.nodeName!=",
                             indexers={NODE_INDEX: _pod_node})
        self.nodes = Informer(client, NODES, field_selector=f"metadata.name={single}" if single else "")
        # Every Service, for the containers' Service environment variables (podconfig.service_environment);
        # a real node's service proxy reads the same cache.
        self.services = Informer(client, SERVICES)
        self.heartbeat_limit = asyncio.Semaphore(settings.heartbeat_concurrency)
        self.pod_write_limit = asyncio.Semaphore(settings.pod_write_concurrency)
        # The nodes' recorders write through a view of the client with a cap of its own: a thousand of them
        # draining at once must not starve pod status writes of connections.
        self.event_client = client.limited(settings.event_concurrency)
        self.leases: Periodic[NodeAgent] = Periodic("lease renewal", settings.renew_interval,
                                                    lambda a: a.renew_lease(), self.heartbeat_limit)
        self.statuses: Periodic[NodeAgent] = Periodic("node status", settings.status_report_interval,
                                                      lambda a: a.post_status(), self.heartbeat_limit)
        self.agents = {n.name: NodeAgent(self, n, runtime_for(n)) for n in nodes}
        self._tasks: list[asyncio.Task] = []
        self.pods.add_event_handler(on_add=self._pod_changed, on_update=lambda old, new: self._pod_changed(new),
                                    on_delete=self._pod_removed)
        self.nodes.add_event_handler(on_add=self._node_changed, on_update=lambda old, new: self._node_changed(new),
                                     on_delete=self._node_removed)

    def pods_of(self, node: str) -> list[Obj]:
        return self.pods.store.by_index(NODE_INDEX, node)

    def service_environment(self, namespace: str, enable_service_links: bool = True) -> dict[str, str]:
        """The Service variables of a container of a pod in `namespace`, from the Services cached now
        (ConfigError, as upstream's kubelet, until they have been listed once)."""
        if not self.services.has_synced:
            raise podconfig.ConfigError("services have not yet been read at least once, cannot construct envvars")
        services = self.services.store.by_index(NAMESPACE_INDEX, namespace)
        if namespace != "default":
            services += [s for s in self.services.store.by_index(NAMESPACE_INDEX, "default")
                         if s["metadata"].get("name") in podconfig.MASTER_SERVICES]
        return podconfig.service_environment(services, namespace, enable_service_links)

    def find_worker(self, namespace: str, name: str) -> PodWorker | None:
        """The worker of the pod of that name running on one of our nodes."""
        pod = self.pods.store.get_object(name, namespace)
        if pod is None:
            return None
        agent = self.agents.get((pod.get("spec") or {}).get("nodeName", ""))
        return agent.workers.get(pod["metadata"]["uid"]) if agent is not None else None

    async def start(self, sync_timeout: float | None = 60.0) -> None:
        """Register every node and start its pods; returns once all are registered."""
        for agent in self.agents.values():
            await agent.runtime.start()
        if self.server is not None:
            port = await self.server.start()
            for agent in self.agents.values():
                agent.identity.kubelet_port = port
        self.pods.start()
        self.nodes.start()
        self.services.start()
        self._tasks = [asyncio.create_task(self.leases.run(), name="lease renewals"),
                       asyncio.create_task(self.statuses.run(), name="node status")]
        async def register(agent: NodeAgent) -> None:
            async with self.heartbeat_limit:
                await agent.register()

        await asyncio.gather(*(register(a) for a in self.agents.values()))
        if not (await self.pods.wait_for_sync(sync_timeout) and await self.nodes.wait_for_sync(sync_timeout)
                and await self.services.wait_for_sync(sync_timeout)):
            raise TimeoutError("the node agents' pod, node and service caches did not sync")
        for agent in self.agents.values():
            await agent.start()
        log.info("%d node agent(s) running", len(self.agents))

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
        await asyncio.gather(*(a.stop() for a in self.agents.values()))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pods.stop()
        await self.nodes.stop()
        await self.services.stop()

    async def run(self) -> None:
        """Start, then run until cancelled."""
        try:
            await self.start()
            await asyncio.gather(*self._tasks)
        finally:
            await self.stop()

    async def __aenter__(self) -> "AgentGroup":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- informer handlers -----------------------------------------------------------

    def _pod_changed(self, pod: Obj) -> None:
        agent = self.agents.get((pod.get("spec") or {}).get("nodeName", ""))
        if agent is not None:
            agent.pod_changed(pod)

    def _pod_removed(self, pod: Obj | DeletedFinalStateUnknown) -> None:
        pod = pod.obj if isinstance(pod, DeletedFinalStateUnknown) else pod
        agent = self.agents.get((pod.get("spec") or {}).get("nodeName", ""))
        if agent is not None:
            agent.pod_removed(pod)

    def _node_changed(self, node: Obj) -> None:
        agent = self.agents.get(node["metadata"]["name"])
        if agent is not None:
            agent.node_changed(node)

    def _node_removed(self, node: Obj | DeletedFinalStateUnknown) -> None:
        node = node.obj if isinstance(node, DeletedFinalStateUnknown) else node
        agent = self.agents.get(node["metadata"]["name"])
        if agent is not None and agent.node_uid == node["metadata"].get("uid"):
            agent.node_deleted()
