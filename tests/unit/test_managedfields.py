"""Server-side apply and managedFields tracking, checked against upstream's shapes and messages."""
from __future__ import annotations

import copy
import json

import pytest

from boxkube.apiserver import managedfields as mf
from boxkube.apiserver.errors import APIError

DEPLOYMENT = "io.k8s.api.apps.v1.Deployment"
SERVICE = "io.k8s.api.core.v1.Service"
CONFIGMAP = "io.k8s.api.core.v1.ConfigMap"
T0 = "2026-01-01T00:00:00Z"
T1 = "2026-01-01T00:01:00Z"
T2 = "2026-01-01T00:02:00Z"
T3 = "2026-01-01T00:03:00Z"


def web_config(**changes) -> dict:
    """What `kubectl apply --server-side -f web.yaml` sends."""
    cfg = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "frontend"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}]},
            },
        },
    }
    for path, value in changes.items():
        node = cfg
        *parents, last = path.split("__")
        for p in parents:
            node = node[p]
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return cfg


def apply(live, cfg, manager="kubectl", force=False, now=T1, **kw):
    return mf.apply(live, cfg, manager=manager, force=force, definition_name=DEPLOYMENT,
                    api_version="apps/v1", now=now, **kw)


def update(old, new, manager, now=T1, **kw):
    return mf.track_update(old, new, manager=manager, definition_name=DEPLOYMENT, api_version="apps/v1",
                           now=now, **kw)


def entries(obj) -> dict[tuple, dict]:
    """managedFields keyed by (manager, operation, subresource)."""
    return {(e["manager"], e["operation"], e.get("subresource", "")): e
            for e in obj["metadata"].get("managedFields", [])}


def fields(obj, manager, operation="Apply", subresource="") -> dict:
    return entries(obj)[(manager, operation, subresource)]["fieldsV1"]


def stored(obj, rv="1") -> dict:
    """What storage keeps: server-set metadata added, as the generic store does."""
    out = copy.deepcopy(obj)
    out["metadata"].update({"uid": "5b1f0a4e-0000-4000-8000-000000000001", "resourceVersion": rv,
                            "creationTimestamp": T0, "generation": 1})
    return out


def csa_created() -> dict:
    """A Deployment as `kubectl apply` (client side) creates it, defaulted, with its Update entry."""
    new = stored({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "progressDeadlineSeconds": 600,
            "revisionHistoryLimit": 10,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{"name": "web", "image": "nginx:1.25", "imagePullPolicy": "IfNotPresent",
                                    "ports": [{"containerPort": 80, "protocol": "TCP"}], "resources": {},
                                    "terminationMessagePath": "/dev/termination-log",
                                    "terminationMessagePolicy": "File"}],
                    "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                    "securityContext": {}, "terminationGracePeriodSeconds": 30,
                },
            },
        },
        "status": {},
    })
    return update(None, new, "kubectl-client-side-apply", now=T0)


# ---------------------------------------------------------------- encoding

def test_fields_v1_encoding_of_keys_sets_and_self():
    obj = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "finalizers": ["b.example.com/x", "a.example.com/x"], "labels": {"app": "web"}},
        "spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 53, "protocol": "UDP"}],
                 "selector": {"app": "web"}},
    }
    assert mf.fields_of(obj, SERVICE) == {
        "f:apiVersion": {},
        "f:kind": {},
        "f:metadata": {
            "f:finalizers": {'v:"a.example.com/x"': {}, 'v:"b.example.com/x"': {}},
            "f:labels": {"f:app": {}},
            "f:name": {},
        },
        "f:spec": {
            # ports are keyed by port and protocol, TCP being protocol's default
            "f:ports": {
                'k:{"port":53,"protocol":"UDP"}': {".": {}, "f:port": {}, "f:protocol": {}},
                'k:{"port":80,"protocol":"TCP"}': {".": {}, "f:port": {}, "f:targetPort": {}},
            },
            "f:selector": {},  # an atomic map is a leaf
        },
    }


