"""Past compaction: lists at an old revision and watches from one answer 410 Expired, as upstream."""
from __future__ import annotations

import time
import uuid

CMS = "/api/v1/namespaces/default/configmaps"


def _configmap(client, **data) -> dict:
    r = client.post(CMS, json={"metadata": {"name": f"c-{uuid.uuid4().hex[:8]}"}, "data": data})
    assert r.status_code == 201, r.text
    return r.json()


def _compacted_past(client, rv: str) -> dict:
    """Write, then wait until the server's Compactor has compacted beyond `rv`; the 410 it then gives."""
    _configmap(client, bump="1")          # a revision after rv, so a compaction can pass it
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = client.get(CMS, params={"resourceVersion": rv, "resourceVersionMatch": "Exact"})
        if r.status_code == 410:
            return r.json()
        assert r.status_code == 200, r.text
        _configmap(client, bump="1")
        time.sleep(0.2)
    raise AssertionError(f"revision {rv} was never compacted")


def test_exact_list_at_compacted_revision_is_410_expired(compacting):
    rv = _configmap(compacting, a="1")["metadata"]["resourceVersion"]
    status = _compacted_past(compacting, rv)
    # etcd3 store's interpretListError: an Exact list goes to etcd, which says ErrCompacted.
    assert status["kind"] == "Status" and status["status"] == "Failure"
    assert status["code"] == 410 and status["reason"] == "Expired"
    assert status["message"] == "The resourceVersion for the provided list is too old."


def test_continue_token_from_compacted_revision_is_410_with_a_fresh_token(compacting):
    _configmap(compacting, a="1")
    _configmap(compacting, a="2")
    first = compacting.get(CMS, params={"limit": 1})
    assert first.status_code == 200
    token = first.json()["metadata"]["continue"]
    _compacted_past(compacting, first.json()["metadata"]["resourceVersion"])
    r = compacting.get(CMS, params={"limit": 1, "continue": token})
    assert r.status_code == 410, r.text
    status = r.json()
    assert status["reason"] == "Expired"
    assert status["message"].startswith("The provided continue parameter is too old to display a consistent list result.")
    # Upstream hands back a token that continues at the newest revision (inconsistently, and says so).
    fresh = status["metadata"]["continue"]
    rest = compacting.get(CMS, params={"limit": 500, "continue": fresh})
    assert rest.status_code == 200, rest.text
    names = [i["metadata"]["name"] for i in rest.json()["items"]]
    assert names and first.json()["items"][0]["metadata"]["name"] not in names


def test_watch_from_compacted_revision_sends_a_410_error_event(compacting, watch):
    rv = _configmap(compacting, a="1")["metadata"]["resourceVersion"]
    _compacted_past(compacting, rv)
    # Upstream answers 200 and sends the 410 as the stream's one ERROR event, then ends it.
    events = watch(compacting, CMS, {"resourceVersion": rv, "timeoutSeconds": "5"})
    assert [e["type"] for e in events] == ["ERROR"]
    status = events[0]["object"]
    assert status["kind"] == "Status" and status["code"] == 410 and status["reason"] == "Expired"
    assert status["message"].startswith(f"too old resource version: {rv} (")


def test_watch_from_a_recent_revision_still_works_while_compacting(compacting, watch):
    created = _configmap(compacting, a="1")
    name = created["metadata"]["name"]
    r = compacting.patch(f"{CMS}/{name}", json={"data": {"a": "2"}},
                         headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200
    events = watch(compacting, CMS, {"resourceVersion": created["metadata"]["resourceVersion"],
                                     "fieldSelector": f"metadata.name={name}", "timeoutSeconds": "5"},
                   stop=lambda evs: bool(evs))
    assert events[0]["type"] == "MODIFIED" and events[0]["object"]["data"] == {"a": "2"}
