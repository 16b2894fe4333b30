"""Rollouts: a Deployment replaces its pods as its strategy says (RollingUpdate, Recreate), shares a
scaling out among the ReplicaSets of a rollout in progress, rolls over a rollout that is still going,
keeps revisionHistoryLimit old ReplicaSets, rolls back to an earlier revision, and reports in its
status what `kubectl rollout status` reads."""
from __future__ import annotations

import time
import uuid
from typing import Any

from boxkube.conformance.support import (conformance, deployment, is_ready, live, poll, pod_template,
                                         replicaset, until)

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
HASH = "pod-template-hash"
# Nodes that only simulate containers answer probes themselves; boxkube's read this annotation to fail
# a readiness probe. Any other cluster ignores it (an annotation is only data), and really runs the probe.
SIMULATED_READINESS = "sim.boxkube.dev/readiness-probe"


# ---------------------------------------------------------------------------------------------
# Builders

def _template(app: str, images, version: str, *, ready: bool = True) -> dict:
    """The web pod template, told apart by its VERSION variable. `ready=False`: its pods run but never
    become ready (its readiness probe asks a port nobody listens on), so a rollout to it gets stuck,
    as upstream's rollouts to an image that does not exist do."""
    template = pod_template(app, images.web, images.web_port)
    container = template["spec"]["containers"][0]
    container["env"].append({"name": "VERSION", "value": version})
    if not ready:
        container["readinessProbe"] = {"tcpSocket": {"port": images.web_port + 1},
                                       "periodSeconds": 1, "failureThreshold": 1}
        template["metadata"]["annotations"] = {SIMULATED_READINESS: "fail"}
    return template


def _deployment(name: str, images, replicas: int, version: str = "1", *, ready: bool = True, **spec: Any) -> dict:
    d = deployment(name, name, images.web, images.web_port, replicas)
    d["spec"]["template"] = _template(name, images, version, ready=ready)
    d["spec"].update(spec)
    return d


def _rolling(max_surge: int | str, max_unavailable: int | str) -> dict:
    return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": max_surge, "maxUnavailable": max_unavailable}}


def _adoptable_replicaset(name: str, app: str, images, replicas: int, **annotations: str) -> dict:
    """A ReplicaSet made before the Deployment whose selector matches its pods (as upstream's tests make
    one): its own selector and pods also carry pod=old, which the Deployment's template does not."""
    rs = replicaset(name, app, images.web, images.web_port, replicas)
    rs["spec"]["selector"]["matchLabels"]["pod"] = "old"
    rs["spec"]["template"]["metadata"]["labels"]["pod"] = "old"
    if annotations:
        rs["metadata"]["annotations"] = annotations
    return rs


# ---------------------------------------------------------------------------------------------
# Reading

def _annotation(obj, key: str) -> str | None:
    return (obj.metadata.annotations or {}).get(key)


def _version(spec) -> str | None:
    """The VERSION variable of a pod spec's (or a template spec's) first container."""
    return next((e.value for e in spec.containers[0].env or [] if e.name == "VERSION"), None)


def _pods(core, namespace: str, app: str) -> list:
    return live(core.list_namespaced_pod(namespace, label_selector=f"app={app}").items)


def _replica_sets(apps, namespace: str, app: str) -> list:
    return apps.list_namespaced_replica_set(namespace, label_selector=f"app={app}").items


def _by_revision(apps, namespace: str, app: str) -> dict[str, Any]:
    return {_annotation(rs, REVISION): rs for rs in _replica_sets(apps, namespace, app)}


def _sizes(rs) -> tuple[int, int, int]:
    """(spec.replicas, status.replicas, status.availableReplicas)"""
    return rs.spec.replicas or 0, rs.status.replicas or 0, rs.status.available_replicas or 0


def _counts(d) -> dict[str, int]:
    st = d.status
    return {"generation": d.metadata.generation or 0, "observedGeneration": st.observed_generation or 0,
            "spec.replicas": d.spec.replicas or 0, "replicas": st.replicas or 0,
            "updatedReplicas": st.updated_replicas or 0, "availableReplicas": st.available_replicas or 0}


def _condition(d, kind: str):
    return next((c for c in d.status.conditions or [] if c.type == kind), None)


