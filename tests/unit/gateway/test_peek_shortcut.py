"""The DIFF peek shortcut: frame boundaries followed through any split of the reads, whole
masked peeks taken in front of aiohttp, everything else (and a peek behind unhandled frames)
left to aiohttp in order, and bytes sent right behind the handshake accounted for."""

import asyncio
import socket
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bench.diff_client import masked_frame
from gateway.diff import peek_shortcut
from gateway.diff.peek_shortcut import PEEK, DiffResponse, FrameBoundary, PeekShortcut
from tests.unit.gateway.support import run_async

WAIT_S = 5.0


def _frame(payload: bytes, opcode: int = 0x1) -> bytes:
    return masked_frame(opcode, payload)


def test_boundaries_survive_every_split_of_the_reads() -> None:
    frames = [_frame(PEEK), _frame(b"x" * 300), _frame(b""), _frame(b"y" * 70_000), _frame(PEEK)]
    stream = b"".join(frames)
    ends = set()
    position = 0
    for frame in frames:
        position += len(frame)
        ends.add(position)
    for cut in [*range(0, 40), *range(300, 340), len(stream) - 30, len(stream) - 1]:
        for step in (1, 7, 4096):
            boundary = FrameBoundary()
            boundary.feed(stream[:cut])
            at = cut
            assert boundary.at_boundary == (cut in ends or cut == 0), (cut, step)
            while at < len(stream):
                chunk = stream[at : at + step]
                boundary.feed(chunk)
                at += len(chunk)
                if step > 1 or at % 97 == 0:
                    assert boundary.at_boundary == (at in ends), (cut, step, at)
            assert boundary.at_boundary


class _Parser:
    """Stands where aiohttp's parser goes, keeping what reaches it."""

    def __init__(self) -> None:
        self.fed: list[bytes] = []

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.fed.append(data)
        return False, b""

    def feed_eof(self) -> None:
        self.fed.append(b"<eof>")


class _Unread:
    def __init__(self) -> None:
        self._buffer: list[Any] = []


def _shortcut(busy: list[bool]) -> tuple[PeekShortcut, _Parser, _Unread, list[str]]:
    parser, unread, seen = _Parser(), _Unread(), []
    shortcut = PeekShortcut(
        parser,
        unread,
        lambda: seen.append("heard"),
        lambda: seen.append("peek"),
        lambda: busy[0],
        2.5,
    )
    return shortcut, parser, unread, seen


def test_only_whole_peeks_at_a_boundary_of_an_idle_connection_are_taken() -> None:
    busy = [False]
    shortcut, parser, unread, seen = _shortcut(busy)
    two = _frame(PEEK) + _frame(PEEK)
    assert shortcut.feed_data(two) == (False, b"")
    assert parser.fed == [] and shortcut.taken == 2 and seen == ["heard", "peek"]
    other = _frame(b'{"aid":"subscribe_quote","ins_list":""}')
    for refused in (
        other,
        _frame(PEEK) + other,
        _frame(PEEK)[:-1],
        _frame(b'{"aid":"peek_messagE"}'),
        _frame(PEEK, opcode=0x2),
    ):
        shortcut.boundary = FrameBoundary()
        shortcut.feed_data(refused)
        assert parser.fed[-1] == refused
    shortcut.boundary = FrameBoundary()
    busy[0] = True
    shortcut.feed_data(_frame(PEEK))
    busy[0] = False
    unread._buffer.append("unhandled")
    shortcut.feed_data(_frame(PEEK))
    assert shortcut.taken == 2 and len(parser.fed) == 7
    unread._buffer.clear()
    half = _frame(b"z" * 10)
    shortcut.feed_data(half[:5])
    shortcut.feed_data(_frame(PEEK))
    assert shortcut.taken == 2, "inside a frame a peek's bytes are that frame's"
    shortcut.feed_eof()
    assert parser.fed[-1] == b"<eof>"


async def _endpoint(request: web.Request) -> web.StreamResponse:
    """Echoes what reaches aiohttp, answers peeks taken by the shortcut with "taken", and
    handles one frame at a time (busy while it does)."""
    ws = DiffResponse(compress=False)
    await ws.prepare(request)
    state = {"reading": False}

    def taken() -> None:
        asyncio.get_running_loop().create_task(ws.send_str("taken"))

    installed = peek_shortcut.install(ws, request, taken, lambda: not state["reading"], 5.0)
    assert installed is not None
    while True:
        state["reading"] = True
        message = await ws.receive()
        state["reading"] = False
        if message.type is aiohttp.WSMsgType.BINARY:
            await ws.send_str(f"aiohttp binary {len(message.data)}")
            continue
        if message.type is not aiohttp.WSMsgType.TEXT:
            break
        await asyncio.sleep(0.05)
        await ws.send_str("aiohttp " + message.data)
    return ws


@run_async
async def test_a_peek_behind_an_unhandled_message_waits_for_it() -> None:
    app = web.Application()
    app.router.add_get("/ws", _endpoint)
    async with TestClient(TestServer(app)) as client:
        ws = await client.ws_connect("/ws")
        await ws.send_str(PEEK.decode())
        assert (await ws.receive(timeout=WAIT_S)).data == "taken"
        await ws.send_str("first")
        await ws.send_str(PEEK.decode())
        got = [(await ws.receive(timeout=WAIT_S)).data for _ in range(2)]
        assert got == ["aiohttp first", "aiohttp " + PEEK.decode()]
        await ws.close()


@run_async
async def test_bytes_behind_the_handshake_are_followed() -> None:
    """A frame's head sent with the upgrade request, its payload (which looks exactly like a
    masked peek: mask key zero) in the next read: the payload is that frame's, not a peek."""
    app = web.Application()
    app.router.add_get("/ws", _endpoint)
    server = TestServer(app)
    await server.start_server()
    loop = asyncio.get_running_loop()
    sock = socket.create_connection((server.host, server.port), timeout=WAIT_S)
    try:
        sock.setblocking(False)
        lookalike = _frame(PEEK)
        head = bytes((0x82, 0x80 | len(lookalike))) + bytes(4)
        request = (
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        await loop.sock_sendall(sock, request + head)
        received = b""
        while b"\r\n\r\n" not in received:
            received += await asyncio.wait_for(loop.sock_recv(sock, 4096), WAIT_S)
        pending = received[received.index(b"\r\n\r\n") + 4 :]
        texts: list[str] = []
        for send in (lookalike, _frame(PEEK)):
            await loop.sock_sendall(sock, send)
            while len(pending) < 2 or len(pending) < 2 + pending[1]:
                pending += await asyncio.wait_for(loop.sock_recv(sock, 4096), WAIT_S)
            texts.append(pending[2 : 2 + pending[1]].decode())
            pending = pending[2 + pending[1] :]
        assert texts == [f"aiohttp binary {len(lookalike)}", "taken"]
    finally:
        sock.close()
        await server.close()
