"""A pod's status from what the runtime knows of its containers, as the kubelet computes it.

Runtime-independent: the simulated runtime and the Docker runtime both report
`ContainerRecord`s, and this module turns them into the API's PodStatus JSON
(phase, conditions, container statuses, QoS class) with upstream's reasons and
messages, so `kubectl get/describe` and `rollout status` read them as usual.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from boxkube.api.pods import qos_class

Obj = dict[str, Any]

# Pod conditions the kubelet owns and recomputes (a pod on a node is scheduled);
# others (DisruptionTarget, readiness gates' own) are carried over, first, as upstream.
KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")


@dataclass
class ContainerRecord:
    """The latest instance of one container of a pod, as the runtime sees it."""

    name: str
    state: Literal["waiting", "running", "terminated"]
    reason: str = ""          # waiting: ContainerCreating, CrashLoopBackOff, ErrImageNeverPull...; terminated: Completed, Error
    message: str = ""
    exit_code: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    restart_count: int = 0
    last_terminated: Obj | None = None   # the previous instance's `terminated` state
    ready: bool = False
    started: bool = False     # the startup probe (if any) has passed
    image: str = ""
    image_id: str = ""
    container_id: str = ""
    extra: Obj = field(default_factory=dict)  # further ContainerStatus fields a runtime knows (e.g. resources)


def container_status(rec: ContainerRecord) -> Obj:
    if rec.state == "running":
        state: Obj = {"running": {"startedAt": rec.started_at}}
    elif rec.state == "terminated":
        state = {"terminated": _without_empty({
            "exitCode": rec.exit_code, "reason": rec.reason, "message": rec.message,
            "startedAt": rec.started_at, "finishedAt": rec.finished_at, "containerID": rec.container_id})}
    else:
        state = {"waiting": _without_empty({"reason": rec.reason, "message": rec.message})}
    status: Obj = {"name": rec.name, "state": state,
                   "lastState": {"terminated": rec.last_terminated} if rec.last_terminated else {},
                   "ready": rec.ready, "restartCount": rec.restart_count, "image": rec.image,
                   "imageID": rec.image_id, "started": rec.started if rec.state == "running" else False}
    if rec.container_id:
        status["containerID"] = rec.container_id
    status.update(rec.extra)
    return status


def _without_empty(d: Obj) -> Obj:
    return {k: v for k, v in d.items() if v not in (None, "")}


def _is_sidecar(container: Obj) -> bool:
    """A restartable init container (restartPolicy: Always), which keeps running beside the app."""
    return container.get("restartPolicy") == "Always"


def _by_name(statuses: list[Obj]) -> dict[str, Obj]:
    return {s["name"]: s for s in statuses}


def _has_last_termination(status: Obj) -> bool:
    return bool((status.get("lastState") or {}).get("terminated"))


def any_regular_container_started(spec: Obj, statuses: list[Obj]) -> bool:
    known = _by_name(statuses)
    for c in spec.get("containers") or []:
        s = known.get(c["name"])
        if s and ("running" in s["state"] or "terminated" in s["state"] or _has_last_termination(s)):
            return True
    return False


def pod_phase(pod: Obj, statuses: list[Obj], terminal: bool = False) -> str:
    """kubelet's getPhase over init and regular container statuses together."""
    spec = pod.get("spec") or {}
    known = _by_name(statuses)
    restart_policy = spec.get("restartPolicy", "Always")
    pending_init = failed_init = 0
    for c in spec.get("initContainers") or []:
        s = known.get(c["name"])
        if _is_sidecar(c):
            if s is None or ("running" in s["state"] and not s.get("started")) or \
                    ("waiting" in s["state"] and not _has_last_termination(s)):
                pending_init += 1
            continue
        if s is None or "running" in s["state"]:
            pending_init += 1
        elif "terminated" in s["state"]:
            failed_init += s["state"]["terminated"].get("exitCode", 0) != 0
        elif _has_last_termination(s):
            failed_init += s["lastState"]["terminated"].get("exitCode", 0) != 0
            pending_init += 1
        else:
            pending_init += 1
    running = waiting = stopped = succeeded = unknown = 0
    for c in spec.get("containers") or []:
        s = known.get(c["name"])
        if s is None:
            unknown += 1
        elif "running" in s["state"]:
            running += 1
        elif "terminated" in s["state"]:
            stopped += 1
            succeeded += s["state"]["terminated"].get("exitCode", 0) == 0
        elif _has_last_termination(s):
            stopped += 1
        else:
            waiting += 1
    if failed_init and restart_policy == "Never":
        return "Failed"
    if (pending_init and not any_regular_container_started(spec, statuses)) or waiting:
        return "Pending"
    if running and not unknown:
        return "Running"
    if not running and stopped and not unknown:
        if terminal:
            return "Succeeded" if stopped == succeeded else "Failed"
        if restart_policy == "Always":
            return "Running"  # every container is on its way back
        if stopped == succeeded:
            return "Succeeded"
        return "Failed" if restart_policy == "Never" else "Running"
    return "Pending"


def _names(names: list[str]) -> str:
    return "[" + " ".join(names) + "]"  # Go's %s of a []string


