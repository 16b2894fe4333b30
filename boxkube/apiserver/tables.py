"""meta.k8s.io/v1 Tables: what `kubectl get` prints.

kubectl asks for `application/json;as=Table;v=v1;g=meta.k8s.io` and prints the
columns the server sends, so the columns and cells here copy kube-apiserver's
printers (k8s.io/kubernetes/pkg/printers/internalversion/printers.go) exactly.
Like upstream (pkg/printers/storage), the server always builds the wide form;
kubectl hides the priority-1 columns unless `-o wide`.

A resource's table is data: a `Printer` is a list of `Column`s, each with the
function computing its cell. Adding a resource is adding one entry to
`_PRINTERS`. Resources without an entry get upstream's generic table
(k8s.io/apiserver/pkg/registry/rest/table.go): Name and Created At.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from boxkube.api.times import parse_time
from boxkube.apiserver import errors, schema
from boxkube.apiserver.resources import ResourceType
from boxkube.apiserver.selectors import format_label_selector, format_labels, label_selector_from_object

TABLE_API_VERSION = "meta.k8s.io/v1"

# TableOptions.includeObject values (metav1.IncludeObjectPolicy)
INCLUDE_NONE = "None"
INCLUDE_METADATA = "Metadata"
INCLUDE_OBJECT = "Object"
_INCLUDE_VALUES = (INCLUDE_METADATA, INCLUDE_NONE, INCLUDE_OBJECT)

Obj = Mapping[str, Any]


# --------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------

def human_duration(d: timedelta) -> str:
    """duration.HumanDuration: ~2-3 significant figures ("45s", "3m2s", "5h", "2d3h", "3y")."""
    micros = (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds
    seconds = abs(micros) // 1_000_000 * (1 if micros >= 0 else -1)  # Go truncates toward zero
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"  # up to 2s of clock skew reads as "now"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m" if seconds % 60 == 0 else f"{minutes}m{seconds % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        years, days = hours // 24 // 365, (hours // 24) % 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


def _since(value: Any, now: datetime) -> str:
    """translateTimestampSince: the age of an RFC 3339 timestamp, <unknown> when unset."""
    t = parse_time(value)
    return "<unknown>" if t is None else human_duration(now - t)


def _rfc3339(value: Any) -> str:
    """How Go prints a metav1.Time in UTC with time.RFC3339 (no fractional seconds)."""
    t = parse_time(value)
    return "" if t is None else t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------
# Reading plain Kubernetes JSON
# --------------------------------------------------------------------------

def _get(obj: Any, path: str, default: Any = None) -> Any:
    for part in path.split("."):
        if not isinstance(obj, Mapping) or obj.get(part) is None:
            return default
        obj = obj[part]
    return obj


def _int(obj: Obj, path: str) -> int:
    return int(_get(obj, path, 0))


def _list(obj: Obj, path: str) -> list[Any]:
    return _get(obj, path, []) or []


# --------------------------------------------------------------------------
# The column mechanism
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Doc:
    """A column description taken from the upstream schema (what SwaggerDoc() returns)."""
    definition: str
    field: str


@functools.cache
def _schema_doc(definition: str, field: str) -> str:
    return schema.definition(definition).get("properties", {}).get(field, {}).get("description", "")


@dataclass(frozen=True)
class Row:
    """What a cell function sees: the object, the clock, and the printer's derived values."""
    obj: Obj
    now: datetime
    derived: Any = None


@dataclass(frozen=True)
class Column:
    name: str
    cell: Callable[[Row], Any]
    description: str | Doc = ""
    type: str = "string"
    format: str = ""
    priority: int = 0

    def definition(self) -> dict[str, Any]:
        doc = self.description
        text = _schema_doc(doc.definition, doc.field) if isinstance(doc, Doc) else doc
        return {"name": self.name, "type": self.type, "format": self.format,
                "description": text, "priority": self.priority}


@dataclass(frozen=True)
class Printer:
    columns: tuple[Column, ...]
    # computed once per object when several cells share work (pod status)
    derive: Callable[[Obj, datetime], Any] | None = None
    # metav1.TableRowCondition list for a row, if any
    conditions: Callable[[Obj], list[dict[str, str]] | None] | None = None


_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_CORE = "io.k8s.api.core.v1."
_APPS = "io.k8s.api.apps.v1."


