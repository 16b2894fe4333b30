"""The pytest plugin of boxkube (registered through the `pytest11` entry point): a Kubernetes cluster
for a project's tests.

Fixtures: `boxkube_cluster` (the session's cluster, a boxkube.testing.Cluster), `kube` (an official
`kubernetes.client.ApiClient` of it) and `kube_namespace` (a fresh namespace per test). When a test
that used a namespace fails, its report gets the namespace's events, pods and pod logs.

pytest loads this module into every run of a project that has boxkube installed, boxkube's own
included, so it imports nothing beyond pytest here: the cluster code and the kubernetes client are
imported by the fixtures, when a test first uses one.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from boxkube.testing.cluster import Cluster

# The namespace a test's kube_namespace made, with the client to read it, for its failure report.
_NAMESPACE = pytest.StashKey[tuple["ApiClient", str]]()
# Lines for the end of the session (how to reuse or delete a kept cluster).
_NOTES = pytest.StashKey[list[str]]()

# The options that make a cluster, which --boxkube-kubeconfig (a cluster that exists) cannot go with.
_CREATE_OPTIONS = ("boxkube_provider", "boxkube_nodes", "boxkube_keep", "boxkube_reuse")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("boxkube", "the cluster of the boxkube_cluster, kube and kube_namespace fixtures")
    group.addoption("--boxkube-provider", metavar="docker|local",
                    help="how boxkube runs the cluster: docker (real nodes; the default, as for "
                         "`boxkube create cluster`) or local (simulated nodes, in seconds)")
    group.addoption("--boxkube-nodes", type=int, metavar="N", help="number of worker nodes (default: the provider's)")
    group.addoption("--boxkube-keep", action="store_true", default=None,
                    help="leave the cluster running after the session (run again with --boxkube-reuse NAME)")
    group.addoption("--boxkube-reuse", metavar="NAME",
                    help="use the boxkube cluster NAME if it exists (and leave it), else make it under that name")
    group.addoption("--boxkube-kubeconfig", metavar="PATH",
                    help="use the existing cluster of this kubeconfig (any kind): nothing is made or deleted")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("boxkube_kubeconfig"):
        given = [f"--{name.replace('_', '-')}" for name in _CREATE_OPTIONS if config.getoption(name) is not None]
        if given:
            raise pytest.UsageError(
                f"--boxkube-kubeconfig uses an existing cluster: it cannot go with {', '.join(given)}")
    config.stash[_NOTES] = []


@pytest.fixture(scope="session")
def boxkube_cluster(pytestconfig: pytest.Config) -> Iterator[Cluster]:
    """The session's cluster: the one of --boxkube-kubeconfig, else a boxkube cluster made for the
    session (in $BOXKUBE_HOME) and deleted at its end, unless --boxkube-keep or --boxkube-reuse."""
    from boxkube.cluster.providers import DEFAULT_PROVIDER
    from boxkube.testing.cluster import BoxkubeCluster, Cluster

    option = pytestconfig.getoption
    cluster: Cluster
    if option("boxkube_kubeconfig"):
        cluster = Cluster(option("boxkube_kubeconfig"))
    else:
        cluster = BoxkubeCluster(option("boxkube_reuse"), provider=option("boxkube_provider") or DEFAULT_PROVIDER,
                                 nodes=option("boxkube_nodes"), keep=bool(option("boxkube_keep")),
                                 reuse=option("boxkube_reuse") is not None)
    with cluster:
        if isinstance(cluster, BoxkubeCluster) and cluster.created and cluster.keep:
            pytestconfig.stash[_NOTES].append(
                f'boxkube: kept cluster "{cluster.name}" (in {cluster.home}): run again with --boxkube-reuse '
                f"{cluster.name}, delete it with: boxkube delete cluster --name {cluster.name}")
        yield cluster


@pytest.fixture(scope="session")
def kube(boxkube_cluster: Cluster) -> Iterator[ApiClient]:
    """An official-client `kubernetes.client.ApiClient` of the session's cluster (whose API server
    answers), e.g. `kubernetes.client.CoreV1Api(kube)`."""
    with boxkube_cluster.api_client() as client:
        yield client


@pytest.fixture
def kube_namespace(request: pytest.FixtureRequest, kube: ApiClient) -> Iterator[str]:
    """The name of a namespace made for this test (named after it) and deleted after it."""
    from kubernetes.client import CoreV1Api
    from kubernetes.client.exceptions import ApiException

    core = CoreV1Api(kube)
    made = core.create_namespace({"metadata": {"generateName": f"{_namespace_prefix(request.node.name)}-"}})
    name = made.metadata.name
    request.node.stash[_NAMESPACE] = (kube, name)
    yield name
    del request.node.stash[_NAMESPACE]
    try:
        core.delete_namespace(name)
    except ApiException as e:
        if e.status != 404:  # the test may have deleted it itself
            raise


def _namespace_prefix(test_name: str) -> str:
    """A test's name as the start of a namespace name (a DNS label, with room for generateName's 5 characters)."""
    return re.sub(r"[^a-z0-9]+", "-", test_name.lower())[:50].strip("-") or "test"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Add the namespace's events, pods and logs to the report of a failing test that has one."""
    report = yield
    namespace = item.stash.get(_NAMESPACE, None)
    if namespace is not None and report.failed:
        from boxkube.testing.diagnostics import namespace_report

        for title, text in namespace_report(*namespace):
            report.sections.append((f"boxkube: {title}", text))
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    for note in config.stash.get(_NOTES, []):
        terminalreporter.write_line(note)
