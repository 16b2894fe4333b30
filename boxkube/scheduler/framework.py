"""The scheduling framework, kube-scheduler's shape made small.

A profile is an ordered list of plugins. Each plugin implements only the
extension points it needs: `pre_filter` (compute once per pod), `filter`
(None when the node fits, else a Status with reasons), `pre_score`, `score`
(0..100 per node) and `normalize_score`. `schedule()` runs them over a
Snapshot of the cluster and picks the node with the highest weighted total,
breaking ties at random as upstream's selectHost does; when no node fits it
raises FitError, whose message is upstream's ("0/3 nodes are available: 3
Insufficient cpu.").

A plugin may also score all feasible nodes in one call (`score_nodes`), and
keep per-node results in `NodeInfo.memo`, which is emptied whenever the node
or its pods change: pods of one workload are scheduled one after another and
each changes one node, so most of what was worked out for the previous pod
still holds. This is what makes a Python scheduler keep up with 1,000 nodes.

Nothing here talks to the API server: the caller keeps the Snapshot up to
date from informers and binds the result.
"""
from __future__ import annotations

import enum
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from boxkube.scheduler.podinfo import PodInfo, pod_key
from boxkube.scheduler.resources import CPU, MEMORY, Resources, node_allocatable

MAX_NODE_SCORE = 100

CycleState = dict[str, Any]
"""Per-attempt scratch space; each plugin keeps its data under its own name."""


class Code(enum.Enum):
    SUCCESS = "Success"
    UNSCHEDULABLE = "Unschedulable"
    # preemption could not help on this node (kept for when preemption exists)
    UNSCHEDULABLE_AND_UNRESOLVABLE = "UnschedulableAndUnresolvable"
    SKIP = "Skip"
    ERROR = "Error"


@dataclass(frozen=True)
class Status:
    """A plugin's verdict; `reasons` are the strings counted into FitError."""

    code: Code
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    @property
    def message(self) -> str:
        return ", ".join(self.reasons)

    @property
    def rejected(self) -> bool:
        return self.code in (Code.UNSCHEDULABLE, Code.UNSCHEDULABLE_AND_UNRESOLVABLE)


def unschedulable(*reasons: str) -> Status:
    return Status(Code.UNSCHEDULABLE, reasons)


def unresolvable(*reasons: str) -> Status:
    return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, reasons)


SKIP = Status(Code.SKIP)


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------

class Unschedulable(Exception):
    """The pod fits nowhere now; str() is the FailedScheduling event message."""


class FitError(Unschedulable):
    """framework.FitError: why each node was rejected, counted by reason."""

    def __init__(self, pod: Mapping[str, Any], num_all_nodes: int,
                 node_statuses: Mapping[str, Status], pre_filter_msg: str = ""):
        self.pod = pod
        self.num_all_nodes = num_all_nodes
        self.node_statuses = dict(node_statuses)
        self.pre_filter_msg = pre_filter_msg
        super().__init__(self._message())

    @property
    def unschedulable_plugins(self) -> frozenset[str]:
        return frozenset(s.plugin for s in self.node_statuses.values() if s.plugin)

    def _message(self) -> str:
        msg = f"0/{self.num_all_nodes} nodes are available:"
        if self.pre_filter_msg:
            # a PreFilter rejection applies to every node: upstream prints it alone
            return f"{msg} {self.pre_filter_msg}."
        counts = Counter(r for s in self.node_statuses.values() for r in s.reasons)
        # sort.Strings over "<count> <reason>": byte order, so "10 x" sorts before "2 x"
        histogram = sorted(f"{n} {reason}" for reason, n in counts.items())
        return f"{msg} {', '.join(histogram)}." if histogram else msg


class NoNodesAvailable(Unschedulable):
    """ErrNoNodesAvailable: the cluster has no nodes at all."""

    def __init__(self) -> None:
        super().__init__("no nodes available to schedule pods")


