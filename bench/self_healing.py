"""Self-healing: from a simulated node's agent dying to all its pods Running elsewhere.

    python bench/self_healing.py [--pods 10] [--nodes 3] [--timeout 180]

One run creates, in a temporary BOXKUBE_HOME, a cluster with the `local`
provider and boxkube's default timings (node monitor grace period 10 s, pod
eviction timeout 20 s: the API server gives every pod not-ready/unreachable
tolerations of 20 s), then:

1. starts one more node agent as its own process (`python -m boxkube.agent
   --simulated --node-name ...`), so that one node can die alone;
2. cordons the cluster's other nodes, creates a Deployment of `--pods`
   replicas -- all land on the extra node -- waits until they are Running,
   and uncordons the others;
3. SIGKILLs the extra agent (no goodbye: its Lease just stops being renewed)
   and, through watches opened before any of this, times each step of the
   healing from the kill:
   - the node's Ready condition becoming Unknown (node lifecycle: no Lease
     renewal within the grace period) and its `unreachable` NoExecute taint;
   - the pods being evicted (deletionTimestamp set by the taint-eviction
     controller once their tolerationSeconds has passed);
   - their replacements created by the ReplicaSet, and Running on the other nodes.

The total is compared with grace period + eviction timeout. The grace period
counts from the last Lease renewal the controller saw, which may be up to a
renewal interval (a quarter of the 10 s Lease) before the kill: a node killed
at a random moment goes Unknown 7.5-10 s later. The bench kills the agent
right after a renewal, so the full grace period shows. The evicted pods stay
Terminating on the dead node, as upstream: nobody is left there to confirm
they stopped.

This prints figures; it is not a pass/fail test.
"""
from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boxkube.client import ApiClient
from boxkube.client.resources import resource
from boxkube.cluster.config import Timings
from boxkube.cluster.process import ProcessRecord, start_detached, stop_process
from boxkube.controllers.nodelifecycle import NODE_LEASE_NAMESPACE, TAINT_UNREACHABLE, ready_status

# bench/ is on sys.path when a bench runs as `python bench/NAME.py`.
from harness import CpuMeter, LocalCluster, cpu_line, follow, machine_facts, run_loop, start_local_cluster

CLUSTER = "bench-self-healing"
VICTIM = f"{CLUSTER}-victim"
NAMESPACE = "bench"
APP = "heal"
PODS, NODES, LEASES = resource("pods"), resource("nodes"), resource("leases")
DEPLOYMENTS, NAMESPACES = resource("deployments.apps"), resource("namespaces")

Obj = dict[str, Any]


@dataclass
class PodTimes:
    """perf_counter() times at which the watch showed the pod so."""
    node: str = ""
    added: float = 0.0
    running: float | None = None
    deleting: float | None = None        # deletionTimestamp first seen


@dataclass
class World:
    """What the watches have shown so far: the extra node and the Deployment's pods."""
    pods: dict[str, PodTimes] = field(default_factory=dict)
    victim_ready: str | None = None
    not_ready: float | None = None           # the victim's Ready went from True to something else
    tainted: float | None = None             # its unreachable NoExecute taint appeared
    last_renewal: float | None = None        # its Lease was last seen renewed

    def on_node(self, _kind: str, node: Obj) -> bool:
        if node["metadata"]["name"] != VICTIM:
            return False
        now, status = time.perf_counter(), ready_status(node)
        if self.victim_ready == "True" and status != "True" and self.not_ready is None:
            self.not_ready = now
        self.victim_ready = status
        taints = (node.get("spec") or {}).get("taints") or []
        if self.tainted is None and any(t.get("key") == TAINT_UNREACHABLE and t.get("effect") == "NoExecute"
                                        for t in taints):
            self.tainted = now
        return False

    def on_lease(self, _kind: str, lease: Obj) -> bool:
        if lease["metadata"]["name"] == VICTIM:
            self.last_renewal = time.perf_counter()
        return False

    def on_pod(self, kind: str, pod: Obj) -> bool:
        if ((pod["metadata"].get("labels") or {}).get("app")) != APP or kind == "DELETED":
            return False
        now = time.perf_counter()
        times = self.pods.setdefault(pod["metadata"]["name"], PodTimes(added=now))
        times.node = (pod.get("spec") or {}).get("nodeName") or ""
        if times.running is None and (pod.get("status") or {}).get("phase") == "Running":
            times.running = now
        if times.deleting is None and pod["metadata"].get("deletionTimestamp"):
            times.deleting = now
        return False

    def running_on(self, node: str) -> list[str]:
        return [n for n, t in self.pods.items() if t.node == node and t.running is not None and t.deleting is None]


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait for the watches to show `predicate()` true (their handlers note the times, so this
    polling costs nothing in precision)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.01)


