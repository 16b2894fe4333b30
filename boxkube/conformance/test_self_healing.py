"""Self-healing: controllers replace what is lost, and the node restarts containers as their pod's
restartPolicy says."""
from __future__ import annotations

import pytest

from boxkube.conformance.support import (SUITE_LABEL, conformance, is_ready, live, poll, real_nodes, replicaset,
                                         until)


@conformance(area="Self-healing", upstream=None)
def test_a_deleted_pod_of_a_replicaset_is_replaced(core, apps, namespace, images):
    apps.create_namespaced_replica_set(namespace, replicaset("healer", "healer", images.web, images.web_port, 2))

    def pods():
        return live(core.list_namespaced_pod(namespace, label_selector="app=healer").items)

    first = poll(pods, lambda p: len(p) == 2 and all(map(is_ready, p)),
                 timeout=120, what="2 ready pods of the ReplicaSet")
    victim = first[0]
    owner = victim.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.controller) == ("ReplicaSet", "healer", True)

    core.delete_namespaced_pod(victim.metadata.name, namespace)

    def healed():
        now = pods()
        uids = {p.metadata.uid for p in now}
        return now if len(now) == 2 and victim.metadata.uid not in uids and all(map(is_ready, now)) else None
    now = until(healed, timeout=120, what="the deleted pod replaced: 2 ready pods again, the deleted one not among them")
    replacement = next(p for p in now if p.metadata.uid != first[1].metadata.uid)
    assert replacement.metadata.owner_references[0].uid == owner.uid
    assert first[1].metadata.uid in {p.metadata.uid for p in now}, "the surviving pod was left alone"
    until(lambda: apps.read_namespaced_replica_set("healer", namespace).status.ready_replicas == 2,
          timeout=60, what="the ReplicaSet's status.readyReplicas back at 2")


# Each container counts its runs in an emptyDir (which outlives container restarts): its first run
# exits 1, its second exits 0, and a third one (only restartPolicy Always gets one) runs on.
_COUNTING_SCRIPT = ("echo run >> /runs/count; n=$(wc -l < /runs/count); "
                    "if [ \"$n\" -eq 1 ]; then exit 1; fi; if [ \"$n\" -eq 2 ]; then exit 0; fi; "
                    "while true; do sleep 1; done")

# restartPolicy -> (final phase, restartCount, the container's final state, Ready)
_EXPECTED = {
    "Always": ("Running", 2, "running", True),        # restarted after the failure and after the success
    "OnFailure": ("Succeeded", 1, "terminated", False),  # restarted after the failure only
    "Never": ("Failed", 0, "terminated", False),     # never restarted
}


@real_nodes
@conformance(area="Self-healing", upstream="[sig-node] Container Runtime blackbox test when starting a container "
                                           "that exits should run with the expected status [NodeConformance] "
                                           "[Conformance]")
def test_restart_policy_always_onfailure_never_gives_the_right_restart_counts(core, namespace, images):
    for policy in _EXPECTED:
        core.create_namespaced_pod(namespace, {
            "metadata": {"name": f"restart-{policy.lower()}", "labels": {SUITE_LABEL: "true"}},
            "spec": {"restartPolicy": policy, "terminationGracePeriodSeconds": 1,
                     "volumes": [{"name": "runs", "emptyDir": {}}],
                     "containers": [{"name": "counter", "image": images.tools, "imagePullPolicy": "IfNotPresent",
                                     "command": ["sh", "-c", _COUNTING_SCRIPT],
                                     "volumeMounts": [{"name": "runs", "mountPath": "/runs"}]}]}})

    def observed(policy: str):
        pod = core.read_namespaced_pod(f"restart-{policy.lower()}", namespace)
        statuses = pod.status.container_statuses or []
        if not statuses:
            return None
        c = statuses[0]
        state = "running" if c.state.running else "terminated" if c.state.terminated else "waiting"
        return pod.status.phase, c.restart_count, state, bool(c.ready)

    def settled():
        now = {policy: observed(policy) for policy in _EXPECTED}
        for policy, seen in now.items():
            if seen is not None:
                assert seen[1] <= _EXPECTED[policy][1], \
                    f"restartPolicy {policy}: restartCount {seen[1]}, more than {_EXPECTED[policy][1]} ({now})"
        return now if now == _EXPECTED else None
    until(settled, timeout=150, interval=1,
          what=f"restartPolicy (phase, restartCount, state, ready) at {_EXPECTED}")

    never = core.read_namespaced_pod("restart-never", namespace).status.container_statuses[0].state.terminated
    assert never.exit_code == 1 and never.reason == "Error", never
    onfailure = core.read_namespaced_pod("restart-onfailure", namespace).status.container_statuses[0]
    assert onfailure.state.terminated.exit_code == 0 and onfailure.state.terminated.reason == "Completed", onfailure
    assert onfailure.last_state.terminated and onfailure.last_state.terminated.exit_code == 1, onfailure
    always = core.read_namespaced_pod("restart-always", namespace).status.container_statuses[0]
    assert always.last_state.terminated and always.last_state.terminated.exit_code == 0, always


