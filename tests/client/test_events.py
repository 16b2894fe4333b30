"""The EventRecorder against the real API server: what `kubectl describe` and `get events` then show."""
from __future__ import annotations

from boxkube.client import resource
from boxkube.client.events import EventRecorder

CONFIGMAPS, EVENTS = resource("configmaps"), resource("events")


async def test_events_are_written_and_repeats_counted(client, ns, cluster):
    cm = await client.create(CONFIGMAPS, {"metadata": {"name": "target"}}, ns)
    recorder = EventRecorder(client, "test-controller", host="node-1")
    recorder.event(cm, "Normal", "Synced", "configured it")
    recorder.event(cm, "Warning", "Failed", "could not do it")
    recorder.event(cm, "Warning", "Failed", "could not do it")   # a repeat: the count goes up
    await recorder.close()

    events = sorted((await client.list(EVENTS, ns))["items"], key=lambda e: e["reason"])
    assert [(e["reason"], e["type"], e["count"]) for e in events] == [("Failed", "Warning", 2), ("Synced", "Normal", 1)]
    failed = events[0]
    assert failed["involvedObject"]["kind"] == "ConfigMap" and failed["involvedObject"]["uid"] == cm["metadata"]["uid"]
    assert failed["source"] == {"component": "test-controller", "host": "node-1"}
    assert failed["metadata"]["name"].startswith("target.")

    # The real kubectl reads them like any cluster's events, with the repeat count.
    shown = cluster.kubectl("get", "events", "-n", ns, "--field-selector", "reason=Failed").stdout
    assert "could not do it" in shown and "configmap/target" in shown


async def test_a_failed_event_is_logged_not_raised(client, caplog):
    recorder = EventRecorder(client, "test-controller")
    missing = {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "x", "namespace": "no-such-namespace"}}
    recorder.event(missing, "Normal", "Synced", "nowhere to go")
    await recorder.close()
    assert any("could not record event" in r.message for r in caplog.records)
