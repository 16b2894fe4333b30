"""The pod network of a boxkube node: routes to the other nodes' pod ranges, and masquerading.

What a CNI plugin with host-gw routing (flannel's host-gw backend, kindnet) does
on every node, for nodes that are containers on one Docker network:

- the node's own pods get their IPs from its podCIDR, on the node's bridge
  (boxkube.agent.podnet);
- every other node's podCIDR is routed via that node's InternalIP
  (`ip route replace <podCIDR> via <InternalIP>`), kept in step with the Nodes
  as they come, change and go (one watch of all Nodes);
- forwarding is allowed (`iptables -P FORWARD ACCEPT`: the inner engine sets
  DROP), and what pods send out of the cluster's pod range is masqueraded, so
  the control plane, the host and the outside world can answer it; what they
  send to other pods keeps its source (a pod sees its peer's pod IP).

The masquerade rule lives in a chain of its own, `BOXKUBE-POSTROUTING`, written
whole with iptables-restore each time (the service proxy's chains are KUBE-*,
see boxkube.agent.proxy).

Also here: the DNS settings of a pod's sandbox (`pod_dns`), as the kubelet
derives them from dnsPolicy and dnsConfig.

Only a node agent that owns its machine's network (`--node-network`, which the
docker provider's workers get) runs this: simulated nodes and tests on the
host's engine never touch routes or iptables.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from boxkube.client import ApiClient, Informer, resource

log = logging.getLogger(__name__)

Obj = dict[str, Any]
NODES = resource("nodes")
MASQ_CHAIN = "BOXKUBE-POSTROUTING"
DEFAULT_CLUSTER_DOMAIN = "cluster.local"
# The resolver's limits the kubelet keeps to (validation.MaxDNSNameservers, MaxDNSSearchPaths).
_MAX_NAMESERVERS, _MAX_SEARCHES = 3, 32
_RESYNC = 30.0          # routes and rules are checked again this often (someone may have flushed them)
_SETTLE = 0.1           # changes coming together are applied together

# Runs a command (argv, stdin text); returns its stdout, raises CommandFailed.
Runner = Callable[[Sequence[str], str | None], Awaitable[str]]


class CommandFailed(RuntimeError):
    pass


async def run_command(argv: Sequence[str], stdin: str | None = None) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
    if proc.returncode != 0:
        raise CommandFailed(f"{' '.join(argv)}: exit {proc.returncode}: {err.decode(errors='replace').strip()}")
    return out.decode(errors="replace")


# -- pure parts -------------------------------------------------------------------------------------


def internal_ip(node: Obj) -> str:
    for address in (node.get("status") or {}).get("addresses") or []:
        if address.get("type") == "InternalIP" and address.get("address"):
            return str(address["address"])
    return ""


def pod_cidrs(node: Obj) -> list[str]:
    spec = node.get("spec") or {}
    return list(spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []))


def wanted_routes(nodes: Iterable[Obj], own: str) -> dict[str, str]:
    """{podCIDR: gateway} of every other node that has both a podCIDR and an InternalIP."""
    routes: dict[str, str] = {}
    for node in nodes:
        if node["metadata"]["name"] == own:
            continue
        ip = internal_ip(node)
        if not ip:
            continue
        for cidr in pod_cidrs(node):
            if ipaddress.ip_network(cidr, strict=False).version == ipaddress.ip_address(ip).version:
                routes[cidr] = ip
    return routes


def masquerade_rules(pod_cidr: str, cluster_cidr: str) -> str:
    """iptables-restore input (nat table, --noflush) of the chain that masquerades what leaves the pod range."""
    lines = ["*nat", f":{MASQ_CHAIN} - [0:0]"]
    if pod_cidr:
        lines.append(f"-A {MASQ_CHAIN} -s {pod_cidr} ! -d {cluster_cidr or pod_cidr} "
                     f'-m comment --comment "pod traffic leaving the cluster pod range" -j MASQUERADE')
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def pod_dns(pod: Obj, cluster_dns: Sequence[str], cluster_domain: str = DEFAULT_CLUSTER_DOMAIN
            ) -> tuple[list[str], list[str], list[str]] | None:
    """The pod's resolv.conf as (nameservers, searches, options), as the kubelet writes it
    (pkg/kubelet/network/dns): None means the node's own resolv.conf (dnsPolicy Default, or a
    ClusterFirst pod on a node without cluster DNS). dnsConfig's entries are added to the policy's
    (options by name, the pod's winning)."""
    spec = pod.get("spec") or {}
    namespace = (pod.get("metadata") or {}).get("namespace") or "default"
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "ClusterFirst" and spec.get("hostNetwork"):
        policy = "Default"          # only ClusterFirstWithHostNet gives a host-network pod the cluster DNS
    elif policy == "ClusterFirstWithHostNet":
        policy = "ClusterFirst"
    if policy == "ClusterFirst" and not cluster_dns:
        policy = "Default"          # the kubelet falls back to the node's resolv.conf, with a warning
    config = spec.get("dnsConfig") or {}
    if policy == "Default" and not config:
        return None
    servers: list[str] = []
    searches: list[str] = []
    options: dict[str, str | None] = {}
    if policy == "ClusterFirst":
        servers = list(cluster_dns)
        searches = [f"{namespace}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain]
        options = {"ndots": "5"}
    elif policy == "Default":
        return None if not config else _node_dns_with(config)
    servers += [s for s in config.get("nameservers") or [] if s not in servers]
    searches += [s for s in config.get("searches") or [] if s not in searches]
    for option in config.get("options") or []:
        if option.get("name"):
            options[option["name"]] = option.get("value")
    return (servers[:_MAX_NAMESERVERS], searches[:_MAX_SEARCHES],
            [k if v is None else f"{k}:{v}" for k, v in options.items()])


def _node_dns_with(config: Obj) -> tuple[list[str], list[str], list[str]] | None:
    """dnsPolicy Default with a dnsConfig: the node's resolv.conf plus the config's entries."""
    servers, searches, options = read_resolv_conf()
    for s in config.get("nameservers") or []:
        if s not in servers:
            servers.append(s)
    for s in config.get("searches") or []:
        if s not in searches:
            searches.append(s)
    by_name = {o.split(":", 1)[0]: o for o in options}
    for option in config.get("options") or []:
        if option.get("name"):
            by_name[option["name"]] = option["name"] if option.get("value") is None \
                else f"{option['name']}:{option['value']}"
    return servers[:_MAX_NAMESERVERS], searches[:_MAX_SEARCHES], list(by_name.values())


def read_resolv_conf(path: str = "/etc/resolv.conf") -> tuple[list[str], list[str], list[str]]:
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    try:
        with open(path) as f:
            for line in f:
                words = line.split("#", 1)[0].split()
                if not words:
                    continue
                if words[0] == "nameserver" and len(words) > 1:
                    servers.append(words[1])
                elif words[0] in ("search", "domain"):
                    searches = words[1:]
                elif words[0] == "options":
                    options += words[1:]
    except OSError:
        pass
    return servers, searches, options


# -- the node's network -----------------------------------------------------------------------------


@dataclass
class NodeNetwork:
    """Routes to the other nodes' pod ranges, forwarding and masquerading of one node (this machine)."""

    client: ApiClient
    node_name: str
    cluster_cidr: str
    runner: Runner = run_command
    routes: dict[str, str] = field(default_factory=dict)        # as made: {podCIDR: gateway}
    pod_cidr: str = ""

    def __post_init__(self) -> None:
        self.nodes = Informer(self.client, NODES)
        self._dirty = asyncio.Event()
        self._rules_written = ""

    async def serve(self) -> None:
        """Follow the Nodes until cancelled."""
        self.nodes.add_event_handler(on_add=lambda n: self._dirty.set(),
                                     on_update=lambda o, n: self._dirty.set(),
                                     on_delete=lambda n: self._dirty.set())
        self.nodes.start()
        try:
            self._dirty.set()
            while True:
                try:
                    async with asyncio.timeout(_RESYNC):
                        await self._dirty.wait()
                    await asyncio.sleep(_SETTLE)
                except TimeoutError:
                    self._rules_written = ""        # check everything again (an engine restart sets FORWARD DROP)
                self._dirty.clear()
                try:
                    full = not self._rules_written
                    if full:
                        await self._prepare()
                    await self.sync(full)
                except (CommandFailed, OSError) as e:
                    log.warning("node %s: pod network: %s; trying again", self.node_name, e)
                    self._rules_written = ""
                    await asyncio.sleep(1.0)
                    self._dirty.set()
        finally:
            await self.nodes.stop()

    async def _prepare(self) -> None:
        """Forwarding on, and the masquerade chain hooked into POSTROUTING (once)."""
        await self.runner(["iptables", "-P", "FORWARD", "ACCEPT"], None)
        await self.runner(["iptables-restore", "--noflush"], masquerade_rules("", self.cluster_cidr))
        hook = ["POSTROUTING", "-m", "comment", "--comment", "boxkube pod network", "-j", MASQ_CHAIN]
        try:
            await self.runner(["iptables", "-t", "nat", "-C", *hook], None)
        except CommandFailed:
            await self.runner(["iptables", "-t", "nat", "-I", *hook], None)

    async def sync(self, full: bool = True) -> None:
        """Rules and routes as the Nodes say; routes already made are made again only with `full`."""
        nodes = self.nodes.store.list()
        own = next((n for n in nodes if n["metadata"]["name"] == self.node_name), None)
        cidr = (pod_cidrs(own) or [""])[0] if own is not None else ""
        rules = masquerade_rules(cidr, self.cluster_cidr)
        if rules != self._rules_written:
            await self.runner(["iptables-restore", "--noflush"], rules)
            self._rules_written = rules
            if cidr != self.pod_cidr:
                log.info("node %s: pod range %s, masquerading what leaves %s", self.node_name, cidr,
                         self.cluster_cidr)
            self.pod_cidr = cidr
        wanted = wanted_routes(nodes, self.node_name)
        for cidr_, via in wanted.items():
            if not full and self.routes.get(cidr_) == via:
                continue
            await self.runner(["ip", "route", "replace", cidr_, "via", via], None)
            if self.routes.get(cidr_) != via:
                log.info("node %s: route to pods %s via %s", self.node_name, cidr_, via)
        for gone in set(self.routes) - set(wanted):
            try:
                await self.runner(["ip", "route", "del", gone], None)
                log.info("node %s: route to pods %s removed", self.node_name, gone)
            except CommandFailed as e:
                log.debug("node %s: %s", self.node_name, e)
        self.routes = wanted


__all__ = ["CommandFailed", "NodeNetwork", "masquerade_rules", "pod_dns", "read_resolv_conf", "run_command",
           "wanted_routes"]
