"""A node's own pod network, made as the `bridge` CNI plugin with `host-local` IPAM makes it (kubenet's
`cbr0`), and the files the kubelet writes for each pod (its managed /etc/hosts, and resolv.conf).

- one Linux bridge (`cbr0`) holds the node's podCIDR's first address (the pods'
  gateway); forwarding and bridge netfilter are on, so the service proxy's
  DNAT rules see pod-to-pod traffic on the bridge;
- each sandbox gets the next free address of the podCIDR (round robin, as
  host-local, so an address just given up is not handed out again at once),
  chosen before the sandbox is created so that it is recorded in the
  sandbox's labels: a restarted agent learns which addresses are taken from
  the sandboxes it adopts;
- once the sandbox's pause process runs, a veth pair joins its network
  namespace to the bridge (hairpin on, so a pod reaches itself through a
  Service); the pair goes away with the namespace when the pause process ends.

Why not the engine's own network, as the Docker runtime did first: a container
started on a Docker network costs the engine about three times the CPU of one
started without (dockerd runs itself again as the container's
libnetwork-setkey prestart hook, then makes the endpoint): 340 against 110 ms
of CPU per start, measured on a boxkube node of a 2-core machine. Pod start-up
is bound by that CPU.

The commands go through a `Runner` (boxkube.agent.network), so the plan of
each step is tested without touching a network.
"""
from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from boxkube.agent.network import CommandFailed, Runner, run_command

log = logging.getLogger(__name__)

Obj = dict[str, Any]
DEFAULT_BRIDGE = "cbr0"
POD_INTERFACE = "eth0"
# Sysctls of the node's network namespace the bridge needs: forwarding between the bridge and the
# node's uplink, and iptables seeing bridged traffic (a Service's DNAT between two pods of one node).
_SYSCTLS = {"net/ipv4/ip_forward": "1", "net/bridge/bridge-nf-call-iptables": "1"}


class NoAddressLeft(RuntimeError):
    pass


def host_interface(sandbox_id: str) -> str:
    """The host end of a sandbox's veth pair: "veth" and the sandbox's id, 15 characters (IFNAMSIZ - 1)."""
    return f"veth{sandbox_id[:11]}"


