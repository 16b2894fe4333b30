"""The EndpointSlice controller: discovery.k8s.io/v1 EndpointSlices of every Service with a selector.

The same pods as the Endpoints controller's, as upstream's reconciler
(k8s.io/endpointslice) lays them out: one endpoint per pod with its addresses
of the slice's addressType and conditions ready/serving/terminating
(terminating pods are kept, marked so), nodeName, zone, targetRef; slices group
endpoints with the same resolved ports, at most `max_endpoints_per_slice`
each, labelled with the Service's name and this controller as their manager,
and owned by the Service (the garbage collector removes them with it). A
Service with no endpoints keeps one empty placeholder slice. Existing slices
are changed in place rather than replaced, and filled before new ones are made.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from boxkube.api import jsonio
from boxkube.api.pods import is_ready
from boxkube.client import ApiError, DeletedFinalStateUnknown, NAMESPACE_INDEX, object_key, resource, split_key
from boxkube.controllers.base import RetryLater
from boxkube.controllers.ownership import controller_ref
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

ENDPOINT_SLICES = resource("endpointslices")
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
ZONE_LABEL = "topology.kubernetes.io/zone"
_RESERVED_LABELS = (SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_LABEL)
# A sync waits this long for the informer to show the slices the last sync wrote.
_STALE_RETRY = 0.05
# ... but not for longer than this: by then the write was undone by someone else (say, a delete).
_EXPECTATION_TTL = 10.0

PortKey = tuple[tuple[str, int, str, str], ...]
EndpointKey = tuple[tuple[str, ...], str, str, str]


def address_types(service: Obj) -> set[str]:
    """The slices' addressTypes a Service wants: its ipFamilies (else its clusterIP's family; a
    headless Service without families gets both, as upstream does during upgrades)."""
    spec = service.get("spec") or {}
    types = {"IPv6" if f == "IPv6" else "IPv4" for f in spec.get("ipFamilies") or [] if f in ("IPv4", "IPv6")}
    if types:
        return types
    if is_service_ip_set(service):
        return {"IPv6" if is_ipv6(spec["clusterIP"]) else "IPv4"}
    return {"IPv4", "IPv6"}


def endpoint_ports(service: Obj, pod: Obj) -> list[Obj]:
    spec = service.get("spec") or {}
    ports = []
    for service_port in spec.get("ports") or []:
        number = find_port(pod, service_port)
        if number is None:
            continue
        port: Obj = {"name": service_port.get("name") or "", "port": number,
                     "protocol": service_port.get("protocol") or "TCP"}
        if service_port.get("appProtocol"):
            port["appProtocol"] = service_port["appProtocol"]
        ports.append(port)
    return ports


def port_key(ports: list[Obj] | None) -> PortKey:
    """The identity of a set of ports, whatever their order (NewPortMapKey)."""
    return tuple(sorted((p.get("name") or "", int(p.get("port") or 0), p.get("protocol") or "TCP",
                         p.get("appProtocol") or "") for p in ports or []))


def endpoint_key(endpoint: Obj) -> EndpointKey:
    """What makes an endpoint the same one across syncs: its addresses, hostname and pod."""
    ref = endpoint.get("targetRef") or {}
    return (tuple(endpoint.get("addresses") or ()), endpoint.get("hostname") or "",
            ref.get("namespace") or "", ref.get("name") or "")


def _comparable(endpoint: Obj) -> Obj:
    endpoint = jsonio.copy(endpoint)
    endpoint.pop("hints", None)
    (endpoint.get("targetRef") or {}).pop("resourceVersion", None)
    return endpoint


def pod_to_endpoint(pod: Obj, node: Obj | None, service: Obj, address_type: str) -> Obj:
    serving = is_ready(pod)
    terminating = bool(pod["metadata"].get("deletionTimestamp"))
    # Never ready while terminating, unless the Service publishes not-ready addresses.
    ready = bool((service.get("spec") or {}).get("publishNotReadyAddresses")) or (serving and not terminating)
    meta = pod["metadata"]
    endpoint: Obj = {
        "addresses": [ip for ip in pod_ips(pod) if is_ipv6(ip) == (address_type == "IPv6")],
        "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
        "targetRef": {"kind": "Pod", "namespace": meta.get("namespace"), "name": meta["name"], "uid": meta.get("uid")},
    }
    if (pod.get("spec") or {}).get("nodeName"):
        endpoint["nodeName"] = pod["spec"]["nodeName"]
    zone = ((node or {}).get("metadata", {}).get("labels") or {}).get(ZONE_LABEL)
    if zone:
        endpoint["zone"] = zone
    if should_set_hostname(pod, service):
        endpoint["hostname"] = pod["spec"]["hostname"]
    return endpoint


def slice_labels(slice_: Obj, service: Obj) -> tuple[dict[str, str], bool]:
    """The labels a slice should have — the Service's, but for the reserved ones, which say whose
    slice it is — and whether the Service's own labels changed (setEndpointSliceLabels)."""
    current = {k: v for k, v in (slice_["metadata"].get("labels") or {}).items() if k not in _RESERVED_LABELS}
    wanted = {k: v for k, v in (service["metadata"].get("labels") or {}).items() if k not in _RESERVED_LABELS}
    changed = current != wanted
    if not is_service_ip_set(service):
        wanted[HEADLESS_LABEL] = ""
    wanted[SERVICE_NAME_LABEL] = service["metadata"]["name"]
    wanted[MANAGED_BY_LABEL] = CONTROLLER_NAME
    return wanted, changed


