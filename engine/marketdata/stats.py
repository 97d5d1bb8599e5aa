"""The day's statistics of one instrument: open, high, low, last, volume, turnover, OI."""

from __future__ import annotations

from dataclasses import astuple, dataclass

from engine.instruments import Instrument


@dataclass(slots=True)
class DailyStats:
    """Prices in ticks (0 = no trade yet today), volume in lots, turnover in money units."""

    open: int = 0
    high: int = 0
    low: int = 0
    last: int = 0
    volume: int = 0
    turnover: int = 0
    open_interest: int = 0
    trades: int = 0

    def on_trade(self, price: int, qty: int, turnover: int, oi_delta: int) -> None:
        if self.trades == 0:
            self.open = self.high = self.low = price
        else:
            self.high = max(self.high, price)
            self.low = min(self.low, price)
        self.last = price
        self.volume += qty
        self.turnover += turnover
        self.open_interest += oi_delta
        self.trades += 1

    def export_values(self) -> list[int]:
        """The fields in declaration order (for checkpoints; `DailyStats(*values)` rebuilds)."""
        return list(astuple(self))

    def as_dict(self, instrument: Instrument) -> dict[str, int]:
        return {
            "open": self.open,
            "high": self.high,
            "low": self.low,
            "last": self.last,
            "volume": self.volume,
            "turnover": self.turnover,
            "open_interest": self.open_interest,
            "pre_close": instrument.pre_close,
            "pre_settlement": instrument.pre_settlement,
            "upper_limit": instrument.upper_limit,
            "lower_limit": instrument.lower_limit,
            "status": int(instrument.status),
        }
