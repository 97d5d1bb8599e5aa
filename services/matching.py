"""The matching process of one shard: `orders.<shard>` in, `MatchingEngine`, `execs.<shard>` out.

Batch in, batch out: a ring batch is journaled (one group commit), decoded column-wise, applied
command by command, and its events leave as one numbered `execs` batch. The journal of its own
input is what rebuilds the books after a restart: checkpoint (`export_state`) + the journal tail
through the same `_apply`, regenerated execs written only beyond what `execs` already published
(services/recovery.py, docs/durability.md).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, ClassVar

import numpy as np

from engine.enums import InstrumentStatus
from engine.instruments import InstrumentRegistry
from engine.matching.commands import UpsertInstrument
from engine.matching.engine import MatchingEngine
from ipc.control import ControlServer
from ipc.records import ORDER, Flag, Kind
from services import config as configuration
from services.matching_codec import events_to_execs, orders_to_commands
from services.process import Service, main
from services.recovery import Output, Streams, checkpoint_dir, epoch_of, journal_dir
from storage.canonical import canonical_dumps, canonical_loads, pack_sections, unpack_sections
from storage.checkpoint import write_checkpoint
from storage.journal import Journal, iter_journal_arrays
from storage.recovery import plan_recovery

log = logging.getLogger(__name__)

_INSTRUMENT = Kind.SET_INSTRUMENT_STATUS


def checkpoint_name(shard: int) -> str:
    return f"matching{shard}"


def upsert_from_record(registry: InstrumentRegistry, record: Any) -> UpsertInstrument:
    """The instrument change a SET_INSTRUMENT_STATUS record carries (status, and the day roll's
    pre-settlement in `price` and pre-close in `qty`), over the known definition."""
    known = registry.by_index(int(record["instrument"]))
    changed = dataclasses.replace(
        known,
        status=InstrumentStatus(int(record["status"])),
        pre_settlement=int(record["price"]),
        pre_close=int(record["qty"]),
    )
    return UpsertInstrument(changed, int(record["ts_event"]))


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
        plan = plan_recovery(checkpoint_dir(self.config), checkpoint_name(self.shard), directory)
        recovered = self.rebuild(plan.state, plan.checkpoint_seq)
        log.info("recovered", extra={"fields": recovered})

    def rebuild(self, payload: bytes | None, checkpoint_seq: int, until: int = 0) -> dict[str, Any]:
        """Load a checkpoint (None: empty), replay the journal after it (up to `until`, 0 = its
        end) and write the execs the ring has not published: the one start-up path."""
        self._orders = f"orders.{self.shard}"
        self._execs = f"execs.{self.shard}"
        self._trades = 0
        self.engine, self.streams = self._load(payload)
        for ring in (self._orders, self._execs):
            if ring in self.rings:
                self.streams.adopt(ring, epoch_of(self.rings[ring]))
        self.output = Output(
            self.rings.get(self._execs),
            self.streams.get(self._execs),
            self.writers.get(self._execs),
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

    def _load(self, state: bytes | None) -> tuple[MatchingEngine, Streams]:
        registry = configuration.load_instruments(self.config)
        if state is None:
            shards = int(self.config["matching"]["shards"])
            return MatchingEngine(registry, self.shard, shards), Streams()
        sections = unpack_sections(state)
        engine_state: Any = canonical_loads(sections["engine"])
        instruments: Any = canonical_loads(sections["instruments"])
        for index, status, pre_settlement, pre_close in instruments:
            known = registry.by_index(index)
            registry.put(
                dataclasses.replace(
                    known,
                    status=InstrumentStatus(status),
                    pre_settlement=pre_settlement,
                    pre_close=pre_close,
                )
            )
        streams: Any = canonical_loads(sections["streams"])
        return MatchingEngine.from_state(registry, engine_state), Streams.load(streams)

    def handle(self, ring: str, batch: np.ndarray[Any, Any]) -> None:
        fresh = self.streams.fresh(ring, batch)
        if len(fresh):
            self.journal.append_array(fresh)
            self._apply(fresh)

    def _apply(self, records: np.ndarray[Any, Any]) -> None:
        """Apply a batch of orders records and emit its execs: the live and the replay path."""
        if not len(records):
            return
        kinds = records["kind"]
        if (kinds == _INSTRUMENT).any():
            commands = self._with_instruments(records)
        else:
            commands = orders_to_commands(records)
        apply = self.engine.apply
        events: list[Any] = []
        for command in commands:
            events += apply(command)
        if events:
            execs = events_to_execs(events)
            self._trades += int((execs["kind"] == Kind.TRADE).sum())
            self.output.emit(execs, self.shard)

    def _with_instruments(self, records: np.ndarray[Any, Any]) -> list[Any]:
        """Commands of a batch that holds instrument changes, in ring order."""
        commands: list[Any] = []
        is_instrument = records["kind"] == _INSTRUMENT
        start = 0
        for position in np.flatnonzero(is_instrument).tolist():
            commands += orders_to_commands(records[start:position])
            commands.append(upsert_from_record(self.engine.instruments, records[position]))
            start = position + 1
        commands += orders_to_commands(records[start:])
        return commands

    def tick(self, now_ns: int) -> None:
        if time.monotonic() >= self._next_checkpoint:
            self.checkpoint()

    def checkpoint(self) -> dict[str, Any]:
        """Write the books as of the journal's last record (flushed first, so never ahead)."""
        self._next_checkpoint = time.monotonic() + self._checkpoint_s
        self.journal.flush()
        seq = self.journal.last_seq
        instruments = [
            [i.index, int(i.status), i.pre_settlement, i.pre_close] for i in self.engine.instruments
        ]
        payload = pack_sections(
            {
                "engine": canonical_dumps(self.engine.export_state()),
                "instruments": canonical_dumps(instruments),
                "streams": canonical_dumps(self.streams.export()),
            }
        )
        path = write_checkpoint(
            checkpoint_dir(self.config), checkpoint_name(self.shard), seq, payload
        )
        return {"seq": seq, "path": str(path), "state_hash": self.engine.state_hash()}

    def register_commands(self, server: ControlServer) -> None:
        server.register("state_hash", lambda _args: self.engine.state_hash())

    def status(self) -> dict[str, Any]:
        return {
            "orders_applied": self.streams.get(self._orders).seq,
            "execs_emitted": self.streams.get(self._execs).seq,
            "trades": self._trades,
            "journal_seq": self.journal.last_seq,
            "durable_seq": self.journal.durable_seq,
        }

    def stop(self) -> None:
        result = self.checkpoint()
        self.journal.close()
        log.info("state hash %s at seq %d", result["state_hash"], result["seq"])


if __name__ == "__main__":
    raise SystemExit(main(Matching))
