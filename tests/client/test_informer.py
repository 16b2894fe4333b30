"""Informers against real API servers: sync, events, indexes, resync, rewatch and relist after 410."""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from boxkube.client import (
    LABEL_INDEX,
    NAMESPACE_INDEX,
    DeletedFinalStateUnknown,
    Informer,
    InformerFactory,
    Store,
    object_key,
    resource,
    split_key,
)
from tests.client.conftest import compact_etcd
from tests.controllers.controller_harness import eventually

CONFIGMAPS, PODS = resource("configmaps"), resource("pods")


def cm(name: str, **labels: str) -> dict:
    return {"metadata": {"name": name, "labels": labels}, "data": {"v": "1"}}


class Recorder:
    """Handlers that record (event, key, data.v or DeletedFinalStateUnknown) in order."""

    def __init__(self, informer: Informer):
        self.events: list[tuple] = []
        informer.add_event_handler(on_add=self.add, on_update=self.update, on_delete=self.delete)

    def add(self, obj):
        self.events.append(("add", object_key(obj)))

    async def update(self, old, new):           # a coroutine handler is awaited
        self.events.append(("update", object_key(new), old is new))

    def delete(self, obj):
        if isinstance(obj, DeletedFinalStateUnknown):
            self.events.append(("delete-unknown", obj.key, obj.obj["metadata"]["name"]))
        else:
            self.events.append(("delete", object_key(obj)))


def test_store_indexes():
    store = Store({"node": lambda pod: [pod["spec"].get("nodeName") or ""]})
    a = {"metadata": {"name": "a", "namespace": "n1", "labels": {"app": "web"}}, "spec": {"nodeName": "x"}}
    b = {"metadata": {"name": "b", "namespace": "n2", "labels": {"app": "web"}}, "spec": {}}
    store.upsert(a)
    store.upsert(b)
    assert [object_key(o) for o in store.by_index(LABEL_INDEX, "app=web")] == ["n1/a", "n2/b"]
    assert store.index_keys(NAMESPACE_INDEX, "n2") == ["n2/b"]
    store.upsert({**b, "spec": {"nodeName": "x"}, "metadata": {**b["metadata"], "labels": {}}})
    assert store.index_keys("node", "x") == ["n1/a", "n2/b"] and store.index_keys(LABEL_INDEX, "app=web") == ["n1/a"]
    assert store.delete("n1/a") is a and store.index_values("node") == ["x"] and "n1/a" not in store
    assert split_key("n2/b") == ("n2", "b") and split_key("node-1") == (None, "node-1")
    with pytest.raises(KeyError):
        store.by_index("nope", "x")
    with pytest.raises(ValueError):
        store.add_indexers({"node": lambda o: []})


async def test_sync_events_and_indexes(client, ns):
    await client.create(CONFIGMAPS, cm("a", app="web"), ns)
    await client.create(CONFIGMAPS, cm("b", app="db"), ns)
    informer = Informer(client, CONFIGMAPS, ns, page_size=1)     # the initial list comes in pages
    recorder = Recorder(informer)
    async with informer:
        assert await informer.wait_for_sync(5) and informer.has_synced
        assert sorted(recorder.events) == [("add", f"{ns}/a"), ("add", f"{ns}/b")]
        assert [o["metadata"]["name"] for o in informer.store.by_index(LABEL_INDEX, "app=web")] == ["a"]
        assert informer.store.index_keys(NAMESPACE_INDEX, ns) == [f"{ns}/a", f"{ns}/b"]

        recorder.events.clear()
        await client.create(CONFIGMAPS, cm("c", app="web"), ns)
        await client.patch(CONFIGMAPS, "a", {"metadata": {"labels": {"app": "db"}}}, ns)
        await client.delete(CONFIGMAPS, "b", ns)
        await eventually(lambda: len(recorder.events) == 3)
        assert recorder.events == [("add", f"{ns}/c"), ("update", f"{ns}/a", False), ("delete", f"{ns}/b")]
        assert sorted(informer.store.keys()) == [f"{ns}/a", f"{ns}/c"]
        assert informer.store.index_keys(LABEL_INDEX, "app=db") == [f"{ns}/a"]
        assert informer.store.get_object("c", ns)["kind"] == "ConfigMap"

        # A handler added late first gets an add for everything already cached.
        late: list[str] = []
        informer.add_event_handler(on_add=lambda o: late.append(o["metadata"]["name"]))
        await eventually(lambda: sorted(late) == ["a", "c"])
    assert not informer.running


