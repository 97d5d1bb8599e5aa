"""An external instrument's current state reaches every late reader, not only the next quote.

Real processes through `bin/exchange up` (accounts, matching, marketdata, feeds with a
replay-only Binance USD-M table, gateway); a recording is replayed into the feeds process with
`bin/feed replay` and nothing is published after it. A DIFF client subscribing afterwards, the
REST market routes, `services.mdclient` and `bin/md-subscribe` must all see the replayed prices:
they ask the feeds process (through the gateway's catalogue, or its control socket) for the
snapshot, K-lines and recent trades that marketdata answers for local instruments.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from engine.codes import ResultCode
from gateway.client import EdgeClient
from ipc.control import ControlError, call
from services import mdclient
from tests.integration.conftest import ROOT, Exchange
from tests.integration.test_feeds import replay, up, write_recording
from tests.integration.test_feeds_diff import CONFIG, EXTERNAL
from tests.integration.test_gateway_fixtures import DiffSocket, RunningEdge, run

MD_SUBSCRIBE = ROOT / "bin" / "md-subscribe"
TRADES = [(i, f"{16500 + i}.0", "0.500", i % 2 == 0) for i in range(5)]
LAST, LAST_TICKS = 16504.0, 165040
FEEDS_READY_S = 30.0


@pytest.fixture
def replayed(exchange_factory: Callable[..., Exchange], tmp_path: Path) -> Exchange:
    """A running instance whose feeds process has replayed TRADES, then gone quiet."""
    path = tmp_path / "external_market.toml"
    path.write_text(CONFIG)
    instance = up(exchange_factory, "--config", str(path))
    answer = replay(instance, write_recording(tmp_path / "rec.jsonl", TRADES))
    assert answer["state"] == "done" and answer["frames"] == len(TRADES)
    feeds = instance.endpoint("feeds")
    deadline = time.monotonic() + FEEDS_READY_S
    while True:
        try:
            if call(feeds, "snapshot", 2.0, instrument=EXTERNAL)["quote"]["last_ticks"]:
                return instance
        except ControlError:
            pass  # the replay's records are still on their way through the feeds loop
        assert time.monotonic() < deadline, "the feeds process never had the replayed trades"
        time.sleep(0.1)


def test_late_readers_of_an_external_instrument_see_its_state(replayed: Exchange) -> None:
    url = str(call(replayed.endpoint("gateway.1"), "status", timeout=5.0)["http"]).rstrip("/")
    edge = RunningEdge(replayed, url)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            rest = EdgeClient(session, edge.url)
            tick = await rest.expect("GET", f"/api/market/tick/{EXTERNAL}")
            assert tick["instrument_id"] == EXTERNAL and tick["quote"]["last_price"] == LAST
            assert tick["quote"]["volume"] == 2500  # 5 trades of 500 lots
            book = await rest.expect("GET", f"/api/market/orderbook/{EXTERNAL}?depth=3")
            assert len(book["bids"]) <= 3 and len(book["asks"]) <= 3
            trades = await rest.expect("GET", f"/api/market/recent-trades/{EXTERNAL}?count=2")
            assert [t["last_price"] for t in trades] == [16503.0, LAST]
            bars = await rest.expect("GET", f"/api/klines/{EXTERNAL}/1m?count=5")
            assert [(b["open"], b["high"], b["low"], b["close"]) for b in bars] == [
                (16500.0, LAST, 16500.0, LAST)
            ]
            missing = await rest.call("GET", "/api/market/tick/NOPE.X")
            assert missing.code == ResultCode.NO_SUCH_INSTRUMENT
            missing_bars = await rest.call("GET", "/api/klines/NOPE.X/1m")
            assert missing_bars.code == ResultCode.NO_SUCH_INSTRUMENT

            diff = await DiffSocket.open(session, edge)
            await diff.until(lambda s: s.get("mdhis_more_data") is False)
            await diff.send({"aid": "subscribe_quote", "ins_list": EXTERNAL})
            await diff.until(lambda s: EXTERNAL in s.get("quotes", {}))
            quote = diff.state["quotes"][EXTERNAL]
            assert quote["exchange_id"] == "BINANCE_FUTURES"
            assert (quote["last_price"], quote["highest"], quote["lowest"]) == (
                LAST,
                LAST,
                16500.0,
            )
            assert quote["volume"] == 2500
            await diff.close()

    run(scenario)


def test_mdclient_and_md_subscribe_ask_the_feeds_process(replayed: Exchange) -> None:
    snapshot = mdclient.snapshot(EXTERNAL, replayed.home, timeout=5.0)
    assert snapshot["quote"]["last_ticks"] == LAST_TICKS and snapshot["quote"]["external"]
    assert snapshot["klines"]["60"]["close_ticks"] == LAST_TICKS
    trades = mdclient.recent_trades(EXTERNAL, 2, replayed.home, timeout=5.0)
    assert [t["price_ticks"] for t in trades] == [165030, LAST_TICKS]
    (bar,) = mdclient.klines(EXTERNAL, 60, 5, replayed.home, timeout=5.0)
    assert (bar["open_ticks"], bar["close_ticks"]) == (165000, LAST_TICKS)
    with pytest.raises(ControlError):  # neither marketdata nor the feeds know it
        mdclient.snapshot("NOPE.X", replayed.home, timeout=2.0)

    shown = subprocess.run(
        [
            str(MD_SUBSCRIBE),
            *("--prefix", replayed.prefix, "--home", str(replayed.home)),
            *("--view", "log", "--seconds", "0.5", EXTERNAL),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert shown.returncode == 0, shown.stderr
    (line,) = [x for x in shown.stdout.splitlines() if x.startswith(f"snapshot {EXTERNAL}")]
    assert f"'last': {LAST}" in line, line
    assert "no snapshot" not in shown.stderr
