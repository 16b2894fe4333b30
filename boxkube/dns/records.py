"""The answers of cluster DNS, from Services and EndpointSlices: the names of Kubernetes' DNS
specification (kubernetes/dns, docs/specification.md) as CoreDNS's kubernetes plugin serves them.

Under the cluster domain (cluster.local):

- `<svc>.<ns>.svc`: A of the ClusterIP; for a headless Service (clusterIP None)
  the A records of its ready endpoints (all of them with publishNotReadyAddresses);
  an ExternalName Service is a CNAME to its externalName;
- `<hostname>.<svc>.<ns>.svc`: an endpoint with that hostname (a pod with
  spec.hostname and spec.subdomain naming a headless Service, as a StatefulSet's
  pods are): A of its address;
- `_<port>._<proto>.<svc>.<ns>.svc`: SRV of a named port (target: the Service's
  name, or each endpoint's `<hostname>` name for a headless Service);
- `<a-b-c-d>.<ns>.pod`: A of a-b-c-d (CoreDNS's "pods insecure");
- `<ns>.svc`, `<ns>.pod`: names without records (NODATA) when the namespace
  exists, NXDOMAIN when it does not (CoreDNS's namespaceExposed): what a
  pod's search list asks for `hello.svc.cluster.local` is NXDOMAIN;
- any other name under the domain: NXDOMAIN; an existing name asked for another
  type (AAAA of an IPv4 Service): NOERROR without answers (NODATA). Both carry
  the zone's SOA, so resolvers cache them as negative answers.

Names outside the domain are not answered here (`answer` gives None) but
forwarded upstream by the server. TTL 5 s, as CoreDNS's kubernetes plugin.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any, Protocol

from dnslib import AAAA, CNAME, QTYPE, RCODE, RR, SOA, SRV, A, DNSLabel, DNSRecord

Obj = dict[str, Any]
TTL = 5
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class Source(Protocol):
    """Where answers come from: the server's informer caches, or a test's dicts."""

    def service(self, namespace: str, name: str) -> Obj | None: ...

    def slices(self, namespace: str, name: str) -> Iterable[Obj]: ...

    def namespace_exists(self, namespace: str) -> bool: ...


class DictSource:
    """A Source over plain lists (tests, and anything without informers). Its namespaces are those
    given, or else those of its services and slices."""

    def __init__(self, services: Iterable[Obj] = (), slices: Iterable[Obj] = (),
                 namespaces: Iterable[str] | None = None):
        services, slices = list(services), list(slices)
        self._services = {(s["metadata"].get("namespace", ""), s["metadata"]["name"]): s for s in services}
        self._namespaces = set(namespaces) if namespaces is not None else {
            o["metadata"].get("namespace", "") for o in services + slices}
        self._slices: dict[tuple[str, str], list[Obj]] = {}
        for s in slices:
            owner = ((s.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME_LABEL)
            if owner:
                self._slices.setdefault((s["metadata"].get("namespace", ""), owner), []).append(s)

    def service(self, namespace: str, name: str) -> Obj | None:
        return self._services.get((namespace, name))

    def slices(self, namespace: str, name: str) -> Iterable[Obj]:
        return self._slices.get((namespace, name), [])

    def namespace_exists(self, namespace: str) -> bool:
        return namespace in self._namespaces


def _endpoints(source: Source, service: Obj) -> list[Obj]:
    """The endpoints DNS shows of a Service: ready ones (all with publishNotReadyAddresses)."""
    meta = service["metadata"]
    every = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    out, seen = [], set()
    for slice_ in source.slices(meta.get("namespace", ""), meta["name"]):
        for endpoint in slice_.get("endpoints") or []:
            if not endpoint.get("addresses"):
                continue
            if not every and (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            key = (endpoint["addresses"][0], endpoint.get("hostname") or "")
            if key not in seen:
                seen.add(key)
                out.append(endpoint)
    return out


def _address_record(name: DNSLabel, ip: str) -> RR | None:
    try:
        version = ipaddress.ip_address(ip).version
    except ValueError:
        return None
    return RR(name, QTYPE.A if version == 4 else QTYPE.AAAA, ttl=TTL, rdata=A(ip) if version == 4 else AAAA(ip))


class ClusterRecords:
    """Answers for the names under the cluster domain."""

    def __init__(self, source: Source, domain: str = "cluster.local"):
        self.source = source
        self.domain_name = domain.strip(".")
        self.domain = DNSLabel(self.domain_name)
        self.soa = RR(self.domain, QTYPE.SOA, ttl=TTL, rdata=SOA(
            f"ns.dns.{domain.strip('.')}", f"hostmaster.{domain.strip('.')}", (1, 7200, 1800, 86400, TTL)))

    def is_ours(self, name: DNSLabel) -> bool:
        return name.matchSuffix(self.domain)

    def answer(self, request: DNSRecord) -> DNSRecord | None:
        """The reply to `request`, or None when its name is not under the cluster domain (forward it)."""
        q = request.q
        if not self.is_ours(q.qname):
            return None
        reply = request.reply()     # aa=1, ra=1, the question copied
        records = self.lookup(q.qname)
        if records is None:
            reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(self.soa)
            return reply
        wanted = [r for r in records if r.rtype == q.qtype or q.qtype == QTYPE.ANY or r.rtype == QTYPE.CNAME]
        for record in wanted:
            reply.add_answer(record)
        if not wanted:
            reply.add_auth(self.soa)       # NODATA: the name exists, not with this type
        return reply

    def lookup(self, name: DNSLabel) -> list[RR] | None:
        """Every record of `name` (maybe none: the name exists without records), None if no such name."""
        labels = [label.decode().lower() for label in name.stripSuffix(self.domain).label]
        if name == self.domain:
            return [self.soa]
        if labels[-1:] == ["svc"]:
            return self._service_names(name, labels[:-1])
        if labels[-1:] == ["pod"] and len(labels) == 3:
            ip = labels[0].replace("-", ".")
            record = _address_record(name, ip) if "." in ip and self.source.namespace_exists(labels[1]) else None
            return [record] if record is not None else None
        if labels == ["pod"]:
            return []
        if len(labels) == 2 and labels[1] == "pod":     # <ns>.pod.<domain>: exists when the namespace does
            return [] if self.source.namespace_exists(labels[0]) else None
        return None

    def _service_names(self, name: DNSLabel, labels: list[str]) -> list[RR] | None:
        if not labels:                  # svc.<domain>: a name that exists, without records
            return []
        if len(labels) == 1:            # <ns>.svc.<domain>: the same when the namespace exists
            return [] if self.source.namespace_exists(labels[0]) else None
        ns, svc = labels[-1], labels[-2]
        service = self.source.service(ns, svc)
        if service is None:
            return None
        spec = service.get("spec") or {}
        head = labels[:-2]
        if not head:
            if spec.get("type") == "ExternalName":
                target = (spec.get("externalName") or "").strip(".")
                return [RR(name, QTYPE.CNAME, ttl=TTL, rdata=CNAME(target + "."))] if target else []
            ip = spec.get("clusterIP") or ""
            if ip and ip != "None":
                ips = spec.get("clusterIPs") or [ip]
            else:
                ips = [e["addresses"][0] for e in _endpoints(self.source, service)]
            return [r for r in (_address_record(name, ip_) for ip_ in ips) if r is not None]
        if len(head) == 1:              # <hostname>.<svc>.<ns>.svc
            found = [e for e in _endpoints(self.source, service) if (e.get("hostname") or "").lower() == head[0]]
            if not found:
                return None
            return [r for r in (_address_record(name, e["addresses"][0]) for e in found) if r is not None]
        if len(head) == 2 and head[0].startswith("_") and head[1].startswith("_"):
            return self._srv(name, service, head[0][1:], head[1][1:]) or None
        return None

    def _srv(self, name: DNSLabel, service: Obj, port_name: str, protocol: str) -> list[RR]:
        spec, meta = service.get("spec") or {}, service["metadata"]
        base = f"{meta['name']}.{meta.get('namespace', '')}.svc.{self.domain_name}"
        out = []
        for port in spec.get("ports") or []:
            if (port.get("name") or "").lower() != port_name or (port.get("protocol") or "TCP").lower() != protocol:
                continue
            if spec.get("clusterIP") not in (None, "", "None"):
                out.append(RR(name, QTYPE.SRV, ttl=TTL, rdata=SRV(0, 100, int(port["port"]), base + ".")))
                continue
            number = next((int(p["port"]) for s in self.source.slices(meta.get("namespace", ""), meta["name"])
                           for p in s.get("ports") or [] if (p.get("name") or "") == (port.get("name") or "")
                           and p.get("port")), int(port["port"]))
            for endpoint in _endpoints(self.source, service):
                host = endpoint.get("hostname") or endpoint["addresses"][0].replace(".", "-").replace(":", "-")
                out.append(RR(name, QTYPE.SRV, ttl=TTL, rdata=SRV(0, 100, number, f"{host}.{base}.")))
        return out


__all__ = ["ClusterRecords", "DictSource", "Source", "TTL"]
