"""Stateful properties of a whole live cluster (`boxkube create cluster --provider local --nodes 3`, plus
one extra simulated node agent this module runs itself so that it can kill and restart it).

Hypothesis drives random sequences of steps — scale a Deployment, change its template (good images, a
"bad" one whose pods never become ready, a crashing one), `kubectl rollout undo`, delete pods, make a
pod's container fail its readiness, delete ReplicaSets and Deployments, cordon nodes, SIGTERM/SIGKILL the
extra node's agent; scale a StatefulSet and delete or break its pods — and after each step waits until
the cluster has converged, then checks:

- every ReplicaSet has exactly its desired count of live pods, and no pod outlives its owner;
- while a Deployment rolls (watched throughout the step, not only at its end), available pods never drop
  below `replicas - maxUnavailable` and its ReplicaSets' desired replicas together never exceed
  `replicas + maxSurge` (upstream's bound: for a moment, a pod its ReplicaSet is about to delete is still
  live while the new ReplicaSet's pods are made);
- a StatefulSet never has two pods of one ordinal, creates them in order (each once all lower ordinals
  are Running and Ready) and removes them from the highest ordinal down (OrderedReady);
- a Service's Endpoints and EndpointSlices hold exactly the ready pods it selects;
- no node is given more than its allocatable cpu, memory and pod count.

A failing example prints its shrunk steps (`state.scale(replicas=0)`, ...). For long runs,
BOXKUBE_HYPOTHESIS_EXAMPLES (default 3) sets the examples per machine and BOXKUBE_HYPOTHESIS_STEPS
(default 6) the steps per example.
"""
from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test

from boxkube.api.pods import condition, is_ready
from boxkube.api.quantity import parse_quantity
from boxkube.client import BOOKMARK, DELETED, ApiClient, ApiError, resource

Obj = dict[str, Any]
T = TypeVar("T")

EXAMPLES = int(os.environ.get("BOXKUBE_HYPOTHESIS_EXAMPLES", "3"))
STEPS = int(os.environ.get("BOXKUBE_HYPOTHESIS_STEPS", "6"))
SETTINGS = settings(max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

NAMESPACES, NODES, PODS, LEASES = resource("namespaces"), resource("nodes"), resource("pods"), resource("leases")
DEPLOYMENTS, REPLICASETS, STATEFULSETS = resource("deployments"), resource("replicasets"), resource("statefulsets")
SERVICES, ENDPOINTS, SLICES = resource("services"), resource("endpoints"), resource("endpointslices")

CONVERGE_TIMEOUT = 30.0
# A state that is not the final one of a finished rollout (a rollout stuck on pods that never become
# ready, pods that fit nowhere) has converged once nothing has changed for this long.
QUIET_FOR = 0.6
SIM = "sim.boxkube.dev/"
UNREADY = {SIM + "ready": "false"}
# 1.5 cpu a pod: two fit on a node (4 cpu), a third does not — with four nodes, surges and cordons,
# pods pend for want of room, which the allocatable property is about.
WEB_CPU, DB_CPU = "1500m", "250m"


# -- the world the machines act on ---------------------------------------------------------------------

class ExtraAgent:
    """One simulated node's agent as a process of its own, which the machines stop and restart."""

    def __init__(self, cluster, name: str, log: Path):
        self.cluster, self.name, self.log = cluster, name, log
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("a") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "boxkube.agent", "--kubeconfig", str(self.cluster.kubeconfig), "--simulated",
                 "--node-name", self.name, "--lease-duration", "10"],
                stdout=out, stderr=subprocess.STDOUT, env=self.cluster.env)

    def stop(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)
        self.process.wait(timeout=15)
        self.process = None