def test_fields_v1_round_trip_keeps_upstream_order():
    encoded = {
        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
        "f:spec": {"f:template": {"f:spec": {"f:containers": {
            'k:{"name":"b"}': {".": {}, "f:image": {}},
            'k:{"name":"a"}': {".": {}, "f:image": {}},
        }}}},
    }
    paths = mf.fields_to_set(encoded)
    assert (("f", "metadata"), ("f", "labels")) in paths
    again = mf.set_to_fields(paths)
    assert again == encoded
    containers = again["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert list(containers) == ['k:{"name":"a"}', 'k:{"name":"b"}']
    assert list(again["f:metadata"]["f:labels"]) == [".", "f:app"]


# ---------------------------------------------------------------- Update entries

def test_create_update_entry_has_upstream_shape():
    obj = csa_created()
    (entry,) = obj["metadata"]["managedFields"]
    assert list(entry) == ["manager", "operation", "apiVersion", "time", "fieldsType", "fieldsV1"]
    assert entry["manager"] == "kubectl-client-side-apply"
    assert entry["operation"] == "Update"
    assert entry["apiVersion"] == "apps/v1"
    assert entry["time"] == T0
    # `f:spec`, `f:strategy`, `f:template` and `f:containers` exist in Go's zero
    # Deployment, so they get no ".", while labels, rollingUpdate, ports do.
    assert entry["fieldsV1"] == {
        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
        "f:spec": {
            "f:progressDeadlineSeconds": {}, "f:replicas": {}, "f:revisionHistoryLimit": {}, "f:selector": {},
            "f:strategy": {"f:rollingUpdate": {".": {}, "f:maxSurge": {}, "f:maxUnavailable": {}}, "f:type": {}},
            "f:template": {
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                "f:spec": {
                    "f:containers": {'k:{"name":"web"}': {
                        ".": {}, "f:image": {}, "f:imagePullPolicy": {}, "f:name": {},
                        "f:ports": {".": {}, 'k:{"containerPort":80,"protocol":"TCP"}': {
                            ".": {}, "f:containerPort": {}, "f:protocol": {}}},
                        "f:resources": {}, "f:terminationMessagePath": {}, "f:terminationMessagePolicy": {},
                    }},
                    "f:dnsPolicy": {}, "f:restartPolicy": {}, "f:schedulerName": {}, "f:securityContext": {},
                    "f:terminationGracePeriodSeconds": {},
                },
            },
        },
    }


def test_update_that_changes_nothing_keeps_the_entry_and_its_time():
    obj = csa_created()
    again = update(obj, stored(obj, rv="2"), "kubectl-client-side-apply", now=T2)
    assert again["metadata"]["managedFields"] == obj["metadata"]["managedFields"]
    # a no-op by another manager adds no entry
    other = update(obj, copy.deepcopy(obj), "kubectl-edit", now=T2)
    assert list(entries(other)) == [("kubectl-client-side-apply", "Update", "")]


def test_update_takes_changed_fields_from_other_managers():
    obj = csa_created()
    edited = copy.deepcopy(obj)
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
    edited["metadata"]["labels"]["team"] = "a"
    out = update(obj, edited, "kubectl-edit", now=T2)
    assert fields(out, "kubectl-edit", "Update") == {
        "f:metadata": {"f:labels": {"f:team": {}}},
        "f:spec": {"f:template": {"f:spec": {"f:containers": {'k:{"name":"web"}': {"f:image": {}}}}}},
    }
    csa = fields(out, "kubectl-client-side-apply", "Update")
    assert "f:image" not in csa["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}']
    assert entries(out)[("kubectl-edit", "Update", "")]["time"] == T2
    # Update entries sort by time: the older one first
    assert [e["manager"] for e in out["metadata"]["managedFields"]] == ["kubectl-client-side-apply", "kubectl-edit"]


def test_removed_fields_leave_every_manager():
    obj = csa_created()
    edited = copy.deepcopy(obj)
    del edited["spec"]["strategy"]["rollingUpdate"]
    edited["spec"]["strategy"]["type"] = "Recreate"
    out = update(obj, edited, "kubectl-edit", now=T2)
    # type changed hands, rollingUpdate is gone: nothing of strategy is left to the creator
    assert "f:strategy" not in fields(out, "kubectl-client-side-apply", "Update")["f:spec"]
    assert fields(out, "kubectl-edit", "Update") == {"f:spec": {"f:strategy": {"f:type": {}}}}


def test_status_is_never_owned_through_the_main_resource_but_is_through_status():
    obj = csa_created()
    new = copy.deepcopy(obj)
    new["status"] = {"replicas": 3}
    out = update(obj, new, "kubectl-edit", now=T2)
    assert ("kubectl-edit", "Update", "") not in entries(out)

    status = copy.deepcopy(obj)
    status["status"] = {"replicas": 3, "conditions": [{"type": "Available", "status": "True"}]}
    status["spec"]["replicas"] = 9  # the status strategy resets spec: never owned from here
    out = update(obj, status, "kube-controller-manager", now=T2, subresource="status")
    entry = entries(out)[("kube-controller-manager", "Update", "status")]
    assert list(entry) == ["manager", "operation", "apiVersion", "time", "fieldsType", "fieldsV1", "subresource"]
    assert entry["fieldsV1"] == {"f:status": {
        "f:conditions": {".": {}, 'k:{"type":"Available"}': {".": {}, "f:status": {}, "f:type": {}}},
        "f:replicas": {}}}


def test_managed_fields_in_an_update_are_taken_or_reset_like_upstream():
    obj = csa_created()
    # a client that leaves managedFields out does not erase them
    new = copy.deepcopy(obj)
    del new["metadata"]["managedFields"]
    assert update(obj, new, "kubectl-replace")["metadata"]["managedFields"] == obj["metadata"]["managedFields"]
    # `[{}]` resets them
    new["metadata"]["managedFields"] = [{}]
    assert "managedFields" not in update(obj, new, "kubectl-patch")["metadata"]
    # through a subresource the request's managedFields are ignored
    new["metadata"]["managedFields"] = [{}]
    assert update(obj, new, "x", subresource="status")["metadata"]["managedFields"] == obj["metadata"]["managedFields"]


def test_update_managers_are_capped_at_ten():
    obj = csa_created()
    for i in range(11):
        new = copy.deepcopy(obj)
        new["metadata"].setdefault("annotations", {})[f"k{i}"] = "v"
        obj = update(obj, new, f"m{i}", now=f"2026-01-01T01:{i:02d}:00Z")
    managers = [e["manager"] for e in obj["metadata"]["managedFields"]]
    assert len(managers) == 10
    assert "ancient-changes" in managers
    # the three oldest (the creator, m0, m1) were folded into one bucket stamped with the newest of them
    assert not {"kubectl-client-side-apply", "m0", "m1"} & set(managers)
    ancient = entries(obj)[("ancient-changes", "Update", "")]
    assert {"f:k0", "f:k1"} <= set(ancient["fieldsV1"]["f:metadata"]["f:annotations"])
    assert "f:replicas" in ancient["fieldsV1"]["f:spec"]
    assert ancient["time"] == "2026-01-01T01:01:00Z"


# ---------------------------------------------------------------- apply

def test_first_apply_creates_the_object_and_the_apply_entry():
    out = apply(None, web_config(), now=T1)
    (entry,) = out["metadata"]["managedFields"]
    assert entry == {
        "manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1", "time": T1, "fieldsType": "FieldsV1",
        "fieldsV1": {
            "f:metadata": {"f:labels": {"f:app": {}, "f:tier": {}}},
            "f:spec": {
                "f:replicas": {}, "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {'k:{"name":"web"}': {
                        ".": {}, "f:image": {}, "f:name": {},
                        "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}},
                    }}},
                },
            },
        },
    }
    assert out["spec"]["replicas"] == 2
    assert out["spec"]["template"]["spec"]["containers"] == [
        {"name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}]
    assert out["metadata"]["name"] == "web" and "creationTimestamp" not in out["metadata"]


def test_reapply_without_a_label_removes_it():
    live = stored(apply(None, web_config(), now=T1))
    cfg = web_config()
    del cfg["metadata"]["labels"]["tier"]
    out = apply(live, cfg, now=T2)
    assert out["metadata"]["labels"] == {"app": "web"}
    assert fields(out, "kubectl")["f:metadata"] == {"f:labels": {"f:app": {}}}
    assert entries(out)[("kubectl", "Apply", "")]["time"] == T2


def test_reapply_keeps_a_dropped_field_that_another_manager_also_owns():
    live = stored(apply(None, web_config(), now=T1))
    other = {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "web", "namespace": "default", "labels": {"tier": "frontend"}}}
    live = apply(live, other, manager="labeler", now=T2)
    cfg = web_config()
    del cfg["metadata"]["labels"]["tier"]
    out = apply(live, cfg, now=T3)
    assert out["metadata"]["labels"] == {"app": "web", "tier": "frontend"}
    assert fields(out, "labeler") == {"f:metadata": {"f:labels": {"f:tier": {}}}}
    assert fields(out, "kubectl")["f:metadata"] == {"f:labels": {"f:app": {}}}


def test_reapply_keeps_fields_set_by_updaters():
    live = stored(apply(None, web_config(), now=T1))
    edited = copy.deepcopy(live)
    edited["metadata"].setdefault("annotations", {})["note"] = "hand-made"
    live = update(live, edited, "kubectl-annotate", now=T2)
    out = apply(live, web_config(), now=T3)
    assert out["metadata"]["annotations"] == {"note": "hand-made"}


def test_two_appliers_coexist_and_containers_merge_by_name():
    live = stored(apply(None, web_config(), now=T1))
    sidecar = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
               "spec": {"template": {"spec": {"containers": [{"name": "proxy", "image": "envoy:1.30"}]}}}}
    live = apply(live, sidecar, manager="mesh-injector", now=T2)
    containers = live["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["web", "proxy"]
    assert containers[0]["image"] == "nginx:1.25"
    assert fields(live, "mesh-injector") == {"f:spec": {"f:template": {"f:spec": {"f:containers": {
        'k:{"name":"proxy"}': {".": {}, "f:image": {}, "f:name": {}}}}}}}
    # kubectl re-applies its own config, with a new image: the sidecar stays
    out = apply(live, web_config(), now=T3)
    cfg = web_config()
    cfg["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
    out = apply(out, cfg, now=T3)
    assert [(c["name"], c["image"]) for c in out["spec"]["template"]["spec"]["containers"]] == [
        ("web", "nginx:1.26"), ("proxy", "envoy:1.30")]
    # entries of one operation sort by time
    assert [e["manager"] for e in out["metadata"]["managedFields"]] == ["mesh-injector", "kubectl"]
    # the injector withdraws its container: it goes, the applier's stays
    out = apply(out, {"apiVersion": "apps/v1", "kind": "Deployment",
                      "metadata": {"name": "web", "namespace": "default"}}, manager="mesh-injector", now=T3)
    assert [c["name"] for c in out["spec"]["template"]["spec"]["containers"]] == ["web"]
    assert ("mesh-injector", "Apply", "") not in entries(out)


def test_applied_container_order_is_followed_for_shared_items():
    live = stored(apply(None, web_config(), now=T1))
    cfg = web_config()
    cfg["spec"]["template"]["spec"]["containers"] = [{"name": "log", "image": "fluent-bit"},
                                                     {"name": "web", "image": "nginx:1.25"}]
    out = apply(live, cfg, now=T2)
    assert [c["name"] for c in out["spec"]["template"]["spec"]["containers"]] == ["log", "web"]
    # ports were dropped from the config and nobody else owns them
    assert "ports" not in out["spec"]["template"]["spec"]["containers"][1]


def test_atomic_fields_are_replaced_whole():
    cfg = web_config()
    cfg["spec"]["template"]["spec"]["containers"][0]["args"] = ["-a", "-b"]
    live = stored(apply(None, cfg, now=T1))
    cfg["spec"]["template"]["spec"]["containers"][0]["args"] = ["-c"]
    cfg["spec"]["selector"] = {"matchLabels": {"app": "web", "v": "2"}}
    out = apply(live, cfg, now=T2)
    assert out["spec"]["template"]["spec"]["containers"][0]["args"] == ["-c"]
    assert out["spec"]["selector"] == {"matchLabels": {"app": "web", "v": "2"}}
    web = fields(out, "kubectl")["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}']
    assert "f:args" in web and web["f:args"] == {}


def test_conflict_with_client_side_apply_is_a_409_like_upstream():
    live = csa_created()
    with pytest.raises(APIError) as err:
        apply(live, web_config(spec__replicas=5), now=T1)
    e = err.value
    assert e.code == 409
    assert e.reason == "Conflict"
    assert e.message == ('Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" '
                         'using apps/v1: .spec.replicas')
    assert e.details == {"causes": [{"reason": "FieldManagerConflict",
                                     "message": 'conflict with "kubectl-client-side-apply" using apps/v1',
                                     "field": ".spec.replicas"}]}
    assert e.status() == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": e.message,
        "reason": "Conflict", "details": e.details, "code": 409}


def test_applying_the_live_value_is_no_conflict_and_shares_ownership():
    live = csa_created()
    out = apply(live, web_config(spec__replicas=3), now=T1)
    assert "f:replicas" in fields(out, "kubectl")["f:spec"]
    assert "f:replicas" in fields(out, "kubectl-client-side-apply", "Update")["f:spec"]


def test_force_takes_ownership():
    live = csa_created()
    out = apply(live, web_config(spec__replicas=5), force=True, now=T1)
    assert out["spec"]["replicas"] == 5
    assert "f:replicas" in fields(out, "kubectl")["f:spec"]
    assert "f:replicas" not in fields(out, "kubectl-client-side-apply", "Update")["f:spec"]
    # Apply entries sort before Update entries
    assert [e["operation"] for e in out["metadata"]["managedFields"]] == ["Apply", "Update"]


def test_several_conflicts_are_listed_per_manager():
    live = csa_created()
    cfg = web_config(spec__replicas=5)
    cfg["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
    with pytest.raises(APIError) as err:
        apply(live, cfg, manager="ci", now=T1)
    assert err.value.message == (
        'Apply failed with 2 conflicts: conflicts with "kubectl-client-side-apply" using apps/v1:\n'
        '- .spec.replicas\n'
        '- .spec.template.spec.containers[name="web"].image')
    assert [c["field"] for c in err.value.details["causes"]] == [
        ".spec.replicas", '.spec.template.spec.containers[name="web"].image']


def test_kubectl_upgrades_from_client_side_apply_without_conflicts():
    live = csa_created()
    last = {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"annotations": {}, "name": "web", "namespace": "default"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"image": "nginx:1.25", "name": "web"}]}}}}
    live["metadata"]["annotations"] = {mf.LAST_APPLIED_ANNOTATION: json.dumps(last) + "\n"}
    cfg = web_config(spec__replicas=5)
    out = apply(live, cfg, now=T1)  # fields the annotation still describes are taken over
    assert out["spec"]["replicas"] == 5
    assert "f:replicas" in fields(out, "kubectl")["f:spec"]
    # and kubectl's server-side apply keeps the annotation in sync
    annotation = out["metadata"]["annotations"][mf.LAST_APPLIED_ANNOTATION]
    assert annotation.endswith("\n") and json.loads(annotation) == cfg
    # another field manager gets no such pass
    with pytest.raises(APIError):
        apply(live, cfg, manager="ci", now=T1)