class SchedulingError(Exception):
    """Not a verdict about nodes: the pod or a plugin is broken (upstream's Error status)."""


# --------------------------------------------------------------------------
# NodeInfo and Snapshot
# --------------------------------------------------------------------------

class NodeInfo:
    """A node and the pods counted on it, with their summed requests (framework.NodeInfo)."""

    __slots__ = ("node", "name", "labels", "taints", "unschedulable", "allocatable", "pods", "requested",
                 "non_zero_requested", "pods_with_affinity", "pods_with_required_anti_affinity", "memo")

    def __init__(self, node: Mapping[str, Any] | None = None, name: str = ""):
        self.pods: dict[str, PodInfo] = {}
        # plugins' results for this node (pods matching a selector, a score for some requests), keyed by
        # what they depend on in the pod; emptied whenever the node or its pods change. Pods of one workload
        # are scheduled one after another and change one node each: the other nodes' results stay good.
        self.memo: dict[str, Any] = {}
        self.requested: Resources = {}
        self.non_zero_requested: Resources = {CPU: 0, MEMORY: 0}
        self.pods_with_affinity: dict[str, PodInfo] = {}
        self.pods_with_required_anti_affinity: dict[str, PodInfo] = {}
        self.node: Mapping[str, Any] | None = None
        self.name = name
        self.labels: Mapping[str, str] = {}
        self.taints: list[Mapping[str, Any]] = []
        self.unschedulable = False
        self.allocatable: Resources = {}
        if node is not None:
            self.set_node(node)

    def set_node(self, node: Mapping[str, Any]) -> None:
        self.node = node
        self.memo.clear()
        self.name = (node.get("metadata") or {}).get("name", "")
        self.labels = (node.get("metadata") or {}).get("labels") or {}
        self.taints = (node.get("spec") or {}).get("taints") or []
        self.unschedulable = bool((node.get("spec") or {}).get("unschedulable"))
        self.allocatable = node_allocatable(node)

    def add_pod(self, info: PodInfo) -> None:
        self.pods[info.key] = info
        self.memo.clear()
        if info.has_affinity:
            self.pods_with_affinity[info.key] = info
        if info.required_anti_affinity_terms:
            self.pods_with_required_anti_affinity[info.key] = info
        self._account(info, 1)

    def remove_pod(self, key: str) -> PodInfo | None:
        info = self.pods.pop(key, None)
        if info is not None:
            self.memo.clear()
            self.pods_with_affinity.pop(key, None)
            self.pods_with_required_anti_affinity.pop(key, None)
            self._account(info, -1)
        return info

    def _account(self, info: PodInfo, sign: int) -> None:
        for name, v in info.resource.requests.items():
            self.requested[name] = self.requested.get(name, 0) + sign * v
        self.non_zero_requested[CPU] += sign * info.resource.non_zero_cpu
        self.non_zero_requested[MEMORY] += sign * info.resource.non_zero_memory

    def __repr__(self) -> str:
        return f"NodeInfo({self.name}, pods={len(self.pods)})"


def _name(obj: Mapping[str, Any]) -> str:
    return (obj.get("metadata") or {}).get("name", "")