@dataclass
class World:
    cluster: Any
    loop: asyncio.AbstractEventLoop
    client: ApiClient
    nodes: dict[str, str]          # short name (worker2, extra) -> Node name
    extra: ExtraAgent

    def run(self, coro: Awaitable[T], timeout: float = 2 * CONVERGE_TIMEOUT) -> T:
        """Run `coro` on the world's event loop, where the background watches live."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def kubectl(self, *args: str, check: bool = True):
        return self.cluster.kubectl(*args, check=check)


async def _node_ready(client: ApiClient, name: str, since: float = 0.0) -> bool:
    """Ready, and (with `since`) heartbeating from an agent started after that time."""
    try:
        node = await client.get(NODES, name)
        lease = await client.get(LEASES, name, "kube-node-lease")
    except ApiError as e:
        if e.is_not_found:
            return False
        raise
    ready = (condition(node, "Ready") or {}).get("status") == "True"
    renewed = _epoch(lease["spec"].get("renewTime", ""))
    return ready and renewed >= since


def _epoch(stamp: str) -> float:
    if not stamp:
        return 0.0
    stamp = stamp.rstrip("Z")
    whole, _, frac = stamp.partition(".")
    return time.mktime(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) - time.timezone + float("0." + (frac or "0"))


async def eventually(check: Callable[[], Awaitable[T]], what: str, timeout: float = CONVERGE_TIMEOUT) -> T:
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")


@pytest.fixture(scope="module")
def world(full_cluster, tmp_path_factory):
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="cluster-properties", daemon=True)
    thread.start()

    async def open_client() -> ApiClient:
        return ApiClient.from_kubeconfig(str(full_cluster.kubeconfig))
    client = asyncio.run_coroutine_threadsafe(open_client(), loop).result()
    workers = {"worker": f"{full_cluster.name}-worker", "worker2": f"{full_cluster.name}-worker2",
               "worker3": f"{full_cluster.name}-worker3"}
    extra = ExtraAgent(full_cluster, f"{full_cluster.name}-extra", tmp_path_factory.mktemp("agent") / "extra.log")
    w = World(full_cluster, loop, client, {**workers, "extra": extra.name}, extra)
    extra.start()
    try:
        w.run(eventually(lambda: _node_ready(client, extra.name), f"node {extra.name} Ready"))
        yield w
    finally:
        if extra.process is not None:
            extra.stop(signal.SIGTERM)
        with contextlib.suppress(Exception):
            w.run(client.delete(NODES, extra.name))
        w.run(client.close())
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


async def delete_namespace(client: ApiClient, ns: str) -> None:
    """Without waiting: the namespace controller empties it while the next example runs."""
    try:
        await client.delete(NAMESPACES, ns)
    except ApiError as e:
        if not e.is_not_found:   # an example that failed before making it
            raise


# -- reading pods -----------------------------------------------------------------------------------------

def name_of(obj: Obj) -> str:
    return obj["metadata"]["name"]


def terminating(pod: Obj) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def live(pod: Obj) -> bool:
    return not terminating(pod) and pod.get("status", {}).get("phase") not in ("Succeeded", "Failed")


def unschedulable(pod: Obj) -> bool:
    scheduled = condition(pod, "PodScheduled") or {}
    return not pod["spec"].get("nodeName") and scheduled.get("reason") == "Unschedulable"


def annotated_unready(pod: Obj) -> bool:
    return (pod["metadata"].get("annotations") or {}).get(SIM + "ready") == "false"


def controller_uid(obj: Obj) -> str | None:
    return next((r["uid"] for r in obj["metadata"].get("ownerReferences") or [] if r.get("controller")), None)


def _requests(pod: Obj) -> dict[str, Fraction]:
    """The pod's effective requests (the larger of the containers' sum and any init container's)."""
    total: dict[str, Fraction] = {}
    for c in pod["spec"].get("containers") or []:
        for k, v in ((c.get("resources") or {}).get("requests") or {}).items():
            total[k] = total.get(k, Fraction(0)) + parse_quantity(str(v)).value
    for c in pod["spec"].get("initContainers") or []:
        for k, v in ((c.get("resources") or {}).get("requests") or {}).items():
            total[k] = max(total.get(k, Fraction(0)), parse_quantity(str(v)).value)
    return total


async def node_overcommits(client: ApiClient) -> list[str]:
    """Nodes given more than their allocatable cpu, memory or pods (terminating pods still hold theirs)."""
    nodes = (await client.list(NODES))["items"]
    pods = [p for p in (await client.list(PODS))["items"]
            if p["spec"].get("nodeName") and p.get("status", {}).get("phase") not in ("Succeeded", "Failed")]
    found = []
    for node in nodes:
        on = [p for p in pods if p["spec"]["nodeName"] == name_of(node)]
        allocatable = node["status"].get("allocatable") or {}
        used = {"pods": Fraction(len(on))}
        for p in on:
            for k, v in _requests(p).items():
                used[k] = used.get(k, Fraction(0)) + v
        for k in ("cpu", "memory", "pods"):
            if k in allocatable and used.get(k, 0) > parse_quantity(str(allocatable[k])).value:
                found.append(f"{name_of(node)}: {k} {float(used[k])} > allocatable {allocatable[k]} "
                             f"({sorted(name_of(p) for p in on)})")
    return found


