"""What every cluster has from the start: the four system namespaces and the `kubernetes` Service."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from boxkube.apiserver.errors import APIError
from boxkube.apiserver.registry import Registry, WriteOptions
from boxkube.apiserver.resources import by_kind

if TYPE_CHECKING:
    from boxkube.apiserver.app import ServerConfig

log = logging.getLogger(__name__)

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


async def _ensure(registry: Registry, kind: str, namespace: str | None, obj: dict) -> None:
    """Create `obj` unless it exists (a restarted API server finds its own objects)."""
    rt = by_kind("", "v1", kind)
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
