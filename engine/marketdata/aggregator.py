"""MarketData: turns batches of matching events into depth, ticks, daily stats and K-lines.

The process feeds it each batch it reads from `execs` and publishes what changed: one tick per
trade, finished bars as they close, and — once per batch, conflated — the book, quote and open
bars of every instrument the batch touched. Everything is integers (ticks, lots, money units);
rendering to client prices happens at the edge.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from engine.instruments import InstrumentRegistry
from engine.marketdata.depth import Depth
from engine.marketdata.kline import FINISHED_BARS_KEPT, PERIODS, Bar, KlineSeries
from engine.marketdata.stats import DailyStats
from engine.matching.events import BookChanged, TradeExecuted

DEPTH_LEVELS = 10
RECENT_TRADES_KEPT = 200
"""Trade prints kept per instrument for `recent_trades` (a late subscriber's tape)."""


class Tick(NamedTuple):
    """One trade print with the day's running totals after it."""

    instrument_index: int
    trade_id: int
    ts: int
    price: int
    qty: int
    taker_side: int
    volume: int
    turnover: int
    open_interest: int


@dataclass(slots=True)
class InstrumentMarket:
    """Everything market data knows about one instrument."""

    depth: Depth = field(default_factory=Depth)
    stats: DailyStats = field(default_factory=DailyStats)
    klines: dict[int, KlineSeries] = field(default_factory=dict)
    last_ts: int = 0
    trades: deque[Tick] = field(default_factory=lambda: deque(maxlen=RECENT_TRADES_KEPT))
    series: tuple[KlineSeries, ...] = ()
    """`klines.values()` as a tuple, for the per-trade loop."""

    def __post_init__(self) -> None:
        self.series = tuple(self.klines.values())


@dataclass(slots=True)
class BatchUpdate:
    """What one batch changed: ticks and finished bars in order, and the touched instruments."""

    ticks: list[Tick] = field(default_factory=list)
    finished_bars: list[tuple[int, Bar]] = field(default_factory=list)
    touched: set[int] = field(default_factory=set)


class MarketData:
    """Market state for every instrument of a registry, advanced only by matching events."""

    def __init__(
        self,
        instruments: InstrumentRegistry,
        periods: Iterable[int] = PERIODS,
        keep: int = FINISHED_BARS_KEPT,
    ) -> None:
        self._instruments = instruments
        self._periods = tuple(periods)
        self._keep = keep
        self._markets: dict[int, InstrumentMarket] = {}

    def market(self, index: int) -> InstrumentMarket:
        market = self._markets.get(index)
        if market is None:
            self._instruments.by_index(index)  # raises for an index no registry knows
            market = InstrumentMarket(klines={p: KlineSeries(p, self._keep) for p in self._periods})
            self._markets[index] = market
        return market

    def apply(
        self, events: Iterable[object], oi_deltas: Mapping[int, int] | None = None
    ) -> BatchUpdate:
        """Apply one batch of matching events; `oi_deltas` maps trade_id → open-interest change."""
        update = BatchUpdate()
        for event in events:
            if type(event) is TradeExecuted:
                self._on_trade(event, (oi_deltas or {}).get(event.trade_id, 0), update)
            elif type(event) is BookChanged:
                market = self.market(event.instrument_index)
                market.depth.apply(event.side, event.price, event.qty)
                market.last_ts = max(market.last_ts, event.ts)
                update.touched.add(event.instrument_index)
        return update

    def _on_trade(self, trade: TradeExecuted, oi_delta: int, update: BatchUpdate) -> None:
        index = trade.instrument_index
        market = self.market(index)
        turnover = self._instruments.by_index(index).notional(trade.price, trade.qty)
        stats = market.stats
        stats.on_trade(trade.price, trade.qty, turnover, oi_delta)
        if trade.ts > market.last_ts:
            market.last_ts = trade.ts
        ts, price, qty, oi = trade.ts, trade.price, trade.qty, stats.open_interest
        for series in market.series:
            done = series.on_trade(ts, price, qty, turnover, oi)
            if done is not None:
                update.finished_bars.append((index, done))
        tick = Tick(
            index,
            trade.trade_id,
            trade.ts,
            trade.price,
            trade.qty,
            int(trade.taker_side),
            stats.volume,
            stats.turnover,
            stats.open_interest,
        )
        market.trades.append(tick)
        update.ticks.append(tick)
        update.touched.add(index)

    def book(self, index: int, levels: int = DEPTH_LEVELS) -> dict[str, object]:
        """Depth snapshot: `bids`/`asks` as [price, lots] pairs, best first."""
        market = self.market(index)
        bids, asks = market.depth.levels(levels)
        return {"ts": market.last_ts, "bids": bids, "asks": asks}

    def quote(self, index: int) -> dict[str, object]:
        """L1 plus the day's statistics (prices in ticks, 0 where nothing traded/rests)."""
        market = self.market(index)
        instrument = self._instruments.by_index(index)
        bid = market.depth.best_bid or (0, 0)
        ask = market.depth.best_ask or (0, 0)
        quote: dict[str, object] = {
            "ts": market.last_ts,
            "bid_price": bid[0],
            "bid_volume": bid[1],
            "ask_price": ask[0],
            "ask_volume": ask[1],
        }
        quote.update(market.stats.as_dict(instrument))
        return quote

    def klines(self, index: int, period: int, count: int = FINISHED_BARS_KEPT) -> list[Bar]:
        series = self.market(index).klines.get(period)
        if series is None:
            raise KeyError(f"no K-line period {period}s (have {self._periods})")
        return series.bars(count)

    def recent_trades(self, index: int, count: int = RECENT_TRADES_KEPT) -> list[Tick]:
        """The newest `count` trade prints, oldest first."""
        if count <= 0:
            return []
        return list(self.market(index).trades)[-count:]

    def instruments_seen(self) -> list[int]:
        """Indexes of the instruments some event has touched, ascending."""
        return sorted(self._markets)

    def open_bars(self, index: int) -> list[Bar]:
        """The open bar of every period (for publishing rolling updates after a batch)."""
        return [s.current for s in self.market(index).klines.values() if s.current is not None]

    def snapshot(self, index: int, levels: int = DEPTH_LEVELS) -> dict[str, object]:
        """What a late subscriber needs to start from: book, quote and the open bars."""
        return {
            "book": self.book(index, levels),
            "quote": self.quote(index),
            "klines": {bar.period: bar.as_dict() for bar in self.open_bars(index)},
        }

    def export_state(self) -> dict[str, Any]:
        """Everything `from_state` needs, as JSON-able ints and lists (keys are strings)."""
        return {
            "periods": list(self._periods),
            "keep": self._keep,
            "markets": {
                str(index): {
                    "depth": market.depth.export_levels(),
                    "stats": market.stats.export_values(),
                    "last_ts": market.last_ts,
                    "klines": {str(p): s.export_state() for p, s in market.klines.items()},
                    "trades": [list(tick) for tick in market.trades],
                }
                for index, market in sorted(self._markets.items())
            },
        }

    @classmethod
    def from_state(cls, instruments: InstrumentRegistry, state: Mapping[str, Any]) -> MarketData:
        """The market data `export_state` described, over the given registry. Markets of
        indexes the registry does not have yet (instruments created at run time, which the
        process learns before it uses them) are restored all the same."""
        data = cls(instruments, state["periods"], state["keep"])
        for key, saved in state["markets"].items():
            index = int(key)
            market = InstrumentMarket(
                depth=Depth.from_levels(saved["depth"]),
                stats=DailyStats(*saved["stats"]),
                klines={
                    int(p): KlineSeries.from_state(int(p), data._keep, series)
                    for p, series in saved["klines"].items()
                },
                last_ts=saved["last_ts"],
            )
            market.trades.extend(Tick(*values) for values in saved["trades"])
            data._markets[index] = market
        return data
