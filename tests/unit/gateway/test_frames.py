"""FrameWriter: RFC 6455 headers at every length boundary, many frames in one write that a
stock client reads as separate messages, and nothing written once the socket is closing."""

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.frames import FrameWriter, frame_header
from tests.unit.gateway.support import run_async

WAIT_S = 5.0


def test_header_lengths_follow_rfc_6455() -> None:
    assert frame_header(0) == b"\x81\x00"
    assert frame_header(125) == b"\x81\x7d"
    assert frame_header(126) == b"\x81\x7e\x00\x7e"
    assert frame_header(65535) == b"\x81\x7e\xff\xff"
    assert frame_header(65536) == b"\x81\x7f" + (65536).to_bytes(8, "big")


PAYLOADS = [b'{"n":1}', "é".encode() * 100, b"x" * 70_000, b""]


async def _three_writes(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False)
    await ws.prepare(request)
    writer = FrameWriter(request)
    assert writer.write(PAYLOADS)
    await writer.drained()
    await ws.receive(timeout=WAIT_S)  # the client's close
    assert writer.closing
    assert not writer.write([b"late"])
    return ws


@run_async
async def test_batched_frames_arrive_as_separate_messages() -> None:
    app = web.Application()
    app.router.add_get("/ws", _three_writes)
    async with TestClient(TestServer(app)) as client:
        ws = await client.ws_connect("/ws")
        received = [await ws.receive(timeout=WAIT_S) for _ in PAYLOADS]
        assert [m.type for m in received] == [aiohttp.WSMsgType.TEXT] * len(PAYLOADS)
        assert [m.data.encode() for m in received] == PAYLOADS
        await ws.close()
