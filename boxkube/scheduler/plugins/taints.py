"""TaintToleration: a node's NoSchedule/NoExecute taints must be tolerated; fewer untolerated
PreferNoSchedule taints score higher. Also the toleration matching other plugins share."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from boxkube.scheduler.framework import (
    CycleState, NodeInfo, Snapshot, Status, default_normalize_score, unresolvable,
)
from boxkube.scheduler.podinfo import PodInfo

Taint = Mapping[str, Any]
Toleration = Mapping[str, Any]

NAME = "TaintToleration"
DO_NOT_SCHEDULE_EFFECTS = frozenset(("NoSchedule", "NoExecute"))


def tolerates(toleration: Toleration, taint: Taint) -> bool:
    """v1.Toleration.ToleratesTaint: empty effect/key are wildcards; Exists ignores the value."""
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("key") and toleration["key"] != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    return operator == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def tolerations_tolerate(tolerations: Iterable[Toleration], taint: Taint) -> bool:
    return any(tolerates(t, taint) for t in tolerations)


def find_untolerated_taint(taints: Iterable[Taint], tolerations: Sequence[Toleration],
                           effects: frozenset[str] = DO_NOT_SCHEDULE_EFFECTS) -> Taint | None:
    """FindMatchingUntoleratedTaint: the first taint with one of `effects` that no toleration covers."""
    for taint in taints:
        if taint.get("effect") in effects and not tolerations_tolerate(tolerations, taint):
            return taint
    return None


class TaintToleration:
    name = NAME

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if not node.taints:
            return None
        taint = find_untolerated_taint(node.taints, pod.tolerations)
        if taint is None:
            return None
        return unresolvable(f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}")

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot,
                  nodes: Sequence[NodeInfo]) -> Status | None:
        # only tolerations that can apply to PreferNoSchedule taints matter for the score
        state[NAME] = [t for t in pod.tolerations if t.get("effect") in (None, "", "PreferNoSchedule")]
        return None

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        return [self.score(state, pod, n) if n.taints else 0 for n in nodes]

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        if not node.taints:
            return 0
        tolerations = state[NAME]
        return sum(1 for taint in node.taints
                   if taint.get("effect") == "PreferNoSchedule" and not tolerations_tolerate(tolerations, taint))

    def normalize_score(self, state: CycleState, pod: PodInfo, scores: dict[str, int]) -> None:
        default_normalize_score(scores, reverse=True)