def _wide(name: str, cell: Callable[[Row], Any], description: str | Doc = "", **kw: Any) -> Column:
    return Column(name, cell, description, priority=1, **kw)


NAME = Column("Name", lambda r: _get(r.obj, "metadata.name", ""), Doc(_META, "name"), format="name")
AGE = Column("Age", lambda r: _since(_get(r.obj, "metadata.creationTimestamp"), r.now),
             Doc(_META, "creationTimestamp"))


def _containers(template_path: str) -> tuple[Column, Column]:
    """The wide CONTAINERS and IMAGES columns of a workload's pod template."""
    def names(r: Row) -> str:
        return ",".join(c.get("name", "") for c in _list(r.obj, f"{template_path}.spec.containers"))

    def images(r: Row) -> str:
        return ",".join(c.get("image", "") for c in _list(r.obj, f"{template_path}.spec.containers"))

    return (_wide("Containers", names, "Names of each container in the template."),
            _wide("Images", images, "Images referenced by each container in the template."))


def _ready_of_desired(r: Row) -> str:
    return f"{_int(r.obj, 'status.readyReplicas')}/{_int(r.obj, 'spec.replicas')}"


# --------------------------------------------------------------------------
# Pods
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class _PodSummary:
    ready: str
    status: str
    restarts: str


def _is_restartable_init(container: Obj | None) -> bool:
    """Sidecars: init containers with restartPolicy Always count as app containers."""
    return bool(container) and container.get("restartPolicy") == "Always"