async def test_selectors_and_custom_index(client, ns):
    pod = {"spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}
    for name, node in (("p1", "n1"), ("p2", "n2"), ("p3", "n1")):
        await client.create(PODS, {"metadata": {"name": name, "labels": {"tier": "x"}},
                                   "spec": {**pod["spec"], "nodeName": node}}, ns)
    await client.create(PODS, {"metadata": {"name": "other"}, **pod}, ns)
    informer = Informer(client, "pods", ns, label_selector="tier=x", field_selector="spec.nodeName=n1",
                        indexers={"node": lambda p: [p["spec"].get("nodeName") or ""]})
    async with informer:
        await informer.wait_for_sync(5)
        assert informer.store.index_keys("node", "n1") == [f"{ns}/p1", f"{ns}/p3"]
        assert informer.store.index_keys("node", "n2") == []
        informer.add_indexers({"image": lambda p: [c["image"] for c in p["spec"]["containers"]]})
        assert len(informer.store.by_index("image", "registry.k8s.io/pause:3.10")) == 2
        # A change that makes an object stop matching the selector is a delete for the informer.
        await client.patch(PODS, "p3", {"metadata": {"labels": {"tier": "y"}}}, ns)
        await eventually(lambda: informer.store.keys() == [f"{ns}/p1"])


async def test_resync_redelivers_every_object(client, ns):
    await client.create(CONFIGMAPS, cm("a"), ns)
    await client.create(CONFIGMAPS, cm("b"), ns)
    informer = Informer(client, CONFIGMAPS, ns, resync_period=0.1)
    recorder = Recorder(informer)
    async with informer:
        await eventually(lambda: {e for e in recorder.events if e[0] == "update"} ==
                         {("update", f"{ns}/a", True), ("update", f"{ns}/b", True)}, timeout=3)


@contextlib.asynccontextmanager
async def cut_off_informer(client, ns, second_server) -> AsyncIterator[tuple[Informer, Recorder]]:
    """An informer of configmaps a and b, synced through the second API server, which then stops while
    a is deleted and c created: what it must catch up on. Its events so far are cleared."""
    await client.create(CONFIGMAPS, cm("a"), ns)
    await client.create(CONFIGMAPS, cm("b"), ns)
    async with second_server.client() as c2:
        informer = Informer(c2, CONFIGMAPS, ns)
        recorder = Recorder(informer)
        async with informer:
            await informer.wait_for_sync(5)
            recorder.events.clear()
            await second_server.stop()            # the informer's watch breaks
            await client.delete(CONFIGMAPS, "a", ns)
            await client.create(CONFIGMAPS, cm("c"), ns)
            yield informer, recorder


async def test_rewatch_from_last_resource_version_after_connection_loss(client, ns, second_server):
    async with cut_off_informer(client, ns, second_server) as (informer, recorder):
        await second_server.start()           # a fresh watch cache: the events come from etcd
        await eventually(lambda: len(recorder.events) == 2)
        # Exactly the missed events: no relist (which would have updated b as well).
        assert recorder.events == [("delete", f"{ns}/a"), ("add", f"{ns}/c")]


async def test_relist_after_410_delivers_deleted_final_state_unknown(client, ns, second_server, etcd_url):
    async with cut_off_informer(client, ns, second_server) as (informer, recorder):
        listed_at = int(informer.resource_version)
        await client.patch(CONFIGMAPS, "b", {"data": {"v": "2"}}, ns)
        await compact_etcd(etcd_url)          # the events the informer missed are gone
        await second_server.start()           # its watch from listed_at: ERROR 410, so it lists again
        await eventually(lambda: len(recorder.events) == 3)
        assert sorted(recorder.events) == [("add", f"{ns}/c"), ("delete-unknown", f"{ns}/a", "a"),
                                           ("update", f"{ns}/b", False)]
        assert informer.store.get(f"{ns}/b")["data"] == {"v": "2"}
        assert int(informer.resource_version) > listed_at


async def test_bookmarks_advance_the_resource_version(client, ns, second_server):
    async with second_server.client() as c2:
        informer = Informer(c2, CONFIGMAPS, ns)
        async with informer:
            await informer.wait_for_sync(5)
            listed_at = int(informer.resource_version)
            await client.create(CONFIGMAPS, cm("elsewhere"), "default")   # not in the informer's namespace
            try:
                await eventually(lambda: int(informer.resource_version) > listed_at, timeout=3)
            finally:
                await client.delete(CONFIGMAPS, "elsewhere", "default")


async def test_factory_shares_informers(client, ns):
    factory = InformerFactory(client, namespace=ns)
    pods = factory.informer("pods")
    assert factory.informer(PODS) is pods and factory.informer("pods", label_selector="a=b") is not pods
    factory.start()
    try:
        assert await factory.wait_for_sync(5)
        assert pods.running and pods.has_synced
    finally:
        await factory.stop()
    assert not pods.running
