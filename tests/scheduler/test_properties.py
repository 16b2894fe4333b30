"""Property tests: whatever the cluster, a placement is legal, a refusal is justified,
and only score ties depend on the order nodes are listed in."""
from __future__ import annotations

import random
from fractions import Fraction

from hypothesis import HealthCheck, given, settings, strategies as st

from boxkube.api.quantity import parse_quantity
from boxkube.scheduler.framework import (
    FitError, Snapshot, prioritize, run_filters, run_pre_filters, schedule,
)
from boxkube.scheduler.plugins import default_profile
from boxkube.scheduler.podinfo import PodInfo

from scheduler_builders import HOSTNAME, ZONE, anti_affinity, node, pod

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TAINT_KEYS = ("dedicated", "gpu")
EFFECTS = ("NoSchedule", "NoExecute", "PreferNoSchedule")


@st.composite
def nodes(draw):
    count = draw(st.integers(1, 6))
    out = []
    for i in range(count):
        taints = draw(st.lists(st.builds(lambda k, e: {"key": k, "value": "x", "effect": e},
                                         st.sampled_from(TAINT_KEYS), st.sampled_from(EFFECTS)),
                               max_size=2, unique_by=lambda t: (t["key"], t["effect"])))
        labels = {"disk": draw(st.sampled_from(["ssd", "hdd"]))}
        zone = draw(st.sampled_from(["a", "b", None]))
        out.append(node(f"n{i}", cpu=draw(st.sampled_from(["1", "2", "4"])),
                        memory=draw(st.sampled_from(["1Gi", "2Gi", "4Gi"])),
                        pods=str(draw(st.integers(1, 4))), labels=labels, zone=zone, taints=taints,
                        unschedulable=draw(st.booleans().map(lambda b: b and i % 3 == 2))))
    return out


@st.composite
def pods(draw, count):
    out = []
    for i in range(count):
        app = draw(st.sampled_from(["web", "db"]))
        spec = {}
        if draw(st.booleans()):
            spec["affinity"] = anti_affinity({"app": draw(st.sampled_from(["web", "db"]))},
                                             draw(st.sampled_from([HOSTNAME, ZONE])))
        tolerated = draw(st.lists(st.sampled_from(TAINT_KEYS), unique=True, max_size=2))
        if tolerated:
            spec["tolerations"] = [{"key": k, "operator": "Exists"} for k in tolerated]
        if draw(st.integers(0, 4)) == 0:
            spec["nodeSelector"] = {"disk": "ssd"}
        out.append(pod(f"p{i}", labels={"app": app}, cpu=draw(st.sampled_from([None, "100m", "500m", "1", "2"])),
                       memory=draw(st.sampled_from([None, "256Mi", "1Gi", "3Gi"])), **spec))
    return out


# ---- an independent oracle for the rules these pods can break -----------

def _value(q: str | None) -> Fraction:
    return parse_quantity(q).value if q else Fraction(0)


def _requests(p) -> dict[str, Fraction]:
    reqs = p["spec"]["containers"][0]["resources"].get("requests", {})
    return {"cpu": _value(reqs.get("cpu")), "memory": _value(reqs.get("memory"))}


def _anti_terms(p):
    return ((p["spec"].get("affinity") or {}).get("podAntiAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution") or []


def _conflicts(a, b, node_a, node_b) -> bool:
    """a's required anti-affinity forbids sharing a topology domain with b."""
    for term in _anti_terms(a):
        key = term["topologyKey"]
        same = key in node_a["metadata"]["labels"] and node_a["metadata"]["labels"].get(key) == \
            node_b["metadata"]["labels"].get(key)
        wanted = term["labelSelector"]["matchLabels"]
        if same and all(b["metadata"]["labels"].get(k) == v for k, v in wanted.items()):
            return True
    return False


def oracle_fits(p, n, placed: list[tuple[dict, dict]]) -> bool:
    alloc = n["status"]["allocatable"]
    on_node = [q for q, m in placed if m is n]
    if len(on_node) + 1 > int(alloc["pods"]):
        return False
    for resource in ("cpu", "memory"):
        if sum((_requests(q)[resource] for q in on_node), _requests(p)[resource]) > _value(alloc[resource]):
            return False
    if n["spec"].get("unschedulable"):
        return False
    tolerated = {t.get("key") for t in p["spec"]["tolerations"] if t.get("operator") == "Exists"}
    if any(t["effect"] != "PreferNoSchedule" and t["key"] not in tolerated for t in n["spec"].get("taints", [])):
        return False
    if any(n["metadata"]["labels"].get(k) != v for k, v in (p["spec"].get("nodeSelector") or {}).items()):
        return False
    return not any(_conflicts(p, q, n, m) or _conflicts(q, p, m, n) for q, m in placed)


@SETTINGS
@given(st.data())
def test_placements_are_legal_and_refusals_justified(data):
    cluster = data.draw(nodes())
    incoming = data.draw(pods(data.draw(st.integers(1, 8))))
    snap = Snapshot(cluster)
    by_name = {n["metadata"]["name"]: n for n in cluster}
    placed: list[tuple[dict, dict]] = []
    profile = default_profile()
    for i, p in enumerate(incoming):
        feasible = {name for name, n in by_name.items() if oracle_fits(p, n, placed)}
        try:
            chosen = schedule(p, snap, profile, random.Random(i)).node_name
        except FitError as e:
            assert not feasible, f"refused with {e} but {feasible} fit"
            assert str(e).startswith(f"0/{len(cluster)} nodes are available: ")
            continue
        assert chosen in feasible
        snap.assume_pod(p, chosen)
        placed.append((p, by_name[chosen]))
    # the cache agrees with the oracle's bookkeeping
    for name, n in by_name.items():
        mine = [q for q, m in placed if m is n]
        info = snap.get(name)
        assert len(info.pods) == len(mine)
        assert info.requested.get("cpu", 0) <= info.allocatable["cpu"]
        assert info.requested.get("memory", 0) <= info.allocatable["memory"]


@SETTINGS
@given(st.data())
def test_only_score_ties_depend_on_node_order(data):
    cluster = data.draw(nodes())
    existing = data.draw(pods(data.draw(st.integers(0, 6))))
    for p in existing:
        p["spec"]["nodeName"] = data.draw(st.sampled_from(cluster))["metadata"]["name"]
    incoming = data.draw(pods(1))[0]
    order = data.draw(st.permutations(range(len(cluster))))
    profile = default_profile()

    def evaluate(node_order):
        snap = Snapshot([cluster[i] for i in node_order], existing)
        info, state = PodInfo(incoming), {}
        try:
            chosen = schedule(incoming, snap, profile, random.Random(0)).node_name
        except FitError as e:
            return None, str(e), {}
        skipped = run_pre_filters(profile, state, info, snap)
        feasible = [n for n in snap.list() if run_filters(profile, state, info, n, skipped) is None]
        totals = prioritize(profile, state, info, snap, feasible) if len(feasible) > 1 else {feasible[0].name: 0}
        return chosen, None, totals

    chosen_a, error_a, totals_a = evaluate(range(len(cluster)))
    chosen_b, error_b, totals_b = evaluate(order)
    assert error_a == error_b
    assert totals_a == totals_b
    if totals_a:
        best = max(totals_a.values())
        assert totals_a[chosen_a] == best and totals_b[chosen_b] == best