def test_scale_subresource_update_takes_replicas():
    live = stored(apply(None, web_config(), now=T1))
    scaled = copy.deepcopy(live)
    scaled["spec"]["replicas"] = 5
    out = update(live, scaled, "kubectl", now=T2, subresource="scale")
    entry = entries(out)[("kubectl", "Update", "scale")]
    assert entry == {"manager": "kubectl", "operation": "Update", "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
                     "fieldsV1": {"f:spec": {"f:replicas": {}}}, "subresource": "scale"}
    assert "f:replicas" not in fields(out, "kubectl")["f:spec"]
    # re-applying the old replica count now conflicts with the scaler
    with pytest.raises(APIError) as err:
        apply(stored(out, rv="2"), web_config(), now=T3)
    assert err.value.message == ('Apply failed with 1 conflict: conflict with "kubectl" with subresource "scale" '
                                 'using apps/v1: .spec.replicas')
    # dropping replicas from the config leaves the scaled value alone
    out2 = apply(stored(out, rv="2"), web_config(spec__replicas=None), now=T3)
    assert out2["spec"]["replicas"] == 5


def test_noop_apply_keeps_the_time_and_a_new_co_owner_gets_none():
    live = stored(apply(None, web_config(), now=T1))
    again = apply(live, web_config(), now=T2)
    assert entries(again)[("kubectl", "Apply", "")]["time"] == T1
    twin = apply(live, web_config(), manager="argocd", now=T2)
    assert "time" not in entries(twin)[("argocd", "Apply", "")]
    assert twin["spec"] == live["spec"]