def _condition(type_: str, ok: bool, reason: str = "", message: str = "") -> Obj:
    return _without_empty({"type": type_, "status": "True" if ok else "False", "reason": reason, "message": message})


def _containers_ready(spec: Obj, statuses: list[Obj], phase: str) -> Obj:
    if phase == "Failed":
        return _condition("ContainersReady", False, "PodFailed")
    known = _by_name(statuses)
    wanted = [c for c in spec.get("initContainers") or [] if _is_sidecar(c)] + list(spec.get("containers") or [])
    unknown = [c["name"] for c in wanted if c["name"] not in known]
    unready = [c["name"] for c in wanted if c["name"] in known and not known[c["name"]].get("ready")]
    if phase == "Succeeded" and not unknown:
        return _condition("ContainersReady", False, "PodCompleted")
    parts = ([f"containers with unknown status: {_names(unknown)}"] if unknown else []) + \
        ([f"containers with unready status: {_names(unready)}"] if unready else [])
    if parts:
        return _condition("ContainersReady", False, "ContainersNotReady", ", ".join(parts))
    return _condition("ContainersReady", True)


def _ready(pod: Obj, containers_ready: Obj, conditions: list[Obj]) -> Obj:
    if containers_ready["status"] != "True":
        return {**containers_ready, "type": "Ready"}
    by_type = {c["type"]: c for c in conditions}
    problems = []
    for gate in (pod.get("spec") or {}).get("readinessGates") or []:
        kind = gate.get("conditionType", "")
        c = by_type.get(kind)
        if c is None:
            problems.append(f'corresponding condition of pod readiness gate "{kind}" does not exist.')
        elif c.get("status") != "True":
            problems.append(f'the status of pod readiness gate "{kind}" is not "True", but {c.get("status")}')
    if problems:
        return _condition("Ready", False, "ReadinessGatesNotReady", ", ".join(problems))
    return _condition("Ready", True)


def _initialized(spec: Obj, statuses: list[Obj], phase: str) -> Obj:
    known = _by_name(statuses)
    unknown, incomplete = [], []
    for c in spec.get("initContainers") or []:
        s = known.get(c["name"])
        if s is None:
            unknown.append(c["name"])
        elif not (s.get("started") if _is_sidecar(c) else s.get("ready")):
            incomplete.append(c["name"])
    if phase == "Succeeded" and not unknown:
        return _condition("Initialized", True, "PodCompleted")
    if any_regular_container_started(spec, statuses):
        return _condition("Initialized", True)
    parts = ([f"containers with unknown status: {_names(unknown)}"] if unknown else []) + \
        ([f"containers with incomplete status: {_names(incomplete)}"] if incomplete else [])
    if parts:
        return _condition("Initialized", False, "ContainersNotInitialized", ", ".join(parts))
    return _condition("Initialized", True)


def pod_status(pod: Obj, init_records: list[ContainerRecord], records: list[ContainerRecord], *,
               sandbox_ready: bool, now: str, pod_ip: str = "", host_ip: str = "", start_time: str | None = None,
               terminal: bool = False) -> Obj:
    """The whole PodStatus; lastTransitionTime is kept from the pod's current status while a condition holds."""
    spec = pod.get("spec") or {}
    old = pod.get("status") or {}
    init_statuses = [container_status(r) for r in init_records]
    statuses = [container_status(r) for r in records]
    phase = pod_phase(pod, init_statuses + statuses, terminal)
    if old.get("phase") in ("Succeeded", "Failed"):
        phase = old["phase"]  # a pod never leaves a terminal phase
    kept = [c for c in old.get("conditions") or [] if c.get("type") not in KUBELET_CONDITIONS]
    ready_to_start = _condition("PodReadyToStartContainers", sandbox_ready)
    initialized = _initialized(spec, init_statuses + statuses, phase)
    containers_ready = _containers_ready(spec, init_statuses + statuses, phase)
    ready = _ready(pod, containers_ready, kept)
    conditions = [*kept, ready_to_start, initialized, ready, containers_ready, _condition("PodScheduled", True)]
    previous = {c.get("type"): c for c in old.get("conditions") or []}
    for c in conditions:
        before = previous.get(c["type"])
        c.setdefault("lastProbeTime", None)
        c["lastTransitionTime"] = before.get("lastTransitionTime") if before and before.get("status") == c["status"] \
            and before.get("lastTransitionTime") else c.get("lastTransitionTime") or now
    status: Obj = {"phase": phase, "conditions": conditions, "qosClass": qos_class(spec),
                   "startTime": start_time or old.get("startTime") or now}
    if host_ip:
        status["hostIP"], status["hostIPs"] = host_ip, [{"ip": host_ip}]
    if pod_ip:
        status["podIP"], status["podIPs"] = pod_ip, [{"ip": pod_ip}]
    if spec.get("initContainers"):
        status["initContainerStatuses"] = init_statuses
    status["containerStatuses"] = statuses
    for key in ("reason", "message"):
        if old.get(key) and old.get("phase") == phase:
            status[key] = old[key]  # e.g. Evicted stays with the phase it came with
    return status