def _complete(d) -> bool:
    """Upstream e2e's DeploymentComplete: every replica updated and available, no old one left, and the
    latest generation observed."""
    n = _counts(d)
    return (n["updatedReplicas"] == n["spec.replicas"] == n["replicas"] == n["availableReplicas"]
            and n["observedGeneration"] >= n["generation"])


def _rollout_status(d) -> tuple[str, bool]:
    """What `kubectl rollout status` says of a Deployment (its DeploymentStatusViewer): (message, done).
    A Progressing condition with reason ProgressDeadlineExceeded is its error."""
    n, name = _counts(d), d.metadata.name
    if n["generation"] > n["observedGeneration"]:
        return "Waiting for deployment spec update to be observed...", False
    progressing = _condition(d, "Progressing")
    if progressing is not None and progressing.reason == "ProgressDeadlineExceeded":
        return f'error: deployment "{name}" exceeded its progress deadline', False
    if n["updatedReplicas"] < n["spec.replicas"]:
        return (f'Waiting for deployment "{name}" rollout to finish: {n["updatedReplicas"]} out of '
                f'{n["spec.replicas"]} new replicas have been updated...'), False
    if n["replicas"] > n["updatedReplicas"]:
        return (f'Waiting for deployment "{name}" rollout to finish: {n["replicas"] - n["updatedReplicas"]} '
                "old replicas are pending termination..."), False
    if n["availableReplicas"] < n["updatedReplicas"]:
        return (f'Waiting for deployment "{name}" rollout to finish: {n["availableReplicas"]} of '
                f'{n["updatedReplicas"]} updated replicas are available...'), False
    return f'deployment "{name}" successfully rolled out', True


def _summary(d) -> str:
    progressing = _condition(d, "Progressing")
    return (f"revision {_annotation(d, REVISION)}, {_counts(d)}, Progressing "
            f"{(progressing.status, progressing.reason) if progressing else None}")


def _wait_complete(apps, namespace: str, name: str, *, revision: str | None = None, timeout: float = 60,
                   check=None):
    """Poll the Deployment until it is complete (at `revision`, if given); `check(d)` sees every read."""
    last: list = [None]

    def done():
        d = last[0] = apps.read_namespaced_deployment(name, namespace)
        if check is not None:
            check(d)
        return d if _complete(d) and (revision is None or _annotation(d, REVISION) == revision) else None
    try:
        return until(done, timeout=timeout, what=f"deployment {name} complete" +
                     (f" at revision {revision}" if revision else ""))
    except AssertionError as e:
        raise AssertionError(f"{e}; last seen: {_summary(last[0]) if last[0] else None}") from None


def _rolling_invariants(apps, namespace: str, app: str, max_total: int, min_available: int):
    """Upstream's checkRollingUpdateStatus, for `_wait_complete(check=)`: once the Deployment's latest
    generation is observed, its ReplicaSets never want more than replicas + maxSurge pods, and never
    fewer than replicas - maxUnavailable are available."""
    def check(d) -> None:
        n = _counts(d)
        if n["observedGeneration"] < n["generation"]:
            return
        sizes = {rs.metadata.name: rs.spec.replicas or 0 for rs in _replica_sets(apps, namespace, app)}
        assert sum(sizes.values()) <= max_total, f"ReplicaSets {sizes}: more than the {max_total} pods allowed"
        assert n["availableReplicas"] >= min_available, \
            f"{n['availableReplicas']} available, fewer than the {min_available} required: {_summary(d)}"
    return check


def _owned_by(obj, owner) -> bool:
    return any(r.controller and r.uid == owner.metadata.uid for r in obj.metadata.owner_references or [])


# ---------------------------------------------------------------------------------------------
# Writing

def _roll_to(apps, namespace: str, name: str, template: dict, **spec: Any):
    """Start a rollout: the pod template replaced (a JSON patch, as `kubectl rollout undo` writes one),
    and any other spec fields given set."""
    ops = [{"op": "replace", "path": "/spec/template", "value": template}]
    ops += [{"op": "add", "path": f"/spec/{field}", "value": value} for field, value in spec.items()]
    return apps.patch_namespaced_deployment(name, namespace, ops)


