"""The service proxy of a boxkube node: Services programmed into iptables, as kube-proxy's iptables mode.

The proxy watches Services and EndpointSlices and, whenever they change,
writes the whole rule set at once with `iptables-restore --noflush` (the
chains it declares are replaced atomically; others' chains are left alone).
The chains, their names and their rules are kube-proxy's, so what a student
reads in `iptables-save` inside a node is what a real node shows:

- nat `KUBE-SERVICES` (jumped to from PREROUTING and OUTPUT): one rule per
  service port's ClusterIP -> `KUBE-SVC-<hash>`; last, local destinations ->
  `KUBE-NODEPORTS`, one rule per NodePort -> `KUBE-EXT-<hash>` (which marks
  the packet for masquerading and goes on to the KUBE-SVC chain);
- a LoadBalancer Service's ingress IPs (`status.loadBalancer.ingress`, set
  by boxkube.controllers.servicelb to the nodes' own addresses): in nat
  `KUBE-SERVICES`, one rule per ingress IP and service port -> the same
  `KUBE-EXT-<hash>` chain, before the NodePorts rule (kube-proxy's
  "loadbalancer IP" rules; an ingress of `ipMode: Proxy` is left to its load
  balancer, as kube-proxy does). `allocateLoadBalancerNodePorts: false`
  leaves a port without a NodePort and still served on its ingress IPs;
- `KUBE-SVC-<hash>`: traffic from outside the cluster's pod range is marked
  for masquerading, then one of the ready endpoints is picked at random, each
  rule `-m statistic --mode random --probability 1/(n-i)`; with
  `sessionAffinity: ClientIP` a client seen recently (`-m recent --rcheck`,
  timeoutSeconds, 10800 by default) goes to the endpoint it went to before;
- `KUBE-SEP-<hash>`: DNAT to the endpoint's IP:port (recording the client
  with `-m recent --set` under affinity), marking hairpin traffic;
- `KUBE-MARK-MASQ` sets mark 0x4000, `KUBE-POSTROUTING` (from POSTROUTING)
  masquerades marked packets;
- filter `KUBE-SERVICES` / `KUBE-EXTERNAL-SERVICES`: a service port with no
  ready endpoint rejects connections at once (icmp port-unreachable) instead
  of letting them time out (at its ClusterIP in `KUBE-SERVICES`; at its
  NodePort and ingress IPs in `KUBE-EXTERNAL-SERVICES`).

Headless services (clusterIP None) and ExternalName services get no rules
(cluster DNS answers for them). Chain names are kube-proxy's hashes
(servicePortChainName: base32 of sha256 of "ns/name:port" + protocol, 16
characters), so they are stable across restarts and nodes.

Only a node agent that owns its machine's network runs this (`--node-network`,
given to the docker provider's workers): simulated nodes never touch iptables.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from boxkube.agent.network import CommandFailed, Runner, run_command
from boxkube.client import ApiClient, Informer, resource

log = logging.getLogger(__name__)

Obj = dict[str, Any]
SERVICES, ENDPOINT_SLICES = resource("services"), resource("endpointslices")
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MASQ_MARK = "0x4000"
DEFAULT_AFFINITY_SECONDS = 10800
# Chains of kube-proxy's that every sync declares (and so flushes and writes again).
NAT_CHAINS = ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ")
FILTER_CHAINS = ("KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES")
PER_SERVICE_PREFIXES = ("KUBE-SVC-", "KUBE-SEP-", "KUBE-EXT-")
# Where the chains are hooked in: (table, built-in chain, rule after "-A CHAIN").
HOOKS = (
    ("nat", "PREROUTING", ["-m", "comment", "--comment", "kubernetes service portals", "-j", "KUBE-SERVICES"]),
    ("nat", "OUTPUT", ["-m", "comment", "--comment", "kubernetes service portals", "-j", "KUBE-SERVICES"]),
    ("nat", "POSTROUTING", ["-m", "comment", "--comment", "kubernetes postrouting rules", "-j", "KUBE-POSTROUTING"]),
    ("filter", "INPUT", ["-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment",
                         "kubernetes externally-visible service portals", "-j", "KUBE-EXTERNAL-SERVICES"]),
    ("filter", "FORWARD", ["-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment",
                           "kubernetes service portals", "-j", "KUBE-SERVICES"]),
    ("filter", "OUTPUT", ["-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment",
                          "kubernetes service portals", "-j", "KUBE-SERVICES"]),
)
_SETTLE = 0.2           # changes coming together are written together (kube-proxy: minSyncPeriod)
_RESYNC = 60.0          # the rules are written again this often even without changes


@dataclass(frozen=True)
class Endpoint:
    ip: str
    port: int

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass
class ServicePort:
    """One port of one Service, with its ready endpoints: what becomes one KUBE-SVC chain."""

    namespace: str
    name: str
    port_name: str
    protocol: str                   # tcp | udp | sctp
    cluster_ip: str
    port: int
    node_port: int = 0
    affinity_seconds: int = 0       # sessionAffinity ClientIP: how long a client sticks; 0: no affinity
    load_balancer_ips: list[str] = field(default_factory=list)
    endpoints: list[Endpoint] = field(default_factory=list)

    @property
    def id(self) -> str:
        """kube-proxy's ServicePortName.String(): ns/name, with :port when the port has a name."""
        return f"{self.namespace}/{self.name}" + (f":{self.port_name}" if self.port_name else "")

    @property
    def svc_chain(self) -> str:
        return "KUBE-SVC-" + _hash(self.id + self.protocol)

    @property
    def ext_chain(self) -> str:
        return "KUBE-EXT-" + _hash(self.id + self.protocol)

    def sep_chain(self, endpoint: Endpoint) -> str:
        return "KUBE-SEP-" + _hash(self.id + self.protocol + str(endpoint))


