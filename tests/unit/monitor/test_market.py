"""monitor/market: the dashboard's view of an engine MarketData snapshot."""

from __future__ import annotations

from monitor.market import MAX_BARS, MarketView
from tests.unit.monitor.market_feed import PERIOD, MarketFeed

START_NS = 1_700_000_000_000_000_000


def test_view_takes_depth_and_accumulates_open_bars() -> None:
    feed = MarketFeed("CFFEX.IF2501", START_NS)
    view = MarketView("CFFEX.IF2501")
    for _ in range(4):
        feed.advance()
        view.update(feed.snapshot({"instrument": "CFFEX.IF2501"}))
    assert view.available and view.period == PERIOD
    assert len(view.bids) == len(view.asks) == 10
    assert view.bids[0][0] < view.asks[0][0]  # best bid below best ask
    assert [b[0] for b in view.bids] == sorted((b[0] for b in view.bids), reverse=True)
    frame = view.as_dict()
    assert len(frame["bars"]) == 4
    assert [b["id"] for b in frame["bars"]] == sorted(b["id"] for b in frame["bars"])
    for bar in frame["bars"]:
        assert bar["low"] <= min(bar["open"], bar["close"]) <= bar["high"]


def test_seeded_history_then_capped() -> None:
    feed = MarketFeed("CFFEX.IF2501", START_NS)
    feed.advance(MAX_BARS + 30)
    view = MarketView("CFFEX.IF2501")
    view.update(feed.snapshot({"instrument": "CFFEX.IF2501"}))
    view.seed(feed.klines({"period": PERIOD, "count": MAX_BARS + 10}))
    frame = view.as_dict()
    assert len(frame["bars"]) == MAX_BARS
    assert frame["bars"][-1]["id"] == max(view.bars)


def test_unusable_answers_mark_the_view_unavailable() -> None:
    view = MarketView("X.Y")
    view.update("not a snapshot")
    assert not view.available and "without a snapshot" in view.reason
    view.update({"book": {"bids": [], "asks": []}, "quote": {}, "klines": {}})
    assert not view.available and view.reason
    view.unavailable("no answer")
    assert view.as_dict()["reason"] == "no answer"


def test_rendered_bars_are_charted_in_ticks_like_the_book() -> None:
    """The marketdata process renders bars as decimals with `<field>_ticks` beside them."""
    view = MarketView("CFFEX.IF2501")
    bar = {"id": 7, "datetime": 21_000_000_000, "volume": 3}
    for field, ticks in (("open", 19003), ("high", 19005), ("low", 19001), ("close", 19002)):
        bar[field] = ticks * 0.2
        bar[f"{field}_ticks"] = ticks
    view.update({"book": {"bids": [[19001, 2, 3800.2]], "asks": []}, "klines": {"3": bar}})
    (charted,) = view.as_dict()["bars"]
    assert (charted["open"], charted["high"], charted["low"], charted["close"]) == (
        19003,
        19005,
        19001,
        19002,
    )
    assert view.as_dict()["bids"] == [[19001, 2]]
