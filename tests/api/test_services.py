"""ClusterIP and NodePort allocation: unique, released on delete, reusable, conflicts as upstream's 422s."""
from __future__ import annotations

import asyncio
import ipaddress
import json
import uuid

import pytest

from boxkube.apiserver.allocators import ClusterIPs, NodePorts, Taken
from boxkube.apiserver.errors import APIError
from boxkube.apiserver.registry import Registry, WriteOptions
from boxkube.apiserver.resources import by_kind
from boxkube.apiserver.watchcache import WatchCache
from boxkube.storage.etcd import EtcdStore

MERGE = {"Content-Type": "application/merge-patch+json"}


def _svc(name: str, **spec) -> dict:
    return {"metadata": {"name": name}, "spec": {"ports": [{"port": 80}], **spec}}


def _create(http, ns: str, body: dict):
    return http.post(f"/api/v1/namespaces/{ns}/services", json=body)


def test_cluster_ips_are_unique_in_the_service_cidr_and_reusable(http, ns):
    ips = {}
    for i in range(20):
        r = _create(http, ns, _svc(f"s{i}"))
        assert r.status_code == 201, r.text
        spec = r.json()["spec"]
        assert spec["clusterIPs"] == [spec["clusterIP"]]
        ips[f"s{i}"] = spec["clusterIP"]
    assert len(set(ips.values())) == 20
    cidr = ipaddress.ip_network("10.96.0.0/12")
    assert all(ipaddress.ip_address(ip) in cidr for ip in ips.values())
    assert "10.96.0.1" not in ips.values()       # the `kubernetes` Service's

    # Taken: a request for another Service's IP is refused, and nothing is stored.
    taken = ips["s0"]
    r = _create(http, ns, _svc("dup", clusterIP=taken))
    assert r.status_code == 422, r.text
    status = r.json()
    assert status["reason"] == "Invalid"
    assert status["message"] == (f'Service "dup" is invalid: spec.clusterIPs: Invalid value: []string{{"{taken}"}}: '
                                 f"failed to allocate IP {taken}: provided IP is already allocated")
    assert status["details"]["causes"][0]["field"] == "spec.clusterIPs"
    assert http.get(f"/api/v1/namespaces/{ns}/services/dup").status_code == 404

    # Released on delete: the same IP can be asked for again.
    assert http.delete(f"/api/v1/namespaces/{ns}/services/s0").status_code == 200
    r = _create(http, ns, _svc("again", clusterIP=taken))
    assert r.status_code == 201, r.text
    assert r.json()["spec"]["clusterIP"] == taken


