"""API machinery: watches from a resourceVersion, label-filtered watches, optimistic concurrency,
paginated lists, and the scale and status subresources of Deployments."""
from __future__ import annotations

import json

from kubernetes.client import V1DeploymentCondition

from boxkube.conformance.support import (SUITE_LABEL, api_error, conformance, describe, deployment,
                                         retry_on_conflict, until, watch_events)


def _configmap(name: str, labels: dict[str, str] | None = None, **data: str) -> dict:
    return {"metadata": {"name": name, "labels": {SUITE_LABEL: "true", **(labels or {})}}, "data": data}


def _rv(obj) -> str:
    return obj.metadata.resource_version


def _mutation(events: list[tuple[str, dict]]) -> list[tuple[str, str | None]]:
    return [(t, (o.get("data") or {}).get("mutation")) for t, o in events]


@conformance(area="API", upstream="[sig-api-machinery] Watchers should be able to start watching from a "
                                  "specific resource version [Conformance]")
def test_watch_from_a_resource_version_sees_only_later_changes(core, namespace):
    created = core.create_namespaced_config_map(namespace, _configmap("watched", mutation="0"))
    first = core.patch_namespaced_config_map("watched", namespace, {"data": {"mutation": "1"}})
    core.patch_namespaced_config_map("watched", namespace, {"data": {"mutation": "2"}})
    core.delete_namespaced_config_map("watched", namespace)

    # From the first change's resourceVersion: the changes after it, in order, and nothing before.
    events = watch_events(core.list_namespaced_config_map, count=2, namespace=namespace,
                          field_selector="metadata.name=watched", resource_version=_rv(first))
    assert _mutation(events) == [("MODIFIED", "2"), ("DELETED", "2")], describe(events)
    # From the creation's: both changes and the deletion.
    events = watch_events(core.list_namespaced_config_map, count=3, namespace=namespace,
                          field_selector="metadata.name=watched", resource_version=_rv(created))
    assert _mutation(events) == [("MODIFIED", "1"), ("MODIFIED", "2"), ("DELETED", "2")], describe(events)


@conformance(area="API", upstream="[sig-api-machinery] Watchers should be able to restart watching from the "
                                  "last resource version observed by the previous watch [Conformance]")
def test_a_watch_restarts_from_the_last_resource_version_it_observed(core, namespace):
    created = core.create_namespaced_config_map(namespace, _configmap("restarted", mutation="0"))
    for n in ("1", "2"):
        core.patch_namespaced_config_map("restarted", namespace, {"data": {"mutation": n}})
    # A first watch sees the two changes, then closes.
    first = watch_events(core.list_namespaced_config_map, count=2, namespace=namespace,
                         field_selector="metadata.name=restarted", resource_version=_rv(created))
    assert _mutation(first) == [("MODIFIED", "1"), ("MODIFIED", "2")], describe(first)
    last_seen = first[-1][1]["metadata"]["resourceVersion"]

    # Changes while no watch is open ...
    core.patch_namespaced_config_map("restarted", namespace, {"data": {"mutation": "3"}})
    core.delete_namespaced_config_map("restarted", namespace)
    # ... are all delivered by a watch restarted from the last resourceVersion the first one saw.
    second = watch_events(core.list_namespaced_config_map, count=2, namespace=namespace,
                          field_selector="metadata.name=restarted", resource_version=last_seen)
    assert _mutation(second) == [("MODIFIED", "3"), ("DELETED", "3")], describe(second)


@conformance(area="API", upstream="[sig-api-machinery] Watchers should observe an object deletion if it stops "
                                  "meeting the requirements of the selector [Conformance]")
