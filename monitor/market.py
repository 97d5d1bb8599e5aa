"""One instrument's market as the dashboard charts it: depth and accumulated K-line bars.

The marketdata process answers `snapshot` with `{"book": {"bids", "asks"}, "quote", "klines":
{period: open bar}}` (engine.marketdata.MarketData.snapshot: prices in ticks, bars with `id`,
`datetime`, open/high/low/close/volume). Only the open bar of each period comes back, so the
view keeps the bars it has seen (a bar with a known id replaces the old one) to draw a chart,
seeded once with the finished bars of `klines {instrument, period, count}` if marketdata has it.
"""

from __future__ import annotations

from typing import Any

MAX_BARS = 120
PRICE_FIELDS = ("open", "high", "low", "close")
"""Bar prices are charted in ticks, like the book: the rendered bars carry `<field>_ticks` beside
the decimal price; the engine's own bars have only the integer field."""
DEPTH_LEVELS = 20


class MarketView:
    def __init__(self, instrument: str) -> None:
        self.instrument = instrument
        self.available = False
        self.reason = "no data yet"
        self.bids: list[list[int]] = []
        self.asks: list[list[int]] = []
        self.quote: dict[str, Any] = {}
        self.period: int | None = None
        self.bars: dict[int, dict[str, int]] = {}
        self.seeded = False  # finished bars fetched once with `klines` (when marketdata has it)

    def unavailable(self, reason: str) -> None:
        self.available = False
        self.reason = reason

    def update(self, answer: Any) -> None:
        """Take one `snapshot` answer; an answer of another shape marks the data unavailable."""
        if not isinstance(answer, dict):
            self.unavailable("marketdata answered without a snapshot")
            return
        book = answer.get("book") if isinstance(answer.get("book"), dict) else answer
        self.bids = _levels(book.get("bids"))
        self.asks = _levels(book.get("asks"))
        self.quote = answer.get("quote") if isinstance(answer.get("quote"), dict) else {}
        klines = answer.get("klines")
        if isinstance(klines, dict) and klines:
            period = min(int(p) for p in klines)
            if period != self.period:
                self.period, self.bars = period, {}
            self._add_bar(klines.get(period, klines.get(str(period))))
        self.available = bool(self.bids or self.asks or self.bars)
        self.reason = "" if self.available else "the book is empty and nothing has traded"

    def seed(self, bars: Any) -> None:
        """Earlier bars of `self.period` (the answer of marketdata's `klines`), oldest first."""
        self.seeded = True
        if isinstance(bars, list):
            for bar in bars:
                self._add_bar(bar)

    def _add_bar(self, bar: Any) -> None:
        if not isinstance(bar, dict) or "open" not in bar:
            return
        key = int(bar.get("id", bar.get("datetime", 0)))
        self.bars[key] = {
            "id": key,
            "datetime": int(bar.get("datetime", 0)),
            **{field: int(bar.get(f"{field}_ticks", bar[field])) for field in PRICE_FIELDS},
            "volume": int(bar.get("volume", 0)),
        }
        for old in sorted(self.bars)[:-MAX_BARS]:
            del self.bars[old]

    def as_dict(self) -> dict[str, Any]:
        return {
            "instrument": self.instrument,
            "available": self.available,
            "reason": self.reason,
            "bids": self.bids,
            "asks": self.asks,
            "quote": self.quote,
            "period": self.period,
            "bars": [self.bars[k] for k in sorted(self.bars)],
        }


def _levels(raw: Any) -> list[list[int]]:
    """[[price, qty], ...] best first, at most DEPTH_LEVELS."""
    if not isinstance(raw, list):
        return []
    return [[int(level[0]), int(level[1])] for level in raw[:DEPTH_LEVELS]]
