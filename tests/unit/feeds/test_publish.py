"""gateway.feeds.publish: external records → the marketdata process's topics and JSON."""

from __future__ import annotations

from typing import Any

import pytest

from engine.enums import Side
from engine.marketdata.aggregator import MarketData
from engine.marketdata.kline import NS_PER_SECOND
from engine.matching.commands import PlaceOrder
from engine.matching.engine import MatchingEngine
from gateway.feeds.config import FeedConfig
from gateway.feeds.instruments import InstrumentSpec
from gateway.feeds.publish import MarketPublisher
from gateway.feeds.records import BookUpdate, Ticker, Trade
from gateway.feeds.venues import VENUES
from services import config as configuration
from services.marketdata import Renderer
from tests.feeds import fixtures

SPEC = InstrumentSpec("BINANCE_FUTURES", "BTCUSDT", "0.10", "0.001")
ID = SPEC.instrument_id
T0 = 1_763_800_000 * NS_PER_SECOND  # a whole 3 s bucket


def specs(name: str) -> InstrumentSpec | None:
    return SPEC if name == ID else None


def trade(ts: int, price: int, qty: int, side: Side = Side.BUY, trade_id: int = 1) -> Trade:
    return Trade(ID, ts, ts, price, qty, side, trade_id, 0, 100)


def by_topic(messages: list[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    return dict(messages)


def test_trades_become_ticks_quote_and_open_bars() -> None:
    publisher = MarketPublisher()
    messages = publisher.publish(
        [trade(T0, 165_000, 500), trade(T0 + 1, 165_010, 250, Side.SELL, 2)], specs
    )
    topics = [topic for topic, _body in messages]
    assert topics[:2] == [f"md.{ID}.tick", f"md.{ID}.tick"]
    assert topics[-1] == f"md.{ID}.quote"  # the quote ends a batch, as in marketdata
    assert f"md.{ID}.kline.60" in topics and f"md.{ID}.book" not in topics
    first, second = messages[0][1], messages[1][1]
    assert first["price"] == pytest.approx(16500.0) and first["price_ticks"] == 165_000
    assert (first["qty"], first["side"], first["volume"]) == (500, "BUY", 500)
    assert (second["side"], second["volume"]) == ("SELL", 750)
    assert second["turnover"] == pytest.approx(16500.0 * 0.5 + 16501.0 * 0.25)
    quote = by_topic(messages)[f"md.{ID}.quote"]
    assert (quote["last_ticks"], quote["open_ticks"], quote["high_ticks"]) == (
        165_010,
        165_000,
        165_010,
    )
    assert quote["bid_price"] is None and quote["volume"] == 750
    bar = by_topic(messages)[f"md.{ID}.kline.3"]
    assert (bar["open_ticks"], bar["close_ticks"], bar["volume"], bar["finished"]) == (
        165_000,
        165_010,
        750,
        False,
    )
    assert {body["seq"] for _topic, body in messages} == {1}


def test_a_trade_in_a_later_bucket_finishes_the_bar() -> None:
    publisher = MarketPublisher(periods=(3,))
    publisher.publish([trade(T0, 100, 1)], specs)
    messages = publisher.publish([trade(T0 + 3 * NS_PER_SECOND, 101, 2, trade_id=2)], specs)
    bars = [body for topic, body in messages if topic == f"md.{ID}.kline.3"]
    assert [(b["finished"], b["close_ticks"], b["volume"]) for b in bars] == [
        (True, 100, 1),
        (False, 101, 2),
    ]
    assert all(body["seq"] == 2 for _topic, body in messages)


def test_book_updates_and_tickers() -> None:
    publisher = MarketPublisher(depth_levels=2)
    snapshot = BookUpdate(ID, T0, T0, [(100, 5), (99, 6), (98, 7)], [(101, 1), (102, 2)], True)
    diff = BookUpdate(ID, T0 + 1, T0 + 1, [(100, 0)], [(101, 3)], False)
    messages = by_topic(publisher.publish([snapshot, diff], specs))
    book = messages[f"md.{ID}.book"]
    assert book["bids"] == [[99, 6, pytest.approx(9.9)], [98, 7, pytest.approx(9.8)]]
    assert book["asks"] == [[101, 3, pytest.approx(10.1)], [102, 2, pytest.approx(10.2)]]
    quote = messages[f"md.{ID}.quote"]
    assert (quote["bid_price_ticks"], quote["bid_volume"], quote["ask_price_ticks"]) == (99, 6, 101)
    # a ticker's L1 is used only while the venue sends no book for the instrument
    ticker = Ticker(ID, T0 + 2, T0 + 2, 100, 90, 1, 110, 1, 0, 0, {})
    quote = by_topic(publisher.publish([ticker], specs))[f"md.{ID}.quote"]
    assert (quote["bid_price_ticks"], quote["last_ticks"]) == (99, 100)
    other = MarketPublisher()
    quote = by_topic(other.publish([ticker], specs))[f"md.{ID}.quote"]
    assert (quote["bid_price_ticks"], quote["ask_price_ticks"], quote["last_ticks"]) == (
        90,
        110,
        100,
    )


def test_unknown_instruments_are_skipped() -> None:
    publisher = MarketPublisher()
    stray = Trade("ELSEWHERE.X", T0, T0, 1, 1, Side.BUY, 1, 0, 100)
    assert publisher.publish([stray], specs) == []


def test_bodies_carry_every_field_of_the_marketdata_renderer() -> None:
    """Subscribers (md-subscribe, the gateway) read external bodies with the same code."""
    registry = configuration.load_instruments(configuration.load(env={}))
    engine, market = MatchingEngine(registry), MarketData(registry)
    events = engine.apply(PlaceOrder(1, 1, 0, Side.BUY, 19_000, 1, ts=T0))
    events += engine.apply(PlaceOrder(2, 2, 0, Side.SELL, 19_000, 1, ts=T0 + 1))
    update = market.apply(events)
    render = Renderer(registry)
    local = {
        "tick": render.tick(update.ticks[0], 1),
        "quote": render.quote(market, 0, 1),
        "book": render.book(market, 0, 1, 5),
        "kline": render.bar(0, market.open_bars(0)[0], 1, finished=False),
    }
    publisher = MarketPublisher()
    book = BookUpdate(ID, T0, T0, [(100, 1)], [(101, 1)], True)
    external: dict[str, dict[str, Any]] = {}
    for topic, body in publisher.publish([book, trade(T0, 100, 1)], specs):
        external.setdefault(topic.split(".")[3], body)
    for kind, body in local.items():
        missing = set(body) - set(external[kind])
        assert not missing, f"{kind} lacks {missing}"


def test_a_venue_normalizer_feeds_the_publisher() -> None:
    """Without sockets: fixture frames → the venue's normalizer → published ticks."""
    venue = "BINANCE_FUTURES"
    normalizer = VENUES[venue](FeedConfig(venue, ["BTCUSDT"], ["trade"], buffer_rate=0))
    for i in range(4):
        normalizer.feed(fixtures.trade(venue, i), T0 + i)
    records = normalizer.take()
    table = normalizer.instruments
    lookup = {spec.instrument_id: spec for spec in map(table.get, table.symbols()) if spec}
    messages = MarketPublisher().publish(records, lookup.get)
    ticks = [body for topic, body in messages if topic == f"md.{ID}.tick"]
    assert [b["trade_id"] for b in ticks] == [r.trade_id for r in records]
    assert [b["price_ticks"] for b in ticks] == [r.price for r in records]
    assert len(ticks) == 4
