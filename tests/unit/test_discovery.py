"""Discovery documents: the legacy walk and aggregated discovery, chosen from the Accept header."""
from boxkube.apiserver import discovery
from boxkube.apiserver.resources import RESOURCES

KUBECTL_ACCEPT = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
                  "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json")


def test_aggregated_version_follows_the_clients_order():
    assert discovery.aggregated_version(KUBECTL_ACCEPT) == "v2"
    assert discovery.aggregated_version(KUBECTL_ACCEPT.split(",", 1)[1]) == "v2beta1"
    assert discovery.aggregated_version("application/json") is None
    assert discovery.aggregated_version(None) is None
    assert discovery.aggregated_version("application/json, " + KUBECTL_ACCEPT) is None
    # An unknown version of the list is not ours to answer.
    assert discovery.aggregated_version("application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList") is None


def test_aggregated_core_group_lists_every_core_resource_with_subresources():
    doc = discovery.aggregated_discovery(legacy=True, version="v2")
    assert doc["kind"] == "APIGroupDiscoveryList" and doc["apiVersion"] == "apidiscovery.k8s.io/v2"
    [core] = doc["items"]
    assert core["metadata"]["name"] == ""
    [v1] = core["versions"]
    names = {r["resource"]: r for r in v1["resources"]}
    assert set(names) == {rt.plural for rt in RESOURCES if rt.group == ""}
    pods = names["pods"]
    assert pods["scope"] == "Namespaced" and pods["responseKind"]["kind"] == "Pod"
    assert {s["subresource"] for s in pods["subresources"]} >= {"status", "binding", "eviction"}
    # A kind of another group-version names it, as upstream: kubectl drain evicts only then.
    eviction = next(s for s in pods["subresources"] if s["subresource"] == "eviction")
    assert eviction == {"subresource": "eviction", "responseKind": {"group": "policy", "version": "v1", "kind": "Eviction"},
                        "verbs": ["create"]}
    binding = next(s for s in pods["subresources"] if s["subresource"] == "binding")
    assert binding["responseKind"] == {"group": "", "version": "", "kind": "Binding"}
    assert names["nodes"]["scope"] == "Cluster"


def test_aggregated_groups_exclude_core_and_point_scale_at_autoscaling():
    doc = discovery.aggregated_discovery(legacy=False, version="v2beta1")
    groups = {item["metadata"]["name"]: item for item in doc["items"]}
    assert "" not in groups and {"apps", "coordination.k8s.io", "discovery.k8s.io"} <= set(groups)
    deployments = next(r for r in groups["apps"]["versions"][0]["resources"] if r["resource"] == "deployments")
    scale = next(s for s in deployments["subresources"] if s["subresource"] == "scale")
    assert scale["responseKind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    assert deployments["shortNames"] == ["deploy"]


def test_legacy_resource_list_gives_subresources_of_other_groups_their_group_version():
    entries = {e["name"]: e for e in discovery.api_resource_list("", "v1")["resources"]}
    assert entries["pods/eviction"] == {"name": "pods/eviction", "singularName": "", "namespaced": True,
                                        "kind": "Eviction", "verbs": ["create"], "group": "policy", "version": "v1"}
    assert "group" not in entries["pods/binding"] and "group" not in entries["pods/status"]
    scale = {e["name"]: e for e in discovery.api_resource_list("apps", "v1")["resources"]}["deployments/scale"]
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")