def owned_by(slice_: Obj, service: Obj) -> bool:
    uid = service["metadata"].get("uid")
    return any(r.get("uid") == uid and r.get("kind") == "Service" and r.get("apiVersion") == "v1"
               for r in slice_["metadata"].get("ownerReferences") or [])


def new_slice(service: Obj, ports: list[Obj], address_type: str) -> Obj:
    meta = service["metadata"]
    slice_: Obj = {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        # generateName: a Service has as many slices as it needs.
        "metadata": {"generateName": f"{meta['name']}-", "namespace": meta.get("namespace"),
                     "ownerReferences": [controller_ref(service, "v1", "Service")]},
        "addressType": address_type, "ports": ports, "endpoints": [],
    }
    slice_["metadata"]["labels"], _ = slice_labels(slice_, service)
    return slice_


def _is_placeholder_of(slice_: Obj, placeholder: Obj) -> bool:
    """An existing slice that is already the empty placeholder a Service would get (placeholderSliceCompare)."""
    meta, want = slice_["metadata"], placeholder["metadata"]
    return meta.get("namespace") == want["namespace"] and (meta.get("labels") or {}) == want["labels"] \
        and [_ref(r) for r in meta.get("ownerReferences") or []] == [_ref(r) for r in want["ownerReferences"]] \
        and not slice_.get("endpoints") and not slice_.get("ports") and slice_.get("addressType") == placeholder["addressType"]


def _ref(ref: Obj) -> tuple:
    return (ref.get("apiVersion"), ref.get("kind"), ref.get("name"), ref.get("uid"),
            bool(ref.get("controller")), bool(ref.get("blockOwnerDeletion")))


@dataclass
class _Write:
    """One of our writes to a slice, and how the informer's copy shows it was done."""
    kind: str                        # create, update or delete
    replaced: str | None = None      # an update's: the resourceVersion it replaced
    deadline: float = field(default_factory=lambda: time.monotonic() + _EXPECTATION_TTL)

    def shown_by(self, cached: Obj | None) -> bool:
        if self.kind == "create":
            return cached is not None
        if cached is None:
            return True
        if self.kind == "update":
            return cached["metadata"].get("resourceVersion") != self.replaced
        return bool(cached["metadata"].get("deletionTimestamp"))


class _Plan:
    """What one sync writes for one addressType."""

    def __init__(self) -> None:
        self.create: list[Obj] = []
        self.update: list[Obj] = []
        self.delete: list[Obj] = []