async def endpoint_mismatches(client: ApiClient, ns: str, service: str, pods: list[Obj]) -> list[str]:
    """How the Service's Endpoints and EndpointSlices differ from its selected pods' readiness:
    ready live pods with an IP are addresses, the other live ones with an IP notReadyAddresses."""
    with_ip = [p for p in pods if live(p) and p.get("status", {}).get("podIP")]
    ready = {(p["status"]["podIP"], p["metadata"]["uid"]) for p in with_ip if is_ready(p)}
    not_ready = {(p["status"]["podIP"], p["metadata"]["uid"]) for p in with_ip if not is_ready(p)}
    problems = []
    try:
        ep = await client.get(ENDPOINTS, service, ns)
    except ApiError as e:
        if not e.is_not_found:
            raise
        ep = {}
    got_ready = {(a["ip"], a.get("targetRef", {}).get("uid")) for s in ep.get("subsets") or [] for a in s.get("addresses") or []}
    got_not_ready = {(a["ip"], a.get("targetRef", {}).get("uid"))
                     for s in ep.get("subsets") or [] for a in s.get("notReadyAddresses") or []}
    if got_ready != ready or got_not_ready != not_ready:
        problems.append(f"Endpoints {service}: ready {sorted(got_ready)} / not ready {sorted(got_not_ready)}, "
                        f"pods: ready {sorted(ready)} / not ready {sorted(not_ready)}")
    slices = (await client.list(SLICES, ns, label_selector=f"kubernetes.io/service-name={service}"))["items"]
    sliced = {(e["addresses"][0], e.get("targetRef", {}).get("uid"), bool(e.get("conditions", {}).get("ready")))
              for s in slices for e in s.get("endpoints") or []}
    wanted = {(ip, uid, True) for ip, uid in ready} | {(ip, uid, False) for ip, uid in not_ready}
    if sliced != wanted:
        problems.append(f"EndpointSlices of {service}: {sorted(sliced)}, pods: {sorted(wanted)}")
    return problems


# -- a watch on the objects of a namespace, checked at every event -------------------------------------

class Watch:
    """Every object of one resource in a namespace as one watch shows it; `on_event(kind, before, obj)`
    runs at each event and returns a violation to record, if any. The watch runs on the world's loop
    during the whole example."""

    def __init__(self, client: ApiClient, resource: Any, ns: str,
                 on_event: Callable[[str, Obj | None, Obj], str | None]):
        self.client, self.resource, self.ns, self.on_event = client, resource, ns, on_event
        self.items: dict[str, Obj] = {}
        self.violations: list[str] = []
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        listed = await self.client.list(self.resource, self.ns)
        self.items = {name_of(o): o for o in listed["items"]}
        self.task = asyncio.create_task(self._run(listed["metadata"]["resourceVersion"]))

    async def _run(self, rv: str) -> None:
        try:
            while True:   # the server ends watches now and then: carry on from the last revision seen
                async with self.client.watch(self.resource, self.ns, resource_version=rv) as events:
                    async for kind, obj in events:
                        rv = obj["metadata"]["resourceVersion"]
                        if kind == BOOKMARK:
                            continue
                        before = self.items.get(name_of(obj))
                        if kind == DELETED:
                            self.items.pop(name_of(obj), None)
                        else:
                            self.items[name_of(obj)] = obj
                        problem = self.on_event(kind, before, obj)
                        if problem and len(self.violations) < 3:   # the first ones tell the story
                            self.violations.append(problem)
        except asyncio.CancelledError:
            raise
        except Exception as e:   # a lost watch must fail the example, not pass it unwatched
            self.violations.append(f"the watch broke: {e!r}")

    async def caught_up(self) -> None:
        """Wait until the watch has seen the objects exactly as a list shows them now."""
        async def same() -> bool:
            listed = {name_of(o): o["metadata"]["resourceVersion"]
                      for o in (await self.client.list(self.resource, self.ns))["items"]}
            return listed == {n: o["metadata"]["resourceVersion"] for n, o in self.items.items()} or (
                self.task is not None and self.task.done())
        await eventually(same, "the watch catching up with a list")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


# -- convergence -----------------------------------------------------------------------------------------

@dataclass
class Verdict:
    """One look at the namespace: what still differs from a converged state, whether the state must
    also hold still for QUIET_FOR to count (anything but a finished rollout), and what to compare."""
    unmet: list[str] = field(default_factory=list)
    needs_quiet: bool = False
    fingerprint: Any = None


async def converge(look: Callable[[], Awaitable[Verdict]], after: str) -> None:
    deadline = time.monotonic() + CONVERGE_TIMEOUT
    quiet_since, last_print, verdict = None, None, Verdict()
    while time.monotonic() < deadline:
        verdict = await look()
        if not verdict.unmet:
            if not verdict.needs_quiet:
                return
            if verdict.fingerprint != last_print or quiet_since is None:
                quiet_since, last_print = time.monotonic(), verdict.fingerprint
            elif time.monotonic() - quiet_since >= QUIET_FOR:
                return
        else:
            quiet_since = None
        await asyncio.sleep(0.1)
    raise AssertionError(f"no convergence within {CONVERGE_TIMEOUT} s after {after}:\n  " + "\n  ".join(
        verdict.unmet or ["the state kept changing"]))


