"""The node agent's kubelet API: container logs and exec, which the API server proxies to, as to a kubelet.

    GET /containerLogs/{namespace}/{pod}/{container}?follow=&previous=&tailLines=&sinceSeconds=&sinceTime=
                                                     &timestamps=&limitBytes=
        the container's log as plain text (chunked while `follow`ing)
    GET /exec/{namespace}/{pod}/{container}?command=...&stdin=&stdout=&stderr=&tty=   (websocket)
        the command's streams over the channel protocols kubectl speaks (v5.channel.k8s.io, v4, v3, v2,
        channel.k8s.io): one binary message per piece, its first byte the channel (0 stdin, 1 stdout,
        2 stderr, 3 error: the command's end as a Status, 4 terminal resize; v5: [255, channel] closes one)
    GET /healthz

Authentication: every path but /healthz needs `Authorization: Bearer <token>`,
the cluster's token that the API server holds (the agent's own kubeconfig
carries the same one). Upstream's kubelet instead takes the API server's
client certificate and asks the API server (SubjectAccessReview) what its
holder may do; boxkube has one token for the whole cluster, so holding it is
what the agent checks — a pod in the cluster, which can reach the node's
address, cannot read logs or run commands without it. Plain HTTP: the
traffic stays on the cluster's own Docker network between the control-plane
container and the node containers. With no token (an unauthenticated test
API server), nothing is checked, as the API server checks nothing either.

Errors are Kubernetes Status objects with the kubelet's messages, which the
API server passes on to kubectl as they are.
"""
from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from boxkube.agent.runtime.base import ContainerInfo, RuntimeFailure

if TYPE_CHECKING:
    from boxkube.agent.podworker import PodWorker

log = logging.getLogger(__name__)

Obj = dict[str, Any]

# The channel protocols of exec, newest first (k8s.io/apimachinery's remotecommand names).
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255


def status_error(code: int, reason: str, message: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}
    return web.json_response(body, status=code)


def _bool(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "t", "yes")


def _int(request: web.Request, name: str) -> int | None:
    value = request.query.get(name)
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name}: {value!r} is not an integer") from None