class EndpointSliceController(ServiceEndpointsController):
    name = "endpointslice"
    max_endpoints_per_slice = 100

    def setup(self) -> None:
        super().setup()
        self.nodes = self.informers.informer("nodes")
        self.slices = self.informers.informer("endpointslices")
        self.slices.add_event_handler(on_add=self._slice_added, on_update=self._slice_updated,
                                      on_delete=self._slice_deleted)
        # Our writes the informer may not show yet (upstream's EndpointSliceTracker), by Service key, then
        # slice key. A sync working from slices older than its own last writes would undo them or make
        # duplicates, so it waits until the cache has caught up — or, should someone else have changed
        # the slice meanwhile, until the expectation expires.
        self.unseen: dict[str, dict[str, _Write]] = {}

    # -- slice events ---------------------------------------------------------------

    def _service_of(self, slice_: Obj) -> str | None:
        labels = slice_["metadata"].get("labels") or {}
        if labels.get(MANAGED_BY_LABEL) != CONTROLLER_NAME or not labels.get(SERVICE_NAME_LABEL):
            return None
        return f"{slice_['metadata'].get('namespace')}/{labels[SERVICE_NAME_LABEL]}"

    def _ours(self, service: str, slice_key: str, slice_: Obj | None) -> bool:
        """Whether `slice_` (None: gone) is the state one of our writes left."""
        write = self.unseen.get(service, {}).get(slice_key)
        return write is not None and write.shown_by(slice_)

    def _slice_added(self, slice_: Obj) -> None:
        service = self._service_of(slice_)
        if service and not self._ours(service, object_key(slice_), slice_):
            self.queue.add(service)

    def _slice_updated(self, old: Obj, new: Obj) -> None:
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return
        for service in {self._service_of(old), self._service_of(new)} - {None}:
            if service != self._service_of(new) or not self._ours(service, object_key(new), new):
                self.queue.add(service)

    def _slice_deleted(self, slice_: Obj | DeletedFinalStateUnknown) -> None:
        slice_ = slice_.obj if isinstance(slice_, DeletedFinalStateUnknown) else slice_
        service = self._service_of(slice_)
        if service and not self._ours(service, object_key(slice_), None):
            self.queue.add(service)

    def _stale(self, service: str) -> bool:
        """Whether the cache does not show all our writes for `service` yet (forgetting those it shows)."""
        expected = self.unseen.get(service, {})
        now = time.monotonic()
        for slice_key, write in list(expected.items()):
            if write.shown_by(self.slices.store.get(slice_key)) or now > write.deadline:
                del expected[slice_key]
        if not expected:
            self.unseen.pop(service, None)
        return bool(expected)

    # -- sync -------------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        service = self.services.store.get(key)
        if service is None:
            # Its slices are owned by it: the garbage collector deletes them.
            self.trigger_times.forget(key)
            self.unseen.pop(key, None)
            return
        spec = service.get("spec") or {}
        if spec.get("type") == "ExternalName" or spec.get("selector") is None:
            return
        if self._stale(key):
            self.queue.add_after(key, _STALE_RETRY)
            return
        namespace, name = split_key(key)
        pods = self.selected_pods(service)
        existing = [s for s in self.slices.store.by_index(NAMESPACE_INDEX, namespace or "")
                    if (s["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL) == name
                    and (s["metadata"].get("labels") or {}).get(MANAGED_BY_LABEL) == CONTROLLER_NAME
                    and not s["metadata"].get("deletionTimestamp")]
        trigger_time = self.trigger_times.compute(service, pods)
        wanted_types = address_types(service)
        problems: list[str] = []
        for address_type in sorted(wanted_types):
            plan = self._plan(service, pods, [s for s in existing if s.get("addressType") == address_type],
                              address_type, problems)
            await self._write(service, plan, trigger_time)
        for stray in (s for s in existing if s.get("addressType") not in wanted_types):
            await self._delete(service, stray)
        if problems:
            # Retried with back-off: a pod's Node may yet appear.
            raise RetryLater("; ".join(problems))

    def _plan(self, service: Obj, pods: list[Obj], existing: list[Obj], address_type: str,
              problems: list[str]) -> _Plan:
        plan = _Plan()
        existing_by_ports: dict[PortKey, list[Obj]] = {}
        for slice_ in existing:
            if owned_by(slice_, service):
                existing_by_ports.setdefault(port_key(slice_.get("ports")), []).append(slice_)
            else:           # a slice of an earlier Service of the same name
                plan.delete.append(slice_)

        publish_not_ready = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
        desired_ports: dict[PortKey, list[Obj]] = {}
        desired: dict[PortKey, dict[EndpointKey, Obj]] = {}
        for pod in pods:
            if not should_be_in_endpoints(pod, include_terminating=True):
                continue
            ports = endpoint_ports(service, pod)
            ports_key = port_key(ports)
            desired_ports.setdefault(ports_key, ports)
            endpoints = desired.setdefault(ports_key, {})
            node_name = (pod.get("spec") or {}).get("nodeName") or ""
            node = self.nodes.store.get(node_name) if node_name else None
            if node is None and not publish_not_ready:
                # Left out rather than left stuck: the pod's node is gone (the pod GC removes such pods).
                meta = service["metadata"]
                problems.append(f"skipping Pod {pod['metadata']['name']} for Service {meta.get('namespace')}/"
                                f"{meta['name']}: Node {node_name} Not Found")
                continue
            endpoint = pod_to_endpoint(pod, node, service, address_type)
            if endpoint["addresses"]:
                endpoints[endpoint_key(endpoint)] = endpoint

        for ports_key, endpoints in desired.items():
            self._plan_ports(service, existing_by_ports.get(ports_key, []), endpoints, desired_ports[ports_key],
                             address_type, plan)
        for ports_key, slices in existing_by_ports.items():
            if ports_key not in desired:
                plan.delete.extend(slices)

        if len(existing) == len(plan.delete) and not plan.create:
            placeholder = new_slice(service, [], address_type)
            if len(plan.delete) == 1 and _is_placeholder_of(plan.delete[0], placeholder):
                plan.delete.clear()        # the placeholder is already there
            else:
                plan.create.append(placeholder)
        return plan

    def _plan_ports(self, service: Obj, existing: list[Obj], desired: dict[EndpointKey, Obj], ports: list[Obj],
                    address_type: str, plan: _Plan) -> None:
        """Slices of one set of ports (reconcileByPortMapping): keep what is still wanted where it is,
        drop what is not, fill the slices being changed anyway, then one unchanged slice that fits,
        then new slices."""
        limit = self.max_endpoints_per_slice
        updated: dict[str, Obj] = {}
        unchanged: dict[str, Obj] = {}
        for slice_ in existing:
            kept, changed = [], False
            for endpoint in slice_.get("endpoints") or []:
                wanted = desired.pop(endpoint_key(endpoint), None)
                if wanted is not None:
                    kept.append(wanted)
                    changed = changed or _comparable(wanted) != _comparable(endpoint)
            labels, labels_changed = slice_labels(slice_, service)
            name = slice_["metadata"]["name"]
            if changed or len(kept) != len(slice_.get("endpoints") or []):
                if not kept:
                    plan.delete.append(slice_)
                    continue
                updated[name] = {**jsonio.copy(slice_), "endpoints": kept}
                updated[name]["metadata"]["labels"] = labels
            elif labels_changed:
                updated[name] = jsonio.copy(slice_)
                updated[name]["metadata"]["labels"] = labels
            else:
                unchanged[name] = slice_

        def fill(slice_: Obj) -> None:
            while desired and len(slice_["endpoints"]) < limit:
                slice_["endpoints"].append(desired.pop(next(iter(desired))))

        for slice_ in sorted(updated.values(), key=lambda s: -len(s["endpoints"])):
            fill(slice_)
        while desired:
            target = None
            if len(desired) < limit and unchanged:
                # The unchanged slice that the rest fills most closely (getSliceToFill).
                fits = [s for s in unchanged.values() if len(s.get("endpoints") or []) + len(desired) <= limit]
                if fits:
                    chosen = max(fits, key=lambda s: len(s.get("endpoints") or []))
                    target = jsonio.copy(chosen)
                    target["endpoints"] = list(target.get("endpoints") or [])
                    del unchanged[chosen["metadata"]["name"]]
                    updated[chosen["metadata"]["name"]] = target
            if target is None:
                target = new_slice(service, ports, address_type)
                plan.create.append(target)
            fill(target)
        plan.update.extend(updated.values())

    # -- writes -----------------------------------------------------------------------

    async def _write(self, service: Obj, plan: _Plan, trigger_time: datetime | None) -> None:
        meta = service["metadata"]
        namespace = meta.get("namespace")
        # A slice to delete becomes one to create instead (fewer writes, steadier names).
        for doomed in list(plan.delete):
            if not plan.create:
                break
            if doomed.get("addressType") == plan.create[-1]["addressType"] and owned_by(doomed, service):
                fresh = plan.create.pop()
                reused = jsonio.copy(doomed)
                reused.update(endpoints=fresh["endpoints"], ports=fresh["ports"])
                reused["metadata"]["labels"] = fresh["metadata"]["labels"]
                plan.update.append(reused)
                plan.delete.remove(doomed)
        # No new slices for a Service being deleted: the garbage collector is removing them.
        if not meta.get("deletionTimestamp"):
            for slice_ in plan.create:
                _annotate(slice_, trigger_time)
                try:
                    created = await self.client.create(ENDPOINT_SLICES, slice_, namespace)
                except ApiError as e:
                    if namespace_terminating(e):
                        return
                    raise
                self._expect(service, created, _Write("create"))
        for slice_ in plan.update:
            _annotate(slice_, trigger_time)
            replaced = slice_["metadata"].get("resourceVersion")
            written = await self.client.replace(ENDPOINT_SLICES, slice_, namespace)
            if written["metadata"].get("resourceVersion") != replaced:
                self._expect(service, written, _Write("update", replaced))
        for slice_ in plan.delete:
            await self._delete(service, slice_)

    async def _delete(self, service: Obj, slice_: Obj) -> None:
        try:
            await self.client.delete(ENDPOINT_SLICES, slice_["metadata"]["name"], slice_["metadata"].get("namespace"))
        except ApiError as e:
            if not e.is_not_found:
                raise
            return
        self._expect(service, slice_, _Write("delete"))

    def _expect(self, service: Obj, slice_: Obj, write: "_Write") -> None:
        self.unseen.setdefault(object_key(service), {})[object_key(slice_)] = write


def _annotate(slice_: Obj, trigger_time: datetime | None) -> None:
    annotations = slice_["metadata"].setdefault("annotations", {})
    if trigger_time is not None:
        annotations[LAST_CHANGE_TRIGGER_TIME] = format_trigger_time(trigger_time)
    else:
        annotations.pop(LAST_CHANGE_TRIGGER_TIME, None)
    if not annotations:
        del slice_["metadata"]["annotations"]
