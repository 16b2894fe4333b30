"""The agent's small parts on their own: restart back-off, Go durations, node config, the CLI."""
from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import uuid

import pytest

from boxkube.cluster.names import numbered_names
from boxkube.agent.backoff import Backoff, go_duration
from boxkube.agent.config import NodeConfigError, node_settings, read_node_configs
from boxkube.agent.heartbeat import Periodic
from boxkube.agent.node import node_labels, node_taints
from tests.agent.conftest import LEASES, NODES


def test_backoff_doubles_to_the_maximum_and_resets_after_twice_the_maximum():
    now = [1000.0]
    b = Backoff(10, 300, clock=lambda: now[0])
    key = ("uid", "app")
    assert not b.in_backoff_since(key, now[0])      # the first restart is immediate
    windows = []
    for _ in range(7):
        b.next(key, now[0])
        windows.append(b.get(key))
        assert b.in_backoff_since(key, now[0])
        now[0] += b.get(key)
        assert not b.in_backoff_since(key, now[0] - 0.001 - b.get(key))
    assert windows == [10, 20, 40, 80, 160, 300, 300]
    now[0] += 601                                    # ran fine for over 10 minutes
    b.next(key, now[0])
    assert b.get(key) == 10


@pytest.mark.parametrize("seconds,text", [(10, "10s"), (0.5, "500ms"), (80, "1m20s"), (300, "5m0s"),
                                          (160, "2m40s"), (3600, "1h0m0s"), (2.5, "2.5s")])
def test_go_duration(seconds, text):
    assert go_duration(seconds) == text


def test_node_config_entries_are_dealt_out_in_order(tmp_path):
    configs = read_node_configs("[{count: 2, labels: {disk: ssd}}, {taints: [{key: gpu, effect: NoSchedule}]}]")
    nodes = node_settings(numbered_names("w", 4), configs)
    assert [n.name for n in nodes] == ["w", "w2", "w3", "w4"]
    assert [n.labels for n in nodes] == [{"disk": "ssd"}, {"disk": "ssd"}, {}, {}]
    assert node_taints(nodes[3]) == [{"key": "gpu", "effect": "NoSchedule"}]
    path = tmp_path / "node.yaml"
    path.write_text("role: control-plane\ncapacity: {cpu: 8}\n")
    [cp] = node_settings(["cp"], read_node_configs(str(path)))
    assert cp.full_capacity()["cpu"] == "8" and cp.full_capacity()["memory"] == "8Gi"
    assert node_labels(cp)["node-role.kubernetes.io/control-plane"] == ""
    assert node_taints(cp) == [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
    with pytest.raises(NodeConfigError, match=r"^--node-config: \[0\]\.capacity: cpu"):
        read_node_configs('[{"capacity": {"cpu": "lots"}}]')


async def test_periodic_spreads_items_and_runs_pokes_at_once():
    runs: dict[str, list[float]] = {"a": [], "b": []}
    loop = asyncio.get_running_loop()

    async def action(item):
        runs[item].append(loop.time())
        return None

    p: Periodic[str] = Periodic("test", 0.2, action, asyncio.Semaphore(4))
    task = asyncio.create_task(p.run())
    p.add("a", first_in=0)
    p.add("b", first_in=10)
    await asyncio.sleep(0.05)
    p.poke("b")
    await asyncio.sleep(0.5)
    p.remove("a")
    count = len(runs["a"])
    await asyncio.sleep(0.3)
    task.cancel()
    assert count >= 3 and len(runs["a"]) == count and runs["b"]


def test_cli_refuses_without_a_runtime_in_one_line():
    result = subprocess.run([sys.executable, "-m", "boxkube.agent", "--nodes", "2"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith("ERROR: ")


async def test_cli_runs_simulated_nodes_and_stops_on_sigterm(cluster, client):
    prefix = f"cli-{uuid.uuid4().hex[:6]}"
    proc = subprocess.Popen([sys.executable, "-m", "boxkube.agent", "--kubeconfig", str(cluster.kubeconfig),
                             "--simulated", "--nodes", "2", "--name-prefix", prefix, "--log-level", "warning"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        names: list[str] = []
        while time.monotonic() < deadline and len(names) < 2:
            names = [n["metadata"]["name"] for n in (await client.list(NODES))["items"]
                     if n["metadata"]["name"] in (prefix, f"{prefix}2")]
            await asyncio.sleep(0.2)
        assert sorted(names) == [prefix, f"{prefix}2"]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
        for name in (prefix, f"{prefix}2"):
            for rt, ns in ((NODES, None), (LEASES, "kube-node-lease")):
                try:
                    await client.delete(rt, name, ns)
                except Exception:
                    pass
