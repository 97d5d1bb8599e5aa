"""Monitoring routes of the gateway: `/dashboard` (page, assets, WebSocket) and `/metrics`.

`add_monitor_routes(app, collector)` adds them to any aiohttp application. One background task
samples the instance every `interval_s` (in a worker thread: psutil and the control sockets
block) and pushes each sample to every open dashboard. With no dashboard open it samples only
every `idle_interval_s`, so an idle edge costs almost nothing, yet keeps the history a page
shows when it opens; a page connecting wakes it at once. `/metrics` renders the latest sample,
and a scrape finding it older than `interval_s` wakes the sampler and waits for a fresh one.
A dashboard may choose an instrument: the feed then asks the marketdata control socket for
`snapshot` (book and open K-line bars) and sends the depth and the bars it has accumulated;
without a marketdata process it says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from aiohttp import WSMsgType, web

from ipc.control import ControlError, call, control_endpoint
from monitor.collector import Collector
from monitor.market import MAX_BARS, MarketView
from monitor.prometheus import render
from monitor.sample import Sample
from monitor.series import History

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parents[1] / "monitor" / "web"
MARKETDATA = "marketdata"
SEND_TIMEOUT_S = 2.0
MARKET_TIMEOUT_S = 0.5
IDLE_INTERVAL_S = 5.0
"""Sampling period while no dashboard is open (a sample costs ~10 ms of CPU)."""
EXPOSITION = "text/plain; version=0.0.4; charset=utf-8"


class MonitorFeed:
    """Samples on a timer and fans the result out to the open dashboards."""

    def __init__(
        self,
        collector: Collector,
        interval_s: float,
        instruments: Sequence[str],
        idle_interval_s: float = IDLE_INTERVAL_S,
    ) -> None:
        self.collector = collector
        self.interval_s = interval_s
        self.idle_interval_s = max(interval_s, idle_interval_s)
        self.instruments = list(instruments)
        self.history = History()
        self.sample: Sample | None = None
        self.clients: dict[web.WebSocketResponse, str | None] = {}
        self.markets: dict[str, MarketView] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="monitor")
        self._ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._sampled = asyncio.Condition()
        self.samples = 0
        self._sampled_at = 0.0

    async def lifecycle(self, _app: web.Application) -> AsyncIterator[None]:
        """cleanup_ctx: run the sampling task while the application runs."""
        task = asyncio.create_task(self._run(), name="monitor-feed")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for ws in list(self.clients):
            await ws.close()
        self._executor.shutdown(wait=True)
        self.collector.close()

    async def latest(self) -> Sample:
        """A sample at most `interval_s` old: the newest one, or the next if it is older (the
        first one, if the feed has just started)."""
        timeout = max(10.0, 5 * self.interval_s)
        await asyncio.wait_for(self._ready.wait(), timeout=timeout)
        assert self.sample is not None
        if time.monotonic() - self._sampled_at > self.interval_s:
            await asyncio.wait_for(self._next_sample(), timeout=timeout)
        return self.sample

    async def _next_sample(self) -> None:
        seen = self.samples
        self._wake.set()
        async with self._sampled:
            await self._sampled.wait_for(lambda: self.samples > seen)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            try:
                sample = await loop.run_in_executor(self._executor, self.collector.sample)
            except Exception:
                log.exception("monitor: sampling failed")
            else:
                self.sample, self._sampled_at = sample, time.monotonic()
                point = self.history.add(sample)
                self._ready.set()
                async with self._sampled:
                    self.samples += 1
                    self._sampled.notify_all()
                await self._broadcast(sample, point)
            await self._pause()

    async def _pause(self) -> None:
        """`interval_s` while a dashboard is open; else up to `idle_interval_s`, or until a
        reader arrives."""
        period = self.interval_s if self.clients else self.idle_interval_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=period)

    async def _broadcast(self, sample: Sample, point: Any) -> None:
        if not self.clients:  # encoding a sample costs ~20 ms of the edge's loop: only for readers
            self.markets.clear()
            return
        frame = _json({"type": "sample", "sample": sample.as_dict(), "point": point})
        wanted = {inst for inst in self.clients.values() if inst}
        for unwatched in set(self.markets) - wanted:
            del self.markets[unwatched]
        markets = {inst: await self._market(inst) for inst in wanted}
        for ws, instrument in list(self.clients.items()):
            await self._send(ws, frame)
            if instrument:
                await self._send(ws, markets[instrument])

    async def _market(self, instrument: str) -> str:
        """The market frame of one instrument, from the marketdata control socket."""
        view = self.markets.setdefault(instrument, MarketView(instrument))
        endpoint = control_endpoint(self.collector.home, MARKETDATA)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, fetch_market, endpoint, view)
        return _json({"type": "market", **view.as_dict()})

    async def _send(self, ws: web.WebSocketResponse, frame: str) -> None:
        """Send or drop the client: a slow dashboard must not hold the others back."""
        try:
            await asyncio.wait_for(ws.send_str(frame), SEND_TIMEOUT_S)
        except (TimeoutError, ConnectionError, RuntimeError):
            self.clients.pop(ws, None)
            await ws.close()

    async def serve(self, request: web.Request) -> web.WebSocketResponse:
        """One dashboard's WebSocket: a hello with the history, then samples as they come.

        A browser sends its page's Origin; one from another site is refused, so a page
        elsewhere cannot read the instance's state through the operator's browser."""
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != request.host:
            raise web.HTTPForbidden(reason="cross-origin dashboard connection")
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=4096)
        await ws.prepare(request)
        hello = {
            "type": "hello",
            "prefix": self.collector.prefix,
            "interval_s": self.interval_s,
            "instruments": self.instruments,
            "history": self.history.as_list(),
        }
        await ws.send_str(_json(hello))
        if self.sample is not None:
            await ws.send_str(_json({"type": "sample", "sample": self.sample.as_dict()}))
        self.clients[ws] = None
        self._wake.set()
        try:
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    await self._on_message(ws, message.data)
        finally:
            self.clients.pop(ws, None)
        return ws

    async def _on_message(self, ws: web.WebSocketResponse, data: str) -> None:
        try:
            request = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(request, dict) or request.get("type") != "select":
            return
        instrument = request.get("instrument")
        if instrument is None or (isinstance(instrument, str) and 0 < len(instrument) <= 64):
            self.clients[ws] = instrument or None
            if instrument:
                await self._send(ws, await self._market(instrument))


def fetch_market(endpoint: str, view: MarketView) -> None:
    """Update `view` from marketdata's `snapshot` (and, the first time, its `klines`)."""
    try:
        view.update(call(endpoint, "snapshot", MARKET_TIMEOUT_S, instrument=view.instrument))
        if not view.seeded and view.period is not None:
            try:
                bars = call(
                    endpoint,
                    "klines",
                    MARKET_TIMEOUT_S,
                    instrument=view.instrument,
                    period=view.period,
                    count=MAX_BARS,
                )
            except ControlError:
                bars = None  # an older marketdata without `klines`: the open bars accumulate
            view.seed(bars)
    except ControlError as exc:
        view.unavailable(str(exc))