def pod_state(p: Obj) -> tuple:
    return (p["metadata"]["uid"], p["spec"].get("nodeName", ""), is_ready(p), terminating(p))


# -- the Deployment machine --------------------------------------------------------------------------------

# Each template variant is told apart by its image. The bad ones: pods that never become ready, and
# containers that exit with an error every 300 ms (crash-looping) without ever having been ready.
TEMPLATES: dict[str, tuple[str, dict[str, str]]] = {
    "v1": ("nginx:1.25", {}),
    "v2": ("nginx:1.26", {}),
    "v3": ("nginx:1.27", {}),
    "never-ready": ("nginx:1.28-rc1", {SIM + "ready": "false"}),
    "crashing": ("nginx:1.29-broken", {SIM + "exit-after": "300ms", SIM + "exit-code": "1", SIM + "ready-after": "1h"}),
}
GOOD = {"v1", "v2", "v3"}
BY_IMAGE = {image: variant for variant, (image, _) in TEMPLATES.items()}
SIM_KEYS = {k for _, annotations in TEMPLATES.values() for k in annotations}
# (maxSurge, maxUnavailable): integers and percentages (surge rounds up, unavailable down)
ROLLING = [(1, 0), (0, 1), (1, 1), (2, 0), ("25%", "25%"), ("50%", 0), (0, "50%")]


def web_template(variant: str) -> Obj:
    image, annotations = TEMPLATES[variant]
    return {"metadata": {"labels": {"app": "web"}, "annotations": dict(annotations)},
            "spec": {"containers": [{"name": "web", "image": image, "ports": [{"containerPort": 80}],
                                     "resources": {"requests": {"cpu": WEB_CPU, "memory": "64Mi"}}}]}}


def variant_of(template_or_pod: Obj) -> str:
    return BY_IMAGE[template_or_pod["spec"]["containers"][0]["image"]]


def resolve(value: int | str, replicas: int, round_up: bool) -> int:
    if isinstance(value, int):
        return value
    exact = Fraction(int(value.rstrip("%")) * replicas, 100)
    return math.ceil(exact) if round_up else math.floor(exact)


def bounds(replicas: int, surge: int | str, unavailable: int | str) -> tuple[int, int]:
    """(least available, most live) pods a rolling update of `replicas` may pass through."""
    s, u = resolve(surge, replicas, True), resolve(unavailable, replicas, False)
    if s == 0 and u == 0:   # upstream's rule for percentages that both round to nothing
        u = 1
    return max(replicas - u, 0), replicas + s


