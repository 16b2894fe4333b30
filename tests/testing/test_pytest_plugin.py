"""The pytest plugin, run as another project runs it: pytester writes a project's test file and runs
pytest on it in a new process, where the plugin comes from boxkube's `pytest11` entry point.

Every cluster is a `local` one (simulated nodes, seconds) in a BOXKUBE_HOME of its own.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes.client import CoreV1Api

from boxkube.cluster.delete import delete_cluster
from boxkube.cluster.progress import SilentProgress
from boxkube.cluster.providers import provider_factory
from boxkube.testing import BoxkubeCluster

pytest_plugins = ["pytester"]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The BOXKUBE_HOME of the project's pytest run (its subprocess inherits this environment)."""
    monkeypatch.setenv("BOXKUBE_HOME", str(tmp_path / "boxkube-home"))
    return tmp_path / "boxkube-home"


def clusters_in(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "clusters").glob("*")) if (home / "clusters").is_dir() else []


@pytest.fixture(scope="module")
def outer_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BoxkubeCluster]:
    """A cluster made once for this module with the context manager (and deleted by it)."""
    home = tmp_path_factory.mktemp("outer-home")
    with BoxkubeCluster(provider="local", nodes=1, home=home) as cluster:
        assert cluster.created and cluster.kubeconfig.is_file()
        yield cluster
    assert clusters_in(home) == [], "leaving the with block deletes the cluster"


def test_plugin_costs_nothing_until_a_fixture_is_used(pytester: pytest.Pytester, home: Path) -> None:
    pytester.makepyfile("""
        import sys

        def test_nothing_heavy_imported(request):
            assert request.config.pluginmanager.has_plugin("boxkube")
            heavy = [m for m in sys.modules if m.split(".")[0] == "kubernetes" or m.startswith("boxkube.cluster")]
            assert heavy == []
    """)
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert clusters_in(home) == []


