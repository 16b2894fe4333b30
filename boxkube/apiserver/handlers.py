"""REST handlers: one set for every resource, dispatched on the parsed request path.

The URL layout is upstream's (k8s.io/apiserver/pkg/endpoints/request/requestinfo.go):

    /api/v1/[namespaces/<ns>/]<resource>[/<name>[/<subresource>]]
    /apis/<group>/<version>/[namespaces/<ns>/]<resource>[/<name>[/<subresource>]]
"""
from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any, AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from boxkube.apiserver import codec, errors, eviction, subresources, tables, validation
from boxkube.apiserver.errors import APIError
from boxkube.apiserver.registry import ListResult, Registry, WriteOptions
from boxkube.apiserver.resources import ResourceType, by_plural
from boxkube.apiserver.watchcache import Change
from boxkube.storage.errors import Compacted

log = logging.getLogger(__name__)

Obj = dict[str, Any]

PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json", "application/apply-patch+yaml")


@dataclass
class Target:
    rt: ResourceType
    namespace: str | None
    name: str = ""
    subresource: str = ""


def parse_path(group: str, version: str, segments: list[str]) -> Target:
    """Resolve the part of the path after the group-version to a resource target (404 if unknown)."""
    namespace = None
    if len(segments) >= 3 and segments[0] == "namespaces" and not (len(segments) == 3 and segments[2] in ("status", "finalize")):
        namespace, segments = segments[1], segments[2:]
    if not segments or len(segments) > 3:
        raise APIError(404, "NotFound", "the server could not find the requested resource")
    rt = by_plural(group, version, segments[0])
    if rt is None:
        raise APIError(404, "NotFound", "the server could not find the requested resource")
    target = Target(rt, namespace, *segments[1:])
    if target.subresource and target.subresource not in rt.subresources:
        raise APIError(404, "NotFound", "the server could not find the requested resource")
    if namespace is not None and not rt.namespaced:
        raise APIError(404, "NotFound", "the server could not find the requested resource")
    return target


# -- content negotiation ------------------------------------------------------

def _accept_as(request: Request) -> str:
    """'Table', 'PartialObjectMetadata', 'PartialObjectMetadataList' or '' (the object itself)."""
    accept = request.headers.get("accept", "")
    json_ok = not accept
    for part in accept.split(","):
        fields = [f.strip() for f in part.split(";")]
        mt, params = fields[0].lower(), dict(f.split("=", 1) for f in fields[1:] if "=" in f)
        if mt in ("application/json", "*/*", "application/*") or mt.endswith("+json"):
            if "as" in params:
                if params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1") \
                        and params["as"] in ("Table", "PartialObjectMetadata", "PartialObjectMetadataList"):
                    return params["as"]
                continue
            json_ok = True
        elif mt in ("application/yaml",):
            json_ok = True
    if not json_ok:
        raise errors.not_acceptable("only the following media types are accepted: application/json, application/yaml")
    return ""


def _query_bool(request: Request, name: str) -> bool:
    return request.query_params.get(name, "").lower() in ("1", "true")


def _int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        raise errors.bad_request(f'invalid value for {name}: "{raw}"') from None


def json_response(body: Any, status: int = 200, warnings: list[str] | None = None) -> Response:
    response = Response(codec.dumps(body), status_code=status, media_type="application/json")
    for warning in warnings or ():
        response.headers.append("Warning", validation.warning_header(warning))
    return response


def error_response(e: APIError) -> Response:
    return json_response(e.status(), e.code)


def created_status(warnings: list[str] | None = None) -> Response:
    """What a create-only subresource answers (upstream's create handler gives a bare Status Success code 201)."""
    return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201},
                         201, warnings)