def revision(rs: Obj) -> int:
    return int((rs["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision", "0"))


class DeploymentMachine(RuleBasedStateMachine):
    """A Deployment `web` (1.5 cpu a pod) behind a Service `web`, on three nodes and an extra one."""

    world: World

    def __init__(self) -> None:
        super().__init__()
        self.ns = f"deploy-{uuid.uuid4().hex[:8]}"
        self.watch: Watch | None = None
        self.rs_watch: Watch | None = None
        # While a rolling update runs: the step, and the (least available, most live) pods it allows,
        # checked at every pod event.
        self.rolling_step = ""
        self.rolling_bounds: tuple[int, int] | None = None
        self.cordoned: dict[str, set[str]] = {}   # node -> uids of the pods it had when cordoned
        self.extra_agent_killed = False

    # -- set-up and clean-up --

    @initialize(replicas=st.integers(1, 4), rolling=st.sampled_from(ROLLING))
    def create(self, replicas: int, rolling: tuple[int | str, int | str]) -> None:
        self.replicas, (self.surge, self.unavailable) = replicas, rolling
        w = self.world
        w.run(self._create())
        self.used = {"v1"}
        self.settle("create")

    async def _create(self) -> None:
        client = self.world.client
        await client.create(NAMESPACES, {"metadata": {"name": self.ns}})
        await client.create(SERVICES, {"metadata": {"name": "web"}, "spec": {
            "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 80}]}}, self.ns)
        self.watch = Watch(client, PODS, self.ns, self._check_available)
        self.rs_watch = Watch(client, REPLICASETS, self.ns, self._check_surge)
        await self.watch.start()
        await self.rs_watch.start()
        await client.create(DEPLOYMENTS, self._deployment(), self.ns)

    def _deployment(self) -> Obj:
        return {"metadata": {"name": "web"}, "spec": {
            "replicas": self.replicas, "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": self.surge, "maxUnavailable": self.unavailable}},
            "template": web_template("v1")}}

    def teardown(self) -> None:
        w = self.world
        for watch in (self.watch, self.rs_watch):
            if watch is not None:
                w.run(watch.stop())
        if self.extra_agent_killed:
            w.extra.start()
        for node in self.cordoned:
            w.run(w.client.patch(NODES, w.nodes[node], {"spec": {"unschedulable": None}}))
        w.run(delete_namespace(w.client, self.ns))
        w.run(eventually(lambda: _node_ready(w.client, w.extra.name), "the extra node Ready again"))

    # -- steps --

    @rule(replicas=st.integers(0, 4))
    def scale(self, replicas: int) -> None:
        self.replicas = replicas
        self.world.run(self.world.client.scale(DEPLOYMENTS, "web", replicas, self.ns))
        self.settle(f"scale(replicas={replicas})")

    @rule(template=st.sampled_from(list(TEMPLATES)))
    def set_template(self, template: str) -> None:
        self.used.add(template)
        patch = {"spec": {"template": {"metadata": {"annotations": {k: None for k in SIM_KEYS} | TEMPLATES[template][1]},
                                       "spec": web_template(template)["spec"]}}}
        self.rolling(lambda: self.world.client.patch(DEPLOYMENTS, "web", patch, self.ns), f"set_template({template!r})")

    @precondition(lambda self: len(self.used) >= 2)
    @rule()
    def rollout_undo(self) -> None:
        """`kubectl rollout undo` brings back the template of the revision before the current one."""
        w = self.world
        rses = w.run(w.client.list(REPLICASETS, self.ns))["items"]
        by_revision = sorted(rses, key=revision)
        previous = by_revision[-2] if len(by_revision) >= 2 else None

        async def undo() -> None:
            result = await asyncio.to_thread(w.kubectl, "rollout", "undo", "deployment/web", "-n", self.ns, check=False)
            if previous is None:
                assert result.returncode != 0, f"undo without history succeeded: {result.stdout}"
            else:
                assert result.returncode == 0, result.stderr
        self.rolling(undo, "rollout_undo()")
        if previous is not None:
            template = w.run(w.client.get(DEPLOYMENTS, "web", self.ns))["spec"]["template"]
            assert variant_of(template) == variant_of(previous["spec"]["template"]), (
                f"undo went to {variant_of(template)}, not to revision {revision(previous)} "
                f"({variant_of(previous['spec']['template'])})")

    @rule(pick=st.integers(0, 7), how=st.sampled_from(["delete", "fail-readiness"]))
    def break_pod(self, pick: int, how: str) -> None:
        """Delete a pod, or make its container fail readiness from now on (the simulated runtime reads
        the annotation on every sync)."""
        w, pods = self.world, self._live_pods()
        if pods:
            victim = name_of(pods[pick % len(pods)])
            if how == "delete":
                w.run(w.client.delete(PODS, victim, self.ns))
            else:
                w.run(w.client.patch(PODS, victim, {"metadata": {"annotations": UNREADY}}, self.ns))
        self.settle(f"break_pod(pick={pick}, how={how!r})")

    @rule(owner=st.sampled_from(["ReplicaSet", "Deployment"]))
    def delete_owner(self, owner: str) -> None:
        """Delete the newest ReplicaSet (the garbage collector removes its pods, the Deployment makes it
        again), or the Deployment (its ReplicaSets and all their pods go; then it is made anew)."""
        w = self.world
        if owner == "ReplicaSet":
            rses = w.run(w.client.list(REPLICASETS, self.ns))["items"]
            if rses:
                w.run(w.client.delete(REPLICASETS, name_of(max(rses, key=revision)), self.ns,
                                      propagation_policy="Background"))
        else:
            async def gone() -> bool:
                return not (await w.client.list(REPLICASETS, self.ns))["items"] and not [
                    p for p in (await w.client.list(PODS, self.ns))["items"] if controller_uid(p)]

            w.run(w.client.delete(DEPLOYMENTS, "web", self.ns, propagation_policy="Background"))
            w.run(eventually(gone, "the ReplicaSets and pods of a deleted Deployment gone"))
            self.used = {"v1"}
            w.run(w.client.create(DEPLOYMENTS, self._deployment(), self.ns))
        self.settle(f"delete_owner({owner!r})")

    @rule(node=st.sampled_from(["worker", "worker2", "worker3", "extra"]), unschedulable=st.booleans())
    def set_unschedulable(self, node: str, unschedulable: bool) -> None:
        w = self.world
        if unschedulable and node not in self.cordoned:
            self.cordoned[node] = {p["metadata"]["uid"] for p in w.run(w.client.list(PODS, self.ns))["items"]
                                   if p["spec"].get("nodeName") == w.nodes[node]}
        elif not unschedulable:
            self.cordoned.pop(node, None)
        w.run(w.client.patch(NODES, w.nodes[node], {"spec": {"unschedulable": True if unschedulable else None}}))
        self.settle(f"set_unschedulable({node!r}, {unschedulable})")

    @rule(sig=st.sampled_from(["SIGTERM", "SIGKILL"]), down_for=st.sampled_from([0.0, 1.0]))
    def restart_extra_agent(self, sig: str, down_for: float) -> None:
        """The extra node's agent dies and comes back well within the node grace period: its pods run
        again (new containers) and nothing is rescheduled."""
        w = self.world
        before = {p["metadata"]["uid"]: _container_ids(p) for p in self._live_pods()
                  if p["spec"].get("nodeName") == w.extra.name}
        w.extra.stop(signal.Signals[sig])
        self.extra_agent_killed = True
        time.sleep(down_for)
        started = time.time()
        w.extra.start()
        self.extra_agent_killed = False
        w.run(eventually(lambda: _node_ready(w.client, w.extra.name, started), "the restarted agent heartbeating"))

        async def restarted() -> bool:
            pods = {p["metadata"]["uid"]: p for p in (await w.client.list(PODS, self.ns))["items"]}
            return all(uid not in pods or _container_ids(pods[uid]) != ids for uid, ids in before.items())
        w.run(eventually(restarted, "the restarted agent running its pods in new containers"))
        self.settle(f"restart_extra_agent({sig!r}, down_for={down_for})")

    # -- helpers --

    def _live_pods(self) -> list[Obj]:
        pods = self.world.run(self.world.client.list(PODS, self.ns))["items"]
        return sorted((p for p in pods if live(p)), key=name_of)

    def rolling(self, change: Callable[[], Awaitable[Any]], step: str) -> None:
        """Make a template change with the rolling-update bounds checked at every pod and ReplicaSet event
        until it settles."""
        w = self.world
        least, most = bounds(self.replicas, self.surge, self.unavailable)
        available_now = sum(1 for p in self.watch.items.values() if live(p) and is_ready(p))
        # Pods that are unready already (a stuck rollout, a failed readiness) are not the update's doing.
        self.rolling_step, self.rolling_bounds = step, (min(least, available_now), most)
        try:
            w.run(change())
            self.settle(step)
        finally:
            self.rolling_bounds = None

    def _check_available(self, kind: str, before: Obj | None, pod: Obj) -> str | None:
        if self.rolling_bounds is None:
            return None
        least = self.rolling_bounds[0]
        available = sum(1 for p in self.watch.items.values() if live(p) and is_ready(p))
        if available < least:
            return f"{self.rolling_step}: at {kind} {name_of(pod)}, {available} pods available, fewer than {least}"
        return None

    def _check_surge(self, kind: str, before: Obj | None, rs: Obj) -> str | None:
        if self.rolling_bounds is None:
            return None
        most = self.rolling_bounds[1]
        desired = {name_of(r): r["spec"].get("replicas", 1) for r in self.rs_watch.items.values()}
        if sum(desired.values()) > most:
            return f"{self.rolling_step}: at {kind} {name_of(rs)}, ReplicaSets want {sorted(desired.items())}, more than {most}"
        return None

    def settle(self, step: str) -> None:
        w = self.world
        w.run(converge(self._look, step))
        w.run(self.watch.caught_up())
        w.run(self.rs_watch.caught_up())

    async def _look(self) -> Verdict:
        client, v = self.world.client, Verdict()
        d = await client.get(DEPLOYMENTS, "web", self.ns)
        rses = [rs for rs in (await client.list(REPLICASETS, self.ns))["items"]]
        pods = (await client.list(PODS, self.ns))["items"]
        spec, status = d["spec"], d.get("status") or {}
        if status.get("observedGeneration", 0) < d["metadata"]["generation"]:
            v.unmet.append("the Deployment's generation is not observed yet")
        mine = [rs for rs in rses if controller_uid(rs) == d["metadata"]["uid"]]
        for rs in rses:
            if rs not in mine:
                v.unmet.append(f"ReplicaSet {name_of(rs)} outlives its Deployment")
        uids = {rs["metadata"]["uid"] for rs in mine}
        for p in pods:
            if terminating(p):
                v.unmet.append(f"pod {name_of(p)} still terminating")
            elif controller_uid(p) not in uids:
                v.unmet.append(f"pod {name_of(p)} outlives its owner {controller_uid(p)}")
        current = variant_of(spec["template"])
        new = [rs for rs in mine if variant_of(rs["spec"]["template"]) == current]
        for rs in mine:
            owned = [p for p in pods if live(p) and controller_uid(p) == rs["metadata"]["uid"]]
            want, rs_status = rs["spec"]["replicas"], rs.get("status") or {}
            if len(owned) != want:
                v.unmet.append(f"ReplicaSet {name_of(rs)} wants {want} pods, has {len(owned)}")
            if (rs_status.get("observedGeneration", 0) < rs["metadata"]["generation"] or rs_status.get("replicas", 0) != len(owned)
                    or rs_status.get("availableReplicas", 0) != sum(is_ready(p) for p in owned)):
                v.unmet.append(f"ReplicaSet {name_of(rs)}'s status is behind its pods")
        if status.get("replicas", 0) != sum((rs.get("status") or {}).get("replicas", 0) for rs in mine) or (
                status.get("availableReplicas", 0) != sum((rs.get("status") or {}).get("availableReplicas", 0) for rs in mine)):
            v.unmet.append("the Deployment's status is behind its ReplicaSets")
        pending = False
        for p in pods:
            if not live(p):
                continue
            if unschedulable(p):
                pending = True
                continue
            expected = variant_of(p) in GOOD and not annotated_unready(p)
            if not p["spec"].get("nodeName") or (expected and p["status"].get("phase") != "Running"):
                v.unmet.append(f"pod {name_of(p)} is not placed and running yet")
            elif is_ready(p) != expected:
                v.unmet.append(f"pod {name_of(p)} ready={is_ready(p)}, expected {expected}")
        v.unmet += await endpoint_mismatches(client, self.ns, "web", pods)
        finished = current in GOOD and not pending and not any(annotated_unready(p) for p in pods if live(p))
        if finished:
            # A good template with room for every pod: the rollout must complete.
            if len(new) != 1 or new[0]["spec"]["replicas"] != spec["replicas"] or any(
                    rs["spec"]["replicas"] for rs in mine if rs not in new):
                v.unmet.append(f"rollout of {current} not complete: "
                               f"{[(name_of(rs), rs['spec']['replicas']) for rs in mine]}")
        v.needs_quiet = not finished
        v.fingerprint = (d["metadata"]["generation"], sorted((name_of(rs), rs["spec"]["replicas"]) for rs in mine),
                         sorted(pod_state(p) for p in pods))
        return v

    # -- properties that must hold in every converged state --

    @invariant()
    def no_violation_while_rolling(self) -> None:
        violations = self.watch.violations + self.rs_watch.violations
        assert not violations, "during a rolling update: " + "; ".join(violations)

    @invariant()
    def no_node_overcommitted(self) -> None:
        found = self.world.run(node_overcommits(self.world.client))
        assert not found, "over allocatable: " + "; ".join(found)

    @invariant()
    def nothing_newly_placed_on_cordoned_nodes(self) -> None:
        w = self.world
        pods = w.run(w.client.list(PODS, self.ns))["items"]
        for node, had in self.cordoned.items():
            newcomers = [name_of(p) for p in pods if p["spec"].get("nodeName") == w.nodes[node] and p["metadata"]["uid"] not in had]
            assert not newcomers, f"pods {newcomers} were placed on unschedulable node {w.nodes[node]}"


def _container_ids(pod: Obj) -> tuple:
    return tuple(c.get("containerID", "") for c in pod.get("status", {}).get("containerStatuses") or [])


# -- the StatefulSet machine ---------------------------------------------------------------------------------

ORDINAL = re.compile(r"^db-(\d+)$")


def ordinal(pod: Obj) -> int:
    match = ORDINAL.match(name_of(pod))
    assert match, f"pod {name_of(pod)} is not named like an ordinal of db"
    return int(match.group(1))


class StatefulSetMachine(RuleBasedStateMachine):
    """A StatefulSet `db` (OrderedReady) behind a headless Service `db`."""

    world: World

    def __init__(self) -> None:
        super().__init__()
        self.ns = f"sts-{uuid.uuid4().hex[:8]}"
        self.watch: Watch | None = None
        self.deleted_by_us: set[str] = set()     # uids of pods a step deleted, not the controller

    @initialize(replicas=st.integers(1, 3))
    def create(self, replicas: int) -> None:
        self.replicas = replicas
        self.world.run(self._create())
        self.settle("create")

    async def _create(self) -> None:
        client = self.world.client
        await client.create(NAMESPACES, {"metadata": {"name": self.ns}})
        await client.create(SERVICES, {"metadata": {"name": "db"}, "spec": {
            "clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 5432}]}}, self.ns)
        self.watch = Watch(client, PODS, self.ns, self._check_order)
        await self.watch.start()
        await client.create(STATEFULSETS, {"metadata": {"name": "db"}, "spec": {
            "replicas": self.replicas, "serviceName": "db", "podManagementPolicy": "OrderedReady",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{
                "name": "db", "image": "postgres:17", "ports": [{"containerPort": 5432}],
                "resources": {"requests": {"cpu": DB_CPU, "memory": "64Mi"}}}]}}}}, self.ns)

    def teardown(self) -> None:
        if self.watch is not None:
            self.world.run(self.watch.stop())
        self.world.run(delete_namespace(self.world.client, self.ns))

    @rule(replicas=st.integers(0, 4))
    def scale(self, replicas: int) -> None:
        self.replicas = replicas
        self.world.run(self.world.client.scale(STATEFULSETS, "db", replicas, self.ns))
        self.settle(f"scale(replicas={replicas})")

    @rule(ordinal=st.integers(0, 3))
    def delete_pod(self, ordinal: int) -> None:
        w = self.world
        pod = self.watch.items.get(f"db-{ordinal}")
        if pod is not None:
            self.deleted_by_us.add(pod["metadata"]["uid"])
            with contextlib.suppress(ApiError):
                w.run(w.client.delete(PODS, name_of(pod), self.ns, preconditions={"uid": pod["metadata"]["uid"]}))
        self.settle(f"delete_pod(ordinal={ordinal})")

    @rule(ordinal=st.integers(0, 3), ready=st.booleans())
    def set_pod_readiness(self, ordinal: int, ready: bool) -> None:
        """A container fails (or passes again) its readiness: OrderedReady then holds up further changes."""
        w = self.world
        if f"db-{ordinal}" in self.watch.items:
            with contextlib.suppress(ApiError):
                w.run(w.client.patch(PODS, f"db-{ordinal}", {"metadata": {"annotations": {
                    SIM + "ready": None if ready else "false"}}}, self.ns))
        self.settle(f"set_pod_readiness(ordinal={ordinal}, ready={ready})")

    def settle(self, step: str) -> None:
        self.world.run(converge(self._look, step))
        self.world.run(self.watch.caught_up())

    async def _look(self) -> Verdict:
        client, v = self.world.client, Verdict()
        sts = await client.get(STATEFULSETS, "db", self.ns)
        pods = (await client.list(PODS, self.ns))["items"]
        status = sts.get("status") or {}
        if status.get("observedGeneration", 0) < sts["metadata"]["generation"]:
            v.unmet.append("the StatefulSet's generation is not observed yet")
        present = [p for p in pods if live(p)]
        for p in pods:
            if terminating(p):
                v.unmet.append(f"pod {name_of(p)} still terminating")
            elif not p["spec"].get("nodeName") or p["status"].get("phase") != "Running":
                v.unmet.append(f"pod {name_of(p)} is not placed and running yet")
            elif is_ready(p) == annotated_unready(p):
                v.unmet.append(f"pod {name_of(p)} ready={is_ready(p)}, its annotation says otherwise")
        if status.get("replicas", 0) != len(present) or status.get("readyReplicas", 0) != sum(map(is_ready, present)):
            v.unmet.append("the StatefulSet's status is behind its pods")
        v.unmet += await endpoint_mismatches(client, self.ns, "db", pods)
        healthy = not any(annotated_unready(p) for p in present)
        if healthy and sorted(map(ordinal, present)) != list(range(sts["spec"]["replicas"])):
            v.unmet.append(f"ordinals {sorted(map(ordinal, present))}, want 0..{sts['spec']['replicas'] - 1}")
        # With an unready pod OrderedReady stops where it is: converged once that holds still.
        v.needs_quiet = not healthy
        v.fingerprint = sorted(pod_state(p) for p in pods)
        return v

    def _check_order(self, kind: str, before: Obj | None, pod: Obj) -> str | None:
        others = [p for n, p in self.watch.items.items() if n != name_of(pod)]
        mine = ordinal(pod)
        if before is None and kind != DELETED:
            if any(ordinal(p) == mine for p in others):
                return f"two pods of ordinal {mine}"
            blocking = [name_of(p) for p in others if ordinal(p) < mine and (terminating(p) or not is_ready(p))]
            missing = set(range(mine)) - {ordinal(p) for p in others}
            if blocking or missing:
                return (f"{name_of(pod)} created while lower ordinals were not all Running and Ready "
                        f"(not ready: {blocking}, missing: {sorted(missing)})")
        newly_deleted = (kind == DELETED and (before is None or not terminating(before))) or (
            kind != DELETED and terminating(pod) and before is not None and not terminating(before))
        if newly_deleted and pod["metadata"]["uid"] not in self.deleted_by_us:
            higher = [name_of(p) for p in others if ordinal(p) > mine]
            if higher:
                return f"{name_of(pod)} deleted while higher ordinals {higher} remain"
        return None

    @invariant()
    def ordinals_unique_created_in_order_removed_in_reverse(self) -> None:
        assert not self.watch.violations, "; ".join(self.watch.violations)

    @invariant()
    def no_node_overcommitted(self) -> None:
        found = self.world.run(node_overcommits(self.world.client))
        assert not found, "over allocatable: " + "; ".join(found)


# -- the tests ---------------------------------------------------------------------------------------------

def test_deployment_replicaset_service_and_nodes(world):
    DeploymentMachine.world = world
    run_state_machine_as_test(DeploymentMachine, settings=SETTINGS)


def test_statefulset_ordered_ready(world):
    StatefulSetMachine.world = world
    run_state_machine_as_test(StatefulSetMachine, settings=SETTINGS)
