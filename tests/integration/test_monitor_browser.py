"""The web dashboard in headless Chromium against a running exchange, and the terminal view's
screenshot. Chromium is Debian's `chromium` package, installed here when missing; the page is
driven over the DevTools protocol with aiohttp's WebSocket client. Screenshots go to
tests/artifacts/."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import math
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import zmq
from aiohttp import web
from rich.console import Console

from gateway.dashboard import add_monitor_routes
from ipc.control import ControlServer, control_endpoint
from monitor.collector import Collector
from monitor.series import History
from monitor.terminal import dashboard
from tests.integration.conftest import ROOT, Exchange
from tests.integration.test_monitor import publish_execs
from tests.unit.monitor.market_feed import PERIOD, MarketFeed

ARTIFACTS = ROOT / "tests" / "artifacts"
INSTALL_LOCK = Path("/tmp/shmex-chromium-install.lock")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
WINDOW = (1400, 1450)
INSTRUMENT = "CFFEX.IF2501"


def _install_chromium() -> str | None:
    """apt-get install chromium once per machine (a file lock serialises parallel runs)."""
    with INSTALL_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = shutil.which("chromium")
        if found:
            return found
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
            try:
                subprocess.run(command, env=env, capture_output=True, timeout=900, check=True)
            except (OSError, subprocess.SubprocessError):
                return None
        return shutil.which("chromium")


@pytest.fixture(scope="session")
def chromium() -> str:
    path = shutil.which("chromium") or _install_chromium()
    if path is None:
        pytest.skip("chromium is not installed and `apt-get install -y chromium` failed")
    return path


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


class DevTools:
    """The few DevTools protocol calls the test needs, on one page's WebSocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = 0

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._ids += 1
        request_id = self._ids
        await self._ws.send_json({"id": request_id, "method": method, "params": params})
        while True:
            message = await asyncio.wait_for(self._ws.receive_json(), timeout=30)
            if message.get("id") == request_id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                state = await self.evaluate(
                    "JSON.stringify(document.body.innerText.slice(0, 3000))"
                )
                raise AssertionError(f"page never satisfied {expression!r}; page text: {state}")
            await asyncio.sleep(0.2)

    async def screenshot(self, path: Path) -> None:
        width, height = WINDOW
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        shot = await self.send("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))


@contextlib.asynccontextmanager
async def _browser(chromium: str, profile: Path) -> Any:
    """A headless Chromium with remote debugging on a free port; killed on exit."""
    process = await asyncio.create_subprocess_exec(
        chromium,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        "--remote-debugging-port=0",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or process.returncode is not None:
                raise AssertionError("chromium did not open its DevTools port")
            await asyncio.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json()
            page = next(t for t in targets if t["type"] == "page")
            async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                yield DevTools(ws)
    finally:
        if process.returncode is None:
            process.kill()
        await asyncio.wait_for(process.wait(), timeout=30)


@contextlib.contextmanager
def _marketdata_standin(exchange: Exchange) -> Iterator[bool]:
    """While the instance has no marketdata process (it comes in a later phase), answer its
    `snapshot`/`klines` control commands from a real engine MarketData in a thread, so the
    charts have data; with a real marketdata process this does nothing. Yields whether it runs."""
    if any(row["process"] == "marketdata" for row in exchange.status()["processes"]):
        yield False
        return
    feed = MarketFeed(INSTRUMENT, time.time_ns() - 80 * PERIOD * 1_000_000_000)
    feed.advance(80)
    stop = threading.Event()

    def snapshot(args: dict[str, Any]) -> dict[str, Any]:
        feed.advance()
        return feed.snapshot(args)

    def serve() -> None:
        context = zmq.Context()
        server = ControlServer(context, control_endpoint(exchange.home, "marketdata"))
        server.register("snapshot", snapshot)
        server.register("klines", feed.klines)
        try:
            while not stop.is_set():
                server.poll(50)
        finally:
            server.close()
            context.term()

    thread = threading.Thread(target=serve, name="marketdata-standin")
    thread.start()
    try:
        yield True
    finally:
        stop.set()
        thread.join(10)


async def _serve(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    return runner, server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]


async def _publish_while(exchange: Exchange, stop: asyncio.Event, seq: int) -> None:
    """Records keep flowing through execs.0 (read by the real recorder) while the page runs."""
    while not stop.is_set():
        if not await asyncio.to_thread(publish_execs, exchange, 200, seq):
            return
        seq += 200
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)


PAGE_FILLED = """(() => {
  const s = window.shmex;
  return !!s && s.samples >= 4
    && document.querySelectorAll('#processes tbody tr').length >= 2
    && [...document.querySelectorAll('#processes tbody tr')].some(
         r => r.dataset.process === 'recorder' && r.cells[1].textContent === 'running')
    && document.querySelector('#rings tbody tr[data-ring="execs.0"]') !== null
    && +document.getElementById('throughput').dataset.drawn >= 3
    && +document.getElementById('latency').dataset.drawn >= 3
    && s.market !== null
    && (s.market.instrument === '%s');
})()"""

FLOWING = "Math.max(...window.shmex.points.map(p => p.throughput)) > 0"

KILL_ALERT = """[...document.querySelectorAll('#alerts li')].some(li =>
  ['process_down', 'process_restarting'].includes(li.dataset.rule)
  && li.textContent.includes('recorder'))"""

MARKET_SHOWN = """(() => {
  const m = window.shmex.market;
  if (!m.available) return document.getElementById('market-status').textContent.includes('no data');
  return +document.getElementById('depth').dataset.drawn > 0
      || +document.getElementById('kline').dataset.drawn > 0;
})()"""


CHARTS_DRAWN = """+document.getElementById('depth').dataset.drawn === 20
  && +document.getElementById('kline').dataset.drawn >= 60"""


async def _scenario(
    exchange: Exchange, chromium: str, profile: Path, artifacts: Path, stack: contextlib.ExitStack
) -> float:
    app = web.Application()
    collector = Collector(exchange.prefix, exchange.home)
    add_monitor_routes(app, collector, interval_s=0.25, instruments=[INSTRUMENT])
    runner, port = await _serve(app)
    stop = asyncio.Event()
    standin = stack.enter_context(_marketdata_standin(exchange))
    flowing = await asyncio.to_thread(publish_execs, exchange, 200, 1)
    publisher = asyncio.create_task(_publish_while(exchange, stop, 201))
    try:
        async with _browser(chromium, profile) as page:
            await page.send("Page.enable")
            url = f"http://127.0.0.1:{port}/dashboard?instrument={INSTRUMENT}"
            await page.send("Page.navigate", url=url)
            await page.wait_for(PAGE_FILLED % INSTRUMENT, timeout=60)
            if flowing:  # else a live matching process owns execs.0 and sets the pace
                await page.wait_for(FLOWING)
            assert await page.wait_for(MARKET_SHOWN)
            if standin:
                await page.wait_for(CHARTS_DRAWN)
            assert await page.evaluate("document.getElementById('alert-count').textContent") == "0"
            await page.screenshot(artifacts / "dashboard.png")
            stop.set()
            await publisher
            pid = exchange.process("recorder")["pid"]
            os.kill(pid, signal.SIGKILL)
            killed = time.monotonic()
            await page.wait_for(KILL_ALERT, timeout=10)
            elapsed = time.monotonic() - killed
            await page.screenshot(artifacts / "dashboard_alert.png")
            return elapsed
    finally:
        stop.set()
        await publisher
        await runner.cleanup()


def test_dashboard_in_headless_chromium(
    exchange: Exchange, chromium: str, tmp_path: Path, artifacts: Path
) -> None:
    with contextlib.ExitStack() as stack:
        elapsed = asyncio.run(_scenario(exchange, chromium, tmp_path / "profile", artifacts, stack))
    assert elapsed < 10
    for name in ("dashboard.png", "dashboard_alert.png"):
        assert (artifacts / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _live_frame(exchange: Exchange) -> Console:
    """A few samples with records flowing in between, rendered as the terminal dashboard
    (SHMEX_MONITOR_SHOT_SAMPLES=40 draws fuller sparklines for the docs screenshot)."""
    history = History()
    with Collector(exchange.prefix, exchange.home) as collector:
        for n in range(int(os.environ.get("SHMEX_MONITOR_SHOT_SAMPLES", "3"))):
            publish_execs(exchange, 500, 1 + 500 * n)
            time.sleep(0.3)
            sample = collector.sample()
            history.add(sample)
    console = Console(record=True, width=150, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(dashboard(sample, history))
    return console


def test_terminal_dashboard_screenshot(
    exchange: Exchange, chromium: str, tmp_path: Path, artifacts: Path
) -> None:
    console = _live_frame(exchange)
    text = console.export_text(clear=False)
    assert "recorder" in text and "execs.0" in text
    svg = artifacts / "monitor.svg"
    console.save_svg(str(svg), title="bin/monitor")
    png = artifacts / "monitor.png"
    png.unlink(missing_ok=True)
    view = re.search(r'viewBox="0 0 ([\d.]+) ([\d.]+)"', svg.read_text())
    assert view is not None
    width, height = (math.ceil(float(v)) for v in view.groups())
    subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--window-size={width},{height}",
            f"--screenshot={png}",
            svg.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
