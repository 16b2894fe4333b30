"""meta.k8s.io/v1 Tables: columns and cells as kube-apiserver's printers make them."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from boxkube.apiserver.errors import APIError
from boxkube.apiserver.resources import RESOURCES, ResourceType, by_plural
from boxkube.apiserver.tables import columns_for, human_duration, to_table

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=timezone.utc)


def ago(**kw: float) -> str:
    return (NOW - timedelta(**kw)).strftime("%Y-%m-%dT%H:%M:%SZ")


def rt(plural: str) -> ResourceType:
    return next(r for r in RESOURCES if r.plural == plural)


def cells(plural: str, obj: dict) -> dict[str, object]:
    """One object's row as {column name: cell}."""
    table = to_table(rt(plural), [obj], now=NOW)
    names = [c["name"] for c in table["columnDefinitions"]]
    return dict(zip(names, table["rows"][0]["cells"], strict=True))


# ---- durations -------------------------------------------------------------

@pytest.mark.parametrize("delta, text", [
    (timedelta(seconds=-5), "<invalid>"),
    (timedelta(seconds=-1.5), "0s"),
    (timedelta(seconds=5), "5s"),
    (timedelta(seconds=119), "119s"),
    (timedelta(minutes=3, seconds=2), "3m2s"),
    (timedelta(minutes=5), "5m"),
    (timedelta(minutes=42, seconds=30), "42m"),
    (timedelta(hours=5, minutes=20), "5h20m"),
    (timedelta(hours=5), "5h"),
    (timedelta(hours=30), "30h"),
    (timedelta(days=2), "2d"),
    (timedelta(days=3, hours=4), "3d4h"),
    (timedelta(days=100), "100d"),
    (timedelta(days=365 * 3 + 10), "3y10d"),
    (timedelta(days=365 * 9), "9y"),
])
def test_human_duration(delta, text):
    assert human_duration(delta) == text


# ---- column definitions --------------------------------------------------------

EXPECTED_COLUMNS = {
    "pods": ["Name", "Ready", "Status", "Restarts", "Age", "*IP", "*Node", "*Nominated Node", "*Readiness Gates"],
    "deployments": ["Name", "Ready", "Up-to-date", "Available", "Age", "*Containers", "*Images", "*Selector"],
    "replicasets": ["Name", "Desired", "Current", "Ready", "Age", "*Containers", "*Images", "*Selector"],
    "replicationcontrollers": ["Name", "Desired", "Current", "Ready", "Age", "*Containers", "*Images", "*Selector"],
    "statefulsets": ["Name", "Ready", "Age", "*Containers", "*Images"],
    "daemonsets": ["Name", "Desired", "Current", "Ready", "Up-to-date", "Available", "Node Selector", "Age",
                   "*Containers", "*Images", "*Selector"],
    "services": ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "*Selector"],
    "endpoints": ["Name", "Endpoints", "Age"],
    "nodes": ["Name", "Status", "Roles", "Age", "Version", "*Internal-IP", "*External-IP", "*OS-Image",
              "*Kernel-Version", "*Container-Runtime"],
    "namespaces": ["Name", "Status", "Age"],
    "events": ["Last Seen", "Type", "Reason", "Object", "*Subobject", "*Source", "Message", "*First Seen",
               "*Count", "*Name"],
    "configmaps": ["Name", "Data", "Age"],
    "secrets": ["Name", "Type", "Data", "Age"],
    "serviceaccounts": ["Name", "Secrets", "Age"],
    "leases": ["Name", "Holder", "Age"],
    "endpointslices": ["Name", "AddressType", "Ports", "Endpoints", "Age"],
    "controllerrevisions": ["Name", "Controller", "Revision", "Age"],
}


@pytest.mark.parametrize("plural", sorted(EXPECTED_COLUMNS))
def test_columns_match_upstream(plural):
    cols = columns_for(rt(plural))
    assert [("*" if c["priority"] else "") + c["name"] for c in cols] == EXPECTED_COLUMNS[plural]
    for c in cols:
        assert set(c) == {"name", "type", "format", "description", "priority"}
        assert c["description"], f"{plural}/{c['name']} has no description"
        assert c["type"] in ("string", "integer", "date")
    assert [c["format"] for c in cols if c["name"] == "Name"] == ["name"]


def test_column_types():
    types = {c["name"]: c["type"] for c in columns_for(rt("daemonsets"))}
    assert types["Desired"] == "integer" and types["Node Selector"] == "string"
    assert {c["name"]: c["type"] for c in columns_for(rt("pods"))}["Restarts"] == "string"


