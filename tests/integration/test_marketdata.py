"""The marketdata process through `bin/exchange`, fed real upstream input.

The input is a real MatchingEngine's events, encoded by the real codec and written into
`execs.0` with the real ring writer (the test stands where the matching process would); a model
`MarketData` fed the very same events says what the process must publish. The recorder tests
import `Feed` from here.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from engine.enums import Side
from engine.instruments import InstrumentRegistry
from engine.marketdata.aggregator import MarketData
from engine.marketdata.kline import NS_PER_SECOND
from engine.matching.commands import PlaceOrder
from engine.matching.engine import MatchingEngine
from engine.matching.events import BookChanged, TradeExecuted
from ipc import records
from ipc.control import ControlError, call
from ipc.ring import Ring
from services import config as configuration
from services.matching_codec import events_to_execs
from services.mdclient import Stream, klines, publisher_endpoint, recent_trades, snapshot
from tests.integration.conftest import ROOT, Exchange

START_NS = 1_763_800_000 * NS_PER_SECOND  # 2025-11-22 08:26:40 UTC
ONLY_RECORDER_AND_MARKETDATA = ("--set", "processes.enabled=recorder,marketdata")


def registry() -> InstrumentRegistry:
    return configuration.load_instruments(configuration.load(env={}))


class Feed:
    """Writes matching output into an instance's `execs.0` and keeps the model in step."""

    def __init__(self, instance: Exchange, seed: int = 1) -> None:
        self.instruments = registry()
        self.engine = MatchingEngine(self.instruments)
        self.model = MarketData(self.instruments)
        self.rng = random.Random(seed)
        self.ts = START_NS
        self.order_id = 0
        self.trades: list[TradeExecuted] = []
        self.events: list[Any] = []
        self._instance = instance
        self.reattach()

    def reattach(self) -> None:
        """Write into the instance's current `execs.0` (after `down` + `up`: a new ring, whose
        sequences start at 1 again); the engine and the model carry on."""
        self.seq = 0
        self._ring = Ring.attach(f"{self._instance.prefix}.execs.0", records.EXEC)
        self._writer = self._ring.writer()

    def orders(self, count: int, index: int = 0, step_ns: int = 400_000_000) -> int:
        """Place `count` random limit orders around the reference price, `step_ns` apart;
        returns the last exec sequence written."""
        reference = self.instruments.by_index(index).pre_settlement
        events: list[Any] = []
        for _ in range(count):
            self.order_id += 1
            self.ts += step_ns
            side = Side.BUY if self.rng.random() < 0.5 else Side.SELL
            price = reference + self.rng.randrange(-4, 5)
            qty = self.rng.randrange(1, 6)
            account = self.rng.randrange(1, 9)
            command = PlaceOrder(self.order_id, account, index, side, price, qty, ts=self.ts)
            events.extend(self.engine.apply(command))
        return self.write(events)

    def write(self, events: list[Any]) -> int:
        self.model.apply(events)
        self.events.extend(events)
        self.trades.extend(e for e in events if type(e) is TradeExecuted)
        batch = events_to_execs(events, first_seq=self.seq + 1, ts_init=time.time_ns())
        self._writer.write(batch, timeout=10)
        self.seq += len(batch)
        return self.seq

    def close(self) -> None:
        self._writer.close()
        self._ring.close()


def status(instance: Exchange, process: str) -> dict[str, Any]:
    return dict(call(instance.endpoint(process), "status", timeout=5))


def wait_seq(instance: Exchange, seq: int, process: str = "marketdata") -> None:
    def caught_up() -> bool:
        try:
            return status(instance, process)["service"]["seqs"]["execs.0"] >= seq
        except Exception:
            return False

    instance.wait_for(caught_up, timeout=60)


def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# -- the tests ----------------------------------------------------------------------------------

INSTRUMENT = "CFFEX.IF2501"