def test_cluster_ip_is_immutable(http, ns):
    created = _create(http, ns, _svc("imm")).json()
    ip = created["spec"]["clusterIP"]
    other = str(ipaddress.ip_address(ip) + 1)
    r = http.patch(f"/api/v1/namespaces/{ns}/services/imm", json={"spec": {"clusterIP": other, "clusterIPs": [other]}},
                   headers=MERGE)
    assert r.status_code == 422, r.text
    assert "may not change once set" in r.json()["message"]
    live = http.get(f"/api/v1/namespaces/{ns}/services/imm").json()
    assert live["spec"]["clusterIP"] == ip and live["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_headless_service(http, ns):
    r = _create(http, ns, _svc("headless", clusterIP="None"))
    assert r.status_code == 201, r.text
    assert r.json()["spec"]["clusterIP"] == "None" and r.json()["spec"]["clusterIPs"] == ["None"]


def test_node_ports_are_unique_released_and_reusable(http, ns):
    ports = {}
    for i in range(8):
        r = _create(http, ns, _svc(f"np{i}", type="NodePort"))
        assert r.status_code == 201, r.text
        ports[f"np{i}"] = r.json()["spec"]["ports"][0]["nodePort"]
    assert len(set(ports.values())) == 8 and all(30000 <= p <= 32767 for p in ports.values())

    taken = ports["np0"]
    body = _svc("dup", type="NodePort")
    body["spec"]["ports"] = [{"port": 80, "nodePort": taken}]
    r = _create(http, ns, body)
    assert r.status_code == 422, r.text
    assert r.json()["message"] == (f'Service "dup" is invalid: spec.ports[0].nodePort: Invalid value: {taken}: '
                                   "provided port is already allocated")
    assert r.json()["details"]["causes"][0]["field"] == "spec.ports[0].nodePort"
    assert http.get(f"/api/v1/namespaces/{ns}/services/dup").status_code == 404

    assert http.delete(f"/api/v1/namespaces/{ns}/services/np0").status_code == 200
    r = _create(http, ns, body)
    assert r.status_code == 201, r.text
    assert r.json()["spec"]["ports"][0]["nodePort"] == taken


def test_switching_to_cluster_ip_releases_the_node_port(http, ns):
    created = _create(http, ns, _svc("sw", type="NodePort")).json()
    port = created["spec"]["ports"][0]["nodePort"]
    r = http.patch(f"/api/v1/namespaces/{ns}/services/sw", json={"spec": {"type": "ClusterIP"}}, headers=MERGE)
    # Upstream drops the node ports a type change leaves meaningless (dropTypeDependentFields).
    assert r.status_code == 200, r.text
    assert "nodePort" not in r.json()["spec"]["ports"][0]
    assert r.json()["spec"]["clusterIP"] == created["spec"]["clusterIP"]
    body = _svc("claim", type="NodePort")
    body["spec"]["ports"] = [{"port": 80, "nodePort": port}]
    assert _create(http, ns, body).status_code == 201


def test_switching_to_external_name_and_back_releases_then_allocates_a_cluster_ip(http, ns):
    created = _create(http, ns, _svc("ext")).json()
    ip = created["spec"]["clusterIP"]
    path = f"/api/v1/namespaces/{ns}/services/ext"
    r = http.patch(path, json={"spec": {"type": "ExternalName", "externalName": "example.com"}}, headers=MERGE)
    assert r.status_code == 200, r.text
    assert "clusterIP" not in r.json()["spec"] and "clusterIPs" not in r.json()["spec"]
    assert _create(http, ns, _svc("takes-it", clusterIP=ip)).status_code == 201     # released
    r = http.patch(path, json={"spec": {"type": "ClusterIP", "externalName": None}}, headers=MERGE)
    assert r.status_code == 200, r.text
    back = r.json()["spec"]["clusterIP"]
    assert back not in ("", "None", ip) and r.json()["spec"]["clusterIPs"] == [back]



async def test_an_update_lost_to_a_concurrent_write_frees_nothing(own_etcd):
    """Registry on a real etcd: an update that would drop a node port loses the race to another write
    (RevisionConflict at the store); the port must stay allocated to the Service still stored."""
    store = EtcdStore(own_etcd)
    ports = NodePorts(store)
    registry = Registry(store, WatchCache(store), ClusterIPs(store, "10.96.0.0/12"), ports)
    ns, services = f"race-{uuid.uuid4().hex[:6]}", by_kind("", "v1", "Service")
    try:
        await registry.create(by_kind("", "v1", "Namespace"), None, {"metadata": {"name": ns}}, WriteOptions())
        created = await registry.create(services, ns, _svc("np", type="NodePort"), WriteOptions())
        port = created["spec"]["ports"][0]["nodePort"]
        attempts = []

        def to_cluster_ip(svc: dict) -> dict:
            attempts.append(1)
            if len(attempts) > 1:
                raise APIError(409, "Conflict", "gave up after losing the race")
            key = services.key(ns, "np")
            raced = asyncio.get_running_loop().create_task(_bump(store, key))
            racers.append(raced)
            svc["spec"]["type"] = "ClusterIP"
            for p in svc["spec"]["ports"]:
                p.pop("nodePort", None)
            return svc

        racers: list = []
        registry_write = registry._write

        async def write_after_race(*args, **kwargs):
            await asyncio.gather(*racers)      # the other writer lands between our read and our write
            return await registry_write(*args, **kwargs)

        registry._write = write_after_race
        with pytest.raises(APIError):
            await registry.guaranteed_update(services, ns, "np", to_cluster_ip, WriteOptions())
        with pytest.raises(Taken):
            await ports.claim(port, ns, "thief")
    finally:
        await store.close()


async def _bump(store: EtcdStore, key: str) -> None:
    kv = await store.get(key)
    obj = json.loads(kv.value)
    obj["metadata"].setdefault("labels", {})["raced"] = "yes"
    await store.update(key, json.dumps(obj).encode(), kv.mod_revision)


def test_a_failed_update_frees_nothing_the_stored_service_still_holds(http, ns):
    """A stale PUT that would drop a node port (type NodePort -> ClusterIP) is refused with 409;
    the port stays allocated to the stored Service, so no other Service can be given it."""
    created = _create(http, ns, _svc("np", type="NodePort")).json()
    port = created["spec"]["ports"][0]["nodePort"]
    labelled = http.patch(f"/api/v1/namespaces/{ns}/services/np", json={"metadata": {"labels": {"a": "b"}}},
                          headers=MERGE)
    assert labelled.status_code == 200, labelled.text
    stale = dict(created, spec={**created["spec"], "type": "ClusterIP",
                               "ports": [{k: v for k, v in p.items() if k != "nodePort"} for p in created["spec"]["ports"]]})
    r = http.put(f"/api/v1/namespaces/{ns}/services/np", json=stale)
    assert r.status_code == 409, r.text
    live = http.get(f"/api/v1/namespaces/{ns}/services/np").json()
    assert live["spec"]["type"] == "NodePort" and live["spec"]["ports"][0]["nodePort"] == port
    thief = _create(http, ns, _svc("thief", type="NodePort", ports=[{"port": 80, "nodePort": port}]))
    assert thief.status_code == 422, thief.text
    assert "provided port is already allocated" in thief.json()["message"]
