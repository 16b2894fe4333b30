"""Watch semantics: streaming initial events, bookmarks, timeouts and selector transitions."""
from __future__ import annotations

import time

MERGE = {"Content-Type": "application/merge-patch+json"}


def _cm(http, ns: str, name: str, labels: dict | None = None) -> dict:
    r = http.post(f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": {"name": name, "labels": labels or {}}})
    assert r.status_code == 201, r.text
    return r.json()


def test_send_initial_events_then_the_initial_events_end_bookmark(http, ns, watch):
    last = [_cm(http, ns, f"i{i}") for i in range(3)][-1]
    events = watch(http, f"/api/v1/namespaces/{ns}/configmaps",
                   {"sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan", "allowWatchBookmarks": "true",
                    "timeoutSeconds": "10"},
                   stop=lambda evs: evs[-1]["type"] == "BOOKMARK")
    assert [e["type"] for e in events] == ["ADDED", "ADDED", "ADDED", "BOOKMARK"]
    assert sorted(e["object"]["metadata"]["name"] for e in events[:3]) == ["i0", "i1", "i2"]
    assert all(e["object"]["kind"] == "ConfigMap" for e in events[:3])
    bookmark = events[-1]["object"]
    assert bookmark["kind"] == "ConfigMap" and bookmark["apiVersion"] == "v1"
    assert bookmark["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert set(bookmark) == {"kind", "apiVersion", "metadata"} and set(bookmark["metadata"]) == {"resourceVersion", "annotations"}
    assert int(bookmark["metadata"]["resourceVersion"]) >= int(last["metadata"]["resourceVersion"])


def test_send_initial_events_needs_not_older_than_and_bookmarks(http, ns):
    path = f"/api/v1/namespaces/{ns}/configmaps"
    r = http.get(path, params={"watch": "true", "sendInitialEvents": "true", "allowWatchBookmarks": "true"})
    assert r.status_code == 422, r.text
    assert r.json()["details"]["causes"][0]["field"] == "resourceVersionMatch"
    r = http.get(path, params={"watch": "true", "sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan"})
    assert r.status_code == 422, r.text
    assert r.json()["details"]["causes"][0]["field"] == "allowWatchBookmarks"


def test_timeout_ends_the_stream_after_a_bookmark_with_only_a_resource_version(http, ns, watch):
    rv = _cm(http, ns, "t")["metadata"]["resourceVersion"]
    started = time.monotonic()
    # upstream sends a bookmark 2 s before the deadline, so a re-watch resumes from a fresh revision
    events = watch(http, f"/api/v1/namespaces/{ns}/configmaps",
                   {"resourceVersion": rv, "allowWatchBookmarks": "true", "timeoutSeconds": "3"})
    elapsed = time.monotonic() - started
    assert 2.5 < elapsed < 6, elapsed
    assert [e["type"] for e in events] == ["BOOKMARK"]
    bookmark = events[0]["object"]
    assert set(bookmark) == {"kind", "apiVersion", "metadata"} and set(bookmark["metadata"]) == {"resourceVersion"}
    assert int(bookmark["metadata"]["resourceVersion"]) >= int(rv)


def test_no_bookmarks_unless_asked(http, ns, watch):
    rv = _cm(http, ns, "nb")["metadata"]["resourceVersion"]
    started = time.monotonic()
    events = watch(http, f"/api/v1/namespaces/{ns}/configmaps", {"resourceVersion": rv, "timeoutSeconds": "1"})
    assert events == [] and time.monotonic() - started < 3


def test_label_selector_watch_sees_objects_start_and_stop_matching(http, ns, watch):
    created = _cm(http, ns, "sel", {"tier": "back"})
    path = f"/api/v1/namespaces/{ns}/configmaps/sel"
    on = http.patch(path, json={"metadata": {"labels": {"tier": "front"}}}, headers=MERGE).json()
    off = http.patch(path, json={"metadata": {"labels": {"tier": "back"}}}, headers=MERGE).json()
    events = watch(http, f"/api/v1/namespaces/{ns}/configmaps",
                   {"resourceVersion": created["metadata"]["resourceVersion"], "labelSelector": "tier=front",
                    "timeoutSeconds": "5"}, stop=lambda evs: len(evs) == 2)
    assert [e["type"] for e in events] == ["ADDED", "DELETED"]
    assert events[0]["object"]["metadata"]["resourceVersion"] == on["metadata"]["resourceVersion"]
    # DELETED carries the last state that matched, at the revision that made it stop matching.
    assert events[1]["object"]["metadata"]["labels"] == {"tier": "front"}
    assert events[1]["object"]["metadata"]["resourceVersion"] == off["metadata"]["resourceVersion"]


def test_watch_without_resource_version_starts_with_the_current_objects(http, ns, watch):
    _cm(http, ns, "w1")
    events = watch(http, f"/api/v1/namespaces/{ns}/configmaps", {"timeoutSeconds": "5"}, stop=lambda evs: len(evs) == 1)
    assert events[0]["type"] == "ADDED" and events[0]["object"]["metadata"]["name"] == "w1"
