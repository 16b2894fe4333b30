"""The SPDY/3.1 codec and session of boxkube.apiserver.spdy: frames round trip, header blocks share one zlib
context per direction with the SPDY/3 dictionary, and a session answers streams the way spdystream (what
kubectl's port-forward speaks) expects."""
from __future__ import annotations

import asyncio
import struct
import zlib

import pytest

from boxkube.apiserver import spdy


def roundtrip(*frames: spdy.Frame) -> list[spdy.Frame]:
    compressor, reader = spdy.HeaderCompressor(), spdy.FrameReader()
    return reader.feed(b"".join(spdy.encode(f, compressor) for f in frames))


def test_the_dictionary_is_spdy3s():
    # Its size and checksum: a zlib stream that used it names it by this Adler-32 (and the real kubectl's
    # header blocks inflate with it, which the docker port-forward tests show).
    assert len(spdy.DICTIONARY) == 1423
    assert zlib.adler32(spdy.DICTIONARY) == 0xE3C6A7C2
    assert spdy.DICTIONARY.startswith(b"\0\0\0\x07options\0\0\0\x04head")
    assert spdy.DICTIONARY.endswith(b"utf-,*,enq=0.")


def test_every_frame_round_trips():
    frames = [
        spdy.SynStream(1, {"streamtype": ["error"], "port": ["8080"], "requestid": ["0"]}, priority=3),
        spdy.SynStream(3, {"x": ["a", "b"]}, associated_to=1, fin=True, unidirectional=True),
        spdy.SynReply(1, {}),
        spdy.SynReply(3, {"status": ["200"]}, fin=True),
        spdy.HeadersFrame(5, {"k": ["v"]}),
        spdy.Data(1, b"hello"),
        spdy.Data(1, b"", fin=True),
        spdy.RstStream(3, spdy.CANCEL),
        spdy.Settings({4: 1, 7: 65536}),
        spdy.Ping(7),
        spdy.GoAway(5, 0),
        spdy.WindowUpdate(1, 1000),
    ]
    assert roundtrip(*frames) == frames


def test_the_wire_format():
    c = spdy.HeaderCompressor()
    assert spdy.encode(spdy.Data(5, b"ab", fin=True), c) == b"\0\0\0\x05\x01\0\0\x02ab"
    assert spdy.encode(spdy.Ping(1), c) == b"\x80\x03\x00\x06\0\0\0\x04\0\0\0\x01"
    assert spdy.encode(spdy.RstStream(3, spdy.CANCEL), c) == b"\x80\x03\x00\x03\0\0\0\x08\0\0\0\x03\0\0\0\x05"
    syn = spdy.encode(spdy.SynReply(1, {"a": ["b"]}, fin=True), c)
    assert syn[:4] == b"\x80\x03\x00\x02" and syn[4] == spdy.FLAG_FIN
    assert struct.unpack(">I", b"\0" + syn[5:8])[0] == len(syn) - 8


def test_header_blocks_share_one_compression_context():
    """Each block is inflated by the same stream: the second, alike, is much smaller, and a reader that
    missed the first cannot inflate it."""
    c = spdy.HeaderCompressor()
    headers = {"streamtype": ["data"], "port": ["8080"], "requestid": ["12"]}
    first = spdy.encode(spdy.SynStream(1, headers), c)
    second = spdy.encode(spdy.SynStream(3, headers), c)
    assert len(second) < len(first)
    reader = spdy.FrameReader()
    assert [f.headers for f in reader.feed(first + second)] == [headers, headers]   # type: ignore[union-attr]
    with pytest.raises(spdy.ProtocolError):
        spdy.FrameReader().feed(second)


def test_blocks_are_zlib_with_the_dictionary():
    """What a Go peer (compress/zlib with the dictionary, sync flush per block) would send reads the same."""
    z = zlib.compressobj(9, zlib.DEFLATED, 15, zdict=spdy.DICTIONARY)
    block = struct.pack(">I", 2) + b"".join(struct.pack(">I", len(x)) + x for x in
                                              (b"streamtype", b"error", b"port", b"80\x00443"))
    payload = struct.pack(">IIBB", 1, 0, 0, 0) + z.compress(block) + z.flush(zlib.Z_SYNC_FLUSH)
    frame = struct.pack(">HHI", 0x8003, spdy.SYN_STREAM, len(payload)) + payload
    [syn] = spdy.FrameReader().feed(frame)
    assert syn == spdy.SynStream(1, {"streamtype": ["error"], "port": ["80", "443"]})