def _is_terminal(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


SPREADING_KINDS = ("Service", "ReplicationController", "ReplicaSet", "StatefulSet")


class Snapshot:
    """The cluster as the scheduler sees it: nodes with their pods (bound and assumed),
    namespace labels (for namespaceSelector) and the objects default spreading groups pods by.

    It is also the scheduler cache: keep it current with the add/update/remove
    methods from informer events; `assume_pod` counts a pod on its node before
    the binding is observed.
    """

    def __init__(self, nodes: Iterable[Mapping[str, Any]] = (), pods: Iterable[Mapping[str, Any]] = (), *,
                 namespaces: Iterable[Mapping[str, Any]] = (),
                 objects: Mapping[str, Iterable[Mapping[str, Any]]] | None = None):
        self._nodes: dict[str, NodeInfo] = {}
        # pods whose node is not known (yet): upstream keeps them in a node-less NodeInfo
        self._orphans: dict[str, NodeInfo] = {}
        self._pod_node: dict[str, str] = {}
        self._assumed: set[str] = set()
        self._namespace_labels: dict[str, Mapping[str, str]] = {}
        # kind -> namespace -> name -> object
        self._objects: dict[str, dict[str, dict[str, Mapping[str, Any]]]] = {k: {} for k in SPREADING_KINDS}
        # placed pods with any pod (anti-)affinity, and with required anti-affinity: most clusters have
        # none, and then InterPodAffinity need not look at every node for every pod
        self.pods_with_affinity = 0
        self.pods_with_required_anti_affinity = 0
        for node in nodes:
            self.add_node(node)
        for pod in pods:
            self.add_pod(pod)
        for ns in namespaces:
            self.upsert_object("Namespace", ns)
        for kind, objs in (objects or {}).items():
            for obj in objs:
                self.upsert_object(kind, obj)

    # ---- nodes ----------------------------------------------------------

    def add_node(self, node: Mapping[str, Any]) -> None:
        name = _name(node)
        info = self._nodes.get(name) or self._orphans.pop(name, None) or NodeInfo(name=name)
        info.set_node(node)
        self._nodes[name] = info

    update_node = add_node

    def remove_node(self, name: str) -> None:
        info = self._nodes.pop(name, None)
        if info is not None and info.pods:
            info.node = None
            self._orphans[name] = info

    def list(self) -> list[NodeInfo]:
        """The nodes, in the order they were added."""
        return list(self._nodes.values())

    def get(self, name: str) -> NodeInfo | None:
        return self._nodes.get(name)

    def __len__(self) -> int:
        return len(self._nodes)

    # ---- pods -----------------------------------------------------------

    def add_pod(self, pod: Mapping[str, Any]) -> None:
        """Count a bound pod (an informer add or update); unbound and finished pods are not counted."""
        key = pod_key(pod)
        self._remove(key)
        self._assumed.discard(key)
        node_name = (pod.get("spec") or {}).get("nodeName")
        if node_name and not _is_terminal(pod):
            self._place(PodInfo(pod), node_name)

    update_pod = add_pod

    def remove_pod(self, pod: Mapping[str, Any]) -> None:
        key = pod_key(pod)
        self._remove(key)
        self._assumed.discard(key)

    def assume_pod(self, pod: Mapping[str, Any], node_name: str, info: PodInfo | None = None) -> dict[str, Any]:
        """Count `pod` on `node_name` before the binding is seen; returns the assumed copy.

        `info` is the pod's PodInfo if the caller has one (parsing the pod again costs more than the copy)."""
        assumed = dict(pod, spec=dict(pod.get("spec") or {}, nodeName=node_name))
        key = pod_key(assumed)
        self._remove(key)
        self._place(PodInfo(assumed) if info is None else info.with_node(assumed, node_name), node_name)
        self._assumed.add(key)
        return assumed

    def forget_pod(self, pod: Mapping[str, Any]) -> None:
        """Undo assume_pod (the binding failed); a pod the informer has confirmed stays."""
        key = pod_key(pod)
        if key in self._assumed:
            self._assumed.discard(key)
            self._remove(key)

    def is_assumed(self, pod: Mapping[str, Any]) -> bool:
        return pod_key(pod) in self._assumed

    def _place(self, info: PodInfo, node_name: str) -> None:
        target = self._nodes.get(node_name)
        if target is None:
            target = self._orphans.setdefault(node_name, NodeInfo(name=node_name))
        target.add_pod(info)
        self._pod_node[info.key] = node_name
        self._count_affinity(info, 1)

    def _count_affinity(self, info: PodInfo, sign: int) -> None:
        if info.has_affinity:
            self.pods_with_affinity += sign
        if info.required_anti_affinity_terms:
            self.pods_with_required_anti_affinity += sign

    def _remove(self, key: str) -> None:
        node_name = self._pod_node.pop(key, None)
        if node_name is None:
            return
        info = self._nodes.get(node_name) or self._orphans.get(node_name)
        if info is not None:
            removed = info.remove_pod(key)
            if removed is not None:
                self._count_affinity(removed, -1)
            if info.node is None and not info.pods:
                self._orphans.pop(node_name, None)

    # ---- namespaces and spreading objects -------------------------------

    def upsert_object(self, kind: str, obj: Mapping[str, Any]) -> None:
        """Record a Namespace, or a Service/ReplicationController/ReplicaSet/StatefulSet."""
        meta = obj.get("metadata") or {}
        if kind == "Namespace":
            self._namespace_labels[meta.get("name", "")] = meta.get("labels") or {}
        else:
            self._objects[kind].setdefault(meta.get("namespace", ""), {})[meta.get("name", "")] = obj

    def delete_object(self, kind: str, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        if kind == "Namespace":
            self._namespace_labels.pop(meta.get("name", ""), None)
            return
        in_namespace = self._objects[kind].get(meta.get("namespace", ""))
        if in_namespace is not None:
            in_namespace.pop(meta.get("name", ""), None)
            if not in_namespace:
                del self._objects[kind][meta.get("namespace", "")]

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        return self._namespace_labels.get(namespace, {})

    def get_object(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self._objects[kind].get(namespace, {}).get(name)

    def objects_in(self, kind: str, namespace: str) -> list[Mapping[str, Any]]:
        return list(self._objects[kind].get(namespace, {}).values())


# --------------------------------------------------------------------------
# Plugin interfaces
# --------------------------------------------------------------------------

@runtime_checkable
class PreFilterPlugin(Protocol):
    name: str

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status | None:
        """Prepare for filter; SKIP means this plugin's filter has nothing to check for this pod."""


@runtime_checkable
class FilterPlugin(Protocol):
    name: str

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        """None when the pod may run on `node`, else a rejecting Status with upstream's reason."""


@runtime_checkable
class PreScorePlugin(Protocol):
    name: str

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot,
                  nodes: Sequence[NodeInfo]) -> Status | None:
        """Prepare for score over the feasible `nodes`; SKIP leaves this plugin out of scoring."""


@runtime_checkable
class ScorePlugin(Protocol):
    name: str

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        """0..MAX_NODE_SCORE, or any integer when the plugin also normalizes."""


@runtime_checkable
class BatchScorePlugin(Protocol):
    name: str

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        """score() of every node, in order: one call per cycle instead of one per node (optional)."""


class RememberedScores:
    """A BatchScorePlugin whose score() of a node depends only on the node and on what pre_score put
    under state[<name>/key]: each node keeps its score in NodeInfo.memo under that key, so the pods of
    one workload, scheduled one after another, are scored again only on the node that changed."""

    name: str

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        raise NotImplementedError

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        key, scores = state[self.name + "/key"], []
        for node in nodes:
            score = node.memo.get(key)
            if score is None:
                score = node.memo[key] = self.score(state, pod, node)
            scores.append(score)
        return scores


@runtime_checkable
class NormalizeScorePlugin(Protocol):
    name: str

    def normalize_score(self, state: CycleState, pod: PodInfo, scores: dict[str, int]) -> None:
        """Rewrite `scores` (node name -> raw score) in place into 0..MAX_NODE_SCORE."""


def default_normalize_score(scores: dict[str, int], reverse: bool = False) -> None:
    """helper.DefaultNormalizeScore: scale to 0..100 by the maximum, optionally reversed."""
    highest = max(scores.values(), default=0)
    for name, s in scores.items():
        if highest == 0:
            scores[name] = MAX_NODE_SCORE if reverse else 0
            continue
        s = MAX_NODE_SCORE * s // highest
        scores[name] = MAX_NODE_SCORE - s if reverse else s


# --------------------------------------------------------------------------
# Profile and the scheduling algorithm
# --------------------------------------------------------------------------

DEFAULT_SCHEDULER_NAME = "default-scheduler"


@dataclass
class Profile:
    """A scheduler profile: the plugins in the order their filters run, and score weights by plugin name.

    `percentage_of_nodes_to_score` None is upstream's adaptive default; 100 evaluates every node.
    """

    plugins: Sequence[Any]
    weights: Mapping[str, int] = field(default_factory=dict)
    scheduler_name: str = DEFAULT_SCHEDULER_NAME
    percentage_of_nodes_to_score: int | None = None
    pre_filter_plugins: list[Any] = field(init=False, repr=False)
    filter_plugins: list[Any] = field(init=False, repr=False)
    score_plugins: list[Any] = field(init=False, repr=False)
    pre_score_names: frozenset[str] = field(init=False, repr=False)
    normalize_names: frozenset[str] = field(init=False, repr=False)
    batch_score_names: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # resolved once: a Protocol isinstance check per node visited would dominate filtering
        self.pre_filter_plugins = [p for p in self.plugins if isinstance(p, PreFilterPlugin)]
        self.filter_plugins = [p for p in self.plugins if isinstance(p, FilterPlugin)]
        self.score_plugins = [p for p in self.plugins if isinstance(p, ScorePlugin)]
        self.pre_score_names = frozenset(p.name for p in self.score_plugins if isinstance(p, PreScorePlugin))
        self.normalize_names = frozenset(p.name for p in self.score_plugins if isinstance(p, NormalizeScorePlugin))
        self.batch_score_names = frozenset(p.name for p in self.score_plugins if isinstance(p, BatchScorePlugin))

    def weight(self, plugin: Any) -> int:
        return self.weights.get(plugin.name, 1)


@dataclass(frozen=True)
class ScheduleResult:
    """schedulingResult: the chosen node and how many nodes were looked at (for rotating the start)."""

    node_name: str
    evaluated_nodes: int
    feasible_nodes: int


MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5


def num_feasible_nodes_to_find(percentage: int | None, num_all_nodes: int) -> int:
    """numFeasibleNodesToFind: stop filtering once this many nodes fit (big clusters only)."""
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND:
        return num_all_nodes
    if not percentage:
        percentage = max(50 - num_all_nodes // 125, MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND)
    if percentage >= 100:
        return num_all_nodes
    return max(num_all_nodes * percentage // 100, MIN_FEASIBLE_NODES_TO_FIND)


FilterList = list[tuple[str, Any]]


def active_filters(profile: Profile, skip: frozenset[str] = frozenset()) -> FilterList:
    """(name, filter method) of the profile's filters a pod needs: resolved once per pod, run per node."""
    return [(p.name, p.filter) for p in profile.filter_plugins if p.name not in skip]


def first_rejection(filters: FilterList, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
    """The first rejecting filter's status (upstream stops at the first failure), or None."""
    for name, check in filters:
        status = check(state, pod, node)
        if status is None or status.code is Code.SUCCESS:
            continue
        if status.code is Code.ERROR:
            raise SchedulingError(f"running {name!r} filter plugin: {status.message}")
        return Status(status.code, status.reasons, name)
    return None


def run_filters(profile: Profile, state: CycleState, pod: PodInfo, node: NodeInfo,
                skip: frozenset[str] = frozenset()) -> Status | None:
    """All of the profile's filters but `skip` on one node: first_rejection's verdict."""
    return first_rejection(active_filters(profile, skip), state, pod, node)


def run_pre_filters(profile: Profile, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> frozenset[str]:
    """Run every PreFilter; returns the plugins whose filter has nothing to check (SKIP)."""
    skipped = set()
    for plugin in profile.pre_filter_plugins:
        status = plugin.pre_filter(state, pod, snapshot)
        if status is None or status.code is Code.SUCCESS:
            continue
        if status.code is Code.SKIP:
            skipped.add(plugin.name)
        elif status.rejected:
            raise FitError(pod.pod, len(snapshot), {}, pre_filter_msg=status.message)
        else:
            raise SchedulingError(f"running PreFilter plugin {plugin.name!r}: {status.message}")
    return frozenset(skipped)


def prioritize(profile: Profile, state: CycleState, pod: PodInfo, snapshot: Snapshot,
               nodes: Sequence[NodeInfo]) -> dict[str, int]:
    """prioritizeNodes: node name -> sum over score plugins of weight x normalized score."""
    names = [n.name for n in nodes]
    totals = [0] * len(nodes)
    for plugin in profile.score_plugins:
        if plugin.name in profile.pre_score_names:
            status = plugin.pre_score(state, pod, snapshot, nodes)
            if status is not None and status.code is Code.SKIP:
                continue
            if status is not None and status.code is not Code.SUCCESS:
                raise SchedulingError(f"running PreScore plugin {plugin.name!r}: {status.message}")
        if plugin.name in profile.batch_score_names:
            raw = plugin.score_nodes(state, pod, nodes)
        else:
            score = plugin.score
            raw = [score(state, pod, n) for n in nodes]
        if plugin.name in profile.normalize_names:
            by_name = dict(zip(names, raw))
            plugin.normalize_score(state, pod, by_name)
            raw = list(by_name.values())
        if min(raw) < 0 or max(raw) > MAX_NODE_SCORE:
            bad = next(i for i, s in enumerate(raw) if not 0 <= s <= MAX_NODE_SCORE)
            raise SchedulingError(f"plugin {plugin.name!r} returns an invalid score {raw[bad]} "
                                  f"for node {names[bad]!r}")
        weight = profile.weight(plugin)
        totals = [t + s * weight for t, s in zip(totals, raw)]
    return dict(zip(names, totals))


def select_host(totals: Mapping[str, int], rng: random.Random) -> str:
    """selectHost: the highest total; ties broken uniformly at random (upstream samples a reservoir)."""
    best = max(totals.values())
    ties = [name for name, total in totals.items() if total == best]
    return ties[rng.randrange(len(ties))] if len(ties) > 1 else ties[0]


def schedule(pod: Mapping[str, Any], snapshot: Snapshot, profile: Profile,
             rng: random.Random | None = None, *, start_index: int = 0,
             info: PodInfo | None = None) -> ScheduleResult:
    """Pick a node for `pod` (schedulePod). Raises Unschedulable (FitError, NoNodesAvailable) or SchedulingError.

    Filtering starts at node `start_index` and wraps around; callers rotate it by
    `evaluated_nodes` so that, on big clusters, every node gets its turn. `info`
    is the pod's PodInfo, if the caller made one already.
    """
    nodes = snapshot.list()
    if not nodes:
        raise NoNodesAvailable()
    info = info or PodInfo(pod)
    if info.parse_error:
        raise SchedulingError(info.parse_error)
    state: CycleState = {}
    skipped = run_pre_filters(profile, state, info, snapshot)
    filters = active_filters(profile, skipped)

    wanted = num_feasible_nodes_to_find(profile.percentage_of_nodes_to_score, len(nodes))
    feasible: list[NodeInfo] = []
    statuses: dict[str, Status] = {}
    evaluated = 0
    start = start_index % len(nodes)
    ordered = nodes[start:] + nodes[:start] if start else nodes
    for node in ordered:
        evaluated += 1
        status = first_rejection(filters, state, info, node)
        if status is None:
            feasible.append(node)
            if len(feasible) >= wanted:
                break
        else:
            statuses[node.name] = status
    if not feasible:
        raise FitError(pod, len(nodes), statuses)
    if len(feasible) == 1:
        return ScheduleResult(feasible[0].name, evaluated, 1)
    totals = prioritize(profile, state, info, snapshot, feasible)
    return ScheduleResult(select_host(totals, rng or random.Random()), evaluated, len(feasible))