# ---- pods ------------------------------------------------------------------------

def pod(name: str, phase: str, statuses: list[dict], *, containers: int | None = None, **extra) -> dict:
    n = containers if containers is not None else max(len(statuses), 1)
    obj = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "creationTimestamp": ago(minutes=10),
                     "resourceVersion": "100", "uid": f"uid-{name}", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": f"c{i}", "image": "nginx:1.27"} for i in range(n)]},
        "status": {"phase": phase, "containerStatuses": statuses},
    }
    for key, value in extra.items():
        section, field = key.split("__")
        obj[section][field] = value
    return obj


def last_failure(minutes_ago: int) -> dict:
    return {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(minutes=minutes_ago)}}


def running(ready: bool = True, restarts: int = 0, finished_ago_min: int | None = None) -> dict:
    cs = {"name": "c", "ready": ready, "restartCount": restarts, "state": {"running": {"startedAt": ago(minutes=9)}}}
    if finished_ago_min is not None:
        cs["lastState"] = last_failure(finished_ago_min)
    return cs


def waiting(reason: str, restarts: int = 0, finished_ago_min: int | None = None) -> dict:
    cs = {"name": "c", "ready": False, "restartCount": restarts, "state": {"waiting": {"reason": reason}}}
    if finished_ago_min is not None:
        cs["lastState"] = last_failure(finished_ago_min)
    return cs


def terminated(reason: str = "Completed", exit_code: int = 0, **kw) -> dict:
    return {"name": "c", "ready": False, "restartCount": 0,
            "state": {"terminated": {"exitCode": exit_code, "reason": reason, **kw}}}


def test_running_pod_row_with_wide_cells():
    p = pod("web-1", "Running", [running(), running(ready=False)],
            spec__nodeName="worker-1", status__podIP="10.244.1.7",
            status__podIPs=[{"ip": "10.244.1.7"}, {"ip": "fd00::7"}])
    assert cells("pods", p) == {
        "Name": "web-1", "Ready": "1/2", "Status": "Running", "Restarts": "0", "Age": "10m",
        "IP": "10.244.1.7", "Node": "worker-1", "Nominated Node": "<none>", "Readiness Gates": "<none>",
    }


@pytest.mark.parametrize("phase, statuses, expected", [
    ("Pending", [], ("0/1", "Pending", "0")),
    ("Pending", [waiting("ContainerCreating")], ("0/1", "ContainerCreating", "0")),
    ("Pending", [waiting("ErrImagePull")], ("0/1", "ErrImagePull", "0")),
    ("Running", [waiting("CrashLoopBackOff", restarts=3, finished_ago_min=5)],
     ("0/1", "CrashLoopBackOff", "3 (5m ago)")),
    ("Running", [running(restarts=2, finished_ago_min=90)], ("1/1", "Running", "2 (90m ago)")),
    ("Succeeded", [terminated()], ("0/1", "Completed", "0")),
    ("Failed", [terminated("Error", 1)], ("0/1", "Error", "0")),
    ("Failed", [terminated("", 137)], ("0/1", "ExitCode:137", "0")),
    ("Failed", [terminated("", 0, signal=9)], ("0/1", "Signal:9", "0")),
    ("Running", [running(), terminated()], ("1/2", "NotReady", "0")),
])
def test_pod_status_cells(phase, statuses, expected):
    c = cells("pods", pod("p", phase, statuses))
    assert (c["Ready"], c["Status"], c["Restarts"]) == expected


def test_completed_container_next_to_running_one_with_ready_pod():
    p = pod("p", "Running", [running(), terminated()],
            status__conditions=[{"type": "Ready", "status": "True"}])
    assert cells("pods", p)["Status"] == "Running"


def test_terminating_and_node_lost():
    p = pod("p", "Running", [running()], metadata__deletionTimestamp=ago(seconds=3))
    assert cells("pods", p)["Status"] == "Terminating"
    lost = pod("p", "Running", [running()], metadata__deletionTimestamp=ago(seconds=3), status__reason="NodeLost")
    assert cells("pods", lost)["Status"] == "Unknown"
    done = pod("p", "Succeeded", [terminated()], metadata__deletionTimestamp=ago(seconds=3))
    assert cells("pods", done)["Status"] == "Completed"