def test_fixtures_and_failure_report(pytester: pytest.Pytester, home: Path) -> None:
    pytester.makepyfile("""
        import pytest
        from kubernetes.client import AppsV1Api, CoreV1Api
        from boxkube.cluster.errors import ClusterError

        APP = '''
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web}
        spec:
          replicas: 2
          selector: {matchLabels: {app: web}}
          template:
            metadata: {labels: {app: web}}
            spec: {containers: [{name: web, image: nginx}]}
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: settings}
        data: {color: blue}
        '''
        seen = []

        def test_apply_and_wait(boxkube_cluster, kube, kube_namespace):
            seen.append(kube_namespace)
            assert kube_namespace.startswith("test-apply-and-wait-")
            applied = boxkube_cluster.apply(APP, namespace=kube_namespace)
            assert [(o["kind"], o["metadata"]["namespace"]) for o in applied] == [
                ("Deployment", kube_namespace), ("ConfigMap", kube_namespace)]
            apps = AppsV1Api(kube)
            boxkube_cluster.wait_for(lambda: apps.read_namespaced_deployment("web", kube_namespace).status,
                                     until=lambda s: s.ready_replicas == 2, timeout=30, what="web ready")
            boxkube_cluster.apply(APP.replace("blue", "red"), namespace=kube_namespace)
            shown = boxkube_cluster.kubectl("get", "configmap", "settings", "-n", kube_namespace,
                                            "-o", "jsonpath={.data.color}")
            assert shown.stdout == "red"

        def test_namespace_is_fresh(boxkube_cluster, kube, kube_namespace):
            core = CoreV1Api(kube)
            assert kube_namespace not in seen
            assert core.list_namespaced_pod(kube_namespace).items == []
            assert len(boxkube_cluster.kubectl("get", "nodes", "-o", "name").stdout.split()) == 2

        def test_load_image_needs_real_nodes(boxkube_cluster):
            with pytest.raises(ClusterError, match="simulated"):
                boxkube_cluster.load_image("busybox:1")

        def test_fails(boxkube_cluster, kube_namespace):
            boxkube_cluster.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "doomed"},
                                   "spec": {"containers": [{"name": "main", "image": "busybox"}]}},
                                  namespace=kube_namespace)
            boxkube_cluster.wait_for(lambda: boxkube_cluster.kubectl(
                "get", "pod", "doomed", "-n", kube_namespace, "-o", "jsonpath={.status.phase}").stdout,
                until=lambda phase: phase == "Succeeded", timeout=3, what="doomed to finish")
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--boxkube-provider", "local",
                                           "--boxkube-nodes", "2")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines([
        "*WaitTimeoutError: timed out after 3 s waiting for doomed to finish; last observed: 'Running'",
        "*- boxkube: events of namespace test-fails-* -*",
        "*Normal Scheduled Pod/doomed: Successfully assigned test-fails-*/doomed to *",
        "*- boxkube: pods of namespace test-fails-* -*",
        "doomed Running node=* main=running ready=True restarts=0",
        "*- boxkube: log of pod doomed, container main -*",
    ])
    assert "boxkube: events of namespace test-apply" not in result.stdout.str(), "only failing tests get them"
    assert clusters_in(home) == [], "the session's cluster is deleted at its end"


def test_kubeconfig_option_uses_an_existing_cluster(pytester: pytest.Pytester, home: Path,
                                                   outer_cluster: BoxkubeCluster) -> None:
    outer_cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "outer-marker"}})
    pytester.makepyfile("""
        import pytest
        from kubernetes.client import CoreV1Api
        from boxkube.cluster.errors import ClusterError

        def test_it_is_the_given_cluster(boxkube_cluster, kube, kube_namespace):
            CoreV1Api(kube).read_namespaced_config_map("outer-marker", "default")
            with pytest.raises(ClusterError, match="cannot load images"):
                boxkube_cluster.load_image("busybox:1")
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider",
                                           "--boxkube-kubeconfig", str(outer_cluster.kubeconfig))
    result.assert_outcomes(passed=1)
    assert clusters_in(home) == [], "nothing made"
    outer_cluster.ping()  # and nothing deleted
    namespaces = [n.metadata for n in CoreV1Api(outer_cluster.api_client()).list_namespace().items]
    assert all(m.deletion_timestamp for m in namespaces if m.name.startswith("test-")), "its namespace is being deleted"

    conflict = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--boxkube-kubeconfig", "kc", "--boxkube-keep")
    assert conflict.ret == pytest.ExitCode.USAGE_ERROR
    conflict.stderr.fnmatch_lines(["*--boxkube-kubeconfig uses an existing cluster: it cannot go with --boxkube-keep"])


def test_keep_then_reuse(pytester: pytest.Pytester, home: Path) -> None:
    pytester.makepyfile(test_first="""
        def test_leave_a_mark(boxkube_cluster):
            boxkube_cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mark"}})
    """)
    first = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--boxkube-provider", "local", "--boxkube-keep",
                                          "test_first.py")
    first.assert_outcomes(passed=1)
    kept = re.search(r'boxkube: kept cluster "([a-z0-9-]+)"', first.stdout.str())
    assert kept, first.stdout.str()
    name = kept.group(1)
    try:
        assert clusters_in(home) == [name]
        pytester.makepyfile(test_second="""
            from kubernetes.client import CoreV1Api

            def test_find_the_mark(kube):
                CoreV1Api(kube).read_namespaced_config_map("mark", "default")
        """)
        second = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--boxkube-reuse", name, "test_second.py")
        second.assert_outcomes(passed=1)
        assert "kept cluster" not in second.stdout.str()
        assert clusters_in(home) == [name], "a reused cluster is left as it was found"
    finally:
        delete_cluster(name, home=home, environ=os.environ, providers=provider_factory(home, os.environ),
                       progress=SilentProgress())
