"""Self-healing of a docker cluster (issue §5), on one real 3-worker cluster made by the CLI and driven with
the real kubectl: a Deployment spread over the three nodes answers through its Service's DNS names from a
pod on every node; then a worker container is killed with the Docker CLI, its Node goes NotReady and the
Deployment's pods come back on the surviving nodes, with the Service answering from live endpoints only.

The node-loss test runs last in the module: it destroys a node of the shared cluster.
"""
from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator

import pytest

from boxkube.cluster.config import Timings
from boxkube.cluster.providers.docker import node_names
from tests.conftest import Cluster, made_cluster, until

pytestmark = pytest.mark.docker

WEB, BUSYBOX = "boxkube/hello:1", "boxkube/busybox:1"
NS = "heal"
REPLICAS = 6            # two per node: a lost node takes two pods with it
REQUESTS = 30           # per DNS name and client: 60 requests see each of 6 endpoints but for ~1e-4

DEPLOYMENT = f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {REPLICAS}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      # maxSkew 1 over hostnames: 2/2/2 on three nodes. nodeTaintsPolicy Honor leaves a node whose
      # taints the pod does not tolerate (a lost node's unreachable:NoSchedule) out of the skew, so
      # the replacements may go 3/3 on the survivors (with Ignore the empty lost node would pin the
      # minimum at 0 and they would stay Pending, as upstream).
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: DoNotSchedule
          nodeTaintsPolicy: Honor
          labelSelector: {{matchLabels: {{app: web}}}}
      containers: [{{name: web, image: "{WEB}", ports: [{{containerPort: 8080}}]}}]
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
"""


def client_pod(node: str) -> str:
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: client-{node}, labels: {{app: client}}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {node}}}
  terminationGracePeriodSeconds: 0
  containers: [{{name: c, image: "{BUSYBOX}", command: [sleep, "3600"]}}]
"""


def workers(cluster: Cluster) -> list[str]:
    return node_names(cluster.name, 3)[1:]     # NAME-worker, NAME-worker2, NAME-worker3


@pytest.fixture(scope="module")
def heal_cluster(docker_client, tmp_path_factory) -> Iterator[Cluster]:
    # boxkube's default timings (10 s node-monitor grace period, 20 s default tolerationSeconds of the
    # not-ready/unreachable taints) heal a lost node in well under a minute: no config file needed.
    with made_cluster(tmp_path_factory.mktemp("heal-home"), "heal", "--nodes", "3", "--wait", "300",
                      provider="docker") as c:
        c.kubectl("create", "namespace", NS)
        manifests = "---".join([DEPLOYMENT, *map(client_pod, workers(c))])
        c.kubectl("apply", "-n", NS, "-f", "-", input=manifests)
        c.kubectl("rollout", "status", "-n", NS, "deployment/web", "--timeout=150s", timeout=170)
        c.kubectl("wait", "-n", NS, "pod", "-l", "app=client", "--for=condition=Ready", "--timeout=120s",
                  timeout=140)
        yield c


def pods(cluster: Cluster, app: str) -> list[dict]:
    """The app's pods that are not being deleted."""
    items = json.loads(cluster.kubectl("get", "pods", "-n", NS, "-l", f"app={app}", "-o", "json").stdout)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def running(pod: dict) -> bool:
    conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions") or []}
    return pod["status"].get("phase") == "Running" and conditions.get("Ready") == "True"


def ask(cluster: Cluster, client: str) -> dict[str, list[str]]:
    """What REQUESTS HTTP requests to each of the Service's names answer, from the client pod (kubectl exec):
    the short name through the pod's DNS search path, and the full name. (busybox `timeout`, not wget's
    -T: the Debian busybox 1.35 of boxkube/busybox segfaults on -T, on any host.)"""
    names = ("web", f"web.{NS}.svc.cluster.local")
    script = (f"for i in $(seq {REQUESTS}); do for h in {' '.join(names)}; do "
              "r=$(timeout 3 wget -qO- http://$h/ 2>&1) || r=\"FAILED $r\"; echo \"$h $r\"; done; done")
    out = cluster.kubectl("exec", "-n", NS, client, "--", "sh", "-c", script, timeout=120).stdout
    answers: dict[str, list[str]] = {h: [] for h in names}
    for line in out.splitlines():
        host, _, answer = line.partition(" ")
        answers[host].append(answer.strip())
    return answers


def assert_answers_from(answers: dict[str, list[str]], endpoints: set[str], where: str) -> None:
    for host, got in answers.items():
        assert len(got) == REQUESTS and set(got) <= endpoints, f"{host} from {where}: {got}"
    seen = {a for got in answers.values() for a in got}
    assert seen == endpoints, f"from {where}: only {sorted(seen)} of {sorted(endpoints)}"


