"""A pod with what the scheduler derives from it once: its key, requests and parsed affinity terms.

Mirrors framework.PodInfo: parsing selectors per pod, not per node visited,
is what keeps filtering cheap.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from boxkube.apiserver.errors import APIError
from boxkube.apiserver.selectors import LabelSelector, label_selector_from_object
from boxkube.scheduler.resources import PodResource, pod_resource


def pod_key(pod: Mapping[str, Any]) -> str:
    """The cache key of a pod: its uid, or namespace/name for objects not stored yet."""
    meta = pod.get("metadata") or {}
    return meta.get("uid") or f"{meta.get('namespace', '')}/{meta.get('name', '')}"


@dataclass(frozen=True)
class AffinityTerm:
    """A parsed PodAffinityTerm (framework.AffinityTerm)."""

    namespaces: frozenset[str]
    selector: LabelSelector
    topology_key: str
    namespace_selector: LabelSelector

    def matches(self, pod: PodInfo, namespace_labels: Mapping[str, str]) -> bool:
        if pod.namespace in self.namespaces or self.namespace_selector.matches(namespace_labels):
            return self.selector.matches(pod.labels)
        return False


@dataclass(frozen=True)
class WeightedAffinityTerm:
    term: AffinityTerm
    weight: int


def _affinity_term(namespace: str, term: Mapping[str, Any]) -> AffinityTerm:
    names = term.get("namespaces") or []
    ns_selector = term.get("namespaceSelector")
    # no namespaces and no namespaceSelector means "the pod's own namespace"
    namespaces = frozenset(names) if names or ns_selector is not None else frozenset((namespace,))
    return AffinityTerm(namespaces, label_selector_from_object(term.get("labelSelector")),
                        term.get("topologyKey", ""), label_selector_from_object(ns_selector))


class PodInfo:
    """One pod as the scheduler sees it; `parse_error` is set when a term's selector is invalid."""

    __slots__ = ("pod", "key", "name", "namespace", "labels", "node_name", "tolerations", "resource", "parse_error",
                 "required_affinity_terms", "required_anti_affinity_terms",
                 "preferred_affinity_terms", "preferred_anti_affinity_terms", "has_affinity", "terminating")

    def __init__(self, pod: Mapping[str, Any]):
        meta = pod.get("metadata") or {}
        self.pod = pod
        self.key = pod_key(pod)
        self.name: str = meta.get("name", "")
        self.namespace: str = meta.get("namespace", "")
        self.labels: Mapping[str, str] = meta.get("labels") or {}
        spec = pod.get("spec") or {}
        self.node_name: str = spec.get("nodeName") or ""
        self.tolerations: list[Mapping[str, Any]] = spec.get("tolerations") or []
        self.resource: PodResource = pod_resource(pod)
        self.parse_error: str | None = None
        affinity = spec.get("affinity") or {}
        # any pod (anti-)affinity at all: such pods take part in other pods' affinity scoring
        self.has_affinity = affinity.get("podAffinity") is not None or affinity.get("podAntiAffinity") is not None
        self.terminating = bool(meta.get("deletionTimestamp"))
        pod_affinity = affinity.get("podAffinity") or {}
        anti_affinity = affinity.get("podAntiAffinity") or {}
        required = "requiredDuringSchedulingIgnoredDuringExecution"
        preferred = "preferredDuringSchedulingIgnoredDuringExecution"
        self.required_affinity_terms = self._terms(pod_affinity.get(required))
        self.required_anti_affinity_terms = self._terms(anti_affinity.get(required))
        self.preferred_affinity_terms = self._weighted(pod_affinity.get(preferred))
        self.preferred_anti_affinity_terms = self._weighted(anti_affinity.get(preferred))

    def _terms(self, raw: list[Mapping[str, Any]] | None) -> tuple[AffinityTerm, ...]:
        try:
            return tuple(_affinity_term(self.namespace, t) for t in raw or [])
        except APIError as e:
            # upstream keeps such a pod in its cache with the broken terms dropped
            self.parse_error = str(e)
            return ()

    def _weighted(self, raw: list[Mapping[str, Any]] | None) -> tuple[WeightedAffinityTerm, ...]:
        try:
            return tuple(WeightedAffinityTerm(_affinity_term(self.namespace, t.get("podAffinityTerm") or {}),
                                              int(t.get("weight", 0))) for t in raw or [])
        except APIError as e:
            self.parse_error = str(e)
            return ()

    def with_node(self, pod: Mapping[str, Any], node_name: str) -> "PodInfo":
        """This PodInfo for `pod`, the same pod with spec.nodeName set (an assumed pod), without parsing it again."""
        twin = object.__new__(PodInfo)
        for slot in PodInfo.__slots__:
            setattr(twin, slot, getattr(self, slot))
        twin.pod, twin.node_name = pod, node_name
        return twin

    def __repr__(self) -> str:
        return f"PodInfo({self.namespace}/{self.name})"