def deployment(replicas: int) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": APP},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": APP}},
                     "template": {"metadata": {"labels": {"app": APP}},
                                  "spec": {"containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10"}]}}}}


def start_victim(cluster: LocalCluster) -> ProcessRecord:
    """The extra node's agent, as its own process (the cluster's nodes all share one)."""
    argv = [sys.executable, "-m", "boxkube.agent", "--kubeconfig", str(cluster.kubeconfig), "--simulated",
            "--node-name", VICTIM]
    return start_detached("victim agent", argv, cluster.home / "victim-agent.log", cwd=cluster.home,
                          env=cluster.environ)


async def set_unschedulable(client: ApiClient, nodes: list[str], unschedulable: bool) -> None:
    await asyncio.gather(*(client.patch(NODES, n, {"spec": {"unschedulable": unschedulable}}) for n in nodes))


@dataclass
class Result:
    pods: int
    killed: float = 0.0
    world: World = field(default_factory=World)
    originals: list[str] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    timed_out: str = ""

    def replacements(self) -> list[PodTimes]:
        return [t for n, t in self.world.pods.items() if n not in self.originals and t.node != VICTIM]


async def measure(cluster: LocalCluster, victim: ProcessRecord, replicas: int, timeout: float) -> Result:
    result = Result(replicas)
    world = result.world
    async with cluster.client() as client:
        await client.create(NAMESPACES, {"metadata": {"name": NAMESPACE}})
        # Opened before anything happens, so every step below is seen as it happens.
        watches = []
        for rt, namespace, handler in ((NODES, None, world.on_node), (LEASES, NODE_LEASE_NAMESPACE, world.on_lease),
                                       (PODS, NAMESPACE, world.on_pod)):
            rv = (await client.list(rt, namespace, limit=1))["metadata"]["resourceVersion"]
            watches.append(asyncio.create_task(follow(client, rt, namespace, rv, handler)))
        try:
            await until(lambda: world.victim_ready == "True", timeout, f"node {VICTIM} to be Ready")
            others = [n["metadata"]["name"] for n in (await client.list(NODES))["items"]
                      if n["metadata"]["name"] != VICTIM]
            print(f"placing {replicas} pods on {VICTIM} (the other nodes cordoned) ...", file=sys.stderr)
            await set_unschedulable(client, others, True)
            await client.create(DEPLOYMENTS, deployment(replicas), NAMESPACE)
            await until(lambda: len(world.running_on(VICTIM)) >= replicas, timeout,
                        f"{replicas} pods Running on {VICTIM}")
            await set_unschedulable(client, others, False)
            result.originals = world.running_on(VICTIM)
            # Kill right after a Lease renewal: the grace period then runs in full from the kill, so the
            # total is comparable with grace + eviction instead of depending on where in the cycle it fell.
            renewed = world.last_renewal
            await until(lambda: world.last_renewal != renewed, timeout, f"a renewal of {VICTIM}'s Lease")

            print(f"killing the agent of {VICTIM} (pid {victim.pid}) ...", file=sys.stderr)
            meter = CpuMeter(cluster.pids())
            meter.start()
            result.killed = time.perf_counter()
            os.kill(victim.pid, signal.SIGKILL)
            try:
                await until(lambda: sum(t.running is not None for t in result.replacements()) >= replicas, timeout,
                            f"{replicas} replacements Running elsewhere")
            except RuntimeError as e:
                result.timed_out = str(e)
            result.cpu = meter.stop()
        finally:
            for task in watches:
                task.cancel()
            await asyncio.gather(*watches, return_exceptions=True)
    return result


