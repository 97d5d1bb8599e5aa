"""The recorder process: the Parquet history of everything `execs` carries.

It reads every `execs.<shard>` ring with its own cursor and writes, through `storage.history`
under `<home>/history`: trades, order events (accept, amend, cancel, reject, and each fill's
two legs), ticks (each trade with the day's totals and the L1 after it), 1-second book
snapshots and finished K-lines. When the instance runs a feeds process, it also subscribes to
the feeds PUB and writes other venues' trades and finished K-lines to `external_trades` and
`external_klines` (`ExternalFeed`; best effort, see docs/storage.md). Book and bars come from
its own `engine.marketdata.MarketData`; a book snapshot row holds the depth at the end of one
second of *event* time, and is written when the instrument's first event of a later second
arrives, so replaying the same execs writes the same rows. Instruments created at run time are
learned as marketdata learns them (INSTRUMENT_STATUS_CHANGED, services/instrument_sync.py).

Exec records are buffered as they arrive and turned into rows only when they are flushed, by
records or seconds (one Arrow conversion per table per flush, not per loop turn); after each
flush the state is checkpointed with the exec sequences it reflects and the held cursor (see
services/marketdata.py) catches up, so a SIGKILL loses no row: the restart loads the checkpoint
and re-reads the records after it. Rows a crash between a flush and its checkpoint already wrote
are recognised (`seq`, or event time for bars and snapshots, at or below what the files hold) and
skipped.
"""

from __future__ import annotations

import itertools
import logging
import operator
import time
from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import zmq

from engine.instruments import InstrumentRegistry
from engine.marketdata.aggregator import MarketData
from engine.marketdata.kline import NS_PER_SECOND
from engine.matching.events import TradeExecuted
from ipc.control import ControlError, call
from ipc.pubsub import Subscriber
from ipc.records import Kind
from services import config as configuration
from services.marketdata import (
    ASK_ACCOUNTS_S,
    adopt_streams,
    held_cursors,
    instrument_sync,
    market_events,
    sequences,
)
from services.process import Service, main
from services.topology import execs_rings
from storage.checkpoint import latest_checkpoint, write_checkpoint
from storage.compaction import compact
from storage.exec_rows import order_event_rows, trade_rows
from storage.external_rows import ExternalRows
from storage.history import HistoryConfig, HistoryWriter, to_record_batch
from storage.query import HistoryQuery
from storage.schemas import BOOK_DEPTH, TABLES

log = logging.getLogger(__name__)

_KIND_SLOTS = max(Kind) + 1
_NEVER = 2**62
"""The HistoryWriter's own limits are switched off: the recorder flushes every table at once."""
_SEQ_TABLES = ("trades", "order_events", "ticks")
EXTERNAL_HWM = 200_000
"""Feeds messages the SUB queue holds between two polls (one heartbeat, 1 s by default)."""
EXTERNAL_BATCH = 10_000
EXTERNAL_ASK_S = 2.0
EXTERNAL_ASK_TIMEOUT_S = 0.2


