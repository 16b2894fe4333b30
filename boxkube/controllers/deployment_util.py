"""What the Deployment controller knows about Deployments and their ReplicaSets, without doing any I/O
(upstream pkg/controller/deployment/util/deployment_util.go and the pure parts of sync.go and progress.go).

Objects are the API's own JSON as plain dicts. Functions that change an
object change the copy they are given and say whether anything changed.
"""
from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from boxkube.api import jsonio
from boxkube.api.times import now_rfc3339, parse_time

Obj = dict[str, Any]

UNIQUE_LABEL = "pod-template-hash"          # apps.DefaultDeploymentUniqueLabelKey
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
ROLLBACK_TO = "deprecated.deployment.rollback.to"
# Annotations a ReplicaSet does not copy from its Deployment (and `rollout undo` keeps on the Deployment).
ANNOTATIONS_TO_SKIP = frozenset({LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS, ROLLBACK_TO})
# revision-history is cut from the front to stay this short (upstream maxRevHistoryLengthInChars).
MAX_REVISION_HISTORY_CHARS = 2000
# progressDeadlineSeconds and revisionHistoryLimit of MaxInt32 mean "no limit".
_MAX_INT32 = 2**31 - 1

PROGRESSING, AVAILABLE, REPLICA_FAILURE = "Progressing", "Available", "ReplicaFailure"
REPLICA_SET_UPDATED = "ReplicaSetUpdated"
FAILED_RS_CREATE = "ReplicaSetCreateError"
NEW_REPLICA_SET = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"


# -- fields ----------------------------------------------------------------------

def meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def status(obj: Obj | None) -> Obj:
    return (obj or {}).get("status") or {}


def replicas(obj: Obj) -> int:
    """spec.replicas (the API server defaults it to 1)."""
    value = spec(obj).get("replicas")
    return 1 if value is None else int(value)


def status_count(obj: Obj | None, field: str) -> int:
    return int(status(obj).get(field) or 0)


def annotations(obj: Obj) -> dict[str, str]:
    return meta(obj).get("annotations") or {}


