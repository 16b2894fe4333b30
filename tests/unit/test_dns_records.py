"""Cluster DNS answers from a fake store, and the server's forwarding (no cluster needed)."""
from __future__ import annotations

import asyncio

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from boxkube.dns import cluster_dns_ip
from boxkube.dns.records import ClusterRecords, DictSource
from boxkube.dns.server import DnsServer, endpoint_objects


def svc(name, ns="default", **spec):
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


def slice_(service, *endpoints, ns="default", ports=({"name": "http", "port": 8080, "protocol": "TCP"},)):
    return {"metadata": {"name": f"{service}-x", "namespace": ns, "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "endpoints": list(endpoints), "ports": list(ports)}


def ep(ip, ready=True, hostname=None):
    out = {"addresses": [ip], "conditions": {"ready": ready}}
    if hostname:
        out["hostname"] = hostname
    return out


SOURCE = DictSource(
    services=[svc("web", clusterIP="10.96.3.4", ports=[{"name": "http", "port": 80, "protocol": "TCP"}]),
              svc("db", "data", clusterIP="None", ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}]),
              svc("ext", type="ExternalName", externalName="web.default.svc.cluster.local"),
              svc("out", type="ExternalName", externalName="example.org")],
    slices=[slice_("db", ep("10.244.1.5", hostname="db-0"), ep("10.244.2.6", hostname="db-1"),
                   ep("10.244.2.7", ready=False, hostname="db-2"), ns="data",
                   ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}])])
RECORDS = ClusterRecords(SOURCE)


def ask(name: str, qtype: str = "A") -> DNSRecord:
    reply = RECORDS.answer(DNSRecord.question(name, qtype))
    assert reply is not None
    return reply


def values(reply: DNSRecord, qtype: str = "A") -> list[str]:
    return sorted(str(rr.rdata) for rr in reply.rr if rr.rtype == getattr(QTYPE, qtype))


def test_service_name_is_its_cluster_ip():
    reply = ask("web.default.svc.cluster.local")
    assert reply.header.rcode == RCODE.NOERROR and reply.header.aa == 1
    assert values(reply) == ["10.96.3.4"] and reply.rr[0].ttl == 5
    assert values(ask("WEB.Default.svc.cluster.local.")) == ["10.96.3.4"]     # names are case-insensitive


def test_headless_service_is_its_ready_endpoints_and_pods_have_hostnames():
    assert values(ask("db.data.svc.cluster.local")) == ["10.244.1.5", "10.244.2.6"]
    assert values(ask("db-1.db.data.svc.cluster.local")) == ["10.244.2.6"]
    assert ask("db-2.db.data.svc.cluster.local").header.rcode == RCODE.NXDOMAIN     # not ready
    srv = values(ask("_pg._tcp.db.data.svc.cluster.local", "SRV"), "SRV")
    assert srv == ["0 100 5432 db-0.db.data.svc.cluster.local.", "0 100 5432 db-1.db.data.svc.cluster.local."]


def test_external_name_is_a_cname():
    reply = ask("out.default.svc.cluster.local")
    assert [str(rr.rdata) for rr in reply.rr] == ["example.org."] and reply.rr[0].rtype == QTYPE.CNAME


def test_missing_names_are_nxdomain_and_other_types_nodata_with_the_soa():
    for name in ("nope.default.svc.cluster.local", "web.other.svc.cluster.local", "a.b.c.d.svc.cluster.local",
                 "web.default.cluster.local"):
        reply = ask(name)
        assert reply.header.rcode == RCODE.NXDOMAIN, name
        assert reply.auth and reply.auth[0].rtype == QTYPE.SOA
    reply = ask("web.default.svc.cluster.local", "AAAA")
    assert reply.header.rcode == RCODE.NOERROR and not reply.rr and reply.auth[0].rtype == QTYPE.SOA
    assert ask("default.svc.cluster.local").header.rcode == RCODE.NOERROR