def test_scheduling_gated_and_evicted():
    gated = pod("p", "Pending", [], status__conditions=[
        {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}])
    assert cells("pods", gated)["Status"] == "SchedulingGated"
    evicted = pod("p", "Failed", [], status__reason="Evicted")
    assert cells("pods", evicted)["Status"] == "Evicted"


def init_pod(init_statuses: list[dict], main: list[dict], conditions: list[dict] | None = None,
             sidecar: bool = False) -> dict:
    p = pod("p", "Pending", main)
    p["spec"]["initContainers"] = [{"name": "init", "image": "busybox",
                                    **({"restartPolicy": "Always"} if sidecar else {})}]
    p["status"]["initContainerStatuses"] = [{**s, "name": "init"} for s in init_statuses]
    if conditions:
        p["status"]["conditions"] = conditions
    return p


def test_init_container_states():
    assert cells("pods", init_pod([waiting("PodInitializing")], [waiting("PodInitializing")]))["Status"] == "Init:0/1"
    crashing = init_pod([waiting("CrashLoopBackOff", restarts=4, finished_ago_min=2)], [])
    c = cells("pods", crashing)
    assert (c["Status"], c["Restarts"]) == ("Init:CrashLoopBackOff", "4 (2m ago)")
    assert cells("pods", init_pod([terminated("Error", 1)], []))["Status"] == "Init:Error"
    assert cells("pods", init_pod([terminated("", 2)], []))["Status"] == "Init:ExitCode:2"


def test_sidecar_counts_as_a_container():
    sidecar_running = {**running(), "started": True}
    p = init_pod([sidecar_running], [running()], sidecar=True,
                 conditions=[{"type": "Initialized", "status": "True"}])
    p["status"]["phase"] = "Running"
    assert cells("pods", p)["Ready"] == "2/2"


def test_readiness_gates():
    p = pod("p", "Running", [running()], spec__readinessGates=[{"conditionType": "lb/ready"},
                                                                 {"conditionType": "dns/ready"}],
            status__conditions=[{"type": "lb/ready", "status": "True"}])
    assert cells("pods", p)["Readiness Gates"] == "1/2"


def test_finished_pods_carry_row_conditions():
    table = to_table(rt("pods"), [pod("a", "Succeeded", [terminated()]), pod("b", "Running", [running()])], now=NOW)
    done, live = table["rows"]
    assert done["conditions"] == [{"type": "Completed", "status": "True", "reason": "Succeeded",
                                   "message": "The pod has completed successfully."}]
    assert "conditions" not in live
    assert list(done) == ["cells", "conditions", "object"]


# ---- workloads ---------------------------------------------------------------------

TEMPLATE = {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27"},
                                    {"name": "log", "image": "busybox:1.36"}]}}


def test_deployment_row():
    d = {"metadata": {"name": "web", "namespace": "default", "creationTimestamp": ago(days=3, hours=4)},
         "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE},
         "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}
    assert cells("deployments", d) == {
        "Name": "web", "Ready": "2/3", "Up-to-date": 3, "Available": 2, "Age": "3d4h",
        "Containers": "web,log", "Images": "nginx:1.27,busybox:1.36", "Selector": "app=web",
    }


def test_new_deployment_without_status():
    d = {"metadata": {"name": "web", "creationTimestamp": ago(seconds=4)},
         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE}}
    c = cells("deployments", d)
    assert (c["Ready"], c["Up-to-date"], c["Available"], c["Age"]) == ("0/2", 0, 0, "4s")


def test_replicaset_and_replicationcontroller_rows():
    rs = {"metadata": {"name": "web-5d9c", "creationTimestamp": ago(minutes=3)},
          "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d9c"}},
                   "template": TEMPLATE},
          "status": {"replicas": 3, "readyReplicas": 1}}
    assert list(cells("replicasets", rs).values()) == [
        "web-5d9c", 3, 3, 1, "3m", "web,log", "nginx:1.27,busybox:1.36", "app=web,pod-template-hash=5d9c"]
    rc = {"metadata": {"name": "old", "creationTimestamp": ago(hours=2)},
          "spec": {"replicas": 1, "selector": {"app": "old"}}, "status": {"replicas": 1}}
    assert list(cells("replicationcontrollers", rc).values()) == ["old", 1, 1, 0, "120m", "", "", "app=old"]