def is_rolling_update(d: Obj) -> bool:
    return (spec(d).get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"


def is_recreate(d: Obj) -> bool:
    return (spec(d).get("strategy") or {}).get("type") == "Recreate"


def has_progress_deadline(d: Obj) -> bool:
    value = spec(d).get("progressDeadlineSeconds")
    return value is not None and value != _MAX_INT32


def has_revision_history_limit(d: Obj) -> bool:
    value = spec(d).get("revisionHistoryLimit")
    return value is not None and value != _MAX_INT32


# -- maxSurge and maxUnavailable ----------------------------------------------------

def scaled_value(value: int | str | None, total: int, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent: an int as is, "N%" of `total` rounded up or down."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    if not value.endswith("%"):
        raise ValueError("invalid value for IntOrString: invalid type: string is not a percentage")
    try:
        percent = int(value[:-1])
    except ValueError:
        raise ValueError(f'invalid value "{value}": strconv.Atoi: parsing "{value[:-1]}": invalid syntax') from None
    scaled = percent * total / 100
    return math.ceil(scaled) if round_up else math.floor(scaled)


def resolve_fenceposts(max_surge: int | str | None, max_unavailable: int | str | None, desired: int) -> tuple[int, int]:
    """(surge, unavailable): surge rounds up, unavailable down; both zero would never make progress,
    so unavailable becomes 1 (surge might be refused by a quota)."""
    surge = scaled_value(max_surge, desired, True)
    unavailable = scaled_value(max_unavailable, desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def _rolling(d: Obj) -> Obj:
    return (spec(d).get("strategy") or {}).get("rollingUpdate") or {}


def max_surge(d: Obj) -> int:
    if not is_rolling_update(d):
        return 0
    return resolve_fenceposts(_rolling(d).get("maxSurge"), _rolling(d).get("maxUnavailable"), replicas(d))[0]


def max_unavailable(d: Obj) -> int:
    if not is_rolling_update(d) or replicas(d) == 0:
        return 0
    unavailable = resolve_fenceposts(_rolling(d).get("maxSurge"), _rolling(d).get("maxUnavailable"), replicas(d))[1]
    return min(unavailable, replicas(d))


# -- templates and the pod-template-hash -----------------------------------------------

_SAFE_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"


def safe_encode_string(s: str) -> str:
    """rand.SafeEncodeString: every character mapped to a consonant or digit, so that no
    generated name spells a word."""
    return "".join(_SAFE_ALPHANUMS[b % len(_SAFE_ALPHANUMS)] for b in s.encode())


def _fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def compute_hash(template: Obj, collision_count: int | None) -> str:
    """The pod-template-hash: FNV-32a over the template written deterministically (sorted JSON),
    then collisionCount as upstream appends it (uint32 little-endian in 8 bytes), rendered as
    SafeEncodeString of the decimal sum. A collision is resolved by bumping collisionCount."""
    data = json.dumps(_normalised(template), sort_keys=True, separators=(",", ":")).encode()
    if collision_count is not None:
        data += struct.pack("<I", collision_count & 0xFFFFFFFF) + b"\0\0\0\0"
    return safe_encode_string(str(_fnv32a(data)))


def _normalised(value: Any) -> Any:
    """Nulls, empty maps and empty lists dropped: Go's semantic equality treats nil and empty alike."""
    if isinstance(value, dict):
        out = {k: _normalised(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_normalised(v) for v in value]
    return value


def template_without_hash(template: Obj) -> Obj:
    out = jsonio.copy(template or {})
    labels = (out.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(UNIQUE_LABEL, None)
    return out


def equal_ignore_hash(t1: Obj, t2: Obj) -> bool:
    """Whether two pod templates are the same but for their pod-template-hash label."""
    return _normalised(template_without_hash(t1)) == _normalised(template_without_hash(t2))


# -- ReplicaSets of a Deployment -------------------------------------------------------

def by_creation(rs: Obj) -> tuple[str, str]:
    """ReplicaSetsByCreationTimestamp: oldest first, the name breaking ties."""
    return meta(rs).get("creationTimestamp") or "", meta(rs).get("name", "")


def sorted_by_creation(rss: Iterable[Obj]) -> list[Obj]:
    return sorted(rss, key=by_creation)


def uid(obj: Obj | None) -> str:
    return meta(obj or {}).get("uid", "")


def find_new_replica_set(d: Obj, rss: list[Obj]) -> Obj | None:
    """The ReplicaSet whose template is the Deployment's; the oldest if there are several."""
    for rs in sorted_by_creation(rss):
        if equal_ignore_hash(spec(rs).get("template") or {}, spec(d).get("template") or {}):
            return rs
    return None


def find_old_replica_sets(d: Obj, rss: list[Obj]) -> list[Obj]:
    """Every ReplicaSet but the new one."""
    new = find_new_replica_set(d, rss)
    return [rs for rs in rss if new is None or uid(rs) != uid(new)]


def active(rss: Iterable[Obj | None]) -> list[Obj]:
    """FilterActiveReplicaSets: those with replicas wanted."""
    return [rs for rs in rss if rs is not None and replicas(rs) > 0]


def total_replicas(rss: Iterable[Obj | None]) -> int:
    """GetReplicaCountForReplicaSets: the sum of spec.replicas."""
    return sum(replicas(rs) for rs in rss if rs is not None)


def total_status(rss: Iterable[Obj | None], field: str) -> int:
    return sum(status_count(rs, field) for rs in rss if rs is not None)


def terminating_replicas(rss: Iterable[Obj | None]) -> int | None:
    """GetTerminatingReplicaCountForReplicaSets: None when a ReplicaSet its controller has synced
    does not report terminatingReplicas (the sum would be a guess)."""
    total = 0
    for rs in rss:
        if rs is None:
            continue
        value = status(rs).get("terminatingReplicas")
        if value is None:
            if status_count(rs, "observedGeneration") == 0:
                continue            # never synced: it has no pods to count yet
            return None
        total += int(value)
    return total


def find_active_or_latest(new_rs: Obj | None, old_rss: list[Obj]) -> Obj | None:
    """The only active ReplicaSet, the newest one if none is active, None if several are."""
    if new_rs is None and not old_rss:
        return None
    newest_first = sorted(old_rss, key=by_creation, reverse=True)
    live = active([*newest_first, new_rs])
    if not live:
        return new_rs if new_rs is not None else newest_first[0]
    return live[0] if len(live) == 1 else None


def is_saturated(d: Obj, rs: Obj | None) -> bool:
    """The new ReplicaSet runs all of the Deployment's replicas, all available, and knows it."""
    if rs is None:
        return False
    desired = _annotation_int(rs, DESIRED_REPLICAS)
    return (replicas(rs) == replicas(d) and desired == replicas(d)
            and status_count(rs, "availableReplicas") == replicas(d))


# -- annotations -----------------------------------------------------------------------

def _annotation_int(rs: Obj, key: str) -> int | None:
    value = annotations(rs).get(key)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    return number if 0 <= number <= _MAX_INT32 else None


def desired_replicas_annotation(rs: Obj) -> int | None:
    return _annotation_int(rs, DESIRED_REPLICAS)


def max_replicas_annotation(rs: Obj) -> int | None:
    return _annotation_int(rs, MAX_REPLICAS)


def revision(obj: Obj) -> int:
    """The revision annotation (0 without one); ValueError when it is not a number."""
    value = annotations(obj).get(REVISION)
    return 0 if value is None else int(value)


def max_revision(rss: Iterable[Obj]) -> int:
    best = 0
    for rs in rss:
        try:
            best = max(best, revision(rs))
        except ValueError:
            continue          # an unreadable revision does not count
    return best


def _set_annotation(obj: Obj, key: str, value: str) -> bool:
    anns = obj.setdefault("metadata", {}).setdefault("annotations", {})
    if anns.get(key) == value:
        return False
    anns[key] = value
    return True


def replicas_annotations_need_update(rs: Obj, desired: int, maximum: int) -> bool:
    anns = annotations(rs)
    return anns.get(DESIRED_REPLICAS) != str(desired) or anns.get(MAX_REPLICAS) != str(maximum)


def set_replicas_annotations(rs: Obj, desired: int, maximum: int) -> bool:
    changed = _set_annotation(rs, DESIRED_REPLICAS, str(desired))
    return _set_annotation(rs, MAX_REPLICAS, str(maximum)) or changed


def copy_deployment_annotations(d: Obj, rs: Obj) -> bool:
    """The Deployment's annotations onto its new ReplicaSet, but for the revision ones (the
    ReplicaSet's revision is the reliable one) and kubectl's last-applied configuration."""
    changed = False
    for key, value in annotations(d).items():
        if key not in ANNOTATIONS_TO_SKIP:
            changed = _set_annotation(rs, key, value) or changed
    return changed


def set_new_replica_set_annotations(d: Obj, rs: Obj, new_revision: int, exists: bool) -> bool:
    """Copy the Deployment's annotations, raise the revision to `new_revision` (never lower it: old
    ReplicaSets may have been deleted since), and keep a rolled-back-to ReplicaSet's earlier
    revisions in revision-history. A ReplicaSet about to be created also gets the replicas annotations."""
    changed = copy_deployment_annotations(d, rs)
    old = annotations(rs).get(REVISION)
    try:
        old_revision = int(old) if old else 0
    except ValueError:
        return False
    if old_revision < new_revision:
        changed = _set_annotation(rs, REVISION, str(new_revision)) or changed
        if old:
            _append_revision_history(rs, old)
            changed = True
    if not exists:
        changed = set_replicas_annotations(rs, replicas(d), replicas(d) + max_surge(d)) or changed
    return changed


def _append_revision_history(rs: Obj, old_revision: str) -> None:
    history = annotations(rs).get(REVISION_HISTORY, "")
    if not history:
        _set_annotation(rs, REVISION_HISTORY, old_revision)
        return
    revisions = history.split(",")
    length = len(history) + len(old_revision) + 1
    start = 0
    while length > MAX_REVISION_HISTORY_CHARS and start < len(revisions):
        length -= len(revisions[start]) + 1
        start += 1
    if length <= MAX_REVISION_HISTORY_CHARS:
        _set_annotation(rs, REVISION_HISTORY, ",".join([*revisions[start:], old_revision]))


# -- conditions ------------------------------------------------------------------------

def new_condition(kind: str, cond_status: str, reason: str, message: str, now: str | None = None) -> Obj:
    at = now or now_rfc3339()
    return {"type": kind, "status": cond_status, "lastUpdateTime": at, "lastTransitionTime": at,
            "reason": reason, "message": message}


def get_condition(st: Obj, kind: str) -> Obj | None:
    for c in st.get("conditions") or []:
        if c.get("type") == kind:
            return c
    return None


def set_condition(st: Obj, condition: Obj) -> None:
    """Add or replace a condition; the same status and reason is no change at all, the same
    status keeps its lastTransitionTime."""
    current = get_condition(st, condition["type"])
    if current is not None and current.get("status") == condition["status"] \
            and current.get("reason") == condition["reason"]:
        return
    if current is not None and current.get("status") == condition["status"]:
        condition = {**condition, "lastTransitionTime": current.get("lastTransitionTime")}
    st["conditions"] = [*(c for c in st.get("conditions") or [] if c.get("type") != condition["type"]), condition]


def remove_condition(st: Obj, kind: str) -> None:
    if "conditions" in st:
        st["conditions"] = [c for c in st["conditions"] if c.get("type") != kind]


def replica_set_condition(c: Obj) -> Obj:
    """A ReplicaSet's condition as the Deployment reports it."""
    return {"type": c.get("type"), "status": c.get("status"), "lastUpdateTime": c.get("lastTransitionTime"),
            "lastTransitionTime": c.get("lastTransitionTime"), "reason": c.get("reason"), "message": c.get("message")}


# -- status ------------------------------------------------------------------------------

def calculate_status(all_rss: list[Obj | None], new_rs: Obj | None, d: Obj, now: str | None = None) -> Obj:
    """The Deployment's status from its ReplicaSets (sync.go calculateStatus); zero counts are left
    out, as the Go types' omitempty does."""
    available = total_status(all_rss, "availableReplicas")
    unavailable = max(total_replicas(all_rss) - available, 0)
    counts = {
        "observedGeneration": meta(d).get("generation", 0),
        "replicas": total_status(all_rss, "replicas"),
        "updatedReplicas": status_count(new_rs, "replicas"),
        "readyReplicas": total_status(all_rss, "readyReplicas"),
        "availableReplicas": available,
        "unavailableReplicas": unavailable,
    }
    new: Obj = {k: v for k, v in counts.items() if v}
    terminating = terminating_replicas(all_rss)
    if terminating is not None:
        new["terminatingReplicas"] = terminating
    if status(d).get("collisionCount") is not None:
        new["collisionCount"] = status(d)["collisionCount"]
    new["conditions"] = jsonio.copy(status(d).get("conditions") or [])
    if available >= replicas(d) - max_unavailable(d):
        set_condition(new, new_condition(AVAILABLE, "True", MIN_AVAILABLE, "Deployment has minimum availability.", now))
    else:
        set_condition(new, new_condition(AVAILABLE, "False", MIN_UNAVAILABLE,
                                         "Deployment does not have minimum availability.", now))
    return new


def deployment_complete(d: Obj, st: Obj) -> bool:
    """All replicas updated and available, no old ones left, and this generation observed."""
    want = replicas(d)
    return (st.get("updatedReplicas", 0) == want and st.get("replicas", 0) == want
            and st.get("availableReplicas", 0) == want
            and st.get("observedGeneration", 0) >= meta(d).get("generation", 0))


def deployment_progressing(d: Obj, new: Obj) -> bool:
    """More updated, ready or available pods, or fewer old ones, than the status recorded."""
    old = status(d)
    old_old = old.get("replicas", 0) - old.get("updatedReplicas", 0)
    new_old = new.get("replicas", 0) - new.get("updatedReplicas", 0)
    return (new.get("updatedReplicas", 0) > old.get("updatedReplicas", 0) or new_old < old_old
            or new.get("readyReplicas", 0) > old.get("readyReplicas", 0)
            or new.get("availableReplicas", 0) > old.get("availableReplicas", 0))


def _deadline(d: Obj, condition: Obj) -> datetime | None:
    since = parse_time(condition.get("lastUpdateTime"))
    return None if since is None else since + timedelta(seconds=spec(d)["progressDeadlineSeconds"])


def deployment_timed_out(d: Obj, new: Obj, now: datetime) -> bool:
    """No progress reported for progressDeadlineSeconds since the Progressing condition's last update."""
    if not has_progress_deadline(d):
        return False
    condition = get_condition(new, PROGRESSING)
    if condition is None or condition.get("reason") == NEW_RS_AVAILABLE:
        return False
    if condition.get("reason") == TIMED_OUT:
        return True
    deadline = _deadline(d, condition)
    return deadline is not None and deadline < now


def rollout_status(all_rss: list[Obj | None], new_rs: Obj | None, d: Obj, now: datetime | None = None) -> Obj:
    """The status with the Progressing condition estimated and ReplicaSet failures carried over
    (progress.go syncRolloutStatus)."""
    now = now or datetime.now(timezone.utc)
    stamp = now_rfc3339(now)
    new = calculate_status(all_rss, new_rs, d, stamp)
    if not has_progress_deadline(d):
        remove_condition(new, PROGRESSING)
    current = get_condition(status(d), PROGRESSING)
    complete = (new.get("replicas", 0) == new.get("updatedReplicas", 0) and current is not None
                and current.get("reason") == NEW_RS_AVAILABLE)
    if has_progress_deadline(d) and not complete:
        _estimate_progress(d, new, new_rs, current, now, stamp)
    failures = _replica_failures(all_rss, new_rs)
    if failures:
        set_condition(new, failures[0])
    else:
        remove_condition(new, REPLICA_FAILURE)
    return new


def _subject(d: Obj, new_rs: Obj | None) -> str:
    return f'ReplicaSet "{meta(new_rs)["name"]}"' if new_rs is not None else f'Deployment "{meta(d)["name"]}"'


def _estimate_progress(d: Obj, new: Obj, new_rs: Obj | None, current: Obj | None, now: datetime, stamp: str) -> None:
    subject = _subject(d, new_rs)
    if deployment_complete(d, new):
        set_condition(new, new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE,
                                         f"{subject} has successfully progressed.", stamp))
    elif deployment_progressing(d, new):
        # Progress moves lastUpdateTime even with the same reason, which set_condition would not do.
        condition = new_condition(PROGRESSING, "True", REPLICA_SET_UPDATED, f"{subject} is progressing.", stamp)
        if current is not None:
            if current.get("status") == "True":
                condition["lastTransitionTime"] = current.get("lastTransitionTime")
            remove_condition(new, PROGRESSING)
        set_condition(new, condition)
    elif deployment_timed_out(d, new, now):
        set_condition(new, new_condition(PROGRESSING, "False", TIMED_OUT,
                                         f"{subject} has timed out progressing.", stamp))


def _replica_failures(all_rss: list[Obj | None], new_rs: Obj | None) -> list[Obj]:
    """ReplicaFailure conditions of the new ReplicaSet, else of any ReplicaSet."""
    def failures(rs: Obj | None) -> list[Obj]:
        return [replica_set_condition(c) for c in status(rs).get("conditions") or [] if c.get("type") == REPLICA_FAILURE]
    return failures(new_rs) or [c for rs in all_rss for c in failures(rs)]


def progress_check_delay(d: Obj, new: Obj, now: datetime | None = None) -> float | None:
    """Seconds until a stuck rollout's progress deadline passes (when to look again), None when
    there is nothing to check (progress.go requeueStuckDeployment)."""
    current = get_condition(status(d), PROGRESSING)
    if not has_progress_deadline(d) or current is None:
        return None
    if deployment_complete(d, new) or current.get("reason") == TIMED_OUT:
        return None
    deadline = _deadline(d, current)
    if deadline is None:
        return None
    return (deadline - (now or datetime.now(timezone.utc))).total_seconds()