@pytest.fixture
def market(exchange_factory: Callable[..., Exchange]) -> Iterator[tuple[Exchange, Feed]]:
    """An instance running only recorder and marketdata (the test is matching), with a free
    PUB port and checkpoints only when asked (so a SIGKILL loses unsaved state)."""
    instance = exchange_factory(
        *ONLY_RECORDER_AND_MARKETDATA,
        "--set",
        "ports.md_pub=0",
        "--set",
        "marketdata.checkpoint_interval_s=3600",
    )
    result = instance.run("up")
    assert result.returncode == 0, f"up failed:\n{result.stdout}\n{result.stderr}"
    feed = Feed(instance)
    try:
        yield instance, feed
    finally:
        feed.close()


def _stream(instance: Exchange, feed: Feed) -> Stream:
    """A subscriber on every type of INSTRUMENT, proven live: book changes on another
    instrument are written until one of its messages arrives."""
    endpoint = publisher_endpoint(instance.home)
    probe = Stream(["CFFEX.IC2501"], ["book"], endpoint)
    stream = Stream([INSTRUMENT], ["tick", "book", "quote", "kline"], endpoint)
    try:
        reference = feed.instruments.by_index(1).pre_settlement
        for attempt in range(200):
            feed.write([BookChanged(1, Side.BUY, reference - 10, attempt + 1, feed.ts)])
            if probe.receive(0.05) is not None:
                return stream
        raise AssertionError("the subscription never became live")
    finally:
        probe.close()


