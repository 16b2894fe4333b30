"""Discovery documents (/api, /apis, /api/v1, /apis/<group>/<version>) and /version."""
from __future__ import annotations

import hashlib
import platform
import sys
from typing import Any

from boxkube import KUBERNETES_VERSION, __version__
from boxkube.apiserver.resources import GROUP_VERSIONS, RESOURCES, SUBRESOURCE_KIND_HOMES, ResourceType

# Verbs of each subresource, as upstream lists them.
_SUB_VERBS = {"status": ["get", "patch", "update"], "scale": ["get", "patch", "update"],
              "binding": ["create"], "eviction": ["create"], "finalize": ["update"], "log": ["get"],
              "exec": ["create", "get"], "attach": ["create", "get"], "portforward": ["create", "get"]}


def version_info() -> dict[str, str]:
    major, minor, _ = KUBERNETES_VERSION.split(".")
    return {"major": major, "minor": minor, "gitVersion": f"v{KUBERNETES_VERSION}+boxkube.{__version__}",
            "gitCommit": "", "gitTreeState": "clean", "buildDate": "1970-01-01T00:00:00Z",
            "goVersion": f"python{sys.version_info.major}.{sys.version_info.minor}", "compiler": "boxkube",
            "platform": f"linux/{'arm64' if platform.machine() in ('aarch64', 'arm64') else 'amd64'}"}


AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"


def media_ranges(accept: str | None) -> list[tuple[str, dict[str, str]]]:
    """An Accept header as (media type, parameters) in the client's order (Kubernetes clients don't use q=)."""
    ranges = []
    for part in (accept or "").split(","):
        fields = [f.strip() for f in part.split(";")]
        if fields[0]:
            params = dict(f.split("=", 1) for f in fields[1:] if "=" in f)
            ranges.append((fields[0].lower(), {k.strip().lower(): v.strip() for k, v in params.items()}))
    return ranges


def aggregated_version(accept: str | None) -> str | None:
    """'v2' or 'v2beta1' when the client asks for aggregated discovery before plain JSON, else None.

    kubectl asks `v2, v2beta1, application/json` and uses whichever the response's
    Content-Type names, so one request to /api and one to /apis replace the per-group walk.
    """
    for mt, params in media_ranges(accept):
        if mt in ("application/json", "application/*", "*/*") and "as" not in params:
            return None
        if mt == "application/json" and params.get("g") == "apidiscovery.k8s.io" \
                and params.get("as") == "APIGroupDiscoveryList" and params.get("v") in ("v2", "v2beta1"):
            return params["v"]
    return None


def api_versions() -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]}


def _group(name: str) -> dict[str, Any]:
    versions = [{"groupVersion": f"{g}/{v}", "version": v} for g, v in GROUP_VERSIONS if g == name]
    return {"name": name, "versions": versions, "preferredVersion": versions[0]}


def api_group_list() -> dict[str, Any]:
    groups = list(dict.fromkeys(g for g, _ in GROUP_VERSIONS if g))
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group(g) for g in groups]}


def api_group(name: str) -> dict[str, Any] | None:
    if not any(g == name for g, _ in GROUP_VERSIONS if g):
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name)}


def _resource_entries(rt: ResourceType) -> list[dict[str, Any]]:
    entry: dict[str, Any] = {"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced,
                             "kind": rt.kind, "verbs": list(rt.verbs),
                             "storageVersionHash": hashlib.sha256(f"{rt.group_version}/{rt.kind}".encode()).hexdigest()[:11]}
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    entries = [entry]
    for sub, kind in rt.subresources.items():
        sub_entry: dict[str, Any] = {"name": f"{rt.plural}/{sub}", "singularName": "", "namespaced": rt.namespaced,
                                     "kind": kind or rt.kind, "verbs": _SUB_VERBS.get(sub, ["get"])}
        if kind in SUBRESOURCE_KIND_HOMES:
            group, version = SUBRESOURCE_KIND_HOMES[kind]
            sub_entry.update(group=group, version=version)
        entries.append(sub_entry)
    return entries


def _scope(rt: ResourceType) -> str:
    return "Namespaced" if rt.namespaced else "Cluster"


def _resource_discovery(rt: ResourceType) -> dict[str, Any]:
    """One resource of aggregated discovery (apidiscovery.k8s.io APIResourceDiscovery)."""
    entry: dict[str, Any] = {"resource": rt.plural, "responseKind": {"group": "", "version": "", "kind": rt.kind},
                             "scope": _scope(rt), "singularResource": rt.singular, "verbs": list(rt.verbs)}
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    subs = []
    for sub, kind in rt.subresources.items():
        group, version = SUBRESOURCE_KIND_HOMES.get(kind, ("", ""))
        response_kind = {"group": group, "version": version, "kind": kind or rt.kind}
        subs.append({"subresource": sub, "responseKind": response_kind, "verbs": _SUB_VERBS.get(sub, ["get"])})
    if subs:
        entry["subresources"] = subs
    return entry


def aggregated_discovery(legacy: bool, version: str) -> dict[str, Any]:
    """The APIGroupDiscoveryList of /api (legacy=True: the core group, named "") or of /apis."""
    groups: dict[str, list[str]] = {}
    for g, v in GROUP_VERSIONS:
        if (g == "") == legacy:
            groups.setdefault(g, []).append(v)
    items = [{"metadata": {"name": g, "creationTimestamp": None},
              "versions": [{"version": v, "freshness": "Current",
                            "resources": [_resource_discovery(rt) for rt in RESOURCES
                                          if rt.group == g and rt.version == v]} for v in versions]}
             for g, versions in groups.items()]
    return {"kind": "APIGroupDiscoveryList", "apiVersion": f"apidiscovery.k8s.io/{version}",
            "metadata": {}, "items": items}


def api_resource_list(group: str, version: str) -> dict[str, Any] | None:
    if (group, version) not in GROUP_VERSIONS:
        return None
    resources = [e for rt in RESOURCES if rt.group == group and rt.version == version for e in _resource_entries(rt)]
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources}