def _pod_history(core, namespace: str, since: str, marker: str, timeout: float = 30) -> list[tuple[str, dict]]:
    """Every change to the namespace's pods after resourceVersion `since`, up to now, as (type, raw pod):
    the pod `marker` is labelled, and a watch from `since` is read until that change arrives (so no
    comparison of resourceVersions, which are opaque)."""
    from kubernetes import watch

    token = uuid.uuid4().hex[:8]
    core.patch_namespaced_pod(marker, namespace, {"metadata": {"labels": {"conformance-mark": token}}})
    events: list[tuple[str, dict]] = []
    w = watch.Watch()
    try:
        for event in w.stream(core.list_namespaced_pod, namespace, resource_version=since,
                              timeout_seconds=int(timeout), _request_timeout=timeout + 5):
            if event["type"] == "BOOKMARK":
                continue
            pod = event["raw_object"]
            meta = pod.get("metadata") or {}
            if meta.get("name") == marker and (meta.get("labels") or {}).get("conformance-mark") == token:
                return events
            events.append((event["type"], pod))
    finally:
        w.stop()
    raise AssertionError(f"the watch from resourceVersion {since} did not reach the marking of pod {marker} "
                         f"within {timeout:g} s ({len(events)} events)")


def _hash_of(pod: dict) -> str | None:
    return ((pod.get("metadata") or {}).get("labels") or {}).get(HASH)


