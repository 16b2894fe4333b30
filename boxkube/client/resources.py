"""Resource descriptors for the client: the API server's own table, looked up by the names kubectl accepts.

`ResourceType` (group, version, kind, plural, namespaced) is shared with the
API server: boxkube.apiserver.resources imports nothing but the standard
library, so using it does not bring the server into a client. A resource the
table lacks (a custom resource, say) is described with
`ResourceType(group, version, kind, plural, namespaced=...)`.
"""
from __future__ import annotations

from urllib.parse import quote

from boxkube.apiserver.resources import RESOURCES, ResourceType

__all__ = ["ResourceType", "resource", "resource_path"]


def resource(name: str) -> ResourceType:
    """A served resource by plural, kind, singular or short name, optionally `.group`-qualified.

    `resource("pods")`, `resource("Pod")`, `resource("po")`, `resource("deployments.apps")`.
    """
    wanted, _, group = name.partition(".")
    wanted = wanted.lower()
    for rt in RESOURCES:
        if group and rt.group != group:
            continue
        if wanted in (rt.plural, rt.singular, *rt.short_names):
            return rt
    raise KeyError(f'the server doesn\'t have a resource type "{name}"')


def resource_path(rt: ResourceType, namespace: str | None = None, name: str = "", subresource: str = "") -> str:
    """The REST path: /api/v1/namespaces/NS/pods/NAME/status, /apis/apps/v1/deployments, ..."""
    path = f"/apis/{rt.group}/{rt.version}" if rt.group else f"/api/{rt.version}"
    if rt.namespaced and namespace:
        path += f"/namespaces/{quote(namespace, safe='')}"
    path += f"/{rt.plural}"
    if name:
        path += f"/{quote(name, safe='')}"
    if subresource:
        path += f"/{subresource}"
    return path
