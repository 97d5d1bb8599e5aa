"""Normalized market-data records that every venue parser produces.

Plain slotted classes rather than dataclasses: the hot path builds one per message and
`__slots__` keeps that cheap. Prices are integer ticks and quantities integer lots of the
instrument's table entry; `ts_event` is the venue's timestamp and `ts_recv` ours, both int ns.
`to_record()` is the hook the market-data ring writer uses: a flat dict of integer fields named
like the `md` ring's fields, so the writer maps it onto its numpy dtype without knowing venues.
"""

from __future__ import annotations

from engine.enums import Side


class Trade:
    """One external trade: `side` is the taker's; `quality` is reference/ingestion.md's score."""

    __slots__ = (
        "instrument",
        "price",
        "qty",
        "quality",
        "sequence",
        "side",
        "trade_id",
        "ts_event",
        "ts_recv",
    )

    def __init__(
        self,
        instrument: str,
        ts_event: int,
        ts_recv: int,
        price: int,
        qty: int,
        side: Side,
        trade_id: int,
        sequence: int,
        quality: int,
    ) -> None:
        self.instrument = instrument
        self.ts_event = ts_event
        self.ts_recv = ts_recv
        self.price = price
        self.qty = qty
        self.side = side
        self.trade_id = trade_id
        self.sequence = sequence
        self.quality = quality

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


class Ticker:
    """Best bid/ask and 24 h statistics; `fields` holds the venue's raw fields kept by config
    (seed 001's field selection), as the strings the venue sent, so nothing is rounded."""

    __slots__ = (
        "ask",
        "ask_qty",
        "bid",
        "bid_qty",
        "fields",
        "instrument",
        "last",
        "sequence",
        "ts_event",
        "ts_recv",
        "volume",
    )

    def __init__(
        self,
        instrument: str,
        ts_event: int,
        ts_recv: int,
        last: int,
        bid: int,
        bid_qty: int,
        ask: int,
        ask_qty: int,
        volume: int,
        sequence: int,
        fields: dict[str, str],
    ) -> None:
        self.instrument = instrument
        self.ts_event = ts_event
        self.ts_recv = ts_recv
        self.last = last
        self.bid = bid
        self.bid_qty = bid_qty
        self.ask = ask
        self.ask_qty = ask_qty
        self.volume = volume
        self.sequence = sequence
        self.fields = fields

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


class BookUpdate:
    """A book change as applied to our local book: a full snapshot or a diff.

    `first_id`/`last_id`/`prev_id` carry the venue's sequence fields (Binance U/u/pu, OKX
    seqId/prevSeqId, Coinbase sequence) so that the book keeper can check continuity;
    `checksum` is the venue's digest of its book after this update (Kraken), if it sends one.
    """

    __slots__ = (
        "asks",
        "bids",
        "checksum",
        "first_id",
        "instrument",
        "last_id",
        "prev_id",
        "snapshot",
        "ts_event",
        "ts_recv",
    )

    def __init__(
        self,
        instrument: str,
        ts_event: int,
        ts_recv: int,
        bids: list[Level],
        asks: list[Level],
        snapshot: bool,
        first_id: int = 0,
        last_id: int = 0,
        prev_id: int = 0,
        checksum: int | None = None,
    ) -> None:
        self.instrument = instrument
        self.ts_event = ts_event
        self.ts_recv = ts_recv
        self.bids = bids
        self.asks = asks
        self.snapshot = snapshot
        self.first_id = first_id
        self.last_id = last_id
        self.prev_id = prev_id
        self.checksum = checksum

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


class Bar:
    """A K-line (candle) as the venue reports it; `closed` is true once the interval is final."""

    __slots__ = (
        "close",
        "closed",
        "high",
        "instrument",
        "interval_s",
        "low",
        "open",
        "ts_open",
        "ts_recv",
        "volume",
    )

    def __init__(
        self,
        instrument: str,
        interval_s: int,
        ts_open: int,
        ts_recv: int,
        open: int,
        high: int,
        low: int,
        close: int,
        volume: int,
        closed: bool,
    ) -> None:
        self.instrument = instrument
        self.interval_s = interval_s
        self.ts_open = ts_open
        self.ts_recv = ts_recv
        self.open = open
        self.high = high
        self.low = low
        self.close = close
        self.volume = volume
        self.closed = closed

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