def test_a_label_filtered_watch_sends_deleted_when_an_object_stops_matching(core, namespace):
    selector = "watch-this=A"
    created = core.create_namespaced_config_map(namespace, _configmap("selected", {"watch-this": "A"},
                                                                      mutation="0"))
    core.patch_namespaced_config_map("selected", namespace, {"data": {"mutation": "1"}})
    core.patch_namespaced_config_map("selected", namespace, {"metadata": {"labels": {"watch-this": "B"}}})
    # Not matching: this change must not reach the watch.
    core.patch_namespaced_config_map("selected", namespace, {"data": {"mutation": "2"}})
    core.patch_namespaced_config_map("selected", namespace, {"metadata": {"labels": {"watch-this": "A"}}})
    core.patch_namespaced_config_map("selected", namespace, {"data": {"mutation": "3"}})
    core.delete_namespaced_config_map("selected", namespace)

    events = watch_events(core.list_namespaced_config_map, count=5, namespace=namespace,
                          label_selector=selector, resource_version=_rv(created))
    assert [t for t, _ in events] == ["MODIFIED", "DELETED", "ADDED", "MODIFIED", "DELETED"], describe(events)
    assert _mutation(events)[0] == ("MODIFIED", "1")
    assert _mutation(events)[2] == ("ADDED", "2"), "matching again, it comes back as it is now"
    assert _mutation(events)[3] == ("MODIFIED", "3")


@conformance(area="API", upstream=None)
def test_an_update_with_a_stale_resource_version_is_a_409_conflict(core, namespace):
    # Optimistic concurrency (API conventions, "Concurrency Control and Consistency"); upstream's
    # conformance tests rely on it everywhere but none is about it alone.
    stale = core.create_namespaced_config_map(namespace, _configmap("contended", owner="first"))
    fresh = core.read_namespaced_config_map("contended", namespace)
    fresh.data = {"owner": "second"}
    updated = core.replace_namespaced_config_map("contended", namespace, fresh)
    assert _rv(updated) != _rv(stale)

    stale.data = {"owner": "third"}
    error = api_error(lambda: core.replace_namespaced_config_map("contended", namespace, stale))
    assert error.status == 409, error
    status = json.loads(error.body)
    assert status["kind"] == "Status" and status["reason"] == "Conflict" and status["code"] == 409, status
    assert status["details"]["name"] == "contended" and status["details"]["kind"] == "configmaps", status
    # A patch whose resourceVersion precondition is stale is refused the same way.
    error = api_error(lambda: core.patch_namespaced_config_map(
        "contended", namespace, {"metadata": {"resourceVersion": _rv(stale)}, "data": {"owner": "fourth"}}))
    assert error.status == 409, error
    assert core.read_namespaced_config_map("contended", namespace).data == {"owner": "second"}


@conformance(area="API", upstream="[sig-api-machinery] Servers with support for API chunking should return "
                                  "chunks of results for list calls [Conformance]")
def test_a_list_in_chunks_with_limit_and_continue_is_one_consistent_snapshot(core, namespace):
    for i in range(7):
        core.create_namespaced_secret(namespace, {"metadata": {"name": f"chunk-{i}", "labels": {SUITE_LABEL: "true"}},
                                                  "stringData": {"i": str(i)}})
    everything = sorted(s.metadata.name for s in core.list_namespaced_secret(namespace).items)
    assert {f"chunk-{i}" for i in range(7)} <= set(everything)

    seen: list[str] = []
    page = core.list_namespaced_secret(namespace, limit=3)
    snapshot_rv = page.metadata.resource_version
    # Made after the first chunk: not in the list the later chunks continue.
    core.create_namespaced_secret(namespace, {"metadata": {"name": "chunk-late", "labels": {SUITE_LABEL: "true"}}})
    while True:
        assert len(page.items) <= 3, [s.metadata.name for s in page.items]
        seen += [s.metadata.name for s in page.items]
        assert page.metadata.resource_version == snapshot_rv, "every chunk is of the first chunk's snapshot"
        token = page.metadata._continue
        remaining = page.metadata.remaining_item_count
        if not token:
            assert not remaining, f"the last chunk says {remaining} items remain"
            break
        assert len(page.items) == 3, "only the last chunk may be short"
        if remaining is not None:
            assert remaining == len(everything) - len(seen), (remaining, seen)
        page = core.list_namespaced_secret(namespace, limit=3, _continue=token)
    assert seen == everything, "the chunks, in order, are the whole list, each item once"
    assert "chunk-late" not in seen


@conformance(area="API", upstream="[sig-apps] Deployment Deployment should have a working scale subresource "
                                  "[Conformance]")
