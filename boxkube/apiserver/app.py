"""The API server application: routes, authentication, and the background loops it owns."""
from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from boxkube.apiserver import codec, discovery, errors, openapi
from boxkube.apiserver.allocators import ClusterIPs, NodePorts
from boxkube.apiserver.bootstrap import bootstrap
from boxkube.apiserver.errors import APIError
from boxkube.apiserver.handlers import Handlers, error_response, json_response, parse_path
from boxkube.apiserver.podproxy import PodProxy
from boxkube.apiserver.registry import Registry
from boxkube.apiserver.strategies.base import Admission
from boxkube.apiserver.watchcache import WatchCache
from boxkube.storage.errors import Unavailable
from boxkube.storage.etcd import EtcdStore

log = logging.getLogger(__name__)

# Paths any client may read without a token, as upstream's system:public-info-viewer role allows.
PUBLIC_PATHS = ("/healthz", "/livez", "/readyz", "/version")


@dataclass
class ServerConfig:
    etcd_servers: str = "http://127.0.0.1:2379"
    token: str | None = None                  # bearer token every API request must carry; None: no auth
    service_cidr: str = "10.96.0.0/12"
    node_port_range: tuple[int, int] = (30000, 32767)
    compaction_interval: float = 300.0        # seconds; 0 disables (upstream default: 5 minutes)
    bookmark_interval: float = 60.0
    advertise_address: str = "127.0.0.1"
    advertise_port: int = 6443
    admission: Admission = Admission()


