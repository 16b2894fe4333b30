"""How many replicas each ReplicaSet of a Deployment should have next: the rollout arithmetic of
upstream's rolling.go, sync.go (scale, cleanupDeployment) and deployment_util.go, as pure functions
that return plans (`Scale` steps) for the controller to write — and for tests to simulate.
"""
from __future__ import annotations

import math
from typing import NamedTuple

from boxkube.api import jsonio
from boxkube.controllers.deployment_util import (
    Obj,
    active,
    by_creation,
    desired_replicas_annotation,
    find_active_or_latest,
    has_revision_history_limit,
    is_recreate,
    is_rolling_update,
    is_saturated,
    max_replicas_annotation,
    max_surge,
    max_unavailable,
    meta,
    replicas,
    revision,
    scaled_value,
    set_replicas_annotations,
    sorted_by_creation,
    spec,
    status_count,
    total_replicas,
    uid,
)


class Scale(NamedTuple):
    """Set `rs` to `replicas`. `always`: write the replicas annotations even if the size stays
    (proportional scaling does, so every ReplicaSet learns the new deployment size)."""
    rs: Obj
    replicas: int
    always: bool = False


def scaled(rs: Obj, size: int, d: Obj) -> Obj:
    """The ReplicaSet as written by a scale: its size and the Deployment's desired/max replicas."""
    out = jsonio.copy(rs)
    out.setdefault("spec", {})["replicas"] = size
    set_replicas_annotations(out, replicas(d), replicas(d) + max_surge(d))
    return out


# -- the new ReplicaSet ----------------------------------------------------------------

def new_rs_new_replicas(d: Obj, all_rss: list[Obj | None], new_rs: Obj) -> int:
    """NewRSNewReplicas: Recreate wants all at once; RollingUpdate grows the new ReplicaSet as far
    as replicas + maxSurge allows, never past the Deployment's replicas."""
    if is_recreate(d):
        return replicas(d)
    if not is_rolling_update(d):
        raise ValueError(f"deployment type {spec(d).get('strategy', {}).get('type')} isn't supported")
    surge = scaled_value(((spec(d).get("strategy") or {}).get("rollingUpdate") or {}).get("maxSurge"), replicas(d), True)
    current = total_replicas(all_rss)
    max_total = replicas(d) + surge
    if current >= max_total:
        return replicas(new_rs)
    return replicas(new_rs) + min(max_total - current, replicas(d) - replicas(new_rs))


def reconcile_new_replica_set(d: Obj, all_rss: list[Obj | None], new_rs: Obj) -> int:
    """The new ReplicaSet's next size in a rolling update (its current size: nothing to do)."""
    if replicas(new_rs) >= replicas(d):
        return replicas(d)
    return new_rs_new_replicas(d, all_rss, new_rs)


# -- old ReplicaSets -------------------------------------------------------------------

def reconcile_old_replica_sets(d: Obj, all_rss: list[Obj | None], old_rss: list[Obj], new_rs: Obj) -> list[Scale]:
    """Scale-downs of the (active) old ReplicaSets, oldest first: first their unavailable pods, which
    cost nothing, then available ones while more than replicas - maxUnavailable stay available."""
    if total_replicas(old_rss) == 0:
        return []
    min_available = replicas(d) - max_unavailable(d)
    new_unavailable = replicas(new_rs) - status_count(new_rs, "availableReplicas")
    max_scaled_down = total_replicas(all_rss) - min_available - new_unavailable
    if max_scaled_down <= 0:
        return []
    olds = sorted_by_creation(old_rss)
    sizes = {uid(rs): replicas(rs) for rs in olds}
    plan = _cleanup_unhealthy(olds, sizes, max_scaled_down)
    return plan + _scale_down_available(olds, sizes, _available_after_scaling(all_rss, sizes) - min_available)


def _available_after_scaling(all_rss: list[Obj | None], sizes: dict[str, int]) -> int:
    """Available pods, not counting those a ReplicaSet is about to remove (beyond its size: the
    unavailable go first). Upstream sums status.availableReplicas as is; while a scaled-down
    ReplicaSet's status lags, that counts pods on their way out and can take availability below
    replicas - maxUnavailable (found by the rolling-update property test)."""
    return sum(min(status_count(rs, "availableReplicas"), sizes.get(uid(rs), replicas(rs)))
               for rs in all_rss if rs is not None)


