"""gateway/dashboard: the dashboard WebSocket's hello and its same-origin rule."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from gateway.dashboard import add_monitor_routes
from monitor.collector import Collector


async def _dashboard_socket(tmp_path: Path, origin: str | None) -> int | dict[str, Any]:
    """Open /dashboard/ws with the given Origin: the hello frame, or the refusal's status."""
    app = web.Application()
    add_monitor_routes(app, Collector("shmex_none", tmp_path), interval_s=0.05)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    headers = {"Origin": origin.format(port=port)} if origin else {}
    try:
        async with aiohttp.ClientSession() as session:
            try:
                url = f"http://127.0.0.1:{port}/dashboard/ws"
                async with session.ws_connect(url, headers=headers) as ws:
                    return dict(await asyncio.wait_for(ws.receive_json(), 10))
            except aiohttp.WSServerHandshakeError as refused:
                return refused.status
    finally:
        await runner.cleanup()


def test_dashboard_socket_says_hello_and_refuses_other_origins(tmp_path: Path) -> None:
    hello = asyncio.run(_dashboard_socket(tmp_path, "http://127.0.0.1:{port}"))
    assert isinstance(hello, dict) and hello["type"] == "hello" and hello["prefix"] == "shmex_none"
    assert asyncio.run(_dashboard_socket(tmp_path, None))["type"] == "hello"  # type: ignore[index]
    assert asyncio.run(_dashboard_socket(tmp_path, "http://evil.example")) == 403