def test_frames_arrive_in_any_pieces():
    c = spdy.HeaderCompressor()
    data = b"".join(spdy.encode(f, c) for f in (spdy.SynStream(1, {"a": ["1"]}), spdy.Data(1, b"x" * 100),
                                                 spdy.Ping(3)))
    reader, got = spdy.FrameReader(), []
    for i in range(0, len(data), 7):
        got += reader.feed(data[i:i + 7])
    assert [type(f) for f in got] == [spdy.SynStream, spdy.Data, spdy.Ping]
    assert got[1] == spdy.Data(1, b"x" * 100)


def test_unknown_control_frames_are_skipped_and_other_versions_refused():
    unknown = struct.pack(">HHI", 0x8003, 0x55, 3) + b"abc"
    assert spdy.FrameReader().feed(unknown + spdy.encode(spdy.Ping(1), spdy.HeaderCompressor())) == [spdy.Ping(1)]
    with pytest.raises(spdy.ProtocolError, match="version 2"):
        spdy.FrameReader().feed(struct.pack(">HHI", 0x8002, spdy.PING, 4) + b"\0\0\0\x01")


class Peer:
    """The client's side of a session under test: frames in, frames out."""

    def __init__(self) -> None:
        self.sent: list[spdy.Frame] = []
        self.streams: list[spdy.Stream] = []
        self._reader, self._compressor = spdy.FrameReader(), spdy.HeaderCompressor()
        self.session = spdy.Session(self._receive, self.streams.append)

    async def _receive(self, data: bytes) -> None:
        self.sent += self._reader.feed(data)

    async def send(self, *frames: spdy.Frame) -> None:
        await self.session.feed(b"".join(spdy.encode(f, self._compressor) for f in frames))


async def test_a_session_answers_streams_and_pings():
    peer = Peer()
    await peer.send(spdy.SynStream(1, {"streamtype": ["data"]}), spdy.Ping(1), spdy.Ping(2),
                    spdy.Settings({4: 100}), spdy.WindowUpdate(0, 10))
    [stream] = peer.streams
    assert stream.header("streamType") == "data"
    assert peer.sent == [spdy.SynReply(1, {}), spdy.Ping(1)]       # an even ping would answer one of ours
    await peer.send(spdy.Data(1, b"abc"), spdy.Data(1, b"def", fin=True))
    assert [await stream.read(), await stream.read(), await stream.read()] == [b"abc", b"def", b""]
    await stream.write(b"x" * (spdy.Session.MAX_CHUNK + 1))
    await stream.close()
    assert peer.sent[2:] == [spdy.Data(1, b"x" * spdy.Session.MAX_CHUNK), spdy.Data(1, b"x"),
                             spdy.Data(1, b"", fin=True)]
    # Both sides closed: data for it now goes nowhere.
    await peer.send(spdy.Data(1, b"late"))


async def test_a_reset_wakes_the_reader_and_stops_writes():
    peer = Peer()
    await peer.send(spdy.SynStream(1, {}))
    [stream] = peer.streams
    read = asyncio.ensure_future(stream.read())
    await asyncio.sleep(0)
    await peer.send(spdy.RstStream(1, spdy.CANCEL))
    assert await read == b""
    with pytest.raises(ConnectionResetError):
        await stream.write(b"x")


async def test_streams_must_be_new_and_odd():
    peer = Peer()
    await peer.send(spdy.SynStream(3, {}), spdy.SynStream(1, {}), spdy.SynStream(4, {}))
    assert [s.id for s in peer.streams] == [3]
    assert peer.sent == [spdy.SynReply(3, {}), spdy.RstStream(1, spdy.PROTOCOL_ERROR),
                         spdy.RstStream(4, spdy.PROTOCOL_ERROR)]


async def test_a_lagging_reader_holds_the_session_back():
    """As spdystream hands frames over unbuffered: the connection is read no further than a reader takes."""
    peer = Peer()
    await peer.send(spdy.SynStream(1, {}))
    [stream] = peer.streams
    frames = [spdy.Data(1, bytes([i])) for i in range(spdy.Stream.BACKLOG + 1)]
    feeding = asyncio.ensure_future(peer.send(*frames))
    await asyncio.sleep(0.01)
    assert not feeding.done()
    assert await stream.read() == b"\0"
    await asyncio.wait_for(feeding, 1)


async def test_close_says_goaway_and_ends_the_streams():
    peer = Peer()
    await peer.send(spdy.SynStream(1, {}))
    await peer.session.close()
    assert peer.sent[-1] == spdy.GoAway(1, 0)
    assert await peer.streams[0].read() == b""
    await peer.send(spdy.SynStream(3, {}))
    assert peer.sent[-1] == spdy.RstStream(3, spdy.PROTOCOL_ERROR)
