"""Pod start-up latency: the pods of one Deployment, from creation to Running as seen through a watch.

    python bench/pod_startup.py [--pods 100] [--nodes 3] [--timeout 120]

One run creates, in a temporary BOXKUBE_HOME, a cluster with the `local`
provider and boxkube's default timings (`boxkube create cluster --provider
local --nodes N`: etcd, the API server, the scheduler, the controller manager
and N simulated nodes whose containers start 0.2 s after the agent asks), then:

1. warms up: a Deployment of a few replicas, until they are Running, then
   deletes it and waits for its pods to be gone -- so first-use costs (imports,
   informer caches, connections) are not measured;
2. creates one Deployment of `--pods` replicas and, through one watch on the
   namespace's pods opened before the warm-up, notes per pod when it was first
   seen (ADDED), bound (spec.nodeName set) and Running (status.phase).

It reports p50/p90/p99/max of each pod's latency from the Deployment's
creation being sent, and from the pod's own creation, to Running, and the
steps in between. Pod creation is timed by the watch's ADDED event, because
creationTimestamp has whole seconds only (as upstream's metav1.Time) -- too
coarse for a 1 s target; the watch sees a creation a few milliseconds late,
so this slightly understates the pod-based figure, as upstream's SLI does
when it reads creationTimestamp.

The target is the issue's: p99 under 1 s (upstream's pod start-up SLO is 5 s,
measured from the pod's creation, without image pulls). Every process shares
this machine's cores: the cpu% line shows each one's share of a core during the
measured window. This prints figures; it is not a pass/fail test (the exit
status is 0 even when the target is missed).
"""
from __future__ import annotations

import argparse
import asyncio
import math
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from boxkube.client import ApiClient
from boxkube.client.resources import resource

# bench/ is on sys.path when a bench runs as `python bench/NAME.py`.
from harness import CpuMeter, LocalCluster, cpu_line, follow, machine_facts, percentile, run_loop, start_local_cluster

CLUSTER = "bench-pod-startup"
NAMESPACE = "bench"
PODS, DEPLOYMENTS, NAMESPACES = resource("pods"), resource("deployments.apps"), resource("namespaces")
TARGET_P99 = 1.0          # seconds: the target
UPSTREAM_SLO = 5.0        # seconds: upstream's pod start-up SLO (p99)
WARMUP_REPLICAS = 3

Obj = dict[str, Any]


def deployment(name: str, replicas: int) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10"}]}}}}


@dataclass
class PodTimes:
    """perf_counter() times at which the watch showed the pod created, bound and Running."""
    added: float
    bound: float | None = None
    running: float | None = None


@dataclass
class App:
    """The pods of one Deployment as the watch shows them."""
    replicas: int
    pods: dict[str, PodTimes] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)
    all_running: asyncio.Event = field(default_factory=asyncio.Event)
    all_gone: asyncio.Event = field(default_factory=asyncio.Event)

    def running(self) -> list[PodTimes]:
        return [t for t in self.pods.values() if t.running is not None]


class PodWatch:
    """One watch on the namespace's pods for the whole run, so it is streaming before anything
    measured is created; events are sorted to Deployments by their pods' `app` label."""

    def __init__(self, client: ApiClient):
        self.client = client
        self.apps: dict[str, App] = {}
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        rv = (await self.client.list(PODS, NAMESPACE, limit=1))["metadata"]["resourceVersion"]
        self.task = asyncio.create_task(follow(self.client, PODS, NAMESPACE, rv, self._seen))

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    def _seen(self, kind: str, pod: Obj) -> bool:
        now = time.perf_counter()
        app = self.apps.get(((pod["metadata"].get("labels")) or {}).get("app", ""))
        if app is None:
            return False
        name = pod["metadata"]["name"]
        if kind == "DELETED":
            app.gone.add(name)
            if len(app.gone) >= len(app.pods):
                app.all_gone.set()
            return False
        times = app.pods.setdefault(name, PodTimes(added=now))
        if times.bound is None and (pod.get("spec") or {}).get("nodeName"):
            times.bound = now
        if times.running is None and (pod.get("status") or {}).get("phase") == "Running":
            times.running = now
            if len(app.running()) >= app.replicas:
                app.all_running.set()
        return False

    def expect(self, name: str, replicas: int) -> App:
        app = self.apps[name] = App(replicas)
        return app


async def wait(event: asyncio.Event, timeout: float, what: str) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except asyncio.TimeoutError:
        raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}") from None


