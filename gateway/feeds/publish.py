"""External records → the market-data JSON of services/marketdata.py (same topics, same fields).

`MarketPublisher` keeps, per external instrument, what the marketdata process keeps for a
local one: the depth (from `BookUpdate`s, or the ticker's L1 when the venue sends no book), the
day's statistics since the process started, and K-lines built from the external trades by
`engine.marketdata.kline.KlineSeries` (the venue's own bars are not republished, so a period
never has two sources). `publish(records)` returns `(topic, body)` pairs in the order the
marketdata process uses: one `tick` per trade, finished bars, then per touched instrument the
open bars (if it traded), `book` and, last, `quote`. No I/O here: the feeds process sends them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from engine.enums import InstrumentStatus, Side
from engine.marketdata.depth import Depth
from engine.marketdata.kline import PERIODS, Bar, KlineSeries
from gateway.feeds.instruments import InstrumentSpec
from gateway.feeds.records import BookUpdate, Record, Ticker, Trade
from ipc.pubsub import topic

Message = tuple[str, dict[str, Any]]
SpecLookup = Callable[[str], InstrumentSpec | None]
_SIDE_NAMES = {Side.BUY: "BUY", Side.SELL: "SELL"}
RECENT_TICKS = 1000
"""Tick bodies kept per external instrument for `recent_trades` (like marketdata's keep)."""


class ExternalMarket:
    """One external instrument's published state (integers inside, floats only when rendered)."""

    __slots__ = (
        "ask",
        "bid",
        "depth",
        "has_book",
        "high",
        "klines",
        "last",
        "low",
        "open",
        "recent",
        "spec",
        "steps",
        "ts",
        "turnover",
        "volume",
    )

    def __init__(
        self, spec: InstrumentSpec, periods: Iterable[int], recent: int = RECENT_TICKS
    ) -> None:
        self.spec = spec
        self.steps = {"price_tick": f"{spec.tick.step:f}", "lot_size": f"{spec.lot.step:f}"}
        """Decimal steps on ticks and bars, so a recorder needs no catalogue to read them."""
        self.depth = Depth()
        self.has_book = False
        self.bid = (0, 0)
        self.ask = (0, 0)
        self.open = self.high = self.low = self.last = 0
        self.volume = 0
        self.turnover = 0
        """Price ticks × lots summed: × tick × lot step is the quote-currency turnover."""
        self.ts = 0
        self.klines = [KlineSeries(period) for period in periods]
        self.recent: deque[dict[str, Any]] = deque(maxlen=recent)
        """The last published tick bodies, for `recent_trades` (a chart of ticks)."""

    def on_trade(self, trade: Trade) -> list[Bar]:
        price, qty = trade.price, trade.qty
        if not self.open:
            self.open = self.high = self.low = price
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.last = price
        self.volume += qty
        self.turnover += price * qty
        self.ts = trade.ts_event
        finished = []
        for series in self.klines:
            done = series.on_trade(trade.ts_event, price, qty, price * qty, 0)
            if done is not None:
                finished.append(done)
        return finished

    def on_book(self, update: BookUpdate) -> None:
        if update.snapshot:
            self.depth.clear()
        for price, qty in update.bids:
            self.depth.apply(Side.BUY, price, qty)
        for price, qty in update.asks:
            self.depth.apply(Side.SELL, price, qty)
        self.has_book = True
        self.ts = update.ts_event or self.ts

    def on_ticker(self, ticker: Ticker) -> None:
        if ticker.last:
            self.last = ticker.last
        if not self.has_book:
            self.bid = (ticker.bid, ticker.bid_qty)
            self.ask = (ticker.ask, ticker.ask_qty)
        self.ts = ticker.ts_event or self.ts

    def best(self) -> tuple[tuple[int, int], tuple[int, int]]:
        if not self.has_book:
            return self.bid, self.ask
        return self.depth.best_bid or (0, 0), self.depth.best_ask or (0, 0)


class MarketPublisher:
    """Turns batches of external records into market-data messages; `seq` grows per batch."""

    def __init__(self, depth_levels: int = 10, periods: Iterable[int] = PERIODS) -> None:
        self.depth_levels = depth_levels
        self.periods = tuple(periods)
        self.markets: dict[str, ExternalMarket] = {}
        self.seq = 0
        self.published = 0

    def market(self, spec: InstrumentSpec) -> ExternalMarket:
        found = self.markets.get(spec.instrument_id)
        if found is None:
            found = self.markets[spec.instrument_id] = ExternalMarket(spec, self.periods)
        return found

    def publish(self, records: Iterable[Record], specs: SpecLookup) -> list[Message]:
        """The messages for one batch; records of instruments `specs` does not know are skipped
        (a normalizer only emits instruments of its table, so this is a guard, not a filter)."""
        self.seq += 1
        seq = self.seq
        out: list[Message] = []
        touched: dict[str, bool] = {}
        for record in records:
            spec = specs(record.instrument)
            if spec is None:
                continue
            market = self.market(spec)
            if isinstance(record, Trade):
                tick = self._tick(market, record, seq)
                market.recent.append(tick[1])
                out.append(tick)
                for bar in market.on_trade(record):
                    out.append(self._bar(market, bar, seq, finished=True))
                touched[record.instrument] = True
            elif isinstance(record, BookUpdate):
                market.on_book(record)
                touched.setdefault(record.instrument, False)
            elif isinstance(record, Ticker):
                market.on_ticker(record)
                touched.setdefault(record.instrument, False)
        for instrument, traded in touched.items():
            market = self.markets[instrument]
            if traded:
                out.extend(
                    self._bar(market, s.current, seq, finished=False)
                    for s in market.klines
                    if s.current is not None
                )
            if market.has_book:
                out.append((topic(instrument, "book"), self.book(market, seq)))
            out.append((topic(instrument, "quote"), self.quote(market, seq)))
        self.published += len(out)
        return out

    # -- rendering (the field names of services/marketdata.py's Renderer) ---------------------

    @staticmethod
    def _price(spec: InstrumentSpec, ticks: int) -> float:
        return float(spec.tick.step * ticks)

    @staticmethod
    def _money(spec: InstrumentSpec, tick_lots: int) -> float:
        return float(spec.tick.step * spec.lot.step * tick_lots)

    def _tick(self, market: ExternalMarket, trade: Trade, seq: int) -> Message:
        spec = market.spec
        body = {
            "instrument": spec.instrument_id,
            "seq": seq,
            "ts": trade.ts_event,
            "trade_id": trade.trade_id,
            "price": self._price(spec, trade.price),
            "price_ticks": trade.price,
            "qty": trade.qty,
            "side": _SIDE_NAMES.get(trade.side, "NONE"),
            "volume": market.volume + trade.qty,
            "turnover": self._money(spec, market.turnover + trade.price * trade.qty),
            "open_interest": 0,
            "external": True,
            "ts_recv": trade.ts_recv,
            "quality": trade.quality,
            **market.steps,
        }
        return topic(spec.instrument_id, "tick"), body

    def _bar(self, market: ExternalMarket, bar: Bar, seq: int, finished: bool) -> Message:
        spec = market.spec
        body: dict[str, Any] = {
            "instrument": spec.instrument_id,
            "seq": seq,
            "period": bar.period,
            "id": bar.bar_id,
            "datetime": bar.start_ns,
            "finished": finished,
        }
        for name in ("open", "high", "low", "close"):
            ticks = getattr(bar, name)
            body[name] = self._price(spec, ticks)
            body[f"{name}_ticks"] = ticks
        body.update(
            volume=bar.volume,
            turnover=self._money(spec, bar.turnover),
            turnover_ticks_lots=bar.turnover,
            open_oi=0,
            close_oi=0,
            **market.steps,
        )
        return topic(spec.instrument_id, "kline", bar.period), body

    def book(self, market: ExternalMarket, seq: int) -> dict[str, Any]:
        spec = market.spec
        bids, asks = market.depth.levels(self.depth_levels)
        return {
            "instrument": spec.instrument_id,
            "seq": seq,
            "ts": market.ts,
            "bids": [[p, q, self._price(spec, p)] for p, q in bids],
            "asks": [[p, q, self._price(spec, p)] for p, q in asks],
        }

    def quote(self, market: ExternalMarket, seq: int) -> dict[str, Any]:
        spec = market.spec
        (bid, bid_qty), (ask, ask_qty) = market.best()
        body: dict[str, Any] = {"instrument": spec.instrument_id, "seq": seq, "ts": market.ts}
        prices = {
            "bid_price": bid,
            "ask_price": ask,
            "open": market.open,
            "high": market.high,
            "low": market.low,
            "last": market.last,
            # an external market has no settlement or daily band here: null, 0 ticks
            "pre_close": 0,
            "pre_settlement": 0,
            "upper_limit": 0,
            "lower_limit": 0,
        }
        for name, ticks in prices.items():
            body[name] = self._price(spec, ticks) if ticks else None
            body[f"{name}_ticks"] = ticks
        body.update(
            bid_volume=bid_qty,
            ask_volume=ask_qty,
            volume=market.volume,
            turnover=self._money(spec, market.turnover),
            open_interest=0,
            status=InstrumentStatus.TRADING.name,  # an external market trades while its feed runs
            external=True,
        )
        return body

    def klines(self, instrument: str, period: int, count: int) -> list[dict[str, Any]] | None:
        """The marketdata `klines` answer's shape: the newest `count` bars of `period`, oldest
        first, the open bar last (`finished` false); None for an unknown instrument."""
        market = self.markets.get(instrument)
        if market is None:
            return None
        series = next((s for s in market.klines if s.period == period), None)
        if series is None:
            raise ValueError(f"no {period} s K-lines (periods: {list(self.periods)})")
        return [
            self._bar(market, bar, self.seq, finished=bar is not series.current)[1]
            for bar in series.bars(count)
        ]

    def recent_trades(self, instrument: str, count: int) -> list[dict[str, Any]] | None:
        """The marketdata `recent_trades` answer's shape: the newest `count` tick bodies,
        oldest first; None for an unknown instrument."""
        market = self.markets.get(instrument)
        if market is None:
            return None
        return list(market.recent)[-count:] if count > 0 else []

    def snapshot(self, instrument: str) -> dict[str, Any] | None:
        """The marketdata `snapshot` answer's shape for an external instrument, or None."""
        market = self.markets.get(instrument)
        if market is None:
            return None
        return {
            "instrument": instrument,
            "seq": self.seq,
            "book": self.book(market, self.seq),
            "quote": self.quote(market, self.seq),
            "klines": {
                s.period: self._bar(market, s.current, self.seq, finished=False)[1]
                for s in market.klines
                if s.current is not None
            },
        }
