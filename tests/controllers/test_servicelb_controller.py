"""ServiceLB on the real API server: LoadBalancer Services get the InternalIPs of the nodes that take traffic
as status.loadBalancer.ingress, following the nodes, leaving other classes alone, cleared on a type change."""
from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest

from boxkube.client import ApiError, resource
from boxkube.controllers.servicelb import LABEL_EXCLUDE, ServiceLBController, wanted_ingress

from controller_harness import eventually, running

NODES, SERVICES = resource("nodes"), resource("services")


def node(ip: str, ready: str = "True", unschedulable: bool = False, labels: dict | None = None) -> dict:
    return {"metadata": {"name": f"lb-{uuid.uuid4().hex[:8]}", "labels": labels or {}},
            "spec": {"unschedulable": unschedulable},
            "status": {"conditions": [{"type": "Ready", "status": ready}],
                       "addresses": [{"type": "Hostname", "address": "h"}, {"type": "InternalIP", "address": ip}]}}


def lb(name: str = "web", **spec) -> dict:
    return {"metadata": {"name": name},
            "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}],
                     **spec}}


def test_ingress_is_every_ready_schedulable_included_node_in_address_order():
    nodes = [node("10.9.0.10"), node("10.9.0.9"), node("10.9.0.11", ready="Unknown"),
             node("10.9.0.12", unschedulable=True), node("10.9.0.13", labels={LABEL_EXCLUDE: ""}), node("10.9.0.9")]
    assert wanted_ingress(lb(), nodes) == [{"ip": "10.9.0.9", "ipMode": "VIP"}, {"ip": "10.9.0.10", "ipMode": "VIP"}]
    assert wanted_ingress(lb(), []) == []
    assert wanted_ingress(lb(loadBalancerClass="example.com/other"), nodes) is None    # not ours
    assert wanted_ingress({"spec": {"type": "NodePort"}}, nodes) == []                 # cleared


@pytest.fixture
async def nodes(client):
    """Makes nodes (cluster-wide, with unique names and addresses of this test's own); deletes them after."""
    made: list[str] = []

    async def make(ip: str, **kwargs) -> str:
        obj = await client.create(NODES, node(ip, **kwargs))
        made.append(obj["metadata"]["name"])
        return obj["metadata"]["name"]

    yield make
    for name in made:
        with contextlib.suppress(ApiError):
            await client.delete(NODES, name)


async def ingress_ips(client, ns: str, name: str, ours: set[str]) -> list[str]:
    """The service's ingress IPs among `ours` (the shared cluster may hold other tests' nodes)."""
    svc = await client.get(SERVICES, name, ns)
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    assert all(i.get("ipMode") == "VIP" for i in ingress), ingress
    return [i["ip"] for i in ingress if i["ip"] in ours]


async def test_ingress_follows_the_nodes_and_the_service_type(client, ns, nodes, cluster):
    net = f"10.{200 + uuid.uuid4().int % 50}.{uuid.uuid4().int % 250}"
    a_ip, b_ip, c_ip = f"{net}.2", f"{net}.3", f"{net}.4"
    ours = {a_ip, b_ip, c_ip}
    a, b = await nodes(a_ip), await nodes(b_ip)
    async with running(client, ServiceLBController, namespace=ns):
        await client.create(SERVICES, lb("web"), ns)
        await client.create(SERVICES, lb("other", loadBalancerClass="example.com/other"), ns)
        assert await eventually(lambda: ingress_ips(client, ns, "web", ours), what="ingress") == [a_ip, b_ip]
        table = cluster.kubectl("get", "svc", "web", "-n", ns).stdout
        assert a_ip in table and b_ip in table and "80:3" in table, table

        c = await nodes(c_ip)            # a node joins
        await eventually(lambda: _is(ingress_ips(client, ns, "web", ours), [a_ip, b_ip, c_ip]), what="c added")
        await client.patch(NODES, a, {"spec": {"unschedulable": True}})      # cordoned
        await eventually(lambda: _is(ingress_ips(client, ns, "web", ours), [b_ip, c_ip]), what="a cordoned")
        await client.patch_status(NODES, c, {"status": {"conditions": [{"type": "Ready", "status": "False"}]}})
        await eventually(lambda: _is(ingress_ips(client, ns, "web", ours), [b_ip]), what="c NotReady")
        await client.delete(NODES, b)    # a node leaves
        await eventually(lambda: _is(ingress_ips(client, ns, "web", ours), []), what="b deleted")
        await client.patch(NODES, a, {"spec": {"unschedulable": False}})
        await eventually(lambda: _is(ingress_ips(client, ns, "web", ours), [a_ip]), what="a uncordoned")

        await client.patch(SERVICES, "web", {"spec": {"type": "ClusterIP"}}, ns)
        svc = await eventually(lambda: _cleared(client, ns, "web"), what="ingress cleared")
        assert svc["status"]["loadBalancer"] == {}
        assert "<none>" in cluster.kubectl("get", "svc", "web", "-n", ns).stdout
        # another class's Service was never touched
        await asyncio.sleep(0.3)
        other = await client.get(SERVICES, "other", ns)
        assert other["status"] == {"loadBalancer": {}}
        assert "<pending>" in cluster.kubectl("get", "svc", "other", "-n", ns).stdout


async def _is(got, wanted):
    return (await got) == wanted


async def _cleared(client, ns: str, name: str):
    svc = await client.get(SERVICES, name, ns)
    return None if (svc["status"].get("loadBalancer") or {}).get("ingress") else svc


async def test_node_ports_of_a_load_balancer_are_allocated_unless_it_says_not_to(client, ns):
    default = await client.create(SERVICES, lb("np"), ns)
    assert default["spec"]["allocateLoadBalancerNodePorts"] is True and default["spec"]["ports"][0]["nodePort"]
    without = await client.create(SERVICES, lb("no-np", allocateLoadBalancerNodePorts=False), ns)
    assert "nodePort" not in without["spec"]["ports"][0]
