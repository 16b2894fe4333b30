"""Pod status as the kubelet reports it: phase, conditions and their reasons, container states, QoS."""
from __future__ import annotations

import pytest

from boxkube.agent.status import ContainerRecord, pod_phase, pod_status
from boxkube.api.pods import qos_class

NOW = "2026-12-01T10:00:00Z"
LATER = "2026-12-01T10:05:00Z"


def pod(containers=("app",), init=(), restart="Always", **spec):
    return {"metadata": {"name": "p", "namespace": "default"},
            "spec": {"restartPolicy": restart, "containers": [{"name": n, "image": "img"} for n in containers],
                     **({"initContainers": [{"name": n, "image": "img"} for n in init]} if init else {}), **spec},
            "status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-12-01T09:59:59Z"}]}}


def running(name="app", ready=True, **kw):
    return ContainerRecord(name, "running", started_at=NOW, ready=ready, started=True, image="img",
                           container_id="boxkube://1", **kw)


def waiting(name="app", reason="ContainerCreating", **kw):
    return ContainerRecord(name, "waiting", reason=reason, image="img", **kw)


def exited(name="app", code=0, **kw):
    return ContainerRecord(name, "terminated", exit_code=code, reason="Completed" if code == 0 else "Error",
                           started_at=NOW, finished_at=NOW, image="img", container_id="boxkube://1", **kw)


def conditions(status):
    return {c["type"]: c for c in status["conditions"]}


def test_creating_pod_is_pending_with_upstream_reasons():
    s = pod_status(pod(), [], [waiting()], sandbox_ready=False, now=NOW)
    assert s["phase"] == "Pending"
    c = conditions(s)
    assert c["PodReadyToStartContainers"]["status"] == "False"
    assert c["Ready"] == {"type": "Ready", "status": "False", "reason": "ContainersNotReady",
                          "message": "containers with unready status: [app]", "lastProbeTime": None,
                          "lastTransitionTime": NOW}
    assert c["ContainersReady"]["reason"] == "ContainersNotReady"
    assert s["containerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert s["qosClass"] == "BestEffort"
    # kubectl describe reads them in upstream's order
    assert [x["type"] for x in s["conditions"]] == ["PodReadyToStartContainers", "Initialized", "Ready",
                                                   "ContainersReady", "PodScheduled"]


def test_running_and_ready_keeps_transition_times_of_unchanged_conditions():
    p = pod()
    first = pod_status(p, [], [running()], sandbox_ready=True, now=NOW, pod_ip="10.244.1.5", host_ip="172.18.0.3")
    assert first["phase"] == "Running"
    assert conditions(first)["Ready"]["status"] == "True"
    assert conditions(first)["PodScheduled"]["lastTransitionTime"] == "2026-12-01T09:59:59Z"
    assert first["podIPs"] == [{"ip": "10.244.1.5"}] and first["hostIP"] == "172.18.0.3"
    p["status"] = first
    second = pod_status(p, [], [running(ready=False)], sandbox_ready=True, now=LATER)
    assert conditions(second)["Ready"]["lastTransitionTime"] == LATER  # changed
    assert conditions(second)["Initialized"]["lastTransitionTime"] == NOW  # held
    assert second["startTime"] == first["startTime"]


@pytest.mark.parametrize("restart,codes,phase", [
    ("Always", [0], "Running"),       # on its way back
    ("OnFailure", [0], "Succeeded"),
    ("OnFailure", [1], "Running"),    # restarting the failed one
    ("Never", [0, 0], "Succeeded"),
    ("Never", [0, 1], "Failed"),
])
def test_phase_of_exited_containers_follows_restart_policy(restart, codes, phase):
    names = [f"c{i}" for i in range(len(codes))]
    p = pod(names, restart=restart)
    statuses = pod_status(p, [], [exited(n, c) for n, c in zip(names, codes)], sandbox_ready=True, now=NOW)
    assert statuses["phase"] == phase


def test_crash_loop_counts_as_stopped_not_waiting():
    back_off = waiting(reason="CrashLoopBackOff", message="back-off 10s restarting failed container=app",
                       restart_count=2, last_terminated={"exitCode": 1, "reason": "Error"})
    s = pod_status(pod(), [], [back_off], sandbox_ready=True, now=NOW)
    assert s["phase"] == "Running"
    cs = s["containerStatuses"][0]
    assert cs["restartCount"] == 2 and cs["lastState"] == {"terminated": {"exitCode": 1, "reason": "Error"}}
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"


def test_init_containers_gate_initialized_and_fail_the_pod_with_restart_never():
    p = pod(init=("setup",))
    s = pod_status(p, [running("setup", ready=False)], [waiting(reason="PodInitializing")], sandbox_ready=True, now=NOW)
    assert s["phase"] == "Pending"
    assert conditions(s)["Initialized"]["message"] == "containers with incomplete status: [setup]"
    done = ContainerRecord("setup", "terminated", exit_code=0, reason="Completed", ready=True)
    s = pod_status(p, [done], [running()], sandbox_ready=True, now=NOW)
    assert s["phase"] == "Running" and conditions(s)["Initialized"]["status"] == "True"
    failed = pod(init=("setup",), restart="Never")
    s = pod_status(failed, [exited("setup", 1)], [waiting(reason="PodInitializing")], sandbox_ready=True, now=NOW)
    assert s["phase"] == "Failed"
    assert conditions(s)["Ready"]["reason"] == "PodFailed"


def test_terminal_phase_is_never_left():
    p = pod(restart="Never")
    p["status"]["phase"] = "Succeeded"
    assert pod_status(p, [], [running()], sandbox_ready=True, now=NOW)["phase"] == "Succeeded"


def test_readiness_gates():
    p = pod(readinessGates=[{"conditionType": "example.com/lb"}])
    s = pod_status(p, [], [running()], sandbox_ready=True, now=NOW)
    assert conditions(s)["Ready"]["reason"] == "ReadinessGatesNotReady"
    assert 'readiness gate "example.com/lb" does not exist' in conditions(s)["Ready"]["message"]
    p["status"]["conditions"].append({"type": "example.com/lb", "status": "True"})
    s = pod_status(p, [], [running()], sandbox_ready=True, now=NOW)
    assert conditions(s)["Ready"]["status"] == "True"


def test_missing_container_status_keeps_the_pod_pending():
    assert pod_phase(pod(("a", "b")), [{"name": "a", "state": {"running": {}}}]) == "Pending"


@pytest.mark.parametrize("resources,qos", [
    ({}, "BestEffort"),
    ({"requests": {"cpu": "100m"}}, "Burstable"),
    ({"limits": {"cpu": "1", "memory": "1Gi"}}, "Guaranteed"),  # requests default to limits
    ({"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "1Gi"}}, "Burstable"),
])
def test_qos_class(resources, qos):
    p = pod()
    p["spec"]["containers"][0]["resources"] = resources
    assert qos_class(p["spec"]) == qos
