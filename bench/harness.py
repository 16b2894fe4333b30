"""What the benchmarks share: a throw-away local cluster, CPU metering, percentiles, machine facts.

Every bench creates its cluster with the `local` provider exactly as
`boxkube create cluster` does, in a temporary BOXKUBE_HOME, and deletes it at
the end. Figures go to stdout, progress to stderr.
"""
from __future__ import annotations

import asyncio
import math
import os
import platform
import resource
import shutil
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boxkube
from boxkube.client import ApiClient
from boxkube.client.resources import ResourceType
from boxkube.cluster.config import ClusterConfig, parse_config
from boxkube.cluster.create import create_cluster
from boxkube.cluster.delete import delete_cluster
from boxkube.cluster.progress import Progress
from boxkube.cluster.providers import LocalProvider
from boxkube.cluster.spec import ClusterSpec
from boxkube.cluster.state import ClusterState, cluster_dir

try:    # the control plane runs on uvloop when it is there; a faster bench loop takes less CPU from it
    import uvloop
    run_loop, LOOP = uvloop.run, "uvloop"
except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
    run_loop, LOOP = asyncio.run, "asyncio"

Obj = dict[str, Any]


# -- measuring ----------------------------------------------------------------

def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list (nan when empty)."""
    if not sorted_values:
        return math.nan
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(p * len(sorted_values)) - 1))]


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | None) -> float:
    """CPU time (user + system, all threads) of `pid`, or of this process for None."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rfind(")") + 2:].split()   # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / _TICK


def idle_seconds() -> float:
    """Idle time (idle + iowait) of all cores together since boot."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return (int(fields[4]) + int(fields[5])) / _TICK


class CpuMeter:
    """How much of one core each process used between start() and stop(), how much the rest of
    the machine used, and how much it left idle: with idle near 0 the cores were the limit."""

    def __init__(self, pids: dict[str, int | None]):
        self.pids = pids
        self._start: dict[str, float] = {}
        self._t0 = 0.0

    def _now(self) -> dict[str, float]:
        return {**{name: cpu_seconds(pid) for name, pid in self.pids.items()}, "idle": idle_seconds()}

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self._start = self._now()

    def stop(self) -> dict[str, float]:
        elapsed = time.perf_counter() - self._t0
        shares = {name: (seconds - self._start[name]) / elapsed for name, seconds in self._now().items()}
        # Whatever else kept the cores busy (other programs, the kernel): a run with much of it is noisy.
        shares["other"] = max(0.0, (os.cpu_count() or 1) - sum(shares.values()))
        return shares


def cpu_line(shares: dict[str, float]) -> str:
    return ("cpu%      " + ", ".join(f"{name} {share * 100:.0f}" for name, share in shares.items())
            + "  (100 = one core busy for the whole window)")


async def in_parallel(count: int, lanes: int, job: Callable[[int, int], Awaitable[None]]) -> None:
    """job(lane, i) for i in 0..count-1, `lanes` at a time."""
    items = iter(range(count))

    async def lane(worker: int) -> None:
        for i in items:
            await job(worker, i)
    await asyncio.gather(*(lane(w) for w in range(lanes)))


async def follow(client: ApiClient, rt: ResourceType, namespace: str | None, resource_version: str,
                 handle: Callable[[str, Obj], bool]) -> None:
    """Watch `rt` from `resource_version`, calling handle(type, object) for each event until it
    returns True. The server may end a watch early: go on from the last resourceVersion seen."""
    rv = resource_version
    while True:
        async with client.watch(rt, namespace, resource_version=rv, timeout_seconds=3600) as events:
            async for kind, obj in events:
                rv = obj["metadata"]["resourceVersion"]
                if kind != "BOOKMARK" and handle(kind, obj):
                    return


# -- the cluster under test ---------------------------------------------------------

@dataclass
class LocalCluster:
    """A cluster made by the `local` provider in a throw-away home."""

    name: str
    home: Path
    environ: dict[str, str]
    provider: LocalProvider
    state: ClusterState

    @property
    def kubeconfig(self) -> Path:
        return cluster_dir(self.home, self.name).kubeconfig_file

    @property
    def logs(self) -> Path:
        return cluster_dir(self.home, self.name).logs_dir

    def pid(self, process: str) -> int:
        return self.state.processes[process].pid

    def pids(self) -> dict[str, int | None]:
        """This process (None) and each of the cluster's, for a CpuMeter."""
        return {"bench": None, **{name: record.pid for name, record in self.state.processes.items()}}

    def client(self, user_agent: str = "bench") -> ApiClient:
        return ApiClient.from_kubeconfig(self.kubeconfig, user_agent=user_agent)

    def stop(self, keep_logs: Path | None = None) -> None:
        """Delete the cluster (its folder too), first copying its processes' logs to `keep_logs`."""
        if keep_logs is not None:
            shutil.copytree(self.logs, keep_logs, dirs_exist_ok=True)
        delete_cluster(self.name, home=self.home, environ=self.environ, providers=lambda _name: self.provider,
                       progress=Progress())


# etcd and the API server alone: what a bench measures is not also watched by the built-in controllers.
API_ONLY = """apiVersion: boxkube.dev/v1alpha1
kind: Cluster
components: {scheduler: false, controllerManager: false}
"""


def start_local_cluster(home: Path, name: str, *, nodes: int = 0, config: str | None = None,
                        apiserver_command: list[str] | None = None) -> LocalCluster:
    """Create a cluster with the local provider, as `boxkube create cluster --provider local` does
    (`config` is the text of a --config file); it is deleted again if creating it fails."""
    environ = dict(os.environ, BOXKUBE_HOME=str(home))
    provider = LocalProvider(home, environ, apiserver_command=apiserver_command)
    parsed: ClusterConfig | None = parse_config(config) if config else None
    spec = ClusterSpec(name=name, provider="local", nodes=nodes, kubeconfig=home / "kubeconfig", config=parsed)
    create_cluster(spec, home=home, environ=environ, providers=lambda _name: provider, progress=Progress())
    return LocalCluster(name, home, environ, provider, cluster_dir(home, name).load())


# -- report ---------------------------------------------------------------------------

def machine_facts() -> list[str]:
    """When and where the figures were measured."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return [
        f"date      {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
        f"machine   {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), {model or platform.machine()}, "
        f"{platform.system()} {platform.release()}",
        f"python    {platform.python_implementation()} {platform.python_version()}; bench loop {LOOP}; "
        f"boxkube {boxkube.__version__}",
    ]
