"""Market-data aggregation: K-line buckets, depth, daily stats, against independent sums."""

import dataclasses
import random
from pathlib import Path

import pytest

from engine.enums import Side
from engine.instruments import InstrumentRegistry
from engine.marketdata.aggregator import MarketData
from engine.marketdata.kline import NS_PER_SECOND, PERIODS, KlineSeries
from engine.matching.events import BookChanged, TradeExecuted

INSTRUMENTS = Path(__file__).resolve().parents[4] / "services" / "instruments.toml"


@pytest.fixture
def registry() -> InstrumentRegistry:
    return InstrumentRegistry.from_toml(INSTRUMENTS.read_text())


def trade(trade_id: int, index: int, ts: int, price: int, qty: int) -> TradeExecuted:
    return TradeExecuted(trade_id, index, price, qty, 10, 1, Side.BUY, 5, 2, 0, 0, ts)


def test_bar_finishes_only_when_a_trade_lands_in_a_later_bucket() -> None:
    series = KlineSeries(60)
    base = ((1_700_000_000 // 60) * 60 + 40) * NS_PER_SECOND  # 40 s into a minute
    assert series.on_trade(base, 100, 1, 10, 0) is None
    assert series.on_trade(base + 19 * NS_PER_SECOND, 105, 2, 20, 0) is None  # still :59
    done = series.on_trade(base + 20 * NS_PER_SECOND, 99, 3, 30, 0)  # next minute
    assert done is not None
    assert (done.open, done.high, done.low, done.close, done.volume, done.turnover) == (
        100,
        105,
        100,
        105,
        3,
        30,
    )
    assert done.start_ns % (60 * NS_PER_SECOND) == 0
    assert series.current is not None and series.current.open == 99
    assert [b.bar_id for b in series.bars(5)] == [done.bar_id, done.bar_id + 1]


def test_finished_bars_are_capped() -> None:
    series = KlineSeries(3, keep=4)
    for n in range(10):
        series.on_trade(n * 3 * NS_PER_SECOND, 100 + n, 1, 1, 0)
    assert len(series.finished) == 4
    assert [b.open for b in series.bars(100)] == [105, 106, 107, 108, 109]


def test_rejects_non_positive_period() -> None:
    with pytest.raises(ValueError, match="positive"):
        KlineSeries(0)


def test_depth_levels_follow_book_changes(registry: InstrumentRegistry) -> None:
    md = MarketData(registry)
    events = [
        BookChanged(0, Side.BUY, 100, 5, 1),
        BookChanged(0, Side.BUY, 101, 2, 2),
        BookChanged(0, Side.SELL, 103, 7, 3),
        BookChanged(0, Side.SELL, 102, 1, 4),
        BookChanged(0, Side.SELL, 102, 0, 5),
    ]
    update = md.apply(events)
    assert update.touched == {0}
    book = md.book(0, 5)
    assert book["bids"] == [(101, 2), (100, 5)]
    assert book["asks"] == [(103, 7)]
    quote = md.quote(0)
    assert (quote["bid_price"], quote["ask_price"], quote["ask_volume"]) == (101, 103, 7)


def test_unknown_instrument_index_is_an_error(registry: InstrumentRegistry) -> None:
    md = MarketData(registry)
    with pytest.raises((KeyError, IndexError)):
        md.apply([BookChanged(999, Side.BUY, 1, 1, 1)])


def test_random_trades_match_an_independent_bar_computation(registry: InstrumentRegistry) -> None:
    rng = random.Random(7)
    md = MarketData(registry)
    instrument = registry.by_index(0)
    ts = 1_700_000_000 * NS_PER_SECOND
    trades = []
    for n in range(5000):
        ts += rng.randrange(0, 4 * NS_PER_SECOND)
        trades.append(trade(n + 1, 0, ts, rng.randrange(3000, 3100), rng.randrange(1, 5)))
    finished = []
    for start in range(0, len(trades), 37):
        finished.extend(md.apply(trades[start : start + 37]).finished_bars)

    for period in PERIODS:
        expected: dict[int, list[TradeExecuted]] = {}
        for t in trades:
            expected.setdefault(t.ts // (period * NS_PER_SECOND), []).append(t)
        bars = md.klines(0, period, 10_000)
        assert [b.bar_id for b in bars] == sorted(expected)[-len(bars) :]
        for bar in bars:
            group = expected[bar.bar_id]
            prices = [t.price for t in group]
            assert (bar.open, bar.high, bar.low, bar.close) == (
                prices[0],
                max(prices),
                min(prices),
                prices[-1],
            )
            assert bar.volume == sum(t.qty for t in group)
            assert bar.turnover == sum(instrument.notional(t.price, t.qty) for t in group)
        finished_ids = [b.bar_id for i, b in finished if b.period == period]
        assert finished_ids == sorted(expected)[:-1]

    quote = md.quote(0)
    assert quote["volume"] == sum(t.qty for t in trades)
    assert quote["last"] == trades[-1].price
    assert quote["high"] == max(t.price for t in trades)


def test_ticks_carry_running_totals_and_open_interest(registry: InstrumentRegistry) -> None:
    md = MarketData(registry)
    update = md.apply([trade(1, 0, 10, 3000, 2), trade(2, 0, 20, 3001, 1)], {1: 2, 2: -1})
    assert [(t.trade_id, t.volume, t.open_interest) for t in update.ticks] == [(1, 2, 2), (2, 3, 1)]
    snapshot = md.snapshot(0)
    assert snapshot["quote"]["open_interest"] == 1
    assert set(snapshot["klines"]) == set(PERIODS)


def test_export_and_restore_continue_exactly_like_an_uninterrupted_run(
    registry: InstrumentRegistry,
) -> None:
    rng = random.Random(11)
    events: list[object] = []
    ts = 1_700_000_000 * NS_PER_SECOND
    for n in range(600):
        ts += rng.randrange(0, 2 * NS_PER_SECOND)
        index = rng.randrange(2)
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        events.append(BookChanged(index, side, rng.randrange(3000, 3010), rng.randrange(0, 4), ts))
        events.append(trade(n + 1, index, ts, rng.randrange(3000, 3010), rng.randrange(1, 5)))
    whole = MarketData(registry)
    whole.apply(events)
    first = MarketData(registry)
    first.apply(events[:500])
    restored = MarketData.from_state(registry, first.export_state())
    later = restored.apply(events[500:])
    assert restored.export_state() == whole.export_state()
    assert later.ticks[-1] == whole.recent_trades(later.ticks[-1].instrument_index, 1)[0]
    for index in (0, 1):
        assert restored.snapshot(index) == whole.snapshot(index)
        assert restored.klines(index, 3, 50) == whole.klines(index, 3, 50)


def test_recent_trades_keep_the_newest_prints(registry: InstrumentRegistry) -> None:
    md = MarketData(registry)
    md.apply([trade(n, 0, n, 3000 + n % 7, 1) for n in range(1, 301)])
    tape = md.recent_trades(0, 1000)
    assert [t.trade_id for t in tape] == list(range(101, 301))
    assert [t.trade_id for t in md.recent_trades(0, 3)] == [298, 299, 300]
    assert md.recent_trades(0, 0) == []
    assert md.instruments_seen() == [0]


def test_a_checkpoint_restores_markets_of_instruments_learned_later(
    registry: InstrumentRegistry,
) -> None:
    """A restarted process loads its checkpoint before it has learned the instruments created
    at run time: their markets are kept and used once the registry has them."""
    template = registry.by_index(0)
    created = dataclasses.replace(template, index=len(registry), id="TEST.LATER")
    full = InstrumentRegistry(registry.currencies, [*registry, created])
    before = MarketData(full)
    before.apply([trade(1, created.index, 5, 3001, 2)])
    restored = MarketData.from_state(registry, before.export_state())
    assert restored.instruments_seen() == [created.index]
    registry.put(created)
    assert restored.quote(created.index) == before.quote(created.index)
    assert restored.quote(created.index)["volume"] == 2