def _finished(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


# ---------------------------------------------------------------------------------------------
# The tests

@conformance(area="Rollouts", upstream="[sig-apps] Deployment RollingUpdateDeployment should delete old pods and "
                                       "create new ones [Conformance]")
def test_a_rolling_update_deletes_the_old_pods_and_creates_new_ones(core, apps, namespace, images):
    # As upstream: a ReplicaSet with a (large) revision is there first; the Deployment adopts it as its
    # old ReplicaSet, numbers its own next to it, and rolls its pods over to the Deployment's template.
    apps.create_namespaced_replica_set(namespace, _adoptable_replicaset(
        "rolling-old", "rolling", images, 3, **{REVISION: "3546343826724305832"}))
    old_pods = poll(lambda: _pods(core, namespace, "rolling"), lambda p: len(p) == 3 and all(map(is_ready, p)),
                    timeout=60, what="3 ready pods of the ReplicaSet made first")

    # replicas 3 and the default strategy (25% / 25%): maxSurge 1, maxUnavailable 0.
    d = apps.create_namespaced_deployment(namespace, _deployment("rolling", images, 3, version="2"))
    _wait_complete(apps, namespace, "rolling", revision="3546343826724305833",
                   check=_rolling_invariants(apps, namespace, "rolling", 4, 3))

    rss = {rs.metadata.name: rs for rs in _replica_sets(apps, namespace, "rolling")}
    assert len(rss) == 2, sorted(rss)
    old = rss.pop("rolling-old")
    new = next(iter(rss.values()))
    assert _owned_by(old, d) and _owned_by(new, d), "both ReplicaSets are the Deployment's"
    assert old.spec.replicas == 0, f"the old ReplicaSet scaled to 0, not {old.spec.replicas}"
    assert new.spec.replicas == 3 and _annotation(new, REVISION) == "3546343826724305833", _sizes(new)
    new_hash = new.metadata.labels[HASH]
    assert new.metadata.name == f"rolling-{new_hash}"
    assert new.spec.selector.match_labels == {"app": "rolling", HASH: new_hash}

    old_uids = {p.metadata.uid for p in old_pods}
    pods = poll(lambda: core.list_namespaced_pod(namespace, label_selector="app=rolling").items,
                lambda p: not {x.metadata.uid for x in p} & old_uids and len(p) == 3 and all(map(is_ready, p)),
                timeout=60, what="the old pods deleted and 3 new ones ready")
    for pod in pods:
        assert pod.metadata.labels.get(HASH) == new_hash and "pod" not in pod.metadata.labels, pod.metadata.labels
        assert _owned_by(pod, new), f"{pod.metadata.name} is not the new ReplicaSet's"
        assert _version(pod.spec) == "2", f"{pod.metadata.name} does not run the new template"
    until(lambda: _sizes(apps.read_namespaced_replica_set("rolling-old", namespace)) == (0, 0, 0),
          timeout=30, what="the old ReplicaSet reporting no pods")


@conformance(area="Rollouts", upstream="[sig-apps] Deployment RecreateDeployment should delete old pods and "
                                       "create new ones [Conformance]")
def test_recreate_never_runs_old_and_new_pods_together(core, apps, namespace, images):
    apps.create_namespaced_deployment(namespace, _deployment("recreate", images, 3, strategy={"type": "Recreate"}))
    _wait_complete(apps, namespace, "recreate", revision="1")
    before = core.list_namespaced_pod(namespace, label_selector="app=recreate")
    old_hash = {p.metadata.labels.get(HASH) for p in before.items}
    assert len(old_hash) == 1 and len(live(before.items)) == 3, old_hash

    _roll_to(apps, namespace, "recreate", _template("recreate", images, "2"))
    _wait_complete(apps, namespace, "recreate", revision="2")
    new_pods = _pods(core, namespace, "recreate")
    new_hash = {p.metadata.labels[HASH] for p in new_pods}
    assert len(new_pods) == 3 and len(new_hash) == 1 and not new_hash & old_hash, [
        (p.metadata.name, p.metadata.labels.get(HASH)) for p in new_pods]
    assert all(_version(p.spec) == "2" for p in new_pods)

    # Replay every change of the pods since the rollout began: at no point may a new pod exist
    # while an old one has not finished (is still there, in a phase other than Succeeded/Failed).
    history = _pod_history(core, namespace, before.metadata.resource_version, new_pods[0].metadata.name)
    pods = {p.metadata.name: {"metadata": {"labels": p.metadata.labels}, "status": {"phase": p.status.phase}}
            for p in before.items}
    seen_new, deleted = set(), set()
    for i, (kind, pod) in enumerate(history):
        name = pod["metadata"]["name"]
        if kind == "DELETED":
            pods.pop(name, None)
            deleted.add(name)
        else:
            pods[name] = pod
        old_running = sorted(n for n, p in pods.items() if _hash_of(p) in old_hash and not _finished(p))
        new_there = sorted(n for n, p in pods.items() if _hash_of(p) in new_hash)
        seen_new.update(new_there)
        assert not (old_running and new_there), (
            f"event {i} ({kind} {name}): new pods {new_there} exist while old pods {old_running} still run")
    assert {p.metadata.name for p in new_pods} <= seen_new
    assert {p.metadata.name for p in before.items} <= deleted, "every old pod was deleted"


@conformance(area="Rollouts", upstream="[sig-apps] Deployment deployment should support proportional scaling "
                                       "[Conformance]")
def test_scaling_a_deployment_mid_rollout_shares_the_new_replicas_out_proportionally(core, apps, namespace, images):
    # Upstream's numbers: 10 replicas, maxSurge 3, maxUnavailable 2.
    apps.create_namespaced_deployment(namespace, _deployment("proportional", images, 10, strategy=_rolling(3, 2)))
    _wait_complete(apps, namespace, "proportional", revision="1")
    first = _by_revision(apps, namespace, "proportional")["1"].metadata.name

    # A rollout that gets stuck: the new pods never become ready.
    d = _roll_to(apps, namespace, "proportional", _template("proportional", images, "2", ready=False))
    poll(lambda: apps.read_namespaced_deployment("proportional", namespace),
         lambda x: (x.status.observed_generation or 0) >= d.metadata.generation, timeout=30,
         what="the new template observed")
    # The first ReplicaSet goes down to replicas - maxUnavailable = 8 (all available), the second up to
    # replicas + maxSurge - 8 = 5 (none available), and there it stays.
    poll(lambda: _sizes(apps.read_namespaced_replica_set(first, namespace)), lambda s: s == (8, 8, 8),
         timeout=60, what=f"the first ReplicaSet {first} at 8 replicas, 8 available")
    second = poll(lambda: _by_revision(apps, namespace, "proportional").get("2"),
                  lambda rs: rs is not None and _sizes(rs) == (5, 5, 0), timeout=60,
                  what="the second ReplicaSet at 5 replicas, none available")
    assert (apps.read_namespaced_deployment("proportional", namespace).status.available_replicas or 0) >= 8

    apps.patch_namespaced_deployment_scale("proportional", namespace, {"spec": {"replicas": 30}})

    # 30 + 3 = 33 replicas allowed, 20 more than the 13 there are: the first gets 8 + 20 * 8/13 = 20 and
    # the second 5 + 20 * 5/13 = 13 (each share rounded to the nearest).
    poll(lambda: (_sizes(apps.read_namespaced_replica_set(first, namespace)),
                  _sizes(apps.read_namespaced_replica_set(second.metadata.name, namespace))),
         lambda sizes: sizes == ((20, 20, 20), (13, 13, 0)), timeout=60,
         what="the ReplicaSets (spec, status, available replicas) at (20, 20, 20) and (13, 13, 0)")
    for name in (first, second.metadata.name):
        rs = apps.read_namespaced_replica_set(name, namespace)
        assert (_annotation(rs, DESIRED_REPLICAS), _annotation(rs, MAX_REPLICAS)) == ("30", "33"), \
            f"{name}: {rs.metadata.annotations}"
    assert len(_pods(core, namespace, "proportional")) == 33


@conformance(area="Rollouts", upstream="[sig-apps] Deployment deployment should support rollover [Conformance]")
def test_a_new_rollout_rolls_over_one_still_in_progress(core, apps, namespace, images):
    apps.create_namespaced_replica_set(namespace, _adoptable_replicaset("rollover-old", "rollover", images, 1))
    poll(lambda: apps.read_namespaced_replica_set("rollover-old", namespace),
         lambda rs: (rs.status.ready_replicas or 0) == 1, timeout=60, what="the ReplicaSet made first ready")

    # Adopts that ReplicaSet and starts a rollout that cannot finish: its pod never becomes ready (upstream:
    # an image that does not exist), and with maxUnavailable 0 the old pod stays. (minReadySeconds: 10
    # upstream, 3 here to keep the test short.)
    d = apps.create_namespaced_deployment(namespace, _deployment(
        "rollover", images, 1, version="1", ready=False, strategy=_rolling(1, 0), minReadySeconds=3))
    d = poll(lambda: apps.read_namespaced_deployment("rollover", namespace),
             lambda x: (x.status.observed_generation or 0) >= d.metadata.generation
             and (x.status.updated_replicas or 0) >= 1 and _annotation(x, REVISION) == "1",
             timeout=60, what="the rollout started: revision 1, an updated replica")
    stuck = _by_revision(apps, namespace, "rollover")["1"]
    assert stuck.metadata.name != "rollover-old" and _version(stuck.spec.template.spec) == "1"
    for name in ("rollover-old", stuck.metadata.name):
        poll(lambda: _sizes(apps.read_namespaced_replica_set(name, namespace)),
             lambda s: s[:2] == (1, 1), timeout=30, what=f"{name} with 1 replica (spec and status)")

    # Change the template again before that rollout is done: it rolls over both earlier ReplicaSets.
    _roll_to(apps, namespace, "rollover", _template("rollover", images, "2"))
    _wait_complete(apps, namespace, "rollover", revision="2",
                   check=_rolling_invariants(apps, namespace, "rollover", 2, 1))
    new = _by_revision(apps, namespace, "rollover")["2"]
    assert _version(new.spec.template.spec) == "2" and _sizes(new) == (1, 1, 1), _sizes(new)
    for name in ("rollover-old", stuck.metadata.name):
        poll(lambda: _sizes(apps.read_namespaced_replica_set(name, namespace)), lambda s: s[:2] == (0, 0),
             timeout=30, what=f"{name} scaled to 0 (spec and status)")
    pods = poll(lambda: core.list_namespaced_pod(namespace, label_selector="app=rollover").items,
                lambda p: len(p) == 1, timeout=30, what="only the new pod left")
    assert pods[0].metadata.labels[HASH] == new.metadata.labels[HASH] and _version(pods[0].spec) == "2"


@conformance(area="Rollouts", upstream="[sig-apps] Deployment deployment should delete old replica sets "
                                       "[Conformance]")
def test_revision_history_limit_zero_deletes_the_replaced_replicaset(core, apps, namespace, images):
    apps.create_namespaced_replica_set(namespace, _adoptable_replicaset("cleanup-old", "cleanup", images, 1))
    old_pod = poll(lambda: _pods(core, namespace, "cleanup"), lambda p: len(p) == 1 and is_ready(p[0]),
                   timeout=60, what="the pod of the ReplicaSet made first ready")[0]
    since = core.list_namespaced_pod(namespace).metadata.resource_version

    d = apps.create_namespaced_deployment(namespace, _deployment("cleanup", images, 1, revisionHistoryLimit=0))
    _wait_complete(apps, namespace, "cleanup", revision="1")

    def history_cleaned():
        rss = _replica_sets(apps, namespace, "cleanup")
        return rss if [rs.metadata.name for rs in rss] != ["cleanup-old"] and len(rss) == 1 else None
    rss = until(history_cleaned, timeout=30, what="the adopted ReplicaSet deleted, only the new one left")
    assert _owned_by(rss[0], d) and _annotation(rss[0], REVISION) == "1"

    new_pod = poll(lambda: core.list_namespaced_pod(namespace, label_selector="app=cleanup").items,
                   lambda p: len(p) == 1 and p[0].metadata.uid != old_pod.metadata.uid, timeout=30,
                   what="the old pod gone, one new pod")[0]
    # As upstream: exactly one pod was made since, the Deployment's (the old ReplicaSet made none).
    added = [p for kind, p in _pod_history(core, namespace, since, new_pod.metadata.name) if kind == "ADDED"]
    assert [p["metadata"]["name"] for p in added] == [new_pod.metadata.name], \
        [(p["metadata"]["name"], _hash_of(p)) for p in added]
    assert _hash_of(added[0]) == rss[0].metadata.labels[HASH]


@conformance(area="Rollouts", upstream="[sig-apps] Deployment deployment should delete old replica sets "
                                       "[Conformance]")
def test_old_replicasets_beyond_revision_history_limit_are_deleted_oldest_first(apps, namespace, images):
    apps.create_namespaced_deployment(namespace, _deployment("history", images, 1, version="1",
                                                             revisionHistoryLimit=2))
    _wait_complete(apps, namespace, "history", revision="1")
    for version in ("2", "3", "4", "5"):
        _roll_to(apps, namespace, "history", _template("history", images, version))
        _wait_complete(apps, namespace, "history", revision=version)

    # Revision 5 runs; of the old ones, the 2 newest (3 and 4) are kept, scaled to 0.
    poll(lambda: sorted(_by_revision(apps, namespace, "history"), key=int), lambda r: r == ["3", "4", "5"],
         timeout=30, what="the ReplicaSets of revisions 3, 4 and 5 only")
    rss = _by_revision(apps, namespace, "history")
    assert {r: _version(rs.spec.template.spec) for r, rs in rss.items()} == {"3": "3", "4": "4", "5": "5"}
    assert [rss[r].spec.replicas for r in ("3", "4", "5")] == [0, 0, 1]


@conformance(area="Rollouts", upstream=None)
def test_a_rollback_brings_back_an_earlier_revisions_replicaset_under_a_new_revision(core, apps, namespace, images):
    # Upstream's rollback e2e test went with the extensions/v1beta1 rollback API; `kubectl rollout undo`
    # now does it client-side: it copies the pod template of the ReplicaSet of the wanted revision
    # (without its pod-template-hash label) into the Deployment. So does this test.
    apps.create_namespaced_deployment(namespace, _deployment("undo", images, 2, version="1"))
    _wait_complete(apps, namespace, "undo", revision="1")
    for version in ("2", "3"):
        _roll_to(apps, namespace, "undo", _template("undo", images, version))
        _wait_complete(apps, namespace, "undo", revision=version)
    before = _by_revision(apps, namespace, "undo")
    assert sorted(before, key=int) == ["1", "2", "3"]

    def undo(to_revision: str):
        rs = _by_revision(apps, namespace, "undo")[to_revision]
        template = apps.api_client.sanitize_for_serialization(rs.spec.template)
        del template["metadata"]["labels"][HASH]
        _roll_to(apps, namespace, "undo", template)
        return rs

    # rollout undo --to-revision=1: revision 1's ReplicaSet is the new one again, as revision 4.
    one = undo("1")
    _wait_complete(apps, namespace, "undo", revision="4")
    after = _by_revision(apps, namespace, "undo")
    assert sorted(after, key=int) == ["2", "3", "4"], "no new ReplicaSet: revision 1's is renumbered"
    back = after["4"]
    assert back.metadata.uid == one.metadata.uid and back.spec.replicas == 2
    assert _annotation(back, REVISION_HISTORY) == "1", back.metadata.annotations
    assert {r: after[r].metadata.uid for r in ("2", "3")} == {r: before[r].metadata.uid for r in ("2", "3")}
    pods = poll(lambda: core.list_namespaced_pod(namespace, label_selector="app=undo").items,
                lambda p: len(p) == 2 and all(map(is_ready, p)), timeout=60, what="2 ready pods, the old ones gone")
    assert all(p.metadata.labels[HASH] == back.metadata.labels[HASH] and _version(p.spec) == "1" for p in pods)

    # rollout undo (to the revision before the current one, 3): revision 3's ReplicaSet becomes revision 5.
    three = undo("3")
    d = _wait_complete(apps, namespace, "undo", revision="5")
    after = _by_revision(apps, namespace, "undo")
    assert sorted(after, key=int) == ["2", "4", "5"]
    assert after["5"].metadata.uid == three.metadata.uid and _annotation(after["5"], REVISION_HISTORY) == "3"
    assert _version(d.spec.template.spec) == "3"


@conformance(area="Rollouts", upstream=None)
def test_the_status_says_what_kubectl_rollout_status_reads(core, apps, namespace, images):
    # kubectl rollout status is done when observedGeneration >= generation, updatedReplicas == replicas,
    # no old replica is left (replicas == updatedReplicas) and every updated one is available; it fails
    # when the Progressing condition's reason is ProgressDeadlineExceeded.
    d = apps.create_namespaced_deployment(namespace, _deployment("status", images, 2))
    assert not _rollout_status(d)[1], "a Deployment just made is not rolled out"
    d = _wait_complete(apps, namespace, "status", revision="1")
    assert _rollout_status(d) == ('deployment "status" successfully rolled out', True), _summary(d)

    def rolled_out():
        x = apps.read_namespaced_deployment("status", namespace)
        if not _rollout_status(x)[1]:
            return None
        progressing = _condition(x, "Progressing")
        return x if progressing is not None and progressing.reason == "NewReplicaSetAvailable" else None

    d = until(rolled_out, timeout=30, what="rolled out, with Progressing reason NewReplicaSetAvailable")
    rs = _by_revision(apps, namespace, "status")["1"]
    progressing, available = _condition(d, "Progressing"), _condition(d, "Available")
    assert progressing.status == "True" and rs.metadata.name in (progressing.message or ""), progressing
    assert (available.status, available.reason) == ("True", "MinimumReplicasAvailable"), available

    # A new template: not rolled out until the new ReplicaSet's pods are all there and available.
    d = _roll_to(apps, namespace, "status", _template("status", images, "2"))
    assert d.metadata.generation > (d.status.observed_generation or 0) or not _rollout_status(d)[1]
    d = until(rolled_out, timeout=60, what="the second rollout done")
    assert _annotation(d, REVISION) == "2" and _version(d.spec.template.spec) == "2"
    n = _counts(d)
    assert n["observedGeneration"] >= n["generation"] and \
        n["spec.replicas"] == n["updatedReplicas"] == n["replicas"] == n["availableReplicas"] == 2, n

    # A rollout that cannot finish, with a short progress deadline: Progressing turns False with
    # reason ProgressDeadlineExceeded once no progress was made for that long (kubectl's error).
    deadline = 3
    started = time.monotonic()
    _roll_to(apps, namespace, "status", _template("status", images, "3", ready=False),
             progressDeadlineSeconds=deadline)
    seen: list[str] = []

    def timed_out():
        x = apps.read_namespaced_deployment("status", namespace)
        message, done = _rollout_status(x)
        assert not done, f"a rollout whose pods never become ready rolled out: {_summary(x)}"
        if not seen or seen[-1] != message:
            seen.append(message)
        progressing = _condition(x, "Progressing")
        return x if progressing is not None and progressing.reason == "ProgressDeadlineExceeded" else None
    d = until(timed_out, timeout=deadline + 30, what="Progressing reason ProgressDeadlineExceeded")
    elapsed = time.monotonic() - started
    # lastUpdateTime has a resolution of one second: the deadline may pass up to a second early.
    assert elapsed >= deadline - 1, f"the deadline of {deadline} s passed after {elapsed:.1f} s"
    progressing = _condition(d, "Progressing")
    assert progressing.status == "False", progressing
    assert _rollout_status(d) == ('error: deployment "status" exceeded its progress deadline', False)
    n = _counts(d)
    assert n["updatedReplicas"] >= 1 and n["availableReplicas"] == 2 and n["replicas"] > n["updatedReplicas"], n
    assert any("new replicas have been updated" in m or "old replicas are pending" in m for m in seen), seen
    assert _condition(d, "Available").status == "True", "the old pods stay available"

    # Rolled back to a template whose pods become ready: it progresses and completes again.
    _roll_to(apps, namespace, "status", _template("status", images, "2"), progressDeadlineSeconds=600)
    d = until(rolled_out, timeout=60, what="rolled out again after the rollback")
    assert _condition(d, "Progressing").status == "True" and _version(d.spec.template.spec) == "2"
