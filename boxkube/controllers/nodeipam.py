"""Node IPAM: every Node gets a pod network of its own (upstream pkg/controller/nodeipam, the range allocator).

The cluster's pod range (`Settings.cluster_cidr`, one CIDR per IP family,
comma-separated) is cut into blocks of `/node_cidr_mask_size` (IPv4; IPv6 blocks
are /64). A node without `spec.podCIDR` is given the next free block of each
family as `spec.podCIDR` and `spec.podCIDRs`; a block is never handed out twice
and comes back when its node is deleted. What is taken is kept in memory and
rebuilt from the nodes' own podCIDRs before the first block is handed out, so
a restarted controller takes up where the last one stopped.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from boxkube.client import ApiError, resource
from boxkube.controllers.base import Controller, Obj

NODES = resource("nodes")

_IPV6_NODE_MASK = 64


class RangeExhausted(Exception):
    pass


@dataclass
class CidrSet:
    """The blocks of one cluster CIDR, handed out round-robin after the last one given (upstream cidrset)."""

    cluster: ipaddress.IPv4Network | ipaddress.IPv6Network
    mask: int
    used: set[int] = field(default_factory=set)
    next_index: int = 0

    def __post_init__(self) -> None:
        if self.mask < self.cluster.prefixlen:
            raise ValueError(f"node CIDR mask /{self.mask} is larger than the cluster CIDR {self.cluster}")
        self.size = 1 << (self.mask - self.cluster.prefixlen)

    def _block(self, index: int) -> str:
        step = 1 << (self.cluster.max_prefixlen - self.mask)
        address = self.cluster.network_address + index * step
        return f"{address}/{self.mask}"

    def _index(self, cidr: str) -> int | None:
        """The block index of `cidr`, or None when it is not one of this set's blocks."""
        try:
            network = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            return None
        if network.version != self.cluster.version or network.prefixlen != self.mask \
                or not network.subnet_of(self.cluster):   # type: ignore[arg-type]
            return None
        step = 1 << (self.cluster.max_prefixlen - self.mask)
        return (int(network.network_address) - int(self.cluster.network_address)) // step

    def allocate(self) -> str:
        for offset in range(self.size):
            index = (self.next_index + offset) % self.size
            if index not in self.used:
                self.used.add(index)
                self.next_index = (index + 1) % self.size
                return self._block(index)
        raise RangeExhausted(f"no free {self.mask}-bit block left in {self.cluster}")

    def occupy(self, cidr: str) -> bool:
        """Mark `cidr` taken; False when it is not in this set."""
        index = self._index(cidr)
        if index is None:
            return False
        self.used.add(index)
        return True

    def release(self, cidr: str) -> None:
        index = self._index(cidr)
        if index is not None:
            self.used.discard(index)

    def holds(self, cidr: str) -> bool:
        return self._index(cidr) is not None


def parse_cluster_cidrs(cluster_cidr: str, node_mask: int) -> list[CidrSet]:
    sets = []
    for text in filter(None, (part.strip() for part in cluster_cidr.split(","))):
        network = ipaddress.ip_network(text, strict=False)
        sets.append(CidrSet(network, node_mask if network.version == 4 else _IPV6_NODE_MASK))
    if not sets:
        raise ValueError("no cluster CIDR configured")
    return sets


@dataclass
class _Holding:
    uid: str
    cidrs: list[str]


class NodeIpamController(Controller):
    name = "node-ipam"
    # One worker: blocks are handed out from shared state, one node at a time.
    workers = 1

    def setup(self) -> None:
        self.sets = parse_cluster_cidrs(self.settings.cluster_cidr, self.settings.node_cidr_mask_size)
        self.nodes = self.watch("nodes")
        self._held: dict[str, _Holding] = {}      # node name -> its blocks
        self._rebuilt = False

    def _set_of(self, cidr: str) -> CidrSet | None:
        return next((s for s in self.sets if s.holds(cidr)), None)

    def _occupy(self, node: Obj) -> None:
        """Take the blocks a node already has (from an earlier run, or set by hand)."""
        meta, spec = node["metadata"], node.get("spec") or {}
        cidrs = list(spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []))
        for cidr in cidrs:
            cidr_set = self._set_of(cidr)
            if cidr_set is None:
                self.log.warning("node %s has podCIDR %s outside the cluster CIDR %s; leaving it alone",
                                 meta["name"], cidr, self.settings.cluster_cidr)
            else:
                cidr_set.occupy(cidr)
        self._held[meta["name"]] = _Holding(meta.get("uid", ""), cidrs)

    def _release(self, name: str) -> None:
        holding = self._held.pop(name, None)
        if holding is None:
            return
        for cidr in holding.cidrs:
            cidr_set = self._set_of(cidr)
            if cidr_set is not None:
                cidr_set.release(cidr)
        self.log.info("released %s of deleted node %s", ",".join(holding.cidrs), name)

    async def reconcile(self, key: str) -> None:
        if not self._rebuilt:
            # Before handing anything out, take every block the nodes already have.
            for node in self.nodes.store.list():
                if (node.get("spec") or {}).get("podCIDR"):
                    self._occupy(node)
            self._rebuilt = True
        node = self.nodes.store.get(key)
        holding = self._held.get(key)
        if node is None:
            self._release(key)
            return
        meta, spec = node["metadata"], node.get("spec") or {}
        if holding is not None and holding.uid != meta.get("uid"):
            self._release(key)          # a new node of the same name: the old one's blocks are free
            holding = None
        if spec.get("podCIDR"):
            if holding is None:
                self._occupy(node)
            return
        if holding is None:
            cidrs: list[str] = []
            try:
                for cidr_set in self.sets:
                    cidrs.append(cidr_set.allocate())
            except RangeExhausted as e:
                for cidr_set, cidr in zip(self.sets, cidrs):   # give back what the other families gave
                    cidr_set.release(cidr)
                self.recorder.event(node_reference(node), "Normal", "CIDRNotAvailable",
                                    f"Node {meta['name']} status is now: CIDRNotAvailable")
                raise RuntimeError(f"node {meta['name']}: {e}") from None
            holding = self._held[key] = _Holding(meta.get("uid", ""), cidrs)
        # The blocks stay held until the node is deleted, so a retry after a failed write hands out the same.
        patch = {"metadata": {"uid": meta.get("uid")},
                 "spec": {"podCIDR": holding.cidrs[0], "podCIDRs": holding.cidrs}}
        try:
            await self.client.patch(NODES, meta["name"], patch, patch_type="strategic")
        except ApiError as e:
            if e.is_not_found:
                self._release(key)
                return
            raise
        self.log.info("node %s: podCIDR %s", meta["name"], ",".join(holding.cidrs))


def node_reference(node: Obj) -> Obj:
    """What events about a node point at, as upstream's RecordNodeStatusChange: kind, name and uid
    (no resourceVersion, so repeats of one event are counted on one Event)."""
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node["metadata"]["name"],
                                                            "uid": node["metadata"].get("uid", "")}}
