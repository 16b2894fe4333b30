"""The Deployment controller live: it and the ReplicaSet controller run in-process against the real API
server; a fake kubelet binds pods to a made-up node, marks them Ready (unless their image says
"bad") and finishes their graceful deletion. The real kubectl drives rollouts, undo, pause and status."""
from __future__ import annotations

import asyncio
import json

import pytest

from boxkube.client import resource
from boxkube.controllers import deployment_util as du
from boxkube.controllers.deployment import DeploymentController
from boxkube.controllers.replicaset import ReplicaSetController

from controller_harness import FakeKubelet, eventually, running

DEPLOYMENTS, REPLICASETS, PODS, EVENTS = (resource(r) for r in ("deployments", "replicasets", "pods", "events"))
NODE = "fake-node"
# How long a deleted pod stays Terminating before the fake kubelet lets it go.
TERMINATION = 0.3


def deployment(name="web", replicas=3, image="nginx:1", strategy=None, **spec):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "strategy": strategy or {"type": "RollingUpdate"},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}, **spec}}


def _bad_image(pod):
    """A pod the fake kubelet never makes Ready."""
    return "bad" in pod["spec"]["containers"][0]["image"]


def _ready(pod):
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _count_by_owner(pods):
    """(live, ready) pods by owning ReplicaSet: terminating pods no longer count, as for the controllers."""
    counts: dict[str, tuple[int, int]] = {}
    for pod in pods:
        if pod["metadata"].get("deletionTimestamp"):
            continue
        owner = next((r["name"] for r in pod["metadata"].get("ownerReferences") or []), "")
        live, ready = counts.get(owner, (0, 0))
        counts[owner] = (live + 1, ready + _ready(pod))
    return counts


def totals(snapshot):
    return sum(live for live, _ in snapshot.values()), sum(ready for _, ready in snapshot.values())


@pytest.fixture
async def controllers(client, ns):
    """The Deployment and ReplicaSet controllers and the fake kubelet, running until the test ends; the
    kubelet's `snapshots` are the live and ready pods by ReplicaSet at each of its rounds."""
    async with running(client, DeploymentController, ReplicaSetController), \
            FakeKubelet(client, ns, node=NODE, hold=_bad_image, finish_deletion=TERMINATION,
                        snapshot=_count_by_owner) as kubelet:
        yield kubelet
    # No garbage collector or namespace controller runs here: leave no pods behind for later tests.
    for rt in (DEPLOYMENTS, REPLICASETS, PODS):
        await client.delete_collection(rt, ns, grace_period_seconds=0)


async def get_deployment(client, ns, name="web"):
    return await client.get(DEPLOYMENTS, name, ns)


async def replica_sets(client, ns):
    items = (await client.list(REPLICASETS, ns))["items"]
    return sorted(items, key=lambda rs: int(du.annotations(rs).get(du.REVISION, 0)))


async def rolled_out(client, ns, name="web"):
    """The Deployment once its rollout is complete (its Progressing reason says so)."""
    async def check():
        d = await get_deployment(client, ns, name)
        progressing = du.get_condition(du.status(d), "Progressing") or {}
        done = du.deployment_complete(d, du.status(d)) and progressing.get("reason") == "NewReplicaSetAvailable"
        return d if done else None
    return await eventually(check, what=f"rollout of {name}")


async def events(client, ns, name="web"):
    items = (await client.list(EVENTS, ns, field_selector=f"involvedObject.name={name}"))["items"]
    return [(e["reason"], e["message"]) for e in sorted(items, key=lambda e: e["metadata"]["name"])]


def kubectl_async(cluster, *args, check=True):
    return asyncio.to_thread(cluster.kubectl, *args, check=check)


# -- tests ------------------------------------------------------------------------

