"""A whole local cluster — API server, scheduler, controller manager, three simulated nodes — made by
`boxkube create cluster --provider local --nodes 3` and driven only with the real kubectl, as a
student or a CI job would."""
from __future__ import annotations

import json

from tests.conftest import until



def pods(cluster, *selector: str, namespace: str = "default") -> list[dict]:
    out = cluster.kubectl("get", "pods", "-n", namespace, *selector, "-o", "json").stdout
    return json.loads(out)["items"]


def running_pods(cluster, *selector: str, namespace: str = "default") -> list[dict]:
    return [p for p in pods(cluster, *selector, namespace=namespace)
            if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]


def test_nodes_are_ready_with_pod_ranges(full_cluster):
    nodes = json.loads(full_cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    assert sorted(n["metadata"]["name"] for n in nodes) == [f"{full_cluster.name}-worker", f"{full_cluster.name}-worker2",
                                                           f"{full_cluster.name}-worker3"]
    for node in nodes:
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True"
        assert node["spec"]["podCIDR"].startswith("10.244.")
    assert len({n["spec"]["podCIDR"] for n in nodes}) == 3


def test_deployment_rolls_out_spreads_updates_and_rolls_back(full_cluster):
    full_cluster.kubectl("create", "deployment", "web", "--image=nginx:1.26", "--replicas=3")
    out = full_cluster.kubectl("rollout", "status", "deployment/web", "--timeout=60s").stdout
    assert 'deployment "web" successfully rolled out' in out
    running = running_pods(full_cluster, "-l", "app=web")
    assert len(running) == 3
    assert len({p["spec"]["nodeName"] for p in running}) == 3    # replicas spread over the nodes
    assert all(p["status"]["podIP"].startswith("10.244.") for p in running)

    full_cluster.kubectl("set", "image", "deployment/web", "nginx=nginx:1.27")
    full_cluster.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    assert {c["image"] for p in running_pods(full_cluster, "-l", "app=web") for c in p["spec"]["containers"]} == {"nginx:1.27"}
    full_cluster.kubectl("rollout", "undo", "deployment/web")
    full_cluster.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    until(lambda: {c["image"] for p in running_pods(full_cluster, "-l", "app=web") for c in p["spec"]["containers"]}
          == {"nginx:1.26"}, what="pods back on nginx:1.26")
    history = full_cluster.kubectl("rollout", "history", "deployment/web").stdout
    assert "2 " in history and "3 " in history


def test_a_deleted_pod_is_replaced(full_cluster):
    full_cluster.kubectl("create", "deployment", "heal", "--image=nginx", "--replicas=2")
    full_cluster.kubectl("rollout", "status", "deployment/heal", "--timeout=60s")
    victim = running_pods(full_cluster, "-l", "app=heal")[0]["metadata"]["name"]
    full_cluster.kubectl("delete", "pod", victim, "--wait=false")
    until(lambda: len(running_pods(full_cluster, "-l", "app=heal")) == 2
          and victim not in {p["metadata"]["name"] for p in running_pods(full_cluster, "-l", "app=heal")},
          what="a replacement pod Running")


def test_a_pod_that_fits_nowhere_says_why(full_cluster):
    full_cluster.kubectl("run", "huge", "--image=nginx", "--overrides",
                 json.dumps({"spec": {"containers": [{"name": "huge", "image": "nginx",
                                                      "resources": {"requests": {"cpu": "64"}}}]}}))
    message = "0/3 nodes are available: 3 Insufficient cpu."
    until(lambda: message in full_cluster.kubectl("describe", "pod", "huge").stdout, what="FailedScheduling in describe")
    pod = json.loads(full_cluster.kubectl("get", "pod", "huge", "-o", "json").stdout)
    scheduled = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    assert (scheduled["status"], scheduled["reason"]) == ("False", "Unschedulable")
    full_cluster.kubectl("delete", "pod", "huge")


def test_a_crashing_container_backs_off(full_cluster):
    full_cluster.kubectl("run", "crash", "--image=busybox", "--annotations=sim.boxkube.dev/exit-after=0.2s",
                 "--annotations=sim.boxkube.dev/exit-code=1")

    def crash_looping():
        pod = json.loads(full_cluster.kubectl("get", "pod", "crash", "-o", "json").stdout)
        status = (pod["status"].get("containerStatuses") or [{}])[0]
        waiting = (status.get("state") or {}).get("waiting") or {}
        return status.get("restartCount", 0) >= 1 and waiting.get("reason") == "CrashLoopBackOff"
    until(crash_looping, timeout=40, what="CrashLoopBackOff after a restart")
    assert "CrashLoopBackOff" in full_cluster.kubectl("get", "pod", "crash").stdout
    full_cluster.kubectl("delete", "pod", "crash", "--grace-period=0")


def test_service_endpoints_follow_ready_pods(full_cluster):
    full_cluster.kubectl("create", "deployment", "svc", "--image=nginx", "--replicas=2", "--port=80")
    full_cluster.kubectl("rollout", "status", "deployment/svc", "--timeout=60s")
    full_cluster.kubectl("expose", "deployment", "svc", "--port=80")
    ips = {p["status"]["podIP"] for p in running_pods(full_cluster, "-l", "app=svc")}

    def endpoint_ips():
        ep = json.loads(full_cluster.kubectl("get", "endpoints", "svc", "-o", "json").stdout)
        return {a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or []}
    until(lambda: endpoint_ips() == ips, what="endpoints = the pods' IPs")
    full_cluster.kubectl("scale", "deployment/svc", "--replicas=0")
    until(lambda: endpoint_ips() == set(), what="no endpoints after scaling to 0")


def test_deleting_a_node_moves_its_pods(full_cluster):
    full_cluster.kubectl("create", "deployment", "move", "--image=nginx", "--replicas=3")
    full_cluster.kubectl("rollout", "status", "deployment/move", "--timeout=60s")
    node = running_pods(full_cluster, "-l", "app=move")[0]["spec"]["nodeName"]
    full_cluster.kubectl("delete", "node", node)
    until(lambda: len(running_pods(full_cluster, "-l", "app=move")) == 3
          and node not in {p["spec"]["nodeName"] for p in running_pods(full_cluster, "-l", "app=move")},
          timeout=60, what=f"3 pods Running off {node}")


def test_deleting_a_namespace_removes_what_is_in_it(full_cluster):
    full_cluster.kubectl("create", "namespace", "scratch")
    full_cluster.kubectl("create", "deployment", "tmp", "--image=nginx", "-n", "scratch")
    full_cluster.kubectl("rollout", "status", "deployment/tmp", "-n", "scratch", "--timeout=60s")
    full_cluster.kubectl("delete", "namespace", "scratch", "--timeout=60s")
    gone = full_cluster.kubectl("get", "namespace", "scratch", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