def report(args: argparse.Namespace, r: Result) -> list[str]:
    timings = Timings()
    grace, eviction = timings.node_monitor_grace_period, timings.pod_eviction_timeout
    w = r.world

    def since_kill(t: float | None) -> str:
        return "never" if t is None else f"{t - r.killed:6.2f} s"

    def span(times: list[float | None]) -> str:
        seen = sorted(t for t in times if t is not None)
        if not seen:
            return "never"
        return f"{seen[0] - r.killed:6.2f} s (first) .. {seen[-1] - r.killed:6.2f} s (last), {len(seen)} pods"

    originals = [w.pods[n] for n in r.originals]
    replacements = r.replacements()
    evictions = sorted(t.deleting for t in originals if t.deleting is not None)
    running = sorted(t.running for t in replacements if t.running is not None)
    total = running[-1] - r.killed if len(running) >= r.pods else math.nan
    lines = [
        f"cluster   local provider, {args.nodes} simulated nodes + 1 extra node agent process; boxkube's default "
        f"timings: node monitor grace {grace:g} s, pod eviction {eviction:g} s",
        f"pods      {r.pods} of one Deployment, all on the extra node; its agent SIGKILLed at t = 0",
        f"lease     last renewal of the node's Lease seen {r.killed - w.last_renewal:.2f} s before the kill"
        if w.last_renewal is not None else "lease     no renewal of the node's Lease seen",
        f"node      Ready -> {w.victim_ready or '?'}            {since_kill(w.not_ready)}",
        f"          unreachable NoExecute taint  {since_kill(w.tainted)}",
        f"evicted   deletionTimestamp set        {span([t.deleting for t in originals])}",
        f"replaced  replacement pods created     {span([t.added for t in replacements])}",
        f"          replacements Running         {span([t.running for t in replacements])}",
        f"phases    kill -> node Unknown {since_kill(w.not_ready).strip()}; "
        f"taint -> first eviction {_between(w.tainted, evictions[0] if evictions else None)}; "
        f"last eviction -> last replacement Running "
        f"{_between(evictions[-1] if evictions else None, running[-1] if running else None)}",
        cpu_line(r.cpu),
    ]
    if r.timed_out:
        lines.append(f"TIMED OUT {r.timed_out}")
    expected = grace + eviction
    lines.append(f"total     {total:.2f} s from the kill to all {r.pods} pods Running elsewhere; grace + eviction = "
                 f"{expected:g} s, so {total - expected:+.2f} s beyond the configured timings")
    lines.append(f"note      {len(evictions)} evicted pods stay Terminating on the dead node (no agent left to confirm), "
                 "as upstream")
    return lines


def _between(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{b - a:.2f} s"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python bench/self_healing.py", description=__doc__.split("\n", 1)[0])
    p.add_argument("--pods", type=int, default=10, help="replicas on the node that dies (default 10)")
    p.add_argument("--nodes", type=int, default=3, help="the cluster's own simulated nodes (default 3)")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for each step")
    p.add_argument("--keep-logs", action="store_true", help="keep the temporary home with the logs")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print("\n".join(machine_facts()))
    home = Path(tempfile.mkdtemp(prefix="boxkube-bench-self-healing-"))
    cluster = victim = None
    try:
        cluster = start_local_cluster(home, CLUSTER, nodes=args.nodes)
        victim = start_victim(cluster)
        result = run_loop(measure(cluster, victim, args.pods, args.timeout))
        print("\n".join(report(args, result)))
    finally:
        if victim is not None:
            stop_process(victim)     # when something failed before the kill
        if cluster is not None:
            cluster.stop(keep_logs=home / "logs" if args.keep_logs else None)
        if args.keep_logs:
            print(f"logs      {home / 'logs'} and {home / 'victim-agent.log'}", file=sys.stderr)
        else:
            shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