async def test_rolling_update_replica_sets_status_events_and_rollout_status(client, ns, cluster, controllers):
    await client.create(DEPLOYMENTS, deployment(), ns)
    d = await rolled_out(client, ns)
    [rs1] = await replica_sets(client, ns)
    pod_hash = du.compute_hash(d["spec"]["template"], None)
    assert rs1["metadata"]["name"] == f"web-{pod_hash}"
    assert rs1["metadata"]["labels"] == {"app": "web", "pod-template-hash": pod_hash}
    assert rs1["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": pod_hash}
    assert rs1["metadata"]["ownerReferences"][0]["uid"] == d["metadata"]["uid"]
    assert {k: v for k, v in du.annotations(rs1).items()} == {
        du.REVISION: "1", du.DESIRED_REPLICAS: "3", du.MAX_REPLICAS: "4"}
    assert du.annotations(d)[du.REVISION] == "1"
    assert {k: v for k, v in d["status"].items() if k != "conditions"} == {
        "observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3,
        "availableReplicas": 3, "terminatingReplicas": 0}
    assert {c["type"]: (c["status"], c["reason"]) for c in d["status"]["conditions"]} == {
        "Available": ("True", "MinimumReplicasAvailable"), "Progressing": ("True", "NewReplicaSetAvailable")}
    out = (await kubectl_async(cluster, "-n", ns, "rollout", "status", "deployment/web", "--timeout=10s")).stdout
    assert out == 'deployment "web" successfully rolled out\n'

    written = d["metadata"]["resourceVersion"]
    await asyncio.sleep(0.3)
    assert (await get_deployment(client, ns))["metadata"]["resourceVersion"] == written   # settled: no more writes

    start = len(controllers.snapshots)
    await kubectl_async(cluster, "-n", ns, "set", "image", "deployment/web", "c=nginx:2")
    d = await rolled_out(client, ns)
    rs1, rs2 = await replica_sets(client, ns)
    assert du.replicas(rs1) == 0 and du.replicas(rs2) == 3 and du.annotations(d)[du.REVISION] == "2"
    assert du.annotations(rs2)[du.REVISION] == "2"
    # maxSurge 25% of 3 -> 1, maxUnavailable 25% -> 0: never more than 4 pods, never fewer than 3 ready
    during = [totals(s) for s in controllers.snapshots[start:]]
    assert max(live for live, _ in during) == 4 and min(ready for _, ready in during) == 3
    name1, name2 = rs1["metadata"]["name"], rs2["metadata"]["name"]
    scaling = [m for r, m in await events(client, ns) if r == "ScalingReplicaSet"]
    assert scaling[:3] == [f"Scaled up replica set {name1} from 0 to 3", f"Scaled up replica set {name2} from 0 to 1",
                           f"Scaled down replica set {name1} from 3 to 2"]
    assert scaling[-1] == f"Scaled down replica set {name1} from 1 to 0"
    described = (await kubectl_async(cluster, "-n", ns, "describe", "deployment", "web")).stdout
    assert f"OldReplicaSets:  {name1} (0/0 replicas created)\nNewReplicaSet:   {name2} (3/3 replicas created)" in described
    assert "3 desired | 3 updated | 3 total | 3 available | 0 unavailable" in described


async def test_rollout_status_waits_and_progress_deadline_fails_it(client, ns, cluster, controllers):
    await client.create(DEPLOYMENTS, deployment(progressDeadlineSeconds=2), ns)
    await rolled_out(client, ns)
    await kubectl_async(cluster, "-n", ns, "set", "image", "deployment/web", "c=nginx:bad")

    async def new_rs_scaled():
        d = await get_deployment(client, ns)
        return d if d["status"].get("updatedReplicas") == 1 and d["status"]["observedGeneration"] == 2 else None
    await eventually(new_rs_scaled)
    waiting = await kubectl_async(cluster, "-n", ns, "rollout", "status", "deployment/web", "--watch=false")
    assert waiting.stdout == 'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated...\n'

    async def timed_out():
        condition = du.get_condition((await get_deployment(client, ns))["status"], "Progressing")
        return condition if condition["reason"] == "ProgressDeadlineExceeded" else None
    condition = await eventually(timed_out, timeout=8)
    rs_name = (await replica_sets(client, ns))[-1]["metadata"]["name"]
    assert (condition["status"], condition["reason"], condition["message"]) == (
        "False", "ProgressDeadlineExceeded", f'ReplicaSet "{rs_name}" has timed out progressing.')
    failed = await kubectl_async(cluster, "-n", ns, "rollout", "status", "deployment/web", "--timeout=5s", check=False)
    assert failed.returncode == 1 and 'deployment "web" exceeded its progress deadline' in failed.stderr