class BearerAuth:
    """Pure ASGI middleware: every path but the public ones needs `Authorization: Bearer <token>`."""

    def __init__(self, app: ASGIApp, token: str):
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and not scope["path"].startswith(PUBLIC_PATHS):
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                if scope["type"] == "websocket":
                    await _refuse_websocket(scope, receive, send, errors.unauthorized())
                else:
                    await error_response(errors.unauthorized())(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _refuse_websocket(scope: Scope, receive: Receive, send: Send, e: APIError) -> None:
    ws = WebSocket(scope, receive, send)
    try:
        await ws.send_denial_response(error_response(e))
    except RuntimeError:
        await ws.close(code=1008)


class ResourceRouter:
    """Pure ASGI fast path for the resource API (/api/v1/..., /apis/<group>/<version>/...).

    Nearly every request is one of these; sending them straight to the handlers
    skips FastAPI's routing and dependency solving (a quarter of a create's CPU
    when measured). Discovery, OpenAPI and health stay FastAPI routes.
    """

    def __init__(self, app: ASGIApp, resource: Any, websocket: Any = None):
        self.app, self.resource, self.websocket = app, resource, websocket

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A websocket upgrade of a resource path (pods/exec): the handler's, or refused with a Status."""
        target = _resource_target(scope["path"])
        try:
            if target is None:
                raise APIError(404, "NotFound", "the server could not find the requested resource")
            await self.websocket(scope, receive, send, *target)
        except APIError as e:
            await _refuse_websocket(scope, receive, send, e)
        except Exception as e:
            log.exception("internal error on websocket %s", scope["path"])
            with contextlib.suppress(Exception):
                await _refuse_websocket(scope, receive, send, errors.internal(str(e)))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and self.websocket is not None:
            await self._websocket(scope, receive, send)
            return
        target = _resource_target(scope["path"]) if scope["type"] == "http" else None
        if target is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await self.resource(request, *target)
        except APIError as e:
            response = error_response(e)
        except Unavailable as e:
            response = error_response(APIError(503, "ServiceUnavailable", str(e)))
        except Exception as e:
            log.exception("internal error on %s %s", request.method, scope["path"])
            response = error_response(errors.internal(str(e)))
        await response(scope, receive, send)


def _resource_target(path: str) -> tuple[str, str, str] | None:
    """(group, version, rest) of a resource path with something after the version, else None."""
    if path.startswith("/api/v1/"):
        return "", "v1", path[len("/api/v1/"):]
    if path.startswith("/apis/"):
        parts = path[len("/apis/"):].split("/", 2)
        if len(parts) == 3 and parts[0] and parts[1]:
            return parts[0], parts[1], parts[2]
    return None


class Compactor:
    """Compacts etcd every interval to the revision seen one interval earlier, as kube-apiserver does,
    so a client always has at least one interval of history to resume a watch from."""

    def __init__(self, store: EtcdStore, cache: WatchCache, interval: float):
        self.store, self.cache, self.interval = store, cache, interval

    async def run(self) -> None:
        previous = 0
        while True:
            await asyncio.sleep(self.interval)
            try:
                if previous:
                    await self.store.compact(previous)
                    self.cache.compacted(previous)
                    log.info("compacted etcd at revision %d", previous)
                previous = await self.store.revision()
            except Exception as e:   # already compacted, or etcd briefly away: try next round
                log.warning("compaction failed: %s", e)

    async def compact_now(self) -> int:
        """Compact to the current revision (tests and `boxkube` maintenance)."""
        revision = await self.store.revision()
        await self.store.compact(revision)
        self.cache.compacted(revision)
        return revision


def create_app(config: ServerConfig) -> FastAPI:
    store = EtcdStore(config.etcd_servers)
    cache = WatchCache(store)
    registry = Registry(store, cache, ClusterIPs(store, config.service_cidr), NodePorts(store, *config.node_port_range),
                        config.admission)
    handlers = Handlers(registry, config.bookmark_interval)
    pod_proxy = handlers.pod_proxy = PodProxy(registry, config.token)
    compactor = Compactor(store, cache, config.compaction_interval)
    state: dict[str, Any] = {"ready": False}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        tasks: list[asyncio.Task] = []
        await _wait_for_etcd(store)
        await cache.start()
        await registry.start()
        await bootstrap(registry, config)
        if config.compaction_interval > 0:
            tasks.append(asyncio.create_task(compactor.run(), name="compactor"))
        state["ready"] = True
        try:
            yield
        finally:
            state["ready"] = False
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await pod_proxy.close()
            await registry.stop()
            await cache.stop()
            await store.close()

    app = FastAPI(title="boxkube", openapi_url=None, docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.registry, app.state.compactor = registry, compactor

    @app.exception_handler(APIError)
    async def api_error(request: Request, e: APIError) -> Response:
        return error_response(e)

    @app.exception_handler(Unavailable)
    async def storage_down(request: Request, e: Unavailable) -> Response:
        return error_response(APIError(503, "ServiceUnavailable", str(e)))

    @app.exception_handler(404)
    async def no_route(request: Request, e: Exception) -> Response:
        return error_response(APIError(404, "NotFound", "the server could not find the requested resource"))

    @app.exception_handler(Exception)
    async def crash(request: Request, e: Exception) -> Response:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return error_response(errors.internal(str(e)))

    for path in ("/healthz", "/livez"):
        app.add_api_route(path, lambda: Response("ok", media_type="text/plain"), methods=["GET"])

    @app.get("/readyz")
    async def readyz() -> Response:
        if not state["ready"]:
            return Response("[-]etcd not ready\nreadyz check failed", status_code=503, media_type="text/plain")
        return Response("ok", media_type="text/plain")

    @app.get("/version")
    async def version() -> Response:
        return json_response(discovery.version_info())

    def discovery_response(request: Request, legacy: bool) -> Response:
        version = discovery.aggregated_version(request.headers.get("accept"))
        if version is None:
            return json_response(discovery.api_versions() if legacy else discovery.api_group_list())
        media_type = discovery.AGGREGATED_V2 if version == "v2" else discovery.AGGREGATED_V2BETA1
        return Response(codec.dumps(discovery.aggregated_discovery(legacy, version)), media_type=media_type,
                        headers={"Vary": "Accept"})

    @app.get("/api")
    async def api(request: Request) -> Response:
        return discovery_response(request, legacy=True)

    @app.get("/apis")
    async def apis(request: Request) -> Response:
        return discovery_response(request, legacy=False)

    def raw(result: tuple[int, dict[str, str], bytes]) -> Response:
        status, headers, body = result
        return Response(body, status_code=status, headers=headers)

    @app.get("/openapi/v3")
    async def openapi_index(request: Request) -> Response:
        return raw(openapi.v3_index_response(request.headers.get("if-none-match")))

    @app.get("/openapi/v3/{key:path}")
    async def openapi_doc(request: Request, key: str) -> Response:
        h = request.headers
        return raw(openapi.v3_response(key, request.query_params.get("hash"), h.get("accept"), h.get("if-none-match")))

    @app.get("/openapi/v2")
    async def openapi_v2(request: Request) -> Response:
        return raw(openapi.v2_response(request.headers.get("accept"), request.headers.get("if-none-match")))

    @app.api_route("/api/v1", methods=["GET"])
    async def core_discovery() -> Response:
        return json_response(discovery.api_resource_list("", "v1"))

    @app.get("/apis/{group}/{version}")
    async def group_version_discovery(group: str, version: str) -> Response:
        body = discovery.api_resource_list(group, version)
        if body is None:
            raise APIError(404, "NotFound", "the server could not find the requested resource")
        return json_response(body)

    @app.get("/apis/{group}")
    async def group_discovery(group: str) -> Response:
        body = discovery.api_group(group)
        if body is None:
            raise APIError(404, "NotFound", "the server could not find the requested resource")
        return json_response(body)

    async def _resource(request: Request, group: str, version: str, rest: str) -> Response:
        segments = [s for s in rest.split("/") if s]
        if not segments:
            body = discovery.api_resource_list(group, version)
            if body is None or request.method != "GET":
                raise APIError(404, "NotFound", "the server could not find the requested resource")
            return json_response(body)
        return await handlers.dispatch(request, parse_path(group, version, segments))

    async def _websocket(scope: Scope, receive: Receive, send: Send, group: str, version: str, rest: str) -> None:
        segments = [s for s in rest.split("/") if s]
        t = parse_path(group, version, segments) if segments else None
        if t is None or t.rt.plural != "pods" or t.subresource not in ("exec", "attach", "portforward"):
            raise APIError(400, "BadRequest", "websocket upgrades are served for pods/exec only")
        await pod_proxy.websocket(scope, receive, send, t)

    app.add_middleware(ResourceRouter, resource=_resource, websocket=_websocket)
    if config.token:   # added last: outermost, so authentication comes first
        app.add_middleware(BearerAuth, token=config.token)
    return app


async def _wait_for_etcd(store: EtcdStore, attempts: int = 60) -> None:
    for i in range(attempts):
        try:
            await store.revision()
            return
        except Exception as e:
            if i == attempts - 1:
                raise
            log.info("waiting for etcd: %s", e)
            await asyncio.sleep(0.5)
