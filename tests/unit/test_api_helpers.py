"""Shared API helpers: pod readiness/availability/activity and timestamps."""
from datetime import datetime, timezone

from boxkube.api import pods
from boxkube.api.times import now_rfc3339, parse_time


def _pod(ready: str | None = None, since: str = "2026-12-01T10:00:00Z", phase: str = "Running", deleting=False):
    conditions = [{"type": "Ready", "status": ready, "lastTransitionTime": since}] if ready else []
    meta = {"name": "p", **({"deletionTimestamp": since} if deleting else {})}
    return {"metadata": meta, "status": {"phase": phase, "conditions": conditions}}


def test_ready_and_available_after_min_ready_seconds():
    now = datetime(2026, 12, 1, 10, 0, 30, tzinfo=timezone.utc)
    assert not pods.is_ready(_pod()) and not pods.is_ready(_pod("False"))
    assert pods.is_ready(_pod("True"))
    assert pods.is_available(_pod("True"), 0, now)
    assert pods.is_available(_pod("True"), 30, now)
    assert not pods.is_available(_pod("True"), 31, now)
    assert not pods.is_available(_pod("False"), 0, now)


def test_active_excludes_finished_and_deleting_pods():
    assert pods.is_active(_pod("True"))
    assert not pods.is_active(_pod(phase="Succeeded")) and not pods.is_active(_pod(phase="Failed"))
    assert not pods.is_active(_pod("True", deleting=True))


def test_times_round_trip():
    t = datetime(2026, 12, 1, 10, 0, 30, 123456, tzinfo=timezone.utc)
    assert now_rfc3339(t) == "2026-12-01T10:00:30Z"
    assert parse_time("2026-12-01T10:00:30Z") == t.replace(microsecond=0)
    assert parse_time("") is None and parse_time("soon") is None and parse_time(3) is None


def test_qos_class_compares_quantities_and_only_cpu_and_memory():
    def spec(**resources):
        return {"containers": [{"name": "c", "resources": resources}]}
    assert pods.qos_class(spec()) == "BestEffort"
    assert pods.qos_class(spec(requests={"ephemeral-storage": "1Gi"})) == "BestEffort"
    assert pods.qos_class(spec(requests={"cpu": "100m"})) == "Burstable"
    assert pods.qos_class(spec(limits={"cpu": "1", "memory": "1Gi"})) == "Guaranteed"
    assert pods.qos_class(spec(requests={"cpu": "1000m", "memory": "1Gi"}, limits={"cpu": "1", "memory": "1024Mi"})) \
        == "Guaranteed"
    assert pods.qos_class(spec(requests={"cpu": "1", "memory": "1Gi"}, limits={"cpu": "2", "memory": "1Gi"})) \
        == "Burstable"