async def test_rollout_status_waits_for_updated_replicas_to_be_available(client, ns, cluster, controllers):
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    await client.create(DEPLOYMENTS, deployment(replicas=1, image="nginx:bad", strategy=strategy), ns)

    async def created():
        return (await get_deployment(client, ns))["status"].get("updatedReplicas") == 1
    await eventually(created)
    waiting = await kubectl_async(cluster, "-n", ns, "rollout", "status", "deployment/web", "--watch=false")
    assert waiting.stdout == 'Waiting for deployment "web" rollout to finish: 0 of 1 updated replicas are available...\n'


async def test_proportional_scaling_of_a_stuck_rollout(client, ns, cluster, controllers):
    """Upstream's conformance numbers: 10 replicas, maxSurge 3, maxUnavailable 2, a new image that never
    becomes ready: old 8, new 5; scaled to 30: old 20, new 13."""
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}}
    await client.create(DEPLOYMENTS, deployment(replicas=10, strategy=strategy), ns)
    await rolled_out(client, ns)
    await kubectl_async(cluster, "-n", ns, "set", "image", "deployment/web", "c=nginx:bad")

    async def sizes(expected):
        rss = await replica_sets(client, ns)
        got = [du.replicas(rs) for rs in rss]
        settled = all(du.status_count(rs, "replicas") == du.replicas(rs) for rs in rss)
        return got == expected and settled

    await eventually(lambda: sizes([8, 5]), what="old 8 / new 5")
    await asyncio.sleep(0.3)
    assert await sizes([8, 5])          # and it stays there
    await kubectl_async(cluster, "-n", ns, "scale", "deployment/web", "--replicas=30")
    await eventually(lambda: sizes([20, 13]), what="old 20 / new 13")

    async def available():
        d = await get_deployment(client, ns)
        return du.get_condition(d["status"], "Available") if d["status"].get("availableReplicas") == 20 else None
    condition = await eventually(available)       # 20 available of 30 wanted, at most 2 may be missing
    assert (condition["status"], condition["reason"], condition["message"]) == (
        "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")



async def test_recreate_stops_every_old_pod_before_starting_new_ones(client, ns, cluster, controllers):
    await client.create(DEPLOYMENTS, deployment(strategy={"type": "Recreate"}), ns)
    await rolled_out(client, ns)
    await kubectl_async(cluster, "-n", ns, "set", "image", "deployment/web", "c=nginx:2")
    d = await rolled_out(client, ns)
    rs1, rs2 = await replica_sets(client, ns)
    old, new = rs1["metadata"]["name"], rs2["metadata"]["name"]
    assert not any(old in s and new in s for s in controllers.snapshots), "old and new pods ran together"
    assert any(s.get(old) for s in controllers.snapshots) and d["status"]["updatedReplicas"] == 3
    scaling = [m for r, m in await events(client, ns) if r == "ScalingReplicaSet"]
    assert scaling[1:] == [f"Scaled down replica set {old} from 3 to 0", f"Scaled up replica set {new} from 0 to 3"]


