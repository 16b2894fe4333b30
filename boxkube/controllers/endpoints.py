"""The Endpoints controller: core/v1 Endpoints of every Service with a selector (pkg/controller/endpoint).

For each Service, the pods it selects that have an IP become addresses —
ready ones in `addresses`, the others in `notReadyAddresses` (all of them
ready with `publishNotReadyAddresses`); finished and terminating pods are left
out. Each Service port becomes an endpoint port, its targetPort resolved by
name in each pod's containerPorts, and the result is packed into subsets of
addresses sharing the same ports (upstream's RepackSubsets). A Service without
a selector has user-managed Endpoints and is left alone, as is the API
server's own `kubernetes` Service.
"""
from __future__ import annotations

import json
import math
from typing import Any

from boxkube.api import jsonio
from boxkube.api.pods import is_ready
from boxkube.client import ApiError, resource, split_key
from boxkube.controllers.base import RetryLater
from boxkube.controllers.podendpoints import (
    HEADLESS_LABEL,
    LAST_CHANGE_TRIGGER_TIME,
    ServiceEndpointsController,
    find_port,
    format_trigger_time,
    is_ipv6,
    is_service_ip_set,
    namespace_terminating,
    pod_ips,
    should_be_in_endpoints,
    should_set_hostname,
)

Obj = dict[str, Any]

ENDPOINTS = resource("endpoints")
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
# Upstream truncates an Endpoints object beyond this many addresses (EndpointSlices have no limit).
MAX_CAPACITY = 1000
# Written by the API server at start and never reconciled by it: deleting them would lose them.
API_SERVER_SERVICE = "default/kubernetes"


def _address(service: Obj, pod: Obj) -> Obj | None:
    """The pod's address of the Service's first IP family (podToEndpointAddressForService), None if it has none."""
    spec = service.get("spec") or {}
    families = spec.get("ipFamilies") or []
    if families:
        want_v6 = families[0] == "IPv6"
    elif is_service_ip_set(service):
        want_v6 = is_ipv6(spec["clusterIP"])
    else:
        want_v6 = is_ipv6(pod_ips(pod)[0])
    ip = next((ip for ip in pod_ips(pod) if is_ipv6(ip) == want_v6), None)
    if ip is None:
        return None
    meta = pod["metadata"]
    address: Obj = {"ip": ip}
    if should_set_hostname(pod, service):
        address["hostname"] = pod["spec"]["hostname"]
    if (pod.get("spec") or {}).get("nodeName"):
        address["nodeName"] = pod["spec"]["nodeName"]
    address["targetRef"] = {"kind": "Pod", "namespace": meta.get("namespace"), "name": meta["name"], "uid": meta.get("uid")}
    return address


def _endpoint_port(service_port: Obj, number: int) -> Obj:
    port: Obj = {"port": number, "protocol": service_port.get("protocol") or "TCP"}
    if service_port.get("name"):
        port["name"] = service_port["name"]
    if service_port.get("appProtocol"):
        port["appProtocol"] = service_port["appProtocol"]
    return port


