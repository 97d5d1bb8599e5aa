"""A real engine `MarketData` fed with a random walk of trades and book levels, for the market
view tests and the dashboard's charts (the marketdata process's core, without the process)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from engine.enums import Side
from engine.instruments import InstrumentRegistry
from engine.marketdata.aggregator import MarketData
from engine.marketdata.kline import NS_PER_SECOND
from engine.matching.events import BookChanged, TradeExecuted

INSTRUMENTS = Path(__file__).resolve().parents[3] / "services" / "instruments.toml"
PERIOD = 3  # the shortest K-line period of engine.marketdata.kline.PERIODS
LEVELS = 10


class MarketFeed:
    """One instrument's market moving one `PERIOD` bar per `advance()`."""

    def __init__(self, instrument_id: str, start_ns: int, seed: int = 7) -> None:
        self.registry = InstrumentRegistry.from_toml(INSTRUMENTS.read_text())
        instrument = self.registry.get(instrument_id)
        assert instrument is not None, instrument_id
        self.instrument_id = instrument_id
        self.index = instrument.index
        self.market = MarketData(self.registry)
        self._random = random.Random(seed)
        self._price = 19_000  # ticks
        self._ts = start_ns // (PERIOD * NS_PER_SECOND) * PERIOD * NS_PER_SECOND
        self._trade_id = 0
        self._resting: list[tuple[Side, int]] = []

    def advance(self, bars: int = 1) -> None:
        for _ in range(bars):
            events: list[object] = []
            for n in range(5):
                self._price = max(100, self._price + self._random.randint(-6, 6))
                self._trade_id += 1
                ts = self._ts + n * NS_PER_SECOND // 2
                qty = self._random.randint(1, 9)
                events.append(
                    TradeExecuted(
                        self._trade_id, self.index, self._price, qty, 1, 1, Side.BUY, 2, 2, 0, 0, ts
                    )
                )
            events += [
                BookChanged(self.index, side, price, 0, self._ts) for side, price in self._resting
            ]
            self._resting = [(Side.BUY, self._price - 1 - i) for i in range(LEVELS)]
            self._resting += [(Side.SELL, self._price + 1 + i) for i in range(LEVELS)]
            events += [
                BookChanged(self.index, side, price, self._random.randint(1, 30), self._ts)
                for side, price in self._resting
            ]
            self.market.apply(events)
            self._ts += PERIOD * NS_PER_SECOND

    def snapshot(self, args: dict[str, Any]) -> dict[str, Any]:
        """What marketdata's `snapshot` control command answers."""
        assert args["instrument"] == self.instrument_id
        return dict(self.market.snapshot(self.index))

    def klines(self, args: dict[str, Any]) -> list[dict[str, int]]:
        """What marketdata's `klines` control command answers: finished bars, oldest first."""
        bars = self.market.klines(self.index, int(args["period"]), int(args["count"]))
        return [bar.as_dict() for bar in bars]
