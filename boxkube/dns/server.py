"""The cluster DNS server: UDP and TCP on one port, answers from informer caches, the rest forwarded.

- Names under the cluster domain are answered from the Services and
  EndpointSlices it watches (boxkube.dns.records). For an ExternalName
  Service asked for an address, the CNAME's target is resolved too (upstream,
  or here when it is a cluster name) and its records follow the CNAME, as
  CoreDNS does, so a stub resolver needs one round trip.
- Any other name is forwarded as it came to the upstream servers (by default
  those of this machine's /etc/resolv.conf: in a docker cluster's control
  plane, Docker's resolver), trying each in turn; no answer: SERVFAIL.
- Once listening it publishes where it is: the selector-less Endpoints and
  EndpointSlice of the `kube-dns` Service (kube-system), whose ClusterIP the
  API server reserved, so that every node's service proxy sends
  10.96.0.10:53 here, as the API server's own endpoint reconciler does for
  the `kubernetes` Service.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Iterable, Sequence
from typing import Any

from dnslib import QTYPE, RCODE, DNSError, DNSRecord

from boxkube.client import ApiClient, ApiError, Informer, resource
from boxkube.dns import SERVICE_NAME, SERVICE_NAMESPACE
from boxkube.dns.records import SERVICE_NAME_LABEL, ClusterRecords

log = logging.getLogger(__name__)

Obj = dict[str, Any]
SERVICES, ENDPOINT_SLICES, ENDPOINTS = resource("services"), resource("endpointslices"), resource("endpoints")
NAMESPACES = resource("namespaces")
SLICE_INDEX = "service"
UPSTREAM_TIMEOUT = 2.0
MANAGED_BY = "boxkube-dns"


def _slice_service(slice_: Obj) -> list[str]:
    meta = slice_.get("metadata") or {}
    owner = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return [f"{meta.get('namespace', '')}/{owner}"] if owner else []


class InformerSource:
    """The records' Source over the server's informer caches."""

    def __init__(self, services: Informer, slices: Informer, namespaces: Informer):
        self.services, self.slices_, self.namespaces = services, slices, namespaces

    def service(self, namespace: str, name: str) -> Obj | None:
        return self.services.store.get_object(name, namespace)

    def slices(self, namespace: str, name: str) -> Iterable[Obj]:
        return self.slices_.store.by_index(SLICE_INDEX, f"{namespace}/{name}")

    def namespace_exists(self, namespace: str) -> bool:
        return self.namespaces.store.get_object(namespace) is not None


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: "DnsServer"):
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport      # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.server.spawn(self._answer(data, addr))

    async def _answer(self, data: bytes, addr: Any) -> None:
        reply = await self.server.handle(data)
        if reply is not None and self.transport is not None:
            if len(reply) > 512 and not _has_edns(data):
                reply = _truncated(data, reply)
            self.transport.sendto(reply, addr)


def _has_edns(data: bytes) -> bool:
    with contextlib.suppress(DNSError, Exception):
        return any(rr.rtype == QTYPE.OPT for rr in DNSRecord.parse(data).ar)
    return False


def _truncated(query: bytes, reply: bytes) -> bytes:
    try:
        r = DNSRecord.parse(reply)
        r.rr, r.auth, r.ar = [], [], []
        r.header.tc = 1
        return r.pack()
    except Exception:
        return reply[:512]


class DnsServer:
    def __init__(self, records: ClusterRecords, upstreams: Sequence[str]):
        self.records = records
        self.upstreams = [u for u in upstreams if u]
        self._tasks: set[asyncio.Task] = set()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.AbstractServer | None = None
        self.port = 0

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        self._tcp = await asyncio.start_server(self._tcp_client, host, port, reuse_address=True)
        self.port = self._tcp.sockets[0].getsockname()[1]
        self._udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), local_addr=(host, self.port))
        log.info("cluster DNS on %s:%d (udp, tcp), domain %s, upstream %s", host, self.port,
                 self.records.domain_name, ", ".join(self.upstreams) or "none")
        return self.port

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                size = struct.unpack("!H", await reader.readexactly(2))[0]
                reply = await self.handle(await reader.readexactly(size))
                if reply is None:
                    break
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def handle(self, data: bytes) -> bytes | None:
        """The reply to one message (None: unparseable, dropped)."""
        try:
            request = DNSRecord.parse(data)
        except Exception:
            return None
        try:
            reply = self.records.answer(request)
            if reply is None:
                return await self.forward(data) or _failure(request)
            await self._chase(request, reply)
            return reply.pack()
        except Exception as e:     # one bad question must not stop the server
            log.warning("answering %s: %s", request.q.qname, e)
            return _failure(request)

    async def _chase(self, request: DNSRecord, reply: DNSRecord) -> None:
        """An address question answered with a CNAME only (ExternalName): add the target's records."""
        if request.q.qtype not in (QTYPE.A, QTYPE.AAAA) or not reply.rr or \
                any(rr.rtype == request.q.qtype for rr in reply.rr):
            return
        cname = next((rr for rr in reply.rr if rr.rtype == QTYPE.CNAME), None)
        if cname is None:
            return
        follow = DNSRecord.question(str(cname.rdata.label), QTYPE[request.q.qtype])
        found = self.records.answer(follow)
        if found is None:
            raw = await self.forward(follow.pack())
            found = DNSRecord.parse(raw) if raw else None
        if found is not None:
            for rr in found.rr:
                reply.add_answer(rr)

    async def forward(self, data: bytes) -> bytes | None:
        loop = asyncio.get_running_loop()
        for upstream in self.upstreams:
            host, _, port = upstream.partition("#")
            future: asyncio.Future[bytes] = loop.create_future()

            class _Reply(asyncio.DatagramProtocol):
                def datagram_received(self, reply: bytes, addr: Any) -> None:
                    if not future.done():
                        future.set_result(reply)

                def error_received(self, exc: Exception) -> None:
                    if not future.done():
                        future.set_exception(exc)

            transport = None
            try:
                transport, _ = await loop.create_datagram_endpoint(_Reply, remote_addr=(host, int(port or 53)))
                transport.sendto(data)
                return await asyncio.wait_for(future, UPSTREAM_TIMEOUT)
            except (OSError, asyncio.TimeoutError) as e:
                log.debug("upstream %s: %s", upstream, e or type(e).__name__)
            finally:
                if transport is not None:
                    transport.close()
        return None


