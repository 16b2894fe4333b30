"""pods/log, pods/exec, pods/attach and pods/portforward: served by proxying to the pod's node agent,
as kube-apiserver proxies them to the kubelet (pkg/registry/core/pod/rest/log.go, subresources.go).

- the pod must be bound; its Node's InternalIP and `status.daemonEndpoints.
  kubeletEndpoint.Port` say where the agent's kubelet API listens
  (boxkube.agent.server), and the cluster's token is presented to it;
- the container is checked first, with upstream's messages ("a container name
  must be specified for pod web, choose one of: [a b]", "container x is not
  valid for pod web"), defaulting to the only container (port-forward names none);
- logs: the agent's plain-text answer is streamed back as it comes (chunked
  while following), so `kubectl logs -f` ends when kubectl goes away;
- exec and attach: a websocket (kubectl 1.37 asks for v5.channel.k8s.io, then v4,
  v3, v2) is opened to the agent with the protocols kubectl offered, and kubectl's
  is accepted with the one the agent chose; then every message is relayed as it
  is, both ways, until either side closes. A request that is wrong (no such
  pod, container, ...) is refused before the upgrade with its Status, which
  kubectl shows as the server's error (it falls back to SPDY on a refused
  upgrade, and that request gets the same Status). SPDY itself is not served;
- port-forward: kubectl's SPDY tunneled over a websocket ("SPDY/3.1+portforward.k8s.io")
  is ended here (boxkube.apiserver.portforward), each forwarded connection
  going on to the agent over a websocket of its own. Another client's plain
  websocket port-forward (v4.channel.k8s.io, `ports=`: the official Python
  client's) is relayed to the agent's as it is, as exec is. kubectl's fallback,
  a plain SPDY upgrade, gets a BadRequest (the API server's HTTP server hands
  out no raw connections);
- a simulated node (containerRuntimeVersion simulated://) has no agent API:
  all of these get a BadRequest that says why.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import aiohttp
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from boxkube.apiserver import errors, portforward, resources
from boxkube.apiserver.errors import APIError

if TYPE_CHECKING:
    from boxkube.apiserver.handlers import Target
    from boxkube.apiserver.registry import Registry

log = logging.getLogger(__name__)

Obj = dict[str, Any]
KUBELET_PORT = 10250
_LOG_PARAMS = ("follow", "previous", "sinceSeconds", "sinceTime", "timestamps", "tailLines", "limitBytes")
_STREAM_PARAMS = ("stdin", "stdout", "stderr", "tty")
_WHAT = {"exec": "exec", "attach": "attach", "portforward": "port-forward"}


def _names(names: list[str]) -> str:
    return "[" + " ".join(names) + "]"


def container_of(pod: Obj, requested: str) -> str:
    """The container a request is about (upstream's podLogs/exec validation)."""
    spec, name = pod.get("spec") or {}, pod["metadata"]["name"]
    containers = [c["name"] for c in spec.get("containers") or []]
    inits = [c["name"] for c in spec.get("initContainers") or []]
    ephemeral = [c["name"] for c in spec.get("ephemeralContainers") or []]
    if not requested:
        if len(containers) == 1:
            return containers[0]
        message = f"a container name must be specified for pod {name}, choose one of: {_names(containers)}"
        if inits:
            message += f" or one of the init containers: {_names(inits)}"
        if ephemeral:
            message += f" or one of the ephemeral containers: {_names(ephemeral)}"
        raise errors.bad_request(message)
    if requested not in containers + inits + ephemeral:
        raise errors.bad_request(f"container {requested} is not valid for pod {name}")
    return requested


class PodProxy:
    """Finds a pod's node agent and talks to it for the API server."""

    def __init__(self, registry: "Registry", token: str | None):
        self.registry, self.token = registry, token
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        return self._session

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def _target(self, namespace: str, name: str, requested: str | None, what: str) -> tuple[str, str]:
        """(the agent's base URL, the container) for a request about pod `name` (`requested` None: a
        request about the whole pod, port-forward)."""
        pod = await self.registry.get(resources.by_plural("", "v1", "pods"), namespace, name)   # type: ignore[arg-type]
        container = "" if requested is None else container_of(pod, requested)
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            raise errors.bad_request(f"pod {name} does not have a host assigned")
        try:
            node = await self.registry.get(resources.by_plural("", "v1", "nodes"), None, node_name)  # type: ignore[arg-type]
        except APIError as e:
            if e.code == 404:
                raise APIError(404, "NotFound", f'nodes "{node_name}" not found',
                               {"name": node_name, "kind": "nodes"}) from None
            raise
        status = node.get("status") or {}
        runtime = (status.get("nodeInfo") or {}).get("containerRuntimeVersion", "")
        if runtime.startswith("simulated://"):
            raise errors.bad_request(f"{what} is not available for pod {name}: it runs on the simulated node "
                                     f"{node_name}, whose containers do not really run")
        address = next((a.get("address") for a in status.get("addresses") or [] if a.get("type") == "InternalIP"),
                       None)
        if not address:
            raise errors.bad_request(f"node {node_name} has no InternalIP address")
        port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port") or KUBELET_PORT
        host = f"[{address}]" if ":" in address else address
        return f"http://{host}:{port}", container

    # -- plain HTTP: logs, and exec that did not upgrade ---------------------------------------

    async def http(self, request: Request, t: "Target", method: str) -> Response:
        q = request.query_params
        if t.subresource == "log":
            if method != "GET":
                raise errors.method_not_allowed()
            return await self.logs(request, t)
        what = _WHAT[t.subresource]
        if t.subresource == "exec" and not q.getlist("command"):
            raise errors.bad_request("you must specify at least 1 command")
        await self._target(t.namespace or "", t.name,
                           None if t.subresource == "portforward" else q.get("container", ""), what)
        if t.subresource == "portforward":
            raise errors.bad_request(f"port-forward needs a websocket upgrade: boxkube serves it as SPDY over a "
                                     f"websocket ({portforward.TUNNEL_PROTOCOL}), not a plain SPDY upgrade; "
                                     f"use kubectl 1.31 or newer")
        raise errors.bad_request(f"{what} needs a websocket upgrade: boxkube serves it over websockets "
                                 f"(v5.channel.k8s.io), not SPDY; use kubectl 1.30 or newer")

    async def logs(self, request: Request, t: "Target") -> Response:
        q = request.query_params
        base, container = await self._target(t.namespace or "", t.name, q.get("container", ""), "logs")
        params = {k: q[k] for k in _LOG_PARAMS if q.get(k) not in (None, "")}
        url = f"{base}/containerLogs/{quote(t.namespace or '')}/{quote(t.name)}/{quote(container)}"
        try:
            r = await self._http().get(url, params=params, headers=self._headers(),
                                       timeout=aiohttp.ClientTimeout(total=None, connect=10, sock_read=None))
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as e:
            raise errors.internal(f'Get "{url}": {e or type(e).__name__}') from None
        if r.status != 200:
            body = await r.read()
            r.release()
            raise _agent_error(r.status, body)

        async def stream() -> AsyncIterator[bytes]:
            try:
                async for chunk in r.content.iter_any():
                    yield chunk
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as e:
                log.debug("logs of %s/%s: %s", t.namespace, t.name, e)
            finally:
                r.close()
        return StreamingResponse(stream(), media_type="text/plain")

    # -- websockets: exec, attach, port-forward ------------------------------------------------

    async def websocket(self, scope: Scope, receive: Receive, send: Send, t: "Target") -> None:
        client = WebSocket(scope, receive, send)
        q = client.query_params
        ns, name = quote(t.namespace or ""), quote(t.name)
        offered = list(scope.get("subprotocols") or [])
        try:
            if t.subresource == "exec" and not q.getlist("command"):
                raise errors.bad_request("you must specify at least 1 command")
            base, container = await self._target(t.namespace or "", t.name,
                                                 None if t.subresource == "portforward" else q.get("container", ""),
                                                 _WHAT[t.subresource])
            if t.subresource == "portforward" and portforward.TUNNEL_PROTOCOL not in offered and not q.getlist("ports"):
                raise errors.bad_request("at least one port must be given: the ports parameter")
        except APIError as e:
            await _deny(client, e)
            return
        if t.subresource == "portforward" and portforward.TUNNEL_PROTOCOL in offered:
            await client.accept(subprotocol=portforward.TUNNEL_PROTOCOL)
            await portforward.serve_tunnel(client, lambda port: self._dial_port(base, t, port))
            return
        if t.subresource == "portforward":     # the kubelet's own websocket protocol: its query is `port`
            params = [("port", p) for p in q.getlist("ports")]
            url = f"{base}/portForward/{ns}/{name}?" + urlencode(params)
        else:
            params = [("command", c) for c in q.getlist("command")] + \
                [(k, q[k]) for k in _STREAM_PARAMS if q.get(k) not in (None, "")]
            url = f"{base}/{t.subresource}/{ns}/{name}/{quote(container)}?" + urlencode(params)
        try:
            agent = await self._ws(url, offered)
        except aiohttp.WSServerHandshakeError as e:
            await _deny(client, APIError(e.status if e.status >= 400 else 500, "InternalError",
                                         f"the node agent refused the {_WHAT[t.subresource]}: {e.message}"))
            return
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as e:
            await _deny(client, errors.internal(f"error dialing the node agent at {base}: {e or type(e).__name__}"))
            return
        try:
            await client.accept(subprotocol=agent.protocol)
            await _relay(client, agent)
        finally:
            await agent.close()

    async def _ws(self, url: str, protocols: list[str] | tuple[str, ...]) -> aiohttp.ClientWebSocketResponse:
        return await self._http().ws_connect(url, protocols=protocols, headers=self._headers(),
                                             timeout=aiohttp.ClientWSTimeout(ws_close=10),
                                             autoping=True, max_msg_size=0)

    async def _dial_port(self, base: str, t: "Target", port: int) -> aiohttp.ClientWebSocketResponse:
        """The agent's websocket for one connection to `port` of the pod (a refusal as the pair's error)."""
        url = f"{base}/portForward/{quote(t.namespace or '')}/{quote(t.name)}?port={port}"
        try:
            return await self._ws(url, portforward.AGENT_PROTOCOLS)
        except aiohttp.WSServerHandshakeError as e:
            raise portforward.ForwardError(f"error forwarding port {port} to pod {t.name}: the node agent "
                                           f"refused it: {e.status} {e.message}") from None
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as e:
            raise portforward.ForwardError(f"error forwarding port {port} to pod {t.name}: error dialing the node "
                                           f"agent at {base}: {e or type(e).__name__}") from None


async def _deny(client: WebSocket, e: APIError) -> None:
    """Refuse the upgrade with the error's Status (or just close, where the server can't answer a refusal)."""
    from boxkube.apiserver.handlers import error_response
    try:
        await client.send_denial_response(error_response(e))
    except RuntimeError:
        await client.close(code=1008, reason=e.message[:120])


async def _relay(client: WebSocket, agent: aiohttp.ClientWebSocketResponse) -> None:
    async def upstream() -> None:      # kubectl -> agent
        try:
            while True:
                message = await client.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("bytes") is not None:
                    await agent.send_bytes(message["bytes"])
                elif message.get("text") is not None:
                    await agent.send_str(message["text"])
        except (WebSocketDisconnect, ConnectionError, RuntimeError):
            return

    async def downstream() -> None:    # agent -> kubectl
        async for msg in agent:
            if msg.type == aiohttp.WSMsgType.BINARY:
                await client.send_bytes(msg.data)
            elif msg.type == aiohttp.WSMsgType.TEXT:
                await client.send_text(msg.data)
            else:
                break

    tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await client.close()


def _agent_error(status: int, body: bytes) -> APIError:
    """The agent's Status as the API server's error (its own message and reason), else a wrapped one."""
    try:
        obj = json.loads(body)
        if isinstance(obj, dict) and obj.get("kind") == "Status":
            return APIError(int(obj.get("code") or status), obj.get("reason") or "", obj.get("message") or "",
                            obj.get("details"))
    except ValueError:
        pass
    return APIError(status if status >= 400 else 500, "InternalError", body.decode(errors="replace").strip())
