"""The feeds process through `bin/exchange`: live local venues, replays, mirror mode.

The venues are `tests.feeds.server.VenueServer`s (real WebSocket servers speaking the venues'
formats) run on a thread of the test process; the exchange is real (`bin/exchange up` with a
config that names them). Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest

from engine.accounts.commands import Deposit, OpenAccount, SubmitOrder
from engine.enums import Offset, Side
from ipc.control import call
from services import config as configuration
from services.loadgen import DirectClient
from services.mdclient import Stream
from storage.query import HistoryQuery
from tests.feeds import fixtures
from tests.feeds.server import VenueServer
from tests.integration.conftest import ROOT, Exchange

FEED = ROOT / "bin" / "feed"
MD_SUBSCRIBE = ROOT / "bin" / "md-subscribe"
T0_MS = 1_763_800_000_000
USER = 7001
IF2501_TICKS_3800 = 19_000
"""CFFEX.IF2501 has a 0.2 tick: 3800.0 is 19,000 ticks."""


class ServerThread:
    """Runs VenueServers on an event loop in a background thread (the test body is sync)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.servers: list[VenueServer] = []

    def start(self, server: VenueServer) -> VenueServer:
        asyncio.run_coroutine_threadsafe(server.start(), self.loop).result(10)
        self.servers.append(server)
        return server

    def stop(self) -> None:
        for server in self.servers:
            asyncio.run_coroutine_threadsafe(server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def venues() -> Iterator[ServerThread]:
    runner = ServerThread()
    runner.thread.start()
    try:
        yield runner
    finally:
        runner.stop()


BASE_CONFIG = """
[gateways]
direct = 2
[ports]
md_pub = 0
feeds_pub = 0
[processes]
enabled = ["accounts", "matching", "marketdata", "feeds"]
"""


def write_config(tmp_path: Path, venues: str) -> tuple[str, str]:
    path = tmp_path / "feeds.toml"
    path.write_text(BASE_CONFIG + venues)
    return ("--config", str(path))


def up(exchange_factory: Callable[..., Exchange], *extra: str) -> Exchange:
    instance = exchange_factory(*extra)
    result = instance.run("up")
    assert result.returncode == 0, f"up failed:\n{result.stdout}\n{result.stderr}"
    return instance


def feeds_status(instance: Exchange) -> dict[str, Any]:
    return dict(call(instance.endpoint("feeds"), "status", 5.0)["service"])


def binance_futures_trade(i: int, price: str, qty: str, taker_sells: bool) -> str:
    data = {
        "e": "trade",
        "E": T0_MS + i,
        "s": "BTCUSDT",
        "t": 5000 + i,
        "p": price,
        "q": qty,
        "T": T0_MS + i,
        "m": taker_sells,  # Binance `m`: the buyer is the maker, so the taker sold
        "M": True,
    }
    return orjson.dumps({"stream": "btcusdt@trade", "data": data}).decode()


def write_recording(path: Path, trades: list[tuple[int, str, str, bool]]) -> Path:
    """A Binance USD-M recording (the `bin/feed record` format) of the given trades."""
    header = {
        "format": "shmex-feed/1",
        "venue": "BINANCE_FUTURES",
        "symbols": ["BTCUSDT"],
        "streams": ["trade"],
    }
    lines = [orjson.dumps(header)]
    for i, price, qty, taker_sells in trades:
        frame = binance_futures_trade(i, price, qty, taker_sells)
        lines.append(
            orjson.dumps({"t": (T0_MS + i) * 1_000_000, "src": "ws", "sym": "", "data": frame})
        )
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def replay(instance: Exchange, recording: Path) -> dict[str, Any]:
    result = subprocess.run(
        [str(FEED), "replay", str(recording), "--home", str(instance.home), "--timeout", "30"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, f"replay failed:\n{result.stdout}\n{result.stderr}"
    return dict(orjson.loads(result.stdout.strip().splitlines()[-1]))


def test_two_live_venues_publish_and_reconnect(
    exchange_factory: Callable[..., Exchange], venues: ServerThread, tmp_path: Path
) -> None:
    # every connection plays one trade and closes, so the feed keeps reconnecting with new data
    binance = venues.start(
        VenueServer(
            [[fixtures.trade("BINANCE_FUTURES", i)] for i in range(200)], close_after_script=True
        )
    )
    coinbase = venues.start(
        VenueServer([[fixtures.trade("COINBASE", i)] for i in range(200)], close_after_script=True)
    )
    common = "buffer_rate = 0\nbackoff_initial = 0.2\nbackoff_cap = 0.2\nmax_attempts = -1\n"
    config = write_config(
        tmp_path,
        f"""
[feeds.venues.binance]
venue = "BINANCE_FUTURES"
symbols = ["BTCUSDT"]
streams = ["trade"]
ws_url = "{binance.ws_url}"
rest_url = "{binance.rest_url}"
{common}
[feeds.venues.coinbase]
venue = "COINBASE"
symbols = ["BTC-USD"]
streams = ["matches"]
ws_url = "{coinbase.ws_url}"
rest_url = "{coinbase.rest_url}"
{common}
""",
    )
    instance = up(exchange_factory, *config)
    assert instance.process("feeds")["state"] == "running"
    endpoint = feeds_status(instance)["endpoint"]
    wanted = {"BINANCE_FUTURES.BTCUSDT", "COINBASE.BTC-USD"}
    stream = Stream(sorted(wanted), ["tick", "quote"], endpoint)
    pairs = {(name, kind) for name in wanted for kind in ("tick", "quote")}
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    try:
        deadline = time.monotonic() + 30
        while not pairs <= seen.keys() and time.monotonic() < deadline:
            item = stream.receive(0.5)
            if item is not None:
                topic, body = item
                seen[(body["instrument"], topic.rsplit(".", 1)[1])] = body
    finally:
        stream.close()
    assert pairs <= seen.keys(), sorted(seen)
    tick = seen[("BINANCE_FUTURES.BTCUSDT", "tick")]
    assert tick["price"] == pytest.approx(tick["price_ticks"] * 0.1)
    assert tick["side"] in ("BUY", "SELL") and tick["qty"] > 0
    quote = seen[("COINBASE.BTC-USD", "quote")]
    assert quote["last_ticks"] > 0 and quote["volume"] > 0

    def reconnected() -> bool:
        stats = feeds_status(instance)["venues"]
        return all(stats[name]["reconnects"] >= 2 for name in ("binance", "coinbase"))

    instance.wait_for(reconnected, timeout=30)
    status = feeds_status(instance)
    assert status["venues"]["binance"]["written"] >= 2
    assert status["health"]["coinbase"].startswith("COINBASE WebSocket")
    catalogue = call(instance.endpoint("feeds"), "instruments", 5.0)
    assert catalogue["BINANCE_FUTURES.BTCUSDT"]["price_tick"] == "0.10"
    assert catalogue["COINBASE.BTC-USD"]["symbol"] == "BTC-USD"

    def metric(kind: str, name: str, **labels: str) -> Any:
        answer = call(instance.endpoint("feeds"), "status", 5.0)
        found = [
            e["value"]
            for e in answer["metrics"][kind]
            if e["name"] == name and e["labels"] == labels
        ]
        return found[0] if found else None

    # the health line's figures are metrics too (the monitor and /metrics read them)
    instance.wait_for(lambda: (metric("counters", "feed_written", venue="binance") or 0) >= 2, 10)
    assert metric("counters", "feed_frames", venue="coinbase") >= 2
    assert metric("counters", "feed_dropped", venue="binance", reason="full") == 0
    assert metric("gauges", "feed_connected", venue="binance") in (0, 1)
    assert 0.0 <= metric("gauges", "feed_buffer_fill", venue="coinbase") <= 1.0
    assert 0.0 <= metric("gauges", "feed_dedup_ratio", venue="binance") <= 1.0


def test_replay_shows_external_quotes_in_md_subscribe(
    exchange_factory: Callable[..., Exchange], tmp_path: Path
) -> None:
    config = write_config(
        tmp_path,
        """
[feeds.venues.binance]
venue = "BINANCE_FUTURES"
symbols = ["BTCUSDT"]
streams = ["trade"]
live = false
""",
    )
    instance = up(exchange_factory, *config)
    recording = write_recording(
        tmp_path / "rec.jsonl", [(i, f"{16500 + i}.0", "0.500", i % 2 == 0) for i in range(5)]
    )
    command = [
        str(MD_SUBSCRIBE),
        "--home",
        str(instance.home),
        "BINANCE_FUTURES.BTCUSDT",
        "--type",
        "quote",
        "--count",
        "2",
        "--seconds",
        "40",
        "--view",
        "log",
    ]
    subscriber = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        deadline = time.monotonic() + 30
        while subscriber.poll() is None and time.monotonic() < deadline:
            answer = replay(instance, recording)  # again until the late joiner has seen it
            assert answer["state"] == "done" and answer["frames"] == 5
            time.sleep(0.5)
        out, err = subscriber.communicate(timeout=15)
    finally:
        if subscriber.poll() is None:
            subscriber.kill()
            subscriber.communicate(timeout=5)
    assert subscriber.returncode == 0, err
    lines = [line for line in out.splitlines() if "BINANCE_FUTURES.BTCUSDT quote" in line]
    assert len(lines) == 2, out
    replayed = {f"last={16500 + i}.0 " for i in range(5)}
    assert all(any(price in line for price in replayed) for line in lines), lines


def test_mirror_fills_local_order_and_pnl_follows(
    exchange_factory: Callable[..., Exchange], tmp_path: Path
) -> None:
    config = write_config(
        tmp_path,
        """
[feeds.venues.binance]
venue = "BINANCE_FUTURES"
symbols = ["BTCUSDT"]
streams = ["trade"]
live = false
mirror = { "CFFEX.IF2501" = "BTCUSDT" }
""",
    )
    instance = up(exchange_factory, *config)
    settings = configuration.load(
        config[1],
        env={},
        overrides={"instance.prefix": instance.prefix, "instance.home": str(instance.home)},
    )
    index = configuration.load_instruments(settings).get("CFFEX.IF2501").index  # type: ignore[union-attr]

    def account() -> dict[str, Any]:
        return dict(call(instance.endpoint("accounts"), "account", 5.0, account_id=USER))

    with DirectClient(settings, reader="test-feeds") as client:
        ids = client.request_ids(3)
        client.send(
            [
                OpenAccount(ids[0], USER),
                Deposit(ids[1], USER, 10_000_000 * 100, USER, "CNY"),
                SubmitOrder(ids[2], USER, index, Side.BUY, Offset.OPEN, IF2501_TICKS_3800, 1),
            ]
        )
        answers = client.collect(ids)
        assert all(int(a["code"]) == 0 for a in answers.values())

        # 3801 sold: above the bid, no fill; 3799 sold: through the bid, fills 1 at 3800 (the
        # maker's price) although 2 traded; 3790 bought: no local ask, nothing
        first = write_recording(
            tmp_path / "one.jsonl",
            [
                (0, "3801.0", "1.000", True),
                (1, "3799.0", "2.000", True),
                (2, "3790.0", "1.000", False),
            ],
        )
        assert replay(instance, first)["state"] == "done"

        def filled() -> bool:
            positions = account()["positions"]
            return positions.get("CFFEX.IF2501", {}).get("volume_long", 0) == 1

        instance.wait_for(filled, timeout=20)
        position = account()["positions"]["CFFEX.IF2501"]
        assert position["open_price_long"] == pytest.approx(3800.0)
        assert account()["accounts"]["CNY"]["close_profit"] == 0

        close = client.request_ids(1)
        client.send([SubmitOrder(close[0], USER, index, Side.SELL, Offset.CLOSE, 19_025, 1)])
        assert int(client.collect(close)[close[0]]["code"]) == 0

    # the external market trades up through 3805 (a buyer took 3806): the close fills at 3805
    second = write_recording(tmp_path / "two.jsonl", [(3, "3806.0", "1.000", False)])
    assert replay(instance, second)["state"] == "done"

    def closed() -> bool:
        return "CFFEX.IF2501" not in account()["positions"] or (
            account()["positions"]["CFFEX.IF2501"]["volume_long"] == 0
        )

    instance.wait_for(closed, timeout=20)
    money = account()["accounts"]["CNY"]
    assert money["close_profit"] == pytest.approx((3805.0 - 3800.0) * 300)
    mirror = feeds_status(instance)["mirror"]
    assert mirror["orders"] == 4
    assert mirror["answers"]["house_fills"] == 2
    assert mirror["answers"]["house_filled_qty"] == 2


def test_replayed_external_trades_land_in_the_history(
    exchange_factory: Callable[..., Exchange], tmp_path: Path
) -> None:
    """feeds PUB → recorder → Parquet `external_*` tables → `bin/query`."""
    path = tmp_path / "history.toml"
    path.write_text(
        BASE_CONFIG.replace('"feeds"]', '"recorder", "feeds"]')
        + """
[feeds.venues.binance]
venue = "BINANCE_FUTURES"
symbols = ["BTCUSDT"]
streams = ["trade"]
live = false
"""
    )
    instance = up(exchange_factory, "--config", str(path))
    recorder = instance.endpoint("recorder")
    deadline = time.monotonic() + 30
    while not call(recorder, "status", timeout=5.0)["service"]["external"]["endpoint"]:
        assert time.monotonic() < deadline, "the recorder never found the feeds PUB"
        time.sleep(0.2)
    history = HistoryQuery(instance.home / "history")
    # an hour earlier, replayed until it is recorded: the SUB's subscription has arrived
    prime = write_recording(tmp_path / "prime.jsonl", [(-3_600_000, "16400.0", "0.100", True)])
    deadline = time.monotonic() + 30
    while history.scan("external_trades").collect().is_empty():
        assert time.monotonic() < deadline, call(recorder, "status", timeout=5.0)["service"]
        assert replay(instance, prime)["state"] == "done"
        time.sleep(1.5)  # the recorder polls its SUB once a heartbeat, then flushes
    # five prints in one minute, then one 61 s later: it finishes the first minute's bars
    trades = [(i, f"{16500 + i}.0", "0.500", i % 2 == 0) for i in range(5)]
    trades.append((61_000, "16510.0", "0.250", False))
    answer = replay(instance, write_recording(tmp_path / "rec.jsonl", trades))
    assert answer["state"] == "done" and answer["frames"] == 6

    start = (T0_MS * 1_000_000) // (60 * 10**9) * 60 * 10**9
    minute = (pl.col("period_s") == 60) & (pl.col("ts_event") == start)
    deadline = time.monotonic() + 30
    while history.scan("external_klines").filter(minute).collect().is_empty():
        assert time.monotonic() < deadline, call(recorder, "status", timeout=5.0)["service"]
        time.sleep(0.3)
    sql = (
        "SELECT external_id, trade_id, price, qty, aggressor_side, quality, price_tick, "
        f"lot_size, ts_event FROM external_trades WHERE ts_event >= {start} ORDER BY trade_id"
    )
    result = subprocess.run(
        [str(ROOT / "bin" / "query"), "--home", str(instance.home), "--json", sql],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    rows = orjson.loads(result.stdout)
    assert [r["trade_id"] for r in rows] == [5000, 5001, 5002, 5003, 5004, 66000]
    assert [r["price"] for r in rows] == [165000, 165010, 165020, 165030, 165040, 165100]
    assert [r["qty"] for r in rows] == [500] * 5 + [250]
    assert [r["aggressor_side"] for r in rows] == [2, 1, 2, 1, 2, 1]  # m=True: the taker sold
    assert {(r["external_id"], r["price_tick"], r["lot_size"]) for r in rows} == {
        ("BINANCE_FUTURES.BTCUSDT", "0.10", "0.001")
    }
    assert all(r["quality"] == 100 for r in rows)
    assert rows[-1]["ts_event"] == (T0_MS + 61_000) * 1_000_000
    bars = (
        history.scan("external_klines")
        .filter(minute)
        .select("external_id", "ts_event", "open", "high", "low", "close", "volume", "turnover")
        .collect()
        .to_dicts()
    )
    assert bars == [
        {
            "external_id": "BINANCE_FUTURES.BTCUSDT",
            "ts_event": start,
            "open": 165000,
            "high": 165040,
            "low": 165000,
            "close": 165040,
            "volume": 2500,
            "turnover": sum(165000 + 10 * i for i in range(5)) * 500,
        }
    ]
    status = call(recorder, "status", timeout=5.0)["service"]
    assert status["external"]["malformed"] == 0
    primes = history.scan("external_trades").filter(pl.col("ts_event") < start).collect()
    assert status["rows_written"]["external_trades"] == 6 + len(primes)