def _failure(request: DNSRecord) -> bytes:
    reply = request.reply()
    reply.header.aa = 0
    reply.header.rcode = RCODE.SERVFAIL
    return reply.pack()


def endpoint_objects(address: str, port: int) -> tuple[Obj, Obj]:
    """The kube-dns Service's Endpoints and EndpointSlice: this server at address:port (udp and tcp)."""
    ports = [{"name": "dns", "port": port, "protocol": "UDP"}, {"name": "dns-tcp", "port": port, "protocol": "TCP"}]
    endpoints = {"apiVersion": "v1", "kind": "Endpoints",
                 "metadata": {"name": SERVICE_NAME, "namespace": SERVICE_NAMESPACE,
                              "labels": {"k8s-app": "kube-dns", "endpointslice.kubernetes.io/skip-mirror": "true"}},
                 "subsets": [{"addresses": [{"ip": address}], "ports": ports}]}
    slice_ = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
              "metadata": {"name": SERVICE_NAME, "namespace": SERVICE_NAMESPACE,
                           "labels": {SERVICE_NAME_LABEL: SERVICE_NAME, "k8s-app": "kube-dns",
                                      "endpointslice.kubernetes.io/managed-by": MANAGED_BY}},
              "addressType": "IPv6" if ":" in address else "IPv4",
              "endpoints": [{"addresses": [address], "conditions": {"ready": True, "serving": True,
                                                                    "terminating": False}}],
              "ports": ports}
    return endpoints, slice_


async def publish(client: ApiClient, address: str, port: int) -> None:
    """Write (create or replace) the kube-dns Endpoints and EndpointSlice to point here."""
    for rt, obj in zip((ENDPOINTS, ENDPOINT_SLICES), endpoint_objects(address, port)):
        try:
            await client.create(rt, obj, SERVICE_NAMESPACE)
        except ApiError as e:
            if not e.is_already_exists:
                raise
            current = await client.get(rt, SERVICE_NAME, SERVICE_NAMESPACE)
            obj["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            await client.replace(rt, obj, SERVICE_NAMESPACE)
    log.info("published %s/%s endpoints: %s:%d", SERVICE_NAMESPACE, SERVICE_NAME, address, port)


async def serve(client: ApiClient, *, host: str, port: int, advertise: str, domain: str,
                upstreams: Sequence[str]) -> None:
    services = Informer(client, SERVICES)
    slices = Informer(client, ENDPOINT_SLICES, indexers={SLICE_INDEX: _slice_service})
    namespaces = Informer(client, NAMESPACES)
    for informer in (services, slices, namespaces):
        informer.start()
    server = DnsServer(ClusterRecords(InformerSource(services, slices, namespaces), domain), upstreams)
    try:
        for informer in (services, slices, namespaces):
            await informer.wait_for_sync(60)
        bound = await server.start(host, port)
        if advertise:
            await publish(client, advertise, bound)
        await asyncio.Event().wait()
    finally:
        await server.close()
        for informer in (services, slices, namespaces):
            await informer.stop()


__all__ = ["DnsServer", "InformerSource", "endpoint_objects", "publish", "serve"]
