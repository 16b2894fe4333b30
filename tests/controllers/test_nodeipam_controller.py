"""Node IPAM on the real API server: podCIDRs handed out once, released with their node, rebuilt on start."""
from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import uuid

import pytest

from boxkube.client import ApiError, resource
from boxkube.controllers.base import Settings
from boxkube.controllers.nodeipam import NodeIpamController, RangeExhausted, parse_cluster_cidrs

from controller_harness import eventually, running

NODES = resource("nodes")


@pytest.fixture
async def nodes(client):
    """Makes nodes with unique names; deletes them after the test."""
    made: list[str] = []

    async def make(cidr: str | None = None) -> str:
        name = f"ipam-{uuid.uuid4().hex[:8]}"
        spec = {"podCIDR": cidr, "podCIDRs": [cidr]} if cidr else {}
        await client.create(NODES, {"metadata": {"name": name}, "spec": spec})
        made.append(name)
        return name

    yield make
    for name in made:
        with contextlib.suppress(ApiError):
            await client.delete(NODES, name)


async def pod_cidr(client, name):
    spec = (await client.get(NODES, name)).get("spec") or {}
    return spec.get("podCIDR")


async def range_for(client, free_blocks: int, second_octet: int) -> tuple[str, list[str]]:
    """A cluster CIDR of /24 blocks with `free_blocks` left for this test once the nodes already in
    the shared cluster without a podCIDR are served, and the blocks to fill the rest with."""
    waiting = sum(1 for n in (await client.list(NODES))["items"] if not (n.get("spec") or {}).get("podCIDR"))
    bits = math.ceil(math.log2(waiting + free_blocks))
    cluster = ipaddress.ip_network(f"10.{second_octet}.0.0/{24 - bits}")
    blocks = [str(b) for b in cluster.subnets(new_prefix=24)]
    return str(cluster), blocks[waiting + free_blocks:]


async def test_blocks_are_unique_released_and_exhaustion_reported(client, nodes):
    cluster, fillers = await range_for(client, 2, 231)
    for block in fillers:
        await nodes(block)
    a, b = await nodes(), await nodes()
    async with running(client, NodeIpamController, settings=Settings(cluster_cidr=cluster, node_cidr_mask_size=24)):
        cidr_a = await eventually(lambda: pod_cidr(client, a))
        cidr_b = await eventually(lambda: pod_cidr(client, b))
        assert cidr_a != cidr_b
        for node, cidr in ((a, cidr_a), (b, cidr_b)):
            got = await client.get(NODES, node)
            assert got["spec"]["podCIDRs"] == [cidr]
            assert ipaddress.ip_network(cidr).subnet_of(ipaddress.ip_network(cluster))
        c = await nodes()        # the range is full now
        await asyncio.sleep(0.5)
        assert await pod_cidr(client, c) is None
        events = (await client.list(resource("events"), "default",
                                    field_selector=f"involvedObject.name={c}"))["items"]
        assert any(e["reason"] == "CIDRNotAvailable" and e["message"] == f"Node {c} status is now: CIDRNotAvailable"
                   for e in events)
        await client.delete(NODES, a)      # its block comes back, and c gets it
        assert await eventually(lambda: pod_cidr(client, c), timeout=15) == cidr_a


async def test_blocks_already_given_are_taken_back_on_start(client, nodes):
    cluster, fillers = await range_for(client, 2, 232)
    for block in fillers:
        await nodes(block)
    first = str(next(ipaddress.ip_network(cluster).subnets(new_prefix=24)))
    before = await nodes(first)          # given by an earlier run (or by hand)
    after = await nodes()
    async with running(client, NodeIpamController, settings=Settings(cluster_cidr=cluster, node_cidr_mask_size=24)):
        got = await eventually(lambda: pod_cidr(client, after))
        assert got != first and await pod_cidr(client, before) == first


def test_cidr_sets_hand_out_round_robin_per_family():
    v4, v6 = parse_cluster_cidrs("10.9.0.0/23, fd00:9::/63", 24)
    assert [v4.allocate(), v4.allocate()] == ["10.9.0.0/24", "10.9.1.0/24"]
    with pytest.raises(RangeExhausted):
        v4.allocate()
    v4.release("10.9.0.0/24")
    assert v4.allocate() == "10.9.0.0/24"
    assert [v6.allocate(), v6.allocate()] == ["fd00:9::/64", "fd00:9:0:1::/64"]
    assert not v4.occupy("10.8.0.0/24") and not v4.occupy("10.9.0.0/25")