class Recording:
    """Turns market events into ticks, book-snapshot and K-line rows (pure, given its state)."""

    def __init__(
        self, instruments: InstrumentRegistry, market: MarketData, seconds: dict[int, int]
    ) -> None:
        self._instruments = instruments
        self.market = market
        self.seconds = seconds
        """Per instrument, the event-time second whose closing book is not written yet."""
        self.ticks: list[tuple[int, ...]] = []
        self.books: list[tuple[int, ...]] = []
        self.bars: list[tuple[int, ...]] = []

    def apply(self, events: list[Any], trade_seqs: Iterable[int]) -> None:
        seqs = iter(trade_seqs)
        start = 0
        for position, event in enumerate(events):
            index = event.instrument_index
            second = event.ts // NS_PER_SECOND
            pending = self.seconds.get(index)
            if pending is not None and second > pending:
                self._apply(events[start:position])
                start = position
                self.books.append(self._book_row(index, pending))
            if pending is None or second > pending:
                self.seconds[index] = second
            if type(event) is TradeExecuted:
                self._apply(events[start : position + 1])
                start = position + 1
                self._tick_row(event, next(seqs))
        self._apply(events[start:])

    def _apply(self, events: list[Any]) -> None:
        if not events:
            return
        for index, bar in self.market.apply(events).finished_bars:
            per = self._instruments.by_index(index).money_per_tick_lot
            self.bars.append(
                (
                    *(bar.start_ns, index, bar.period, bar.open, bar.high, bar.low, bar.close),
                    *(bar.volume, bar.turnover // per, bar.open_oi, bar.close_oi),
                )
            )

    def _tick_row(self, trade: TradeExecuted, seq: int) -> None:
        index = trade.instrument_index
        market = self.market.market(index)
        tick = market.trades[-1]
        depth = market.depth
        bid = depth.best_bid or (0, 0)
        ask = depth.best_ask or (0, 0)
        per = self._instruments.by_index(index).money_per_tick_lot
        self.ticks.append(
            (
                *(tick.ts, seq, index, tick.price, tick.qty, tick.taker_side, tick.volume),
                *(tick.turnover // per, tick.open_interest, bid[0], bid[1], ask[0], ask[1]),
            )
        )

    def _book_row(self, index: int, second: int) -> tuple[int, ...]:
        book: dict[str, Any] = self.market.book(index, BOOK_DEPTH)
        values: list[int] = [second * NS_PER_SECOND, index]
        for side in ("bids", "asks"):
            levels = book[side] + [(0, 0)] * (BOOK_DEPTH - len(book[side]))
            values += [price for price, _qty in levels] + [qty for _price, qty in levels]
        return tuple(values)

    def take(self) -> dict[str, list[tuple[int, ...]]]:
        """The rows made since the last call, by table."""
        out = {"ticks": self.ticks, "book_snapshots": self.books, "klines": self.bars}
        self.ticks, self.books, self.bars = [], [], []
        return out


class Duplicates:
    """What the history files already hold, read once at start: rows at or below it are
    skipped (a crash between a flush and its checkpoint leaves such rows behind)."""

    def __init__(self, query: HistoryQuery) -> None:
        self._floors: dict[str, pl.DataFrame] = {}
        for table in _SEQ_TABLES:
            self._floors[table] = self._max(query, table, ["instrument_id"], "seq")
        self._floors["book_snapshots"] = self._max(
            query, "book_snapshots", ["instrument_id"], "ts_event"
        )
        self._floors["klines"] = self._max(
            query, "klines", ["instrument_id", "period_s"], "ts_event"
        )

    @staticmethod
    def _max(query: HistoryQuery, table: str, keys: list[str], column: str) -> pl.DataFrame:
        return (
            query.scan(table)
            .group_by(keys)
            .agg(pl.col(column).max().alias("floor"))
            .collect()
            .with_columns(pl.lit(column).alias("column"))
        )

    def drop(self, table: str, rows: pl.DataFrame) -> pl.DataFrame:
        floors = self._floors.get(table)
        if floors is None or floors.is_empty() or rows.is_empty():
            return rows
        column = floors["column"][0]
        keys = [c for c in floors.columns if c not in ("floor", "column")]
        return (
            rows.with_row_index("_row")
            .join(floors.drop("column"), on=keys, how="left")
            .filter(pl.col("floor").is_null() | (pl.col(column) > pl.col("floor")))
            .sort("_row")
            .drop("_row", "floor")
        )


class ExternalFeed:
    """The feeds process's PUB as the recorder reads it: other venues' trades and finished
    bars for the `external_*` tables.

    The PUB's address is asked of the feeds control socket (it may have fallen back to a free
    port), every EXTERNAL_ASK_S until it answers. PUB/SUB is not a ring: what is published
    while the recorder is down, or beyond EXTERNAL_HWM messages between two polls, is not
    recorded (docs/storage.md)."""

    def __init__(self, config: configuration.Config) -> None:
        self._control = config.control_endpoint("feeds")
        self._context: zmq.Context[Any] = zmq.Context()
        self._subscriber = Subscriber(self._context, (), ("md.",), recv_hwm=EXTERNAL_HWM)
        self.endpoint = ""
        self._next_ask = 0.0
        self.rows = ExternalRows()
        self.received = 0
        self.dropped = 0
        """Rows whose values did not fit their columns (an int8 quality of 300, say)."""

    def poll(self, now: float) -> int:
        """Take what arrived; returns how many rows are waiting for the writer."""
        if not self.endpoint and now >= self._next_ask:
            self._next_ask = now + EXTERNAL_ASK_S
            try:
                endpoint = call(self._control, "endpoint", timeout=EXTERNAL_ASK_TIMEOUT_S)
            except ControlError:
                endpoint = ""
            if isinstance(endpoint, str) and endpoint:
                self._subscriber.socket.connect(endpoint)
                self.endpoint = endpoint
                log.info("recording external market data from %s", endpoint)
        while True:
            messages = self._subscriber.receive_many(0.0, EXTERNAL_BATCH)
            if not messages:
                return self.rows.pending()
            self.received += len(messages)
            self.rows.add(messages)

    def status(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "received": self.received,
            "skipped": self.rows.skipped,
            "malformed": self.rows.malformed,
            "dropped": self.dropped,
        }

    def close(self) -> None:
        self._subscriber.close()
        self._context.term()


class Recorder(Service):
    name: ClassVar[str] = "recorder"

    def inputs(self) -> list[str]:
        return execs_rings(self.config)

    def start(self) -> None:
        section = self.config["recorder"]
        self._flush_rows = int(section["flush_rows"])
        self._flush_interval = float(section["flush_interval_s"])
        self._compact_interval = float(section["compact_interval_s"])
        self._next_compaction = time.monotonic() + self._compact_interval
        self._summary_s = float(self.config["processes"]["status_interval_s"])
        self._next_summary = time.monotonic() + self._summary_s
        self._counts = np.zeros(_KIND_SLOTS, dtype=np.int64)
        self._logged_total = 0
        self._last_seq = 0
        self.rows_written = dict.fromkeys(TABLES, 0)
        self.files_written = 0
        self.instruments = configuration.load_instruments(self.config)
        self._sync = instrument_sync(self.config, self.instruments)
        self._sync.catch_up(ASK_ACCOUNTS_S)
        self.root = self.config.home / "history"
        self._writer = HistoryWriter(self.root, HistoryConfig(max_rows=_NEVER, max_age_ns=_NEVER))
        self._buffered = 0
        """Exec records and external rows waiting for the next flush (the `flush_rows` limit)."""
        self._unwritten: list[tuple[str, np.ndarray[Any, Any]]] = []
        self._pending = dict.fromkeys(TABLES, 0)
        self._oldest = 0.0
        self._directory = self.config.home / "checkpoints"
        self._checkpoint_name = self.instance_name.replace(".", "_")
        self._held = held_cursors(self.config, self.inputs(), self.instance_name)
        market, seconds = MarketData(self.instruments, keep=1), {}
        found = latest_checkpoint(self._directory, self._checkpoint_name)
        state = None if found is None else orjson.loads(found[1])
        self._generation = 0 if found is None else found[0]
        if state is not None:
            market = MarketData.from_state(self.instruments, state["market"])
            seconds = {int(k): v for k, v in state["seconds"].items()}
        self._streams, same_rings = adopt_streams(state and state["streams"], self._held)
        self._recording = Recording(self.instruments, market, seconds)
        # Files newer than the checkpoint exist only after a crash on these very rings.
        self._duplicates = Duplicates(HistoryQuery(self.root)) if same_rings else None
        self._external = ExternalFeed(self.config) if _feeds_enabled(self.config) else None
        self.replayed = 0
        for ring, held in self._held.items():
            pending = held.pending()
            self.replayed += len(pending)
            self._record(ring, pending)
        if self.replayed:
            self.flush()

    def handle(self, ring: str, batch: np.ndarray[Any, Any]) -> None:
        kinds = batch["kind"].astype(np.int64)
        self._counts += np.bincount(np.minimum(kinds, _KIND_SLOTS - 1), minlength=_KIND_SLOTS)
        self._last_seq = int(batch["seq"][-1])
        self._record(ring, batch)
        if self._buffered >= self._flush_rows:
            self.flush()

    def _record(self, ring: str, batch: np.ndarray[Any, Any]) -> None:
        """Keep the batch's fresh records; they become rows at the next flush (`_make_rows`),
        so a loop turn that reads a few records costs a copy, not five Arrow conversions."""
        fresh = self._streams.fresh(ring, batch)
        if not len(fresh):
            return
        self._unwritten.append((ring, np.array(fresh)))
        self._buffered += len(fresh)
        self._oldest = self._oldest or time.monotonic()

    def _make_rows(self) -> None:
        """Turn the buffered exec records into rows for the writer, one run of consecutive
        batches from the same ring at a time (the rows equal those of batch-by-batch calls:
        within a ring, sequences only grow)."""
        now = time.time_ns()
        for _ring, run in itertools.groupby(self._unwritten, key=operator.itemgetter(0)):
            fresh = np.concatenate([records for _ring, records in run])
            self._sync.apply(fresh)
            events, trade_seqs = market_events(fresh, len(self.instruments))
            self._recording.apply(events, trade_seqs.tolist())
            tables: dict[str, Any] = {
                "trades": trade_rows(fresh),
                "order_events": order_event_rows(fresh),
            }
            for table, rows in self._recording.take().items():
                values = np.array(rows, dtype=np.int64).reshape(-1, len(TABLES[table].names))
                tables[table] = {name: values[:, n] for n, name in enumerate(TABLES[table].names)}
            for table, columns in tables.items():
                self._append(table, columns, now)
        self._unwritten = []

    def _append(self, table: str, columns: Any, now: int) -> None:
        rows = to_record_batch(table, columns)
        if self._duplicates is not None:
            frame = self._duplicates.drop(table, pl.DataFrame(pl.from_arrow(rows)))
            rows = to_record_batch(table, frame.to_arrow())
        if rows.num_rows:
            self._writer.append(table, rows, now)
            self._pending[table] += rows.num_rows

    def _record_external(self) -> None:
        """External rows are appended as they are; no checkpoint covers them (PUB/SUB)."""
        assert self._external is not None
        if not self._external.poll(time.monotonic()):
            return
        now = time.time_ns()
        for table, columns in self._external.rows.take().items():
            try:
                rows = to_record_batch(table, columns)
            except (pa.ArrowException, OverflowError) as exc:  # another process's data: skip it
                self._external.dropped += len(columns["ts_event"])
                log.error("external %s rows dropped: %s", table, exc)
                continue
            self._writer.append(table, rows, now)
            self._buffered += rows.num_rows
            self._pending[table] += rows.num_rows
        self._oldest = self._oldest or time.monotonic()

    def flush(self) -> dict[str, int]:
        """Write every buffered row, then checkpoint the state those rows reflect."""
        if self._external is not None:
            self._record_external()
        self._make_rows()
        if any(self._pending.values()):
            self.files_written += len(self._writer.flush(None, time.time_ns()))
            for table, rows in self._pending.items():
                self.rows_written[table] += rows
            self._pending = dict.fromkeys(TABLES, 0)
        payload = orjson.dumps(
            {
                "streams": self._streams.export(),
                "market": self._recording.market.export_state(),
                "seconds": {str(k): v for k, v in self._recording.seconds.items()},
            }
        )
        seqs = sequences(self._streams, self.inputs())
        self._generation += 1
        write_checkpoint(self._directory, self._checkpoint_name, self._generation, payload)
        for ring, held in self._held.items():
            held.advance(seqs[ring])
        self._buffered = 0
        self._oldest = 0.0
        self._duplicates = None
        return seqs

    def tick(self, now_ns: int) -> None:
        self._sync.catch_up(ASK_ACCOUNTS_S)
        if self._external is not None:
            self._record_external()
        now = time.monotonic()
        if self._oldest and now - self._oldest >= self._flush_interval:
            self.flush()
        if now >= self._next_compaction and not self._buffered:
            self._next_compaction = now + self._compact_interval
            for table in TABLES:
                compact(self.root, table)
        if now >= self._next_summary:
            self._next_summary = now + self._summary_s
            total = int(self._counts.sum())
            if total != self._logged_total:
                self._logged_total = total
                log.info("summary", extra={"fields": {"total": total, **self.rows_written}})

    def checkpoint(self) -> dict[str, int]:
        return self.flush()

    def counts(self) -> dict[str, int]:
        """Records seen per kind name since this process started."""
        out: dict[str, int] = {}
        for value in np.flatnonzero(self._counts):
            try:
                label = Kind(int(value)).name
            except ValueError:
                label = str(int(value))
            out[label] = int(self._counts[value])
        return out

    def status(self) -> dict[str, Any]:
        return {
            "counts": self.counts(),
            "total": int(self._counts.sum()),
            "last_seq": self._last_seq,
            "seqs": sequences(self._streams, self.inputs()),
            "rows_written": dict(self.rows_written),
            "files_written": self.files_written,
            "buffered_rows": self._buffered,
            "replayed": self.replayed,
            "external": None if self._external is None else self._external.status(),
        }

    def stop(self) -> None:
        self.flush()
        if self._external is not None:
            self._external.close()
        for held in self._held.values():
            held.close()
        log.info("final", extra={"fields": {"total": int(self._counts.sum()), **self.rows_written}})


def _feeds_enabled(config: configuration.Config) -> bool:
    """Whether this instance runs a feeds process (as services.topology decides)."""
    return config.enabled("feeds") and bool(config["feeds"]["venues"])


if __name__ == "__main__":
    raise SystemExit(main(Recorder))
