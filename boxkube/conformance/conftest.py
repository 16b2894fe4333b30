"""The conformance suite's pytest setup: which cluster (a kubeconfig and a context), which images,
a fresh namespace per test, the gate of tests that need real containers, and the results table.

    pytest conformance/ --kubeconfig PATH [--context NAME] [--conformance-focus REGEX]
    boxkube conformance --kubeconfig PATH            (the same, run by boxkube's CLI)
"""
from __future__ import annotations

import re
import shlex
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from boxkube.conformance.support import SUITE_LABEL, unique

DEFAULT_WEB_IMAGE = "boxkube/hello:1"
DEFAULT_TOOLS_IMAGE = "boxkube/busybox:1"
DEFAULT_WEB_PORT = 8080
PROBE_TIMEOUT = 90.0     # how long the real-containers probe pod may take to start (image pulls)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance", "conformance suite (boxkube conformance)")
    group.addoption("--kubeconfig", metavar="PATH", default=None,
                    help="kubeconfig of the cluster under test (default: $KUBECONFIG, else ~/.kube/config)")
    group.addoption("--context", metavar="NAME", default=None,
                    help="the kubeconfig's context to use (default: its current context)")
    group.addoption("--conformance-focus", metavar="REGEX", default=None,
                    help="run only the tests whose name, area or upstream counterpart matches this "
                         "regular expression (searched, case-insensitively)")
    group.addoption("--conformance-image-web", metavar="IMAGE", default=DEFAULT_WEB_IMAGE,
                    help="an image that answers HTTP GET / with its pod's name (from $POD_NAME or its hostname)"
                         f" (default: {DEFAULT_WEB_IMAGE})")
    group.addoption("--conformance-web-port", metavar="PORT", type=int, default=DEFAULT_WEB_PORT,
                    help=f"the port the web image listens on (default: {DEFAULT_WEB_PORT})")
    group.addoption("--conformance-image-tools", metavar="IMAGE", default=DEFAULT_TOOLS_IMAGE,
                    help=f"an image with sh, wget, seq and timeout (default: {DEFAULT_TOOLS_IMAGE})")
    group.addoption("--conformance-examples", metavar="N", type=int, default=2,
                    help="random step sequences the property-based test runs (default: 2)")
    group.addoption("--conformance-steps", metavar="N", type=int, default=5,
                    help="steps in each of those sequences (default: 5)")
    group.addoption("--conformance-node-stop", metavar="COMMAND", default=None,
                    help="a shell command that stops node {node} as a power loss would (e.g. "
                         "'boxkube node stop {node} --name NAME'); without it the lost-node test is skipped")
    group.addoption("--conformance-node-start", metavar="COMMAND", default=None,
                    help="the shell command that starts node {node} again")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "conformance(area, upstream): a conformance test's area and the "
                                       "upstream Kubernetes conformance test it corresponds to (or None)")
    config.addinivalue_line("markers", "real_nodes: needs pods that really run containers; skipped with a "
                                       "reason on clusters whose nodes only simulate them")
    config.stash[_RESULTS] = {}


def _marker(item: pytest.Item) -> tuple[str, str | None]:
    mark = item.get_closest_marker("conformance")
    if mark is None:
        return "?", None
    return mark.kwargs["area"], mark.kwargs.get("upstream")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("conformance") is None:
            raise pytest.UsageError(f"{item.nodeid}: every conformance test declares its area and upstream "
                                    "counterpart with @conformance(area=..., upstream=...)")
    focus = config.getoption("conformance_focus")
    if focus:
        try:
            pattern = re.compile(focus, re.IGNORECASE)
        except re.error as e:
            raise pytest.UsageError(f"--conformance-focus {focus!r} is not a regular expression: {e}") from None
        keep, drop = [], []
        for item in items:
            area, upstream = _marker(item)
            text = f"{item.nodeid} {area} {upstream or ''}"
            (keep if pattern.search(text) else drop).append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
        items[:] = keep
    for item in items:
        area, upstream = _marker(item)
        item.user_properties += [("area", area), ("upstream", upstream or "")]


# ---------------------------------------------------------------------------------------------
# The cluster

@dataclass(frozen=True)
class Images:
    web: str
    web_port: int
    tools: str


@pytest.fixture(scope="session")
def api_client(pytestconfig: pytest.Config):
    """The official client's ApiClient, from --kubeconfig (or the default one) and --context."""
    from kubernetes import config as kube_config

    path, context = pytestconfig.getoption("kubeconfig"), pytestconfig.getoption("context")
    try:
        client = kube_config.new_client_from_config(config_file=path, context=context)
    except Exception as e:      # no file, no such context, a broken kubeconfig
        where = path or "the default kubeconfig"
        raise pytest.UsageError(f"cannot use {where}{f' (context {context})' if context else ''}: {e}") from None
    yield client
    client.close()


@pytest.fixture(scope="session")
def core(api_client):
    from kubernetes import client
    return client.CoreV1Api(api_client)


@pytest.fixture(scope="session")
def apps(api_client):
    from kubernetes import client
    return client.AppsV1Api(api_client)


@pytest.fixture(scope="session")
def discovery(api_client):
    from kubernetes import client
    return client.DiscoveryV1Api(api_client)


@pytest.fixture(scope="session")
def images(pytestconfig: pytest.Config) -> Images:
    return Images(web=pytestconfig.getoption("conformance_image_web"),
                  web_port=pytestconfig.getoption("conformance_web_port"),
                  tools=pytestconfig.getoption("conformance_image_tools"))


def _make_namespace(core, prefix: str) -> str:
    name = unique(prefix)
    core.create_namespace({"metadata": {"name": name, "labels": {SUITE_LABEL: "true"}}})
    return name