def _hash(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def _ready(endpoint: Obj) -> bool:
    # kube-proxy: a nil ready condition counts as ready
    return (endpoint.get("conditions") or {}).get("ready") is not False


def service_ports(services: Iterable[Obj], slices: Iterable[Obj]) -> list[ServicePort]:
    """The service ports to program, with their ready endpoints from the EndpointSlices (IPv4)."""
    by_service: dict[tuple[str, str], list[Obj]] = {}
    for slice_ in slices:
        meta = slice_.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if owner and slice_.get("addressType", "IPv4") == "IPv4":
            by_service.setdefault((meta.get("namespace", ""), owner), []).append(slice_)
    out: list[ServicePort] = []
    for service in services:
        meta, spec = service.get("metadata") or {}, service.get("spec") or {}
        ip = spec.get("clusterIP") or ""
        if spec.get("type") == "ExternalName" or not ip or ip == "None" or ":" in ip:
            continue
        affinity = 0
        if spec.get("sessionAffinity") == "ClientIP":
            affinity = int((((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get("timeoutSeconds"))
                           or DEFAULT_AFFINITY_SECONDS)
        own_slices = by_service.get((meta.get("namespace", ""), meta.get("name", "")), [])
        lb_ips = load_balancer_ips(service)
        for port in spec.get("ports") or []:
            name, protocol = port.get("name") or "", (port.get("protocol") or "TCP")
            sp = ServicePort(meta.get("namespace", ""), meta.get("name", ""), name, protocol.lower(), ip,
                             int(port["port"]), int(port.get("nodePort") or 0)
                             if spec.get("type") in ("NodePort", "LoadBalancer") else 0, affinity, list(lb_ips))
            seen: set[Endpoint] = set()
            for slice_ in own_slices:
                number = next((p.get("port") for p in slice_.get("ports") or []
                               if (p.get("name") or "") == name and (p.get("protocol") or "TCP") == protocol), None)
                if number is None:
                    continue
                for endpoint in slice_.get("endpoints") or []:
                    if not _ready(endpoint) or not endpoint.get("addresses"):
                        continue
                    ep = Endpoint(endpoint["addresses"][0], int(number))
                    if ep not in seen:
                        seen.add(ep)
                        sp.endpoints.append(ep)
            sp.endpoints.sort(key=lambda e: (tuple(int(x) for x in e.ip.split(".")) if "." in e.ip else (), e.port))
            out.append(sp)
    out.sort(key=lambda sp: (sp.namespace, sp.name, sp.port_name, sp.protocol))
    return out


def load_balancer_ips(service: Obj) -> list[str]:
    """The IPv4 ingress IPs of a LoadBalancer Service that this proxy serves (kube-proxy's LoadBalancerVIPs)."""
    if (service.get("spec") or {}).get("type") != "LoadBalancer":
        return []
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    ips = (i.get("ip") or "" for i in ingress if i.get("ipMode") != "Proxy")
    return list(dict.fromkeys(ip for ip in ips if "." in ip))


def _q(text: str) -> str:
    return '"' + text.replace('"', "'") + '"'


def render(ports: Sequence[ServicePort], cluster_cidr: str, existing: Iterable[str] = ()) -> str:
    """The iptables-restore input (for --noflush) of both tables: every chain of ours declared (so
    replaced whole), per-service chains that are no longer wanted (from `existing`) deleted."""
    nat_chains: list[str] = list(NAT_CHAINS)
    nat: list[str] = [
        f"-A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN",
        f"-A KUBE-POSTROUTING -j MARK --xor-mark {MASQ_MARK}",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE',
        f"-A KUBE-MARK-MASQ -j MARK --or-mark {MASQ_MARK}",
    ]
    filt: list[str] = []
    nodeports: list[str] = []
    for sp in ports:
        proto = f"-p {sp.protocol} -m {sp.protocol} --dport"
        if not sp.endpoints:
            filt.append(f"-A KUBE-SERVICES -m comment --comment {_q(sp.id + ' has no endpoints')} "
                        f"-d {sp.cluster_ip}/32 {proto} {sp.port} -j REJECT --reject-with icmp-port-unreachable")
            if sp.node_port:
                filt.append(f"-A KUBE-EXTERNAL-SERVICES -m comment --comment {_q(sp.id + ' has no endpoints')} "
                            f"-m addrtype --dst-type LOCAL {proto} {sp.node_port} "
                            "-j REJECT --reject-with icmp-port-unreachable")
            for ip in sp.load_balancer_ips:
                filt.append(f"-A KUBE-EXTERNAL-SERVICES -m comment --comment {_q(sp.id + ' has no endpoints')} "
                            f"-d {ip}/32 {proto} {sp.port} -j REJECT --reject-with icmp-port-unreachable")
            continue
        svc = sp.svc_chain
        nat_chains.append(svc)
        nat.append(f"-A KUBE-SERVICES -m comment --comment {_q(sp.id + ' cluster IP')} -d {sp.cluster_ip}/32 "
                   f"{proto} {sp.port} -j {svc}")
        masq_from = f"! -s {cluster_cidr} " if cluster_cidr else ""
        nat.append(f"-A {svc} -m comment --comment {_q(sp.id + ' cluster IP')} {masq_from}-d {sp.cluster_ip}/32 "
                   f"{proto} {sp.port} -j KUBE-MARK-MASQ")
        if sp.node_port or sp.load_balancer_ips:
            ext = sp.ext_chain
            nat_chains.append(ext)
            for ip in sp.load_balancer_ips:
                nat.append(f"-A KUBE-SERVICES -m comment --comment {_q(sp.id + ' loadbalancer IP')} -d {ip}/32 "
                           f"{proto} {sp.port} -j {ext}")
            if sp.node_port:
                nodeports.append(f"-A KUBE-NODEPORTS -m comment --comment {_q(sp.id)} {proto} {sp.node_port} -j {ext}")
            nat.append(f"-A {ext} -m comment --comment {_q('masquerade traffic for ' + sp.id + ' external destinations')} "
                       "-j KUBE-MARK-MASQ")
            nat.append(f"-A {ext} -j {svc}")
        seps = [sp.sep_chain(ep) for ep in sp.endpoints]
        if sp.affinity_seconds:
            for ep, sep in zip(sp.endpoints, seps):
                nat.append(f"-A {svc} -m comment --comment {_q(f'{sp.id} -> {ep}')} -m recent --name {sep} "
                           f"--mask 255.255.255.255 --rsource --rcheck --seconds {sp.affinity_seconds} --reap -j {sep}")
        n = len(seps)
        for i, (ep, sep) in enumerate(zip(sp.endpoints, seps)):
            pick = f"-m statistic --mode random --probability {1.0 / (n - i):0.10f} " if i < n - 1 else ""
            nat.append(f"-A {svc} -m comment --comment {_q(f'{sp.id} -> {ep}')} {pick}-j {sep}")
        for ep, sep in zip(sp.endpoints, seps):
            nat_chains.append(sep)
            nat.append(f"-A {sep} -m comment --comment {_q(sp.id)} -s {ep.ip}/32 -j KUBE-MARK-MASQ")
            recent = f"-m recent --name {sep} --mask 255.255.255.255 --rsource --set " if sp.affinity_seconds else ""
            nat.append(f"-A {sep} -m comment --comment {_q(sp.id)} -p {sp.protocol} {recent}-m {sp.protocol} "
                       f"-j DNAT --to-destination {ep}")
    nat += nodeports
    nat.append('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last '
               'rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS')
    wanted = set(nat_chains)
    stale = sorted(c for c in set(existing) - wanted if c.startswith(PER_SERVICE_PREFIXES))
    lines = ["*filter", *(f":{c} - [0:0]" for c in FILTER_CHAINS), *filt, "COMMIT",
             "*nat", *(f":{c} - [0:0]" for c in [*nat_chains, *stale]), *nat, *(f"-X {c}" for c in stale), "COMMIT"]
    return "\n".join(lines) + "\n"


def chains_in(saved: str) -> set[str]:
    """The chains declared in iptables-save output."""
    return {line[1:].split()[0] for line in saved.splitlines() if line.startswith(":") and len(line) > 1}


class ServiceProxy:
    """kube-proxy (iptables mode) of one node: Services and EndpointSlices in, iptables rules out."""

    def __init__(self, client: ApiClient, node_name: str, cluster_cidr: str, runner: Runner = run_command,
                 services: Informer | None = None):
        """`services`: a Service informer to share (the node agent's), which its owner stops; else one of its own."""
        self.client, self.node_name, self.cluster_cidr, self.runner = client, node_name, cluster_cidr, runner
        self._own_services = services is None
        self.services = Informer(client, SERVICES) if services is None else services
        self.slices = Informer(client, ENDPOINT_SLICES)
        self._dirty = asyncio.Event()
        self._written = self._last_rules = ""
        self.syncs = 0

    async def serve(self) -> None:
        """Follow Services and EndpointSlices until cancelled."""
        poke = self._dirty.set
        for informer in (self.services, self.slices):
            informer.add_event_handler(on_add=lambda o: poke(), on_update=lambda o, n: poke(),
                                       on_delete=lambda o: poke())
            informer.start()
        try:
            await self._hook()
            await self.services.wait_for_sync()
            await self.slices.wait_for_sync()
            while True:
                self._dirty.clear()
                try:
                    await self.sync()
                except (CommandFailed, OSError) as e:
                    log.warning("node %s: service proxy: %s; trying again", self.node_name, e)
                    self._written = ""
                    await asyncio.sleep(1.0)
                    continue
                try:
                    async with asyncio.timeout(_RESYNC):
                        await self._dirty.wait()
                except TimeoutError:
                    self._written = ""      # write them again: someone may have flushed them
                await asyncio.sleep(_SETTLE)
        finally:
            if self._own_services:
                await self.services.stop()
            await self.slices.stop()

    async def _hook(self) -> None:
        """kube-proxy's chains made and jumped to from the built-in chains (once)."""
        await self.runner(["iptables-restore", "--noflush"], render([], self.cluster_cidr))
        for table, chain, rule in HOOKS:
            try:
                await self.runner(["iptables", "-t", table, "-C", chain, *rule], None)
            except CommandFailed:
                await self.runner(["iptables", "-t", table, "-I", chain, *rule], None)

    async def sync(self) -> None:
        ports = service_ports(self.services.store.list(), self.slices.store.list())
        existing = chains_in(await self.runner(["iptables-save", "-t", "nat"], None))
        rules = render(ports, self.cluster_cidr, existing)
        if rules == self._written:
            return
        await self.runner(["iptables-restore", "--noflush"], rules)
        # a periodic rewrite of unchanged rules is not news: logged only when debugging
        changed, self._written, self._last_rules = rules != self._last_rules, rules, rules
        self.syncs += 1
        log.log(logging.INFO if changed else logging.DEBUG,
                "node %s: service rules written: %d service port(s), %d endpoint(s)", self.node_name,
                sum(1 for p in ports if p.endpoints), sum(len(p.endpoints) for p in ports))


__all__ = ["Endpoint", "ServicePort", "ServiceProxy", "chains_in", "load_balancer_ips", "render", "service_ports"]
