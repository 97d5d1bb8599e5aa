"""marketdata's published JSON → the edge's market shapes, from the real marketdata renderer."""

from engine.instruments import InstrumentRegistry
from engine.marketdata.aggregator import MarketData
from gateway import market_view
from gateway.backend import MarketChannel
from services.marketdata import Renderer
from tests.unit.engine.accounts.conftest import IX, registry


def _market() -> tuple[InstrumentRegistry, MarketData, Renderer]:
    instruments = registry()
    return instruments, MarketData(instruments), Renderer(instruments)


def test_quote_and_book_keep_the_diff_names() -> None:
    instruments, market, render = _market()
    instrument = instruments.by_index(IX)
    quote = market_view.to_update(f"md.{instrument.id}.quote", render.quote(market, IX, 1))
    assert quote is not None and quote.channel is MarketChannel.QUOTE
    assert quote.instrument_id == instrument.id
    assert {"bid_price1", "ask_price1", "last_price", "upper_limit", "datetime_ns"} <= set(
        quote.data
    )
    book = market_view.to_update(f"md.{instrument.id}.book", render.book(market, IX, 1, 5))
    assert book is not None and book.data["bids"] == [] and book.data["asks"] == []


def test_unknown_topics_and_broken_bodies_are_dropped() -> None:
    assert market_view.to_update("md.X.Y.nonsense", {}) is None
    assert market_view.to_update("md.CFFEX.IF2501.tick", {"price": 1}) is None
    assert market_view.to_update("md.CFFEX.IF2501.quote", ["not", "a", "dict"]) is None
