"""The Endpoints controller live on the real API server (no node agents: the test writes pods' status)."""
from __future__ import annotations

from boxkube.api.times import now_rfc3339
from boxkube.client import resource
from boxkube.controllers.endpoints import EndpointsController, repack_subsets

from controller_harness import eventually, get_or_none, running

PODS, SERVICES, ENDPOINTS = resource("pods"), resource("services"), resource("endpoints")
TRIGGER = "endpoints.kubernetes.io/last-change-trigger-time"


async def add_pod(client, ns, name, labels, ports, ip, *, ready=True, node="node-a", **spec):
    """A pod bound to `node` with `ip`, Ready or not, as a node agent would report it."""
    body = {"metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "ports": ports}], **spec}}
    await client.create(PODS, body, ns)
    await client.bind(name, ns, node)
    now = now_rfc3339()
    status = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "172.18.0.2",
              "conditions": [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": now}]}
    return await client.patch_status(PODS, name, {"status": status}, ns)


async def set_ready(client, ns, name, ready):
    status = {"conditions": [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": now_rfc3339()}]}
    await client.patch_status(PODS, name, {"status": status}, ns)


async def remove_pod(client, ns, name):
    await client.delete(PODS, name, ns, grace_period_seconds=0)


async def endpoints_of(client, ns, name):
    return await get_or_none(client, ENDPOINTS, name, ns)


def ips(endpoints, field="addresses"):
    """{ports: sorted ips} of the subsets' `field` addresses."""
    out = {}
    for subset in endpoints.get("subsets") or []:
        if subset.get(field):
            ports = tuple(sorted((p.get("name", ""), p["port"]) for p in subset.get("ports") or []))
            out[ports] = sorted(a["ip"] for a in subset[field])
    return out


async def wait_for_endpoints(client, ns, name, ready, not_ready=None):
    seen = {}

    async def check():
        ep = seen["last"] = await endpoints_of(client, ns, name)
        if ep is not None and ips(ep) == ready and ips(ep, "notReadyAddresses") == (not_ready or {}):
            return ep
        return None
    try:
        return await eventually(check, what=f"endpoints {name}")
    except AssertionError as e:
        raise AssertionError(f"{e}; last endpoints: {seen.get('last')}") from None


WEB = [{"name": "http", "containerPort": 8080}]
WEB_ALT = [{"name": "http", "containerPort": 9090}]
HTTP = (("http", 8080),)


async def test_endpoints_start_empty_track_pods_and_end_empty(client, ns):
    svc = {"metadata": {"name": "web", "labels": {"tier": "front"}},
           "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}
    await client.create(SERVICES, svc, ns)
    async with running(client, EndpointsController, namespace=ns):
        empty = await wait_for_endpoints(client, ns, "web", {})
        assert not empty.get("subsets") and empty["metadata"]["labels"] == {"tier": "front"}
        assert empty["metadata"]["annotations"][TRIGGER].endswith("Z")

        a = await add_pod(client, ns, "a", {"app": "web"}, WEB, "10.244.1.10")
        ep = await wait_for_endpoints(client, ns, "web", {HTTP: ["10.244.1.10"]})
        address = ep["subsets"][0]["addresses"][0]
        assert address == {"ip": "10.244.1.10", "nodeName": "node-a",
                           "targetRef": {"kind": "Pod", "namespace": ns, "name": "a", "uid": a["metadata"]["uid"]}}
        assert ep["subsets"][0]["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]

        # The named port resolves per pod: another pod's "http" is 9090, a subset of its own.
        await add_pod(client, ns, "b", {"app": "web"}, WEB_ALT, "10.244.2.10", node="node-b")
        await add_pod(client, ns, "c", {"app": "web"}, WEB, "10.244.1.11", ready=False)
        await add_pod(client, ns, "other", {"app": "db"}, WEB, "10.244.1.12")
        await wait_for_endpoints(client, ns, "web", {HTTP: ["10.244.1.10"], (("http", 9090),): ["10.244.2.10"]},
                                 {HTTP: ["10.244.1.11"]})

        # Readiness moves an address between the lists; a pod without the named port is skipped.
        await set_ready(client, ns, "c", True)
        await add_pod(client, ns, "noport", {"app": "web"}, [{"name": "metrics", "containerPort": 9100}], "10.244.1.13")
        await wait_for_endpoints(client, ns, "web", {HTTP: ["10.244.1.10", "10.244.1.11"],
                                                     (("http", 9090),): ["10.244.2.10"]})
        # A pod that stops matching the selector leaves.
        await client.patch(PODS, "b", {"metadata": {"labels": {"app": "gone"}}}, ns)
        await wait_for_endpoints(client, ns, "web", {HTTP: ["10.244.1.10", "10.244.1.11"]})

        for name in ("a", "c"):
            await remove_pod(client, ns, name)
        final = await wait_for_endpoints(client, ns, "web", {})
        assert not final.get("subsets")


async def test_terminating_and_finished_pods_are_excluded_unless_published(client, ns):
    ports = [{"name": "http", "port": 80, "targetPort": 8080}]
    await client.create(SERVICES, {"metadata": {"name": "strict"}, "spec": {"selector": {"app": "t"}, "ports": ports}}, ns)
    await client.create(SERVICES, {"metadata": {"name": "loose"},
                                   "spec": {"selector": {"app": "t"}, "ports": ports, "publishNotReadyAddresses": True}}, ns)
    async with running(client, EndpointsController, namespace=ns):
        await add_pod(client, ns, "ready", {"app": "t"}, [], "10.244.3.1")
        await add_pod(client, ns, "unready", {"app": "t"}, [], "10.244.3.2", ready=False)
        await add_pod(client, ns, "done", {"app": "t"}, [], "10.244.3.3")
        await client.patch_status(PODS, "done", {"status": {"phase": "Succeeded"}}, ns)
        await add_pod(client, ns, "dying", {"app": "t"}, [], "10.244.3.4")
        await client.delete(PODS, "dying", ns)       # bound: lingers with a deletionTimestamp
        port = (("http", 8080),)
        await wait_for_endpoints(client, ns, "strict", {port: ["10.244.3.1"]}, {port: ["10.244.3.2"]})
        # publishNotReadyAddresses: every pod with an IP is ready, terminating ones too.
        await wait_for_endpoints(client, ns, "loose", {port: ["10.244.3.1", "10.244.3.2", "10.244.3.4"]})
        await remove_pod(client, ns, "dying")


async def test_headless_service_without_ports_publishes_hostnames(client, ns):
    svc = {"metadata": {"name": "db"}, "spec": {"clusterIP": "None", "selector": {"app": "db"}}}
    await client.create(SERVICES, svc, ns)
    async with running(client, EndpointsController, namespace=ns):
        await add_pod(client, ns, "db-0", {"app": "db"}, [], "10.244.4.1", hostname="db-0", subdomain="db")
        await add_pod(client, ns, "db-1", {"app": "db"}, [], "10.244.4.2", hostname="db-1", subdomain="elsewhere")
        ep = await wait_for_endpoints(client, ns, "db", {(): ["10.244.4.1", "10.244.4.2"]})
        hostnames = {a["ip"]: a.get("hostname") for a in ep["subsets"][0]["addresses"]}
        assert hostnames == {"10.244.4.1": "db-0", "10.244.4.2": None}
        assert "ports" not in ep["subsets"][0]
        assert ep["metadata"]["labels"] == {"service.kubernetes.io/headless": ""}


async def test_user_managed_endpoints_are_left_alone_and_owned_ones_follow_the_service(client, ns):
    await client.create(SERVICES, {"metadata": {"name": "manual"}, "spec": {"ports": [{"port": 80}]}}, ns)
    manual = await client.create(ENDPOINTS, {"metadata": {"name": "manual"},
                                             "subsets": [{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"port": 80}]}]}, ns)
    await client.create(SERVICES, {"metadata": {"name": "auto"}, "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}}, ns)
    kubernetes = await client.get(ENDPOINTS, "kubernetes", "default")
    async with running(client, EndpointsController, namespace=ns) as controller:
        await wait_for_endpoints(client, ns, "auto", {})
        # Reconciling by hand what the controller must not touch: a selector-less Service's Endpoints
        # and the API server's own (whose Service this namespace-scoped controller cannot even see).
        await controller.reconcile(f"{ns}/manual")
        await controller.reconcile("default/kubernetes")
        assert (await client.get(ENDPOINTS, "manual", ns))["metadata"]["resourceVersion"] == manual["metadata"]["resourceVersion"]
        assert (await client.get(ENDPOINTS, "kubernetes", "default")) == kubernetes

        # Deleted Endpoints come back; a deleted Service takes its Endpoints along.
        await client.delete(ENDPOINTS, "auto", ns)
        await wait_for_endpoints(client, ns, "auto", {})
        await client.delete(SERVICES, "auto", ns)

        async def gone():
            return await endpoints_of(client, ns, "auto") is None
        await eventually(gone)


def test_repack_merges_addresses_with_the_same_ports():
    def addr(ip, uid):
        return {"ip": ip, "targetRef": {"kind": "Pod", "uid": uid}}
    p80, p81 = {"name": "a", "port": 80, "protocol": "TCP"}, {"name": "b", "port": 81, "protocol": "TCP"}
    packed = repack_subsets([
        {"addresses": [addr("10.0.0.2", "2")], "ports": [p80]},
        {"addresses": [addr("10.0.0.1", "1")], "ports": [p80]},
        {"addresses": [addr("10.0.0.1", "1")], "ports": [p81]},
        {"addresses": [addr("10.0.0.2", "2")], "ports": [p81]},
        {"notReadyAddresses": [addr("10.0.0.3", "3")], "ports": [p80]},
    ])
    assert sorted(packed, key=lambda s: s["ports"][0]["port"]) == [
        {"addresses": [addr("10.0.0.1", "1"), addr("10.0.0.2", "2")], "notReadyAddresses": [addr("10.0.0.3", "3")],
         "ports": [p80]},
        {"addresses": [addr("10.0.0.1", "1"), addr("10.0.0.2", "2")], "ports": [p81]}]
    assert repack_subsets(list(reversed(packed))) == packed     # a stable order: no spurious updates
    # Not ready on a port wins over ready on it.
    assert repack_subsets([{"addresses": [addr("10.0.0.1", "1")], "ports": [p80]},
                           {"notReadyAddresses": [addr("10.0.0.1", "1")], "ports": [p80]}]) == \
        [{"notReadyAddresses": [addr("10.0.0.1", "1")], "ports": [p80]}]
