"""The accounts process: the sequencer, risk and the books of money, between gateways and matching.

It reads every `cmd.<id>` ring and every `execs.<shard>` ring. Each batch it takes is first
journaled (one group commit; the journal sequence is the command's sequence number), then run
through `AccountsCore`; approved orders and cancels go to `orders.<shard>` (the instrument's
shard), and answers, order updates, trades and account/position snapshots go to `events`. In
`sync` mode no output leaves before the input it follows is on disk: under the Runner the batch
is written to the journal, applied at once, and what it produced waits in a `CommitGate`; at
the end of the loop's pass the journal is synced, by the sync thread if more input is waiting
(the next batches are written and applied meanwhile, and one fdatasync covers all of them), in
the loop if not (no thread hand-off at low rates). Without a Runner (tests, `recover --verify`)
the append itself waits for its fsync. `events` records carry in `source` the gateway they are
for: the command's gateway for answers, the gateway the account last spoke through for
everything else (0 = none yet).

Crash-only: `start` loads the newest checkpoint, replays the journal tail through the same
`_commands`/`_execs` and writes only the outputs the rings have not published
(services/recovery.py, docs/durability.md). A journal that cannot be written turns every
command into a STORAGE (5002) rejection; nothing unjournaled is ever applied.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Container
from itertools import repeat
from typing import Any, ClassVar

import numpy as np

from engine.accounts.core import AccountsCore
from engine.accounts.events import CommandRejected, SettlementCompleted
from engine.codes import ResultCode
from engine.enums import Offset
from engine.matching.commands import UpsertInstrument
from ipc.control import ControlServer
from ipc.records import ALL_INSTRUMENTS, CMD, EVENT_ANSWER, EXEC, ORDER, Flag, Kind
from services import accounts_queries
from services import config as configuration
from services.accounts_codec import UnsupportedRecord, events_to_records
from services.accounts_state import AccountsState
from services.columns import kind_table, take
from services.matching_codec import commands_to_orders, execs_to_events
from services.process import Service, main
from services.recovery import (
    CommitGate,
    Output,
    Snapshotter,
    checkpoint_dir,
    epoch_of,
    journal_dir,
    journal_status,
)
from services.topology import cmd_ids, execs_rings, matching_shards
from storage.checkpoint import write_checkpoint
from storage.errors import JournalError
from storage.journal import Journal, iter_journal_arrays
from storage.recovery import plan_recovery

log = logging.getLogger(__name__)

CHECKPOINT = "accounts"
BOOKED = kind_table(
    [
        Kind.ORDER_ACCEPTED,
        Kind.ORDER_REJECTED,
        Kind.ORDER_CANCELED,
        Kind.ORDER_AMENDED,
        Kind.AMEND_REJECTED,
        Kind.TRADE,
    ]
)
"""The execs the core books; the rest (book levels, phases) are not journaled or applied."""
_ANSWERS = kind_table([Kind.COMMAND_ACCEPTED, Kind.COMMAND_REJECTED])
_CMD_BAND = 100


def instrument_record(command: UpsertInstrument, kind: Kind) -> np.ndarray[Any, Any]:
    """An instrument change for matching as one ADD_INSTRUMENT (an index matching has not
    been sent yet) or SET_INSTRUMENT_STATUS record: what matching checks an order against
    (docs/records.md): `status`, the pre-settlement in `price`, the pre-close in `qty`, the
    smallest and largest order in `min_qty` / `max_qty` and the band it implies in
    `limit_up` / `limit_down`."""
    instrument, ts = command
    record = np.zeros(1, ORDER)
    record["kind"] = kind
    record["instrument"] = instrument.index
    record["status"] = instrument.status
    record["price"] = instrument.pre_settlement
    record["qty"] = instrument.pre_close
    record["min_qty"] = instrument.min_qty
    record["max_qty"] = instrument.max_qty
    record["limit_up"] = instrument.upper_limit
    record["limit_down"] = instrument.lower_limit
    record["ts_event"] = ts
    return record


def encode_orders(commands: list[Any], known: Container[int]) -> np.ndarray[Any, Any]:
    """`orders` records for the core's matching commands, in order; an instrument whose index
    is not in `known` is announced with ADD_INSTRUMENT."""
    if not any(type(c) is UpsertInstrument for c in commands):
        return commands_to_orders(commands)
    parts = []
    run: list[Any] = []
    announced: set[int] = set()
    for command in commands:
        if type(command) is UpsertInstrument:
            index = command.instrument.index
            fresh = index not in known and index not in announced
            announced.add(index)
            kind = Kind.ADD_INSTRUMENT if fresh else Kind.SET_INSTRUMENT_STATUS
            parts += [commands_to_orders(run), instrument_record(command, kind)]
            run = []
        else:
            run.append(command)
    parts.append(commands_to_orders(run))
    return np.concatenate(parts)


class Accounts(Service):
    name: ClassVar[str] = "accounts"

    def inputs(self) -> list[str]:
        return [f"cmd.{g}" for g in cmd_ids(self.config)] + execs_rings(self.config)

    def outputs(self) -> list[str]:
        return [f"orders.{s}" for s in matching_shards(self.config)] + ["events"]

    # -- start: checkpoint + journal tail ------------------------------------------------------

    def start(self) -> None:
        self._checkpoint_s = float(self.config["durability"]["checkpoint_interval_s"])
        self._next_checkpoint = time.monotonic() + self._checkpoint_s
        self.storage_error = ""
        self.commands_in = 0
        self.rejected_storage = 0
        directory = journal_dir(self.config, "accounts")
        self.journal = Journal.open(directory, configuration.journal_config(self.config))
        self.gate = CommitGate.under_runner(self.journal, self.wake)
        self.snapshots = Snapshotter(CHECKPOINT)
        plan = plan_recovery(checkpoint_dir(self.config), CHECKPOINT, directory)
        self.recovered = self.rebuild(plan.state, plan.checkpoint_seq)
        log.info("recovered", extra={"fields": self.recovered})

    def rebuild(self, payload: bytes | None, checkpoint_seq: int, until: int = 0) -> dict[str, Any]:
        """Load a checkpoint (None: empty) and replay the journal after it (up to `until`, 0 =
        its end), then write what the output rings have not published. The one start-up path;
        `bin/exchange recover --verify` runs it without rings."""
        self.execs_in = 0
        self._commands_counter = self.metrics.counter("commands_in")
        self._accepted = self.metrics.counter("accepted")
        self._trades = self.metrics.counter("trades")
        self.state = self._load(payload)
        for ring, attached in self.rings.items():
            self.state.streams.adopt(ring, epoch_of(attached))
        self._shards = list(matching_shards(self.config))
        self._bind_outputs()
        started = time.perf_counter()
        outputs = [*self.orders_out.values(), self.events_out]
        for output in outputs:
            output.begin_replay()
        replayed = self.replay(checkpoint_seq + 1, until)
        resent = sum(output.finish_replay(Flag.REPLAY) for output in outputs)
        return {
            "checkpoint_seq": checkpoint_seq,
            "replayed": replayed,
            "resent": resent,
            "seconds": round(time.perf_counter() - started, 3),
            "state_hash": self.state.core.state_hash(),
        }

    def _load(self, payload: bytes | None) -> AccountsState:
        registry = configuration.load_instruments(self.config)
        risk = configuration.risk_config(self.config)
        if payload is None:
            return AccountsState.empty(AccountsCore(registry, risk, snapshots=False))
        return AccountsState.loads(payload, registry, risk)

    def _bind_outputs(self) -> None:
        streams = self.state.streams
        self.orders_out = {
            shard: Output(
                self.rings.get(f"orders.{shard}"),
                streams.get(f"orders.{shard}"),
                self.writers.get(f"orders.{shard}"),
                gate=self.gate,
            )
            for shard in self._shards
        }
        self.events_out = Output(
            self.rings.get("events"),
            streams.get("events"),
            self.writers.get("events"),
            drop_dead=True,
            gate=self.gate,
        )
        registry = self.state.core.instruments
        self._shard_of = {i.index: self.config.shard_of(i.id) for i in registry}

    def replay(self, from_seq: int, until: int = 0) -> int:
        """Feed the journal from `from_seq` (to `until`, 0 = the end) through the live handlers,
        one live batch at a time; returns how many records it replayed. A batch the journal
        reader's chunks cut in two is joined again: each batch ends with its accounts'
        snapshots, so applying it in two parts would emit more events than the live run and
        number the regenerated ones differently from what the rings published."""
        directory = journal_dir(self.config, "accounts")
        count = 0
        unfinished = np.empty(0, CMD)
        for first, records in iter_journal_arrays(directory, CMD, from_seq):
            if until and first + len(records) - 1 > until:
                records = records[: max(0, until - first + 1)]
            if not len(records):
                break
            count += len(records)
            if len(unfinished):
                records = np.concatenate([unfinished, records])
            kinds = records["kind"] // _CMD_BAND
            sources = records["source"]
            ends = (records["flags"][:-1] & Flag.BATCH_END) != 0
            cut = np.flatnonzero((np.diff(kinds) != 0) | (np.diff(sources) != 0) | ends) + 1
            parts = np.split(records, cut)
            unfinished = parts.pop() if not records["flags"][-1] & Flag.BATCH_END else records[:0]
            for part in parts:
                self._apply_journaled(part)
        if len(unfinished):
            self._apply_journaled(unfinished)
        return count

    def _apply_journaled(self, records: np.ndarray[Any, Any]) -> None:
        """One run of same-ring records from the journal (cmd of one gateway, or execs)."""
        source = int(records["source"][0])
        if int(records["kind"][0]) // _CMD_BAND == Kind.OPEN_ACCOUNT // _CMD_BAND:
            self.state.streams.fresh(f"cmd.{source}", records)
            self._commands(source, records)
        else:
            execs = records.view(EXEC)
            self.state.streams.fresh(f"execs.{source}", execs)
            self._execs(execs)

    # -- live path -----------------------------------------------------------------------------

    def handle(self, ring: str, batch: np.ndarray[Any, Any]) -> None:
        fresh = self.state.streams.fresh(ring, batch)
        if ring.startswith("cmd."):
            if len(fresh):
                gateway = int(ring[4:])
                fresh = fresh.copy()  # the journal's copy; published records stay as they are
                fresh["source"] = gateway  # names the ring
                fresh["flags"][-1] |= Flag.BATCH_END  # replay ends the batch here too
                self._on_commands(gateway, fresh)
            return
        fresh = take(fresh, BOOKED[fresh["kind"]])  # a copy
        self._trades.inc(int(np.count_nonzero(fresh["kind"] == Kind.TRADE)))
        if len(fresh):
            fresh["flags"][-1] |= Flag.BATCH_END
            self._journal(fresh)  # a failure here crashes: restart and replay
            self._execs(fresh)

    def _journal(self, records: np.ndarray[Any, Any]) -> None:
        """Journal a batch before it is applied: durable on return, or, with the gate, written
        (a process crash keeps it) with its outputs held until `end_pass` has it synced."""
        if self.gate is None:
            self.journal.append_array(records)
        else:
            self.gate.append(records)

    def _on_commands(self, gateway: int, records: np.ndarray[Any, Any]) -> None:
        if not self.storage_error:
            try:
                self._journal(records)
            except JournalError as exc:
                self.storage_error = str(exc)
                log.error("journal unwritable; refusing every command: %s", exc)
        if self.storage_error:
            self._refuse(gateway, records)
            return
        self.commands_in += len(records)
        self._commands_counter.inc(len(records))
        self._commands(gateway, records)

    def _refuse(self, gateway: int, records: np.ndarray[Any, Any]) -> None:
        """Answer commands that could not be journaled with STORAGE; apply none of them."""
        message = "journal unwritable: command not accepted"
        answers = [
            CommandRejected(request, ResultCode.STORAGE, message, ts)
            for request, ts in zip(
                records["request_id"].tolist(), records["ts_event"].tolist(), strict=True
            )
        ]
        self.rejected_storage += len(answers)
        self.events_out.emit(events_to_records(answers), gateway)

    def _commands(self, gateway: int, records: np.ndarray[Any, Any]) -> None:
        """Apply a cmd batch of one gateway (live and replay alike)."""
        state = self.state
        state.gateway_of.update(zip(records["account"].tolist(), repeat(gateway)))
        handlers = state.core.commands  # `AccountsCore.apply` without its call, per command
        to_matching: list[Any] = []
        events: list[Any] = []
        for command in self._decode(records):
            kind = type(command)
            if kind is CommandRejected:
                events.append(command)
                continue
            sent, answered = handlers[kind](command)
            if sent:
                to_matching += sent
            events += answered
        events += state.core.snapshot_events(int(records["ts_event"][-1]))
        self._send(to_matching)
        self._publish(events, gateway)

    def _decode(self, records: np.ndarray[Any, Any]) -> list[Any]:
        """The batch's commands; a record that does not decode (a kind accounts does not take,
        an enum value out of range) becomes its BAD_MESSAGE answer instead of a crash loop,
        the same way live and in replay (it is journaled like any command)."""
        decoder = self.state.decoder
        try:
            return decoder.decode(records)
        except (UnsupportedRecord, IndexError, KeyError, ValueError):
            pass
        out: list[Any] = []
        for index in range(len(records)):
            one = records[index : index + 1]
            try:
                out += decoder.decode(one)
            except (UnsupportedRecord, IndexError, KeyError, ValueError) as exc:
                request, ts = int(one["request_id"][0]), int(one["ts_event"][0])
                message = f"kind {int(one['kind'][0])}: {exc}"
                out.append(CommandRejected(request, ResultCode.BAD_MESSAGE, message, ts))
        return out

    def _execs(self, records: np.ndarray[Any, Any]) -> None:
        """Book a batch of execs (live and replay alike)."""
        self.execs_in += len(records)
        handlers = self.state.core.execs  # `AccountsCore.on_exec` without its per-event lists
        to_matching: list[Any] = []
        events: list[Any] = []
        for event in execs_to_events(records):
            handler = handlers.get(type(event))
            if handler is not None:
                sent = handler(event, events)  # appends the events it causes
                if sent:
                    to_matching += sent
        events += self.state.core.snapshot_events(int(records["ts_event"][-1]))
        self._send(to_matching)
        self._publish(events, 0)

    def _stamp_offsets(self, batch: np.ndarray[Any, Any]) -> None:
        """NEW_ORDER records carry the order's offset, which matching copies into its trades
        so market data can count open interest (PlaceOrder itself has no offset)."""
        new = batch["kind"] == Kind.NEW_ORDER
        if not new.any():
            return
        orders = self.state.core.orders
        batch["offset"][new] = [
            orders[order_id].offset if order_id in orders else Offset.NONE
            for order_id in batch["order_id"][new].tolist()
        ]

    def _send(self, commands: list[Any]) -> None:
        if not commands:
            return
        batch = encode_orders(commands, self._shard_of)
        self._stamp_offsets(batch)
        added = batch["instrument"][batch["kind"] == Kind.ADD_INSTRUMENT].tolist()
        for index in added:
            self._shard_of[index] = self.config.shard_of(
                self.state.core.instruments.by_index(index).id
            )
        if len(self._shards) == 1:
            self.orders_out[0].emit(batch, 0)
            return
        instruments = batch["instrument"].tolist()
        shard_of = self._shard_of
        shards = np.array([shard_of.get(i, 0) for i in instruments])
        everywhere = batch["instrument"] == ALL_INSTRUMENTS
        for shard, output in self.orders_out.items():
            part = batch[(shards == shard) | everywhere]
            output.emit(part.copy(), shard)

    def _publish(self, events: list[Any], gateway: int) -> None:
        if not events:
            return
        # Settlement totals do not fit an events record; `settlement_history` answers them.
        if SettlementCompleted in set(map(type, events)):
            events = [e for e in events if type(e) is not SettlementCompleted]
        batch = events_to_records(events)
        self.state.remember(events, batch["kind"])
        gateway_of = self.state.gateway_of
        accounts, where = np.unique(batch["account"], return_inverse=True)  # few per batch
        sources = np.array(
            [gateway_of.get(account, gateway) for account in accounts.tolist()], dtype=np.uint32
        )[where]
        if gateway:
            sources[_ANSWERS[batch["kind"]]] = gateway
            self._count_answers(batch)
        self.events_out.emit(batch, sources)

    def _count_answers(self, batch: np.ndarray[Any, Any]) -> None:
        """Commands answered: `accepted`, and `rejects` by result code."""
        kinds = batch["kind"]
        self._accepted.inc(int(np.count_nonzero(kinds == Kind.COMMAND_ACCEPTED)))
        refused = batch.view(EVENT_ANSWER)["code"][kinds == Kind.COMMAND_REJECTED]
        for code, count in zip(*np.unique(refused, return_counts=True), strict=True):
            self.metrics.counter("rejects", code=int(code)).inc(int(count))

    # -- graceful stop, checkpoints, control ---------------------------------------------------

    def drained(self) -> bool:
        """Stop only when matching has taken every order sent and sent back every exec, so the
        rings hold nothing in flight when `down` removes them."""
        if self.gate is not None and self.gate.held:
            return False
        for shard, output in self.orders_out.items():
            ring = self.rings.get(f"orders.{shard}")
            if ring is None or output.writer is None:
                continue
            if any(info.alive and info.cursor < output.writer.published for info in ring.readers()):
                return False
            execs = self.rings.get(f"execs.{shard}")
            if execs is not None and execs.stats()["writer_alive"]:
                mine = [r for r in execs.readers() if r.name == self.instance_name]
                if mine and mine[0].lag:
                    return False
        return True

    def tick(self, now_ns: int) -> None:
        self.snapshots.poll()
        if time.monotonic() >= self._next_checkpoint:
            self.checkpoint(background=True)

    def checkpoint(self, background: bool = False) -> dict[str, Any]:
        """Write the state as of the journal's last record (flushed first, so never ahead; the
        outputs that waited for it leave first: replay from the checkpoint will not regenerate
        them). `background` (the periodic one): a forked child serializes and writes it while
        the loop goes on (`Snapshotter`); otherwise here, after any such child finished."""
        self._next_checkpoint = time.monotonic() + self._checkpoint_s
        if not background:
            self.snapshots.poll(block=True)
        started = time.perf_counter()
        self.journal.flush()
        self.run_due()
        seq = self.journal.last_seq
        directory = checkpoint_dir(self.config)
        if background:
            self.snapshots.start(
                seq, lambda: write_checkpoint(directory, CHECKPOINT, seq, self.state.dumps())
            )
            return {"seq": seq, "background": True, "seconds": time.perf_counter() - started}
        path = write_checkpoint(directory, CHECKPOINT, seq, self.state.dumps())
        seconds = round(time.perf_counter() - started, 3)
        log.info("checkpoint written in the loop", extra={"fields": {"seconds": seconds}})
        return {
            "seq": seq,
            "path": str(path),
            "seconds": seconds,
            "state_hash": self.state.core.state_hash(),
        }

    def register_commands(self, server: ControlServer) -> None:
        accounts_queries.register(server, lambda: self.state)

    def status(self) -> dict[str, Any]:
        return {
            "commands_in": self.commands_in,
            "execs_in": self.execs_in,
            "accounts": len(self.state.core.accounts),
            "live_orders": len(self.state.core.orders),
            **journal_status(self.journal, self.gate, self.snapshots),
            "storage_error": self.storage_error,
            "rejected_storage": self.rejected_storage,
            "recovered": self.recovered,
            "streams": self.state.streams.export(),
        }

    def stop(self) -> None:
        result = self.checkpoint()
        self.journal.close()
        log.info("state hash %s at seq %d", result["state_hash"], result["seq"])


if __name__ == "__main__":
    raise SystemExit(main(Accounts))
