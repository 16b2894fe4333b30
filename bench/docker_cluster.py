"""Docker clusters: creation time next to its floor, pod start-up next to a bare inner `docker run`,
and the resident memory of each component in an idle cluster.

    python bench/docker_cluster.py [--nodes 3] [--pods 30] [--wait 300]

One run, on this machine's Docker engine, with a warm node image (built first
if missing or out of date, not timed):

1. floor: NODES+1 bare containers of the node image, started as the docker
   provider starts its nodes (same rights and volume), timed until each
   inner engine answers `docker version` -- what no cluster can beat here;
2. creation: `boxkube create cluster --nodes NODES` (the real CLI, in a
   temporary BOXKUBE_HOME) until every node is Ready, as a user sees it;
3. memory: after 10 s idle, the resident set (VmRSS) of the API server,
   scheduler, controller manager, etcd and each node agent, read from /proc
   inside the node containers;
4. pod start-up: one Deployment of PODS replicas of boxkube/pause:1, from
   creation sent to each pod Running as seen through a watch (p50, p99), next
   to `docker run --rm boxkube/pause:1 true` in a worker's inner engine
   (p50 of 5) -- the engine's own cost that every pod pays.

Targets (issue 4): creation under 10 s and within 2x of the floor; pod
start-up p99 under 1.5 s; node agent under 80 MB and API server under 150 MB.
This prints figures; it is not a pass/fail test.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import docker

from boxkube.client import ApiClient
from boxkube.client.resources import resource
from boxkube.cluster.images import BuildOptions, PAUSE_IMAGE, build_node_image
from boxkube.cluster.providers.docker import DockerProvider, node_host_config

# bench/ is on sys.path when a bench runs as `python bench/NAME.py`.
from harness import follow, idle_seconds, machine_facts, percentile, run_loop

CLUSTER = "bench-docker"
PODS, DEPLOYMENTS = resource("pods"), resource("deployments.apps")
TARGET_CREATE, TARGET_FLOOR_RATIO, TARGET_POD_P99 = 10.0, 2.0, 1.5
TARGET_AGENT_MB, TARGET_APISERVER_MB = 80, 150
# What to look for in each node's process list, and the name to report it by.
COMPONENTS = {"boxkube.apiserver": "API server", "boxkube.scheduler": "scheduler",
              "boxkube.controllers": "controller manager", "etcd --name": "etcd", "boxkube.agent": "node agent",
              "dockerd": "inner dockerd"}


def floor(client: Any, image: str, count: int) -> float:
    """Seconds from starting `count` bare node containers to every inner engine answering."""
    security = DockerProvider(Path(tempfile.mkdtemp())).security(image)
    made = []
    try:
        started = time.perf_counter()
        for i in range(count):
            host_config = node_host_config(client, security, f"bench-floor-{i}")
            created = client.api.create_container(image, ["sleep", "infinity"], name=f"bench-floor-{i}",
                                                  host_config=host_config, labels={"dev.boxkube.bench": "floor"})
            client.api.start(created["Id"])
            made.append(client.containers.get(created["Id"]))
        for container in made:
            while container.exec_run(["docker", "version"]).exit_code != 0:
                time.sleep(0.05)
        return time.perf_counter() - started
    finally:
        for container in made:
            container.remove(force=True, v=True)
        for i in range(count):
            try:
                client.volumes.get(f"bench-floor-{i}").remove(force=True)
            except docker.errors.NotFound:
                pass


def memory(client: Any, cluster: str) -> list[tuple[str, str, float]]:
    """(node, component, MB) of every boxkube process in the cluster's node containers."""
    rows = []
    for container in sorted(client.containers.list(filters={"label": f"dev.boxkube.cluster={cluster}"}),
                            key=lambda c: c.name):
        out = container.exec_run(["sh", "-c", "for p in /proc/[0-9]*; do "
                                              "c=$(tr '\\0' ' ' < $p/cmdline 2>/dev/null); "
                                              "r=$(awk '/VmRSS/ {print $2}' $p/status 2>/dev/null); "
                                              "[ -n \"$r\" ] && echo \"$r $c\"; done"]).output.decode()
        for line in out.splitlines():
            kb, _, command = line.partition(" ")
            for needle, what in COMPONENTS.items():
                # not the shells and tini that started them
                if needle in command and not command.startswith(("sh -c", "/usr/bin/tini")):
                    rows.append((container.name, what, int(kb) / 1024))
                    break
    return rows


async def pod_startup(kubeconfig: Path, replicas: int, timeout: float) -> list[float]:
    """Seconds from sending the Deployment to each pod seen Running, sorted."""
    async with ApiClient.from_kubeconfig(kubeconfig) as client:
        listed = await client.list(PODS, "default")
        running: dict[str, float] = {}
        done = asyncio.Event()

        def seen(kind: str, pod: dict) -> bool:
            if pod["status"].get("phase") == "Running" and pod["metadata"]["name"] not in running:
                running[pod["metadata"]["name"]] = time.perf_counter()
                if len(running) == replicas:
                    done.set()
            return done.is_set()

        watcher = asyncio.create_task(follow(client, PODS, "default", listed["metadata"]["resourceVersion"], seen))
        labels = {"app": "startup"}
        body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "startup"},
                "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                         "template": {"metadata": {"labels": labels},
                                      "spec": {"containers": [{"name": "pause", "image": PAUSE_IMAGE}]}}}}
        sent = time.perf_counter()
        await client.create(DEPLOYMENTS, body, "default")
        try:
            async with asyncio.timeout(timeout):
                await done.wait()
        finally:
            watcher.cancel()
        return sorted(t - sent for t in running.values())


