"""Normalized market-data records that every venue parser produces.

Slotted dataclasses (identity equality, like plain objects): the hot path builds one per message
and the generated `__init__` costs the same as a hand-written one. Prices are integer ticks and
quantities integer lots of the instrument's table entry; `ts_event` is the venue's timestamp and
`ts_recv` ours, both int ns. `to_record()` is the hook the market-data ring writer uses: a flat
dict of integer fields named like the `md` ring's fields, so the writer maps it onto its numpy
dtype without knowing venues.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.enums import Side


@dataclass(slots=True, eq=False)
class Trade:
    """One external trade: `side` is the taker's; `quality` is reference/ingestion.md's score."""

    instrument: str
    ts_event: int
    ts_recv: int
    price: int
    qty: int
    side: Side
    trade_id: int
    sequence: int
    quality: int

    def to_record(self) -> dict[str, int | str]:
        return {
            "kind": "MD_TRADE",
            "instrument": self.instrument,
            "ts_event": self.ts_event,
            "ts_recv": self.ts_recv,
            "price": self.price,
            "qty": self.qty,
            "side": int(self.side),
            "trade_id": self.trade_id,
            "seq": self.sequence,
            "quality": self.quality,
        }

    def __repr__(self) -> str:
        return (
            f"Trade({self.instrument} {self.side.name} {self.qty}@{self.price} "
            f"id={self.trade_id} q={self.quality})"
        )


@dataclass(slots=True, eq=False)
class Ticker:
    """Best bid/ask and 24 h statistics; `fields` holds the venue's raw fields kept by config
    (seed 001's field selection), as the strings the venue sent, so nothing is rounded."""

    instrument: str
    ts_event: int
    ts_recv: int
    last: int
    bid: int
    bid_qty: int
    ask: int
    ask_qty: int
    volume: int
    sequence: int
    fields: dict[str, str]

    def to_record(self) -> dict[str, int | str]:
        return {
            "kind": "MD_QUOTE",
            "instrument": self.instrument,
            "ts_event": self.ts_event,
            "ts_recv": self.ts_recv,
            "last": self.last,
            "bid": self.bid,
            "bid_qty": self.bid_qty,
            "ask": self.ask,
            "ask_qty": self.ask_qty,
            "volume": self.volume,
            "seq": self.sequence,
        }

    def __repr__(self) -> str:
        return (
            f"Ticker({self.instrument} last={self.last} "
            f"{self.bid_qty}x{self.bid} / {self.ask}x{self.ask_qty})"
        )


Level = tuple[int, int]
"""(price ticks, qty lots); qty 0 removes the level."""


@dataclass(slots=True, eq=False)
class BookUpdate:
    """A book change as applied to our local book: a full snapshot or a diff.

    `first_id`/`last_id`/`prev_id` carry the venue's sequence fields (Binance U/u/pu, OKX
    seqId/prevSeqId, Coinbase sequence) so that the book keeper can check continuity;
    `checksum` is the venue's digest of its book after this update (Kraken), if it sends one.
    """

    instrument: str
    ts_event: int
    ts_recv: int
    bids: list[Level]
    asks: list[Level]
    snapshot: bool
    first_id: int = 0
    last_id: int = 0
    prev_id: int = 0
    checksum: int | None = None

    def to_record(self) -> dict[str, int | str]:
        """Header only: the ring writer emits one MD_BOOK_LEVEL per entry of bids/asks
        (MD_BOOK_CLEAR first when `snapshot`)."""
        return {
            "kind": "MD_BOOK_CLEAR" if self.snapshot else "MD_BOOK_LEVEL",
            "instrument": self.instrument,
            "ts_event": self.ts_event,
            "ts_recv": self.ts_recv,
            "seq": self.last_id,
            "levels": len(self.bids) + len(self.asks),
        }

    def __repr__(self) -> str:
        kind = "snapshot" if self.snapshot else "diff"
        return (
            f"BookUpdate({self.instrument} {kind} {self.first_id}..{self.last_id} "
            f"bids={len(self.bids)} asks={len(self.asks)})"
        )


@dataclass(slots=True, eq=False)
class Bar:
    """A K-line (candle) as the venue reports it; `closed` is true once the interval is final."""

    instrument: str
    interval_s: int
    ts_open: int
    ts_recv: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    closed: bool

    def to_record(self) -> dict[str, int | str]:
        return {
            "kind": "MD_KLINE",
            "instrument": self.instrument,
            "interval_s": self.interval_s,
            "ts_event": self.ts_open,
            "ts_recv": self.ts_recv,
            "open": self.open,
            "high": self.high,
            "low": self.low,
            "close": self.close,
            "volume": self.volume,
            "closed": int(self.closed),
        }

    def __repr__(self) -> str:
        return f"Bar({self.instrument} {self.interval_s}s o={self.open} c={self.close})"


Record = Trade | Ticker | BookUpdate | Bar