def _freeze(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _address_order(address: Obj) -> tuple[bytes, str]:
    return address["ip"].encode(), (address.get("targetRef") or {}).get("uid") or ""


def repack_subsets(subsets: list[Obj]) -> list[Obj]:
    """One subset per distinct set of (address, ready) sharing the same ports, in a stable order
    (endpoints.RepackSubsets). An address not ready on some port is not ready there even if
    another subset says it is ready."""
    addresses: dict[tuple[str, str], Obj] = {}
    ports: dict[str | None, Obj] = {}
    readiness: dict[str | None, dict[tuple[str, str], bool]] = {}
    for subset in subsets:
        members = [(a, True) for a in subset.get("addresses") or []] + \
                  [(a, False) for a in subset.get("notReadyAddresses") or []]
        # Addresses without ports (a headless Service without ports) are kept under a sentinel.
        for port in subset.get("ports") or [None]:
            port_key = None if port is None else _freeze(port)
            if port is not None:
                ports[port_key] = port
            by_address = readiness.setdefault(port_key, {})
            for address, ready in members:
                key = (address["ip"], (address.get("targetRef") or {}).get("uid") or "")
                addresses.setdefault(key, address)
                if by_address.get(key, True):
                    by_address[key] = ready
    groups: dict[frozenset, list[Obj]] = {}
    for port_key, by_address in readiness.items():
        group = groups.setdefault(frozenset(by_address.items()), [])
        if port_key is not None:
            group.append(ports[port_key])
    packed = []
    for members, group_ports in groups.items():
        subset: Obj = {}
        ready = sorted((addresses[k] for k, r in members if r), key=_address_order)
        not_ready = sorted((addresses[k] for k, r in members if not r), key=_address_order)
        if ready:
            subset["addresses"] = ready
        if not_ready:
            subset["notReadyAddresses"] = not_ready
        if group_ports:
            subset["ports"] = sorted(group_ports, key=lambda p: (p.get("name", ""), p["port"], p.get("protocol", "")))
        packed.append(subset)
    return sorted(packed, key=_freeze)


def truncate(subsets: list[Obj]) -> bool:
    """Cut the subsets to MAX_CAPACITY addresses, keeping ready ones first and each subset's share
    (truncateEndpoints); whether anything was cut."""
    total_ready = sum(len(s.get("addresses") or []) for s in subsets)
    total_not_ready = sum(len(s.get("notReadyAddresses") or []) for s in subsets)
    if total_ready + total_not_ready <= MAX_CAPACITY:
        return False
    cut_ready = total_ready > MAX_CAPACITY
    room = MAX_CAPACITY if cut_ready else MAX_CAPACITY - total_ready
    total = total_ready if cut_ready else total_not_ready
    left = room
    for subset in subsets:
        field = "addresses" if cut_ready else "notReadyAddresses"
        members = subset.get(field) or []
        take = min(math.ceil(len(members) / total * room), left)
        subset[field] = members[:take]
        if cut_ready:
            subset["notReadyAddresses"] = []
        left -= len(subset[field])
    return True


def _without_target_versions(subsets: list[Obj]) -> list[Obj]:
    """Subsets with targetRef resourceVersions dropped: a pod's other changes do not rewrite its Service's endpoints."""
    subsets = jsonio.copy(subsets or [])
    for subset in subsets:
        for field in ("addresses", "notReadyAddresses"):
            for address in subset.get(field) or []:
                (address.get("targetRef") or {}).pop("resourceVersion", None)
    return subsets


class EndpointsController(ServiceEndpointsController):
    name = "endpoints"

    def setup(self) -> None:
        super().setup()
        self.endpoints = self.informers.informer("endpoints")
        # Someone deleting a Service's Endpoints gets them back.
        self.endpoints.add_event_handler(on_delete=self.enqueue)
        # Upstream's staleEndpointsTracker: the resourceVersion each of our writes replaced. While the
        # cache still shows it, the cache has not seen our write, and comparing with it would skip a
        # needed update (the write it compares against is not the one stored).
        self._replaced: dict[str, str] = {}

    async def run(self) -> None:
        # Endpoints whose Service is gone (deleted while this controller was down) are found once at
        # start, as upstream's checkLeftoverEndpoints: their keys are Services' keys.
        for key in self.endpoints.store.keys():
            self.queue.add(key)
        await super().run()

    async def reconcile(self, key: str) -> None:
        if key == API_SERVER_SERVICE:
            return
        namespace, name = split_key(key)
        service = self.services.store.get(key)
        if service is None:
            self.trigger_times.forget(key)
            self._replaced.pop(key, None)
            try:
                await self.client.delete(ENDPOINTS, name, namespace)
            except ApiError as e:
                if not e.is_not_found:
                    raise
            return
        spec = service.get("spec") or {}
        if spec.get("type") == "ExternalName" or spec.get("selector") is None:
            return

        pods = self.selected_pods(service)
        # Computed on every sync, even one that writes nothing, so the tracker moves on.
        trigger_time = self.trigger_times.compute(service, pods)
        publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
        subsets: list[Obj] = []
        for pod in pods:
            if not should_be_in_endpoints(pod, publish_not_ready):
                continue
            address = _address(service, pod)
            if address is None:
                continue
            field = "addresses" if publish_not_ready or is_ready(pod) else "notReadyAddresses"
            if not spec.get("ports"):
                if spec.get("clusterIP") == "None":     # a headless Service may have no ports
                    subsets.append({field: [address]})
                continue
            for service_port in spec["ports"]:
                number = find_port(pod, service_port)
                if number is None:
                    self.log.debug("no port %s of %s in pod %s", service_port.get("targetPort"), key, pod["metadata"]["name"])
                    continue
                subsets.append({field: [address], "ports": [_endpoint_port(service_port, number)]})
        subsets = repack_subsets(subsets)

        current = self.endpoints.store.get(key)
        if current is not None and self._replaced.get(key) == current["metadata"].get("resourceVersion"):
            raise RetryLater(f"the endpoints cache has not seen our last write of {key} yet")
        labels = dict((service["metadata"].get("labels")) or {})
        if current is not None:
            current_labels = dict(current["metadata"].get("labels") or {})
            current_labels.pop(HEADLESS_LABEL, None)
            annotations = current["metadata"].get("annotations") or {}
            over = sum(len(s.get("addresses") or []) + len(s.get("notReadyAddresses") or []) for s in subsets) > MAX_CAPACITY
            if _without_target_versions(current.get("subsets")) == subsets and current_labels == labels \
                    and not over and OVER_CAPACITY not in annotations:
                return
            desired = jsonio.copy(current)
        else:
            desired = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": namespace}}
        meta = desired["metadata"]
        annotations = meta.setdefault("annotations", {})
        if trigger_time is not None:
            annotations[LAST_CHANGE_TRIGGER_TIME] = format_trigger_time(trigger_time)
        else:
            annotations.pop(LAST_CHANGE_TRIGGER_TIME, None)
        if truncate(subsets):
            annotations[OVER_CAPACITY] = "truncated"
        else:
            annotations.pop(OVER_CAPACITY, None)
        if not annotations:
            del meta["annotations"]
        if not is_service_ip_set(service):
            labels[HEADLESS_LABEL] = ""
        meta["labels"] = labels
        desired["subsets"] = subsets
        try:
            if current is None:
                await self.client.create(ENDPOINTS, desired, namespace)
            else:
                await self.client.replace(ENDPOINTS, desired, namespace)
                self._replaced[key] = current["metadata"]["resourceVersion"]
        except ApiError as e:
            if current is None and namespace_terminating(e):
                return          # creates there will fail until it is gone; nothing to retry
            if not e.is_conflict and not e.is_already_exists:
                if current is None:
                    self.recorder.event(desired, "Warning", "FailedToCreateEndpoint",
                                        f"Failed to create endpoint for service {namespace}/{name}: {e}")
                else:
                    self.recorder.event(desired, "Warning", "FailedToUpdateEndpoint",
                                        f"Failed to update endpoint {namespace}/{name}: {e}")
            raise
