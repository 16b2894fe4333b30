"""What per-kind strategies add on create, beyond the schema."""
from boxkube.apiserver.resources import by_kind
from boxkube.apiserver.strategies import strategy_for
from boxkube.apiserver.strategies.base import Admission


def test_pods_get_the_default_toleration_seconds_of_the_server():
    pods = strategy_for(by_kind("", "v1", "Pod"), Admission(not_ready_toleration_seconds=20,
                                                           unreachable_toleration_seconds=30))
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}], "tolerations": [
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]}}
    pods.default(pod)
    by_key = {t["key"]: t for t in pod["spec"]["tolerations"]}
    assert by_key["node.kubernetes.io/not-ready"] == {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                                                      "effect": "NoExecute", "tolerationSeconds": 20}
    assert by_key["node.kubernetes.io/unreachable"]["tolerationSeconds"] == 5   # the pod's own stays
    assert len(pod["spec"]["tolerations"]) == 2


def test_upstream_default_is_300_seconds():
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    strategy_for(by_kind("", "v1", "Pod")).default(pod)
    assert {t["tolerationSeconds"] for t in pod["spec"]["tolerations"]} == {300}
