"""What every cluster has from the start: the four system namespaces, the `kubernetes` Service and the
`kube-dns` Service of the cluster DNS (its endpoints are written by the DNS server itself, which knows
where it listens: boxkube.dns)."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from boxkube.apiserver.errors import APIError
from boxkube.apiserver.registry import Registry, WriteOptions
from boxkube.apiserver.resources import by_kind
from boxkube.dns import DNS_PORT, SERVICE_NAME, SERVICE_NAMESPACE

if TYPE_CHECKING:
    from boxkube.apiserver.app import ServerConfig

log = logging.getLogger(__name__)

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


async def _ensure(registry: Registry, kind: str, namespace: str | None, obj: dict, group: str = "") -> None:
    """Create `obj` unless it exists (a restarted API server finds its own objects)."""
    rt = by_kind(group, "v1", kind)
    try:
        await registry.get(rt, namespace, obj["metadata"]["name"])
        return
    except APIError as e:
        if e.code != 404:
            raise
    try:
        await registry.create(rt, namespace, obj, WriteOptions(field_manager="kube-apiserver"))
    except APIError as e:
        if e.reason != "AlreadyExists":   # another API server was first
            raise


async def bootstrap(registry: Registry, config: "ServerConfig") -> None:
    for name in SYSTEM_NAMESPACES:
        await _ensure(registry, "Namespace", None, {"metadata": {"name": name}})
    # The API server's own Service, with the first IP of the service range, as upstream.
    await _ensure(registry, "Service", "default", {
        "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": str(registry.cluster_ips.reserved), "type": "ClusterIP",
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": config.advertise_port}]},
    })
    await _ensure(registry, "Endpoints", "default", {
        "metadata": {"name": "kubernetes", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": config.advertise_address}],
                     "ports": [{"name": "https", "port": config.advertise_port, "protocol": "TCP"}]}],
    })
    # Its EndpointSlice too, as upstream's endpoint reconciler writes both: the service proxy reads slices.
    await _ensure(registry, "EndpointSlice", "default", {
        "metadata": {"name": "kubernetes", "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": "IPv6" if ":" in config.advertise_address else "IPv4",
        "endpoints": [{"addresses": [config.advertise_address], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": config.advertise_port, "protocol": "TCP"}],
    }, group="discovery.k8s.io")
    # The cluster DNS's Service, on the tenth IP of the service range (kubeadm's kube-dns).
    dns_ip = registry.cluster_ips.network.network_address + 10
    if dns_ip in registry.cluster_ips.network:
        try:
            await _ensure(registry, "Service", SERVICE_NAMESPACE, {
                "metadata": {"name": SERVICE_NAME, "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS",
                                                              "kubernetes.io/cluster-service": "true"}},
                "spec": {"clusterIP": str(dns_ip), "type": "ClusterIP",
                         "ports": [{"name": "dns", "port": DNS_PORT, "protocol": "UDP", "targetPort": DNS_PORT},
                                   {"name": "dns-tcp", "port": DNS_PORT, "protocol": "TCP", "targetPort": DNS_PORT}]},
            })
        except APIError as e:       # its IP taken by a Service made before: say so, and serve the API anyway
            log.warning("could not make the %s/%s Service on %s: %s", SERVICE_NAMESPACE, SERVICE_NAME, dns_ip, e)
