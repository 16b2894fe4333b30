"""pods/portforward as kubectl 1.37 asks for it: SPDY/3.1 tunneled over a websocket (subprotocol
"SPDY/3.1+portforward.k8s.io", client-go's tools/portforward tunneling dialer), ended here rather than at the
node, as kube-apiserver's StreamTunnel translator does before it speaks SPDY to the kubelet.

For each local connection kubectl opens two streams with the same `requestID` header (the kubelet's
httpstream handler pairs them the same way): "error" (which it half-closes at once and reads to its end)
and "data" (the connection's bytes both ways), each with the remote `port`. Every pair here gets its own
websocket to the pod's node agent (`/portForward/{namespace}/{pod}?port=N`, the kubelet's websocket
port-forward protocol: channel 0 data, channel 1 error, each channel's first message starting with the
port as two little-endian bytes; over v5.channel.k8s.io, [255, 0] half-closes the data channel), which
connects to the pod. What the agent says on its error channel (the kubelet's "error forwarding port ...")
is written on the pair's error stream; kubectl prints it ("an error occurred forwarding ...") and gives
up the whole session, as against a kubelet.

A pair ends when the pod's side of the connection ends (or kubectl resets the data stream): the data
stream and then the error stream are closed, which is what lets kubectl close its local connection.
kubectl's end of its data stream (FIN) only half-closes the connection to the pod, so an answer still
on its way arrives.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from starlette.websockets import WebSocket, WebSocketDisconnect
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from boxkube.apiserver import spdy

log = logging.getLogger(__name__)

TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
# The kubelet's websocket port-forward channels, and v5's "close this channel" signal.
DATA, ERROR, CLOSE = 0, 1, 255
AGENT_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websocket protocol, taking the subprotocols a client offers as Go's gorilla/websocket does
    (split at commas). The `websockets` library parses Sec-WebSocket-Protocol as RFC 6455 tokens, where "/"
    is not allowed, so it refuses kubectl's "SPDY/3.1+portforward.k8s.io" with a 400 before the app sees
    the request. Its choice is not needed: uvicorn lists the offered subprotocols in the scope itself and
    answers with the one the app accepts."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.conn.process_subprotocol = lambda headers: None      # type: ignore[method-assign]


class ForwardError(Exception):
    """A pair's connection to the pod could not be made: the message goes on its error stream."""


# Opens the agent's websocket for one forwarded connection to `port`.
Dial = Callable[[int], Awaitable[aiohttp.ClientWebSocketResponse]]


async def serve_tunnel(client: WebSocket, dial: Dial) -> None:
    """Run the SPDY session of an accepted websocket until kubectl goes away."""
    pairs: dict[str, dict[str, spdy.Stream]] = {}
    tasks: set[asyncio.Task] = set()

    async def send(data: bytes) -> None:
        await client.send_bytes(data)

    def on_stream(stream: spdy.Stream) -> None:
        # The kubelet's checks of a new stream (httpStreamReceived): a port, and a type it knows.
        kind, port = stream.header("streamType"), stream.header("port")
        if kind not in ("error", "data") or not port.isdigit() or not 0 < int(port) < 65536:
            log.debug("port-forward: refusing stream %d (streamType=%r port=%r)", stream.id, kind, port)
            _spawn(tasks, stream.abort(spdy.PROTOCOL_ERROR))
            return
        pair = pairs.setdefault(stream.header("requestID"), {})
        if kind in pair:
            _spawn(tasks, stream.abort(spdy.PROTOCOL_ERROR))
            return
        pair[kind] = stream
        if len(pair) == 2:
            del pairs[stream.header("requestID")]
            _spawn(tasks, forward(pair["error"], pair["data"], dial))

    session = spdy.Session(send, on_stream)
    try:
        while True:
            message = await client.receive()
            if message["type"] == "websocket.disconnect":
                break
            if message.get("bytes"):
                await session.feed(message["bytes"])
    except spdy.ProtocolError as e:
        log.info("port-forward: %s", e)
        with contextlib.suppress(Exception):
            await client.close(code=1002, reason=str(e)[:120])
    except (WebSocketDisconnect, ConnectionError, RuntimeError):
        pass
    finally:
        session.end()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await client.close()


def _spawn(tasks: set[asyncio.Task], work: Awaitable[None]) -> None:
    task = asyncio.ensure_future(work)
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def forward(error: spdy.Stream, data: spdy.Stream, dial: Dial) -> None:
    """One forwarded connection: the data stream to and from the agent's websocket, until either ends."""
    port = int(data.header("port"))
    try:
        try:
            agent = await dial(port)
        except ForwardError as e:
            await error.write(str(e).encode())
            return
        try:
            await _relay(error, data, agent)
        finally:
            await agent.close()
    except (ConnectionError, RuntimeError) as e:      # kubectl went away meanwhile
        log.debug("port-forward to port %d: %s", port, e)
    finally:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await data.close()
            await error.close()


async def _relay(error: spdy.Stream, data: spdy.Stream, agent: aiohttp.ClientWebSocketResponse) -> None:
    async def upstream() -> None:          # kubectl -> pod
        while chunk := await data.read():
            await agent.send_bytes(bytes([DATA]) + chunk)
        if not data.reset and agent.protocol == AGENT_PROTOCOLS[0]:
            await agent.send_bytes(bytes([CLOSE, DATA]))

    async def downstream() -> None:        # pod -> kubectl
        prefixed = {DATA, ERROR}           # channels whose port prefix is still to come
        async for msg in agent:
            if msg.type != aiohttp.WSMsgType.BINARY:
                break
            if not msg.data:
                continue
            channel, payload = msg.data[0], msg.data[1:]
            if channel in prefixed:
                prefixed.discard(channel)
                payload = payload[2:]
            if payload and channel == DATA:
                await data.write(payload)
            elif payload and channel == ERROR:
                await error.write(payload)

    up, down = asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())
    try:
        done, _ = await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
        if down not in done and not data.reset and up.exception() is None:
            await down          # kubectl only half-closed: the pod's answer may still come
    finally:
        for task in (up, down):
            task.cancel()
        await asyncio.gather(up, down, return_exceptions=True)