def ready_condition(cluster: Cluster, node: str) -> dict:
    obj = json.loads(cluster.kubectl("get", "node", node, "-o", "json").stdout)
    return next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")


def test_service_dns_names_answer_from_every_node_with_every_endpoint(heal_cluster):
    web = pods(heal_cluster, "web")
    assert len(web) == REPLICAS and all(map(running, web))
    per_node = {n: sum(p["spec"]["nodeName"] == n for p in web) for n in workers(heal_cluster)}
    assert per_node == {n: REPLICAS // 3 for n in per_node}, per_node
    clients = {p["spec"]["nodeName"]: p["metadata"]["name"] for p in pods(heal_cluster, "client")}
    assert sorted(clients) == workers(heal_cluster)
    names = {p["metadata"]["name"] for p in web}
    for node, client in sorted(clients.items()):
        assert_answers_from(ask(heal_cluster, client), names, node)


def test_a_killed_worker_goes_not_ready_and_its_pods_come_back_on_the_others(heal_cluster, docker_client):
    """Runs last: it kills a node. With boxkube's default timings (10 s grace, 20 s eviction) the Node's
    Ready goes Unknown some 10 s after the kill and the replacement pods run some 20-30 s later."""
    c = heal_cluster
    victim = workers(c)[1]
    survivors = [n for n in workers(c) if n != victim]
    lost = {p["metadata"]["name"] for p in pods(c, "web") if p["spec"]["nodeName"] == victim}
    assert len(lost) == REPLICAS // 3

    killed_at = time.monotonic()
    subprocess.run(["docker", "kill", victim], check=True, capture_output=True, timeout=60)
    assert docker_client.containers.get(victim).status == "exited"

    grace, eviction = Timings().node_monitor_grace_period, Timings().pod_eviction_timeout
    ready = until(lambda: (r := ready_condition(c, victim))["status"] == "Unknown" and r,
                  timeout=grace + 30, what=f"{victim} Ready=Unknown", interval=1)
    not_ready_after = time.monotonic() - killed_at
    assert ready["reason"] == "NodeStatusUnknown" and ready["message"] == "Kubelet stopped posting node status."
    row = c.kubectl("get", "node", victim, "--no-headers").stdout.split()
    assert row[:2] == [victim, "NotReady"], row
    taints = json.loads(c.kubectl("get", "node", victim, "-o", "json").stdout)["spec"].get("taints") or []
    assert {(t["key"], t["effect"]) for t in taints} >= {("node.kubernetes.io/unreachable", "NoExecute"),
                                                          ("node.kubernetes.io/unreachable", "NoSchedule")}

    def healed() -> list[dict] | None:
        web = pods(c, "web")
        ok = (len(web) == REPLICAS and all(map(running, web))
              and not lost & {p["metadata"]["name"] for p in web})
        return web if ok else None

    web = until(healed, timeout=eviction + 60, what="the Deployment's pods running on the surviving nodes",
                interval=1)
    healed_after = time.monotonic() - killed_at
    print(f"\n{victim}: NotReady {not_ready_after:.1f} s after docker kill, "
          f"replacements Running {healed_after:.1f} s after it")
    per_node = {n: sum(p["spec"]["nodeName"] == n for p in web) for n in survivors}
    assert sum(per_node.values()) == REPLICAS and max(per_node.values()) - min(per_node.values()) <= 1, per_node
    deployment = json.loads(c.kubectl("get", "deployment", "-n", NS, "web", "-o", "json").stdout)
    assert deployment["status"].get("availableReplicas") == REPLICAS, deployment["status"]

    # The Service: only the live pods are ready endpoints, and only they answer, from a pod on each survivor.
    live = {p["metadata"]["name"] for p in web}
    live_ips = {p["status"]["podIP"] for p in web}

    def ready_endpoint_ips() -> set[str]:
        slices = json.loads(c.kubectl("get", "endpointslices", "-n", NS, "-l", "kubernetes.io/service-name=web",
                                      "-o", "json").stdout)["items"]
        return {ip for s in slices for e in s.get("endpoints") or []
                if (e.get("conditions") or {}).get("ready") is not False for ip in e["addresses"]}

    until(lambda: ready_endpoint_ips() == live_ips or None, timeout=20, what="only live ready endpoints",
          interval=1)
    clients = {p["spec"]["nodeName"]: p["metadata"]["name"] for p in pods(c, "client")}
    for node in survivors:
        assert_answers_from(ask(c, clients[node]), live, node)
