"""NodeAffinity: spec.nodeSelector and required node affinity filter; preferred terms score.

Node selector terms follow component-helpers' nodeaffinity: terms are ORed,
a term's matchExpressions and matchFields are ANDed, an empty or invalid term
matches nothing, matchFields knows only metadata.name with In/NotIn.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from boxkube.apiserver.selectors import Operator, Requirement, requirement_or_none
from boxkube.scheduler.framework import (
    SKIP, CycleState, NodeInfo, Snapshot, Status, default_normalize_score, unresolvable,
)
from boxkube.scheduler.podinfo import PodInfo

NAME = "NodeAffinity"
REASON = "node(s) didn't match Pod's node affinity/selector"

_OPERATORS = {"In": Operator.IN, "NotIn": Operator.NOT_IN, "Exists": Operator.EXISTS,
              "DoesNotExist": Operator.DOES_NOT_EXIST, "Gt": Operator.GREATER_THAN, "Lt": Operator.LESS_THAN}
_NODE_NAME_FIELD = "metadata.name"


@dataclass(frozen=True)
class NodeSelectorTerm:
    """A parsed NodeSelectorTerm; `valid` False (or nothing to match) means it matches no node."""

    expressions: tuple[Requirement, ...]
    fields: tuple[Requirement, ...]
    valid: bool

    def matches(self, node: NodeInfo) -> bool:
        if not self.valid or not (self.expressions or self.fields):
            return False
        if not all(r.matches(node.labels) for r in self.expressions):
            return False
        return all(r.matches({_NODE_NAME_FIELD: node.name}) for r in self.fields)


def _expression(expr: Mapping[str, Any]) -> Requirement | None:
    op = _OPERATORS.get(expr.get("operator", ""))
    return None if op is None else requirement_or_none(expr.get("key", ""), op, expr.get("values") or [])


def _field(expr: Mapping[str, Any]) -> Requirement | None:
    # nodeSelectorRequirementsAsFieldSelector: one value, In or NotIn
    values = expr.get("values") or []
    op = {"In": Operator.EQUALS, "NotIn": Operator.NOT_EQUALS}.get(expr.get("operator", ""))
    if op is None or len(values) != 1:
        return None
    return Requirement(expr.get("key", ""), op, (values[0],))


def parse_term(term: Mapping[str, Any]) -> NodeSelectorTerm:
    expressions = [_expression(e) for e in term.get("matchExpressions") or []]
    fields = [_field(e) for e in term.get("matchFields") or []]
    valid = None not in expressions and None not in fields
    return NodeSelectorTerm(tuple(r for r in expressions if r), tuple(r for r in fields if r), valid)


class RequiredNodeAffinity:
    """nodeaffinity.GetRequiredNodeAffinity: nodeSelector AND any required term."""

    def __init__(self, pod: Mapping[str, Any]):
        spec = pod.get("spec") or {}
        self.node_selector: Mapping[str, str] = spec.get("nodeSelector") or {}
        required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution")
        self.terms: tuple[NodeSelectorTerm, ...] | None = None
        if required is not None:
            self.terms = tuple(parse_term(t) for t in required.get("nodeSelectorTerms") or [])

    @property
    def empty(self) -> bool:
        return not self.node_selector and self.terms is None

    def matches(self, node: NodeInfo) -> bool:
        labels = node.labels
        if any(labels.get(k) != v for k, v in self.node_selector.items()):
            return False
        return self.terms is None or any(t.matches(node) for t in self.terms)


class NodeAffinity:
    name = NAME

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status | None:
        required = RequiredNodeAffinity(pod.pod)
        if required.empty:
            return SKIP
        state[NAME] = required
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        return None if state[NAME].matches(node) else unresolvable(REASON)

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot,
                  nodes: Sequence[NodeInfo]) -> Status | None:
        preferred = (((pod.pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}).get(
            "preferredDuringSchedulingIgnoredDuringExecution") or []
        weighted = [(int(p.get("weight", 0)), parse_term(p.get("preference") or {})) for p in preferred]
        weighted = [(w, t) for w, t in weighted if w]
        if not weighted:
            return SKIP
        state[NAME + "/preferred"] = weighted
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        return sum(w for w, term in state[NAME + "/preferred"] if term.matches(node))

    def normalize_score(self, state: CycleState, pod: PodInfo, scores: dict[str, int]) -> None:
        default_normalize_score(scores)
