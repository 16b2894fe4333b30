"""ApiClient against the session cluster's real API server: verbs, errors, paging, selectors, watch."""
from __future__ import annotations

import asyncio
import base64

import pytest
import yaml

from boxkube.client import ApiClient, ApiError, ClientConfig, ConfigError, resource

CONFIGMAPS, PODS, DEPLOYMENTS, NODES = resource("cm"), resource("Pod"), resource("deployments.apps"), resource("nodes")


def cm(name: str, labels: dict | None = None, **data: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels or {}}, "data": data}


def pod(name: str, **labels: str) -> dict:
    return {"metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}


def test_resource_lookup():
    assert resource("deploy") is resource("Deployment") is resource("deployments.apps")
    assert (resource("nodes").namespaced, resource("po").plural) == (False, "pods")
    with pytest.raises(KeyError):
        resource("widgets")


async def test_create_get_replace_delete_and_errors(client, ns):
    created = await client.create(CONFIGMAPS, cm("a", x="1"), ns)
    assert created["metadata"]["uid"] and created["metadata"]["namespace"] == ns
    got = await client.get(CONFIGMAPS, "a", ns)
    assert got["data"] == {"x": "1"}

    got["data"]["x"] = "2"
    replaced = await client.replace(CONFIGMAPS, got)
    assert int(replaced["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    with pytest.raises(ApiError) as stale:            # still carries the first resourceVersion
        await client.replace(CONFIGMAPS, dict(created, data={"x": "stale"}))
    assert stale.value.is_conflict and stale.value.code == 409 and not stale.value.is_already_exists
    assert 'configmaps "a"' in stale.value.message and stale.value.details["name"] == "a"

    with pytest.raises(ApiError) as dup:
        await client.create(CONFIGMAPS, cm("a"), ns)
    assert dup.value.is_already_exists and not dup.value.is_conflict
    with pytest.raises(ApiError) as bad:
        await client.create(CONFIGMAPS, {"metadata": {"name": "Not_A_Name"}}, ns)
    assert bad.value.is_invalid and bad.value.code == 422

    with pytest.raises(ApiError) as precondition:
        await client.delete(CONFIGMAPS, "a", ns, preconditions={"uid": "not-the-uid"})
    assert precondition.value.is_conflict
    status = await client.delete(CONFIGMAPS, "a", ns, preconditions={"uid": created["metadata"]["uid"]},
                                 propagation_policy="Background", grace_period_seconds=0)
    assert status["kind"] == "Status" and status["status"] == "Success"
    with pytest.raises(ApiError) as gone:
        await client.get(CONFIGMAPS, "a", ns)
    assert gone.value.is_not_found and gone.value.status["kind"] == "Status"
    with pytest.raises(ValueError):
        await client.get(CONFIGMAPS, "a")             # namespaced: a namespace is needed


async def test_dry_run_and_finalizers_hold_deletion(client, ns):
    await client.create(CONFIGMAPS, cm("dry"), ns, dry_run=True)
    with pytest.raises(ApiError) as e:
        await client.get(CONFIGMAPS, "dry", ns)
    assert e.value.is_not_found

    held = cm("held")
    held["metadata"]["finalizers"] = ["example.com/hold"]
    await client.create(CONFIGMAPS, held, ns)
    marked = await client.delete(CONFIGMAPS, "held", ns)
    assert marked["metadata"]["deletionTimestamp"]
    await client.patch(CONFIGMAPS, "held", {"metadata": {"finalizers": None}}, ns)
    with pytest.raises(ApiError) as gone:
        await client.get(CONFIGMAPS, "held", ns)
    assert gone.value.is_not_found


async def test_patch_types_and_server_side_apply(client, ns):
    await client.create(CONFIGMAPS, cm("p", {"app": "web"}, a="1"), ns)
    merged = await client.patch(CONFIGMAPS, "p", {"data": {"b": "2"}}, ns)
    assert merged["data"] == {"a": "1", "b": "2"}
    jsoned = await client.patch(CONFIGMAPS, "p", [{"op": "remove", "path": "/data/a"}], ns, patch_type="json")
    assert jsoned["data"] == {"b": "2"}
    strategic = await client.patch(CONFIGMAPS, "p", {"metadata": {"labels": {"tier": "x"}}}, ns,
                                   patch_type="strategic")
    assert strategic["metadata"]["labels"] == {"app": "web", "tier": "x"}

    applied = await client.apply(CONFIGMAPS, cm("s", c="1") | {"metadata": {"name": "s", "namespace": ns}},
                                 field_manager="tester")
    assert applied["data"] == {"c": "1"}
    assert any(m["manager"] == "tester" and m["operation"] == "Apply" for m in applied["metadata"]["managedFields"])
    await client.patch(CONFIGMAPS, "s", {"data": {"c": "2"}}, ns, field_manager="other")
    with pytest.raises(ApiError) as conflict:
        await client.apply(CONFIGMAPS, cm("s", c="3") | {"metadata": {"name": "s", "namespace": ns}},
                           field_manager="tester")
    assert conflict.value.is_conflict and "Apply failed" in conflict.value.message
    forced = await client.apply(CONFIGMAPS, cm("s", c="3") | {"metadata": {"name": "s", "namespace": ns}},
                                field_manager="tester", force=True)
    assert forced["data"] == {"c": "3"}
    with pytest.raises(ValueError):
        await client.patch(CONFIGMAPS, "s", {}, ns, patch_type="yaml")


async def test_status_and_scale_subresources(client, ns):
    await client.create(PODS, pod("web"), ns)
    with_status = await client.patch_status(PODS, "web", {"status": {"phase": "Running"}}, ns)
    assert with_status["status"]["phase"] == "Running"
    current = await client.get(PODS, "web", ns)
    current["status"]["message"] = "ok"
    current["spec"]["activeDeadlineSeconds"] = 5      # the status subresource writes only status
    updated = await client.update_status(PODS, current)
    assert updated["status"]["message"] == "ok" and "activeDeadlineSeconds" not in updated["spec"]

    deploy = {"metadata": {"name": "d"}, "spec": {
        "replicas": 1, "selector": {"matchLabels": {"app": "d"}},
        "template": {"metadata": {"labels": {"app": "d"}}, "spec": pod("x")["spec"]}}}
    await client.create(DEPLOYMENTS, deploy, ns)
    scale = await client.scale(DEPLOYMENTS, "d", 3, ns)
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 3
    assert (await client.get_scale(DEPLOYMENTS, "d", ns))["status"]["selector"] == "app=d"
    assert (await client.get(DEPLOYMENTS, "d", ns))["spec"]["replicas"] == 3


async def test_binding_subresource(client, ns):
    await client.create(PODS, pod("web"), ns)
    assert (await client.bind("web", ns, "node-1"))["status"] == "Success"
    assert (await client.get(PODS, "web", ns))["spec"]["nodeName"] == "node-1"
    with pytest.raises(ApiError) as twice:
        await client.bind("web", ns, "node-2")
    assert twice.value.is_conflict


async def test_paging_selectors_and_list_all(client, ns):
    for i in range(7):
        await client.create(CONFIGMAPS, cm(f"m{i}", {"parity": "even" if i % 2 == 0 else "odd"}), ns)
    first = await client.list(CONFIGMAPS, ns, limit=3)
    assert [o["metadata"]["name"] for o in first["items"]] == ["m0", "m1", "m2"]
    assert first["items"][0]["kind"] == "ConfigMap" and first["items"][0]["apiVersion"] == "v1"
    token = first["metadata"]["continue"]
    second = await client.list(CONFIGMAPS, ns, limit=3, continue_=token)
    assert [o["metadata"]["name"] for o in second["items"]] == ["m3", "m4", "m5"]
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]   # one snapshot

    everything = await client.list_all(CONFIGMAPS, ns, page_size=2)
    assert [o["metadata"]["name"] for o in everything["items"]] == [f"m{i}" for i in range(7)]
    assert "continue" not in everything["metadata"]
    odd = await client.list_all(CONFIGMAPS, ns, label_selector="parity=odd", page_size=2)
    assert [o["metadata"]["name"] for o in odd["items"]] == ["m1", "m3", "m5"]
    named = await client.list(CONFIGMAPS, ns, field_selector="metadata.name=m4")
    assert [o["metadata"]["name"] for o in named["items"]] == ["m4"]
    with pytest.raises(ApiError) as bad:
        await client.list(CONFIGMAPS, ns, label_selector="a in (")
    assert bad.value.is_bad_request

    removed = await client.delete_collection(CONFIGMAPS, ns, label_selector="parity=even")
    assert len(removed["items"]) == 4
    assert [o["metadata"]["name"] for o in (await client.list(CONFIGMAPS, ns))["items"]] == ["m1", "m3", "m5"]


async def test_watch_from_a_resource_version(client, ns):
    start = (await client.list(CONFIGMAPS, ns))["metadata"]["resourceVersion"]
    await client.create(CONFIGMAPS, cm("w", {"watched": "yes"}, a="1"), ns)
    await client.patch(CONFIGMAPS, "w", {"data": {"a": "2"}}, ns)
    await client.create(CONFIGMAPS, cm("other"), ns)
    await client.delete(CONFIGMAPS, "w", ns)
    seen = []
    async with client.watch(CONFIGMAPS, ns, resource_version=start, label_selector="watched=yes",
                            timeout_seconds=5) as events:
        async for kind, obj in events:
            seen.append((kind, obj["metadata"]["name"], (obj.get("data") or {}).get("a")))
            if kind == "DELETED":
                break
    assert seen == [("ADDED", "w", "1"), ("MODIFIED", "w", "2"), ("DELETED", "w", "2")]

    # One object by name; the server ends the watch at timeoutSeconds.
    names = [obj["metadata"]["name"] async for _, obj in client.watch(CONFIGMAPS, ns, name="other", timeout_seconds=1)]
    assert names == ["other"]                         # no resourceVersion: the current state first


async def test_watch_bookmarks(client, ns, second_server):
    async with second_server.client() as c:
        start = (await c.list(CONFIGMAPS, ns))["metadata"]["resourceVersion"]
        async with c.watch(CONFIGMAPS, ns, resource_version=start, timeout_seconds=5) as events:
            kind, obj = await asyncio.wait_for(anext(events), 3)
    assert kind == "BOOKMARK" and int(obj["metadata"]["resourceVersion"]) >= int(start)


async def test_compacted_resource_versions_are_gone(ns, second_server):
    async with second_server.client() as client:
        for i in range(3):
            await client.create(CONFIGMAPS, cm(f"g{i}"), ns)
        first = await client.list(CONFIGMAPS, ns, limit=1)
        for name in ("later", "later-still"):      # compaction keeps its own revision: move past first's + 1
            await client.create(CONFIGMAPS, cm(name), ns)
        await second_server.compact()

        with pytest.raises(ApiError) as expired_page:
            await client.list(CONFIGMAPS, ns, limit=1, continue_=first["metadata"]["continue"])
        assert expired_page.value.is_gone and expired_page.value.reason == "Expired"
        with pytest.raises(ApiError) as old_list:
            await client.list(CONFIGMAPS, ns, resource_version=first["metadata"]["resourceVersion"],
                              resource_version_match="Exact")
        assert old_list.value.is_gone
        with pytest.raises(ApiError) as old_watch:
            async for _ in client.watch(CONFIGMAPS, ns, resource_version=first["metadata"]["resourceVersion"],
                                        timeout_seconds=5):
                pass
        assert old_watch.value.is_gone and old_watch.value.code == 410
        assert "too old resource version" in old_watch.value.message


async def test_connection_and_kubeconfig(cluster, tmp_path):
    server, token, ca = cluster.server_and_token()
    async with ApiClient(ClientConfig(server, token, ca_data=ca)) as c:
        assert (await c.get(resource("ns"), "default"))["metadata"]["name"] == "default"
    async with ApiClient(ClientConfig(server, "wrong-token", ca_data=base64.b64decode(ca))) as c:
        with pytest.raises(ApiError) as e:
            await c.list(NODES)
        assert e.value.is_unauthorized

    # A second kubeconfig file in $KUBECONFIG, with the CA as a relative file path and a named context.
    (tmp_path / "ca.crt").write_bytes(base64.b64decode(ca))
    (tmp_path / "token").write_text(token + "\n")
    other = {"apiVersion": "v1", "kind": "Config", "current-context": "mine",
             "clusters": [{"name": "c", "cluster": {"server": server, "certificate-authority": "ca.crt"}}],
             "users": [{"name": "u", "user": {"tokenFile": "token"}}],
             "contexts": [{"name": "mine", "context": {"cluster": "c", "user": "u"}}]}
    (tmp_path / "config").write_text(yaml.safe_dump(other))
    env = {"KUBECONFIG": f"{cluster.kubeconfig}:{tmp_path / 'config'}"}
    config = ClientConfig.from_kubeconfig(context="mine", environ=env)
    assert config.ca_file == str(tmp_path / "ca.crt") and config.token == token
    async with ApiClient(config) as c:
        assert (await c.list(NODES))["kind"] == "NodeList"
    assert ClientConfig.from_kubeconfig(environ=env).ca_data == ca    # the first file's current context
    with pytest.raises(ConfigError):
        ClientConfig.from_kubeconfig(context="nope", environ=env)
    with pytest.raises(ConfigError):
        ClientConfig.from_kubeconfig(tmp_path / "missing")


def test_status_of_a_non_status_body():
    e = ApiError.from_response(404, b"404 page not found")
    assert e.is_not_found and e.reason == "NotFound" and e.message == "404 page not found"
    assert ApiError.from_response(503, b"").message == "Service Unavailable"
    assert ApiError({"code": 409, "reason": "SomethingNew"}).is_conflict    # an unknown reason: the code decides
    assert not ApiError({"code": 409, "reason": "AlreadyExists"}).is_conflict