def test_a_namespace_name_exists_only_when_the_namespace_does():
    # what a pod's search list makes of `nslookup web`: web.svc.cluster.local names a namespace "web"
    # (none here: NXDOMAIN, as CoreDNS answers), while data.svc / data.pod exist without records
    for name in ("web.svc.cluster.local", "web.pod.cluster.local", "10-244-1-5.web.pod.cluster.local"):
        assert ask(name).header.rcode == RCODE.NXDOMAIN, name
    for name in ("data.svc.cluster.local", "data.pod.cluster.local", "svc.cluster.local", "pod.cluster.local"):
        reply = ask(name)
        assert reply.header.rcode == RCODE.NOERROR and not reply.rr, name
    records = ClusterRecords(DictSource(namespaces=["empty"]))
    assert records.answer(DNSRecord.question("empty.svc.cluster.local")).header.rcode == RCODE.NOERROR
    assert records.answer(DNSRecord.question("other.svc.cluster.local")).header.rcode == RCODE.NXDOMAIN


def test_pod_names_by_dashed_address():
    assert values(ask("10-244-1-5.data.pod.cluster.local")) == ["10.244.1.5"]


def test_names_outside_the_domain_are_not_answered_here():
    assert RECORDS.answer(DNSRecord.question("example.org")) is None
    assert ClusterRecords(SOURCE, "k8s.test").answer(DNSRecord.question("web.default.svc.cluster.local")) is None


def test_cluster_dns_ip_and_published_endpoints():
    assert cluster_dns_ip("10.96.0.0/12") == "10.96.0.10"
    endpoints, eps = endpoint_objects("172.18.0.2", 53)
    assert endpoints["metadata"] == {"name": "kube-dns", "namespace": "kube-system", "labels": {
        "k8s-app": "kube-dns", "endpointslice.kubernetes.io/skip-mirror": "true"}}
    assert eps["metadata"]["labels"]["kubernetes.io/service-name"] == "kube-dns"
    assert {(p["name"], p["protocol"], p["port"]) for p in eps["ports"]} == {("dns", "UDP", 53), ("dns-tcp", "TCP", 53)}


@pytest.mark.timeout(30)
def test_server_answers_over_udp_and_tcp_and_forwards_the_rest():
    """Two servers on loopback: the cluster one forwards example.org to an 'upstream' that knows it."""
    upstream_source = DictSource([svc("www", "example", clusterIP="192.0.2.7")])

    async def main():
        upstream = DnsServer(ClusterRecords(upstream_source, "org"), [])
        up_port = await upstream.start("127.0.0.1", 0)
        server = DnsServer(RECORDS, [f"127.0.0.1#{up_port}"])
        port = await server.start("127.0.0.1", 0)
        loop = asyncio.get_running_loop()

        def q(name, tcp=False):
            return DNSRecord.parse(DNSRecord.question(name).send("127.0.0.1", port, tcp=tcp, timeout=5))
        try:
            udp = await loop.run_in_executor(None, q, "web.default.svc.cluster.local")
            tcp = await loop.run_in_executor(None, q, "web.default.svc.cluster.local", True)
            forwarded = await loop.run_in_executor(None, q, "www.example.svc.org")
            chased = await loop.run_in_executor(None, q, "ext.default.svc.cluster.local")
            nothing = DnsServer(RECORDS, [])
            failed = DNSRecord.parse(await nothing.handle(DNSRecord.question("example.org").pack()))
        finally:
            await server.close()
            await upstream.close()
        return udp, tcp, forwarded, chased, failed

    udp, tcp, forwarded, chased, failed = asyncio.run(main())
    assert values(udp) == values(tcp) == ["10.96.3.4"]
    assert values(forwarded) == ["192.0.2.7"]
    # an ExternalName to a cluster name: the CNAME, then the target's address in the same answer
    assert [rr.rtype for rr in chased.rr] == [QTYPE.CNAME, QTYPE.A] and values(chased) == ["10.96.3.4"]
    assert failed.header.rcode == RCODE.SERVFAIL
