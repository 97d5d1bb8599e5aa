"""Exactly-once plumbing the stateful processes share: ring epochs, numbered outputs, journals.

A process that journals its input rebuilds its state by replaying it, and while replaying it
regenerates every output it once wrote. Ring segments outlive processes, so each output ring's
published sequence says how many of them the consumers can already see: `Output` numbers the
regenerated records exactly as the first run did and writes only those beyond it. On the input
side, `Streams` remembers the last sequence applied per ring, so a batch read again after a
crash (it is released only after its handler returned) is skipped where already applied.
`CommitGate` holds live outputs until the journal records they follow are durable, so a process
can apply its next batch while the previous one's fdatasync runs.

Sequences are per ring *epoch*: `bin/exchange down` unlinks the rings after a graceful drain and
checkpoint, and `up` creates new ones whose sequences start at 1 again. A ring's `created_ns`
names its epoch; a process that finds a new epoch starts that ring's counters from zero.
docs/durability.md has the whole argument.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ipc.errors import RingTimeout
from ipc.metrics import Histogram
from ipc.ring import Ring, RingWriter
from services.config import Config
from storage.errors import JournalError
from storage.journal import Durability, Journal

log = logging.getLogger(__name__)

BLOCKED_LOG_S = 5.0
"""How often a writer blocked on a full ring says so."""
SWITCH_INTERVAL_S = 0.0002
"""The GIL switch interval with a sync thread (Python's default is 5 ms): how long the journal's
sync thread may wait for the GIL while the loop applies a batch, to report a completed fsync
and start the next one (a forced switch happens only while that thread waits: once per fsync)."""


def journal_dir(config: Config, process: str) -> Path:
    return config.home / "journal" / process


def checkpoint_dir(config: Config) -> Path:
    return config.home / "checkpoints"


def epoch_of(ring: Ring) -> int:
    """The ring's epoch: when its segment was created (ns); a recreated ring has a new one."""
    return int(ring.stats()["created_ns"])


@dataclass
class Stream:
    """What this process knows of one ring: its epoch and the last sequence it applied/wrote."""

    epoch: int = 0
    seq: int = 0


@dataclass
class Streams:
    """Per-ring sequences, part of a process's checkpointed state."""

    rings: dict[str, Stream] = field(default_factory=dict)

    def get(self, ring: str) -> Stream:
        stream = self.rings.get(ring)
        if stream is None:
            stream = self.rings[ring] = Stream()
        return stream

    def adopt(self, ring: str, epoch: int) -> None:
        """Enter the ring's current epoch; counters of an older epoch restart from zero."""
        stream = self.get(ring)
        if stream.epoch != epoch:
            if stream.seq:
                log.info(
                    "ring %s is a new epoch: sequence %d of the old one forgotten", ring, stream.seq
                )
            stream.epoch, stream.seq = epoch, 0

    def export(self) -> dict[str, list[int]]:
        return {ring: [s.epoch, s.seq] for ring, s in sorted(self.rings.items())}

    @classmethod
    def load(cls, exported: dict[str, list[int]]) -> Streams:
        return cls({ring: Stream(epoch, seq) for ring, (epoch, seq) in exported.items()})

    def fresh(self, ring: str, batch: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """The records of `batch` after the last one applied from `ring`; marks them applied."""
        stream = self.get(ring)
        seqs = batch["seq"]
        if len(batch) and int(seqs[0]) <= stream.seq:
            batch = batch[seqs > stream.seq]
        if len(batch):
            stream.seq = int(batch["seq"][-1])
        return batch


class Output:
    """Numbers one output ring's records and writes them, replay-aware.

    While `replaying`, batches are numbered but only the records the ring has not published yet
    are kept (to be written by `finish_replay`); live batches are written at once, or, with a
    `gate`, once the journal records they follow are durable.
    """

    def __init__(
        self,
        ring: Ring | None,
        stream: Stream,
        writer: RingWriter | None,
        drop_dead: bool = False,
        gate: CommitGate | None = None,
    ) -> None:
        self.ring = ring
        self.drop_dead = drop_dead
        self.gate = gate
        self.stream = stream
        self.writer = writer
        self.replaying = False
        self._published: int | None = 0
        self._held: list[np.ndarray[Any, Any]] = []
        self.regenerated = 0
        self.written = 0

    def begin_replay(self) -> None:
        self.replaying = True
        self._published = None if self.writer is None else self.writer.published

    def emit(self, batch: np.ndarray[Any, Any], source: int | np.ndarray[Any, Any]) -> None:
        """Number `batch` after the last record of this stream and write it (`write` stamps
        it)."""
        count = len(batch)
        if not count:
            return
        first = self.stream.seq + 1
        batch["seq"] = np.arange(first, first + count)
        batch["source"] = source
        self.stream.seq += count
        if not self.replaying:
            gate = self.gate
            if gate is not None and gate.holds():
                gate.hold(self, batch)
            else:
                self.write(batch)
            return
        self.regenerated += count
        if self._published is not None and self.stream.seq > self._published:
            self._held.append(batch[batch["seq"] > self._published])

    def finish_replay(self, flags: int) -> int:
        """Write what replay regenerated beyond the ring's published sequence; return the count."""
        self.replaying = False
        held, self._held = self._held, []
        total = 0
        for batch in held:
            batch["flags"] |= np.uint8(flags)
            self.write(batch)
            total += len(batch)
        published = self._published or 0
        if self.stream.seq < published:
            log.info(
                "ring %s: %d published records were not regenerated (answers to commands the "
                "journal refused); numbering continues after them",
                self.ring.name if self.ring is not None else "?",
                published - self.stream.seq,
            )
            self.stream.seq = published
        return total

    def write(self, batch: np.ndarray[Any, Any]) -> None:
        """Write numbered records to the ring now, stamped with the time they leave in
        `ts_init` (a held batch: after its fsync, so the next stage's `ring_wait` is the hop
        alone); nothing without a ring (`recover --verify`)."""
        if self.ring is not None and self.writer is not None:
            batch["ts_init"] = time.time_ns()
            write_blocking(self.ring, self.writer, batch, self.drop_dead)
            self.written += len(batch)


class CommitGate:
    """Holds live output batches until the journal records they follow are durable.

    The owner journals a batch with `append` (written, not yet synced) and applies it; what its
    outputs emit meanwhile waits here in order. `commit` at the end of the loop's pass syncs
    (in the sync thread when a backlog waits, else in the loop), and `release()` writes every
    batch whose records are on disk, each output's batches joined into one ring write (one
    wake-up of its reader for a whole group commit). So nothing leaves before the input it
    answers is durable, while the next batch is applied during the fsync. A process killed with
    batches held loses nothing: they follow journaled records, which replay regenerates and
    writes (`Output.finish_replay`).
    """

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.seq = 0
        """The journal sequence the batches emitted now wait for."""
        self._held: deque[tuple[int, Output, np.ndarray[Any, Any], int]] = deque()
        self.commits = {"loop": 0, "background": 0}
        """Passes whose fsync ran in the loop / was handed to the sync thread."""
        self.waits = Histogram()
        """How long each held batch waited, hold to release (ns); the Runner puts it in the
        process's metrics as `commit_wait`."""

    @classmethod
    def under_runner(cls, journal: Journal, wake: Callable[[], None] | None) -> CommitGate | None:
        """The gate of a process's journal when a Runner drives it (`wake` set) in sync mode;
        None otherwise: each append then waits for its own fsync."""
        if wake is None or journal.config.durability is not Durability.SYNC:
            return None
        journal.on_durable = wake
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        return cls(journal)

    def append(self, records: np.ndarray[Any, Any]) -> None:
        """Journal a batch (written: a process crash keeps it) before it is applied; what is
        emitted from now on waits for it."""
        self.seq = self.journal.append_array(records, wait=False)[1]

    def commit(self, busy: bool) -> None:
        """Make the pass's batches durable: by the sync thread when more input is waiting (it is
        applied during the fsync), else here, releasing their outputs at once."""
        if self.seq <= self.journal.durable_seq:
            return
        if busy:
            self.commits["background"] += 1
            self.journal.request_sync()
        else:
            self.commits["loop"] += 1
            self.journal.flush()
            self.release()

    @property
    def held(self) -> int:
        """Batches waiting for their fsync."""
        return len(self._held)

    def holds(self) -> bool:
        """Whether a batch emitted now must wait (its input or an earlier batch is not durable)."""
        return bool(self._held) or self.seq > self.journal.durable_seq

    def hold(self, output: Output, batch: np.ndarray[Any, Any]) -> None:
        self._held.append((self.seq, output, batch, time.perf_counter_ns()))

    def due(self) -> bool:
        """Whether `release` has something to write (or a failure to raise); cheap enough to be
        polled in the wait loop."""
        held = self._held
        return bool(held) and (held[0][0] <= self.journal.durable_seq or self.journal.sync_failed)

    def release(self) -> int:
        """Write the held batches that are durable now; returns how many records left.

        Raises JournalError when a background fsync failed: those batches may never be durable,
        so the process must stop; its restart replays what the journal file kept."""
        journal = self.journal
        if journal.sync_failed and self._held:
            raise JournalError(
                f"journal fsync failed with {len(self._held)} output batches waiting for it; "
                "restart to recover from what the journal kept"
            )
        durable = journal.durable_seq
        held = self._held
        ready: dict[Output, list[np.ndarray[Any, Any]]] = {}
        now = time.perf_counter_ns()
        record = self.waits.record
        while held and held[0][0] <= durable:
            _seq, output, batch, since = held.popleft()
            ready.setdefault(output, []).append(batch)
            record(now - since)
        total = 0
        for output, batches in ready.items():
            output.write(batches[0] if len(batches) == 1 else np.concatenate(batches))
            total += sum(len(batch) for batch in batches)
        return total


class Snapshotter:
    """Writes periodic checkpoints from a forked child, so the loop does not stall on them.

    `os.fork()` gives the child a copy-on-write image of the state as it is at the journal
    sequence the checkpoint names; the child only serializes it, writes the file and leaves
    with `os._exit` (it never touches the journal, whose sync thread and locks it does not
    have, nor sockets or rings). The parent goes on at once; `poll` reaps the child. One child
    at a time: a checkpoint due while one is written is skipped until it finished.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.child = 0
        self.seq = 0
        self.started = 0.0
        self.written = 0
        self.failed = 0

    def start(self, seq: int, write: Callable[[], object]) -> bool:
        """Fork a child that runs `write` (serialize and write the checkpoint at `seq`); False
        if the previous one is still being written."""
        if self.poll():
            return False
        with warnings.catch_warnings():  # the sync thread: the child touches none of its locks
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:
            status = 1
            try:
                write()
                status = 0
            finally:
                os._exit(status)
        self.child, self.seq, self.started = pid, seq, time.monotonic()
        return True

    def poll(self, block: bool = False) -> bool:
        """True while a child is writing (with `block`, wait for it first)."""
        if not self.child:
            return False
        pid, status = os.waitpid(self.child, 0 if block else os.WNOHANG)
        if pid == 0:
            return True
        seconds = round(time.monotonic() - self.started, 3)
        self.child = 0
        code = os.waitstatus_to_exitcode(status)
        if code == 0:
            self.written += 1
            log.info(
                "background checkpoint written",
                extra={"fields": {"name": self.name, "seq": self.seq, "seconds": seconds}},
            )
        else:
            self.failed += 1
            log.error("background checkpoint %s at %d failed (exit %d)", self.name, self.seq, code)
        return False


def journal_status(
    journal: Journal, gate: CommitGate | None, snapshots: Snapshotter
) -> dict[str, Any]:
    """The `status` fields of a journaling process: positions, fsyncs, commits, checkpoints."""
    return {
        "journal_seq": journal.last_seq,
        "durable_seq": journal.durable_seq,
        "checkpoints": {"background": snapshots.written, "failed": snapshots.failed},
        "held_batches": 0 if gate is None else gate.held,
        "journal_syncs": journal.syncs,
        "commits": {} if gate is None else gate.commits,
    }


def write_blocking(
    ring: Ring, writer: RingWriter, batch: np.ndarray[Any, Any], drop_dead: bool = False
) -> None:
    """Write the whole batch, waiting as long as a full ring takes (back-pressure, never loss).

    With `drop_dead`, readers that died are unregistered so they stop holding the ring full
    (for `events`, whose gateways may go away; never for `orders`, whose matching reader is
    restarted by the supervisor and must resume at its cursor). A live slow reader is waited
    for, with a warning every few seconds.
    """
    done = 0
    waited = time.monotonic()
    while done < len(batch):
        before = writer.published
        try:
            writer.write(batch[done:])
            return
        except RingTimeout:
            done += writer.published - before
            if time.monotonic() - waited >= BLOCKED_LOG_S:
                waited = time.monotonic()
                log.warning("ring %s full: waiting for its slowest reader", ring.name)
            if drop_dead:
                drop_dead_readers(ring)


def drop_dead_readers(ring: Ring) -> list[str]:
    """Unregister every reader of the ring whose process is gone; returns their names."""
    dropped = []
    for info in ring.readers():
        if not info.alive:
            ring.unregister_reader(info.name)
            log.warning("ring %s: dropped dead reader %s (pid %d)", ring.name, info.name, info.pid)
            dropped.append(info.name)
    return dropped
