"""The asyncio API client: REST verbs, subresources and watch for any resource.

Objects are plain dicts of Kubernetes JSON. Every method takes the resource's
descriptor (`ResourceType`, see boxkube.client.resources) first; namespaced
resources need a namespace, except for list and watch where none means all
namespaces. A failed request raises `ApiError` with the server's `Status`.

Retries are made only where they cannot do a request twice: a request the
server answered with 429 or 5xx and a Retry-After header (it did not act on
it), a request whose connection could not be opened, and a GET whose
connection broke.

Connections and concurrency are bounded (see ApiClient): a burst of requests
waits its turn in the client, in order, instead of opening a connection each
or timing out in the connection pool. A watch holds a connection for its
whole life and is not counted as a request in flight.

HTTP is aiohttp's: its C parser costs the client about a quarter of the CPU
per request that httpx did (0.37 vs 1.4 ms measured on this project's 2-core
machines), and every component of the cluster is a client of the API server.
Failures to get an answer raise `TransportError` (an OSError).
"""
from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, NamedTuple

import aiohttp

import boxkube
from boxkube.api import jsonio
from boxkube.client.config import ClientConfig
from boxkube.client.errors import ApiError, TransportError
from boxkube.client.resources import ResourceType, resource, resource_path

log = logging.getLogger(__name__)

Obj = dict[str, Any]

PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
}

# Watch event types, as in the JSON stream.
ADDED, MODIFIED, DELETED, BOOKMARK, ERROR = "ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"

# Seconds to wait before retry n (0-based) when the server gives no Retry-After.
_RETRY_BASE, _RETRY_CAP = 0.05, 1.0
DEFAULT_MAX_CONNECTIONS = 100
# Idle connections are closed after this long: well before the API server closes them (boxkube's and
# upstream's after 90 s), so a request never goes out on a connection the server is closing.
_KEEPALIVE_SECONDS = 30.0


class ClientClosed(RuntimeError):
    """A request to a closed client (or one that was waiting for its turn when the client was closed).
    Nothing was sent."""


class WatchEvent(NamedTuple):
    type: str       # ADDED, MODIFIED, DELETED or BOOKMARK
    object: Obj


class Watch:
    """A watch's event stream: `async for type, obj in watch`, ended by the server or `aclose()`.

    An ERROR event (410 Gone when the resourceVersion is compacted) raises ApiError.
    Use `async with client.watch(...) as events:` to close the connection when
    leaving the loop early.
    """

    def __init__(self, client: "ApiClient", path: str, params: list[tuple[str, str]], read_timeout: float | None):
        self._client, self._path, self._params, self._read_timeout = client, path, params, read_timeout
        self._events: AsyncIterator[WatchEvent] | None = None

    def __aiter__(self) -> "Watch":
        return self

    async def __anext__(self) -> WatchEvent:
        if self._events is None:
            self._events = self._stream()
        return await self._events.__anext__()

    async def aclose(self) -> None:
        if self._events is not None:
            await self._events.aclose()   # type: ignore[attr-defined]

    async def __aenter__(self) -> "Watch":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _stream(self) -> AsyncIterator[WatchEvent]:
        if self._client.closed:
            raise ClientClosed(f"watch {self._path}: the client is closed")
        http = self._client._http
        async with http.send("GET", self._path, self._params, None, {}, http.timeout(self._read_timeout)) as response:
            if response.status >= 300:
                raise ApiError.from_response(response.status, await response.read())
            # Lines are split here rather than by aiohttp's readline, which refuses lines over 128 KiB
            # (an event of a large object is one line).
            pending = b""
            while True:
                chunk = await response.content.readany()
                if not chunk:
                    return
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    event = jsonio.loads(line)
                    if event.get("type") == ERROR:
                        raise ApiError(event.get("object") or {"code": 500, "message": "watch ERROR event without a Status"})
                    yield WatchEvent(event["type"], event["object"])


