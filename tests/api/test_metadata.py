"""ObjectMeta the server owns: names, uid, timestamps, generation, resourceVersion, and the status split."""
from __future__ import annotations

import asyncio
import json
import re
import uuid

import pytest

from boxkube.apiserver import registry as registry_module
from boxkube.apiserver.allocators import ClusterIPs, NodePorts
from boxkube.apiserver.errors import APIError
from boxkube.apiserver.registry import Registry, WriteOptions
from boxkube.apiserver.resources import by_kind
from boxkube.apiserver.watchcache import WatchCache
from boxkube.cluster.state import boxkube_home
from boxkube.storage.etcd import EtcdStore

MERGE = {"Content-Type": "application/merge-patch+json"}
DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "labels": {"a": "1"}}, "spec": {
    "replicas": 1, "selector": {"matchLabels": {"app": "d"}},
    "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}}}


def test_generate_name_appends_five_random_characters(http, ns):
    names = set()
    for _ in range(5):
        r = http.post(f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": {"generateName": "gen-"}})
        assert r.status_code == 201, r.text
        meta = r.json()["metadata"]
        # upstream's SimpleNameGenerator: 5 characters from an alphabet without vowels or look-alikes
        assert re.fullmatch(r"gen-[bcdfghjklmnpqrstvwxz2456789]{5}", meta["name"]), meta["name"]
        assert meta["generateName"] == "gen-"
        assert http.get(f"/api/v1/namespaces/{ns}/configmaps/{meta['name']}").status_code == 200
        names.add(meta["name"])
    assert len(names) == 5


def test_a_given_name_wins_over_generate_name(http, ns):
    r = http.post(f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": {"name": "fixed", "generateName": "gen-"}})
    assert r.status_code == 201 and r.json()["metadata"]["name"] == "fixed"
    again = http.post(f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": {"name": "fixed", "generateName": "gen-"}})
    assert again.status_code == 409 and again.json()["reason"] == "AlreadyExists"


def test_invalid_generate_name_is_422(http, ns):
    r = http.post(f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": {"generateName": "Bad_"}})
    assert r.status_code == 422, r.text
    assert r.json()["details"]["causes"][0]["field"] == "metadata.generateName"


def test_server_sets_uid_and_creation_timestamp_and_ignores_the_clients(http, ns):
    body = {"metadata": {"name": "m", "uid": "client-uid", "creationTimestamp": "2001-01-01T00:00:00Z",
                         "generation": 7, "deletionTimestamp": "2001-01-01T00:00:00Z", "deletionGracePeriodSeconds": 5}}
    r = http.post(f"/api/v1/namespaces/{ns}/configmaps", json=body)
    assert r.status_code == 201, r.text
    meta = r.json()["metadata"]
    assert meta["uid"] != "client-uid" and re.fullmatch(r"[0-9a-f-]{36}", meta["uid"])
    assert meta["creationTimestamp"] != "2001-01-01T00:00:00Z"
    assert not {"generation", "deletionTimestamp", "deletionGracePeriodSeconds"} & set(meta)   # configmaps have no generation
    assert http.get(f"/api/v1/namespaces/{ns}/configmaps/m").json()["metadata"] == meta


def test_update_keeps_uid_and_creation_timestamp(http, ns):
    path = f"/api/v1/namespaces/{ns}/configmaps/u"
    created = http.post(f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": {"name": "u"}}).json()
    # Left out, they are kept; creationTimestamp changes are ignored (rest.BeforeUpdate).
    r = http.put(path, json={"metadata": {"name": "u", "creationTimestamp": "2001-01-01T00:00:00Z"}, "data": {"a": "1"}})
    assert r.status_code == 200, r.text
    assert r.json()["metadata"]["uid"] == created["metadata"]["uid"]
    assert r.json()["metadata"]["creationTimestamp"] == created["metadata"]["creationTimestamp"]
    # A different uid is an immutable-field change: 422, nothing written.
    r = http.put(path, json={"metadata": {"name": "u", "uid": "other"}, "data": {"a": "2"}})
    assert r.status_code == 422, r.text
    assert r.json()["details"]["causes"][0]["field"] == "metadata.uid"
    assert http.get(path).json()["data"] == {"a": "1"}


def test_generation_starts_at_1_and_bumps_on_spec_changes_only(http, ns):
    base = f"/apis/apps/v1/namespaces/{ns}/deployments"
    r = http.post(base, json={**DEPLOYMENT, "metadata": {**DEPLOYMENT["metadata"], "generation": 9}})
    assert r.status_code == 201, r.text
    assert r.json()["metadata"]["generation"] == 1
    labelled = http.patch(f"{base}/d", json={"metadata": {"labels": {"b": "2"}, "annotations": {"x": "y"}}}, headers=MERGE)
    assert labelled.json()["metadata"]["generation"] == 1
    status = http.patch(f"{base}/d/status", json={"status": {"observedGeneration": 1, "replicas": 0}}, headers=MERGE)
    assert status.status_code == 200, status.text
    assert status.json()["metadata"]["generation"] == 1
    scaled = http.patch(f"{base}/d", json={"spec": {"replicas": 3}}, headers=MERGE)
    assert scaled.json()["metadata"]["generation"] == 2
    same = http.patch(f"{base}/d", json={"spec": {"replicas": 3}}, headers=MERGE)    # no change, no bump
    assert same.json()["metadata"]["generation"] == 2
    assert same.json()["metadata"]["resourceVersion"] == scaled.json()["metadata"]["resourceVersion"]


def test_status_subresource_and_main_resource_each_ignore_the_other(http, ns):
    base = f"/apis/apps/v1/namespaces/{ns}/deployments"
    created = http.post(base, json=DEPLOYMENT).json()
    # PUT /status: the status is taken, spec and labels are not.
    body = json.loads(json.dumps(created))
    body["spec"]["replicas"] = 5
    body["metadata"]["labels"] = {"changed": "yes"}
    body["status"] = {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1}
    r = http.put(f"{base}/d/status", json=body)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["spec"]["replicas"] == 1 and got["metadata"]["labels"] == {"a": "1"}
    assert got["status"]["replicas"] == 1 and got["metadata"]["generation"] == 1
    # PUT on the object: spec is taken, status is not.
    body = got
    body["spec"]["replicas"] = 2
    body["status"] = {"replicas": 9}
    r = http.put(f"{base}/d", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["spec"]["replicas"] == 2 and r.json()["status"]["replicas"] == 1
    # The status a create sends is dropped too.
    r = http.post(base, json={**DEPLOYMENT, "metadata": {"name": "d2"}, "status": {"replicas": 4}})
    assert r.json().get("status", {}).get("replicas") is None


def test_resource_version_is_the_etcd_mod_revision(http, ns, cluster):
    created = http.post(f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": {"name": "rv"}}).json()
    updated = http.patch(f"/api/v1/namespaces/{ns}/configmaps/rv", json={"data": {"a": "1"}}, headers=MERGE).json()
    state = json.loads((boxkube_home(cluster.env) / "clusters" / cluster.name / "cluster.json").read_text())

    async def mod_revision() -> int:
        store = EtcdStore(f"http://127.0.0.1:{state['ports']['etcd']}")
        try:
            return (await store.get(f"/registry/configmaps/{ns}/rv")).mod_revision
        finally:
            await store.close()
    assert int(updated["metadata"]["resourceVersion"]) == asyncio.run(mod_revision())
    assert int(updated["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    listed = http.get(f"/api/v1/namespaces/{ns}/configmaps").json()
    assert [i["metadata"]["resourceVersion"] for i in listed["items"]] == [updated["metadata"]["resourceVersion"]]
    assert int(listed["metadata"]["resourceVersion"]) >= int(updated["metadata"]["resourceVersion"])


class _Names:
    """Random suffixes made predictable: each in turn, then the last one forever."""

    def __init__(self, suffixes: list[str]):
        self.suffixes = suffixes

    def choices(self, alphabet: str, k: int) -> list[str]:
        return list(self.suffixes.pop(0) if len(self.suffixes) > 1 else self.suffixes[0])


async def test_generate_name_collisions_are_retried_then_409(own_etcd, monkeypatch):
    """Registry.create on a real etcd, with the random suffixes replaced so names collide on purpose."""
    store = EtcdStore(own_etcd)
    registry = Registry(store, WatchCache(store), ClusterIPs(store, "10.96.0.0/12"), NodePorts(store))
    ns, cms = f"gen-{uuid.uuid4().hex[:6]}", by_kind("", "v1", "ConfigMap")
    try:
        await registry.create(by_kind("", "v1", "Namespace"), None, {"metadata": {"name": ns}}, WriteOptions())
        body = lambda: {"metadata": {"generateName": "g-"}}
        monkeypatch.setattr(registry_module, "random", _Names(["bbbbb"]))
        assert (await registry.create(cms, ns, body(), WriteOptions()))["metadata"]["name"] == "g-bbbbb"
        # RetryGenerateName: a generated name that exists is drawn again (up to 8 tries in all) ...
        monkeypatch.setattr(registry_module, "random", _Names(["bbbbb"] * 7 + ["ccccc"]))
        assert (await registry.create(cms, ns, body(), WriteOptions()))["metadata"]["name"] == "g-ccccc"
        # ... and when every try is taken, the answer is the 409 AlreadyExists of the last.
        monkeypatch.setattr(registry_module, "random", _Names(["bbbbb"]))
        with pytest.raises(APIError) as e:
            await registry.create(cms, ns, body(), WriteOptions())
        assert (e.value.code, e.value.reason, e.value.message) == (409, "AlreadyExists", 'configmaps "g-bbbbb" already exists')
    finally:
        await store.close()