def test_apply_to_status_subresource_owns_status_only():
    live = stored(apply(None, web_config(), now=T1))
    cfg = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
           "status": {"replicas": 2, "readyReplicas": 2}, "spec": {"replicas": 7}}
    out = apply(live, cfg, manager="controller", subresource="status", now=T2)
    entry = entries(out)[("controller", "Apply", "status")]
    assert entry["fieldsV1"] == {"f:status": {"f:readyReplicas": {}, "f:replicas": {}}}
    assert out["status"] == {"replicas": 2, "readyReplicas": 2}


def test_service_ports_and_finalizers():
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "finalizers": ["a.io/x"]},
           "spec": {"ports": [{"name": "http", "port": 80}], "selector": {"app": "web"}}}
    out = mf.apply(None, svc, manager="kubectl", force=False, definition_name=SERVICE, api_version="v1", now=T1)
    other = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "finalizers": ["b.io/y"]},
             "spec": {"ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}}
    out = mf.apply(out, other, manager="ops", force=False, definition_name=SERVICE, api_version="v1", now=T2)
    assert out["metadata"]["finalizers"] == ["a.io/x", "b.io/y"]
    assert [p["port"] for p in out["spec"]["ports"]] == [80, 53]
    assert fields(out, "ops") == {
        "f:metadata": {"f:finalizers": {'v:"b.io/y"': {}}},
        "f:spec": {"f:ports": {'k:{"port":53,"protocol":"UDP"}': {".": {}, "f:name": {}, "f:port": {},
                                                                   "f:protocol": {}}}}}


def test_bad_apply_bodies_are_rejected_like_upstream():
    with pytest.raises(APIError) as err:
        apply(None, {"apiVersion": "v1", "kind": "Deployment", "metadata": {"name": "web"}})
    assert (err.value.code, err.value.message) == (400, "invalid object type: /v1, Kind=Deployment")
    cfg = web_config()
    cfg["metadata"]["managedFields"] = []
    with pytest.raises(APIError) as err:
        apply(None, cfg)
    assert (err.value.code, err.value.message) == (400, "metadata.managedFields must be nil")
    cfg = web_config()
    cfg["spec"]["template"]["spec"]["containers"][0]["imagex"] = "typo"
    with pytest.raises(APIError) as err:
        apply(None, cfg)
    assert err.value.code == 500 and err.value.reason == ""
    assert err.value.message == (
        "failed to create typed patch object (default/web; apps/v1, Kind=Deployment): "
        '.spec.template.spec.containers[name="web"].imagex: field not declared in schema')
    cfg = web_config()
    cfg["spec"]["template"]["spec"]["containers"].append({"image": "x"})
    with pytest.raises(APIError) as err:
        apply(None, cfg)
    assert err.value.message.endswith(
        ".spec.template.spec.containers: element 1: associative list with keys has an element that omits "
        'key field "name" (and doesn\'t have default value)')


def test_patch_options_and_field_manager():
    with pytest.raises(APIError) as err:
        mf.validate_patch_options("application/apply-patch+yaml", None, None)
    assert err.value.code == 422
    assert err.value.message == ('PatchOptions.meta.k8s.io "" is invalid: '
                                 'fieldManager: Required value: is required for apply patch')
    with pytest.raises(APIError) as err:
        mf.validate_patch_options("application/merge-patch+json", "x", True)
    assert err.value.message.endswith("force: Forbidden: may not be specified for non-apply patch")
    mf.validate_patch_options("application/apply-patch+yaml", "kubectl", True)
    with pytest.raises(APIError):
        mf.validate_field_manager("x" * 129)
    assert mf.manager_for_request(None, "kubectl/v1.37.0 (linux/amd64) kubernetes/abc1234") == "kubectl"
    assert mf.manager_for_request("kubectl-edit", "kubectl/v1.37.0") == "kubectl-edit"
    assert mf.manager_for_request(None, "OpenAPI-Generator/33.1.0/python") == "OpenAPI-Generator"


def test_decode_apply_patch():
    assert mf.decode_apply_patch(b"apiVersion: v1\nkind: ConfigMap\ndata:\n  when: 2026-01-01\n") == {
        "apiVersion": "v1", "kind": "ConfigMap", "data": {"when": "2026-01-01"}}
    assert mf.decode_apply_patch(b'{"apiVersion":"v1"}') == {"apiVersion": "v1"}
    with pytest.raises(APIError) as err:
        mf.decode_apply_patch(b"- a\n- b\n")
    assert err.value.code == 400 and err.value.message.startswith("error decoding YAML: ")


def test_configmap_create_and_apply_round_trip():
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "default"},
          "data": {"a": "1"}}
    created = mf.track_update(None, stored(cm), manager="kubectl-create", definition_name=CONFIGMAP,
                              api_version="v1", now=T0)
    assert fields(created, "kubectl-create", "Update") == {"f:data": {".": {}, "f:a": {}}}
    cfg = copy.deepcopy(cm)
    cfg["data"] = {"a": "1", "b": "2"}
    out = mf.apply(created, cfg, manager="kubectl", force=False, definition_name=CONFIGMAP, api_version="v1",
                   now=T1)
    assert out["data"] == {"a": "1", "b": "2"}
    assert fields(out, "kubectl") == {"f:data": {"f:a": {}, "f:b": {}}}