async def warm_up(client: ApiClient, pods: PodWatch, timeout: float) -> None:
    app = pods.expect("warmup", WARMUP_REPLICAS)
    await client.create(DEPLOYMENTS, deployment("warmup", WARMUP_REPLICAS), NAMESPACE)
    await wait(app.all_running, timeout, "the warm-up pods to be Running")
    await client.delete(DEPLOYMENTS, "warmup", NAMESPACE, propagation_policy="Background")
    await wait(app.all_gone, timeout, "the warm-up pods to be gone")


@dataclass
class Result:
    replicas: int
    created: float = 0.0                   # when the Deployment's creation was sent
    pods: dict[str, PodTimes] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    timed_out: bool = False

    def latencies(self, start: str, end: str) -> list[float]:
        """Sorted per-pod seconds from `start` ("deployment" or a PodTimes field) to `end`."""
        out = []
        for t in self.pods.values():
            begin = self.created if start == "deployment" else getattr(t, start)
            finish = getattr(t, end)
            if begin is not None and finish is not None:
                out.append(finish - begin)
        return sorted(out)


async def measure(cluster: LocalCluster, replicas: int, timeout: float) -> Result:
    result = Result(replicas)
    async with cluster.client() as client:
        await client.create(NAMESPACES, {"metadata": {"name": NAMESPACE}})
        pods = PodWatch(client)
        await pods.start()
        try:
            print(f"warming up: a Deployment of {WARMUP_REPLICAS} ...", file=sys.stderr)
            await warm_up(client, pods, timeout)
            print(f"measuring: a Deployment of {replicas} ...", file=sys.stderr)
            app = pods.expect("startup", replicas)
            meter = CpuMeter(cluster.pids())
            meter.start()
            result.created = time.perf_counter()
            await client.create(DEPLOYMENTS, deployment("startup", replicas), NAMESPACE)
            try:
                await wait(app.all_running, timeout, f"{replicas} pods to be Running")
            except RuntimeError as e:
                print(f"  {e}: {len(app.running())} are", file=sys.stderr)
                result.timed_out = True
            result.cpu = meter.stop()
            result.pods = dict(app.pods)
        finally:
            await pods.stop()
    return result


def report(args: argparse.Namespace, r: Result) -> list[str]:
    def cell(values: list[float], q: float) -> str:
        value = values[-1] if q == 1.0 and values else percentile(values, q)
        return "-" if math.isnan(value) else f"{value * 1000:.0f}"

    running = r.latencies("deployment", "running")
    last = running[-1] if running else math.nan
    rows = [("Deployment created -> pod Running", running),
            ("pod created -> Running", r.latencies("added", "running")),
            ("  Deployment created -> pod created", r.latencies("deployment", "added")),
            ("  pod created -> bound", r.latencies("added", "bound")),
            ("  bound -> Running", r.latencies("bound", "running"))]
    lines = [
        f"cluster   local provider, {args.nodes} simulated node{'s' if args.nodes > 1 else ''}, boxkube's default "
        "timings (a simulated container starts 0.2 s after the agent asks)",
        f"pods      {len(running)} of {r.replicas} Running; the last {last:.2f} s after the Deployment's creation was sent"
        + (" -- TIMED OUT" if r.timed_out else ""),
        f"{'latency ms (watch-observed)':<36} {'p50':>6} {'p90':>6} {'p99':>6} {'max':>6}",
    ]
    for title, values in rows:
        lines.append(f"{title:<36} " + " ".join(f"{cell(values, q):>6}" for q in (0.5, 0.9, 0.99, 1.0)))
    lines.append(cpu_line(r.cpu))
    for title, values in rows[:2]:
        p99 = percentile(values, 0.99)
        ok = not r.timed_out and p99 < TARGET_P99
        lines.append(f"{'PASS' if ok else 'FAIL'}  {title}: p99 {p99:.2f} s (target < {TARGET_P99:g} s; "
                     f"upstream SLO {UPSTREAM_SLO:g} s)")
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python bench/pod_startup.py", description=__doc__.split("\n", 1)[0])
    p.add_argument("--pods", type=int, default=100, help="replicas of the measured Deployment (default 100)")
    p.add_argument("--nodes", type=int, default=3, help="simulated nodes (default 3)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the pods")
    p.add_argument("--keep-logs", action="store_true", help="keep the temporary home with the cluster's logs")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print("\n".join(machine_facts()))
    home = Path(tempfile.mkdtemp(prefix="boxkube-bench-pod-startup-"))
    cluster = None
    try:
        cluster = start_local_cluster(home, CLUSTER, nodes=args.nodes)
        result = run_loop(measure(cluster, args.pods, args.timeout))
        print("\n".join(report(args, result)))
    finally:
        if cluster is not None:
            cluster.stop(keep_logs=home / "logs" if args.keep_logs else None)
        if args.keep_logs:
            print(f"logs      {home / 'logs'}", file=sys.stderr)
        else:
            shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