def _collect(stream: Stream, until_seq: int, timeout: float = 30) -> list[tuple[str, Any]]:
    """Messages until a `quote` that reflects `until_seq` arrives."""
    out: list[tuple[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        item = stream.receive(0.2)
        if item is None:
            continue
        out.append(item)
        if item[0].endswith(".quote") and item[1]["seq"] >= until_seq:
            return out
    raise AssertionError(f"no quote at seq {until_seq}; got {len(out)} messages")


def test_execs_become_ticks_books_quotes_and_finished_klines(
    market: tuple[Exchange, Feed],
) -> None:
    instance, feed = market
    stream = _stream(instance, feed)
    try:
        last = feed.orders(60)
        messages = _collect(stream, last)
    finally:
        stream.close()
    ticks = [body for name, body in messages if name.endswith(".tick")]
    trades = [t for t in feed.trades if t.instrument_index == 0]
    assert trades, "the scenario must trade"
    assert [t["trade_id"] for t in ticks] == [t.trade_id for t in trades]
    assert [t["price_ticks"] for t in ticks] == [t.price for t in trades]
    assert all(abs(t["price"] - t["price_ticks"] * 0.2) < 1e-6 for t in ticks)
    assert ticks[-1]["volume"] == sum(t.qty for t in trades)

    books = [body for name, body in messages if name.endswith(".book")]
    model_bids, model_asks = feed.model.book(0, 10)["bids"], feed.model.book(0, 10)["asks"]
    assert [level[:2] for level in books[-1]["bids"]] == [list(b) for b in model_bids]
    assert [level[:2] for level in books[-1]["asks"]] == [list(a) for a in model_asks]
    quote = messages[-1][1]
    assert quote["volume"] == feed.model.quote(0)["volume"]
    assert quote["last_ticks"] == trades[-1].price

    finished = [b for n, b in messages if n == f"md.{INSTRUMENT}.kline.3" and b["finished"]]
    expected = [b for b in feed.model.klines(0, 3, 1000)][:-1]  # all but the open bar
    assert finished, "60 orders 0.4 s apart cross several 3 s buckets"
    assert [(b["id"], b["open_ticks"], b["close_ticks"], b["volume"]) for b in finished] == [
        (b.bar_id, b.open, b.close, b.volume) for b in expected
    ]
    open_bars = [b for n, b in messages if n.endswith(".kline.60") and not b["finished"]]
    assert open_bars[-1]["volume"] == feed.model.klines(0, 60, 1)[-1].volume


def test_a_late_subscriber_starts_from_snapshot_klines_and_recent_trades(
    market: tuple[Exchange, Feed],
) -> None:
    instance, feed = market
    wait_seq(instance, feed.orders(80))
    answer = snapshot(INSTRUMENT, instance.home)
    assert answer["seq"] == feed.seq
    model = feed.model
    assert [level[:2] for level in answer["book"]["bids"]] == [
        list(b) for b in model.book(0)["bids"]
    ]
    assert answer["quote"]["volume"] == model.quote(0)["volume"]
    assert answer["quote"]["high_ticks"] == model.quote(0)["high"]
    assert answer["klines"]["60"]["volume"] == model.klines(0, 60, 1)[-1].volume
    bars = klines(INSTRUMENT, 3, 5, instance.home)
    assert [(b["id"], b["high_ticks"], b["volume"]) for b in bars] == [
        (b.bar_id, b.high, b.volume) for b in model.klines(0, 3, 5)
    ]
    assert [b["finished"] for b in bars] == [True] * (len(bars) - 1) + [False]
    tape = recent_trades(INSTRUMENT, 4, instance.home)
    assert [t["trade_id"] for t in tape] == [t.trade_id for t in model.recent_trades(0, 4)]
    with pytest.raises(ControlError, match="unknown instrument"):
        snapshot("NOPE.X", instance.home)


def _uninterrupted_state(feed: Feed, instance: Exchange) -> tuple[Any, Any]:
    answer = snapshot(INSTRUMENT, instance.home)
    bars = klines(INSTRUMENT, 3, 1000, instance.home)
    return (
        (answer["quote"]["volume"], answer["quote"]["turnover"]),
        [(b["id"], b["open_ticks"], b["close_ticks"], b["volume"]) for b in bars],
    )


def test_sigkilled_marketdata_restarts_without_losing_or_doubling_bars(
    market: tuple[Exchange, Feed],
) -> None:
    instance, feed = market
    feed.orders(40)
    call(instance.endpoint("marketdata"), "checkpoint", timeout=10)  # the first 40: on disk
    wait_seq(instance, feed.orders(40))  # the next 40: only in memory and in the ring
    old_pid = instance.process("marketdata")["pid"]
    os.kill(old_pid, signal.SIGKILL)
    instance.wait_for(
        lambda: (
            instance.process("marketdata")["state"] == "running"
            and instance.process("marketdata")["pid"] not in (None, old_pid)
        )
    )
    assert status(instance, "marketdata")["service"]["replayed"] > 0
    wait_seq(instance, feed.orders(40))
    model = feed.model
    expected = (
        (model.quote(0)["volume"], model.quote(0)["turnover"]),
        [(b.bar_id, b.open, b.close, b.volume) for b in model.klines(0, 3, 1000)],
    )
    volume, bars = _uninterrupted_state(feed, instance)
    turnover_units = round(volume[1] * 100)
    assert (volume[0], turnover_units) == expected[0]
    assert bars == expected[1]


def test_md_subscribe_prints_live_data_and_exits_after_count(
    market: tuple[Exchange, Feed],
) -> None:
    instance, feed = market
    command = [
        str(ROOT / "bin" / "md-subscribe"),
        "--prefix",
        instance.prefix,
        "--home",
        str(instance.home),
        INSTRUMENT,
        "--type",
        "tick,kline.3",
        "--count",
        "5",
        "--seconds",
        "60",
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            feed.orders(5)
            time.sleep(0.2)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"snapshot {INSTRUMENT}")
    live = lines[1:]
    assert len(live) == 5
    assert all(f"{INSTRUMENT} tick" in line or "kline.3" in line for line in live)


def test_down_and_up_keep_the_bars_and_follow_the_new_rings(
    market: tuple[Exchange, Feed],
) -> None:
    instance, feed = market
    wait_seq(instance, feed.orders(50))
    feed.close()
    assert instance.run("down").returncode == 0
    assert instance.run("up").returncode == 0
    feed.reattach()
    last = feed.orders(50)
    assert last == feed.seq < len(feed.events)  # the new ring numbers from 1 again
    wait_seq(instance, last)
    volume, bars = _uninterrupted_state(feed, instance)
    model = feed.model
    assert volume[0] == model.quote(0)["volume"]
    assert bars == [(b.bar_id, b.open, b.close, b.volume) for b in model.klines(0, 3, 1000)]