def exec_status(command: list[str], code: int) -> Obj:
    """What the error channel carries at the end of a command (v4 and later), as the kubelet writes it."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command "
                       f"[{' '.join(command)}], exit code {code}",
            "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def failure_status(message: str) -> Obj:
    return {"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError",
            "details": {"causes": [{"message": message}]}, "code": 500}


class KubeletServer:
    """The kubelet API of the nodes of one agent group (`find` gives a pod's worker by namespace and name)."""

    def __init__(self, token: str | None, host: str = "0.0.0.0", port: int = 10250,
                 find: Callable[[str, str], "PodWorker | None"] = lambda namespace, name: None):
        self.find, self.host, self.port = find, host, port
        self._expected = f"Bearer {token}".encode() if token else None
        self._runner: web.AppRunner | None = None
        self._sessions: set[asyncio.Task] = set()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self.container_logs)
        app.router.add_route("*", "/exec/{namespace}/{pod}/{container}", self.exec)
        return app

    @staticmethod
    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def start(self) -> int:
        """Listen; the port it got (the one asked for, or a free one for 0)."""
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        server = site._server
        if self.port == 0 and server is not None and server.sockets:     # type: ignore[union-attr]
            self.port = server.sockets[0].getsockname()[1]               # type: ignore[union-attr]
        log.info("kubelet API on %s:%d", self.host, self.port)
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self._expected is not None and request.path != "/healthz":
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, self._expected):
                return status_error(401, "Unauthorized", "Unauthorized")
        return await handler(request)

    # -- finding the container ---------------------------------------------------------

    def _container(self, request: web.Request, previous: bool = False) -> tuple["PodWorker", ContainerInfo]:
        ns, pod, name = (request.match_info[k] for k in ("namespace", "pod", "container"))
        worker = self.find(ns, pod)
        if worker is None:
            raise _Fail(404, "NotFound", f'pod "{pod}" not found')
        if previous:
            info = worker.previous.get(name)
            if info is None or info.state != "exited":
                raise _Fail(400, "BadRequest", f'previous terminated container "{name}" in pod "{pod}" not found')
            return worker, info
        info = worker.current.get(name)
        if info is None:
            reason = (worker.waiting.get(name) or ("ContainerCreating",))[0]
            known = any(c.get("name") == name for key in ("containers", "initContainers", "ephemeralContainers")
                        for c in (worker.pod.get("spec") or {}).get(key) or [])
            if not known:
                raise _Fail(400, "BadRequest", f"container {name} is not valid for pod {pod}")
            raise _Fail(400, "BadRequest", f'container "{name}" in pod "{pod}" is waiting to start: {reason}')
        return worker, info

    # -- logs -----------------------------------------------------------------------------

    async def container_logs(self, request: web.Request) -> web.StreamResponse:
        try:
            worker, info = self._container(request, previous=_bool(request, "previous"))
            follow = _bool(request, "follow")
            tail = _int(request, "tailLines")
            limit = _int(request, "limitBytes")
            since: float | None = None
            if (seconds := _int(request, "sinceSeconds")) is not None:
                since = datetime.now().timestamp() - seconds
            elif request.query.get("sinceTime"):
                since = datetime.fromisoformat(request.query["sinceTime"].replace("Z", "+00:00")).timestamp()
            chunks = worker.node.runtime.logs(info.id, follow=follow and info.state == "running", tail=tail,
                                              since=since, timestamps=_bool(request, "timestamps"))
            first_task = asyncio.ensure_future(_first(chunks))
            # An error (no such container in the engine) shows as one before the answer starts; a quiet
            # followed log must not hold the answer back.
            done, _ = await asyncio.wait([first_task], timeout=0.5)
            first = first_task.result() if done else first_task
        except _Fail as e:
            return status_error(e.code, e.reason, e.message)
        except NotImplementedError as e:
            return status_error(400, "BadRequest", str(e))
        except (RuntimeFailure, OSError) as e:
            return status_error(500, "InternalError", f"failed to get logs: {e}")
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        sent = 0
        try:
            async for chunk in _chain(first, chunks):
                if limit is not None:
                    chunk = chunk[:max(0, limit - sent)]
                if chunk:
                    await response.write(chunk)
                    sent += len(chunk)
                if limit is not None and sent >= limit:
                    break
        except (ConnectionError, RuntimeFailure, OSError) as e:
            log.debug("logs of %s: %s", request.path, e)
        finally:
            if isinstance(first, asyncio.Future):
                first.cancel()
            with contextlib.suppress(Exception):
                await chunks.aclose()      # type: ignore[attr-defined]
        with contextlib.suppress(ConnectionError, RuntimeError):
            await response.write_eof()
        return response

    # -- exec -----------------------------------------------------------------------------

    async def exec(self, request: web.Request) -> web.StreamResponse:
        command = request.query.getall("command", [])
        stdin, tty = _bool(request, "stdin"), _bool(request, "tty")
        try:
            if not command:
                raise _Fail(400, "BadRequest", "you must specify at least 1 command")
            worker, info = self._container(request)
            if info.state != "running":
                raise _Fail(400, "BadRequest", f"container {info.name} is not running")
        except _Fail as e:
            return status_error(e.code, e.reason, e.message)
        ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=True, max_msg_size=0)
        if not ws.can_prepare(request).ok:
            return status_error(400, "BadRequest", "Upgrade request required")
        await ws.prepare(request)
        protocol = ws.ws_protocol or ""
        log.debug("exec %s in %s over %s (offered: %s)", command, request.path, protocol or "no subprotocol",
                  request.headers.get("Sec-WebSocket-Protocol", ""))
        v4 = protocol in PROTOCOLS[:2]
        try:
            session = await worker.node.runtime.exec(info.id, command, stdin=stdin, tty=tty)
        except (NotImplementedError, RuntimeFailure, OSError) as e:
            await self._error(ws, v4, failure_status(f"error executing command in container: {e}"), str(e))
            await ws.close()
            return ws

        async def pump_out() -> None:
            while (piece := await session.read()) is not None:
                stream, data = piece
                await ws.send_bytes(bytes([STDOUT if stream == 1 or tty else STDERR]) + data)

        async def pump_in() -> None:
            async for msg in ws:
                if msg.type != WSMsgType.BINARY or not msg.data:
                    continue
                channel, data = msg.data[0], msg.data[1:]
                if channel == STDIN and stdin:
                    await session.write(data)
                elif channel == RESIZE:
                    with contextlib.suppress(ValueError, TypeError):
                        size = json.loads(data)
                        await session.resize(int(size.get("Width") or 0), int(size.get("Height") or 0))
                elif channel == CLOSE and data[:1] == bytes([STDIN]):
                    await session.close_stdin()
            await session.close_stdin()       # the client went away: nobody writes any more

        reader = asyncio.create_task(pump_in())
        try:
            await pump_out()
            code = await session.exit_code()
            await self._error(ws, v4, exec_status(command, code),
                              "" if code == 0 else f"command terminated with non-zero exit code {code}")
        except (ConnectionError, RuntimeFailure, OSError) as e:
            log.debug("exec in %s: %s", request.path, e)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            await session.close()
            with contextlib.suppress(Exception):
                await ws.close()
        return ws

    @staticmethod
    async def _error(ws: web.WebSocketResponse, v4: bool, status: Obj, text: str) -> None:
        """Write the command's end on the error channel: a Status (v4, v5), else its plain message (if any)."""
        if v4:
            await ws.send_bytes(bytes([ERROR]) + json.dumps(status).encode())
        elif text:
            await ws.send_bytes(bytes([ERROR]) + text.encode())


class _Fail(Exception):
    def __init__(self, code: int, reason: str, message: str):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


_END = object()


async def _first(chunks: Any) -> Any:
    """The first chunk (so that an error shows before the answer starts), or _END."""
    try:
        return await chunks.__anext__()
    except StopAsyncIteration:
        return _END


async def _chain(first: Any, chunks: Any) -> Any:
    if isinstance(first, asyncio.Future):
        first = await first
    if first is _END:
        return
    yield first
    async for chunk in chunks:
        yield chunk
