"""services/recovery.CommitGate: live outputs wait for the journal records they follow to be
fsynced, leave in order and joined into one ring write per output, and a failed background
fsync stops the process instead of letting them out."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ipc import records
from ipc.records import EXEC, Kind
from ipc.ring import Ring
from services.recovery import CommitGate, Output, Stream
from storage.errors import JournalError
from storage.journal import Journal
from tests.unit.storage.test_journal import break_fdatasync


def execs(count: int, price: int) -> np.ndarray:
    batch = records.new_batch(EXEC, count)
    batch["kind"] = Kind.TRADE
    batch["price"] = price
    return batch


@pytest.fixture
def rings(prefix: str) -> Iterator[list[Ring]]:
    made = [Ring.create(f"{prefix}.out{i}", EXEC, 64) for i in range(2)]
    try:
        yield made
    finally:
        for ring in made:
            ring.close()
            ring.unlink()


def test_outputs_wait_for_their_fsync_then_leave_in_order_in_one_write(
    rings: list[Ring], tmp_path: Path
) -> None:
    with Journal.open(tmp_path) as journal:
        gate = CommitGate(journal)
        readers = [ring.reader("check") for ring in rings]
        outputs = [Output(ring, Stream(), ring.writer(), gate=gate) for ring in rings]
        gate.seq = journal.append_array(execs(2, 0), wait=False)[1]
        outputs[0].emit(execs(1, 10), 1)
        outputs[1].emit(execs(2, 20), 1)
        gate.seq = journal.append_array(execs(1, 0), wait=False)[1]
        outputs[0].emit(execs(3, 30), 1)
        assert gate.held == 3 and not gate.due()
        assert [len(r.read(64, timeout=0)) for r in readers] == [0, 0]  # nothing before fsync
        journal.flush()
        assert gate.due()
        assert gate.release() == 6 and gate.held == 0
        first = readers[0].read(64, timeout=0)
        assert first["price"].tolist() == [10, 30, 30, 30]  # both batches in one read
        assert first["seq"].tolist() == [1, 2, 3, 4]
        assert readers[1].read(64, timeout=0)["price"].tolist() == [20, 20]
        assert rings[0].stats()["published"] == 4
        outputs[1].emit(execs(1, 40), 1)  # nothing pending: written at once
        assert gate.held == 0
        for output in outputs:
            assert output.writer is not None
            output.writer.close()


def test_a_failed_background_fsync_keeps_the_outputs_and_raises(
    rings: list[Ring], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    woken = threading.Event()
    journal = Journal.open(tmp_path)
    try:
        journal.on_durable = woken.set
        gate = CommitGate(journal)
        output = Output(rings[0], Stream(), rings[0].writer(), gate=gate)
        reader = rings[0].reader("check")
        break_fdatasync(monkeypatch)
        gate.seq = journal.append_array(execs(1, 0), wait=False)[1]
        output.emit(execs(2, 10), 1)
        journal.request_sync()
        assert woken.wait(10)
        assert gate.due()  # so the loop wakes up and finds out
        with pytest.raises(JournalError, match="fsync failed"):
            gate.release()
        assert len(reader.read(64, timeout=0)) == 0
        assert output.writer is not None
        output.writer.close()
    finally:
        monkeypatch.undo()
        journal.close()


def test_held_batches_are_stamped_when_they_leave_and_their_wait_is_timed(
    rings: list[Ring], tmp_path: Path
) -> None:
    """`ts_init` is when a record was written to its ring: for a held batch, after its fsync,
    so the next stage's `ring_wait` measures the hop alone; `waits` times hold → release."""
    with Journal.open(tmp_path) as journal:
        gate = CommitGate(journal)
        reader = rings[0].reader("check")
        output = Output(rings[0], Stream(), rings[0].writer(), gate=gate)
        gate.seq = journal.append_array(execs(1, 0), wait=False)[1]
        output.emit(execs(2, 10), 1)
        time.sleep(0.01)
        journal.flush()
        flushed = time.time_ns()
        gate.release()
        left = reader.read(64, timeout=0)
        assert len(left) == 2 and (left["ts_init"] >= flushed).all()
        assert gate.waits.count == 1 and gate.waits.minimum >= 10_000_000
        assert journal.sync_times.count == journal.syncs == 1