class Handlers:
    def __init__(self, registry: Registry, bookmark_interval: float = 60.0):
        self.registry = registry
        self.bookmark_interval = bookmark_interval
        self.pod_proxy: Any = None      # boxkube.apiserver.podproxy.PodProxy: pods/log, exec... to the node agents

    # -- shaping responses ----------------------------------------------------

    def _shape(self, request: Request, rt: ResourceType, obj: Obj) -> Obj:
        as_ = _accept_as(request)
        if as_ == "Table":
            return tables.to_table(rt, [obj], include_object=request.query_params.get("includeObject", "Metadata"))
        if as_.startswith("PartialObjectMetadata"):
            return _partial(obj)
        return obj

    def _shape_list(self, request: Request, rt: ResourceType, result: ListResult) -> Obj:
        list_meta: Obj = {"resourceVersion": result.resource_version}
        if result.continue_token:
            list_meta["continue"] = result.continue_token
        as_ = _accept_as(request)
        if as_ == "Table":
            return tables.to_table(rt, result.items, list_meta=list_meta,
                                   include_object=request.query_params.get("includeObject", "Metadata"))
        if as_.startswith("PartialObjectMetadata"):
            return {"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
                    "items": [_partial(o) for o in result.items]}
        return {"kind": rt.list_kind, "apiVersion": rt.group_version, "metadata": list_meta, "items": result.items}

    # -- options --------------------------------------------------------------

    @staticmethod
    def write_options(request: Request) -> WriteOptions:
        q = request.query_params
        dry_run = q.getlist("dryRun")
        if any(d != "All" for d in dry_run):
            raise errors.bad_request(f"unsupported dry run option {dry_run!r}: only All is supported")
        validation = q.get("fieldValidation") or "Warn"
        if validation not in ("Strict", "Warn", "Ignore"):
            raise errors.bad_request(f"fieldValidation must be one of Strict, Warn or Ignore, got {validation!r}")
        return WriteOptions(dry_run=bool(dry_run), field_manager=q.get("fieldManager", ""),
                            field_validation=validation, force=_query_bool(request, "force"),
                            user_agent=request.headers.get("user-agent", ""))

    @staticmethod
    async def body(request: Request, allowed: tuple[str, ...] = codec.OBJECT_TYPES) -> tuple[str, bytes]:
        mt = codec.check_media_type(request.headers.get("content-type"), allowed)
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > codec.MAX_BODY:
            raise errors.too_large(codec.MAX_BODY)
        raw = await request.body()
        if len(raw) > codec.MAX_BODY:
            raise errors.too_large(codec.MAX_BODY)
        return mt, raw

    # -- verbs ----------------------------------------------------------------

    async def dispatch(self, request: Request, t: Target) -> Response:
        response = await self._dispatch(request, t)
        if t.rt.deprecation:
            response.headers.append("Warning", validation.warning_header(t.rt.deprecation))
        return response

    async def _dispatch(self, request: Request, t: Target) -> Response:
        method = request.method
        _accept_as(request)     # 406 before anything is done, as upstream negotiates the output first
        if t.subresource:
            return await self._subresource(request, t, method)
        if not t.name:
            if method == "GET":
                if _query_bool(request, "watch"):
                    return await self.watch(request, t)
                return await self.list(request, t)
            if method == "POST":
                return await self.create(request, t)
            if method == "DELETE":
                return await self.delete_collection(request, t)
        else:
            if method == "GET":
                if _query_bool(request, "watch"):
                    return await self.watch(request, t, name=t.name)
                return json_response(self._shape(request, t.rt, await self.registry.get(t.rt, t.namespace, t.name)))
            if method == "PUT":
                return await self.update(request, t)
            if method == "PATCH":
                return await self.patch(request, t)
            if method == "DELETE":
                return await self.delete(request, t)
        raise errors.method_not_allowed()

    async def list(self, request: Request, t: Target) -> Response:
        q = request.query_params
        limit = _int_param(request, "limit") or 0
        result = await self.registry.list(
            t.rt, t.namespace, label_selector=q.get("labelSelector", ""), field_selector=q.get("fieldSelector", ""),
            limit=max(limit, 0), continue_token=q.get("continue", ""), resource_version=q.get("resourceVersion", ""),
            resource_version_match=q.get("resourceVersionMatch", ""))
        return json_response(self._shape_list(request, t.rt, result))

    async def create(self, request: Request, t: Target) -> Response:
        if t.rt.namespaced and t.namespace is None:
            raise errors.method_not_allowed("the server does not allow this method on the requested resource")
        mt, raw = await self.body(request)
        opts = self.write_options(request)
        obj = await self.registry.create(t.rt, t.namespace, codec.decode_body(mt, raw), opts)
        return json_response(self._shape(request, t.rt, obj), 201, opts.warnings)

    async def update(self, request: Request, t: Target) -> Response:
        mt, raw = await self.body(request)
        opts = self.write_options(request)
        obj, created = await self.registry.update(t.rt, t.namespace, t.name, codec.decode_body(mt, raw), opts, t.subresource)
        return json_response(self._shape(request, t.rt, obj), 201 if created else 200, opts.warnings)

    async def patch(self, request: Request, t: Target) -> Response:
        mt, raw = await self.body(request, PATCH_TYPES)
        opts = self.write_options(request)
        obj, created = await self.registry.patch(t.rt, t.namespace, t.name, mt, raw, opts, t.subresource)
        return json_response(self._shape(request, t.rt, obj), 201 if created else 200, opts.warnings)

    async def _delete_options(self, request: Request) -> Obj:
        raw = await request.body()
        options: Obj = codec.decode_body(request.headers.get("content-type", ""), raw) if raw.strip() else {}
        q = request.query_params
        if "gracePeriodSeconds" in q:
            options["gracePeriodSeconds"] = _int_param(request, "gracePeriodSeconds")
        if "propagationPolicy" in q:
            options["propagationPolicy"] = q["propagationPolicy"]
        if "orphanDependents" in q:
            options["orphanDependents"] = _query_bool(request, "orphanDependents")
        if q.getlist("dryRun"):
            options["dryRun"] = q.getlist("dryRun")
        return options

    async def delete(self, request: Request, t: Target) -> Response:
        options = await self._delete_options(request)
        opts = self.write_options(request)
        opts.dry_run = opts.dry_run or bool(options.get("dryRun"))
        obj, removed = await self.registry.delete(t.rt, t.namespace, t.name, options, opts)
        if removed and not self.registry.strategy(t.rt).return_deleted_object:
            details = {"name": t.name, "kind": t.rt.plural, "uid": obj["metadata"].get("uid")}
            if t.rt.group:
                details["group"] = t.rt.group
            return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                  "details": details})
        # Upstream answers 202 only to the legacy orphanDependents=false, not to propagationPolicy.
        status = 202 if not removed and options.get("orphanDependents") is False else 200
        return json_response(self._shape(request, t.rt, obj), status)

    async def delete_collection(self, request: Request, t: Target) -> Response:
        options = await self._delete_options(request)
        opts = self.write_options(request)
        opts.dry_run = opts.dry_run or bool(options.get("dryRun"))
        q = request.query_params
        result = await self.registry.delete_collection(t.rt, t.namespace, options, opts,
                                                       q.get("labelSelector", ""), q.get("fieldSelector", ""))
        return json_response(self._shape_list(request, t.rt, result))

    async def _subresource(self, request: Request, t: Target, method: str) -> Response:
        kind = t.rt.subresources[t.subresource]
        if t.subresource in ("status", "finalize"):
            sub = "status" if t.subresource == "status" else ""
            if method == "GET":
                return json_response(self._shape(request, t.rt, await self.registry.get(t.rt, t.namespace, t.name)))
            if method == "PUT":
                if t.subresource == "finalize":
                    return await self._finalize(request, t)
                return await self.update(request, Target(t.rt, t.namespace, t.name, sub))
            if method == "PATCH" and sub:
                return await self.patch(request, Target(t.rt, t.namespace, t.name, sub))
            raise errors.method_not_allowed()
        if kind == "Scale":
            return await subresources.scale(self, request, t, method)
        if t.subresource in _CREATE_ONLY:
            if method != "POST":
                raise errors.method_not_allowed()
            return await _CREATE_ONLY[t.subresource](self, request, t)
        if t.subresource in ("log", "exec", "attach", "portforward") and self.pod_proxy is not None:
            return await self.pod_proxy.http(request, t, method)
        raise APIError(404, "NotFound", f"the server could not find the requested resource ({t.subresource} is not served by boxkube yet)")

    async def _finalize(self, request: Request, t: Target) -> Response:
        """Namespaces' finalize subresource: replaces spec.finalizers only."""
        mt, raw = await self.body(request)
        wanted = (codec.decode_body(mt, raw).get("spec") or {}).get("finalizers") or []
        opts = self.write_options(request)

        def mutate(ns: Obj) -> Obj:
            ns.setdefault("spec", {})["finalizers"] = wanted
            return ns
        obj = await self.registry.guaranteed_update(t.rt, None, t.name, mutate, opts, subresource="finalize")
        return json_response(obj)

    # -- watch ----------------------------------------------------------------

    async def watch(self, request: Request, t: Target, name: str = "") -> Response:
        q = request.query_params
        field_selector = q.get("fieldSelector", "")
        if name:
            field_selector = ",".join(filter(None, [field_selector, f"metadata.name={name}"]))
        match = self.registry.watch_matcher(t.rt, q.get("labelSelector", ""), field_selector)
        rv = q.get("resourceVersion", "")
        send_initial = q.get("sendInitialEvents")
        bookmarks = _query_bool(request, "allowWatchBookmarks")
        if send_initial is not None:
            if q.get("resourceVersionMatch") != "NotOlderThan":
                raise errors.invalid("ListOptions", "", [errors.field_cause(
                    "resourceVersionMatch", "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                    "FieldValueForbidden")])
            if send_initial.lower() in ("true", "1") and not bookmarks:
                raise errors.invalid("ListOptions", "", [errors.field_cause(
                    "allowWatchBookmarks", "Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true",
                    "FieldValueForbidden")])
        initial = send_initial.lower() in ("true", "1") if send_initial is not None else rv in ("", "0")
        timeout = _int_param(request, "timeoutSeconds")
        if timeout is None:
            timeout = random.randint(1800, 3600)   # upstream: min-request-timeout (1800s) to twice that
        as_ = _accept_as(request)
        prefix = t.rt.key(t.namespace)
        if initial:
            listed = await self.registry.list(t.rt, t.namespace, label_selector=q.get("labelSelector", ""),
                                              field_selector=field_selector)
            start, initial_items = int(listed.resource_version), listed.items
            if rv not in ("", "0"):
                start = max(start, self.registry._parse_rv(rv))
        else:
            start, initial_items = self.registry._parse_rv(rv), []
        sub = self.registry.cache.subscribe(prefix, start)
        encode = self._encoder(t.rt, as_, request.query_params.get("includeObject", "Metadata"))

        async def stream() -> AsyncIterator[bytes]:
            try:
                for obj in initial_items:
                    obj.setdefault("kind", t.rt.kind)
                    obj.setdefault("apiVersion", t.rt.group_version)
                    yield encode("ADDED", obj)
                if send_initial is not None and initial:
                    yield self._bookmark(t.rt, str(start), initial_end=True)
                loop = asyncio.get_running_loop()
                deadline = loop.time() + timeout
                next_bookmark = self._next_bookmark(loop.time(), deadline) if bookmarks else None
                while True:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        return
                    wait = remaining if next_bookmark is None else max(0.0, min(remaining, next_bookmark - loop.time()))
                    try:
                        change = await sub.next(wait)
                    except Compacted as e:
                        yield encode("ERROR", errors.expired(f"too old resource version: {e.requested} ({e.compacted})").status())
                        return
                    except EOFError:
                        return
                    if change is None:
                        if next_bookmark is not None and loop.time() >= next_bookmark:
                            yield self._bookmark(t.rt, str(sub.revision))
                            next_bookmark = self._next_bookmark(loop.time(), deadline)
                        continue
                    line = self._event_line(change, match, encode, as_)
                    if line:
                        yield line
            finally:
                sub.close()

        return StreamingResponse(stream(), media_type="application/json",
                                 headers={"Cache-Control": "no-cache, private", "X-Content-Type-Options": "nosniff"})

    def _encoder(self, rt: ResourceType, as_: str, include: str):
        first = [True]     # upstream sends a Table's column definitions with the first event only

        def encode(kind: str, obj: Obj) -> bytes:
            if kind != "ERROR" and kind != "BOOKMARK":
                if as_ == "Table":
                    obj = tables.to_table(rt, [obj], include_object=include, no_headers=not first[0])
                    first[0] = False
                elif as_.startswith("PartialObjectMetadata"):
                    obj = _partial(obj)
            return codec.dumps({"type": kind, "object": obj}) + b"\n"
        return encode

    @staticmethod
    def _event_line(change: Change, match, encode, as_: str) -> bytes | None:
        """The watch event a storage change becomes for this watcher (None: not for it).

        With a selector, an object that starts matching is ADDED and one that stops
        matching is DELETED (its previous state, at the new resourceVersion), as
        upstream's cacher does.
        """
        if change.type == "DELETE":
            if match is None or match(change.obj):
                return change.encoded("DELETED") if not as_ else encode("DELETED", change.obj)
            return None
        now_ok = match is None or match(change.obj)
        was_ok = change.prev is not None and (match is None or match(change.prev))
        if now_ok:
            kind = "MODIFIED" if was_ok else "ADDED"
            return change.encoded(kind) if not as_ else encode(kind, change.obj)
        if was_ok:
            gone = dict(change.prev)
            gone["metadata"] = dict(gone["metadata"], resourceVersion=str(change.revision))
            return encode("DELETED", gone)
        return None

    def _next_bookmark(self, now: float, deadline: float) -> float | None:
        """Every bookmark interval, and last 2 s before the deadline, so a client that re-watches on
        timeout resumes from a fresh resourceVersion (upstream cacheWatcher.nextBookmarkTime)."""
        at = min(now + self.bookmark_interval, deadline - 2)
        return at if at > now else None     # strictly: uvloop's clock ticks in milliseconds

    @staticmethod
    def _bookmark(rt: ResourceType, rv: str, initial_end: bool = False) -> bytes:
        meta: Obj = {"resourceVersion": rv}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return codec.dumps({"type": "BOOKMARK", "object": {"kind": rt.kind, "apiVersion": rt.group_version,
                                                            "metadata": meta}}) + b"\n"


# Subresources that are a POST of another kind acting on the parent (upstream's NamedCreater storages).
_CREATE_ONLY = {"binding": subresources.bind, "eviction": eviction.evict}


def _partial(obj: Obj) -> Obj:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata", {})}
