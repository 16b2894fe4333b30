"""Questions every controller asks about a pod (k8s.io/kubernetes/pkg/api/v1/pod, controller_utils)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from boxkube.api.quantity import QuantityError, parse_quantity
from boxkube.api.times import parse_time

Obj = dict[str, Any]


def condition(pod: Obj, kind: str) -> Obj | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return c
    return None


def is_ready(pod: Obj) -> bool:
    c = condition(pod, "Ready")
    return c is not None and c.get("status") == "True"


def is_available(pod: Obj, min_ready_seconds: int, now: datetime | None = None) -> bool:
    """Ready for at least minReadySeconds (podutil.IsPodAvailable)."""
    if not is_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = parse_time((condition(pod, "Ready") or {}).get("lastTransitionTime"))
    now = now or datetime.now(timezone.utc)
    return since is not None and since + timedelta(seconds=min_ready_seconds) <= now


def is_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def is_active(pod: Obj) -> bool:
    """Counts toward a controller's replicas: not finished and not being deleted (controller.IsPodActive)."""
    return not is_terminal(pod) and not (pod.get("metadata") or {}).get("deletionTimestamp")


def _same_quantity(a: Any, b: Any) -> bool:
    try:
        return parse_quantity(str(a)).value == parse_quantity(str(b)).value
    except QuantityError:
        return str(a) == str(b)


def qos_class(spec: Obj) -> str:
    """The pod's QoS class (qos.GetPodQOS): BestEffort without cpu/memory requests or limits;
    Guaranteed when every container limits cpu and memory and requests equal the limits."""
    containers = [c for c in (spec.get("containers") or []) + (spec.get("initContainers") or []) if isinstance(c, dict)]
    any_set, guaranteed = False, True
    for c in containers:
        resources = c.get("resources") or {}
        limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
        if any(r in limits or r in requests for r in ("cpu", "memory")):
            any_set = True
        for r in ("cpu", "memory"):
            if r not in limits or not _same_quantity(requests.get(r, limits[r]), limits[r]):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"