def _delete_namespace(core, name: str) -> None:
    from kubernetes.client.exceptions import ApiException
    try:
        core.delete_namespace(name, propagation_policy="Background")
    except ApiException as e:
        if e.status != 404:
            raise


@pytest.fixture
def namespace(core, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for the test, deleted (with all it holds) after it, whatever the outcome."""
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.originalname.lower().removeprefix("test_"))[:30].strip("-")
    name = _make_namespace(core, f"conf-{stem}")
    yield name
    _delete_namespace(core, name)


class NodePower:
    """Stops and starts a node with the shell commands the run was given (`{node}` in them is the
    node's name): the suite itself speaks only to the API, which cannot switch a machine off."""

    def __init__(self, stop: str, start: str):
        self.commands = {"stop": stop, "start": start}

    def _run(self, what: str, node: str) -> None:
        command = self.commands[what].replace("{node}", shlex.quote(node))
        done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise AssertionError(f"`{command}` exited {done.returncode}: {(done.stderr or done.stdout).strip()}")

    def stop(self, node: str) -> None:
        self._run("stop", node)

    def start(self, node: str) -> None:
        self._run("start", node)


@pytest.fixture(scope="session")
def node_power(pytestconfig: pytest.Config) -> NodePower:
    stop, start = pytestconfig.getoption("conformance_node_stop"), pytestconfig.getoption("conformance_node_start")
    if not (stop and start):
        pytest.skip("the cluster does not let the suite stop a node: give --conformance-node-stop and "
                    "--conformance-node-start (`boxkube conformance --name CLUSTER` sets them for a boxkube cluster)")
    return NodePower(stop, start)


# ---------------------------------------------------------------------------------------------
# Do pods really run?

@dataclass
class _Probe:
    runs: bool | None = None
    reason: str = ""


@pytest.fixture(scope="session")
def containers_run(core, images) -> _Probe:
    """Whether the cluster's pods really run their containers: a pod whose only container exits 1
    at once (restartPolicy Never) must reach phase Failed. On a cluster whose nodes only simulate
    containers it stays Running; the answer is found once per session."""
    ns = _make_namespace(core, "conf-probe")
    probe = _Probe()
    try:
        core.create_namespaced_pod(ns, {
            "metadata": {"name": "exit-one", "labels": {SUITE_LABEL: "true"}},
            "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "exit", "image": images.tools, "imagePullPolicy": "IfNotPresent",
                                     "command": ["sh", "-c", "exit 1"]}]}})
        deadline, running_since = time.monotonic() + PROBE_TIMEOUT, None
        while time.monotonic() < deadline:
            pod = core.read_namespaced_pod("exit-one", ns)
            phase = pod.status.phase if pod.status else None
            if phase in ("Failed", "Succeeded"):
                probe.runs = True
                break
            if phase == "Running":
                running_since = running_since or time.monotonic()
                if time.monotonic() - running_since > 10:
                    probe.runs = False
                    probe.reason = ("the cluster does not run containers: a probe pod whose container runs "
                                    "`sh -c 'exit 1'` (restartPolicy Never) was still Running after 10 s "
                                    "(simulated nodes?)")
                    break
            time.sleep(0.5)
        else:
            probe.runs = False
            probe.reason = (f"cannot tell whether the cluster runs containers: the probe pod (image "
                            f"{images.tools}) was still {phase or 'Pending'} after {PROBE_TIMEOUT:g} s")
    finally:
        _delete_namespace(core, ns)
    return probe


@pytest.fixture(autouse=True)
def _real_nodes_gate(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("real_nodes") is None:
        return
    probe = request.getfixturevalue("containers_run")
    if not probe.runs:
        pytest.skip(f"needs real nodes: {probe.reason}")


# ---------------------------------------------------------------------------------------------
# The results table

@dataclass
class _Result:
    name: str
    area: str
    upstream: str | None
    outcome: str = "passed"
    seconds: float = 0.0
    reason: str = ""
    order: int = 0


_RESULTS = pytest.StashKey[dict]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    results: dict = item.config.stash[_RESULTS]
    area, upstream = _marker(item)
    result = results.setdefault(item.nodeid, _Result(_display_name(item), area, upstream, order=len(results)))
    result.seconds += report.duration
    if report.failed:
        result.outcome = "failed" if report.when == "call" else "error"
    elif report.skipped and result.outcome == "passed":
        result.outcome = "skipped"
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        result.reason = reason.removeprefix("Skipped: ")
    return report


def _display_name(item: pytest.Item) -> str:
    module = item.nodeid.split("::")[0].rsplit("/", 1)[-1].removesuffix(".py")
    return f"{module}::{item.name}"


def results_table(results: list[_Result]) -> list[str]:
    header = ("TEST", "AREA", "UPSTREAM CONFORMANCE TEST", "RESULT", "TIME")
    rows = [(r.name, r.area, r.upstream or "-", r.outcome.upper(), f"{r.seconds:.1f}s")
            for r in sorted(results, key=lambda r: (_area_rank(r.area), r.order))]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in (header, *rows)]
    return lines


def _area_rank(area: str) -> int:
    from boxkube.conformance.support import AREAS
    return AREAS.index(area) if area in AREAS else len(AREAS)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    results = list(config.stash[_RESULTS].values())
    if not results:
        return
    terminalreporter.section("conformance results")
    for line in results_table(results):
        terminalreporter.write_line(line)
    counts: dict[str, int] = {}
    for r in results:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    terminalreporter.write_line(", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())))
    skipped = [r for r in results if r.outcome == "skipped"]
    if skipped:
        terminalreporter.write_line("skipped:")
        for r in skipped:
            terminalreporter.write_line(f"  {r.name}: {r.reason}")