def _json(payload: dict[str, Any]) -> str:
    return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_DATACLASS).decode()


FEED_KEY = web.AppKey("monitor_feed", MonitorFeed)


def add_monitor_routes(
    app: web.Application,
    collector: Collector,
    *,
    interval_s: float = 1.0,
    idle_interval_s: float = IDLE_INTERVAL_S,
    instruments: Sequence[str] = (),
) -> MonitorFeed:
    """Serve `/dashboard`, its assets and WebSocket, and `/metrics` for `collector`'s instance.

    The feed takes ownership of the collector (it closes it on application cleanup).
    """
    feed = MonitorFeed(collector, interval_s, instruments, idle_interval_s)
    app[FEED_KEY] = feed

    async def page(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(WEB_DIR / "index.html")

    async def metrics(_request: web.Request) -> web.Response:
        sample = await feed.latest()
        return web.Response(body=render(sample).encode(), headers={"Content-Type": EXPOSITION})

    app.router.add_get("/dashboard", page, name="dashboard")
    app.router.add_get("/dashboard/ws", feed.serve, name="dashboard_ws")
    app.router.add_static("/dashboard/static/", WEB_DIR, name="dashboard_static")
    app.router.add_get("/metrics", metrics, name="metrics")
    app.cleanup_ctx.append(feed.lifecycle)
    return feed
