"""Journal: round trip, torn tails, corruption, rotation, retention, durability modes, disk full."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from storage import segment
from storage.errors import JournalCorruption, JournalError, JournalGap
from storage.journal import (
    Durability,
    Journal,
    JournalConfig,
    iter_journal_arrays,
    read_journal,
)

RECORD = np.dtype([("seq", "<i8"), ("account", "<i8"), ("pad", "V112")])  # 128 bytes
ROOT = Path(__file__).resolve().parents[3]


def records(start: int, count: int) -> np.ndarray:
    arr = np.zeros(count, RECORD)
    arr["seq"] = np.arange(start, start + count)
    arr["account"] = arr["seq"] * 7 % 13
    return arr


def payloads(n: int) -> list[bytes]:
    return [f"record-{i}".encode() * (i % 5 + 1) for i in range(n)]


def test_round_trip_bytes_and_arrays(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as journal:
        assert journal.append(b"first") == 1
        assert journal.append_batch(payloads(10)) == (2, 11)
        assert journal.append_array(records(0, 100)) == (12, 111)
        assert journal.append(b"") == 112
    got = list(read_journal(tmp_path))
    assert [seq for seq, _ in got] == list(range(1, 113))
    assert got[0][1] == b"first"
    assert [p for _, p in got[1:11]] == payloads(10)
    array = np.frombuffer(b"".join(p for _, p in got[11:111]), RECORD)
    assert (array == records(0, 100)).all()
    assert got[-1][1] == b""


def test_replay_as_numpy_batches(tmp_path: Path) -> None:
    with Journal.open(tmp_path, JournalConfig(segment_bytes=8192)) as journal:
        journal.append_array(records(0, 1000))
        journal.append_array(records(1000, 77))
    batches = list(iter_journal_arrays(tmp_path, RECORD, from_seq=11, batch=256))
    assert [first for first, _ in batches] == [11, 267, 523, 779, 1035]
    assert (np.concatenate([array for _, array in batches]) == records(10, 1067)).all()
    with Journal.open(tmp_path) as journal:
        journal.append(b"short")
    with pytest.raises(ValueError, match="record 1078 has 5 bytes"):
        list(iter_journal_arrays(tmp_path, RECORD))


def test_read_from_a_sequence(tmp_path: Path) -> None:
    with Journal.open(tmp_path, JournalConfig(segment_bytes=4096)) as journal:
        journal.append_array(records(0, 200))
    got = list(read_journal(tmp_path, from_seq=150))
    assert [seq for seq, _ in got] == list(range(150, 201))
    assert np.frombuffer(got[0][1], RECORD)["seq"][0] == 149


def test_empty_directory(tmp_path: Path) -> None:
    assert list(read_journal(tmp_path)) == []
    assert list(read_journal(tmp_path / "missing")) == []
    with Journal.open(tmp_path / "new") as journal:
        assert journal.next_seq == 1
        assert journal.last_seq == 0
    assert list(read_journal(tmp_path / "new")) == []


def test_reopen_continues_the_sequence(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as journal:
        journal.append_batch(payloads(5))
    with Journal.open(tmp_path) as journal:
        assert journal.next_seq == 6
        assert journal.append(b"six") == 6
    assert [seq for seq, _ in read_journal(tmp_path)] == [1, 2, 3, 4, 5, 6]


def only_segment(directory: Path) -> Path:
    (found,) = segment.list_segments(directory)
    return found[1]


@pytest.mark.parametrize("cut", [1, 4, 8, 9, 20])
def test_torn_tail_is_truncated(tmp_path: Path, cut: int) -> None:
    with Journal.open(tmp_path) as journal:
        journal.append_batch(payloads(10))
        journal.append(b"x" * 40)
    path = only_segment(tmp_path)
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.truncate(size - cut)
    assert [seq for seq, _ in read_journal(tmp_path)] == list(range(1, 11))
    with Journal.open(tmp_path) as journal:
        assert journal.next_seq == 11
        assert path.stat().st_size == size - 48
        journal.append(b"eleven")
    got = list(read_journal(tmp_path))
    assert got[-1] == (11, b"eleven")
    assert len(got) == 11


@pytest.mark.parametrize("header", [b"", b"SHMEX", bytes(24), bytes(4096)])
def test_torn_segment_creation_is_repaired(tmp_path: Path, header: bytes) -> None:
    """A crash while rotating can leave the new segment empty, short or zero-filled."""
    with Journal.open(tmp_path, JournalConfig(segment_bytes=4096)) as journal:
        for start in range(0, 100, 20):
            journal.append_array(records(start, 20))
    next_seq = 101
    (tmp_path / segment.segment_name(next_seq)).write_bytes(header)
    assert [seq for seq, _ in read_journal(tmp_path)] == list(range(1, 101))
    with Journal.open(tmp_path, JournalConfig(segment_bytes=4096)) as journal:
        assert journal.next_seq == next_seq
        journal.append_array(records(100, 5))
    got = np.frombuffer(b"".join(p for _, p in read_journal(tmp_path)), RECORD)
    assert (got == records(0, 105)).all()


def test_zero_filled_and_bad_crc_tail_is_truncated(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as journal:
        journal.append_batch(payloads(3))
        journal.append(b"last record")
    path = only_segment(tmp_path)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # bad crc in the very last record
    path.write_bytes(bytes(data) + bytes(100))  # and zeros after it, as a torn append leaves
    with Journal.open(tmp_path) as journal:
        assert journal.next_seq == 4


def test_flipped_byte_mid_file_names_file_and_offset(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as journal:
        journal.append_batch(payloads(20))
    path = only_segment(tmp_path)
    data = bytearray(path.read_bytes())
    offset = segment.FILE_HEADER.size
    for payload in payloads(20)[:5]:
        offset += segment.RECORD_HEADER.size + len(payload)
    data[offset + segment.RECORD_HEADER.size + 2] ^= 0x01  # inside record 6's payload
    path.write_bytes(bytes(data))
    with pytest.raises(JournalCorruption) as caught:
        list(read_journal(tmp_path))
    assert caught.value.path == path
    assert caught.value.offset == offset
    assert str(path) in str(caught.value)
    assert f"offset {offset}" in str(caught.value)
    with pytest.raises(JournalCorruption):
        Journal.open(tmp_path)
    seen = []
    with pytest.raises(JournalCorruption):
        for seq, _payload in read_journal(tmp_path):
            seen.append(seq)
    assert seen == [1, 2, 3, 4, 5]  # the records before the damage are still delivered
    assert path.stat().st_size == len(data)  # and nothing was cut off


def test_bad_length_mid_file_is_corruption(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as journal:
        journal.append_batch(payloads(20))
    path = only_segment(tmp_path)
    data = bytearray(path.read_bytes())
    offset = segment.FILE_HEADER.size + segment.RECORD_HEADER.size + len(payloads(1)[0])
    data[offset : offset + 4] = (10**9).to_bytes(4, "little")  # record 2's length
    path.write_bytes(bytes(data))
    with pytest.raises(JournalCorruption, match=f"offset {offset}"):
        list(read_journal(tmp_path))


def test_rotation_by_size(tmp_path: Path) -> None:
    config = JournalConfig(segment_bytes=8192)
    with Journal.open(tmp_path, config) as journal:
        for start in range(0, 1000, 50):
            journal.append_array(records(start, 50))
    segments = segment.list_segments(tmp_path)
    assert len(segments) > 10
    for first, path in segments:
        assert path.name == f"{first:020d}.wal"
        assert path.stat().st_size <= 8192
    got = np.frombuffer(b"".join(p for _, p in read_journal(tmp_path)), RECORD)
    assert (got == records(0, 1000)).all()
    with Journal.open(tmp_path, config) as journal:
        assert journal.next_seq == 1001


def test_damage_in_an_older_segment_is_corruption_even_at_its_end(tmp_path: Path) -> None:
    with Journal.open(tmp_path, JournalConfig(segment_bytes=4096)) as journal:
        for start in range(0, 300, 30):
            journal.append_array(records(start, 30))
    _first, path = segment.list_segments(tmp_path)[0]
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size - 10)
    with pytest.raises(JournalCorruption, match=path.name):
        list(read_journal(tmp_path))


def test_retention_deletes_only_segments_before_the_checkpoint(tmp_path: Path) -> None:
    with Journal.open(tmp_path, JournalConfig(segment_bytes=4096)) as journal:
        for start in range(0, 600, 25):
            journal.append_array(records(start, 25))
        before = segment.list_segments(tmp_path)
        removed = journal.retain(checkpoint_seq=300, keep_segments=2)
        after = segment.list_segments(tmp_path)
        assert removed
        assert len(after) == len(before) - len(removed)
        assert after[0][0] <= 301  # every record after the checkpoint is still there
        assert [seq for seq, _ in read_journal(tmp_path, 301)] == list(range(301, 601))
        with pytest.raises(JournalGap):
            list(read_journal(tmp_path, 1))
        everything = journal.retain(checkpoint_seq=600, keep_segments=3)
        assert len(segment.list_segments(tmp_path)) == 3
        assert everything
        journal.append(b"more")
    first = segment.list_segments(tmp_path)[0][0]
    assert [seq for seq, _ in read_journal(tmp_path, first)][-1] == 601


def test_missing_middle_segment_is_a_gap(tmp_path: Path) -> None:
    with Journal.open(tmp_path, JournalConfig(segment_bytes=4096)) as journal:
        for start in range(0, 300, 30):
            journal.append_array(records(start, 30))
    segment.list_segments(tmp_path)[2][1].unlink()
    with pytest.raises(JournalGap):
        list(read_journal(tmp_path))


def test_sync_mode_is_durable_on_return(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as journal:
        assert journal.config.durability is Durability.SYNC
        _first, last = journal.append_batch(payloads(7))
        assert journal.durable_seq == last == 7


def test_async_mode_flush_makes_durable(tmp_path: Path) -> None:
    config = JournalConfig(durability=Durability.ASYNC, flush_interval_ms=60_000)
    with Journal.open(tmp_path, config) as journal:
        journal.append_batch(payloads(5))
        assert journal.last_seq == 5
        assert journal.durable_seq == 0  # the flusher's interval has not passed
        assert [seq for seq, _ in read_journal(tmp_path)] == [1, 2, 3, 4, 5]  # already written
        assert journal.flush() == 5
        assert journal.durable_seq == 5


def test_async_flusher_syncs_by_itself(tmp_path: Path) -> None:
    config = JournalConfig(durability=Durability.ASYNC, flush_interval_ms=5)
    with Journal.open(tmp_path, config) as journal:
        journal.append_batch(payloads(3))
        deadline = time.monotonic() + 10
        while journal.durable_seq != 3 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert journal.durable_seq == 3


def test_deferred_appends_written_while_a_sync_runs_share_the_next_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Group commit: the first deferred batch's fdatasync is held on the disk (an Event gates
    the real call); three batches written meanwhile are made durable by one more fdatasync,
    and `on_durable` runs after each advance."""
    real_fdatasync = os.fdatasync
    disk_busy, disk_free = threading.Event(), threading.Event()
    syncs: list[int] = []

    def slow_disk(fd: int) -> None:
        syncs.append(fd)
        if len(syncs) == 1:
            disk_busy.set()
            assert disk_free.wait(10)
        real_fdatasync(fd)

    durable_seen: list[int] = []
    with Journal.open(tmp_path) as journal:
        journal.on_durable = lambda: durable_seen.append(journal.durable_seq)
        monkeypatch.setattr(os, "fdatasync", slow_disk)
        assert journal.append_array(records(1, 4), wait=False) == (1, 4)
        assert journal.durable_seq == 0  # written, not synced until asked
        journal.request_sync()
        assert disk_busy.wait(10)
        for start in (5, 9, 13):
            journal.append_array(records(start, 4), wait=False)
            journal.request_sync()
        assert journal.last_seq == 16 and journal.durable_seq == 0  # written, none on disk yet
        disk_free.set()
        deadline = time.monotonic() + 10
        while journal.durable_seq < 16 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert journal.durable_seq == 16
        assert len(syncs) == 2
        assert durable_seen == [4, 16]
    assert [seq for seq, _ in read_journal(tmp_path)] == list(range(1, 17))


