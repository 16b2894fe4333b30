"""`boxkube conformance` against a local cluster (simulated nodes): the API area passes, the tests
that need containers that really run are skipped with the reason, and the results come as a table
(and as JUnit XML). The suite's own tests are what `boxkube conformance` runs; here is how it is
run and reported."""
from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from boxkube.conformance.support import AREAS

from tests.conftest import Cluster, made_cluster

REPO = Path(__file__).resolve().parents[2]
REAL_NODE_TESTS = ("test_restart_policy_always_onfailure_never_gives_the_right_restart_counts",
                   "test_a_service_answers_on_its_dns_names_through_the_pods_search_path",
                   "test_a_failing_liveness_probe_restarts_the_container_with_a_growing_restart_count",
                   "test_a_cluster_ip_spreads_requests_over_every_ready_endpoint",
                   "test_a_pod_that_is_not_ready_gets_no_traffic",
                   "test_a_node_port_service_answers_on_every_nodes_internal_ip",
                   "test_a_statefulset_pods_dns_name_resolves_to_its_ip")


@pytest.fixture(scope="module")
def local_cluster(tmp_path_factory) -> Iterator[Cluster]:
    with made_cluster(tmp_path_factory.mktemp("conformance-home"), "conf", "--nodes", "2") as c:
        yield c


def conformance(cluster: Cluster, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "boxkube.cli", "conformance", *args],
                          capture_output=True, text=True, env=cluster.env, timeout=600)


def table(stdout: str) -> dict[str, list[str]]:
    """The results table's rows, by test: [area, upstream, result, time] (columns split on 2+ spaces)."""
    lines = stdout.split("conformance results")[1].splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("TEST "))
    rows = {}
    for line in lines[header + 1:]:
        if not line.startswith("test_"):
            break
        cells = [c for c in line.split("  ") if c.strip()]
        rows[cells[0].strip()] = [c.strip() for c in cells[1:]]
    return rows


@pytest.mark.timeout(660)    # the whole suite: about 4 minutes on simulated nodes
def test_every_area_passes_and_real_node_tests_skip_with_a_reason(local_cluster, tmp_path):
    junit = tmp_path / "results.xml"
    # --name: the cluster's kubeconfig, and `boxkube node stop/start` for the lost-node test
    run = conformance(local_cluster, "--name", local_cluster.name, "--junit-xml", str(junit))
    assert run.returncode == 0, run.stdout + run.stderr
    rows = table(run.stdout)
    api = {name: row for name, row in rows.items() if row[0] == "API"}
    assert len(api) >= 7 and all(row[2] == "PASSED" for row in api.values()), api
    watch = rows["test_api::test_a_watch_restarts_from_the_last_resource_version_it_observed"]
    assert watch[1] == ("[sig-api-machinery] Watchers should be able to restart watching from the last resource "
                        "version observed by the previous watch [Conformance]")
    assert rows["test_api::test_an_update_with_a_stale_resource_version_is_a_409_conflict"][1] == "-"
    # Endpoints follow pods on simulated nodes too; traffic and restarts need real containers.
    assert rows["test_services::test_endpoints_start_empty_track_pods_and_end_empty[Endpoints]"][2] == "PASSED"
    for name, row in rows.items():
        if name.split("::")[1] in REAL_NODE_TESTS:
            assert row[2] == "SKIPPED", (name, row)
            assert f"{name}: needs real nodes: the cluster does not run containers" in run.stdout
        else:
            assert row[2] == "PASSED", (name, row)
    assert set(AREAS) == {row[0] for row in rows.values()}

    cases = ET.parse(junit).getroot().iter("testcase")
    props = {case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")} for case in cases}
    assert props["test_a_label_filtered_watch_sends_deleted_when_an_object_stops_matching"] == {
        "area": "API", "upstream": "[sig-api-machinery] Watchers should observe an object deletion if it stops "
                                   "meeting the requirements of the selector [Conformance]"}


def test_focus_selects_by_name_area_or_upstream_name(local_cluster):
    run = conformance(local_cluster, "--kubeconfig", str(local_cluster.kubeconfig), "--focus", "API chunking|409")
    assert run.returncode == 0, run.stdout + run.stderr
    assert sorted(table(run.stdout)) == [
        "test_api::test_a_list_in_chunks_with_limit_and_continue_is_one_consistent_snapshot",
        "test_api::test_an_update_with_a_stale_resource_version_is_a_409_conflict"]

    none = conformance(local_cluster, "--kubeconfig", str(local_cluster.kubeconfig), "--focus", "no-such-test")
    assert none.returncode == 1
    assert none.stderr.strip().splitlines()[-1] == 'ERROR: no conformance test matches --focus "no-such-test"'


def test_the_lost_node_test_is_skipped_with_the_reason_when_the_suite_cannot_stop_a_node(local_cluster):
    run = conformance(local_cluster, "--kubeconfig", str(local_cluster.kubeconfig), "--focus", "lost_node")
    assert run.returncode == 0, run.stdout + run.stderr
    assert table(run.stdout)["test_self_healing::test_the_pods_of_a_lost_node_are_made_again_on_the_other_nodes"][2] \
        == "SKIPPED"
    assert "the cluster does not let the suite stop a node: give --conformance-node-stop" in run.stdout

    half = conformance(local_cluster, "--kubeconfig", str(local_cluster.kubeconfig), "--node-stop", "true")
    assert half.returncode == 1
    assert half.stderr.strip().splitlines()[-1] == "ERROR: give both --node-stop and --node-start, or neither"


def test_a_cluster_it_cannot_use_is_a_failure(local_cluster):
    run = conformance(local_cluster, "--kubeconfig", str(local_cluster.kubeconfig), "--context", "no-such-context",
                      "--focus", "409")
    assert run.returncode != 0
    assert "no-such-context" in run.stdout + run.stderr


def test_it_runs_as_plain_pytest_too(local_cluster):
    run = subprocess.run([sys.executable, "-m", "pytest", "conformance/", "--kubeconfig", str(local_cluster.kubeconfig),
                          "--conformance-focus", "stale"], capture_output=True, text=True, env=local_cluster.env,
                         timeout=300, cwd=str(REPO))
    assert run.returncode == 0, run.stdout + run.stderr
    assert table(run.stdout)["test_api::test_an_update_with_a_stale_resource_version_is_a_409_conflict"][2] == "PASSED"