@real_nodes
@conformance(area="Self-healing", upstream="[sig-node] Probing container should have monotonically increasing "
                                           "restart count [NodeConformance] [Conformance]")
def test_a_failing_liveness_probe_restarts_the_container_with_a_growing_restart_count(core, namespace, images):
    # Healthy for its first 3 s, then its liveness probe fails: killed and started again, over and over.
    core.create_namespaced_pod(namespace, {
        "metadata": {"name": "liveness", "labels": {SUITE_LABEL: "true"}},
        "spec": {"terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "app", "image": images.tools, "imagePullPolicy": "IfNotPresent",
                                 "command": ["sh", "-c", "touch /tmp/healthy; sleep 3; rm /tmp/healthy; sleep 600"],
                                 "livenessProbe": {"exec": {"command": ["cat", "/tmp/healthy"]},
                                                   "periodSeconds": 1, "failureThreshold": 1}}]}})
    seen: list[int] = []

    def restarted_twice():
        statuses = core.read_namespaced_pod("liveness", namespace).status.container_statuses or []
        count = statuses[0].restart_count if statuses else 0
        assert not seen or count >= seen[-1], f"restartCount went down: {seen} then {count}"
        seen.append(count)
        return count >= 2
    until(restarted_twice, timeout=120, interval=0.5, what="the container restarted twice by its liveness probe")
    killings = [e for e in core.list_namespaced_event(namespace, field_selector="involvedObject.name=liveness").items
                if e.reason == "Killing"]
    assert killings and "failed liveness probe" in killings[0].message, [e.message for e in killings]


# How long a lost node's pods may take to come back elsewhere: upstream's defaults are a 40 s node
# grace period and a 300 s eviction (taint tolerations); boxkube's are 10 s and 20 s.
LOST_NODE_TIMEOUT = 420.0


def _node_ready(node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


def _schedulable(node) -> bool:
    return (_node_ready(node) and not node.spec.unschedulable
            and not any(t.effect in ("NoSchedule", "NoExecute") for t in node.spec.taints or []))


@conformance(area="Self-healing", upstream=None)
def test_the_pods_of_a_lost_node_are_made_again_on_the_other_nodes(core, apps, namespace, images, node_power):
    """A node stops as if it lost power (the run's --conformance-node-stop command): it turns NotReady,
    and the ReplicaSet's pods that ran on it are made again on the other nodes; started again, it is
    Ready again. (Upstream checks this in its disruptive, not its conformance, tests.)"""
    nodes = [n.metadata.name for n in core.list_node().items if _schedulable(n)]
    if len(nodes) < 2:
        pytest.skip(f"needs two schedulable Ready nodes, the cluster has {len(nodes)}")
    replicas = 2 * len(nodes)
    apps.create_namespaced_replica_set(namespace, replicaset("survivor", "survivor", images.web, images.web_port,
                                                             replicas))

    def ready_pods():
        return [p for p in live(core.list_namespaced_pod(namespace, label_selector="app=survivor").items)
                if is_ready(p)]
    before = poll(ready_pods, lambda p: len(p) == replicas, timeout=120, what=f"{replicas} ready pods")
    by_node: dict[str, list[str]] = {}
    for p in before:
        by_node.setdefault(p.spec.node_name, []).append(p.metadata.uid)
    victim = max(by_node, key=lambda n: len(by_node[n]))

    node_power.stop(victim)
    try:
        until(lambda: not _node_ready(core.read_node(victim)), timeout=120,
              what=f"node {victim} NotReady after it stopped")

        def elsewhere():
            pods = ready_pods()
            return pods if len(pods) == replicas and all(p.spec.node_name != victim for p in pods) else None
        after = until(elsewhere, timeout=LOST_NODE_TIMEOUT,
                      what=f"{replicas} ready pods again, none of them on the lost node {victim}")
        lost = set(by_node[victim])
        assert not lost & {p.metadata.uid for p in after}, "the lost node's pods were replaced by new ones"
        kept = {uid for node, uids in by_node.items() if node != victim for uid in uids}
        assert kept <= {p.metadata.uid for p in after}, "the pods on the other nodes were left alone"
    finally:
        node_power.start(victim)
    until(lambda: _node_ready(core.read_node(victim)), timeout=120, what=f"node {victim} Ready again once started")
