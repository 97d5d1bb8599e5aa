"""The matching process of one shard: `orders.<shard>` in, `MatchingEngine`, `execs.<shard>` out.

Batch in, batch out: a ring batch is journaled, decoded column-wise, applied command by command,
and its events leave as one numbered `execs` batch. Under the Runner in sync mode the batch is
only written before it is applied and its execs wait in a `CommitGate` until the fsync that
covers it (one group commit for the batches of a pass, overlapping the next ones), as in
accounts. The journal of its own
input is what rebuilds the books after a restart: checkpoint (`export_state`) + the journal tail
through the same `_apply`, regenerated execs written only beyond what `execs` already published
(services/recovery.py, docs/durability.md).

The engine knows nothing of positions, but market data needs to know whether a trade opens or
closes them (open interest): the process keeps each live order's `Offset` from its NEW_ORDER
record, in its checkpoint too, and writes both legs' offsets into every TRADE record. Readers
of `execs` learn instruments created or changed at run time from the INSTRUMENT_STATUS_CHANGED
record written where the definition was applied, ahead of that instrument's later records.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from engine.enums import CloseTodayRule, InstrumentKind, InstrumentStatus
from engine.instruments import NO_LIMIT, CommissionSpec, Instrument, InstrumentRegistry
from engine.matching.commands import UpsertInstrument
from engine.matching.engine import MatchingEngine
from engine.matching.events import OrderCanceled, OrderRejected, TradeExecuted
from engine.money import RATE_SCALE
from ipc.control import ControlServer
from ipc.records import ORDER, Flag, Kind
from services import config as configuration
from services.columns import kind_table
from services.matching_codec import (
    InstrumentChanged,
    band_from_limits,
    events_to_execs,
    orders_to_commands,
)
from services.process import Service, main
from services.recovery import (
    CommitGate,
    Output,
    Snapshotter,
    Streams,
    checkpoint_dir,
    epoch_of,
    journal_dir,
    journal_status,
)
from storage.canonical import canonical_dumps, canonical_loads, pack_sections, unpack_sections
from storage.checkpoint import write_checkpoint
from storage.journal import Journal, iter_journal_arrays
from storage.recovery import plan_recovery

log = logging.getLogger(__name__)

_INSTRUMENT_KINDS = kind_table([Kind.ADD_INSTRUMENT, Kind.SET_INSTRUMENT_STATUS])
_NEW_ORDER, _TRADE = int(Kind.NEW_ORDER), int(Kind.TRADE)
"""Plain ints: numpy compares a column with an int ~4x faster than with an IntEnum member."""
_INSTRUMENT_DEFAULTS = (0, None, 0)
"""`adopt`'s min_qty, band_e8, max_qty for a checkpoint written before they were kept."""


def checkpoint_name(shard: int) -> str:
    return f"matching{shard}"


def _learned(registry: InstrumentRegistry, index: int) -> Instrument:
    """A shard's stand-in for an instrument created at run time: the record carries only what
    matching checks (status, prices, band, smallest and largest order); accounts' risk checks
    the rest before an order gets here."""
    currency = next(iter(registry.currencies.values()))
    return Instrument(
        index=index,
        id=f"CREATED.{index}",
        name=f"created at run time #{index}",
        kind=InstrumentKind.FUTURE,
        currency=currency,
        multiplier=1,
        price_tick=Decimal(1).scaleb(-currency.decimals),
        lot_size=Decimal(1),
        min_qty=1,
        max_qty=NO_LIMIT,
        margin_rate_e8=RATE_SCALE,
        commission=CommissionSpec(False, 0, 0, 0),
        band_e8=0,
        status=InstrumentStatus.TRADING,
        pre_close=0,
        pre_settlement=0,
        close_today_rule=CloseTodayRule.HISTORY_FIRST,
    )


