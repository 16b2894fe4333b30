"""A minimal SPDY/3.1 session: what `kubectl port-forward` speaks (k8s.io/apimachinery's httpstream/spdy over
github.com/moby/spdystream), read from the SPDY/3 draft and spdystream for behaviour.

- frames (draft 3, section 2.2): a control frame is [1 | version 15 bits][type 16][flags 8][length 24] then
  its payload; a data frame is [0 | stream id 31][flags 8][length 24] then its data. `encode` writes one,
  `FrameReader.feed` takes bytes as they come (a websocket message need not hold one whole frame) and gives
  the frames completed so far;
- header blocks (SYN_STREAM, SYN_REPLY, HEADERS) are [count 32] then [length 32][name][length 32][value]
  per header, several values of one name joined by NUL, and zlib-compressed with the SPDY/3 dictionary:
  ONE compression context per direction for the whole session, each block ending on a sync flush
  (`HeaderCompressor`, `HeaderDecompressor`);
- `Session` is the receiving side's connection as spdystream runs it: the peer opens streams (odd ids from
  a client), each is answered with a SYN_REPLY; DATA with FIN half-closes a stream, RST_STREAM ends it;
  the peer's PINGs are echoed; GOAWAY ends the session. Like spdystream, there is no flow control:
  SETTINGS and WINDOW_UPDATE are read and ignored and none are sent (spdystream neither sends window
  updates nor honours them, so respecting a 64 KiB window would stall after 64 KiB).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

VERSION = 3

# Frame types (draft 3, section 2.6) and flags.
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN, FLAG_UNIDIRECTIONAL = 0x01, 0x02
# RST_STREAM status codes.
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, UNSUPPORTED_VERSION, CANCEL, INTERNAL_ERROR = 1, 2, 3, 4, 5, 6
MAX_DATA = 0xFFFFFF            # a frame's length field is 24 bits

Headers = dict[str, list[str]]


def _dictionary() -> bytes:
    """The header compression dictionary of SPDY/3 (draft 3, section 2.6.10.1): length-prefixed names and
    values, then a run of common text."""
    words = ("options head post put delete trace accept accept-charset accept-encoding accept-language "
             "accept-ranges age allow authorization cache-control connection content-base content-encoding "
             "content-language content-length content-location content-md5 content-range content-type date "
             "etag expect expires from host if-match if-modified-since if-none-match if-range "
             "if-unmodified-since last-modified location max-forwards pragma proxy-authenticate "
             "proxy-authorization range referer retry-after server te trailer transfer-encoding upgrade "
             "user-agent vary via warning www-authenticate method get status").split() + \
        ["200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin"]
    tail = ("100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
            "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
            "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
            "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
            "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
            "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
            "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")
    return b"".join(struct.pack(">I", len(w)) + w.encode() for w in words) + tail.encode()


DICTIONARY = _dictionary()


class ProtocolError(Exception):
    """The peer sent something that is not SPDY/3.1: the session cannot go on."""


# -- frames -------------------------------------------------------------------------------------------


@dataclass
class Data:
    stream_id: int
    data: bytes = b""
    fin: bool = False


@dataclass
class SynStream:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    associated_to: int = 0
    priority: int = 0
    fin: bool = False
    unidirectional: bool = False


@dataclass
class SynReply:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    fin: bool = False


@dataclass
class HeadersFrame:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    fin: bool = False


@dataclass
class RstStream:
    stream_id: int
    status: int = CANCEL


@dataclass
class Settings:
    values: dict[int, int] = field(default_factory=dict)     # id -> value (the per-entry flags are dropped)


@dataclass
class Ping:
    id: int


@dataclass
class GoAway:
    last_good_stream_id: int = 0
    status: int = 0


@dataclass
class WindowUpdate:
    stream_id: int
    delta: int


Frame = Data | SynStream | SynReply | HeadersFrame | RstStream | Settings | Ping | GoAway | WindowUpdate


class HeaderCompressor:
    """One direction's header compression: a single zlib stream for the session, flushed per block."""

    def __init__(self) -> None:
        self._z = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zlib.DEFLATED, zlib.MAX_WBITS, zdict=DICTIONARY)

    def compress(self, headers: Headers) -> bytes:
        block = bytearray(struct.pack(">I", len(headers)))
        for name, values in headers.items():
            value = "\0".join(values).encode()
            block += struct.pack(">I", len(name)) + name.lower().encode() + struct.pack(">I", len(value)) + value
        return self._z.compress(bytes(block)) + self._z.flush(zlib.Z_SYNC_FLUSH)


class HeaderDecompressor:
    """The other direction's: the peer's blocks, in order, through one zlib stream."""

    def __init__(self) -> None:
        self._z = zlib.decompressobj(zlib.MAX_WBITS, zdict=DICTIONARY)

    def decompress(self, data: bytes) -> Headers:
        try:
            block = self._z.decompress(data)
        except zlib.error as e:
            raise ProtocolError(f"bad header block: {e}") from None
        try:
            (count,), i = struct.unpack_from(">I", block), 4
            headers: Headers = {}
            for _ in range(count):
                (n,) = struct.unpack_from(">I", block, i)
                name = block[i + 4:i + 4 + n].decode()
                i += 4 + n
                (n,) = struct.unpack_from(">I", block, i)
                value = block[i + 4:i + 4 + n].decode()
                i += 4 + n
                headers.setdefault(name.lower(), []).extend(value.split("\0"))
        except (struct.error, UnicodeDecodeError) as e:
            raise ProtocolError(f"bad header block: {e}") from None
        return headers


