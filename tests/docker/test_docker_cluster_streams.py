"""`kubectl logs`, `exec`, `attach`, `port-forward` and a liveness probe on a docker cluster, with the real
kubectl: the API server in the control-plane container proxies to the node agent's kubelet API on the
worker's InternalIP (port-forward: it ends kubectl's SPDY session and the agent connects to the pod's IP)."""
from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from tests.conftest import Cluster, made_cluster, until

pytestmark = pytest.mark.docker

BUSYBOX = "boxkube/busybox:1"
HELLO = "boxkube/hello:1"


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


class PortForward:
    """A running `kubectl port-forward` and the local port it chose."""

    def __init__(self, cluster: Cluster, *args: str):
        self.proc = subprocess.Popen([*cluster.kubectl_argv(), "port-forward", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=cluster.env)
        line = self.proc.stdout.readline()
        match = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> \d+", line)
        if match is None:
            self.proc.kill()
            raise AssertionError(f"kubectl port-forward said {line!r}: {self.proc.communicate()[1]}")
        self.port = int(match.group(1))

    def get(self, path: str = "/") -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=30) as r:
            return r.read().decode()

    def stop(self) -> str:
        self.proc.terminate()
        return self.proc.communicate(timeout=30)[1]


def test_port_forward_to_a_pod_and_a_service(streams_cluster):
    c = streams_cluster
    c.kubectl("create", "deployment", "hello", f"--image={HELLO}", "--port=8080")
    c.kubectl("expose", "deployment", "hello", "--port=80", "--target-port=8080")
    c.kubectl("rollout", "status", "deployment/hello", "--timeout=90s", timeout=100)
    name = c.kubectl("get", "pods", "-l", "app=hello", "-o", "jsonpath={.items[0].metadata.name}").stdout
    pf = PortForward(c, f"pod/{name}", "0:8080")
    try:
        assert [pf.get() for _ in range(3)] == [f"{name}\n"] * 3        # one connection after another
        with ThreadPoolExecutor(6) as pool:                                # and several at once
            assert list(pool.map(lambda _: pf.get(), range(12))) == [f"{name}\n"] * 12
        assert pf.proc.poll() is None
    finally:
        err = pf.stop()
    assert "error" not in err.lower(), err
    # svc/NAME: kubectl picks one of the Service's pods and its targetPort itself
    pf = PortForward(c, "svc/hello", "0:80")
    try:
        assert pf.get() == f"{name}\n"
    finally:
        pf.stop()


def test_port_forward_to_a_closed_port(streams_cluster):
    c = streams_cluster
    c.kubectl("apply", "-f", "-", input=pod("quiet", "exec sleep 3600"))
    c.kubectl("wait", "--for=condition=Ready", "pod/quiet", "--timeout=90s", timeout=100)
    pf = PortForward(c, "quiet", "0:7777")
    try:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{pf.port}/", timeout=30)
            raise AssertionError("a request through a closed port was answered")
        except OSError:       # URLError, a reset: kubectl closes the connection
            pass
        pf.proc.wait(timeout=30)       # kubectl gives up the session, as against a kubelet
    finally:
        err = pf.stop()
    assert re.search(r'"An error occurred forwarding" err="error forwarding port 7777 to pod quiet_default, uid '
                     r'[0-9a-f-]+: dial tcp [0-9.]+:7777: connect: connection refused"', err), err
    assert "error: lost connection to pod" in err


def test_attach(streams_cluster):
    c = streams_cluster
    c.kubectl("apply", "-f", "-", input=pod("chatty", "i=0; while :; do echo line $i; i=$((i+1)); sleep 0.2; done"))
    c.kubectl("wait", "--for=condition=Ready", "pod/chatty", "--timeout=90s", timeout=100)
    proc = subprocess.Popen([*c.kubectl_argv(), "attach", "chatty"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=c.env)
    try:
        lines = [proc.stdout.readline() for _ in range(3)]
    finally:
        proc.kill()
        proc.wait()
    first = int(re.fullmatch(r"line (\d+)\n", lines[0]).group(1))
    assert lines == [f"line {first + i}\n" for i in range(3)]
    # -i to a container that reads its stdin (stdinOnce: its stdin ends with kubectl's, and so does it)
    c.kubectl("apply", "-f", "-", input=pod("reader", "while read l; do echo got $l; done; echo bye",
                                                stdin=True, stdinOnce=True))
    c.kubectl("wait", "--for=condition=Ready", "pod/reader", "--timeout=90s", timeout=100)
    r = c.kubectl("attach", "-i", "reader", input="hello\nworld\n", timeout=60)
    assert r.stdout == "got hello\ngot world\nbye\n"
    assert "If you don't see a command prompt, try pressing enter." in r.stderr