def adopt(
    registry: InstrumentRegistry,
    index: int,
    status: int,
    pre_settlement: int,
    pre_close: int,
    min_qty: int,
    band_e8: int | None,
    max_qty: int = 0,
) -> Instrument:
    """The instrument at `index` (a stand-in for one this shard has never seen) with the
    fields accounts sends; 0 / None keep the known smallest order / band / largest order."""
    known = registry.find(index) or _learned(registry, index)
    return dataclasses.replace(
        known,
        status=InstrumentStatus(status),
        pre_settlement=pre_settlement,
        pre_close=pre_close,
        min_qty=min_qty or known.min_qty,
        max_qty=max_qty or known.max_qty,
        band_e8=known.band_e8 if band_e8 is None else band_e8,
    )


def upsert_from_record(registry: InstrumentRegistry, record: Any) -> UpsertInstrument:
    """The instrument an ADD_INSTRUMENT / SET_INSTRUMENT_STATUS record carries (status, the
    pre-settlement in `price`, pre-close in `qty`, `min_qty`, `max_qty`, the band in
    `limit_up` / `limit_down`), over the known definition or a stand-in for a new index."""
    pre_settlement, limit_up = int(record["price"]), int(record["limit_up"])
    instrument = adopt(
        registry,
        int(record["instrument"]),
        int(record["status"]),
        pre_settlement,
        int(record["qty"]),
        int(record["min_qty"]),
        band_from_limits(pre_settlement, limit_up) if limit_up else None,
        int(record["max_qty"]),
    )
    if limit_up and (instrument.upper_limit, instrument.lower_limit) != (
        limit_up,
        int(record["limit_down"]),
    ):
        raise ValueError(f"instrument {instrument.index}: band does not match the record's limits")
    return UpsertInstrument(instrument, int(record["ts_event"]))


