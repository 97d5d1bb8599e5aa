"""The normalizer every venue shares: frame → decode → parse → validate → dedup → book → buffer.

`Normalizer` is the parsing half of a connector: it holds no socket, so recordings, replays
and the benchmark drive exactly the code a live connection drives. Venue subclasses implement
`parse()` (and `parse_snapshot()` for REST books) with the helpers here, which turn venue
strings into ticks and lots, score quality, and count every rejection by reason.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Hashable, Mapping, Sequence
from decimal import InvalidOperation
from typing import Any, ClassVar

import orjson

from engine.enums import Side
from gateway.feeds.book import BookKeeper, OrderBook, SequenceRule
from gateway.feeds.buffer import BoundedBuffer
from gateway.feeds.config import DEFAULT_TICKER_FIELDS, FeedConfig
from gateway.feeds.decode import FrameDecoder
from gateway.feeds.dedup import Deduplicator
from gateway.feeds.instruments import InstrumentSpec, InstrumentTable, OffTick
from gateway.feeds.quality import quality_score
from gateway.feeds.records import Bar, BookUpdate, Level, Record, Ticker, Trade

log = logging.getLogger(__name__)

MALFORMED = (KeyError, TypeError, ValueError, IndexError, AttributeError, InvalidOperation)
"""What a parser raises on a frame that is JSON but not the venue's documented shape."""

_NS = 1_000_000_000

_new = object.__new__


