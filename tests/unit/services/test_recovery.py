"""services/recovery.py: input dedup per ring epoch, replay-aware outputs on a real ring,
and dead readers dropped so they stop holding a full ring."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ipc import records
from ipc.records import EXEC, Flag, Kind
from ipc.ring import Ring
from ipc.wait import WaitConfig
from services.recovery import Output, Stream, Streams, drop_dead_readers, write_blocking

ROOT = Path(__file__).resolve().parents[3]


def execs(count: int, first_seq: int = 1) -> np.ndarray:
    batch = records.new_batch(EXEC, count)
    batch["kind"] = Kind.TRADE
    batch["seq"] = np.arange(first_seq, first_seq + count)
    batch["price"] = np.arange(count) + 100
    return batch


@pytest.fixture
def ring(prefix: str) -> Iterator[Ring]:
    made = Ring.create(f"{prefix}.execs.0", EXEC, 16)
    try:
        yield made
    finally:
        made.close()
        made.unlink()


def test_fresh_skips_what_was_applied_and_remembers_the_last_sequence() -> None:
    streams = Streams()
    first = streams.fresh("cmd.1", execs(5))
    assert first["seq"].tolist() == [1, 2, 3, 4, 5]
    again = streams.fresh("cmd.1", execs(8))
    assert again["seq"].tolist() == [6, 7, 8]
    assert streams.get("cmd.1").seq == 8
    assert len(streams.fresh("cmd.1", execs(3, first_seq=4))) == 0


def test_a_new_epoch_restarts_the_counters_and_export_round_trips() -> None:
    streams = Streams({"orders.0": Stream(epoch=10, seq=42)})
    streams.adopt("orders.0", 10)
    assert streams.get("orders.0").seq == 42
    streams.adopt("orders.0", 11)
    assert (streams.get("orders.0").epoch, streams.get("orders.0").seq) == (11, 0)
    assert Streams.load(streams.export()).export() == streams.export()


def test_replay_writes_only_what_the_ring_has_not_published(ring: Ring) -> None:
    reader = ring.reader("check")
    writer = ring.writer()
    live = Output(ring, Stream(), writer)
    live.emit(execs(3), 0)
    live.emit(execs(2), 0)
    assert writer.published == 5
    replay = Output(ring, Stream(), writer)
    replay.begin_replay()
    for batch in (execs(3), execs(2), execs(4)):  # the last batch was never written
        replay.emit(batch, 0)
    assert replay.regenerated == 9
    assert replay.finish_replay(Flag.REPLAY) == 4
    seen = reader.read(max_n=16, timeout=1.0)
    assert seen["seq"].tolist() == list(range(1, 10))
    assert seen["flags"].tolist() == [0] * 5 + [int(Flag.REPLAY)] * 4
    assert seen["price"][5:].tolist() == [100, 101, 102, 103]
    writer.close()


def test_without_a_ring_replay_numbers_but_keeps_nothing() -> None:
    output = Output(None, Stream(), None)
    output.begin_replay()
    output.emit(execs(1000), 0)
    assert output.finish_replay(Flag.REPLAY) == 0
    assert output.stream.seq == 1000


def test_a_dead_reader_is_dropped_so_a_full_ring_takes_writes(ring: Ring, prefix: str) -> None:
    script = (
        "from ipc.ring import Ring; from ipc.records import EXEC;"
        f"Ring.attach('{prefix}.execs.0', EXEC).reader('gone')"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT, timeout=60)
    writer = ring.writer(WaitConfig(timeout=0.05))
    writer.write(execs(16))
    write_blocking(ring, writer, execs(4, first_seq=17), drop_dead=True)
    assert writer.published == 20
    assert ring.readers() == []
    assert drop_dead_readers(ring) == []
    writer.close()