def bare_run(client: Any, cluster: str) -> float:
    """p50 seconds of `docker run --rm` of the pause image in a worker's inner engine."""
    worker = client.containers.get(f"{cluster}-worker")
    times = []
    for _ in range(5):
        started = time.perf_counter()
        worker.exec_run(["docker", "run", "--rm", "--entrypoint", "/bin/busybox", PAUSE_IMAGE, "true"])
        times.append(time.perf_counter() - started)
    return sorted(times)[2]


class BusyCores:
    """Core-seconds the whole machine spent busy (not idle) in a block: divided by the core count, the
    least wall time the same work could take here, whatever is made faster but the work itself."""

    def __enter__(self) -> "BusyCores":
        self.idle, self.started = idle_seconds(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self.started
        self.seconds = max((os.cpu_count() or 1) * wall - (idle_seconds() - self.idle), 0.0)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python bench/docker_cluster.py", description=__doc__.split("\n", 1)[0])
    p.add_argument("--nodes", type=int, default=3, help="worker nodes (default 3)")
    p.add_argument("--pods", type=int, default=30, help="pods of the start-up Deployment (default 30)")
    p.add_argument("--wait", type=float, default=300.0, help="seconds to wait for the cluster and the pods")
    args = p.parse_args(argv)
    print("\n".join(machine_facts()))
    client = docker.from_env()
    print(f"engine    Docker {client.version()['Version']}, storage driver {client.info()['Driver']}")
    print("warming the node image ...", file=sys.stderr)
    image = build_node_image(BuildOptions()).node

    with BusyCores() as floor_cpu:
        floor_seconds = floor(client, image, args.nodes + 1)
    home = Path(tempfile.mkdtemp(prefix="boxkube-bench-"))
    env = dict(os.environ, BOXKUBE_HOME=str(home))
    kubeconfig = home / "kubeconfig"
    started = time.perf_counter()
    with BusyCores() as create_cpu:
        made = subprocess.run([sys.executable, "-m", "boxkube.cli", "create", "cluster", "--name", CLUSTER,
                               "--nodes", str(args.nodes), "--kubeconfig", str(kubeconfig), "--wait",
                               f"{args.wait:g}"], env=env, capture_output=True, text=True)
    create_seconds = time.perf_counter() - started
    try:
        if made.returncode != 0:
            print(made.stderr, file=sys.stderr)
            return 1
        time.sleep(10)
        rows = memory(client, CLUSTER)
        with BusyCores() as pods_cpu:
            startup = run_loop(pod_startup(kubeconfig, args.pods, args.wait))
        bare = bare_run(client, CLUSTER)
    finally:
        subprocess.run([sys.executable, "-m", "boxkube.cli", "delete", "cluster", "--name", CLUSTER],
                       env=env, capture_output=True)

    print(f"create    {args.nodes} workers + control plane Ready in {create_seconds:.1f} s; "
          f"floor ({args.nodes + 1} bare node containers to inner engines answering) {floor_seconds:.1f} s; "
          f"ratio {create_seconds / floor_seconds:.1f}x")
    print("memory    resident MB, idle:")
    for node, what, mb in rows:
        print(f"          {node:<28} {what:<20} {mb:7.1f}")
    p50, p99 = percentile(startup, 0.50), percentile(startup, 0.99)
    print(f"pods      {len(startup)} pods of one Deployment, creation sent -> Running seen: p50 {p50:.2f} s, "
          f"p99 {p99:.2f} s; bare inner docker run --rm p50 {bare:.2f} s")
    cores = os.cpu_count() or 1
    print(f"cpu       busy core-seconds on {cores} cores: floor {floor_cpu.seconds:.1f}, creation "
          f"{create_cpu.seconds:.1f}, {len(startup)} pods {pods_cpu.seconds:.1f}; so at the least, whatever is "
          f"made faster but the work: creation {create_cpu.seconds / cores:.1f} s, last pod Running "
          f"{pods_cpu.seconds / cores:.1f} s")
    print()
    agents = [mb for _n, what, mb in rows if what == "node agent"]
    apiservers = [mb for _n, what, mb in rows if what == "API server"]
    print(f"{verdict(create_seconds < TARGET_CREATE)}  creation {create_seconds:.1f} s (target < {TARGET_CREATE:g} s)")
    print(f"{verdict(create_seconds <= TARGET_FLOOR_RATIO * floor_seconds)}  creation / floor "
          f"{create_seconds / floor_seconds:.1f}x (target <= {TARGET_FLOOR_RATIO:g}x)")
    print(f"{verdict(p99 < TARGET_POD_P99)}  pod start-up p99 {p99:.2f} s (target < {TARGET_POD_P99:g} s)")
    if agents:
        print(f"{verdict(max(agents) < TARGET_AGENT_MB)}  node agent max {max(agents):.0f} MB (target < {TARGET_AGENT_MB} MB)")
    if apiservers:
        print(f"{verdict(max(apiservers) < TARGET_APISERVER_MB)}  API server {max(apiservers):.0f} MB "
              f"(target < {TARGET_APISERVER_MB} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
