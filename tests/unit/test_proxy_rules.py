"""The service proxy's iptables-restore text, from Services and EndpointSlices (no iptables needed)."""
from __future__ import annotations

import re

from boxkube.agent.proxy import Endpoint, ServicePort, chains_in, render, service_ports

CLUSTER_CIDR = "10.244.0.0/16"


def svc(name: str, ip: str = "10.96.0.20", ns: str = "default", **spec) -> dict:
    spec.setdefault("ports", [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}])
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"clusterIP": ip, "type": "ClusterIP", **spec}}


def eps(service: str, *ips: str, ready: bool | None = True, ns: str = "default", port: int = 8080,
        name: str = "http", slice_name: str = "") -> dict:
    conditions = {} if ready is None else {"ready": ready}
    return {"metadata": {"name": slice_name or f"{service}-abc", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "ports": [{"name": name, "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": conditions} for ip in ips]}


def nat_rules(text: str, chain: str) -> list[str]:
    nat = text[text.index("*nat"):]
    return [line for line in nat.splitlines() if line.startswith(f"-A {chain} ")]


def test_chain_names_are_kube_proxys():
    # the real kube-proxy names the default/kubernetes:https chain so
    sp = ServicePort("default", "kubernetes", "https", "tcp", "10.96.0.1", 443)
    assert sp.svc_chain == "KUBE-SVC-NPX46M4PTMTKRN6Y"
    assert sp.ext_chain == "KUBE-EXT-NPX46M4PTMTKRN6Y"
    assert re.fullmatch(r"KUBE-SEP-[A-Z2-7]{16}", sp.sep_chain(Endpoint("10.244.1.2", 443)))


def test_only_ready_endpoints_of_matching_ports_are_used():
    services = [svc("web")]
    slices = [eps("web", "10.244.1.3", "10.244.0.2"), eps("web", "10.244.2.9", ready=False, slice_name="web-x"),
              eps("web", "10.244.3.1", ready=None, slice_name="web-y"),
              eps("web", "10.244.4.1", name="other", slice_name="web-z"), eps("other", "10.244.5.5")]
    [sp] = service_ports(services, slices)
    assert [str(e) for e in sp.endpoints] == ["10.244.0.2:8080", "10.244.1.3:8080", "10.244.3.1:8080"]


def test_cluster_ip_balances_at_random_over_the_endpoints():
    text = render(service_ports([svc("web")], [eps("web", "10.244.0.2", "10.244.1.3", "10.244.1.4")]),
                  CLUSTER_CIDR)
    sp = ServicePort("default", "web", "http", "tcp", "10.96.0.20", 80)
    [jump] = [r for r in nat_rules(text, "KUBE-SERVICES") if sp.svc_chain in r]
    assert "-d 10.96.0.20/32 -p tcp -m tcp --dport 80" in jump
    rules = nat_rules(text, sp.svc_chain)
    assert "! -s 10.244.0.0/16" in rules[0] and rules[0].endswith("-j KUBE-MARK-MASQ")
    picks = rules[1:]
    assert "--probability 0.3333333333" in picks[0] and "--probability 0.5000000000" in picks[1]
    assert "statistic" not in picks[2]
    sep = sp.sep_chain(Endpoint("10.244.1.4", 8080))
    assert picks[2].endswith(f"-j {sep}")
    assert nat_rules(text, sep)[-1].endswith("-j DNAT --to-destination 10.244.1.4:8080")
    assert nat_rules(text, sep)[0].endswith("-s 10.244.1.4/32 -j KUBE-MARK-MASQ")    # hairpin
    # nodeports last in KUBE-SERVICES; no filter rejects for a service with endpoints
    assert nat_rules(text, "KUBE-SERVICES")[-1].endswith("-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS")
    assert "REJECT" not in text


def test_node_port_goes_through_an_ext_chain_that_masquerades():
    service = svc("web", type="NodePort", ports=[{"name": "http", "port": 80, "targetPort": 8080,
                                                  "nodePort": 30080, "protocol": "TCP"}])
    text = render(service_ports([service], [eps("web", "10.244.0.2")]), CLUSTER_CIDR)
    sp = ServicePort("default", "web", "http", "tcp", "10.96.0.20", 80)
    [np] = nat_rules(text, "KUBE-NODEPORTS")
    assert "-p tcp -m tcp --dport 30080" in np and np.endswith(f"-j {sp.ext_chain}")
    assert nat_rules(text, sp.ext_chain) == [
        f'-A {sp.ext_chain} -m comment --comment "masquerade traffic for default/web:http external destinations" '
        "-j KUBE-MARK-MASQ", f"-A {sp.ext_chain} -j {sp.svc_chain}"]


def test_session_affinity_client_ip_uses_the_recent_module():
    service = svc("web", sessionAffinity="ClientIP",
                  sessionAffinityConfig={"clientIP": {"timeoutSeconds": 600}})
    text = render(service_ports([service], [eps("web", "10.244.0.2", "10.244.1.3")]), CLUSTER_CIDR)
    sp = ServicePort("default", "web", "http", "tcp", "10.96.0.20", 80)
    rules = nat_rules(text, sp.svc_chain)
    seps = [sp.sep_chain(Endpoint("10.244.0.2", 8080)), sp.sep_chain(Endpoint("10.244.1.3", 8080))]
    # the recent checks come before the random picks
    assert f"-m recent --name {seps[0]} --mask 255.255.255.255 --rsource --rcheck --seconds 600 --reap" in rules[1]
    assert "--rcheck" in rules[2] and "statistic" in rules[3]
    assert "-m recent --name {} --mask 255.255.255.255 --rsource --set".format(seps[1]) in nat_rules(text, seps[1])[-1]


def test_headless_external_name_and_endpointless_services():
    services = [svc("hl", ip="None"), svc("ext", ip="", type="ExternalName", externalName="example.com"),
                svc("empty", ip="10.96.0.30",
                    type="NodePort", ports=[{"port": 81, "nodePort": 30081, "protocol": "UDP"}])]
    ports = service_ports(services, [eps("hl", "10.244.0.2")])
    assert [p.name for p in ports] == ["empty"]
    text = render(ports, CLUSTER_CIDR)
    assert "KUBE-SVC-" not in text
    filt = text[:text.index("*nat")]
    assert '-A KUBE-SERVICES -m comment --comment "default/empty has no endpoints" -d 10.96.0.30/32 -p udp ' \
           "-m udp --dport 81 -j REJECT --reject-with icmp-port-unreachable" in filt
    assert "-A KUBE-EXTERNAL-SERVICES" in filt and "--dport 30081" in filt


def test_stale_per_service_chains_are_deleted_and_others_left_alone():
    sp_chain = ServicePort("default", "web", "http", "tcp", "10.96.0.20", 80).svc_chain
    saved = "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SVC-OLDOLDOLDOLDOLD1 - [0:0]\n:KUBE-SEP-OLDOLDOLDOLDOLD2 - [0:0]\n" \
            f":{sp_chain} - [0:0]\n:DOCKER - [0:0]\nCOMMIT\n"
    existing = chains_in(saved)
    assert existing == {"PREROUTING", "KUBE-SVC-OLDOLDOLDOLDOLD1", "KUBE-SEP-OLDOLDOLDOLDOLD2", sp_chain, "DOCKER"}
    text = render(service_ports([svc("web")], [eps("web", "10.244.0.2")]), CLUSTER_CIDR, existing)
    lines = text.splitlines()
    for stale in ("KUBE-SVC-OLDOLDOLDOLDOLD1", "KUBE-SEP-OLDOLDOLDOLDOLD2"):
        assert f":{stale} - [0:0]" in lines and f"-X {stale}" in lines
    assert f"-X {sp_chain}" not in lines and "-X DOCKER" not in lines and ":DOCKER - [0:0]" not in lines
    # both tables, each committed; every chain of ours declared (so flushed and rewritten atomically)
    assert lines[0] == "*filter" and lines.count("COMMIT") == 2
    for chain in ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"):
        assert f":{chain} - [0:0]" in lines


def lb_svc(name: str = "web", ingress: tuple = ({"ip": "172.18.0.2", "ipMode": "VIP"},
                                             {"ip": "172.18.0.3", "ipMode": "VIP"}), **spec) -> dict:
    service = svc(name, **{"type": "LoadBalancer", "ports": [{"name": "http", "port": 80, "targetPort": 8080,
                                                              "nodePort": 30080, "protocol": "TCP"}], **spec})
    service["status"] = {"loadBalancer": {"ingress": list(ingress)}}
    return service


def test_load_balancer_ips_go_through_the_ext_chain_before_the_node_ports():
    text = render(service_ports([lb_svc()], [eps("web", "10.244.0.2")]), CLUSTER_CIDR)
    sp = ServicePort("default", "web", "http", "tcp", "10.96.0.20", 80)
    services = nat_rules(text, "KUBE-SERVICES")
    assert services[1:3] == [
        f'-A KUBE-SERVICES -m comment --comment "default/web:http loadbalancer IP" -d {ip}/32 -p tcp -m tcp '
        f"--dport 80 -j {sp.ext_chain}" for ip in ("172.18.0.2", "172.18.0.3")]
    assert services[0].endswith(f"-j {sp.svc_chain}") and services[-1].endswith("-j KUBE-NODEPORTS")
    [np] = nat_rules(text, "KUBE-NODEPORTS")
    assert "--dport 30080" in np and np.endswith(f"-j {sp.ext_chain}")
    assert nat_rules(text, sp.ext_chain)[-1] == f"-A {sp.ext_chain} -j {sp.svc_chain}"     # masqueraded, then balanced


def test_load_balancer_without_node_ports_is_served_on_its_ingress_ips_alone():
    service = lb_svc(allocateLoadBalancerNodePorts=False,
                     ports=[{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}])
    text = render(service_ports([service], [eps("web", "10.244.0.2")]), CLUSTER_CIDR)
    sp = ServicePort("default", "web", "http", "tcp", "10.96.0.20", 80)
    assert nat_rules(text, "KUBE-NODEPORTS") == []
    assert len([r for r in nat_rules(text, "KUBE-SERVICES") if r.endswith(f"-j {sp.ext_chain}")]) == 2
    assert f":{sp.ext_chain} - [0:0]" in text.splitlines()


def test_only_vip_ingress_of_load_balancer_services_is_served():
    proxied = lb_svc("proxied", ingress=({"ip": "192.0.2.7", "ipMode": "Proxy"}, {"hostname": "lb.example.com"},
                                         {"ip": "172.18.0.2"}))
    stale = lb_svc("was-lb", type="ClusterIP", ports=[{"name": "http", "port": 80, "protocol": "TCP"}])
    ports = service_ports([proxied, stale], [eps("proxied", "10.244.0.2"), eps("was-lb", "10.244.0.3")])
    assert {p.name: p.load_balancer_ips for p in ports} == {"proxied": ["172.18.0.2"], "was-lb": []}
    assert "192.0.2.7" not in render(ports, CLUSTER_CIDR)


def test_load_balancer_ips_without_endpoints_reject_at_once():
    text = render(service_ports([lb_svc()], []), CLUSTER_CIDR)
    filt = text[:text.index("*nat")]
    for ip in ("172.18.0.2", "172.18.0.3"):
        assert (f'-A KUBE-EXTERNAL-SERVICES -m comment --comment "default/web:http has no endpoints" -d {ip}/32 '
                "-p tcp -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable") in filt
    assert "loadbalancer IP" not in text
