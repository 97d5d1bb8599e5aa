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


async def _idle_feed(tmp_path: Path) -> None:
    """An idle feed (no page open, a 60 s idle period) samples again only when a reader
    comes: a stale `/metrics` read, then a dashboard connecting."""
    app = web.Application()
    feed = add_monitor_routes(
        app, Collector("shmex_none", tmp_path), interval_s=0.05, idle_interval_s=60.0
    )
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as session:
            await feed.latest()
            await asyncio.sleep(1.0)  # whatever the first read woke has finished by now
            first, count = feed.sample, feed.samples
            await asyncio.sleep(0.5)  # ten active periods; the next idle sample is 60 s off
            assert feed.samples == count and feed.sample is first
            async with session.get(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
                assert response.status == 200 and "shmex_" in await response.text()
            assert feed.samples == count + 1 and feed.sample is not first
            url = f"http://127.0.0.1:{port}/dashboard/ws"
            async with session.ws_connect(url) as ws:
                assert (await asyncio.wait_for(ws.receive_json(), 10))["type"] == "hello"
                frame: dict[str, Any] = {}
                while "point" not in frame:  # a broadcast: the connection woke the sampler
                    frame = await asyncio.wait_for(ws.receive_json(), 10)
                assert frame["type"] == "sample" and feed.samples >= count + 2
    finally:
        await runner.cleanup()


def test_an_idle_feed_samples_when_a_reader_comes(tmp_path: Path) -> None:
    asyncio.run(_idle_feed(tmp_path))