def _condition_true(conditions: Sequence[Obj], ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True" for c in conditions)


def _later(current: datetime | None, candidate: Any) -> datetime | None:
    t = parse_time(candidate)
    return t if t is not None and (current is None or t > current) else current


def _terminated_reason(term: Obj, prefix: str = "") -> str:
    if term.get("reason"):
        return prefix + term["reason"]
    if term.get("signal"):
        return f"{prefix}Signal:{term['signal']}"
    return f"{prefix}ExitCode:{term.get('exitCode', 0)}"


def _pod_summary(pod: Obj, now: datetime) -> _PodSummary:
    """READY, STATUS and RESTARTS exactly as printPod derives them."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    conditions = status.get("conditions") or []
    phase = status.get("phase", "")
    reason = status.get("reason") or phase
    if any(c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated" for c in conditions):
        reason = "SchedulingGated"

    init_list = spec.get("initContainers") or []
    init_specs = {c.get("name"): c for c in init_list}
    total = len(spec.get("containers") or []) + sum(map(_is_restartable_init, init_list))
    ready = restarts = sidecar_restarts = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None

    initializing = False
    for i, cs in enumerate(status.get("initContainerStatuses") or []):
        restarts += cs.get("restartCount", 0)
        finished = _get(cs, "lastState.terminated.finishedAt")
        last_restart = _later(last_restart, finished)
        sidecar = _is_restartable_init(init_specs.get(cs.get("name")))
        if sidecar:
            sidecar_restarts += cs.get("restartCount", 0)
            last_sidecar_restart = _later(last_sidecar_restart, finished)
        state = cs.get("state") or {}
        term, waiting = state.get("terminated"), state.get("waiting")
        if term is not None and term.get("exitCode", 0) == 0:
            continue
        if sidecar and cs.get("started"):
            ready += 1 if cs.get("ready") else 0
            continue
        if term is not None:
            reason = _terminated_reason(term, "Init:")
        elif waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(init_list)}"
        initializing = True
        break

    if not initializing or _condition_true(conditions, "Initialized"):
        restarts, last_restart = sidecar_restarts, last_sidecar_restart
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += cs.get("restartCount", 0)
            last_restart = _later(last_restart, _get(cs, "lastState.terminated.finishedAt"))
            state = cs.get("state") or {}
            term, waiting = state.get("terminated"), state.get("waiting")
            if waiting and waiting.get("reason"):
                reason = waiting["reason"]
            elif term is not None:
                reason = _terminated_reason(term)
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        # a finished container next to running ones: say how the pod is, not "Completed"
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_true(conditions, "Ready") else "NotReady"

    if _get(pod, "metadata.deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"

    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        restarts_text = f"{restarts} ({human_duration(now - last_restart)} ago)"
    return _PodSummary(f"{ready}/{total}", reason, restarts_text)


def _pod_ip(r: Row) -> str:
    # v1 podIP wins; podIPs[0] when only the list is set (what the internal PodIPs holds)
    ips = _list(r.obj, "status.podIPs")
    return _get(r.obj, "status.podIP") or (ips[0].get("ip") if ips else None) or "<none>"


def _readiness_gates(r: Row) -> str:
    gates = _list(r.obj, "spec.readinessGates")
    if not gates:
        return "<none>"
    statuses: dict[str, str] = {}
    for c in _list(r.obj, "status.conditions"):
        statuses.setdefault(c.get("type"), c.get("status"))
    true = sum(1 for g in gates if statuses.get(g.get("conditionType")) == "True")
    return f"{true}/{len(gates)}"


def _pod_conditions(pod: Obj) -> list[dict[str, str]] | None:
    phase = _get(pod, "status.phase")
    if phase == "Succeeded":
        return [{"type": "Completed", "status": "True", "reason": "Succeeded",
                 "message": "The pod has completed successfully."}]
    if phase == "Failed":
        return [{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]
    return None


_POD = Printer(
    columns=(
        NAME,
        Column("Ready", lambda r: r.derived.ready, "The aggregate readiness state of this pod for accepting traffic."),
        Column("Status", lambda r: r.derived.status, "The aggregate status of the containers in this pod."),
        Column("Restarts", lambda r: r.derived.restarts,
               "The number of times the containers in this pod have been restarted and when the last "
               "container in this pod has restarted."),
        AGE,
        _wide("IP", _pod_ip, Doc(_CORE + "PodStatus", "podIP")),
        _wide("Node", lambda r: _get(r.obj, "spec.nodeName") or "<none>", Doc(_CORE + "PodSpec", "nodeName")),
        _wide("Nominated Node", lambda r: _get(r.obj, "status.nominatedNodeName") or "<none>",
              Doc(_CORE + "PodStatus", "nominatedNodeName")),
        _wide("Readiness Gates", _readiness_gates, Doc(_CORE + "PodSpec", "readinessGates")),
    ),
    derive=_pod_summary,
    conditions=_pod_conditions,
)


# --------------------------------------------------------------------------
# Workloads
# --------------------------------------------------------------------------

def _deployment_selector(r: Row) -> str:
    # printDeployment prints the raw selector string ("" when empty) or <invalid>
    try:
        return str(label_selector_from_object(_get(r.obj, "spec.selector")))
    except errors.APIError:
        return "<invalid>"


_DEPLOYMENT = Printer((
    NAME,
    Column("Ready", _ready_of_desired, "Number of the pod with ready state"),
    Column("Up-to-date", lambda r: _int(r.obj, "status.updatedReplicas"),
           Doc(_APPS + "DeploymentStatus", "updatedReplicas")),
    Column("Available", lambda r: _int(r.obj, "status.availableReplicas"),
           Doc(_APPS + "DeploymentStatus", "availableReplicas")),
    AGE,
    *_containers("spec.template"),
    _wide("Selector", _deployment_selector, Doc(_APPS + "DeploymentSpec", "selector")),
))


def _replica_columns(spec: str, status: str) -> tuple[Column, ...]:
    """DESIRED, CURRENT, READY of ReplicaSets and ReplicationControllers."""
    return (
        Column("Desired", lambda r: _int(r.obj, "spec.replicas"), Doc(spec, "replicas"), type="integer"),
        Column("Current", lambda r: _int(r.obj, "status.replicas"), Doc(status, "replicas"), type="integer"),
        Column("Ready", lambda r: _int(r.obj, "status.readyReplicas"), Doc(status, "readyReplicas"), type="integer"),
    )


_REPLICASET = Printer((
    NAME,
    *_replica_columns(_APPS + "ReplicaSetSpec", _APPS + "ReplicaSetStatus"),
    AGE,
    *_containers("spec.template"),
    _wide("Selector", lambda r: format_label_selector(_get(r.obj, "spec.selector")),
          Doc(_APPS + "ReplicaSetSpec", "selector")),
))

_REPLICATIONCONTROLLER = Printer((
    NAME,
    *_replica_columns(_CORE + "ReplicationControllerSpec", _CORE + "ReplicationControllerStatus"),
    AGE,
    *_containers("spec.template"),
    _wide("Selector", lambda r: format_labels(_get(r.obj, "spec.selector")),
          Doc(_CORE + "ReplicationControllerSpec", "selector")),
))

_STATEFULSET = Printer((
    NAME,
    Column("Ready", _ready_of_desired, "Number of the pod with ready state"),
    AGE,
    *_containers("spec.template"),
))


def _daemonset_count(field: str) -> Column:
    titles = {"desiredNumberScheduled": "Desired", "currentNumberScheduled": "Current", "numberReady": "Ready",
              "updatedNumberScheduled": "Up-to-date", "numberAvailable": "Available"}
    return Column(titles[field], lambda r: _int(r.obj, f"status.{field}"),
                  Doc(_APPS + "DaemonSetStatus", field), type="integer")


_DAEMONSET = Printer((
    NAME,
    *map(_daemonset_count, ("desiredNumberScheduled", "currentNumberScheduled", "numberReady",
                            "updatedNumberScheduled", "numberAvailable")),
    Column("Node Selector", lambda r: format_labels(_get(r.obj, "spec.template.spec.nodeSelector")),
           Doc(_CORE + "PodSpec", "nodeSelector")),
    AGE,
    *_containers("spec.template"),
    _wide("Selector", lambda r: format_label_selector(_get(r.obj, "spec.selector")),
          Doc(_APPS + "DaemonSetSpec", "selector")),
))


def _controller_of(r: Row) -> str:
    """`kind.group/name` of the controlling owner, <none> without one."""
    for ref in _list(r.obj, "metadata.ownerReferences"):
        if ref.get("controller"):
            api_version = ref.get("apiVersion", "")
            group = api_version.split("/")[0] if "/" in api_version else ""
            kind = f"{ref.get('kind', '')}.{group}" if group else ref.get("kind", "")
            return f"{kind.lower()}/{ref.get('name', '')}" if kind else ref.get("name", "")
    return "<none>"


_CONTROLLERREVISION = Printer((
    NAME,
    Column("Controller", _controller_of, "Controller of the object"),
    Column("Revision", lambda r: _int(r.obj, "revision"), Doc(_APPS + "ControllerRevision", "revision")),
    AGE,
))


# --------------------------------------------------------------------------
# Services and endpoints
# --------------------------------------------------------------------------

def _cluster_ip(r: Row) -> str:
    ips = _list(r.obj, "spec.clusterIPs")
    return _get(r.obj, "spec.clusterIP") or (ips[0] if ips else None) or "<none>"


def _load_balancer_ips(svc: Obj) -> list[str]:
    found = {i.get("ip") or i.get("hostname") for i in _list(svc, "status.loadBalancer.ingress")}
    return sorted(x for x in found if x)


def _external_ip(r: Row) -> str:
    svc_type = _get(r.obj, "spec.type", "")
    external = _list(r.obj, "spec.externalIPs")
    if svc_type in ("ClusterIP", "NodePort"):
        return ",".join(external) or "<none>"
    if svc_type == "LoadBalancer":
        # the server builds the wide form, so the list is never clipped
        return ",".join(_load_balancer_ips(r.obj) + external) or "<pending>"
    if svc_type == "ExternalName":
        return _get(r.obj, "spec.externalName", "")
    return "<unknown>"


def _service_ports(r: Row) -> str:
    def one(p: Obj) -> str:
        node_port = f":{p['nodePort']}" if p.get("nodePort") else ""
        return f"{p.get('port', 0)}{node_port}/{p.get('protocol', '')}"

    return ",".join(one(p) for p in _list(r.obj, "spec.ports")) or "<none>"


_SERVICE = Printer((
    NAME,
    Column("Type", lambda r: _get(r.obj, "spec.type", ""), Doc(_CORE + "ServiceSpec", "type")),
    Column("Cluster-IP", _cluster_ip, Doc(_CORE + "ServiceSpec", "clusterIP")),
    Column("External-IP", _external_ip, Doc(_CORE + "ServiceSpec", "externalIPs")),
    Column("Port(s)", _service_ports, Doc(_CORE + "ServiceSpec", "ports")),
    AGE,
    _wide("Selector", lambda r: format_labels(_get(r.obj, "spec.selector")), Doc(_CORE + "ServiceSpec", "selector")),
))


def _join_host_port(host: str, port: Any) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _list_with_more(items: list[str], total: int, limit: int = 3) -> str:
    """First `limit` items, then " + N more..." as upstream's list cells do."""
    text = ",".join(items[:limit])
    return f"{text} + {total - limit} more..." if total > limit else text


def _endpoints(r: Row) -> str:
    subsets = _list(r.obj, "subsets")
    if not subsets:
        return "<none>"
    shown: list[str] = []
    total = 0
    for ss in subsets:
        addresses = [a.get("ip", "") for a in ss.get("addresses") or []]
        ports = ss.get("ports") or []
        if not ports:  # headless services without ports list bare IPs
            total += len(addresses)
            shown.extend(addresses)
            continue
        for port in ports:
            total += len(addresses)
            shown.extend(_join_host_port(ip, port.get("port", 0)) for ip in addresses)
    return _list_with_more(shown, total)


def _slice_ports(r: Row) -> str:
    def one(p: Obj) -> str:
        if p.get("port") is not None:
            return str(p["port"])
        return p["name"] if p.get("name") is not None else "*"

    ports = _list(r.obj, "ports")
    return _list_with_more([one(p) for p in ports], len(ports)) or "<unset>"


def _slice_endpoints(r: Row) -> str:
    addresses = [a for e in _list(r.obj, "endpoints") for a in e.get("addresses") or []]
    return _list_with_more(addresses, len(addresses)) or "<unset>"


_ENDPOINTS = Printer((NAME, Column("Endpoints", _endpoints, Doc(_CORE + "Endpoints", "subsets")), AGE))

_SLICE = "io.k8s.api.discovery.v1.EndpointSlice"
_ENDPOINTSLICE = Printer((
    NAME,
    Column("AddressType", lambda r: r.obj.get("addressType", ""), Doc(_SLICE, "addressType")),
    Column("Ports", _slice_ports, Doc(_SLICE, "ports")),
    Column("Endpoints", _slice_endpoints, Doc(_SLICE, "endpoints")),
    AGE,
))


# --------------------------------------------------------------------------
# Nodes, namespaces, events and the small ones
# --------------------------------------------------------------------------

def _node_status(r: Row) -> str:
    ready = [c for c in _list(r.obj, "status.conditions") if c.get("type") == "Ready"]
    status = ["Ready" if ready[-1].get("status") == "True" else "NotReady"] if ready else ["Unknown"]
    if _get(r.obj, "spec.unschedulable"):
        status.append("SchedulingDisabled")
    return ",".join(status)


def _node_roles(r: Row) -> str:
    roles = set()
    for key, value in (_get(r.obj, "metadata.labels") or {}).items():
        if key.startswith("node-role.kubernetes.io/") and key[len("node-role.kubernetes.io/"):]:
            roles.add(key[len("node-role.kubernetes.io/"):])
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return ",".join(sorted(roles)) or "<none>"


def _node_address(kind: str) -> Callable[[Row], str]:
    def cell(r: Row) -> str:
        found = [a.get("address", "") for a in _list(r.obj, "status.addresses") if a.get("type") == kind]
        return found[0] if found else "<none>"
    return cell


def _node_info(field: str) -> Callable[[Row], str]:
    return lambda r: _get(r.obj, f"status.nodeInfo.{field}") or "<unknown>"


_NODE_INFO = _CORE + "NodeSystemInfo"
_NODE = Printer((
    NAME,
    Column("Status", _node_status, "The status of the node"),
    Column("Roles", _node_roles, "The roles of the node"),
    AGE,
    Column("Version", lambda r: _get(r.obj, "status.nodeInfo.kubeletVersion", ""), Doc(_NODE_INFO, "kubeletVersion")),
    _wide("Internal-IP", _node_address("InternalIP"), Doc(_CORE + "NodeStatus", "addresses")),
    _wide("External-IP", _node_address("ExternalIP"), Doc(_CORE + "NodeStatus", "addresses")),
    _wide("OS-Image", _node_info("osImage"), Doc(_NODE_INFO, "osImage")),
    _wide("Kernel-Version", _node_info("kernelVersion"), Doc(_NODE_INFO, "kernelVersion")),
    _wide("Container-Runtime", _node_info("containerRuntimeVersion"), Doc(_NODE_INFO, "containerRuntimeVersion")),
))


@dataclass(frozen=True)
class _EventTimes:
    first_seen: str
    last_seen: str
    count: int


def _event_times(ev: Obj, now: datetime) -> _EventTimes:
    """printEvent's fallbacks: eventTime for an unset firstTimestamp, series for repeats."""
    first = _since(ev.get("firstTimestamp") or ev.get("eventTime"), now)
    last = _since(ev["lastTimestamp"], now) if ev.get("lastTimestamp") else first
    count = ev.get("count") or 0
    series = ev.get("series")
    if series is not None:
        last = _since(series.get("lastObservedTime"), now)
        count = series.get("count") or 0
    elif count == 0:
        count = 1  # singleton events of the new API carry no count
    return _EventTimes(first, last, count)


def _event_object(r: Row) -> str:
    kind = _get(r.obj, "involvedObject.kind", "").lower()
    name = _get(r.obj, "involvedObject.name", "")
    return f"{kind}/{name}" if name else kind


def _event_source(r: Row) -> str:
    component = _get(r.obj, "source.component") or _get(r.obj, "reportingComponent", "")
    instance = _get(r.obj, "source.host") or _get(r.obj, "reportingInstance", "")
    return f"{component}, {instance}" if instance else component


_EVENT = "io.k8s.api.core.v1.Event"
_EVENT_PRINTER = Printer(
    columns=(
        Column("Last Seen", lambda r: r.derived.last_seen, Doc(_EVENT, "lastTimestamp")),
        Column("Type", lambda r: r.obj.get("type", ""), Doc(_EVENT, "type")),
        Column("Reason", lambda r: r.obj.get("reason", ""), Doc(_EVENT, "reason")),
        Column("Object", _event_object, Doc(_EVENT, "involvedObject")),
        _wide("Subobject", lambda r: _get(r.obj, "involvedObject.fieldPath", ""),
              Doc(_CORE + "ObjectReference", "fieldPath")),
        _wide("Source", _event_source, Doc(_EVENT, "source")),
        Column("Message", lambda r: (r.obj.get("message") or "").strip(), Doc(_EVENT, "message")),
        _wide("First Seen", lambda r: r.derived.first_seen, Doc(_EVENT, "firstTimestamp")),
        _wide("Count", lambda r: r.derived.count, Doc(_EVENT, "count")),
        _wide("Name", lambda r: _get(r.obj, "metadata.name", ""), Doc(_META, "name"), format="name"),
    ),
    derive=_event_times,
)

_NAMESPACE = Printer((
    NAME,
    Column("Status", lambda r: _get(r.obj, "status.phase", ""), "The status of the namespace"),
    AGE,
))

_SECRET = Printer((
    NAME,
    Column("Type", lambda r: r.obj.get("type", ""), Doc(_CORE + "Secret", "type")),
    # stringData is folded into data on write, as the v1 -> internal conversion does
    Column("Data", lambda r: len({*(r.obj.get("data") or {}), *(r.obj.get("stringData") or {})}),
           Doc(_CORE + "Secret", "data")),
    AGE,
))

_CONFIGMAP = Printer((
    NAME,
    Column("Data", lambda r: len(r.obj.get("data") or {}) + len(r.obj.get("binaryData") or {}),
           Doc(_CORE + "ConfigMap", "data")),
    AGE,
))

_SERVICEACCOUNT = Printer((
    NAME,
    Column("Secrets", lambda r: len(r.obj.get("secrets") or []), Doc(_CORE + "ServiceAccount", "secrets")),
    AGE,
))

_LEASE = Printer((
    NAME,
    Column("Holder", lambda r: _get(r.obj, "spec.holderIdentity", ""),
           Doc("io.k8s.api.coordination.v1.LeaseSpec", "holderIdentity")),
    AGE,
))

# Upstream's generic table for resources without a printer (rest.NewDefaultTableConvertor).
_DEFAULT = Printer((
    NAME,
    Column("Created At", lambda r: _rfc3339(_get(r.obj, "metadata.creationTimestamp")),
           Doc(_META, "creationTimestamp"), type="date"),
))

# (group, plural) -> printer
_PRINTERS: Mapping[tuple[str, str], Printer] = {
    ("", "pods"): _POD,
    ("", "services"): _SERVICE,
    ("", "endpoints"): _ENDPOINTS,
    ("", "nodes"): _NODE,
    ("", "namespaces"): _NAMESPACE,
    ("", "events"): _EVENT_PRINTER,
    ("", "configmaps"): _CONFIGMAP,
    ("", "secrets"): _SECRET,
    ("", "serviceaccounts"): _SERVICEACCOUNT,
    ("", "replicationcontrollers"): _REPLICATIONCONTROLLER,
    ("apps", "deployments"): _DEPLOYMENT,
    ("apps", "replicasets"): _REPLICASET,
    ("apps", "statefulsets"): _STATEFULSET,
    ("apps", "daemonsets"): _DAEMONSET,
    ("apps", "controllerrevisions"): _CONTROLLERREVISION,
    ("coordination.k8s.io", "leases"): _LEASE,
    ("discovery.k8s.io", "endpointslices"): _ENDPOINTSLICE,
}


def _printer_for(rt: ResourceType) -> Printer:
    return _PRINTERS.get((rt.group, rt.plural), _DEFAULT)


# --------------------------------------------------------------------------
# Assembling the Table
# --------------------------------------------------------------------------

def columns_for(rt: ResourceType) -> list[dict[str, Any]]:
    """The Table's columnDefinitions for a resource (wide columns have priority 1)."""
    return [c.definition() for c in _printer_for(rt).columns]


def _check_include_object(value: str) -> None:
    """ValidateTableOptions: only "", Metadata, None and Object are accepted."""
    if value not in ("", *_INCLUDE_VALUES):
        supported = ", ".join(f'"{v}"' for v in _INCLUDE_VALUES)
        raise errors.bad_request(f'Unable to convert to Table as requested: includeObject: '
                                 f'Unsupported value: "{value}": supported values: {supported}')


def _row_object(rt: ResourceType, obj: Obj, include_object: str) -> dict[str, Any] | None:
    if include_object == INCLUDE_NONE:
        return None
    if include_object == INCLUDE_OBJECT:
        return {"apiVersion": rt.group_version, "kind": rt.kind, **obj}
    return {"kind": "PartialObjectMetadata", "apiVersion": TABLE_API_VERSION,
            "metadata": dict(obj.get("metadata") or {})}


def _row(printer: Printer, rt: ResourceType, obj: Obj, now: datetime, include_object: str) -> dict[str, Any]:
    ctx = Row(obj, now, printer.derive(obj, now) if printer.derive else None)
    row: dict[str, Any] = {"cells": [c.cell(ctx) for c in printer.columns]}
    conditions = printer.conditions(obj) if printer.conditions else None
    if conditions:
        row["conditions"] = conditions
    row["object"] = _row_object(rt, obj, include_object)
    return row


def _table_metadata(objects: Sequence[Obj], list_meta: Mapping[str, Any] | None) -> dict[str, Any]:
    """ListMeta of the list served; for a single get, the object's resourceVersion."""
    if list_meta is None:
        rv = _get(objects[0], "metadata.resourceVersion") if len(objects) == 1 else None
        return {"resourceVersion": rv} if rv else {}
    return {k: list_meta[k] for k in ("resourceVersion", "continue", "remainingItemCount")
            if list_meta.get(k) not in (None, "")}


def to_table(rt: ResourceType, objects: list[dict[str, Any]], *, include_object: str = INCLUDE_METADATA,
             now: datetime | None = None, list_meta: dict[str, Any] | None = None,
             no_headers: bool = False) -> dict[str, Any]:
    """Render objects of one resource as a meta.k8s.io/v1 Table.

    include_object is the request's `includeObject` ("Metadata" by default, "None" or
    "Object"); anything else is a 400 as upstream. Pass the list's metadata as
    `list_meta` for a list; for a single get leave it None and pass one object.
    `no_headers` (TableOptions.noHeaders, used for watch events after the first) leaves
    columnDefinitions null.
    """
    _check_include_object(include_object)
    include_object = include_object or INCLUDE_METADATA
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    printer = _printer_for(rt)
    return {
        "kind": "Table",
        "apiVersion": TABLE_API_VERSION,
        "metadata": _table_metadata(objects, list_meta),
        "columnDefinitions": None if no_headers else columns_for(rt),
        "rows": [_row(printer, rt, obj, now, include_object) for obj in objects],
    }
