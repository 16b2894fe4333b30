"""What a pod asks of a node, summed as the scheduler sums it.

Follows component-helpers' resource.PodRequests (containers summed, init
containers taken as a maximum with restartable "sidecar" init containers added
to everything after them, pod-level requests overriding, overhead added) and
the scheduler's Resource.Add conversion to integers: cpu in millicores,
everything else in whole units, both rounded up as Quantity.MilliValue/Value do.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from fractions import Fraction
from typing import Any

from boxkube.api.quantity import parse_quantity

CPU = "cpu"
MEMORY = "memory"
EPHEMERAL_STORAGE = "ephemeral-storage"
PODS = "pods"

# schedutil.DefaultMilliCPURequest / DefaultMemoryRequest: what a container
# without requests counts as when spreading load (never when checking fit).
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024

_NON_MISSING_DEFAULTS = {CPU: Fraction(DEFAULT_MILLI_CPU_REQUEST, 1000), MEMORY: Fraction(DEFAULT_MEMORY_REQUEST)}

Resources = dict[str, int]
"""Resource name -> integer amount (cpu in millicores)."""


def is_scalar_resource(name: str) -> bool:
    """schedutil.IsScalarResourceName: extended and prefixed-native resources, hugepages, attachable volumes."""
    if name.startswith("requests."):
        return False
    return "/" in name or name.startswith(("hugepages-", "attachable-volumes-"))


def _is_pod_level_resource(name: str) -> bool:
    # IsSupportedPodLevelResource: pod-level requests exist for cpu, memory and hugepages
    return name in (CPU, MEMORY) or name.startswith("hugepages-")


def _as_int(name: str, value: Fraction) -> int:
    return math.ceil(value * 1000) if name == CPU else math.ceil(value)


def _parse_list(rl: Mapping[str, Any] | None) -> dict[str, Fraction]:
    return {name: parse_quantity(str(q)).value for name, q in (rl or {}).items()}


def _add(into: dict[str, Fraction], more: Mapping[str, Fraction]) -> None:
    for name, v in more.items():
        into[name] = into.get(name, Fraction(0)) + v


def _max(into: dict[str, Fraction], other: Mapping[str, Fraction]) -> None:
    for name, v in other.items():
        if name not in into or v > into[name]:
            into[name] = v


def _container_requests(container: Mapping[str, Any], defaults: Mapping[str, Fraction]) -> dict[str, Fraction]:
    reqs = _parse_list((container.get("resources") or {}).get("requests"))
    for name, v in defaults.items():
        reqs.setdefault(name, v)
    return reqs


def _aggregate_containers(spec: Mapping[str, Any], defaults: Mapping[str, Fraction]) -> dict[str, Fraction]:
    total: dict[str, Fraction] = {}
    for c in spec.get("containers") or []:
        _add(total, _container_requests(c, defaults))
    # While init container i runs, the sidecars started before it run too (KEP-753).
    sidecars: dict[str, Fraction] = {}
    init_peak: dict[str, Fraction] = {}
    for c in spec.get("initContainers") or []:
        reqs = _container_requests(c, defaults)
        if c.get("restartPolicy") == "Always":
            _add(total, reqs)
            _add(sidecars, reqs)
            in_use = dict(sidecars)
        else:
            in_use = dict(reqs)
            _add(in_use, sidecars)
        _max(init_peak, in_use)
    _max(total, init_peak)
    return total


def pod_requests(pod: Mapping[str, Any], defaults: Mapping[str, Fraction] | None = None) -> dict[str, Fraction]:
    """resource.PodRequests: exact requests by resource name.

    `defaults` fills in container requests that are missing (NonMissingContainerRequests).
    """
    spec = pod.get("spec") or {}
    reqs = _aggregate_containers(spec, defaults or {})
    for name, v in _parse_list((spec.get("resources") or {}).get("requests")).items():
        if _is_pod_level_resource(name):
            reqs[name] = v
    _add(reqs, _parse_list(spec.get("overhead")))
    return reqs


def to_resources(reqs: Mapping[str, Fraction], *, keep_pods: bool = False) -> Resources:
    """Resource.Add: the integer amounts the scheduler compares (unknown non-scalar names dropped)."""
    out: Resources = {}
    for name, v in reqs.items():
        if name in (CPU, MEMORY, EPHEMERAL_STORAGE) or is_scalar_resource(name) or (keep_pods and name == PODS):
            out[name] = _as_int(name, v)
    return out


@dataclass(frozen=True)
class PodResource:
    """A pod's requests as counted on a node, and the non-zero cpu/memory used for scoring."""

    requests: Resources
    non_zero_cpu: int
    non_zero_memory: int

    @cached_property
    def positive(self) -> tuple[tuple[str, int], ...]:
        """The requests above zero, in the order fitsRequest checks them (cpu, memory,
        ephemeral-storage, then the rest): computed once per pod, read once per node."""
        native = [(n, self.requests[n]) for n in (CPU, MEMORY, EPHEMERAL_STORAGE) if self.requests.get(n, 0) > 0]
        other = [(n, v) for n, v in self.requests.items() if n not in (CPU, MEMORY, EPHEMERAL_STORAGE) and v > 0]
        return tuple(native + other)

    @cached_property
    def fit_key(self) -> str:
        """What NodeResourcesFit's verdict on a node is remembered under (NodeInfo.memo): the requests."""
        return f"NodeResourcesFit\0{self.positive}"


def pod_resource(pod: Mapping[str, Any]) -> PodResource:
    """PodInfo.CalculateResource."""
    exact = pod_requests(pod)
    pod_level = _parse_list(((pod.get("spec") or {}).get("resources") or {}).get("requests"))
    if any(_is_pod_level_resource(n) for n in pod_level):
        # with pod-level requests, only a resource set nowhere gets the default
        defaults = {n: v for n, v in _NON_MISSING_DEFAULTS.items() if n not in exact}
    else:
        defaults = _NON_MISSING_DEFAULTS
    non_zero = pod_requests(pod, defaults) if defaults else exact
    return PodResource(
        requests=to_resources(exact),
        non_zero_cpu=_as_int(CPU, non_zero.get(CPU, Fraction(0))),
        non_zero_memory=_as_int(MEMORY, non_zero.get(MEMORY, Fraction(0))),
    )


def node_allocatable(node: Mapping[str, Any]) -> Resources:
    """NodeInfo.Allocatable from status.allocatable (pods included)."""
    return to_resources(_parse_list((node.get("status") or {}).get("allocatable")), keep_pods=True)
