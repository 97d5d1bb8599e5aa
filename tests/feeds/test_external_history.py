"""External trades and bars → the `external_*` history tables, without processes: the feeds
publisher's messages through `storage.external_rows` into Parquet and back through polars."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from engine.enums import Side
from gateway.feeds.instruments import InstrumentSpec
from gateway.feeds.publish import MarketPublisher
from gateway.feeds.records import Trade
from storage.external_rows import ExternalRows, external_instrument_id
from storage.history import HistoryWriter
from storage.query import HistoryQuery

SPEC = InstrumentSpec("KRAKEN", "BTC/USD", "0.1", "0.00000001")
MINUTE_NS = 60 * 1_000_000_000
T0 = 1_700_000_000 * 1_000_000_000 // MINUTE_NS * MINUTE_NS


def _trade(n: int, ts: int, price: int, qty: int, side: Side) -> Trade:
    return Trade(SPEC.instrument_id, ts, ts + 5, price, qty, side, 100 + n, 0, 90)


def test_ids_are_stable_negative_int32() -> None:
    ids = {external_instrument_id(name) for name in ("KRAKEN.BTC/USD", "UPBIT.KRW-BTC", "X.Y")}
    assert len(ids) == 3 and all(-(2**31) <= i <= -1 for i in ids)
    assert external_instrument_id("KRAKEN.BTC/USD") == external_instrument_id("KRAKEN.BTC/USD")


def test_trades_without_finished_bars_give_only_trade_rows() -> None:
    """A poll with trades but no finished bar (the usual case) hands over one table."""
    publisher = MarketPublisher()
    rows = ExternalRows()
    rows.add(
        publisher.publish([_trade(0, T0 + 1, 260055, 1, Side.BUY)], {SPEC.instrument_id: SPEC}.get)
    )
    taken = rows.take()
    assert list(taken) == ["external_trades"]
    assert rows.take() == {}


def test_published_trades_and_finished_bars_round_trip(tmp_path: Path) -> None:
    publisher = MarketPublisher()
    trades = [
        _trade(0, T0 + 1, 260055, 79595, Side.BUY),
        _trade(1, T0 + 2, 260050, 100, Side.SELL),
        _trade(2, T0 + MINUTE_NS + 3, 260060, 7, Side.BUY),  # finishes the first minute
    ]
    messages = publisher.publish(trades, {SPEC.instrument_id: SPEC}.get)
    rows = ExternalRows()
    rows.add(messages)
    rows.add([("md.X.Y.tick", {"instrument": "X.Y"}), ("not-a-topic", {})])
    assert rows.malformed == 2 and rows.skipped >= 1  # quotes and open bars are not history
    writer = HistoryWriter(tmp_path)
    for table, columns in rows.take().items():
        writer.append(table, columns, 0)
    writer.flush()
    history = HistoryQuery(tmp_path)

    got = history.sql("SELECT * FROM external_trades ORDER BY trade_id")
    assert got["price"].to_list() == [260055, 260050, 260060]
    assert got["qty"].to_list() == [79595, 100, 7]
    assert got["aggressor_side"].to_list() == [1, 2, 1]
    assert got["ts_recv"].to_list() == [t.ts_recv for t in trades]
    assert set(got["external_id"]) == {"KRAKEN.BTC/USD"}
    assert set(got["price_tick"]) == {"0.1"} and set(got["lot_size"]) == {"0.00000001"}
    assert set(got["instrument"]) == {external_instrument_id("KRAKEN.BTC/USD")}  # partition

    minute = history.scan("external_klines").filter(pl.col("period_s") == 60).collect()
    assert minute.select("ts_event", "open", "high", "low", "close", "volume").rows() == [
        (T0, 260055, 260055, 260050, 260050, 79695)
    ]
    assert minute["turnover"].to_list() == [260055 * 79595 + 260050 * 100]


def test_publisher_answers_market_queries() -> None:
    """`klines` / `recent_trades` / `snapshot` — what the feeds control socket serves."""
    publisher = MarketPublisher()
    assert publisher.klines(SPEC.instrument_id, 60, 10) is None  # nothing traded yet
    assert publisher.recent_trades(SPEC.instrument_id, 10) is None
    trades = [_trade(n, T0 + n * MINUTE_NS, 260050 + n, 10, Side.BUY) for n in range(3)]
    publisher.publish(trades, {SPEC.instrument_id: SPEC}.get)
    bars = publisher.klines(SPEC.instrument_id, 60, 10)
    assert bars is not None
    assert [(b["open_ticks"], b["finished"]) for b in bars] == [
        (260050, True),
        (260051, True),
        (260052, False),
    ]
    assert [b["close_ticks"] for b in publisher.klines(SPEC.instrument_id, 60, 2) or []] == [
        260051,
        260052,
    ]
    recent = publisher.recent_trades(SPEC.instrument_id, 2)
    assert [t["trade_id"] for t in recent or []] == [101, 102]
    assert publisher.recent_trades(SPEC.instrument_id, 0) == []
    with pytest.raises(ValueError, match="no 7 s K-lines"):
        publisher.klines(SPEC.instrument_id, 7, 10)
    snapshot = publisher.snapshot(SPEC.instrument_id)
    assert snapshot is not None and snapshot["quote"]["last_ticks"] == 260052
