"""EventRecorder writing several events at once: bounded, and one object's events still one after the other."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from boxkube.client import resource
from boxkube.client.events import EventRecorder

CONFIGMAPS, EVENTS = resource("configmaps"), resource("events")


class SlowEvents:
    """The two calls a recorder makes, answered after a pause, with the writes in flight counted."""

    def __init__(self, pause: float = 0.02):
        self.pause = pause
        self.in_flight = self.peak = 0
        self.objects_in_flight: list[str] = []
        self.overlapped_one_object = False
        self.writes: list[tuple[str, str, Any]] = []     # (object, verb, count or message)
        self._names = 0

    async def _slow(self, obj: str) -> None:
        if obj in self.objects_in_flight:
            self.overlapped_one_object = True
        self.objects_in_flight.append(obj)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.pause)
        finally:
            self.in_flight -= 1
            self.objects_in_flight.remove(obj)

    async def create(self, rt, body: dict, namespace: str) -> dict:
        obj = body["involvedObject"]["name"]
        await self._slow(obj)
        self._names += 1
        self.writes.append((obj, "create", body["message"]))
        return {**body, "metadata": {**body["metadata"], "name": f"{obj}.{self._names}"}}

    async def patch(self, rt, name: str, patch: dict, namespace: str) -> dict:
        obj = name.split(".")[0]
        await self._slow(obj)
        self.writes.append((obj, "patch", patch["count"]))
        return {}


def thing(name: str) -> dict:
    return {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": name, "namespace": "ns", "uid": name}}


async def test_writes_are_bounded_and_each_objects_events_keep_their_order():
    api = SlowEvents()
    recorder = EventRecorder(api, "test", max_concurrent_writes=4)   # type: ignore[arg-type]
    for round_ in range(3):
        for i in range(10):
            recorder.event(thing(f"o{i}"), "Warning", "BackOff", "again")      # a repeat after the first round
            recorder.event(thing(f"o{i}"), "Normal", "Step", f"step {round_}")
    await recorder.close()

    assert api.peak == 4
    assert not api.overlapped_one_object
    for i in range(10):
        mine = [(verb, what) for obj, verb, what in api.writes if obj == f"o{i}"]
        # created once, then counted up 2, 3 — never a second Event for a repeat; the steps in order
        assert [w for w in mine if w[1] == "again" or w[0] == "patch"] == [("create", "again"), ("patch", 2),
                                                                              ("patch", 3)]
        assert [what for verb, what in mine if verb == "create" and what != "again"] == \
            ["step 0", "step 1", "step 2"]


async def test_one_at_a_time_by_default():
    api = SlowEvents(pause=0.005)
    recorder = EventRecorder(api, "test")   # type: ignore[arg-type]
    for i in range(6):
        recorder.event(thing(f"o{i}"), "Normal", "Step", "one")
    await recorder.close()
    assert api.peak == 1 and len(api.writes) == 6


async def test_flush_waits_for_events_queued_while_writing():
    api = SlowEvents()
    recorder = EventRecorder(api, "test", max_concurrent_writes=2)   # type: ignore[arg-type]
    recorder.event(thing("a"), "Normal", "First", "1")
    await asyncio.sleep(0.005)
    recorder.event(thing("a"), "Normal", "Second", "2")   # while a's first is being written
    recorder.event(thing("b"), "Normal", "First", "1")
    await recorder.flush()
    assert [(o, m) for o, _, m in api.writes if o == "a"] == [("a", "1"), ("a", "2")]
    assert len(api.writes) == 3
    await recorder.close()


async def test_an_event_right_after_a_flush_is_written():
    # the worker that wrote the first one has just finished: the second must get one of its own
    api = SlowEvents(pause=0.001)
    recorder = EventRecorder(api, "test")   # type: ignore[arg-type]
    recorder.event(thing("a"), "Normal", "First", "1")
    await recorder.flush()
    recorder.event(thing("b"), "Normal", "Second", "2")
    await asyncio.wait_for(recorder.flush(), 2)
    assert [o for o, _, _ in api.writes] == ["a", "b"]
    await recorder.close()


def test_the_bound_must_be_positive():
    with pytest.raises(ValueError):
        EventRecorder(None, "test", max_concurrent_writes=0)   # type: ignore[arg-type]


async def test_concurrent_repeats_count_up_on_the_real_api_server(client, ns):
    targets = [await client.create(CONFIGMAPS, {"metadata": {"name": f"t{i}"}}, ns) for i in range(6)]
    recorder = EventRecorder(client, "test-controller", max_concurrent_writes=4)
    for _ in range(3):
        for cm in targets:
            recorder.event(cm, "Warning", "Failed", "could not do it")
    await recorder.close()
    events = (await client.list(EVENTS, ns))["items"]
    assert sorted((e["involvedObject"]["name"], e["count"]) for e in events) == [(f"t{i}", 3) for i in range(6)]
