"""NodeAffinity: nodeSelector, required terms with every operator, matchFields, preferred scoring."""
from __future__ import annotations

import pytest

from boxkube.scheduler.framework import FitError, NodeInfo, Snapshot
from boxkube.scheduler.plugins import NodeAffinity
from boxkube.scheduler.plugins.nodeaffinity import RequiredNodeAffinity
from boxkube.scheduler.podinfo import PodInfo

from scheduler_builders import ZONE, node, place, pod

NODE = node("worker-1", labels={"disk": "ssd", "cores": "16", "gpu": "a100"}, zone="eu-1a")


def required(*terms):
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}


def expr(key, op, *values):
    e = {"key": key, "operator": op}
    if values:
        e["values"] = list(values)
    return e


def fits(p, n=NODE) -> bool:
    return RequiredNodeAffinity(p).matches(NodeInfo(n))


@pytest.mark.parametrize("expression, expected", [
    (expr("disk", "In", "ssd", "nvme"), True),
    (expr("disk", "In", "hdd"), False),
    (expr("disk", "NotIn", "hdd"), True),
    (expr("missing", "NotIn", "x"), True),
    (expr("gpu", "Exists"), True),
    (expr("gpu", "DoesNotExist"), False),
    (expr("cores", "Gt", "8"), True),
    (expr("cores", "Gt", "16"), False),
    (expr("cores", "Lt", "32"), True),
    (expr("gpu", "Gt", "1"), False),  # not an integer on the node
    (expr("cores", "Gt", "8", "9"), False),  # invalid: Gt takes one value, the term matches nothing
    (expr("disk", "NotIn"), False),  # invalid: NotIn needs values
    (expr("disk", "Exists", "ssd"), False),  # invalid: Exists takes none
    (expr("disk", "Bogus", "ssd"), False),
])
def test_match_expression_operators(expression, expected):
    assert fits(pod("p", affinity=required({"matchExpressions": [expression]}))) is expected


def test_terms_are_ored_and_expressions_anded():
    both = {"matchExpressions": [expr("disk", "In", "ssd"), expr("gpu", "In", "h100")]}
    assert not fits(pod("p", affinity=required(both)))
    assert fits(pod("p", affinity=required(both, {"matchExpressions": [expr(ZONE, "In", "eu-1a")]})))
    assert not fits(pod("p", affinity=required({})))  # an empty term matches nothing
    assert not fits(pod("p", affinity=required()))  # so do no terms


def test_match_fields_metadata_name():
    assert fits(pod("p", affinity=required({"matchFields": [expr("metadata.name", "In", "worker-1")]})))
    assert not fits(pod("p", affinity=required({"matchFields": [expr("metadata.name", "In", "worker-2")]})))
    assert fits(pod("p", affinity=required({"matchFields": [expr("metadata.name", "NotIn", "worker-2")]})))
    # two values are invalid for a field selector
    assert not fits(pod("p", affinity=required({"matchFields": [expr("metadata.name", "In", "worker-1", "x")]})))
    mixed = {"matchFields": [expr("metadata.name", "In", "worker-1")], "matchExpressions": [expr("disk", "In", "hdd")]}
    assert not fits(pod("p", affinity=required(mixed)))


def test_node_selector_and_required_affinity_both_apply():
    assert fits(pod("p", nodeSelector={"disk": "ssd"}))
    assert not fits(pod("p", nodeSelector={"disk": "ssd", "gpu": "h100"}))
    assert not fits(pod("p", nodeSelector={"disk": "ssd"},
                        affinity=required({"matchExpressions": [expr("gpu", "DoesNotExist")]})))


def test_filter_reason_and_fit_error():
    snap = Snapshot([node("a", labels={"disk": "hdd"}), node("b")])
    with pytest.raises(FitError) as e:
        place(pod("p", nodeSelector={"disk": "ssd"}), snap)
    assert str(e.value) == "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."
    assert NodeAffinity().pre_filter({}, PodInfo(pod("free")), snap).code.name == "SKIP"


def test_preferred_terms_score_by_weight():
    preferred = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 80, "preference": {"matchExpressions": [expr("disk", "In", "ssd")]}},
        {"weight": 20, "preference": {"matchExpressions": [expr(ZONE, "In", "eu-1b")]}},
        {"weight": 50, "preference": {}},  # an empty preference matches nothing
    ]}}
    snap = Snapshot([node("ssd-a", labels={"disk": "ssd"}, zone="eu-1a"),
                     node("hdd-b", labels={"disk": "hdd"}, zone="eu-1b"),
                     node("ssd-b", labels={"disk": "ssd"}, zone="eu-1b"),
                     node("none")])
    plugin, info, state = NodeAffinity(), PodInfo(pod("p", affinity=preferred)), {}
    plugin.pre_score(state, info, snap, snap.list())
    scores = {n.name: plugin.score(state, info, n) for n in snap.list()}
    assert scores == {"ssd-a": 80, "hdd-b": 20, "ssd-b": 100, "none": 0}
    plugin.normalize_score(state, info, scores)
    assert scores == {"ssd-a": 80, "hdd-b": 20, "ssd-b": 100, "none": 0}
    assert place(pod("q", affinity=preferred), snap) == "ssd-b"
