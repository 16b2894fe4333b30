"""Which pods are endpoints of which Services, on which ports, and since when.

What the Endpoints and the EndpointSlice controllers share, as upstream's
k8s.io/endpointslice/util does for its two: the rules that put a pod in a
Service's endpoints, port resolution by name, the pod changes that matter to
a Service, the trigger-time bookkeeping behind the
`endpoints.kubernetes.io/last-change-trigger-time` annotation, and a
controller base that queues a Service whenever it or one of its pods changes.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from boxkube.api.pods import condition, is_ready
from boxkube.api.times import parse_time
from boxkube.client import NAMESPACE_INDEX, ApiError, DeletedFinalStateUnknown, Store, object_key
from boxkube.controllers.base import Controller

Obj = dict[str, Any]

LAST_CHANGE_TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
HEADLESS_LABEL = "service.kubernetes.io/headless"


def pod_ips(pod: Obj) -> list[str]:
    status = pod.get("status") or {}
    ips = [p.get("ip") for p in status.get("podIPs") or [] if p.get("ip")]
    return ips or ([status["podIP"]] if status.get("podIP") else [])


def is_ipv6(ip: str) -> bool:
    return ":" in ip


def should_be_in_endpoints(pod: Obj, include_terminating: bool) -> bool:
    """Not finished, has an IP, and (unless asked for) not being deleted (ShouldPodBeInEndpoints)."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    if not pod_ips(pod):
        return False
    return include_terminating or not (pod.get("metadata") or {}).get("deletionTimestamp")


def should_set_hostname(pod: Obj, service: Obj) -> bool:
    """A pod's hostname is published for the Service named in its subdomain (a headless Service's DNS records)."""
    spec = pod.get("spec") or {}
    return bool(spec.get("hostname")) and spec.get("subdomain") == service["metadata"]["name"] \
        and pod["metadata"].get("namespace") == service["metadata"].get("namespace")


def is_service_ip_set(service: Obj) -> bool:
    ip = (service.get("spec") or {}).get("clusterIP")
    return bool(ip) and ip != "None"