async def test_rollout_undo_and_to_revision_with_kubectl(client, ns, cluster, controllers):
    await client.create(DEPLOYMENTS, deployment(replicas=2), ns)
    await rolled_out(client, ns)
    for image in ("nginx:2", "nginx:3"):
        await kubectl_async(cluster, "-n", ns, "set", "image", "deployment/web", f"c={image}")
        await rolled_out(client, ns)
    history = (await kubectl_async(cluster, "-n", ns, "rollout", "history", "deployment/web")).stdout
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2", "3"]

    undo = await kubectl_async(cluster, "-n", ns, "rollout", "undo", "deployment/web")
    assert undo.stdout == "deployment.apps/web rolled back\n"
    d = await rolled_out(client, ns)
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:2"
    rss = await replica_sets(client, ns)
    assert len(rss) == 3 and du.annotations(d)[du.REVISION] == "4"
    assert du.annotations(rss[-1])[du.REVISION_HISTORY] == "2"
    assert rss[-1]["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:2"

    await kubectl_async(cluster, "-n", ns, "rollout", "undo", "deployment/web", "--to-revision=1")
    d = await rolled_out(client, ns)
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1"
    assert du.annotations(d)[du.REVISION] == "5" and len(await replica_sets(client, ns)) == 3


async def test_pause_scales_without_rolling_out_and_resume_rolls_out(client, ns, cluster, controllers):
    await client.create(DEPLOYMENTS, deployment(replicas=2), ns)
    await rolled_out(client, ns)
    await kubectl_async(cluster, "-n", ns, "rollout", "pause", "deployment/web")
    await kubectl_async(cluster, "-n", ns, "set", "image", "deployment/web", "c=nginx:2")
    await kubectl_async(cluster, "-n", ns, "scale", "deployment/web", "--replicas=4")

    async def paused_and_scaled():
        d = await get_deployment(client, ns)
        progressing = du.get_condition(d["status"], "Progressing") or {}
        return d if d["status"].get("availableReplicas") == 4 and progressing.get("reason") == "DeploymentPaused" else None
    d = await eventually(paused_and_scaled)
    assert du.get_condition(d["status"], "Progressing")["status"] == "Unknown"
    [rs] = await replica_sets(client, ns)
    assert rs["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1"
    assert d["status"].get("updatedReplicas", 0) == 0

    await kubectl_async(cluster, "-n", ns, "rollout", "resume", "deployment/web")
    d = await rolled_out(client, ns)
    assert d["status"]["updatedReplicas"] == 4 and len(await replica_sets(client, ns)) == 2


async def test_restart_and_revision_history_limit(client, ns, cluster, controllers):
    await client.create(DEPLOYMENTS, deployment(replicas=1, revisionHistoryLimit=1), ns)
    await rolled_out(client, ns)
    for _ in range(2):
        await asyncio.sleep(1.0)      # restartedAt has second precision: each restart must differ
        before = du.annotations(await get_deployment(client, ns))[du.REVISION]
        await kubectl_async(cluster, "-n", ns, "rollout", "restart", "deployment/web")

        async def next_revision():
            d = await rolled_out(client, ns)
            return d if du.annotations(d)[du.REVISION] != before else None
        d = await eventually(next_revision)
    assert "kubectl.kubernetes.io/restartedAt" in d["spec"]["template"]["metadata"]["annotations"]

    async def cleaned_up():
        rss = await replica_sets(client, ns)
        return rss if len(rss) == 2 else None
    rss = await eventually(cleaned_up)
    assert [du.annotations(rs)[du.REVISION] for rs in rss] == ["2", "3"]


async def test_adopts_orphans_and_releases_replica_sets_that_stop_matching(client, ns, controllers):
    d = deployment(replicas=1)
    template = json.loads(json.dumps(d["spec"]["template"]))
    orphan = {"metadata": {"name": "orphan", "labels": {"app": "web"}},
              "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web", "extra": "x"}},
                       "template": {**template, "metadata": {"labels": {"app": "web", "extra": "x"}}}}}
    await client.create(REPLICASETS, orphan, ns)
    created = await client.create(DEPLOYMENTS, d, ns)
    await rolled_out(client, ns)

    async def owner_of(name):
        rs = await client.get(REPLICASETS, name, ns)
        return [r["uid"] for r in rs["metadata"].get("ownerReferences") or []]
    assert await eventually(lambda: owner_of("orphan")) == [created["metadata"]["uid"]]
    await client.patch(REPLICASETS, "orphan", {"metadata": {"labels": {"app": "other"}}}, ns)
    await eventually(lambda: _not(owner_of("orphan")), what="release")


async def _not(awaitable):
    return not await awaitable


async def test_hash_collision_bumps_collision_count_and_min_ready_seconds_reach_the_replica_set(client, ns, controllers):
    d = deployment(replicas=1, minReadySeconds=1)
    defaulted = await client.create(DEPLOYMENTS, d, ns, dry_run=True)     # the template as it will be hashed
    squatter_name = f"web-{du.compute_hash(defaulted['spec']['template'], None)}"
    squatter = {"metadata": {"name": squatter_name, "labels": {"app": "other"}},
                "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "other"}},
                         "template": {"metadata": {"labels": {"app": "other"}}, "spec": d["spec"]["template"]["spec"]}}}
    await client.create(REPLICASETS, squatter, ns)
    await client.create(DEPLOYMENTS, d, ns)
    d = await rolled_out(client, ns)
    assert d["status"]["collisionCount"] == 1
    [rs] = [rs for rs in await replica_sets(client, ns) if rs["metadata"]["name"] != squatter_name]
    assert rs["metadata"]["name"] == f"web-{du.compute_hash(d['spec']['template'], 1)}"
    assert rs["spec"]["minReadySeconds"] == 1