def test_statefulset_and_daemonset_rows():
    sts = {"metadata": {"name": "db", "creationTimestamp": ago(days=10)},
           "spec": {"replicas": 3, "template": TEMPLATE}, "status": {"readyReplicas": 3}}
    assert list(cells("statefulsets", sts).values()) == ["db", "3/3", "10d", "web,log", "nginx:1.27,busybox:1.36"]
    ds = {"metadata": {"name": "proxy", "creationTimestamp": ago(hours=6, minutes=5)},
          "spec": {"selector": {"matchLabels": {"k8s-app": "proxy"}},
                   "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                                         "containers": [{"name": "proxy", "image": "proxy:1"}]}}},
          "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                     "updatedNumberScheduled": 3, "numberAvailable": 2}}
    assert list(cells("daemonsets", ds).values()) == [
        "proxy", 3, 3, 2, 3, 2, "kubernetes.io/os=linux", "6h5m", "proxy", "proxy:1", "k8s-app=proxy"]


def test_controllerrevision_names_its_controller():
    cr = {"metadata": {"name": "db-7f8", "creationTimestamp": ago(days=1),
                       "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db",
                                            "uid": "u", "controller": True}]},
          "revision": 2}
    assert list(cells("controllerrevisions", cr).values()) == ["db-7f8", "statefulset.apps/db", 2, "24h"]


# ---- services and endpoints ----------------------------------------------------------

def svc(name: str, spec: dict, status: dict | None = None) -> dict:
    return {"metadata": {"name": name, "namespace": "default", "creationTimestamp": ago(minutes=1)},
            "spec": spec, "status": status or {}}


def test_nodeport_service():
    s = svc("web", {"type": "NodePort", "clusterIP": "10.96.12.34", "clusterIPs": ["10.96.12.34"],
                    "selector": {"app": "web"},
                    "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080, "protocol": "TCP"},
                              {"port": 53, "protocol": "UDP", "nodePort": 30053}]})
    assert cells("services", s) == {
        "Name": "web", "Type": "NodePort", "Cluster-IP": "10.96.12.34", "External-IP": "<none>",
        "Port(s)": "80:30080/TCP,53:30053/UDP", "Age": "60s", "Selector": "app=web",
    }


@pytest.mark.parametrize("spec, status, expected", [
    ({"type": "ClusterIP", "clusterIP": "None", "ports": []}, None, ("None", "<none>", "<none>", "<none>")),
    ({"type": "ClusterIP", "clusterIP": "10.96.0.1", "externalIPs": ["1.2.3.4"],
      "ports": [{"port": 443, "protocol": "TCP"}]}, None, ("10.96.0.1", "1.2.3.4", "443/TCP", "<none>")),
    ({"type": "LoadBalancer", "clusterIP": "10.96.0.2", "ports": [{"port": 80, "nodePort": 31000, "protocol": "TCP"}]},
     None, ("10.96.0.2", "<pending>", "80:31000/TCP", "<none>")),
    ({"type": "LoadBalancer", "clusterIP": "10.96.0.2", "ports": []},
     {"loadBalancer": {"ingress": [{"ip": "172.18.0.10"}, {"hostname": "lb.example.com"}]}},
     ("10.96.0.2", "172.18.0.10,lb.example.com", "<none>", "<none>")),
    ({"type": "ExternalName", "externalName": "db.example.com"}, None,
     ("<none>", "db.example.com", "<none>", "<none>")),
])
def test_service_variants(spec, status, expected):
    c = cells("services", svc("s", spec, status))
    assert (c["Cluster-IP"], c["External-IP"], c["Port(s)"], c["Selector"]) == expected


