"""The node pod network's pure parts: routes wanted, the masquerade chain, pods' DNS settings."""
from __future__ import annotations

import asyncio

from boxkube.agent.network import NodeNetwork, masquerade_rules, pod_dns, wanted_routes


def node(name: str, cidr: str | None, ip: str | None) -> dict:
    return {"metadata": {"name": name}, "spec": {"podCIDR": cidr} if cidr else {},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}] if ip else []}}


def test_routes_to_every_other_node_with_a_range_and_an_address():
    nodes = [node("a", "10.244.0.0/24", "172.18.0.2"), node("b", "10.244.1.0/24", "172.18.0.3"),
             node("c", None, "172.18.0.4"), node("d", "10.244.3.0/24", None)]
    assert wanted_routes(nodes, "a") == {"10.244.1.0/24": "172.18.0.3"}
    assert wanted_routes(nodes, "b") == {"10.244.0.0/24": "172.18.0.2"}


def test_masquerade_only_what_leaves_the_cluster_pod_range():
    text = masquerade_rules("10.244.1.0/24", "10.244.0.0/16")
    assert text.splitlines() == [
        "*nat", ":BOXKUBE-POSTROUTING - [0:0]",
        '-A BOXKUBE-POSTROUTING -s 10.244.1.0/24 ! -d 10.244.0.0/16 -m comment --comment '
        '"pod traffic leaving the cluster pod range" -j MASQUERADE', "COMMIT"]
    assert "-A" not in masquerade_rules("", "10.244.0.0/16")


def pod(ns: str = "team", **spec) -> dict:
    return {"metadata": {"name": "p", "namespace": ns}, "spec": spec}


def test_cluster_first_dns_as_the_kubelet_writes_it():
    assert pod_dns(pod(), ["10.96.0.10"]) == (
        ["10.96.0.10"], ["team.svc.cluster.local", "svc.cluster.local", "cluster.local"], ["ndots:5"])
    # dnsConfig adds to it; an option given again takes the pod's value
    servers, searches, options = pod_dns(pod(dnsConfig={"nameservers": ["1.1.1.1"], "searches": ["corp"],
                                                        "options": [{"name": "ndots", "value": "2"},
                                                                    {"name": "edns0"}]}),
                                         ["10.96.0.10"], "k8s.test")
    assert servers == ["10.96.0.10", "1.1.1.1"]
    assert searches == ["team.svc.k8s.test", "svc.k8s.test", "k8s.test", "corp"]
    assert options == ["ndots:2", "edns0"]


def test_policies_that_keep_the_nodes_resolv_conf():
    assert pod_dns(pod(dnsPolicy="Default"), ["10.96.0.10"]) is None
    assert pod_dns(pod(hostNetwork=True), ["10.96.0.10"]) is None              # ClusterFirst + hostNetwork
    assert pod_dns(pod(), []) is None                                           # no cluster DNS configured
    assert pod_dns(pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet"), ["10.96.0.10"])[0] == ["10.96.0.10"]
    assert pod_dns(pod(dnsPolicy="None", dnsConfig={"nameservers": ["9.9.9.9"]}), ["10.96.0.10"]) == (
        ["9.9.9.9"], [], [])


class FakeStore:
    def __init__(self, nodes):
        self.nodes = nodes

    def list(self):
        return self.nodes


def test_sync_replaces_wanted_routes_and_deletes_gone_ones():
    calls: list[tuple[list[str], str | None]] = []

    async def runner(argv, stdin):
        calls.append((list(argv), stdin))
        return ""

    async def main():
        net = NodeNetwork(client=None, node_name="a", cluster_cidr="10.244.0.0/16", runner=runner)  # type: ignore[arg-type]
        net.nodes.store = FakeStore([node("a", "10.244.0.0/24", "172.18.0.2"),     # type: ignore[assignment]
                                     node("b", "10.244.1.0/24", "172.18.0.3")])
        net.routes = {"10.244.9.0/24": "172.18.0.9"}
        await net.sync()
        return net

    net = asyncio.run(main())
    argvs = [c[0] for c in calls]
    assert ["iptables-restore", "--noflush"] == argvs[0] and "-s 10.244.0.0/24" in calls[0][1]
    assert ["ip", "route", "replace", "10.244.1.0/24", "via", "172.18.0.3"] in argvs
    assert ["ip", "route", "del", "10.244.9.0/24"] in argvs
    assert net.routes == {"10.244.1.0/24": "172.18.0.3"}