class ApiClient:
    """An asyncio client of one API server. Use `async with` or `await close()`.

    `ApiClient(ClientConfig(server, token, ca_data=ca))` or
    `ApiClient.from_kubeconfig(path, context)`. `user_agent` names the program
    (the server takes it as the default field manager).

    Limits:
    - `max_connections`: connections open to the server at once, all kept
      alive between requests (a request beyond them would pay for a new TLS
      connection). Watches count here.
    - `max_concurrent_requests` (None: no limit): requests in flight through
      this client object at once; the others wait their turn, first come first
      served, for as long as it takes. Keep it below `max_connections` minus the
      watches, so a request that has its turn finds a connection at once.
    - `pool_timeout`: how long a request that has its turn waits for a free
      connection (and for opening it) before failing with a TransportError
      that was not sent (so it is retried); `timeout` is for the request
      itself (opening the connection, and each wait for the answer's bytes).
    `limited(n)` gives a view over the same connections with a cap of its own,
    for requests that must not wait behind others (see there).
    """

    def __init__(self, config: ClientConfig, *, user_agent: str | None = None, timeout: float = 30.0,
                 max_retries: int = 5, max_connections: int = DEFAULT_MAX_CONNECTIONS,
                 max_concurrent_requests: int | None = None, pool_timeout: float = 30.0):
        if max_connections < 1 or (max_concurrent_requests is not None and max_concurrent_requests < 1):
            raise ValueError("max_connections and max_concurrent_requests must be at least 1")
        self.config = config
        self.timeout = timeout
        self.max_retries = max_retries
        self.pool_timeout = pool_timeout
        headers = {"Accept": "application/json",
                   "User-Agent": user_agent or f"boxkube-client/{boxkube.__version__}"}
        if config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        self._http = _Http(config, headers, max_connections, timeout, pool_timeout)
        self._slots = asyncio.Semaphore(max_concurrent_requests) if max_concurrent_requests else None
        self._owns_http = True
        self._closed = False

    def limited(self, max_concurrent_requests: int) -> "ApiClient":
        """This client with its own cap on requests in flight, over the same connections and settings.

        For a kind of request that comes in bursts and must not make others wait
        behind it (the scheduler's bindings are capped so its Lease renewals
        still get through; a node agent caps its Events apart from pod status
        writes). `close()` of the view refuses its waiting and later requests
        (ClientClosed) and leaves the connections to their owner.
        """
        if max_concurrent_requests < 1:
            raise ValueError("max_concurrent_requests must be at least 1")
        view = copy.copy(self)
        view._slots = asyncio.Semaphore(max_concurrent_requests)
        view._owns_http = False
        view._closed = False
        return view

    @classmethod
    def from_kubeconfig(cls, path: str | os.PathLike[str] | None = None, context: str | None = None,
                        **kwargs: Any) -> "ApiClient":
        """A client for `context` (default: current) of the kubeconfig kubectl would read (see ClientConfig)."""
        return cls(ClientConfig.from_kubeconfig(path, context), **kwargs)

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        self._closed = True
        if self._owns_http:
            await self._http.close()

    async def __aenter__(self) -> "ApiClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the request --------------------------------------------------------

    async def request(self, method: str, path: str, *, params: Sequence[tuple[str, str]] = (),
                      body: Any = None, content_type: str = "application/json") -> Obj:
        """One API request; the decoded JSON answer. `body` is JSON-encoded unless str or bytes."""
        headers = {}
        content: bytes | None = None
        if body is not None:
            content = body.encode() if isinstance(body, str) else body if isinstance(body, bytes) else jsonio.dumps(body)
            headers["Content-Type"] = content_type
        attempt = 0
        while True:
            try:
                answer = await self._send(method, path, params, content, headers)
            except TransportError as e:
                if attempt >= self.max_retries or not (method == "GET" or not e.sent):
                    raise
                delay = min(_RETRY_BASE * 2 ** attempt, _RETRY_CAP)
                log.debug("%s %s: %s; retrying in %.2fs", method, path, e, delay)
            else:
                if answer.status < 300:
                    return jsonio.loads(answer.body) if answer.body else {}
                delay = answer.retry_after()
                if delay is None or attempt >= self.max_retries:
                    raise ApiError.from_response(answer.status, answer.body)
                log.debug("%s %s: %d, retrying after %.2fs", method, path, answer.status, delay)
            attempt += 1
            await asyncio.sleep(delay)   # without a slot: a request backing off must not hold up the others

    async def _send(self, method: str, path: str, params: Sequence[tuple[str, str]], content: bytes | None,
                    headers: dict[str, str]) -> "_Answer":
        """One attempt, in its turn."""
        if self._slots is None:
            return await self._checked_send(method, path, params, content, headers)
        async with self._slots:
            return await self._checked_send(method, path, params, content, headers)

    async def _checked_send(self, method: str, path: str, params: Sequence[tuple[str, str]],
                            content: bytes | None, headers: dict[str, str]) -> "_Answer":
        # checked after waiting for a turn: whoever closed the client meant its queued requests too
        if self._closed:
            raise ClientClosed(f"{method} {path}: the client is closed")
        http = self._http
        async with http.send(method, path, params, content, headers, http.request_timeout) as response:
            return _Answer(response.status, response.headers.get("Retry-After"), await response.read())

    # -- reads --------------------------------------------------------------

    async def get(self, rt: ResourceType, name: str, namespace: str | None = None, *, subresource: str = "") -> Obj:
        return await self.request("GET", resource_path(rt, _ns(rt, namespace), name, subresource))

    async def list(self, rt: ResourceType, namespace: str | None = None, *, label_selector: str = "",
                   field_selector: str = "", limit: int = 0, continue_: str = "", resource_version: str = "",
                   resource_version_match: str = "") -> Obj:
        """One page of a list (all of it without `limit`). Items get the list's kind and apiVersion,
        as client-go's dynamic client gives them (the server sends items without them)."""
        params = _params(labelSelector=label_selector, fieldSelector=field_selector, limit=limit or None,
                         resourceVersion=resource_version, resourceVersionMatch=resource_version_match)
        params += _params(**{"continue": continue_})
        listed = await self.request("GET", resource_path(rt, namespace), params=params)
        for item in listed.get("items") or []:
            item.setdefault("apiVersion", rt.group_version)
            item.setdefault("kind", rt.kind)
        return listed

    async def list_all(self, rt: ResourceType, namespace: str | None = None, *, label_selector: str = "",
                       field_selector: str = "", page_size: int = 500) -> Obj:
        """Every item, fetched `page_size` at a time, as one list at the first page's resourceVersion.

        If the continue token expires midway (410, compaction), the list is read
        again in one request, as client-go's pager does.
        """
        first = await self.list(rt, namespace, label_selector=label_selector, field_selector=field_selector,
                                limit=page_size)
        items = list(first.get("items") or [])
        token = (first.get("metadata") or {}).get("continue", "")
        while token:
            try:
                page = await self.list(rt, namespace, label_selector=label_selector, field_selector=field_selector,
                                       limit=page_size, continue_=token)
            except ApiError as e:
                if not e.is_gone:
                    raise
                log.info("list of %s: continue token expired, listing everything at once", rt.qualified)
                return await self.list(rt, namespace, label_selector=label_selector, field_selector=field_selector)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue", "")
        first["items"] = items
        first["metadata"] = {k: v for k, v in (first.get("metadata") or {}).items() if k not in ("continue", "remainingItemCount")}
        return first

    def watch(self, rt: ResourceType, namespace: str | None = None, *, name: str = "", resource_version: str = "",
              label_selector: str = "", field_selector: str = "", allow_bookmarks: bool = True,
              timeout_seconds: int | None = None, send_initial_events: bool | None = None) -> Watch:
        """Changes after `resource_version` (without one: ADDED for every object first, then changes).

        `name` watches one object. `send_initial_events` asks for the initial
        objects and a bookmark marking their end (resourceVersionMatch=NotOlderThan).
        """
        if name:
            field_selector = ",".join(filter(None, [field_selector, f"metadata.name={name}"]))
        params = _params(watch="true", resourceVersion=resource_version, labelSelector=label_selector,
                         fieldSelector=field_selector, allowWatchBookmarks=allow_bookmarks or None,
                         timeoutSeconds=timeout_seconds)
        if send_initial_events is not None:
            params += _params(sendInitialEvents=send_initial_events, resourceVersionMatch="NotOlderThan")
        # A quiet watch sends nothing for a while; give up only well after the server should have ended it.
        read_timeout = timeout_seconds + self.timeout if timeout_seconds else None
        return Watch(self, resource_path(rt, namespace), params, read_timeout)

    # -- writes -------------------------------------------------------------

    async def create(self, rt: ResourceType, body: Obj, namespace: str | None = None, *, subresource: str = "",
                     name: str = "", **options: Any) -> Obj:
        """POST `body` (namespace default: the body's). Options: dry_run, field_manager, field_validation.

        With `subresource` (e.g. a pod's "binding"), POST to NAME/SUBRESOURCE.
        """
        namespace = namespace or (body.get("metadata") or {}).get("namespace")
        path = resource_path(rt, _ns(rt, namespace), name, subresource)
        return await self.request("POST", path, params=_write_params(**options), body=body)

    async def replace(self, rt: ResourceType, body: Obj, namespace: str | None = None, *, subresource: str = "",
                      **options: Any) -> Obj:
        """PUT `body` over the object it names (a stale metadata.resourceVersion: 409 Conflict)."""
        meta = body.get("metadata") or {}
        path = resource_path(rt, _ns(rt, namespace or meta.get("namespace")), meta.get("name", ""), subresource)
        return await self.request("PUT", path, params=_write_params(**options), body=body)

    update = replace

    async def patch(self, rt: ResourceType, name: str, patch: Any, namespace: str | None = None, *,
                    patch_type: str = "merge", subresource: str = "", **options: Any) -> Obj:
        """PATCH with `patch_type` merge, strategic, json or apply (server-side apply:
        give field_manager; force=True takes over conflicting fields)."""
        if patch_type not in PATCH_TYPES:
            raise ValueError(f"patch_type must be one of {', '.join(PATCH_TYPES)}, not {patch_type!r}")
        path = resource_path(rt, _ns(rt, namespace), name, subresource)
        return await self.request("PATCH", path, params=_write_params(**options), body=patch,
                                  content_type=PATCH_TYPES[patch_type])

    async def apply(self, rt: ResourceType, body: Obj, namespace: str | None = None, *, field_manager: str,
                    force: bool = False, subresource: str = "", **options: Any) -> Obj:
        """Server-side apply of `body` (the fields `field_manager` wants to own)."""
        meta = body.get("metadata") or {}
        return await self.patch(rt, meta.get("name", ""), body, namespace or meta.get("namespace"),
                                patch_type="apply", subresource=subresource, field_manager=field_manager,
                                force=force, **options)

    async def delete(self, rt: ResourceType, name: str, namespace: str | None = None, *,
                     propagation_policy: str | None = None, grace_period_seconds: int | None = None,
                     preconditions: Mapping[str, str] | None = None, dry_run: bool = False) -> Obj:
        """DELETE; the answer is the object (still there while finalizers or a grace period hold it,
        or as it was) or a Success Status. `preconditions`: {"uid": ..., "resourceVersion": ...}."""
        options = _delete_options(propagation_policy, grace_period_seconds, preconditions, dry_run)
        return await self.request("DELETE", resource_path(rt, _ns(rt, namespace), name), body=options)

    async def delete_collection(self, rt: ResourceType, namespace: str | None = None, *, label_selector: str = "",
                                field_selector: str = "", propagation_policy: str | None = None,
                                grace_period_seconds: int | None = None, dry_run: bool = False) -> Obj:
        options = _delete_options(propagation_policy, grace_period_seconds, None, dry_run)
        params = _params(labelSelector=label_selector, fieldSelector=field_selector)
        return await self.request("DELETE", resource_path(rt, namespace), params=params, body=options)

    # -- subresources -------------------------------------------------------

    async def replace_status(self, rt: ResourceType, body: Obj, namespace: str | None = None, **options: Any) -> Obj:
        """PUT the status subresource: only the body's status is written."""
        return await self.replace(rt, body, namespace, subresource="status", **options)

    update_status = replace_status

    async def patch_status(self, rt: ResourceType, name: str, patch: Any, namespace: str | None = None, *,
                           patch_type: str = "merge", **options: Any) -> Obj:
        return await self.patch(rt, name, patch, namespace, patch_type=patch_type, subresource="status", **options)

    async def get_scale(self, rt: ResourceType, name: str, namespace: str | None = None) -> Obj:
        return await self.get(rt, name, namespace, subresource="scale")

    async def scale(self, rt: ResourceType, name: str, replicas: int, namespace: str | None = None,
                    **options: Any) -> Obj:
        """Set spec.replicas through the scale subresource; the new autoscaling/v1 Scale."""
        return await self.patch(rt, name, {"spec": {"replicas": replicas}}, namespace, subresource="scale", **options)

    async def bind(self, pod: str, namespace: str, node: str, **options: Any) -> Obj:
        """Assign a pending pod to a node (POST pods/NAME/binding), as the scheduler does."""
        binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod, "namespace": namespace},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        return await self.create(resource("pods"), binding, namespace, name=pod, subresource="binding", **options)