def break_fdatasync(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every fdatasync from now on fails with EIO, as a dying disk's would."""

    def broken_disk(_fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", broken_disk)


def test_a_failed_background_sync_poisons_and_tells_the_owner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deferred batch whose fdatasync fails never becomes durable: `sync_failed` says the
    owner must recover, appends are refused, and the callback still runs so the owner wakes."""
    woken = threading.Event()
    journal = Journal.open(tmp_path)
    try:
        journal.on_durable = woken.set
        break_fdatasync(monkeypatch)
        journal.append_array(records(1, 3), wait=False)
        journal.request_sync()
        assert woken.wait(10)
        assert journal.sync_failed and journal.failed and journal.durable_seq == 0
        with pytest.raises(JournalError, match="failed earlier"):
            journal.append_array(records(4, 1), wait=False)
    finally:
        monkeypatch.undo()
        journal.close()


def test_a_second_writer_is_refused(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as journal:
        with pytest.raises(JournalError, match="another writer"):
            Journal.open(tmp_path)
        journal.append(b"still mine")
    with Journal.open(tmp_path) as again:
        assert again.next_seq == 2


def test_unwritable_directory_raises_journal_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(JournalError) as caught:
        Journal.open(blocker / "journal")
    assert isinstance(caught.value, OSError)
    assert "journal" in str(caught.value)


DISK_FULL_CHILD = textwrap.dedent(
    """
    import json, resource, sys
    from storage.errors import JournalError
    from storage.journal import Journal, JournalConfig

    directory, limit = sys.argv[1], int(sys.argv[2])
    journal = Journal.open(directory, JournalConfig(segment_bytes=1 << 30))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    acked, errors = [], []
    for batch in range(1000):
        try:
            first, last = journal.append_batch([b"%d-%d" % (batch, i) * 20 for i in range(10)])
            acked.append(last)
        except JournalError as exc:
            errors.append(str(exc))
    print(json.dumps({"acked": acked, "errors": errors[:2], "failures": len(errors),
                      "durable": journal.durable_seq}))
    """
)


def test_disk_full_refuses_and_never_acknowledges_unwritten_data(tmp_path: Path) -> None:
    """A real write failure: the child's file size limit (RLIMIT_FSIZE) makes write() fail."""
    limit = 20_000
    child = subprocess.run(
        [sys.executable, "-c", DISK_FULL_CHILD, str(tmp_path), str(limit)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    )
    report = json.loads(child.stdout)
    assert report["acked"], "some batches fit under the limit"
    assert report["failures"] == 1000 - len(report["acked"])
    assert "File too large" in report["errors"][0]
    assert "refused" in report["errors"][1]
    last_acked = report["acked"][-1]
    assert report["durable"] == last_acked
    # Reopened without the limit: exactly the acknowledged records are there, and it continues.
    recovered = list(read_journal(tmp_path))
    assert [seq for seq, _ in recovered] == list(range(1, last_acked + 1))
    assert recovered[-1][1] == b"%d-9" % (len(report["acked"]) - 1) * 20
    with Journal.open(tmp_path) as journal:
        assert journal.append(b"after") == last_acked + 1


CRASH_CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    from storage.journal import Durability, Journal, JournalConfig

    directory, mode = sys.argv[1], sys.argv[2]
    deferred = mode == "deferred"  # sync mode, acknowledged when the sync thread says durable
    config = JournalConfig(durability=Durability("sync" if deferred else mode),
                           flush_interval_ms=3_600_000, segment_bytes=256 << 10)
    journal = Journal.open(directory, config)
    rng = np.random.default_rng(journal.next_seq)
    print("start", journal.next_seq, flush=True)
    while True:
        n = int(rng.integers(1, 3000))
        batch = np.zeros(n, [("seq", "<i8"), ("pad", "V120")])
        batch["seq"] = np.arange(journal.next_seq, journal.next_seq + n)
        first, last = journal.append_array(batch, wait=not deferred)
        if deferred:
            journal.request_sync()
        print("acked", journal.durable_seq if deferred else last, flush=True)
    """
)


@pytest.mark.parametrize("mode", ["sync", "async", "deferred"])
def test_sigkill_mid_append_loses_nothing_acknowledged(tmp_path: Path, mode: str) -> None:
    """Kill a real writer process mid-stream, several rounds; every acknowledged record stays.

    In async mode too: `append` has handed the bytes to the OS, which a process crash does not
    lose (only an OS crash could lose the unsynced interval). `deferred`: sync mode with the
    sync thread, killed while its fdatasyncs run; what it reported durable stays, in order.
    """
    rounds = int(os.environ.get("SHMEX_CRASH_ROUNDS", "2"))
    for round_number in range(rounds):
        child = subprocess.Popen(
            [sys.executable, "-c", CRASH_CHILD, str(tmp_path), mode],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        acked = 0
        try:
            assert child.stdout is not None
            start = child.stdout.readline().split()
            assert start[0] == "start"
            deadline = time.monotonic() + 0.2 + 0.1 * round_number
            for line in child.stdout:
                acked = int(line.split()[1])
                if time.monotonic() > deadline:
                    break
        finally:
            child.kill()
            child.wait(timeout=30)
        assert acked > 0
        seqs = [np.frombuffer(p, "<i8", count=1)[0] for _, p in read_journal(tmp_path)]
        assert seqs == list(range(1, len(seqs) + 1))  # contiguous, each record where it belongs
        assert len(seqs) >= acked
        with Journal.open(tmp_path) as journal:
            assert journal.next_seq == len(seqs) + 1
