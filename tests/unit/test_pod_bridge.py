"""The node's pod bridge (boxkube.agent.podnet): addresses handed out as host-local does, the commands that
make the bridge and join a sandbox to it, and the files the kubelet writes for a pod."""
from __future__ import annotations

import asyncio

import pytest

from boxkube.agent.network import CommandFailed
from boxkube.agent.podnet import NoAddressLeft, PodBridge, host_interface, managed_hosts, resolv_conf


class Recorder:
    def __init__(self, fail: dict[str, str] | None = None):
        self.calls: list[tuple[list[str], str | None]] = []
        self.fail = fail or {}

    async def __call__(self, argv, stdin):
        self.calls.append((list(argv), stdin))
        for word, message in self.fail.items():
            if word in argv:
                raise CommandFailed(message)
        return ""


def bridge(tmp_path, cidr: str = "10.244.1.0/29", **fail: str) -> tuple[PodBridge, Recorder]:
    runner = Recorder(fail)
    (tmp_path / "net/ipv4").mkdir(parents=True)
    (tmp_path / "net/bridge").mkdir(parents=True)
    b = PodBridge("cbr0", runner=runner, proc_sys=str(tmp_path))
    asyncio.run(b.set_range(cidr))
    return b, runner


def test_the_bridge_holds_the_gateway_and_the_sysctls_are_set(tmp_path):
    b, runner = bridge(tmp_path, "10.244.1.0/24")
    assert b.gateway == "10.244.1.1"
    assert runner.calls == [
        (["ip", "link", "add", "cbr0", "type", "bridge"], None),
        (["ip", "-b", "-"], "addr replace 10.244.1.1/24 dev cbr0\nlink set cbr0 up\n")]
    assert (tmp_path / "net/ipv4/ip_forward").read_text() == "1"
    assert (tmp_path / "net/bridge/bridge-nf-call-iptables").read_text() == "1"


def test_an_existing_bridge_is_reused_and_other_failures_raise(tmp_path):
    b, runner = bridge(tmp_path, link="RTNETLINK answers: File exists")
    assert runner.calls[-1][0] == ["ip", "-b", "-"]
    with pytest.raises(CommandFailed):
        bridge(tmp_path / "other", link="Operation not permitted")


def test_addresses_go_round_robin_and_skip_network_gateway_broadcast(tmp_path):
    b, _ = bridge(tmp_path)             # /29: .0 network, .1 gateway, .7 broadcast -> .2 to .6
    got = [b.allocate(f"pod{i}") for i in range(5)]
    assert got == [f"10.244.1.{i}" for i in range(2, 7)]
    with pytest.raises(NoAddressLeft, match="10.244.1.0/29"):
        b.allocate("one too many")
    b.release("pod1")                   # 10.244.1.3 is free again, and is the only one
    assert b.allocate("again") == "10.244.1.3"
    b.release("pod3")
    b.release("pod0")
    # after .3 the next free one onward is .5, not the lower .2 given up earlier
    assert b.allocate("next") == "10.244.1.5"
    assert b.allocate("then") == "10.244.1.2"


def test_addresses_of_running_sandboxes_are_taken_and_renamed_holders_release(tmp_path):
    b, _ = bridge(tmp_path)
    b.reserve("10.244.1.2", "sandbox-a")
    b.reserve("10.9.9.9", "elsewhere")          # outside the range: ignored
    b.reserve("", "no label")
    assert b.taken == {"10.244.1.2": "sandbox-a"}
    address = b.allocate("pod-uid")
    assert address == "10.244.1.3"
    b.rename(address, "sandbox-b")
    b.release("pod-uid")
    assert b.taken[address] == "sandbox-b"
    b.release("sandbox-b")
    assert address not in b.taken


def test_attach_joins_the_namespace_to_the_bridge(tmp_path):
    b, runner = bridge(tmp_path, "10.244.1.0/24")
    runner.calls.clear()
    sandbox = "0123456789abcdef0123"
    asyncio.run(b.attach(sandbox, 4242, "10.244.1.9"))
    assert host_interface(sandbox) == "veth0123456789a" and len(host_interface(sandbox)) == 15
    (host, host_batch), (inside, inside_batch) = runner.calls
    assert host == ["ip", "-b", "-"]
    assert host_batch.splitlines() == [
        "link add veth0123456789a type veth peer name eth0 netns 4242",
        "link set veth0123456789a master cbr0",
        "link set veth0123456789a type bridge_slave hairpin on",
        "link set veth0123456789a up"]
    assert inside == ["nsenter", "-t", "4242", "-n", "ip", "-b", "-"]
    assert inside_batch.splitlines() == [
        "addr add 10.244.1.9/24 dev eth0", "link set eth0 up", "route add default via 10.244.1.1"]


def test_managed_hosts_file_as_the_kubelet_writes_it():
    pod = {"metadata": {"name": "web-0", "namespace": "shop"},
           "spec": {"hostname": "web-0", "subdomain": "web",
                    "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["foo.remote", "bar.remote"]}]}}
    text = managed_hosts(pod, ["10.244.1.5"], "web-0", "cluster.local")
    assert text.startswith("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n")
    assert "10.244.1.5\tweb-0.web.shop.svc.cluster.local\tweb-0\n" in text
    assert text.endswith("\n# Entries added by HostAliases.\n10.1.2.3\tfoo.remote\tbar.remote\n")
    plain = managed_hosts({"metadata": {"name": "p"}, "spec": {}}, ["10.244.1.6"], "p", "cluster.local")
    assert plain.endswith("fe00::2\tip6-allrouters\n10.244.1.6\tp\n")


def test_resolv_conf_lines():
    assert resolv_conf(["10.96.0.10"], ["a.svc.cluster.local", "cluster.local"], ["ndots:5"]) == (
        "nameserver 10.96.0.10\nsearch a.svc.cluster.local cluster.local\noptions ndots:5\n")
    assert resolv_conf(["1.1.1.1"], [], []) == "nameserver 1.1.1.1\n"
