"""A local venue: an aiohttp WebSocket + HTTP server on 127.0.0.1 (port 0) that plays scripts.

Each WebSocket connection waits for the client's first message (its subscribe request, kept in
`subscriptions`), then sends the next script's frames (str → text frame, bytes → binary frame)
and then either closes (`close_after_script`: True, or the number of first connections to close)
or stays open. GET requests answer from `rest`
(path → JSON body, or a list of bodies answered in turn) after `rest_failures` 503 answers.
Everything is counted for assertions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson
from aiohttp import WSMsgType, web


class VenueServer:
    def __init__(
        self,
        scripts: Sequence[Sequence[str | bytes]],
        *,
        rest: dict[str, Any] | None = None,
        close_after_script: bool | int = False,
        rest_failures: int = 0,
        reply_pong: str | None = None,
    ) -> None:
        self.scripts = [list(s) for s in scripts]
        self.rest = rest or {}
        self.close_after_script = close_after_script
        self.rest_failures = rest_failures
        self.reply_pong = reply_pong
        self.connections = 0
        self.subscriptions: list[str] = []
        self.received: list[str] = []
        self.rest_hits: list[str] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def ws_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ws"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> VenueServer:
        app = web.Application()
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> VenueServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        index = self.connections
        self.connections += 1
        first = await ws.receive(timeout=10)
        if first.type == WSMsgType.TEXT:
            self.subscriptions.append(first.data)
        script = self.scripts[index] if index < len(self.scripts) else []
        for frame in script:
            if isinstance(frame, bytes):
                await ws.send_bytes(frame)
            else:
                await ws.send_str(frame)
        closing = self.close_after_script
        if closing is True or (closing is not False and index < closing):
            await ws.close()
            return ws
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                self.received.append(message.data)
                if self.reply_pong is not None:
                    await ws.send_str(self.reply_pong)
        return ws

    async def _rest(self, request: web.Request) -> web.Response:
        self.rest_hits.append(request.path_qs)
        if self.rest_failures > 0:
            self.rest_failures -= 1
            return web.Response(status=503)
        body = self.rest.get(request.path)
        if isinstance(body, list):  # successive answers; the last one repeats
            body = body.pop(0) if len(body) > 1 else body[0]
        if body is None:
            return web.Response(status=404)
        await asyncio.sleep(0)
        return web.Response(body=orjson.dumps(body), content_type="application/json")
