"""Service ClusterIPs and NodePorts, handed out at most once.

Each allocation is one etcd key created only if absent, so two API servers (or
two concurrent creates) can never hand out the same IP or port, and a restart
keeps what was taken. ClusterIPs are stored as upstream's networking/v1
IPAddress objects under /registry/ipaddresses/.
"""
from __future__ import annotations

import ipaddress
import json
import random

from boxkube.storage.errors import KeyExists
from boxkube.storage.etcd import EtcdStore

_IP_PREFIX = "/registry/ipaddresses/"
_PORT_PREFIX = "/registry/servicenodeports/"
_RANDOM_TRIES = 16


class Exhausted(Exception):
    pass


class Taken(Exception):
    pass


class RangeAllocator:
    """Values each claimed by creating its key; `allocate` picks from `values`, `claim` takes any."""

    def __init__(self, store: EtcdStore, prefix: str, values: range, render):
        self._store, self._prefix, self._values, self._render = store, prefix, values, render

    def _key(self, value: int) -> str:
        return self._prefix + self._render(value)

    async def claim(self, value: int, owner: dict) -> None:
        try:
            await self._store.create(self._key(value), json.dumps(owner).encode())
        except KeyExists:
            raise Taken(self._render(value)) from None

    async def allocate(self, owner: dict) -> int:
        """A free value: random tries first (cheap when the range is sparse), then a scan."""
        for _ in range(_RANDOM_TRIES):
            value = random.choice(self._values)
            try:
                await self.claim(value, owner)
                return value
            except Taken:
                pass
        used = {kv.key[len(self._prefix):] for kv in (await self._store.list(self._prefix)).items}
        for value in self._values:
            if self._render(value) not in used:
                try:
                    await self.claim(value, owner)
                    return value
                except Taken:
                    pass
        raise Exhausted()

    async def release(self, value: int) -> None:
        kv = await self._store.get(self._key(value))
        if kv is not None:
            try:
                await self._store.delete(kv.key, kv.mod_revision)
            except Exception:   # released concurrently: nothing left to do
                pass

    def contains(self, value: int) -> bool:
        return value in self._values


class ClusterIPs:
    def __init__(self, store: EtcdStore, cidr: str):
        self.network = ipaddress.ip_network(cidr)
        first, last = int(self.network.network_address), int(self.network.broadcast_address)
        # The network address and broadcast are never handed out; .1 goes to the `kubernetes` Service.
        self.reserved = ipaddress.ip_address(first + 1)
        self._range = RangeAllocator(store, _IP_PREFIX, range(first + 2, last), lambda v: str(ipaddress.ip_address(v)))

    @staticmethod
    def _owner(ns: str, name: str) -> dict:
        return {"apiVersion": "networking.k8s.io/v1", "kind": "IPAddress",
                "spec": {"parentRef": {"group": "", "resource": "services", "namespace": ns, "name": name}}}

    async def allocate(self, ns: str, name: str) -> str:
        return str(ipaddress.ip_address(await self._range.allocate(self._owner(ns, name))))

    async def claim(self, ip: str, ns: str, name: str) -> None:
        await self._range.claim(int(ipaddress.ip_address(ip)), self._owner(ns, name))

    async def release(self, ip: str) -> None:
        await self._range.release(int(ipaddress.ip_address(ip)))

    def contains(self, ip: str) -> bool:
        try:
            return ipaddress.ip_address(ip) in self.network
        except ValueError:
            return False


class NodePorts:
    def __init__(self, store: EtcdStore, first: int = 30000, last: int = 32767):
        self.first, self.last = first, last
        self._range = RangeAllocator(store, _PORT_PREFIX, range(first, last + 1), str)

    async def allocate(self, ns: str, name: str) -> int:
        return await self._range.allocate({"namespace": ns, "name": name})

    async def claim(self, port: int, ns: str, name: str) -> None:
        await self._range.claim(port, {"namespace": ns, "name": name})

    async def release(self, port: int) -> None:
        await self._range.release(port)

    def contains(self, port: int) -> bool:
        return self._range.contains(port)