def _cleanup_unhealthy(olds: list[Obj], sizes: dict[str, int], budget: int) -> list[Scale]:
    plan, done = [], 0
    for rs in olds:
        if done >= budget:
            break
        size, available = sizes[uid(rs)], status_count(rs, "availableReplicas")
        # available > size: the status still counts pods of a scale-down not carried out yet; there is
        # nothing unhealthy to remove (upstream refuses the "scale-down" to a larger size it would make)
        if size == 0 or size <= available:
            continue
        down = min(budget - done, size - available)
        sizes[uid(rs)] = size - down
        plan.append(Scale(rs, size - down))
        done += down
    return plan


def _scale_down_available(olds: list[Obj], sizes: dict[str, int], budget: int) -> list[Scale]:
    plan, done = [], 0
    for rs in olds:
        if done >= budget:
            break
        size = sizes[uid(rs)]
        if size == 0:
            continue
        down = min(size, budget - done)
        sizes[uid(rs)] = size - down
        plan.append(Scale(rs, size - down))
        done += down
    return plan


# -- scaling the Deployment (sync.go scale) ----------------------------------------------

def is_scaling_event(d: Obj, new_rs: Obj | None, old_rss: list[Obj]) -> bool:
    """An active ReplicaSet was sized for another Deployment size: spec.replicas changed."""
    for rs in active([*old_rss, new_rs]):
        desired = desired_replicas_annotation(rs)
        if desired is not None and desired != replicas(d):
            return True
    return False


def scale_plan(d: Obj, new_rs: Obj | None, old_rss: list[Obj]) -> list[Scale]:
    """Sizes after the Deployment's replicas changed: one active ReplicaSet takes them all; a saturated
    new one leaves the old ones nothing; else (rolling) the change is shared out in proportion."""
    latest = find_active_or_latest(new_rs, old_rss)
    if latest is not None:
        return [] if replicas(latest) == replicas(d) else [Scale(latest, replicas(d))]
    if is_saturated(d, new_rs):
        return [Scale(rs, 0) for rs in active(old_rss) if replicas(rs) != 0]
    if not is_rolling_update(d):
        return []
    return proportional_plan(d, active([*old_rss, new_rs]))


def proportional_plan(d: Obj, rss: list[Obj]) -> list[Scale]:
    """Add (or remove) replicas + maxSurge - current to the active ReplicaSets in proportion to their
    sizes, largest first (newer first when growing, older first when shrinking); the rounding
    leftover goes to the first."""
    allowed = replicas(d) + max_surge(d) if replicas(d) > 0 else 0
    to_add = allowed - total_replicas(rss)
    ordered = sorted(rss, key=by_creation, reverse=to_add > 0)
    ordered.sort(key=lambda rs: -replicas(rs))
    sizes, added = [], 0
    for rs in ordered:
        part = replica_set_proportion(rs, d, to_add, added)
        sizes.append(replicas(rs) + part)
        added += part
    if ordered and to_add:
        sizes[0] = max(sizes[0] + to_add - added, 0)
    return [Scale(rs, size, always=True) for rs, size in zip(ordered, sizes)]


def replica_set_proportion(rs: Obj, d: Obj, to_add: int, added: int) -> int:
    """This ReplicaSet's share of `to_add`, never more than what is left of it."""
    if replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = replica_set_fraction(rs, d)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def replica_set_fraction(rs: Obj, d: Obj) -> int:
    """How much this ReplicaSet grows (or shrinks) when the Deployment's max size goes from the one
    it was sized for (its max-replicas annotation) to the current one, rounded half away from zero."""
    if replicas(d) == 0:
        return -replicas(rs)
    deployment_max = replicas(d) + max_surge(d)
    before = max_replicas_annotation(rs) or status_count(d, "replicas")
    if before == 0:
        return 0
    return math.floor(replicas(rs) * deployment_max / before + 0.5) - replicas(rs)


# -- history ---------------------------------------------------------------------------

def _revision_key(rs: Obj) -> tuple[int, tuple[str, str]]:
    try:
        return revision(rs), by_creation(rs)
    except ValueError:
        return -1, by_creation(rs)


def history_to_delete(d: Obj, old_rss: list[Obj]) -> list[Obj]:
    """Old ReplicaSets past revisionHistoryLimit, oldest revision first, that are idle: no replicas
    wanted or left, and their latest spec seen by their controller."""
    if not has_revision_history_limit(d):
        return []
    alive = [rs for rs in old_rss if not meta(rs).get("deletionTimestamp")]
    excess = len(alive) - spec(d)["revisionHistoryLimit"]
    if excess <= 0:
        return []
    return [rs for rs in sorted(alive, key=_revision_key)[:excess]
            if status_count(rs, "replicas") == 0 and replicas(rs) == 0
            and meta(rs).get("generation", 0) <= status_count(rs, "observedGeneration")]
