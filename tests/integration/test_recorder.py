"""The recorder's Parquet history through `bin/exchange`, fed real matching output (see
test_marketdata.Feed): what it wrote equals what was traded, its K-lines equal the live ones,
book snapshots follow event time, a SIGKILL loses and doubles nothing, `bin/query` prints."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator

import polars as pl
import pytest

from engine.enums import Side
from engine.marketdata.kline import NS_PER_SECOND
from engine.matching.events import BookChanged
from ipc.control import call
from services.mdclient import klines
from storage.query import HistoryQuery
from tests.integration.conftest import ROOT, Exchange
from tests.integration.test_marketdata import (
    INSTRUMENT,
    ONLY_RECORDER_AND_MARKETDATA,
    Feed,
    status,
    wait_seq,
)

LIVE_BAR = ("datetime", "open_ticks", "high_ticks", "low_ticks", "close_ticks", "volume")
"""A live bar's fields in the order of the rebuilt columns ts_event, open, high, low, close,
volume."""


@pytest.fixture
def history(exchange_factory: Callable[..., Exchange]) -> Iterator[tuple[Exchange, Feed]]:
    """recorder + marketdata only (the test writes execs); flushes only when asked."""
    instance = exchange_factory(
        *ONLY_RECORDER_AND_MARKETDATA,
        "--set",
        "ports.md_pub=0",
        "--set",
        "recorder.flush_interval_s=3600",
    )
    result = instance.run("up")
    assert result.returncode == 0, f"up failed:\n{result.stdout}\n{result.stderr}"
    feed = Feed(instance, seed=5)
    try:
        yield instance, feed
    finally:
        feed.close()


def _flush(instance: Exchange, seq: int) -> HistoryQuery:
    wait_seq(instance, seq, "recorder")
    call(instance.endpoint("recorder"), "checkpoint", timeout=30)
    return HistoryQuery(instance.home / "history")


def _traded(feed: Feed) -> pl.DataFrame:
    frame = pl.DataFrame(
        {
            "instrument_id": [t.instrument_index for t in feed.trades],
            "price": [t.price for t in feed.trades],
            "qty": [t.qty for t in feed.trades],
        },
        schema={"instrument_id": pl.Int32, "price": pl.Int64, "qty": pl.Int64},
    )
    return _summary(frame)


def _summary(trades: pl.DataFrame) -> pl.DataFrame:
    return (
        trades.group_by("instrument_id")
        .agg(
            pl.len().alias("count"),
            pl.col("qty").sum().alias("volume"),
            ((pl.col("price") * pl.col("qty")).sum() / pl.col("qty").sum()).alias("vwap"),
        )
        .sort("instrument_id")
    )


def test_history_equals_what_was_traded_and_the_live_klines(
    history: tuple[Exchange, Feed],
) -> None:
    instance, feed = history
    feed.orders(150, index=0)
    feed.orders(120, index=1, step_ns=300_000_000)
    query = _flush(instance, feed.orders(60, index=0))
    stored = query.scan("trades").collect()
    assert _summary(stored).equals(_traded(feed))
    assert stored["trade_id"].is_unique().all()
    answer = status(instance, "recorder")["service"]
    assert answer["rows_written"]["trades"] == len(feed.trades)
    assert answer["buffered_rows"] == 0

    events = query.scan("order_events").collect()
    accepted = events.filter(pl.col("status") == 2)
    assert accepted.height == sum(1 for e in feed.events if type(e).__name__ == "OrderAccepted")
    fills = events.filter(pl.col("filled_qty") > 0)
    assert fills.height == 2 * len(feed.trades)
    assert fills["filled_qty"].sum() == 2 * sum(t.qty for t in feed.trades)

    wait_seq(instance, feed.seq)
    live = klines(INSTRUMENT, 3, 1000, instance.home)
    rebuilt = query.klines(0, "3s")
    assert rebuilt.select("ts_event", "open", "high", "low", "close", "volume").rows() == [
        tuple(b[key] for key in LIVE_BAR) for b in live
    ]
    columns = ["ts_event", "open", "high", "low", "close", "volume", "turnover"]
    finished = query.stored_klines(0, 3, count=1000).select(columns)
    assert finished.rows() == rebuilt.select(columns).rows()[:-1]  # all but the open bar
    ticks = query.scan("ticks").filter(pl.col("instrument_id") == 0).sort("seq").collect()
    assert ticks["volume"].to_list()[-1] == feed.model.quote(0)["volume"]


def _expected_snapshots(feed: Feed, index: int) -> list[tuple[int, ...]]:
    """One row per event-time second in which the book changed, as it stood at the end of that
    second: computed with plain dicts, independently of engine.marketdata."""
    bids: dict[int, int] = {}
    asks: dict[int, int] = {}
    rows: list[tuple[int, ...]] = []
    pending: int | None = None

    def row(second: int) -> tuple[int, ...]:
        best_bids = sorted(bids.items(), reverse=True)[:5] + [(0, 0)] * 5
        best_asks = sorted(asks.items())[:5] + [(0, 0)] * 5
        bid, ask = best_bids[:5], best_asks[:5]
        return (
            second * NS_PER_SECOND,
            *(p for p, _ in bid),
            *(q for _, q in bid),
            *(p for p, _ in ask),
            *(q for _, q in ask),
        )

    for event in feed.events:
        kind = type(event).__name__
        if kind not in ("BookChanged", "TradeExecuted") or event.instrument_index != index:
            continue
        second = event.ts // NS_PER_SECOND
        if pending is not None and second > pending:
            rows.append(row(pending))
        pending = second if pending is None else max(pending, second)
        if isinstance(event, BookChanged):
            levels = bids if event.side is Side.BUY else asks
            if event.qty:
                levels[event.price] = event.qty
            else:
                levels.pop(event.price, None)
    return rows


def test_book_snapshots_hold_each_event_second_closing_book(
    history: tuple[Exchange, Feed],
) -> None:
    instance, feed = history
    feed.orders(100, index=0, step_ns=150_000_000)
    query = _flush(instance, feed.orders(20, index=0, step_ns=150_000_000))
    names = ["ts_event"] + [
        f"{side}_{what}_{level}"
        for side in ("bid", "ask")
        for what in ("price", "qty")
        for level in range(1, 6)
    ]
    stored = (
        query.scan("book_snapshots")
        .filter(pl.col("instrument_id") == 0)
        .sort("ts_event")
        .select(names)
        .collect()
    )
    expected = _expected_snapshots(feed, 0)
    assert len(expected) > 5
    assert stored.rows() == expected


def test_sigkilled_recorder_loses_and_doubles_no_row(history: tuple[Exchange, Feed]) -> None:
    instance, feed = history
    _flush(instance, feed.orders(80))  # on disk, checkpointed
    wait_seq(instance, feed.orders(80), "recorder")  # only buffered
    old_pid = instance.process("recorder")["pid"]
    os.kill(old_pid, signal.SIGKILL)
    instance.wait_for(
        lambda: (
            instance.process("recorder")["state"] == "running"
            and instance.process("recorder")["pid"] not in (None, old_pid)
        )
    )
    assert status(instance, "recorder")["service"]["replayed"] > 0
    query = _flush(instance, feed.orders(80))
    stored = query.scan("trades").collect()
    assert stored.height == len(feed.trades)
    assert sorted(stored["trade_id"].to_list()) == sorted(t.trade_id for t in feed.trades)
    assert _summary(stored).equals(_traded(feed))
    seqs = query.scan("order_events").select("seq", "order_id", "status").collect()
    assert not seqs.is_duplicated().any()
    bars = query.scan("klines").select("instrument_id", "period_s", "ts_event").collect()
    assert not bars.is_duplicated().any()


def test_bin_query_prints_the_history_of_a_running_instance(
    history: tuple[Exchange, Feed],
) -> None:
    instance, feed = history
    _flush(instance, feed.orders(50))
    sql = "SELECT instrument_id, COUNT(*) AS n, SUM(qty) AS volume FROM trades GROUP BY 1"
    result = subprocess.run(
        [str(ROOT / "bin" / "query"), "--home", str(instance.home), "--csv", sql],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    header, row = result.stdout.strip().splitlines()
    assert header == "instrument_id,n,volume"
    assert row == f"0,{len(feed.trades)},{sum(t.qty for t in feed.trades)}"


def test_compaction_merges_small_files_and_keeps_every_row(
    exchange_factory: Callable[..., Exchange],
) -> None:
    instance = exchange_factory(
        *ONLY_RECORDER_AND_MARKETDATA,
        "--set",
        "ports.md_pub=0",
        "--set",
        "recorder.flush_interval_s=3600",
        "--set",
        "recorder.compact_interval_s=0.5",
    )
    assert instance.run("up").returncode == 0
    feed = Feed(instance, seed=9)
    try:
        for _ in range(6):
            query = _flush(instance, feed.orders(30))
        partition = instance.home / "history" / "trades"

        def merged() -> bool:
            return any("-c" in path.name for path in partition.glob("*/*/*.parquet"))

        instance.wait_for(merged, timeout=30)
        # compaction may still be running: a query sees every row exactly once at any instant
        stored = query.sql("SELECT trade_id FROM trades")
        assert sorted(stored["trade_id"].to_list()) == sorted(t.trade_id for t in feed.trades)
    finally:
        feed.close()


def test_history_continues_across_down_and_up(history: tuple[Exchange, Feed]) -> None:
    instance, feed = history
    _flush(instance, feed.orders(60))
    feed.close()
    assert instance.run("down").returncode == 0
    assert instance.run("up").returncode == 0
    feed.reattach()  # new rings: exec sequences start at 1 again, below what the files hold
    query = _flush(instance, feed.orders(60))
    stored = query.scan("trades").collect()
    assert sorted(stored["trade_id"].to_list()) == sorted(t.trade_id for t in feed.trades)
    assert _summary(stored).equals(_traded(feed))
