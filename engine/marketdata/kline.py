"""K-lines: OHLCV bars per UTC-aligned bucket, for the seven periods the exchange publishes.

A bar finishes when a trade lands in a later bucket (never by the clock), so bars are a pure
function of the trade stream. Each series keeps its last `keep` finished bars.
"""

from __future__ import annotations

from collections import deque
from dataclasses import astuple, dataclass
from typing import Any

NS_PER_SECOND = 1_000_000_000
PERIODS: tuple[int, ...] = (3, 60, 300, 900, 1800, 3600, 86400)
"""Bar periods in seconds: 3 s, 1 min, 5 min, 15 min, 30 min, 1 h, 1 day."""
FINISHED_BARS_KEPT = 1000


@dataclass(slots=True)
class Bar:
    """One bar; `bar_id` is the bucket number since the epoch (start_ns // period_ns)."""

    period: int
    bar_id: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    turnover: int
    open_oi: int
    close_oi: int

    @property
    def start_ns(self) -> int:
        return self.bar_id * self.period * NS_PER_SECOND

    def as_dict(self) -> dict[str, int]:
        return {
            "period": self.period,
            "id": self.bar_id,
            "datetime": self.start_ns,
            "open": self.open,
            "high": self.high,
            "low": self.low,
            "close": self.close,
            "volume": self.volume,
            "turnover": self.turnover,
            "open_oi": self.open_oi,
            "close_oi": self.close_oi,
        }


class KlineSeries:
    """The current bar and the most recent finished bars of one instrument and period."""

    __slots__ = ("_period_ns", "current", "finished", "period")

    def __init__(self, period: int, keep: int = FINISHED_BARS_KEPT) -> None:
        if period <= 0:
            raise ValueError(f"K-line period must be positive, got {period}")
        self.period = period
        self._period_ns = period * NS_PER_SECOND
        self.current: Bar | None = None
        self.finished: deque[Bar] = deque(maxlen=keep)

    def on_trade(self, ts: int, price: int, qty: int, turnover: int, oi: int) -> Bar | None:
        """Add a trade; returns the bar it finished, if the trade opened a later bucket."""
        bar_id = ts // self._period_ns
        bar = self.current
        if bar is not None and bar_id <= bar.bar_id:
            # Same bucket (or a late print, kept in the open bar rather than reopening history).
            if price > bar.high:
                bar.high = price
            elif price < bar.low:
                bar.low = price
            bar.close = price
            bar.volume += qty
            bar.turnover += turnover
            bar.close_oi = oi
            return None
        done = bar
        if done is not None:
            self.finished.append(done)
        self.current = Bar(self.period, bar_id, price, price, price, price, qty, turnover, oi, oi)
        return done

    def export_state(self) -> dict[str, object]:
        """The open bar and the finished bars as plain lists of ints (for checkpoints)."""
        return {
            "current": None if self.current is None else _bar_values(self.current),
            "finished": [_bar_values(bar) for bar in self.finished],
        }

    @classmethod
    def from_state(cls, period: int, keep: int, state: dict[str, Any]) -> KlineSeries:
        series = cls(period, keep)
        if state["current"] is not None:
            series.current = Bar(*state["current"])
        series.finished.extend(Bar(*values) for values in state["finished"])
        return series

    def bars(self, count: int) -> list[Bar]:
        """The newest `count` bars, oldest first, the open bar last."""
        if count <= 0:
            return []
        out = list(self.finished)
        if self.current is not None:
            out.append(self.current)
        return out[-count:]


def _bar_values(bar: Bar) -> list[int]:
    return list(astuple(bar))