def _ns(rt: ResourceType, namespace: str | None) -> str | None:
    if rt.namespaced and not namespace:
        raise ValueError(f"{rt.qualified} are namespaced: give a namespace")
    return namespace if rt.namespaced else None


def _params(**values: Any) -> list[tuple[str, str]]:
    """Query parameters, leaving out the unset (None or "")."""
    out = []
    for key, value in values.items():
        if value is None or value == "":
            continue
        out.append((key, ("true" if value else "false") if isinstance(value, bool) else str(value)))
    return out


def _write_params(dry_run: bool = False, field_manager: str = "", field_validation: str = "",
                  force: bool | None = None) -> list[tuple[str, str]]:
    return _params(dryRun="All" if dry_run else None, fieldManager=field_manager, fieldValidation=field_validation,
                   force=force)


def _delete_options(policy: str | None, grace: int | None, preconditions: Mapping[str, str] | None,
                    dry_run: bool) -> Obj:
    options: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
    if policy:
        options["propagationPolicy"] = policy
    if grace is not None:
        options["gracePeriodSeconds"] = grace
    if preconditions:
        options["preconditions"] = dict(preconditions)
    if dry_run:
        options["dryRun"] = ["All"]
    return options


class _Answer(NamedTuple):
    status: int
    retry_after_header: str | None
    body: bytes

    def retry_after(self) -> float | None:
        """Seconds the server asks us to wait before retrying (429 or 5xx with Retry-After), else None."""
        if self.status != 429 and self.status < 500:
            return None
        try:
            return max(0.0, float(self.retry_after_header or ""))
        except ValueError:
            return None