def _control(kind: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload


def encode(frame: Frame, compressor: HeaderCompressor) -> bytes:
    """The frame's bytes (header blocks through the session's compressor: encode in the order sent)."""
    match frame:
        case Data(stream_id, data, fin):
            if len(data) > MAX_DATA:
                raise ValueError(f"a data frame holds at most {MAX_DATA} bytes")
            return struct.pack(">II", stream_id & 0x7FFFFFFF, (int(fin) << 24) | len(data)) + data
        case SynStream(stream_id, headers, associated_to, priority, fin, unidirectional):
            flags = (FLAG_FIN if fin else 0) | (FLAG_UNIDIRECTIONAL if unidirectional else 0)
            return _control(SYN_STREAM, flags, struct.pack(">IIBB", stream_id, associated_to, (priority & 7) << 5, 0)
                            + compressor.compress(headers))
        case SynReply(stream_id, headers, fin):
            return _control(SYN_REPLY, int(fin), struct.pack(">I", stream_id) + compressor.compress(headers))
        case HeadersFrame(stream_id, headers, fin):
            return _control(HEADERS, int(fin), struct.pack(">I", stream_id) + compressor.compress(headers))
        case RstStream(stream_id, status):
            return _control(RST_STREAM, 0, struct.pack(">II", stream_id, status))
        case Settings(values):
            return _control(SETTINGS, 0, struct.pack(">I", len(values)) +
                            b"".join(struct.pack(">II", k & 0xFFFFFF, v) for k, v in values.items()))
        case Ping(id):
            return _control(PING, 0, struct.pack(">I", id))
        case GoAway(last, status):
            return _control(GOAWAY, 0, struct.pack(">II", last, status))
        case WindowUpdate(stream_id, delta):
            return _control(WINDOW_UPDATE, 0, struct.pack(">II", stream_id, delta))
    raise TypeError(f"not a SPDY frame: {frame!r}")


class FrameReader:
    """Frames out of a byte stream, fed in whatever pieces it arrives in."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._headers = HeaderDecompressor()

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= 8:
            first, word = struct.unpack_from(">II", self._buffer)
            length = word & 0xFFFFFF
            if len(self._buffer) < 8 + length:
                break
            flags, payload = word >> 24, bytes(self._buffer[8:8 + length])
            del self._buffer[:8 + length]
            if first & 0x80000000:
                version, kind = (first >> 16) & 0x7FFF, first & 0xFFFF
                if version != VERSION:
                    raise ProtocolError(f"SPDY version {version} is not spoken here (only {VERSION})")
                frame = self._control(kind, flags, payload)
                if frame is not None:
                    frames.append(frame)
            else:
                frames.append(Data(first, payload, bool(flags & FLAG_FIN)))
        return frames

    def _control(self, kind: int, flags: int, p: bytes) -> Frame | None:
        fin = bool(flags & FLAG_FIN)
        try:
            if kind == SYN_STREAM:
                stream_id, associated, priority = struct.unpack_from(">IIB", p)
                return SynStream(stream_id & 0x7FFFFFFF, self._headers.decompress(p[10:]), associated & 0x7FFFFFFF,
                                 priority >> 5, fin, bool(flags & FLAG_UNIDIRECTIONAL))
            if kind == SYN_REPLY:
                return SynReply(struct.unpack_from(">I", p)[0] & 0x7FFFFFFF, self._headers.decompress(p[4:]), fin)
            if kind == HEADERS:
                return HeadersFrame(struct.unpack_from(">I", p)[0] & 0x7FFFFFFF, self._headers.decompress(p[4:]), fin)
            if kind == RST_STREAM:
                stream_id, status = struct.unpack_from(">II", p)
                return RstStream(stream_id & 0x7FFFFFFF, status)
            if kind == SETTINGS:
                (count,) = struct.unpack_from(">I", p)
                entries = (struct.unpack_from(">II", p, 4 + 8 * i) for i in range(count))
                return Settings({k & 0xFFFFFF: v for k, v in entries})
            if kind == PING:
                return Ping(struct.unpack_from(">I", p)[0])
            if kind == GOAWAY:
                last, status = struct.unpack_from(">II", p + b"\0" * 4)   # SPDY/2's GOAWAY had no status
                return GoAway(last & 0x7FFFFFFF, status)
            if kind == WINDOW_UPDATE:
                stream_id, delta = struct.unpack_from(">II", p)
                return WindowUpdate(stream_id & 0x7FFFFFFF, delta & 0x7FFFFFFF)
        except struct.error:
            raise ProtocolError(f"control frame of type {kind} is too short ({len(p)} bytes)") from None
        return None         # the draft: unknown control frames are ignored


# -- the session ------------------------------------------------------------------------------------


class Stream:
    """One stream the peer opened: its headers, what it sends (read), what is sent back (write)."""

    # Data frames waiting for the reader before the session stops reading the connection (spdystream
    # hands each frame over unbuffered; a little slack keeps small writes flowing).
    BACKLOG = 64

    def __init__(self, session: "Session", frame: SynStream):
        self.session, self.id, self.headers = session, frame.stream_id, frame.headers
        self._incoming: asyncio.Queue[bytes] = asyncio.Queue(self.BACKLOG)
        self.remote_closed = self.local_closed = self.reset = False
        if frame.fin:           # opened and closed at once: the reader finds its end straight away
            self.remote_closed = True
            self._incoming.put_nowait(b"")

    def header(self, name: str) -> str:
        return (self.headers.get(name.lower()) or [""])[0]

    async def read(self) -> bytes:
        """The next piece the peer sent; b"" once it closed its side (FIN) or the stream was reset."""
        if self.reset and self._incoming.empty():
            return b""
        return await self._incoming.get()

    async def write(self, data: bytes) -> None:
        if self.local_closed or self.reset:
            raise ConnectionResetError(f"stream {self.id} is closed")
        for i in range(0, len(data), self.session.MAX_CHUNK):
            await self.session.send(Data(self.id, data[i:i + self.session.MAX_CHUNK]))

    async def close(self) -> None:
        """Half-close: nothing more is sent (an empty DATA frame with FIN)."""
        if not self.local_closed and not self.reset:
            self.local_closed = True
            await self.session.send(Data(self.id, b"", fin=True))
            self.session.forget(self)

    async def abort(self, status: int = CANCEL) -> None:
        """Reset the stream: whatever either side still sends on it is dropped."""
        if not self.reset:
            self._reset()
            with contextlib.suppress(ConnectionError):
                await self.session.send(RstStream(self.id, status))

    async def _receive(self, data: bytes, fin: bool) -> None:
        if self.remote_closed or self.reset:
            return
        if data:
            await self._incoming.put(data)
        if fin:
            self.remote_closed = True
            await self._incoming.put(b"")
            self.session.forget(self)

    def _reset(self) -> None:
        self.reset = True
        self.session.forget(self, force=True)
        # Wake a waiting reader (the queue is drained past any data: a reset drops it).
        while not self._incoming.empty():
            self._incoming.get_nowait()
        self._incoming.put_nowait(b"")


class Session:
    """The receiving side of a SPDY/3.1 connection: `feed` it the bytes read from the peer, it writes
    through `write` (each call one frame's bytes, in order), and hands each new stream to `on_stream`
    after answering it with a SYN_REPLY."""

    MAX_CHUNK = 32 * 1024           # bytes per DATA frame written

    def __init__(self, write: Callable[[bytes], Awaitable[None]], on_stream: Callable[[Stream], None]):
        self._write, self._on_stream = write, on_stream
        self._reader, self._compressor = FrameReader(), HeaderCompressor()
        self._lock = asyncio.Lock()
        self._streams: dict[int, Stream] = {}
        self._last_id = 0
        self.gone_away = False

    async def send(self, frame: Frame) -> None:
        # Compressing and writing under one lock: the peer inflates header blocks in the order sent.
        async with self._lock:
            await self._write(encode(frame, self._compressor))

    async def feed(self, data: bytes) -> None:
        """Take bytes read from the peer; frames for a stream whose reader lags wait for it."""
        for frame in self._reader.feed(data):
            await self._handle(frame)

    async def _handle(self, frame: Frame) -> None:
        match frame:
            case SynStream():
                if frame.stream_id <= self._last_id or frame.stream_id % 2 == 0 or self.gone_away:
                    await self.send(RstStream(frame.stream_id, PROTOCOL_ERROR))
                    return
                self._last_id = frame.stream_id
                stream = Stream(self, frame)
                if not stream.remote_closed:
                    self._streams[stream.id] = stream
                await self.send(SynReply(stream.id))
                self._on_stream(stream)
            case Data():
                stream = self._streams.get(frame.stream_id)
                if stream is not None:
                    await stream._receive(frame.data, frame.fin)
            case RstStream():
                stream = self._streams.get(frame.stream_id)
                if stream is not None:
                    stream._reset()
            case Ping():
                if frame.id % 2 == 1:        # the client's (odd); an even one would answer a ping of ours
                    await self.send(frame)
            case GoAway():
                self.gone_away = True
            case _:       # SYN_REPLY, HEADERS (a server opens no streams), SETTINGS, WINDOW_UPDATE
                pass

    def forget(self, stream: Stream, force: bool = False) -> None:
        """A stream both sides closed (or reset) needs no more frames routed to it."""
        if force or (stream.remote_closed and stream.local_closed):
            self._streams.pop(stream.id, None)

    async def close(self) -> None:
        """Say goodbye (GOAWAY) and end every stream still open."""
        if not self.gone_away:
            self.gone_away = True
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.send(GoAway(self._last_id))
        self.end()

    def end(self) -> None:
        """The connection is gone: every stream reads its end."""
        for stream in list(self._streams.values()):
            stream._reset()