def test_the_scale_subresource_of_a_deployment_reads_and_sets_its_replicas(apps, namespace, images):
    apps.create_namespaced_deployment(namespace, deployment("scaled", "scaled", images.web, images.web_port, 1))
    scale = apps.read_namespaced_deployment_scale("scaled", namespace)
    assert (scale.kind, scale.api_version) == ("Scale", "autoscaling/v1")
    assert scale.metadata.name == "scaled" and scale.metadata.namespace == namespace
    assert scale.spec.replicas == 1

    def scale_to_2():
        fresh = apps.read_namespaced_deployment_scale("scaled", namespace)
        fresh.spec.replicas = 2
        return apps.replace_namespaced_deployment_scale("scaled", namespace, fresh)
    replaced = retry_on_conflict(scale_to_2)
    assert replaced.spec.replicas == 2
    assert apps.read_namespaced_deployment("scaled", namespace).spec.replicas == 2

    patched = apps.patch_namespaced_deployment_scale("scaled", namespace, {"spec": {"replicas": 3}})
    assert patched.spec.replicas == 3
    assert apps.read_namespaced_deployment("scaled", namespace).spec.replicas == 3

    def converged():
        s = apps.read_namespaced_deployment_scale("scaled", namespace)
        return s if s.status.replicas == 3 else None
    final = until(converged, timeout=90, what="the Scale's status.replicas at 3")
    assert final.status.selector and "app=scaled" in final.status.selector, final.status
    # A stale Scale is a conflict too.
    error = api_error(lambda: apps.replace_namespaced_deployment_scale("scaled", namespace, scale))
    assert error.status == 409, error


@conformance(area="API", upstream="[sig-apps] Deployment should validate Deployment Status endpoints [Conformance]")
def test_the_status_subresource_changes_only_status_and_the_main_resource_only_spec(apps, namespace, images):
    apps.create_namespaced_deployment(namespace, deployment("statused", "statused", images.web, images.web_port, 1))
    condition = V1DeploymentCondition(type="ConformanceStatusUpdate", status="True", reason="E2E",
                                      message="set through /status")

    # Through /status: the status changes, the spec does not.
    def update_status():
        current = apps.read_namespaced_deployment_status("statused", namespace)
        current.spec.replicas = 5
        current.status.conditions = [*(current.status.conditions or []), condition]
        return current, apps.replace_namespaced_deployment_status("statused", namespace, current)
    current, updated = retry_on_conflict(update_status)
    assert updated.spec.replicas == 1, "an update of /status changed the spec"
    assert "ConformanceStatusUpdate" in [c.type for c in updated.status.conditions or []]
    assert updated.metadata.generation == current.metadata.generation

    patched = apps.patch_namespaced_deployment_status("statused", namespace, {
        "spec": {"replicas": 6},
        "status": {"conditions": [*[c.to_dict() for c in updated.status.conditions or []],
                                  {"type": "ConformanceStatusPatch", "status": "True", "reason": "E2E"}]}})
    assert patched.spec.replicas == 1, "a patch of /status changed the spec"
    assert {"ConformanceStatusUpdate", "ConformanceStatusPatch"} <= {c.type for c in patched.status.conditions}

    # Through the main resource: the spec changes, the status does not.
    def update_main():
        obj = apps.read_namespaced_deployment("statused", namespace)
        obj.spec.replicas = 2
        obj.status.conditions = [c for c in obj.status.conditions or [] if not c.type.startswith("Conformance")]
        obj.status.conditions.append(V1DeploymentCondition(type="ConformanceMainUpdate", status="True", reason="E2E"))
        return apps.replace_namespaced_deployment("statused", namespace, obj)
    main = retry_on_conflict(update_main)
    assert main.spec.replicas == 2
    assert main.metadata.generation > updated.metadata.generation, "a spec change bumps metadata.generation"
    types = {c.type for c in main.status.conditions or []}
    assert "ConformanceMainUpdate" not in types, "an update of the main resource changed the status"
    assert {"ConformanceStatusUpdate", "ConformanceStatusPatch"} <= types, \
        "an update of the main resource dropped conditions set through /status"