def find_port(pod: Obj, service_port: Obj) -> int | None:
    """The pod's port for a Service port: a number as is, a name looked up among the containers'
    (and restartable init containers') named ports of the same protocol (podutil.FindPort)."""
    target = service_port.get("targetPort", service_port.get("port"))
    protocol = service_port.get("protocol") or "TCP"
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    spec = pod.get("spec") or {}
    sidecars = [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    for container in (spec.get("containers") or []) + sidecars:
        for port in container.get("ports") or []:
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                return int(port["containerPort"])
    return None


def selects(service: Obj, labels: dict[str, str] | None) -> bool:
    """A Service's selector is a plain label set; no selector selects nothing (its endpoints are
    the user's), an empty one everything."""
    selector = (service.get("spec") or {}).get("selector")
    if selector is None:
        return False
    labels = labels or {}
    return all(labels.get(k) == v for k, v in selector.items())


def services_selecting(services: Store, namespace: str, labels: dict[str, str] | None) -> set[str]:
    return {object_key(s) for s in services.by_index(NAMESPACE_INDEX, namespace) if selects(s, labels)}


def _endpoint_change(old: Obj, new: Obj) -> tuple[bool, bool]:
    """(the pod changed in a way its endpoint shows, its labels or DNS names changed) — podEndpointsChanged."""
    old_meta, new_meta = old.get("metadata") or {}, new.get("metadata") or {}
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    labels_changed = (old_meta.get("labels") or {}) != (new_meta.get("labels") or {}) \
        or old_spec.get("hostname") != new_spec.get("hostname") or old_spec.get("subdomain") != new_spec.get("subdomain")
    pod_changed = old_meta.get("deletionTimestamp") != new_meta.get("deletionTimestamp") \
        or is_ready(old) != is_ready(new) or pod_ips(old) != pod_ips(new) \
        or (old.get("status") or {}).get("phase") != (new.get("status") or {}).get("phase") \
        or old_spec.get("nodeName") != new_spec.get("nodeName")
    return pod_changed, labels_changed


def services_to_update(services: Store, old: Obj, new: Obj) -> set[str]:
    """The Services a pod update concerns (GetServicesToUpdateOnPodChange): none for a resync or a change
    no endpoint shows; after a label change, those it joined or left — and all of them if the pod changed too."""
    if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
        return set()
    pod_changed, labels_changed = _endpoint_change(old, new)
    namespace = new["metadata"].get("namespace") or ""
    if not pod_changed and not labels_changed:
        return set()
    now = services_selecting(services, namespace, new["metadata"].get("labels"))
    if not labels_changed:
        return now
    before = services_selecting(services, namespace, old["metadata"].get("labels"))
    return now | before if pod_changed else now ^ before


def namespace_terminating(e: ApiError) -> bool:
    """A create refused because the namespace is being deleted: it will keep failing, so it is not retried."""
    return e.code == 403 and any(c.get("reason") == "NamespaceTerminating" for c in e.details.get("causes") or [])


def format_trigger_time(t: datetime) -> str:
    """RFC 3339 with nanoseconds trimmed of trailing zeros, in UTC (Go's time.RFC3339Nano)."""
    base = t.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{t.microsecond:06d}".rstrip("0")
    return f"{base}.{fraction}Z" if fraction else f"{base}Z"


class TriggerTimeTracker:
    """The time of the earliest change a sync of a Service's endpoints reflects (upstream's TriggerTimeTracker).

    A pod's change time is its Ready condition's lastTransitionTime; the
    Service's is its creation. The first sync of a Service reports its
    creation; later syncs the earliest of the times that moved since the last
    one (None when nothing moved, and the annotation is then dropped).
    """

    def __init__(self) -> None:
        self._states: dict[str, tuple[dict[str, datetime], datetime | None]] = {}

    def compute(self, service: Obj, pods: list[Obj]) -> datetime | None:
        key = object_key(service)
        known = key in self._states
        last_pods, last_service = self._states.get(key, ({}, None))
        earliest: datetime | None = None
        pod_times: dict[str, datetime] = {}
        for pod in pods:
            t = parse_time((condition(pod, "Ready") or {}).get("lastTransitionTime"))
            if t is None:
                continue
            name = pod["metadata"]["name"]
            pod_times[name] = t
            if name not in last_pods or t > last_pods[name]:
                earliest = t if earliest is None else min(earliest, t)
        service_time = parse_time(service["metadata"].get("creationTimestamp"))
        if service_time is not None and (last_service is None or service_time > last_service):
            earliest = service_time if earliest is None else min(earliest, service_time)
        self._states[key] = (pod_times, service_time)
        return service_time if not known else earliest

    def forget(self, key: str) -> None:
        self._states.pop(key, None)


class ServiceEndpointsController(Controller):
    """A controller of one thing per Service, synced when the Service or one of its pods changes."""

    def setup(self) -> None:
        self.services = self.watch("services")
        self.pods = self.informers.informer("pods")
        self.pods.add_event_handler(on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted)
        self.trigger_times = TriggerTimeTracker()

    def _pod_added(self, pod: Obj) -> None:
        for key in services_selecting(self.services.store, pod["metadata"].get("namespace") or "",
                                      pod["metadata"].get("labels")):
            self.queue.add(key)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        for key in services_to_update(self.services.store, old, new):
            self.queue.add(key)

    def _pod_deleted(self, pod: Obj | DeletedFinalStateUnknown) -> None:
        self._pod_added(pod.obj if isinstance(pod, DeletedFinalStateUnknown) else pod)

    def selected_pods(self, service: Obj) -> list[Obj]:
        namespace = service["metadata"].get("namespace") or ""
        return [p for p in self.pods.store.by_index(NAMESPACE_INDEX, namespace)
                if selects(service, p["metadata"].get("labels"))]