def test_endpoints_cell():
    ep = {"metadata": {"name": "web", "creationTimestamp": ago(minutes=1)},
          "subsets": [{"addresses": [{"ip": "10.244.1.5"}, {"ip": "10.244.2.6"}],
                       "ports": [{"port": 8080, "protocol": "TCP"}, {"port": 9090, "protocol": "TCP"}]}]}
    assert cells("endpoints", ep)["Endpoints"] == "10.244.1.5:8080,10.244.2.6:8080,10.244.1.5:9090 + 1 more..."
    headless = {"metadata": {"name": "db"}, "subsets": [{"addresses": [{"ip": "fd00::1"}]}]}
    assert cells("endpoints", headless)["Endpoints"] == "fd00::1"
    v6 = {"metadata": {"name": "v6"}, "subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]}]}
    assert cells("endpoints", v6)["Endpoints"] == "[fd00::1]:80"
    assert cells("endpoints", {"metadata": {"name": "none"}})["Endpoints"] == "<none>"


def test_endpointslice_cells():
    es = {"metadata": {"name": "web-abc12", "creationTimestamp": ago(minutes=2)}, "addressType": "IPv4",
          "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "metrics"}],
          "endpoints": [{"addresses": [f"10.244.1.{i}"]} for i in range(5)]}
    assert list(cells("endpointslices", es).values()) == [
        "web-abc12", "IPv4", "8080,metrics", "10.244.1.0,10.244.1.1,10.244.1.2 + 2 more...", "2m"]
    empty = {"metadata": {"name": "e"}, "addressType": "IPv4"}
    assert list(cells("endpointslices", empty).values()) == ["e", "IPv4", "<unset>", "<unset>", "<unknown>"]


# ---- nodes, namespaces, events, small resources ------------------------------------------

def node(name: str, ready: str | None, labels: dict, unschedulable: bool = False) -> dict:
    n = {"metadata": {"name": name, "labels": labels, "creationTimestamp": ago(days=2)},
         "spec": {"unschedulable": unschedulable} if unschedulable else {},
         "status": {"nodeInfo": {"kubeletVersion": "v1.37.0", "osImage": "Debian GNU/Linux 12 (bookworm)",
                                 "kernelVersion": "6.8.0", "containerRuntimeVersion": "docker://27.3.1"},
                    "addresses": [{"type": "InternalIP", "address": "172.18.0.2"},
                                  {"type": "Hostname", "address": name}]}}
    if ready is not None:
        n["status"]["conditions"] = [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": ready}]
    return n


def test_node_rows():
    cp = node("boxkube-control-plane", "True", {"node-role.kubernetes.io/control-plane": ""})
    assert cells("nodes", cp) == {
        "Name": "boxkube-control-plane", "Status": "Ready", "Roles": "control-plane", "Age": "2d",
        "Version": "v1.37.0", "Internal-IP": "172.18.0.2", "External-IP": "<none>",
        "OS-Image": "Debian GNU/Linux 12 (bookworm)", "Kernel-Version": "6.8.0",
        "Container-Runtime": "docker://27.3.1",
    }
    cordoned = node("w1", "True", {"node-role.kubernetes.io/worker": "", "node-role.kubernetes.io/gpu": "",
                                   "kubernetes.io/role": "infra"}, unschedulable=True)
    c = cells("nodes", cordoned)
    assert (c["Status"], c["Roles"]) == ("Ready,SchedulingDisabled", "gpu,infra,worker")
    c = cells("nodes", node("w2", "False", {}))
    assert (c["Status"], c["Roles"]) == ("NotReady", "<none>")
    assert cells("nodes", node("w3", None, {}))["Status"] == "Unknown"


def test_namespace_secret_configmap_serviceaccount_lease():
    assert list(cells("namespaces", {"metadata": {"name": "default", "creationTimestamp": ago(days=400)},
                                     "status": {"phase": "Active"}}).values()) == ["default", "Active", "400d"]
    secret = {"metadata": {"name": "tls", "creationTimestamp": ago(seconds=30)}, "type": "kubernetes.io/tls",
              "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}}
    assert list(cells("secrets", secret).values()) == ["tls", "kubernetes.io/tls", 2, "30s"]
    cm = {"metadata": {"name": "kube-root-ca.crt", "creationTimestamp": ago(hours=1)},
          "data": {"ca.crt": "..."}, "binaryData": {"blob": "AA=="}}
    assert list(cells("configmaps", cm).values()) == ["kube-root-ca.crt", 2, "60m"]
    sa = {"metadata": {"name": "default", "creationTimestamp": ago(hours=1)}}
    assert list(cells("serviceaccounts", sa).values()) == ["default", 0, "60m"]
    lease = {"metadata": {"name": "worker-1", "creationTimestamp": ago(hours=1)},
             "spec": {"holderIdentity": "worker-1", "leaseDurationSeconds": 40}}
    assert list(cells("leases", lease).values()) == ["worker-1", "worker-1", "60m"]
    assert cells("leases", {"metadata": {"name": "free"}, "spec": {}})["Holder"] == ""


def test_event_rows():
    ev = {"metadata": {"name": "web-1.17f3a", "namespace": "default"},
          "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{web}"},
          "reason": "BackOff", "type": "Warning", "message": "Back-off restarting failed container\n",
          "source": {"component": "kubelet", "host": "worker-1"},
          "firstTimestamp": ago(minutes=12), "lastTimestamp": ago(seconds=40), "count": 7}
    assert cells("events", ev) == {
        "Last Seen": "40s", "Type": "Warning", "Reason": "BackOff", "Object": "pod/web-1",
        "Subobject": "spec.containers{web}", "Source": "kubelet, worker-1",
        "Message": "Back-off restarting failed container", "First Seen": "12m", "Count": 7, "Name": "web-1.17f3a",
    }
    new_api = {"metadata": {"name": "n"}, "involvedObject": {"kind": "Node"}, "reason": "Starting",
               "type": "Normal", "eventTime": ago(minutes=3), "reportingComponent": "kube-proxy",
               "reportingInstance": "kube-proxy-w1"}
    c = cells("events", new_api)
    assert (c["Last Seen"], c["First Seen"], c["Count"], c["Object"], c["Source"]) == (
        "3m", "3m", 1, "node", "kube-proxy, kube-proxy-w1")
    series = {**new_api, "series": {"count": 5, "lastObservedTime": ago(seconds=10)}}
    c = cells("events", series)
    assert (c["Last Seen"], c["Count"]) == ("10s", 5)


# ---- the Table envelope -----------------------------------------------------------------

def test_list_table_envelope_and_partial_object_metadata():
    p = pod("web-1", "Running", [running()])
    table = to_table(rt("pods"), [p], now=NOW, list_meta={"resourceVersion": "123", "continue": ""})
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "123"}
    assert table["rows"][0]["object"] == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                          "metadata": p["metadata"]}