class _Http:
    """The connections of a client and of its `limited` views: one aiohttp session, made on first
    use because it belongs to the running event loop (a client may be made before the loop runs)."""

    def __init__(self, config: ClientConfig, headers: dict[str, str], max_connections: int, timeout: float,
                 pool_timeout: float):
        self.server = config.server
        self._headers = headers
        self._auth = aiohttp.BasicAuth(config.username, config.password or "") \
            if config.username and not config.token else None
        self._ssl = config.ssl_context() if config.server.startswith("https:") else True
        self._server_hostname = config.tls_server_name
        self._max_connections = max_connections
        self._timeout, self._pool_timeout = timeout, pool_timeout
        self.request_timeout = self.timeout(timeout)
        self._session: aiohttp.ClientSession | None = None

    def timeout(self, read: float | None) -> aiohttp.ClientTimeout:
        """`read`: the longest wait for the answer's next bytes (None: for ever, as a quiet watch needs).
        aiohttp's `connect` covers waiting for a free connection and opening one."""
        return aiohttp.ClientTimeout(total=None, connect=self._pool_timeout, sock_connect=self._timeout,
                                     sock_read=read)

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0, ssl=self._ssl,
                                             keepalive_timeout=_KEEPALIVE_SECONDS)
            self._session = aiohttp.ClientSession(headers=self._headers, auth=self._auth, connector=connector,
                                                  timeout=self.request_timeout)
        return self._session

    @contextlib.asynccontextmanager
    async def send(self, method: str, path: str, params: Sequence[tuple[str, str]], content: bytes | None,
                   headers: dict[str, str], timeout: aiohttp.ClientTimeout) -> AsyncIterator[aiohttp.ClientResponse]:
        """The response, open while the block reads it; failures to get it become TransportError."""
        try:
            async with self._session_now().request(method, self.server + path, params=list(params), data=content,
                                                   headers=headers, timeout=timeout,
                                                   server_hostname=self._server_hostname) as response:
                yield response
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as e:
            raise TransportError(f"{method} {path}: {_describe(e)}", sent=False) from e
        except (aiohttp.ClientError, TimeoutError) as e:
            raise TransportError(f"{method} {path}: {_describe(e)}", sent=True) from e

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _describe(e: BaseException) -> str:
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