class PodBridge:
    """The bridge of one node's pods and the addresses it has handed out."""

    def __init__(self, name: str = DEFAULT_BRIDGE, runner: Runner = run_command, proc_sys: str = "/proc/sys"):
        self.name = name
        self.runner = runner
        self.proc_sys = Path(proc_sys)
        self.network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
        self.taken: dict[str, str] = {}     # address -> who holds it (a sandbox id, or a pod uid until created)
        self._last = 0                      # host-local's round robin: the index handed out last

    @property
    def gateway(self) -> str:
        assert self.network is not None
        return str(self.network.network_address + 1)

    async def set_range(self, cidr: str) -> None:
        """Make the bridge on the podCIDR (again: the steps are idempotent)."""
        network = ipaddress.ip_network(cidr, strict=False)
        if network.num_addresses < 4:
            raise ValueError(f"the podCIDR {cidr} has no room for pods")
        self.network = network
        for key, value in _SYSCTLS.items():
            try:
                (self.proc_sys / key).write_text(value)
            except OSError as e:        # br_netfilter not loaded: Services between pods of one node won't work
                log.warning("pod bridge %s: could not set %s=%s: %s", self.name, key.replace("/", "."), value, e)
        try:
            await self.runner(["ip", "link", "add", self.name, "type", "bridge"], None)
        except CommandFailed as e:
            if "exists" not in str(e):
                raise
        await self.runner(["ip", "-b", "-"], f"addr replace {self.gateway}/{network.prefixlen} dev {self.name}\n"
                                             f"link set {self.name} up\n")
        log.info("pod bridge %s on %s (gateway %s)", self.name, network, self.gateway)

    def reserve(self, address: str, holder: str) -> None:
        """An address already in use (a sandbox found running), if it lies in the range."""
        if self.network is not None and address and ipaddress.ip_address(address) in self.network:
            self.taken[address] = holder

    def allocate(self, holder: str) -> str:
        """The next free address after the last one handed out, skipping the network, gateway and broadcast."""
        assert self.network is not None, "the bridge has no range yet"
        size = self.network.num_addresses
        for step in range(1, size):
            index = (self._last + step) % size
            if index < 2 or index == size - 1:       # the network's own address, the gateway, the broadcast
                continue
            address = str(self.network.network_address + index)
            if address not in self.taken:
                self._last = index
                self.taken[address] = holder
                return address
        raise NoAddressLeft(f"no address left in the podCIDR {self.network} ({len(self.taken)} in use)")

    def rename(self, address: str, holder: str) -> None:
        if address in self.taken:
            self.taken[address] = holder

    def release(self, holder: str) -> None:
        for address in [a for a, h in self.taken.items() if h == holder]:
            del self.taken[address]

    async def attach(self, sandbox_id: str, pid: int, address: str) -> None:
        """Join the network namespace of process `pid` to the bridge, as `eth0` with `address`."""
        assert self.network is not None
        veth = host_interface(sandbox_id)
        await self.runner(["ip", "-b", "-"],
                          f"link add {veth} type veth peer name {POD_INTERFACE} netns {pid}\n"
                          f"link set {veth} master {self.name}\n"
                          f"link set {veth} type bridge_slave hairpin on\n"
                          f"link set {veth} up\n")
        await self.runner(["nsenter", "-t", str(pid), "-n", "ip", "-b", "-"],
                          f"addr add {address}/{self.network.prefixlen} dev {POD_INTERFACE}\n"
                          f"link set {POD_INTERFACE} up\n"
                          f"route add default via {self.gateway}\n")


# -- the files of a pod ---------------------------------------------------------------------------

_HOSTS_HEADER = ("# Kubernetes-managed hosts file.\n"
                 "127.0.0.1\tlocalhost\n"
                 "::1\tlocalhost ip6-localhost ip6-loopback\n"
                 "fe00::0\tip6-localnet\n"
                 "fe00::0\tip6-mcastprefix\n"
                 "fe00::1\tip6-allnodes\n"
                 "fe00::2\tip6-allrouters\n")


def managed_hosts(pod: Obj, pod_ips: Sequence[str], hostname: str, cluster_domain: str) -> str:
    """The kubelet's /etc/hosts of a pod (managedHostsFileContent): the boilerplate, the pod's own name at
    each of its IPs (its FQDN first with a subdomain), then the pod's hostAliases."""
    spec = pod.get("spec") or {}
    namespace = (pod.get("metadata") or {}).get("namespace") or "default"
    lines = [_HOSTS_HEADER]
    subdomain = spec.get("subdomain")
    for ip in pod_ips:
        if subdomain:
            lines.append(f"{ip}\t{hostname}.{subdomain}.{namespace}.svc.{cluster_domain}\t{hostname}\n")
        else:
            lines.append(f"{ip}\t{hostname}\n")
    aliases = spec.get("hostAliases") or []
    if aliases:
        lines.append("\n# Entries added by HostAliases.\n")
        for alias in aliases:
            lines.append(f"{alias.get('ip', '')}\t" + "\t".join(alias.get("hostnames") or []) + "\n")
    return "".join(lines)


def resolv_conf(servers: Sequence[str], searches: Sequence[str], options: Sequence[str]) -> str:
    lines = [f"nameserver {s}\n" for s in servers]
    if searches:
        lines.append("search " + " ".join(searches) + "\n")
    if options:
        lines.append("options " + " ".join(options) + "\n")
    return "".join(lines)


__all__ = ["DEFAULT_BRIDGE", "NoAddressLeft", "PodBridge", "host_interface", "managed_hosts", "resolv_conf"]
