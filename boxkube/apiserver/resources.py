"""The resource types the API server serves, and their REST names.

This table is the one place a resource is described: discovery, routing,
OpenAPI and storage keys all derive from it. What a resource does beyond the
generic store lives in its strategy (`boxkube/apiserver/strategies/`).
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    # subresource name -> kind served there (status keeps the parent's kind)
    subresources: dict[str, str] = field(default_factory=dict)
    verbs: tuple[str, ...] = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
    # Sent as a Warning with every response about it, as upstream does for deprecated APIs.
    deprecation: str = ""

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def qualified(self) -> str:
        """`pods`, `deployments.apps`: the name used in messages and `kubectl get`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def key(self, namespace: str | None, name: str = "") -> str:
        """The etcd key (or key prefix when name is empty): /registry/<resource>/[<ns>/]<name>."""
        base = f"/registry/{self.plural}/"
        if self.namespaced and namespace:
            base += f"{namespace}/"
        return base + name


_STATUS = {"status": ""}
_SCALE_STATUS = {"status": "", "scale": "Scale"}

RESOURCES: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "Namespace", "namespaces", namespaced=False, short_names=("ns",),
                 subresources={"status": "", "finalize": ""},
                 verbs=("create", "delete", "get", "list", "patch", "update", "watch")),
    ResourceType("", "v1", "Pod", "pods", short_names=("po",), categories=("all",),
                 subresources={"status": "", "binding": "Binding", "eviction": "Eviction", "log": "", "exec": "",
                               "attach": "", "portforward": ""}),
    ResourceType("", "v1", "Binding", "bindings", verbs=("create",)),
    ResourceType("", "v1", "Service", "services", short_names=("svc",), categories=("all",),
                 subresources=_STATUS,
                 verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")),
    ResourceType("", "v1", "Endpoints", "endpoints", short_names=("ep",),
                 deprecation="v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice"),
    ResourceType("", "v1", "ConfigMap", "configmaps", short_names=("cm",)),
    ResourceType("", "v1", "Secret", "secrets"),
    ResourceType("", "v1", "Node", "nodes", namespaced=False, short_names=("no",), subresources=_STATUS),
    ResourceType("", "v1", "Event", "events", short_names=("ev",)),
    ResourceType("", "v1", "ServiceAccount", "serviceaccounts", short_names=("sa",)),
    ResourceType("", "v1", "ReplicationController", "replicationcontrollers", short_names=("rc",),
                 categories=("all",), subresources=_SCALE_STATUS),
    ResourceType("apps", "v1", "Deployment", "deployments", short_names=("deploy",), categories=("all",),
                 subresources=_SCALE_STATUS),
    ResourceType("apps", "v1", "ReplicaSet", "replicasets", short_names=("rs",), categories=("all",),
                 subresources=_SCALE_STATUS),
    ResourceType("apps", "v1", "StatefulSet", "statefulsets", short_names=("sts",), categories=("all",),
                 subresources=_SCALE_STATUS),
    ResourceType("apps", "v1", "DaemonSet", "daemonsets", short_names=("ds",), categories=("all",),
                 subresources=_STATUS),
    ResourceType("apps", "v1", "ControllerRevision", "controllerrevisions"),
    ResourceType("coordination.k8s.io", "v1", "Lease", "leases"),
    ResourceType("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"),
)

# Kinds served at a subresource that live in another group-version than their parent resource
# (pods/eviction takes a policy/v1 Eviction). Discovery names that group-version with the
# subresource, as kube-apiserver does, and clients go by it: kubectl drain evicts only when
# discovery lists pods/eviction with a group and version (drain.CheckEvictionSupport).
SUBRESOURCE_KIND_HOMES: dict[str, tuple[str, str]] = {
    "Scale": ("autoscaling", "v1"),
    "Eviction": ("policy", "v1"),
    "TokenRequest": ("authentication.k8s.io", "v1"),
}

GROUP_VERSIONS: tuple[tuple[str, str], ...] = tuple(dict.fromkeys((r.group, r.version) for r in RESOURCES))


def by_plural(group: str, version: str, plural: str) -> ResourceType | None:
    for r in RESOURCES:
        if r.group == group and r.version == version and r.plural == plural:
            return r
    return None


def by_kind(group: str, version: str, kind: str) -> ResourceType | None:
    for r in RESOURCES:
        if r.group == group and r.version == version and r.kind == kind:
            return r
    return None