def test_get_table_takes_the_object_resource_version():
    table = to_table(rt("pods"), [pod("web-1", "Running", [running()])], now=NOW)
    assert table["metadata"] == {"resourceVersion": "100"}


def test_list_meta_keeps_continue_and_remaining_count():
    table = to_table(rt("configmaps"), [], now=NOW,
                     list_meta={"resourceVersion": "9", "continue": "abc", "remainingItemCount": 4})
    assert table["metadata"] == {"resourceVersion": "9", "continue": "abc", "remainingItemCount": 4}
    assert table["rows"] == []


@pytest.mark.parametrize("include, expected_kind", [("Object", "Pod"), ("Metadata", "PartialObjectMetadata"),
                                                     ("", "PartialObjectMetadata")])
def test_include_object(include, expected_kind):
    obj = pod("web-1", "Running", [running()])
    row = to_table(rt("pods"), [obj], include_object=include, now=NOW)["rows"][0]
    assert row["object"]["kind"] == expected_kind


def test_include_object_none_and_invalid():
    row = to_table(rt("pods"), [pod("a", "Running", [running()])], include_object="None", now=NOW)["rows"][0]
    assert row["object"] is None
    with pytest.raises(APIError) as info:
        to_table(rt("pods"), [], include_object="PartialObjectMetadata")
    assert info.value.code == 400
    assert info.value.message == ('Unable to convert to Table as requested: includeObject: Unsupported value: '
                                  '"PartialObjectMetadata": supported values: "Metadata", "None", "Object"')


def test_object_include_adds_kind_for_bare_objects():
    cm = {"metadata": {"name": "c"}, "data": {}}
    row = to_table(rt("configmaps"), [cm], include_object="Object", now=NOW)["rows"][0]
    assert row["object"] == {"apiVersion": "v1", "kind": "ConfigMap", **cm}


def test_no_headers_for_later_watch_events():
    assert to_table(rt("pods"), [], no_headers=True)["columnDefinitions"] is None


def test_resources_without_a_printer_get_name_and_created_at():
    widgets = ResourceType("example.com", "v1", "Widget", "widgets")
    cols = columns_for(widgets)
    assert [(c["name"], c["type"]) for c in cols] == [("Name", "string"), ("Created At", "date")]
    obj = {"metadata": {"name": "w", "creationTimestamp": "2025-05-31T10:00:00.123456+02:00"}}
    assert to_table(widgets, [obj], now=NOW)["rows"][0]["cells"] == ["w", "2025-05-31T08:00:00Z"]


def test_every_served_listable_resource_has_a_table():
    for r in RESOURCES:
        if "list" in r.verbs:
            assert columns_for(r)[0]["name"] in ("Name", "Last Seen")
    assert by_plural("apps", "v1", "deployments") is not None


def test_age_unknown_without_creation_timestamp_and_default_clock():
    cm = {"metadata": {"name": "c"}}
    assert cells("configmaps", cm)["Age"] == "<unknown>"
    fresh = {"metadata": {"name": "c", "creationTimestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}}
    assert to_table(rt("configmaps"), [fresh])["rows"][0]["cells"][2] in ("0s", "1s", "2s")
