"""Cluster DNS: `<svc>.<ns>.svc.cluster.local` and friends, served from the control plane.

`python -m boxkube.dns` (see boxkube.dns.server) answers from Services and
EndpointSlices it watches, and forwards every other name to the upstream
servers of its machine's /etc/resolv.conf. Pods reach it at the `kube-dns`
Service of kube-system, whose ClusterIP is the tenth address of the service
range (10.96.0.10 by default), as kubeadm gives it.
"""
from __future__ import annotations

import ipaddress

SERVICE_NAME, SERVICE_NAMESPACE = "kube-dns", "kube-system"
DNS_PORT = 53


def cluster_dns_ip(service_subnet: str) -> str:
    """The kube-dns Service's ClusterIP: the tenth address of the service range (kubeadm's choice)."""
    return str(ipaddress.ip_network(service_subnet, strict=False).network_address + 10)


__all__ = ["DNS_PORT", "SERVICE_NAME", "SERVICE_NAMESPACE", "cluster_dns_ip"]
