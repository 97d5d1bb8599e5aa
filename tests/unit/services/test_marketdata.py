"""The marketdata and recorder building blocks: rendering, topic filters, the held cursor on a
real ring, the recorder's rows from a real MatchingEngine, duplicate floors over real files."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import zmq

from engine.enums import OrderStatus, Side
from engine.instruments import InstrumentRegistry
from engine.marketdata.aggregator import MarketData
from engine.marketdata.kline import NS_PER_SECOND
from engine.matching.commands import CancelOrder, PlaceOrder
from engine.matching.engine import MatchingEngine
from engine.matching.events import BookChanged, TradeExecuted
from ipc import records
from ipc.pubsub import Publisher
from ipc.ring import Ring
from services import config as configuration
from services.marketdata import HeldCursor, Renderer, market_events
from services.matching_codec import events_to_execs
from services.mdclient import Stream, describe, topic_filter
from services.recorder import Duplicates, Recording
from storage.exec_rows import order_event_rows
from storage.history import HistoryWriter
from storage.query import HistoryQuery

T0 = 1_763_800_000 * NS_PER_SECOND


@pytest.fixture
def registry() -> InstrumentRegistry:
    return configuration.load_instruments(configuration.load(env={}))


def _trade(trade_id: int, ts: int, price: int, qty: int) -> TradeExecuted:
    return TradeExecuted(trade_id, 0, price, qty, 10, 1, Side.BUY, 5, 2, 0, 0, ts)


def test_rendered_prices_are_the_ticks_times_the_tick_size(registry: InstrumentRegistry) -> None:
    market = MarketData(registry)
    update = market.apply(
        [BookChanged(0, Side.BUY, 19001, 3, T0), _trade(7, T0 + 1, 19003, 2)], {7: 2}
    )
    render = Renderer(registry)
    tick = render.tick(update.ticks[0], 42)
    assert Decimal(str(tick["price"])) == Decimal("0.2") * 19003 == Decimal("3800.6")
    assert (tick["price_ticks"], tick["qty"], tick["side"], tick["seq"]) == (19003, 2, "BUY", 42)
    # turnover: 3800.6 × 2 lots × multiplier 300 = 2_280_360.00 CNY
    assert tick["turnover"] == 2_280_360.0 and tick["open_interest"] == 2
    assert "seq" not in render.tick(update.ticks[0], None)
    book = render.book(market, 0, 42, 10)
    assert book["bids"] == [[19001, 3, 3800.2]] and book["asks"] == []
    quote = render.quote(market, 0, 42)
    assert (quote["bid_price"], quote["bid_price_ticks"]) == (3800.2, 19001)
    assert (quote["ask_price"], quote["ask_price_ticks"]) == (None, 0)
    assert quote["last"] == 3800.6 and quote["pre_close"] == 3800.0
    bar = render.bar(0, market.open_bars(0)[0], 42, finished=False)
    assert (bar["open"], bar["open_ticks"], bar["period"], bar["finished"]) == (
        3800.6,
        19003,
        3,
        False,
    )
    assert "3800.6 x2 BUY" in describe("md.CFFEX.IF2501.tick", tick)


def test_topic_filter_distinguishes_periods_and_refuses_unknown_types() -> None:
    assert topic_filter(["A.b"], ["tick", "kline", "kline.60"]) == [
        "md.A.b.tick",
        "md.A.b.kline.",
        "md.A.b.kline.60",
    ]
    for bad in ("trades", "kline.x", "tick.3"):
        with pytest.raises(ValueError, match="unknown market-data type"):
            topic_filter(["A.b"], [bad])


def test_stream_matches_topics_exactly() -> None:
    publisher = Publisher(zmq.Context.instance(), "tcp://127.0.0.1:*")
    stream = Stream(["A.b"], ["kline.6"], publisher.endpoint)
    try:
        deadline = time.monotonic() + 10
        got = None
        while got is None and time.monotonic() < deadline:
            publisher.publish("md.A.b.kline.60", {"n": 60})
            publisher.publish("md.A.bc.kline.6", {"n": -1})
            publisher.publish("md.A.b.kline.6", {"n": 6})
            got = stream.receive(0.05)
        assert got == ("md.A.b.kline.6", {"n": 6})
        while (item := stream.receive(0.05)) is not None:
            assert item[0] == "md.A.b.kline.6"
    finally:
        stream.close()
        publisher.close()


def test_held_cursor_keeps_what_the_main_reader_released_until_advanced(prefix: str) -> None:
    ring = Ring.create(f"{prefix}.execs.0", records.EXEC, 64)
    try:
        main = ring.reader("marketdata")
        held = HeldCursor(ring, "marketdata", ring.reader("marketdata.held"))
        batch = records.new_batch(records.EXEC, 40)
        batch["seq"] = np.arange(1, 41)
        writer = ring.writer()
        writer.write(batch[:30], timeout=1)
        view = main.read(30, timeout=1)
        main.release(len(view))
        assert held.pending()["seq"].tolist() == list(range(1, 31))
        held.advance(12)
        assert held.pending()["seq"].tolist() == list(range(13, 31))
        writer.write(batch[30:], timeout=1)  # wraps past slot 63 only because held released
        view = main.read(10, timeout=1)
        main.release(len(view))
        assert held.pending()["seq"].tolist() == list(range(13, 41))
        held.advance(40)
        assert len(held.pending()) == 0
        writer.close()
    finally:
        ring.close()
        ring.unlink()


def _engine_events(registry: InstrumentRegistry) -> list[object]:
    engine = MatchingEngine(registry)
    commands = [
        PlaceOrder(1, 1, 0, Side.SELL, 19005, 3, ts=T0),
        PlaceOrder(2, 2, 0, Side.SELL, 19006, 2, ts=T0 + 100),
        PlaceOrder(3, 3, 0, Side.BUY, 19000, 4, ts=T0 + NS_PER_SECOND),
        PlaceOrder(4, 4, 0, Side.BUY, 19006, 4, ts=T0 + 2 * NS_PER_SECOND),  # takes 3 + 1
        CancelOrder(3, 0, ts=T0 + 3 * NS_PER_SECOND + 5),
        PlaceOrder(5, 5, 0, Side.SELL, 19010, 1, ts=T0 + 4 * NS_PER_SECOND),
        PlaceOrder(6, 6, 0, Side.BUY, 19010, 1, ts=T0 + 5 * NS_PER_SECOND),  # order 2's last lot
    ]
    return [event for command in commands for event in engine.apply(command)]


def test_recording_rows_follow_event_time(registry: InstrumentRegistry) -> None:
    events = _engine_events(registry)
    batch = events_to_execs(events)
    market_only, trade_seqs = market_events(batch, len(registry))
    recording = Recording(registry, MarketData(registry, keep=1), {})
    recording.apply(market_only, trade_seqs.tolist())
    rows = recording.take()
    ticks = rows["ticks"]
    assert [(t[3], t[4]) for t in ticks] == [(19005, 3), (19006, 1), (19006, 1)]
    assert ticks[0][1] == int(batch["seq"][batch["kind"] == records.Kind.TRADE][0])
    assert ticks[-1][6] == 5  # the day's volume after the last print
    books = rows["book_snapshots"]
    seconds = [row[0] // NS_PER_SECOND - T0 // NS_PER_SECOND for row in books]
    assert seconds == [0, 1, 2, 3, 4]  # second 5 stays pending until a later event
    second_0 = books[0]
    assert second_0[2:7] == (0, 0, 0, 0, 0)  # no bids at the end of second 0
    assert second_0[12:14] == (19005, 19006)  # asks, best first
    assert recording.seconds == {0: T0 // NS_PER_SECOND + 5}
    bars = [row for row in rows["klines"] if row[2] == 3]
    # T0 is 1 s into a 3 s bucket: the trades of seconds 2 and 4 share one, closed by second 5
    assert [(row[0], row[3], row[6], row[7]) for row in bars] == [
        (T0 + 2 * NS_PER_SECOND, 19005, 19006, 4)
    ]


def test_order_event_rows_cover_every_order_report(registry: InstrumentRegistry) -> None:
    batch = events_to_execs(_engine_events(registry))
    rows = order_event_rows(batch)
    statuses = rows["status"].tolist()
    assert statuses.count(OrderStatus.ACCEPTED) == 6
    assert statuses.count(OrderStatus.CANCELLED) == 1
    fills = rows["filled_qty"] > 0
    assert fills.sum() == 6  # three trades, two legs each
    assert rows["filled_qty"].sum() == 2 * 5
    assert (np.diff(rows["seq"]) >= 0).all()
    maker = rows["order_id"][fills & (rows["side"] == Side.SELL)].tolist()
    assert maker == [1, 2, 2]
    assert rows["status"][rows["order_id"] == 1][-1] == OrderStatus.FILLED


def test_duplicates_drop_rows_the_files_already_hold(tmp_path: Path) -> None:
    writer = HistoryWriter(tmp_path)
    writer.append(
        "klines",
        {
            "ts_event": np.array([T0, T0 + 3 * NS_PER_SECOND]),
            "instrument_id": np.array([0, 0]),
            "period_s": np.array([3, 3]),
            **{k: np.array([1, 1]) for k in ("open", "high", "low", "close", "volume")},
            **{k: np.array([1, 1]) for k in ("turnover", "open_oi", "close_oi")},
        },
        0,
    )
    writer.flush()
    duplicates = Duplicates(HistoryQuery(tmp_path))
    rows = pl.DataFrame(
        {
            "ts_event": [T0 + 3 * NS_PER_SECOND, T0 + 6 * NS_PER_SECOND, T0],
            "instrument_id": [0, 0, 0],
            "period_s": [3, 3, 60],
        },
        schema={"ts_event": pl.Int64, "instrument_id": pl.Int32, "period_s": pl.Int32},
    )
    kept = duplicates.drop("klines", rows)
    assert kept.rows() == [(T0 + 6 * NS_PER_SECOND, 0, 3), (T0, 0, 60)]
    assert duplicates.drop("trades", rows.head(0)).is_empty()


def test_rendered_prices_equal_the_exact_decimal(registry: InstrumentRegistry) -> None:
    render = Renderer(registry)
    market = MarketData(registry)
    for instrument in registry:
        for ticks in (*range(1, 5000, 7), 19003, 10**9 + 3, 2**53 - 1):
            market.apply([BookChanged(instrument.index, Side.BUY, ticks, 1, T0)])
            level = render.book(market, instrument.index, 0, 1)["bids"][0]
            assert level[2] == float(instrument.price_tick * ticks), (instrument.id, ticks)
            market.apply([BookChanged(instrument.index, Side.BUY, ticks, 0, T0)])
