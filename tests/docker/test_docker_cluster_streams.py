"""`kubectl logs`, `kubectl exec` and a liveness probe on a docker cluster, with the real kubectl: the API
server in the control-plane container proxies to the node agent's kubelet API on the worker's InternalIP."""
from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest
import yaml

from tests.conftest import Cluster, made_cluster, until

pytestmark = pytest.mark.docker

BUSYBOX = "boxkube/busybox:1"


@pytest.fixture(scope="module")
def streams_cluster(docker_client, tmp_path_factory) -> Iterator[Cluster]:
    with made_cluster(tmp_path_factory.mktemp("streams-home"), "st", "--nodes", "1", provider="docker") as c:
        yield c


def pod(name: str, script: str, **container) -> str:
    return yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                           "spec": {"terminationGracePeriodSeconds": 0, "containers": [
                               {"name": "app", "image": BUSYBOX, "command": ["sh", "-c", script], **container}]}})


def status(cluster: Cluster, name: str) -> dict:
    p = json.loads(cluster.kubectl("get", "pod", name, "-o", "json").stdout)
    return ((p.get("status") or {}).get("containerStatuses") or [{}])[0]


def test_logs_and_exec(streams_cluster):
    c = streams_cluster
    c.kubectl("apply", "-f", "-", input=pod("talk", "echo start $(cat /proc/sys/kernel/random/uuid); i=0; "
                                                      "while [ ! -f /tmp/stop ]; do echo tick $i; i=$((i+1)); sleep 0.2; done; exit 1"))
    c.kubectl("wait", "--for=condition=Ready", "pod/talk", "--timeout=90s", timeout=100)
    logs = c.kubectl("logs", "talk").stdout
    assert logs.startswith("start ") and "tick 0\n" in logs
    assert c.kubectl("logs", "talk", "--tail=1").stdout.count("\n") == 1
    stamped = c.kubectl("logs", "talk", "--timestamps", "--tail=1").stdout
    assert stamped.split(" ", 1)[0].endswith("Z") and " tick " in stamped
    # -f: a few lines, then stop
    proc = subprocess.Popen([*c.kubectl_argv(), "logs", "-f", "talk", "-c", "app"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=c.env)
    try:
        first = [proc.stdout.readline() for _ in range(5)]
    finally:
        proc.kill()
        proc.wait()
    assert first[0].startswith("start ") and first[1] == "tick 0\n"
    # exec: output, exit codes, stdin
    r = c.kubectl("exec", "talk", "--", "sh", "-c", "echo out; echo err >&2; hostname")
    assert r.stdout == "out\ntalk\n" and r.stderr == "err\n"
    r = c.kubectl("exec", "talk", "--", "sh", "-c", "exit 3", check=False)
    assert r.returncode == 3, r.stderr
    r = c.kubectl("exec", "-i", "talk", "--", "sh", "-c", "tr a-z A-Z", input="hello\n")
    assert r.stdout == "HELLO\n"
    # --previous after a restart (the container is told to exit through a file)
    c.kubectl("exec", "talk", "--", "touch", "/tmp/stop")
    until(lambda: status(c, "talk").get("restartCount", 0) >= 1 and "running" in status(c, "talk")["state"],
          timeout=90, interval=0.5, what="a restart")
    previous = c.kubectl("logs", "talk", "--previous").stdout
    assert previous.startswith(logs.splitlines()[0] + "\n")


def test_a_liveness_failure_restarts_the_container(streams_cluster):
    c = streams_cluster
    c.kubectl("apply", "-f", "-", input=pod(
        "sick", "touch /tmp/alive; exec sleep 3600",
        livenessProbe={"exec": {"command": ["sh", "-c", "test -f /tmp/alive && rm /tmp/alive"]},
                       "periodSeconds": 1, "failureThreshold": 1}))
    counts = []

    def restarted_twice():
        counts.append(status(c, "sick").get("restartCount", 0))
        return counts[-1] >= 2
    until(restarted_twice, timeout=120, interval=0.5, what="two restarts")
    assert counts == sorted(counts)
    events = c.kubectl("get", "events", "--field-selector", "involvedObject.name=sick", "-o", "json").stdout
    seen = {(e["reason"], e["message"]) for e in json.loads(events)["items"]}
    assert ("Killing", "Container app failed liveness probe, will be restarted") in seen
    assert any(r == "Unhealthy" and m.startswith("Liveness probe failed") for r, m in seen)
