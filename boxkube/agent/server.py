"""The node agent's kubelet API: container logs, exec, attach and port-forward, which the API server proxies
to, as to a kubelet.

    GET /containerLogs/{namespace}/{pod}/{container}?follow=&previous=&tailLines=&sinceSeconds=&sinceTime=
                                                     &timestamps=&limitBytes=
        the container's log as plain text (chunked while `follow`ing)
    GET /exec/{namespace}/{pod}/{container}?command=...&stdin=&stdout=&stderr=&tty=   (websocket)
        the command's streams over the channel protocols kubectl speaks (v5.channel.k8s.io, v4, v3, v2,
        channel.k8s.io): one binary message per piece, its first byte the channel (0 stdin, 1 stdout,
        2 stderr, 3 error: the command's end as a Status, 4 terminal resize; v5: [255, channel] closes one)
    GET /attach/{namespace}/{pod}/{container}?stdin=&stdout=&stderr=&tty=   (websocket)
        the running container's own stdio (the engine's attach), over the same channels as exec; the
        error channel says Success when the container's output ends, as the kubelet's attach does
    GET /portForward/{namespace}/{pod}?port=N[&port=M...]   (websocket)
        the kubelet's websocket port-forward (v4.channel.k8s.io, or no subprotocol): per port, a data
        channel (2i) and an error channel (2i+1), the first message of each starting with the port as
        two little-endian bytes; a TCP connection to the pod's IP and port per port, its bytes on the data
        channel both ways, a failure on the error channel ("error forwarding port 80 to pod web_default,
        uid ...: dial tcp 10.244.1.5:80: connect: connection refused"). Over v5.channel.k8s.io, [255, 2i]
        half-closes the connection to the pod (boxkube's API server sends it when kubectl ends its side).
        The kubelet connects to localhost inside the pod's network namespace; the agent connects to the
        pod's IP from the node, so a port the pod binds to 127.0.0.1 only is not reachable
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
import os
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from boxkube.agent.runtime.base import ContainerInfo, ExecSession, Runtime, RuntimeFailure

if TYPE_CHECKING:
    from boxkube.agent.podworker import PodWorker

log = logging.getLogger(__name__)

Obj = dict[str, Any]

# The channel protocols of exec, newest first (k8s.io/apimachinery's remotecommand names).
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
# The kubelet's websocket port-forward protocols ("" too), and v5's, whose [255, channel] half-closes.
PORT_FORWARD_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
_CONNECT_TIMEOUT = 10.0


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
        app.router.add_route("*", "/attach/{namespace}/{pod}/{container}", self.attach)
        app.router.add_route("*", "/portForward/{namespace}/{pod}", self.port_forward)
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

    # -- exec and attach -----------------------------------------------------------------

    def _running(self, request: web.Request) -> tuple["PodWorker", ContainerInfo]:
        worker, info = self._container(request)
        if info.state != "running":
            raise _Fail(400, "BadRequest", f"container {info.name} is not running")
        return worker, info

    @staticmethod
    async def _upgrade(request: web.Request) -> web.WebSocketResponse | None:
        ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=True, max_msg_size=0)
        if not ws.can_prepare(request).ok:
            return None
        await ws.prepare(request)
        return ws

    async def exec(self, request: web.Request) -> web.StreamResponse:
        command = request.query.getall("command", [])
        if not command:
            return status_error(400, "BadRequest", "you must specify at least 1 command")
        log.debug("exec %s in %s (offered: %s)", command, request.path, request.headers.get("Sec-WebSocket-Protocol", ""))

        async def ended(session: ExecSession) -> tuple[Obj, str]:
            code = await session.exit_code()
            return exec_status(command, code), "" if code == 0 else f"command terminated with non-zero exit code {code}"

        return await self._stream(
            request, "executing command in",
            lambda runtime, cid: runtime.exec(cid, command, stdin=_bool(request, "stdin"), tty=_bool(request, "tty")),
            ended, until_client_leaves=False)

    async def attach(self, request: web.Request) -> web.StreamResponse:
        async def ended(session: ExecSession) -> tuple[Obj, str]:
            return {"metadata": {}, "status": "Success"}, ""

        return await self._stream(request, "attaching to",
                                  lambda runtime, cid: runtime.attach(cid, stdin=_bool(request, "stdin")),
                                  ended, until_client_leaves=True)

    async def _stream(self, request: web.Request, what: str,
                      start: Callable[[Runtime, str], Awaitable[ExecSession]],
                      ended: Callable[[ExecSession], Awaitable[tuple[Obj, str]]],
                      until_client_leaves: bool) -> web.StreamResponse:
        """A websocket of the channel protocols relaying a running container's session (exec, attach): a
        wrong request is refused with its Status before the upgrade; the session's end goes on the error
        channel."""
        try:
            worker, info = self._running(request)
        except _Fail as e:
            return status_error(e.code, e.reason, e.message)
        ws = await self._upgrade(request)
        if ws is None:
            return status_error(400, "BadRequest", "Upgrade request required")
        v4 = (ws.ws_protocol or "") in PROTOCOLS[:2]
        try:
            session = await start(worker.node.runtime, info.id)
        except (NotImplementedError, RuntimeFailure, OSError) as e:
            await self._error(ws, v4, failure_status(f"error {what} container: {e}"), str(e))
            await ws.close()
            return ws
        try:
            await _pump(ws, session, _bool(request, "stdin"), _bool(request, "tty"),
                        until_client_leaves=until_client_leaves)
            await self._error(ws, v4, *await ended(session))
        except (ConnectionError, RuntimeFailure, OSError) as e:
            log.debug("%s %s: %s", what, request.path, e)
        finally:
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

    # -- port-forward -------------------------------------------------------------------

    async def port_forward(self, request: web.Request) -> web.StreamResponse:
        namespace, name = request.match_info["namespace"], request.match_info["pod"]
        ports: list[int] = []
        values = request.query.getall("port", [])
        if not values:
            return status_error(400, "BadRequest", 'query parameter "port" is required')
        for value in values:
            for p in value.split(","):
                if not p.isdigit() or not 0 < int(p) < 65536:
                    return status_error(400, "BadRequest", f'unable to parse "{value}" as a port')
                ports.append(int(p))
        worker = self.find(namespace, name)
        if worker is None:
            return status_error(404, "NotFound", f'pod "{name}" not found')
        if not worker.pod_ip:
            return status_error(400, "BadRequest", f'pod "{name}" has no IP address yet')
        ws = web.WebSocketResponse(protocols=PORT_FORWARD_PROTOCOLS, autoping=True, max_msg_size=0)
        if not ws.can_prepare(request).ok:
            return status_error(400, "BadRequest", "Upgrade request required")
        await ws.prepare(request)
        forward = _PortForward(ws, worker, ports)
        try:
            await forward.run()
        except (ConnectionError, OSError) as e:
            log.debug("port-forward to %s: %s", request.path, e)
        finally:
            await forward.close()
        return ws


class _PortForward:
    """One websocket's forwarded ports: a TCP connection to the pod for each."""

    def __init__(self, ws: web.WebSocketResponse, worker: "PodWorker", ports: list[int]):
        self.ws, self.worker, self.ports = ws, worker, ports
        self.half_close = ws.ws_protocol == PORT_FORWARD_PROTOCOLS[0]
        loop = asyncio.get_running_loop()
        # Each port's connection once made (None: it failed), for what the client sends meanwhile.
        self.writers: list[asyncio.Future[asyncio.StreamWriter | None]] = [loop.create_future() for _ in ports]

    async def run(self) -> None:
        for i, port in enumerate(self.ports):
            prefix = port.to_bytes(2, "little")
            await self.ws.send_bytes(bytes([2 * i]) + prefix)
            await self.ws.send_bytes(bytes([2 * i + 1]) + prefix)
        pumps = asyncio.ensure_future(asyncio.gather(*(self._pod_to_client(i) for i in range(len(self.ports)))))
        reader = asyncio.ensure_future(self._client_to_pod())
        try:
            # Every port's connection ended (or failed), or the client went away.
            await asyncio.wait([pumps, reader], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pumps, reader):
                task.cancel()
            await asyncio.gather(pumps, reader, return_exceptions=True)

    async def _pod_to_client(self, i: int) -> None:
        port, ip = self.ports[i], self.worker.pod_ip
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), _CONNECT_TIMEOUT)
        except (OSError, asyncio.TimeoutError) as e:
            self.writers[i].set_result(None)
            reason = "i/o timeout" if isinstance(e, asyncio.TimeoutError) else \
                f"connect: {os.strerror(e.errno).lower()}" if e.errno else str(e)
            meta = self.worker.pod.get("metadata") or {}
            message = (f"error forwarding port {port} to pod {meta.get('name')}_{meta.get('namespace')}, "
                       f"uid {meta.get('uid', '')}: dial tcp {ip}:{port}: {reason}")
            log.info("%s", message)
            await self.ws.send_bytes(bytes([2 * i + 1]) + message.encode())
            return
        self.writers[i].set_result(writer)
        while chunk := await reader.read(65536):
            await self.ws.send_bytes(bytes([2 * i]) + chunk)

    async def _client_to_pod(self) -> None:
        async for msg in self.ws:
            if msg.type != WSMsgType.BINARY or not msg.data:
                continue
            channel, data = msg.data[0], msg.data[1:]
            if channel == CLOSE and self.half_close and data and data[0] % 2 == 0 and data[0] // 2 < len(self.ports):
                writer = await self.writers[data[0] // 2]
                if writer is not None and writer.can_write_eof():
                    writer.write_eof()
            elif channel % 2 == 0 and channel // 2 < len(self.ports) and data:
                writer = await self.writers[channel // 2]
                if writer is not None:
                    writer.write(data)
                    await writer.drain()

    async def close(self) -> None:
        for made in self.writers:
            writer = made.result() if made.done() else None
            if writer is not None:
                writer.close()
        with contextlib.suppress(Exception):
            await self.ws.close()


class _Fail(Exception):
    def __init__(self, code: int, reason: str, message: str):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


async def _pump(ws: web.WebSocketResponse, session: ExecSession, stdin: bool, tty: bool,
                until_client_leaves: bool) -> None:
    """The session's output to the client, the client's stdin and resizes to the session, until the output
    ends (or, `until_client_leaves`, the client goes away: an attached container runs on without it)."""

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

    reader, writer = asyncio.ensure_future(pump_in()), asyncio.ensure_future(pump_out())
    try:
        await asyncio.wait([reader, writer] if until_client_leaves else [writer],
                           return_when=asyncio.FIRST_COMPLETED)
        if writer.done():
            writer.result()         # its failure (the client gone mid-write, the engine) is the caller's
    finally:
        for task in (reader, writer):
            task.cancel()
        await asyncio.gather(reader, writer, return_exceptions=True)


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