class Normalizer:
    """Venue-independent half of a connector. Subclasses set `venue`, `default_instruments`,
    `book_rule`, and implement `parse`; they never touch counters or the buffer directly."""

    venue: ClassVar[str] = ""
    default_instruments: ClassVar[Mapping[str, Mapping[str, str]]] = {}
    book_rule: ClassVar[type[SequenceRule]] = SequenceRule
    pong: ClassVar[str] = ""
    """A non-JSON keep-alive reply (OKX's "pong") that is neither data nor malformed."""

    def __init__(self, config: FeedConfig, clock_ns: Callable[[], int]) -> None:
        self.config = config
        self.clock_ns = clock_ns
        rows = {**self.default_instruments, **config.instruments}
        self.instruments = InstrumentTable.from_mapping(self.venue, rows)
        self.spec = self.instruments.lookup_function()
        # per-frame reads of class attributes, as instance attributes (3.11 specializes those)
        self._loads = self.loads
        self._pong = self.pong
        """Venue symbol → spec, or None (counted as `unknown_symbol`)."""
        self.decoder = FrameDecoder(config.min_decode_confidence)
        self.dedup = Deduplicator(config.dedup_size, int(config.dedup_ttl * _NS))
        self.buffer = BoundedBuffer(config.buffer_capacity, config.buffer_rate)
        self.books: dict[str, BookKeeper] = {}
        self.resync_pending: set[str] = set()
        fields = config.ticker_fields
        self.ticker_fields = (
            fields if fields is not None else DEFAULT_TICKER_FIELDS.get(self.venue, ())
        )
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "frames",
                "malformed",
                "off_tick",
                "rejected",
                "records",
                "written",
                "book_gaps",
                "checksum_errors",
                "book_stale",
                "resyncs",
                "reconnects",
                "rest_snapshots",
                "rest_errors",
                "venue_errors",
            ),
            0,
        )

    # -- venue contract --------------------------------------------------------------------

    loads: ClassVar[Callable[[str], Any]] = staticmethod(orjson.loads)
    """JSON → Python; venues that send prices as JSON numbers use `numbers.loads_exact`."""

    def parse(self, message: Any, ts_recv: int) -> Sequence[Record]:
        """One decoded venue message → its normalized records other than trades, which the
        parser hands to `trade()` (none for acks, pongs, heartbeats)."""
        raise NotImplementedError

    def parse_snapshot(self, symbol: str, body: Any, ts_recv: int) -> BookUpdate | None:
        """A REST book snapshot body → a snapshot BookUpdate (venues with a REST book)."""
        raise NotImplementedError

    def book_checksum(self, book: OrderBook) -> int:
        """The venue's digest of a book, for venues whose updates carry `checksum`."""
        raise NotImplementedError

    # -- the pipeline ------------------------------------------------------------------------

    def feed(self, frame: bytes | str, ts_recv: int) -> int:
        """Run one raw frame through the pipeline; returns how many records it buffered.

        Trades, the bulk of every feed, are buffered by `trade()` as the parser finds them;
        the records `parse` returns go here through their book keeper (books) or the dedup
        of their content (tickers, bars). A malformed frame keeps the trades of the rows
        before the malformed one."""
        counters = self.counters
        counters["frames"] += 1
        text = frame if frame.__class__ is str else self.decoder.decode(frame)
        if text is None or text == self._pong:
            return 0
        buffer = self.buffer
        accepted = buffer.accepted
        loads = self._loads
        try:
            records = self.parse(loads(text), ts_recv)
        except MALFORMED as error:
            counters["malformed"] += 1
            log.debug("%s: malformed frame (%s): %.200s", self.venue, error, text)
            return buffer.accepted - accepted
        if records:
            counters["records"] += len(records)
            for record in records:
                if record.__class__ is BookUpdate:
                    self._on_book(record, ts_recv)  # type: ignore[arg-type]
                elif not self.dedup.seen(self._event_key(record), ts_recv):
                    buffer.offer(record, ts_recv)
        return buffer.accepted - accepted

    def feed_snapshot(self, symbol: str, body: bytes | str, ts_recv: int) -> int:
        """A REST snapshot body, fetched live or replayed from a recording."""
        try:
            snapshot = self.parse_snapshot(symbol, orjson.loads(body), ts_recv)
        except MALFORMED as error:
            self.counters["rest_errors"] += 1
            log.warning("%s: bad REST snapshot for %s: %s", self.venue, symbol, error)
            return 0
        if snapshot is None:
            return 0
        self.counters["rest_snapshots"] += 1
        self.counters["records"] += 1
        self.resync_pending.discard(symbol)
        return self._on_book(snapshot, ts_recv)

    @staticmethod
    def _event_key(record: Record) -> Hashable:
        if record.__class__ is Ticker:
            return ("T", record.instrument, record.ts_event, record.sequence, record.last)  # type: ignore[union-attr]
        return (
            "K",
            record.instrument,
            record.interval_s,
            record.ts_open,
            record.close,
            record.volume,
            record.closed,
        )  # type: ignore[union-attr]

    def _on_book(self, update: BookUpdate, ts_recv: int) -> int:
        keeper = self.books.get(update.instrument)
        if keeper is None:
            keeper = self.books[update.instrument] = BookKeeper(self.book_rule())
        gaps, stale = keeper.gaps, keeper.stale
        applied, resync = keeper.on_update(update)
        checksum = applied[-1].checksum if applied else None
        if checksum is not None and keeper.synced and self.book_checksum(keeper.book) != checksum:
            self.counters["checksum_errors"] += 1
            keeper.invalidate()
            applied, resync = applied[:-1], True
        self.counters["book_gaps"] += keeper.gaps - gaps
        self.counters["book_stale"] += keeper.stale - stale
        if resync:
            symbol = self.instruments.symbol_of(update.instrument)
            log.info("%s: sequence gap on %s, resync", self.venue, update.instrument)
            self.resync_pending.add(symbol)
        return sum(self.buffer.offer(u, ts_recv) for u in applied)

    def take(self, limit: int = 0) -> list[Record]:
        """The consumer's side: take buffered records and count them as written."""
        records = self.buffer.drain(limit)
        self.counters["written"] += len(records)
        return records

    # -- helpers for venue parsers -----------------------------------------------------------

    def venue_error(self, message: Any) -> tuple[()]:
        """A venue's error answer (a refused subscription, a bad request): counted and logged."""
        self.counters["venue_errors"] += 1
        log.warning("%s: venue error: %.300s", self.venue, message)
        return ()

    def trade(
        self,
        spec: InstrumentSpec,
        ts_event: int,
        ts_recv: int,
        price: Any,
        qty: Any,
        side: Side,
        trade_id: Any,
        sequence: int = 0,
    ) -> None:
        """Validate, score, deduplicate (by instrument, trade id and event time) and buffer one
        trade; off tick or not positive is counted and dropped. The per-message hot path:
        no record list, no routing, and a duplicate builds no record."""
        tick, lot = spec.tick, spec.lot
        # Scale.units without its frame when the memo knows the value (prices do); `lookup`
        # read as an attribute and then called: LOAD_METHOD cannot specialize a slot's value
        lookup = tick.lookup
        lots = lot.lookup
        try:
            ticks = lookup(price) or tick.convert(price)
            lots = lots(qty) or lot.convert(qty)
        except OffTick:
            self.counters["off_tick"] += 1
            return
        if ticks <= 0 or lots <= 0:
            self.counters["rejected"] += 1
            return
        if lots >= spec.dust_lots and ticks <= spec.max_price_ticks and spec.symbol_valid:
            score = 100  # the common case, without the call
        else:
            score = quality_score(
                ticks, lots, spec.symbol_valid, spec.dust_lots, spec.max_price_ticks
            )
        if trade_id.__class__ is not int:
            trade_id = _int_id(trade_id)
        self.counters["records"] += 1
        instrument = spec.instrument_id
        if self.dedup.seen((instrument, trade_id, ts_event), ts_recv):
            return
        # the fields set here rather than by Trade(...), whose dataclass __init__ runs from C
        # (type call → slot_tp_init) at twice the cost of this block (the venue tests compare
        # every field of the emitted trades)
        record = _new(Trade)
        record.instrument = instrument
        record.ts_event = ts_event
        record.ts_recv = ts_recv
        record.price = ticks
        record.qty = lots
        record.side = side
        record.trade_id = trade_id
        record.sequence = sequence
        record.quality = score
        self.buffer.offer(record, ts_recv)

    def levels(self, spec: InstrumentSpec, rows: Sequence[Sequence[Any]]) -> list[Level]:
        """[[price, qty, ...], ...] → [(ticks, lots)]; raises OffTick (the whole update is bad)."""
        tick, lot = spec.tick.units, spec.lot.units
        return [(tick(row[0]), lot(row[1])) for row in rows]

    def book(
        self,
        spec: InstrumentSpec,
        ts_event: int,
        ts_recv: int,
        bids: Sequence[Sequence[Any]],
        asks: Sequence[Sequence[Any]],
        snapshot: bool,
        first_id: int = 0,
        last_id: int = 0,
        prev_id: int = 0,
        checksum: int | None = None,
    ) -> BookUpdate | None:
        try:
            bid_levels = self.levels(spec, bids)
            ask_levels = self.levels(spec, asks)
        except OffTick:
            self.counters["off_tick"] += 1
            return None
        return BookUpdate(
            spec.instrument_id,
            ts_event,
            ts_recv,
            bid_levels,
            ask_levels,
            snapshot,
            first_id,
            last_id,
            prev_id,
            checksum,
        )

    def ticker(
        self,
        spec: InstrumentSpec,
        ts_event: int,
        ts_recv: int,
        raw: Mapping[str, Any],
        last: Any,
        bid: Any = None,
        bid_qty: Any = None,
        ask: Any = None,
        ask_qty: Any = None,
        volume: Any = None,
        sequence: int = 0,
    ) -> Ticker | None:
        """Missing quote sides are 0; the configured raw fields are kept as strings."""
        try:
            tick, lot = spec.tick.units, spec.lot.units
            record = Ticker(
                spec.instrument_id,
                ts_event,
                ts_recv,
                tick(last) if last is not None else 0,
                tick(bid) if bid is not None else 0,
                lot(bid_qty) if bid_qty is not None else 0,
                tick(ask) if ask is not None else 0,
                lot(ask_qty) if ask_qty is not None else 0,
                lot(volume) if volume is not None else 0,
                sequence,
                {name: str(raw[name]) for name in self.ticker_fields if name in raw},
            )
        except OffTick:
            self.counters["off_tick"] += 1
            return None
        return record

    def bar(
        self,
        spec: InstrumentSpec,
        interval_s: int,
        ts_open: int,
        ts_recv: int,
        ohlcv: Sequence[Any],
        closed: bool,
    ) -> Bar | None:
        try:
            tick, lot = spec.tick.units, spec.lot.units
            o, h, low, c, v = ohlcv
            return Bar(
                spec.instrument_id,
                interval_s,
                ts_open,
                ts_recv,
                tick(o),
                tick(h),
                tick(low),
                tick(c),
                lot(v),
                closed,
            )
        except OffTick:
            self.counters["off_tick"] += 1
            return None

    def stats(self) -> dict[str, Any]:
        """Every counter, plus the health line's figures."""
        out: dict[str, Any] = dict(self.counters)
        out.update(
            unknown_symbol=self.instruments.unknown,
            undecodable=self.decoder.undecodable,
            redecoded=self.decoder.redecoded,
            duplicates=self.dedup.duplicates,
            dedup_ratio=self.dedup.ratio,
            buffered=len(self.buffer),
            buffer_fill=self.buffer.fill,
            dropped_full=self.buffer.dropped_full,
            dropped_rate=self.buffer.dropped_rate,
            books_synced=sum(k.synced for k in self.books.values()),
            books=len(self.books),
        )
        return out


def _int_id(trade_id: Any) -> int:
    """Venue trade ids that are not ints (numeric strings; Bybit UUIDs, as a stable 63-bit
    hash) as int."""
    text = trade_id if trade_id.__class__ is str else str(trade_id)
    if text.isdigit():
        return int(text)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1


def ms(value: Any) -> int:
    """Milliseconds (int or numeric string, possibly fractional like Gate's) → int ns."""
    if value.__class__ is int:
        return value * 1_000_000  # type: ignore[no-any-return]
    if value.__class__ is str and value.isdigit():  # OKX, Bybit: "1700000000000"
        return int(value) * 1_000_000
    whole, _, frac = str(value).partition(".")
    return int(whole) * 1_000_000 + int(frac[:6].ljust(6, "0"))