class Matching(Service):
    name: ClassVar[str] = "matching"

    def inputs(self) -> list[str]:
        return [f"orders.{self.shard}"]

    def outputs(self) -> list[str]:
        return [f"execs.{self.shard}"]

    def start(self) -> None:
        self._checkpoint_s = float(self.config["durability"]["checkpoint_interval_s"])
        self._next_checkpoint = time.monotonic() + self._checkpoint_s
        directory = journal_dir(self.config, f"matching-{self.shard}")
        self.journal = Journal.open(directory, configuration.journal_config(self.config))
        self.gate = CommitGate.under_runner(self.journal, self.wake)
        self.snapshots = Snapshotter(checkpoint_name(self.shard))
        plan = plan_recovery(checkpoint_dir(self.config), checkpoint_name(self.shard), directory)
        recovered = self.rebuild(plan.state, plan.checkpoint_seq)
        log.info("recovered", extra={"fields": recovered})

    def rebuild(self, payload: bytes | None, checkpoint_seq: int, until: int = 0) -> dict[str, Any]:
        """Load a checkpoint (None: empty), replay the journal after it (up to `until`, 0 = its
        end) and write the execs the ring has not published: the one start-up path."""
        self._orders = f"orders.{self.shard}"
        self._execs = f"execs.{self.shard}"
        self._trades = 0
        self._orders_counter = self.metrics.counter("orders")
        self._trades_counter = self.metrics.counter("trades")
        self.engine, self.streams, self.offsets = self._load(payload)
        for ring in (self._orders, self._execs):
            if ring in self.rings:
                self.streams.adopt(ring, epoch_of(self.rings[ring]))
        self.output = Output(
            self.rings.get(self._execs),
            self.streams.get(self._execs),
            self.writers.get(self._execs),
            gate=self.gate,
        )
        started = time.perf_counter()
        self.output.begin_replay()
        replayed = 0
        directory = journal_dir(self.config, f"matching-{self.shard}")
        for first, records in iter_journal_arrays(directory, ORDER, checkpoint_seq + 1):
            if until and first + len(records) - 1 > until:
                records = records[: max(0, until - first + 1)]
            if not len(records):
                break
            self._apply(self.streams.fresh(self._orders, records))
            replayed += len(records)
        resent = self.output.finish_replay(Flag.REPLAY)
        return {
            "checkpoint_seq": checkpoint_seq,
            "replayed": replayed,
            "regenerated": self.output.regenerated,
            "resent": resent,
            "seconds": round(time.perf_counter() - started, 3),
            "state_hash": self.engine.state_hash(),
        }

    def _load(self, state: bytes | None) -> tuple[MatchingEngine, Streams, dict[int, int]]:
        """The engine, streams and live orders' offsets of a checkpoint (None: empty). Older
        checkpoints lack the later instrument fields (min_qty and band, then max_qty) and the
        offsets: those keep the configured values and start empty."""
        registry = configuration.load_instruments(self.config)
        if state is None:
            shards = int(self.config["matching"]["shards"])
            return MatchingEngine(registry, self.shard, shards), Streams(), {}
        sections = unpack_sections(state)
        engine_state: Any = canonical_loads(sections["engine"])
        instruments: Any = canonical_loads(sections["instruments"])
        for index, status, pre_settlement, pre_close, *more in instruments:
            min_qty, band_e8, max_qty = (*more, *_INSTRUMENT_DEFAULTS[len(more) :])
            registry.put(
                adopt(registry, index, status, pre_settlement, pre_close, min_qty, band_e8, max_qty)
            )
        streams: Any = canonical_loads(sections["streams"])
        offsets: Any = canonical_loads(sections["offsets"]) if "offsets" in sections else []
        return (
            MatchingEngine.from_state(registry, engine_state),
            Streams.load(streams),
            {order_id: offset for order_id, offset in offsets},
        )

    def handle(self, ring: str, batch: np.ndarray[Any, Any]) -> None:
        fresh = self.streams.fresh(ring, batch)
        if len(fresh):
            if self.gate is None:
                self.journal.append_array(fresh)
            else:
                self.gate.append(fresh)  # its execs wait in the gate for the fsync
            self._apply(fresh)

    def _apply(self, records: np.ndarray[Any, Any]) -> None:
        """Apply a batch of orders records and emit its execs: the live and the replay path."""
        if not len(records):
            return
        kinds = records["kind"]
        is_new = kinds == _NEW_ORDER
        new_ids = records["order_id"][is_new].tolist()
        self._remember_offsets(new_ids, records["offset"][is_new].tolist())
        is_instrument = _INSTRUMENT_KINDS[kinds]
        if is_instrument.any():
            events = self._with_instruments(records, is_instrument)
        else:
            apply = self.engine.apply
            events = []
            for command in orders_to_commands(records):
                events += apply(command)
        self._orders_counter.inc(len(new_ids))
        if events:
            execs = events_to_execs(events)
            takers, makers = self._trade_offsets(events)
            if takers:
                is_trade = execs["kind"] == _TRADE
                execs["taker_offset"][is_trade] = takers
                execs["maker_offset"][is_trade] = makers
            self._trades += len(takers)
            self._trades_counter.inc(len(takers))
            self.output.emit(execs, self.shard)

    def _remember_offsets(self, ids: list[int], values: list[int]) -> None:
        """Keep the offsets of a batch's NEW_ORDER records. The engine takes an order id only
        above its last one, so a repeated id (refused) never replaces a live order's offset:
        the first record of each id above it is the one that can get in."""
        last, offsets = self.engine.last_order_id, self.offsets
        for order_id, offset in zip(ids, values, strict=True):
            if order_id > last and order_id not in offsets:
                offsets[order_id] = offset

    def _trade_offsets(self, events: list[Any]) -> tuple[list[int], list[int]]:
        """The taker and maker offsets of the batch's trades, in order (0 when not known), and
        drop the offsets of the orders the batch finished: filled, canceled (by the user, IOC,
        expiry, delisting) or rejected (unless the id is a resting order's, refused as a repeat).
        One pass over the events: a few small batches cost less than numpy calls per batch."""
        offsets = self.offsets
        get, pop, books = offsets.get, offsets.pop, self.engine.books
        takers: list[int] = []
        makers: list[int] = []
        for event in events:
            kind = type(event)
            if kind is TradeExecuted:
                taker, maker = event.taker_order_id, event.maker_order_id
                takers.append(get(taker, 0))
                makers.append(get(maker, 0))
                if not event.taker_remaining:
                    pop(taker, None)
                if not event.maker_remaining:
                    pop(maker, None)
            elif kind is OrderCanceled:
                pop(event.order_id, None)
            elif kind is OrderRejected:
                book = books.get(event.instrument_index)
                if book is None or event.order_id not in book.orders:
                    pop(event.order_id, None)
        return takers, makers

    def _with_instruments(
        self, records: np.ndarray[Any, Any], is_instrument: np.ndarray[Any, Any]
    ) -> list[Any]:
        """Apply a batch that holds instrument changes, in ring order; each adopted definition
        is announced (InstrumentChanged) before the events it causes (a delisting's cancels)."""
        apply = self.engine.apply
        events: list[Any] = []
        start = 0
        for position in np.flatnonzero(is_instrument).tolist():
            for command in orders_to_commands(records[start:position]):
                events += apply(command)
            upsert = upsert_from_record(self.engine.instruments, records[position])
            events.append(InstrumentChanged.of(*upsert))
            events += apply(upsert)
            start = position + 1
        for command in orders_to_commands(records[start:]):
            events += apply(command)
        return events

    def tick(self, now_ns: int) -> None:
        self.snapshots.poll()
        if time.monotonic() >= self._next_checkpoint:
            self.checkpoint(background=True)

    def drained(self) -> bool:
        """Not while execs wait in the gate for their fsync."""
        return self.gate is None or not self.gate.held

    def checkpoint(self, background: bool = False) -> dict[str, Any]:
        """Write the books as of the journal's last record (flushed first, so never ahead; the
        execs that waited for it leave first: replay from the checkpoint will not regenerate
        them); `background` as in accounts (a forked child writes it)."""
        self._next_checkpoint = time.monotonic() + self._checkpoint_s
        if not background:
            self.snapshots.poll(block=True)
        self.journal.flush()
        self.run_due()
        seq = self.journal.last_seq
        if background:
            self.snapshots.start(seq, lambda: self._write_checkpoint(seq))
            return {"seq": seq, "background": True}
        path = self._write_checkpoint(seq)
        return {"seq": seq, "path": str(path), "state_hash": self.engine.state_hash()}

    def _write_checkpoint(self, seq: int) -> Path:
        instruments = [
            [i.index, int(i.status), i.pre_settlement, i.pre_close, i.min_qty, i.band_e8, i.max_qty]
            for i in self.engine.instruments
        ]
        payload = pack_sections(
            {
                "engine": canonical_dumps(self.engine.export_state()),
                "instruments": canonical_dumps(instruments),
                "offsets": canonical_dumps(sorted(self.offsets.items())),
                "streams": canonical_dumps(self.streams.export()),
            }
        )
        return write_checkpoint(
            checkpoint_dir(self.config), checkpoint_name(self.shard), seq, payload
        )

    def register_commands(self, server: ControlServer) -> None:
        server.register("state_hash", lambda _args: self.engine.state_hash())

    def status(self) -> dict[str, Any]:
        return {
            "orders_applied": self.streams.get(self._orders).seq,
            "execs_emitted": self.streams.get(self._execs).seq,
            "trades": self._trades,
            **journal_status(self.journal, self.gate, self.snapshots),
        }

    def stop(self) -> None:
        result = self.checkpoint()
        self.journal.close()
        log.info("state hash %s at seq %d", result["state_hash"], result["seq"])


if __name__ == "__main__":
    raise SystemExit(main(Matching))
