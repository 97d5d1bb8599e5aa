"""The ring within one process: layout checks, batch and single-record APIs, back-pressure,
registration, liveness and clean-up. Cross-process behaviour is in tests/integration."""

from __future__ import annotations

import itertools
import math
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ipc import layout
from ipc.errors import IpcError, RingExists, RingMismatch, RingMissing, RingTimeout
from ipc.ring import Ring, WaitConfig, unlink_prefix
from tests.integration import ring_records

RECORD = ring_records.RECORD


@pytest.fixture
def ring(prefix: str) -> Iterator[Ring]:
    ring = Ring.create(f"{prefix}.r", RECORD, 16)
    yield ring
    ring.unlink()
    ring.close()


def drain(reader, count: int) -> np.ndarray:
    """Read, copy and release `count` records."""
    parts = []
    while count:
        view = reader.read(count, timeout=1.0)
        assert len(view), "expected records"
        parts.append(view.view(np.dtype((np.void, RECORD.itemsize))).copy())
        reader.release(len(view))
        count -= len(view)
    return np.concatenate(parts).view(RECORD)


# -- creating, attaching, layout --------------------------------------------------------------


def test_create_attach_and_records_cross_mappings(ring: Ring) -> None:
    other = Ring.attach(ring.name, RECORD)
    try:
        reader = other.reader("a")
        ring.writer().write(ring_records.make(0, 5))
        assert ring_records.check(drain(reader, 5), 0) is None
        assert other.capacity == 16 and other.max_readers == 8
    finally:
        other.close()


def test_create_refuses_an_existing_ring_and_attach_a_missing_one(ring: Ring, prefix: str) -> None:
    with pytest.raises(RingExists):
        Ring.create(ring.name, RECORD, 16)
    with pytest.raises(RingMissing):
        Ring.attach(f"{prefix}.nothing", RECORD)
    assert isinstance(RingMissing("x"), FileNotFoundError)


def test_open_or_create_attaches_when_present(ring: Ring, prefix: str) -> None:
    same = Ring.open_or_create(ring.name, RECORD, 1024)
    fresh = Ring.open_or_create(f"{prefix}.fresh", RECORD, 32)
    try:
        assert same.capacity == 16, "attached, so the existing capacity wins"
        assert fresh.capacity == 32
    finally:
        same.close()
        fresh.unlink()
        fresh.close()


@pytest.mark.parametrize("capacity", [0, 1, 12, 1000])
def test_capacity_must_be_a_power_of_two(prefix: str, capacity: int) -> None:
    with pytest.raises(ValueError, match="power of two"):
        Ring.create(f"{prefix}.bad", RECORD, capacity)


def test_bad_names_are_refused(prefix: str) -> None:
    for name in ("", "a/b", "x" * 300):
        with pytest.raises(ValueError):
            Ring.create(name, RECORD, 8)


def test_dtype_mismatch_is_refused_naming_both_layouts(ring: Ring) -> None:
    other = np.dtype([("seq", "<i8"), ("price", "<i8")])
    with pytest.raises(RingMismatch) as error:
        Ring.attach(ring.name, other)
    message = str(error.value)
    assert "'checksum'" in message and "'price'" in message
    assert "64 bytes" in message and "16 bytes" in message
    assert isinstance(error.value, ValueError)


def test_same_size_different_fields_is_still_a_mismatch(ring: Ring) -> None:
    renamed = np.dtype([(n if n != "a" else "z", t) for n, t in RECORD.descr])
    assert renamed.itemsize == RECORD.itemsize
    with pytest.raises(RingMismatch):
        Ring.attach(ring.name, renamed)


def test_version_mismatch_is_refused_naming_both_versions(ring: Ring) -> None:
    ring.words[layout.VERSION_WORD] = layout.VERSION + 1
    with pytest.raises(
        RingMismatch, match=rf"version {layout.VERSION + 1}.*version {layout.VERSION}"
    ):
        Ring.attach(ring.name, RECORD)


def test_fingerprint_is_stable_and_layout_sensitive() -> None:
    assert layout.fingerprint(RECORD) == layout.fingerprint(np.dtype(RECORD.descr))
    assert layout.fingerprint(RECORD) != layout.fingerprint(ring_records.RECORD_128)
    assert 0 <= layout.fingerprint(RECORD) < 2**63


def test_header_lines_are_64_bytes_apart_and_slots_page_aligned(ring: Ring) -> None:
    assert layout.PUBLISHED * 8 % 64 == 0
    starts = [layout.reader_line(i) * 8 for i in range(ring.max_readers)]
    assert all(s % 64 == 0 for s in starts)
    assert all(b - a == 64 for a, b in itertools.pairwise(starts))
    assert starts[0] - layout.PUBLISHED * 8 == 64
    assert ring.slots_offset % 4096 == 0


def test_refuses_a_cpu_without_total_store_order(monkeypatch, prefix: str) -> None:
    monkeypatch.setattr("platform.machine", lambda: "aarch64")
    with pytest.raises(IpcError, match=r"x86-64.*aarch64"):
        Ring.create(f"{prefix}.arm", RECORD, 8)


# -- writing and reading ---------------------------------------------------------------------


def test_reserve_publish_read_release_wrap_around(ring: Ring) -> None:
    writer, reader = ring.writer(), ring.reader("a")
    total = 0
    for batch in (5, 9, 16, 3, 13, 7, 16, 1):
        view = writer.reserve(batch)
        assert 1 <= len(view) <= batch
        ring_records.fill(view, total)
        writer.publish(len(view))
        got = drain(reader, len(view))
        assert ring_records.check(got, total) is None
        total += len(view)
    assert writer.published == total == reader.cursor
    assert reader.lag == 0


def test_reserve_is_short_at_the_end_of_the_ring(ring: Ring) -> None:
    writer, reader = ring.writer(), ring.reader("a")
    writer.write(ring_records.make(0, 12))
    drain(reader, 12)
    assert len(writer.reserve(10)) == 4, "slots 12..15, then the ring wraps"


def test_read_is_contiguous_and_limited(ring: Ring) -> None:
    writer, reader = ring.writer(), ring.reader("a")
    writer.write(ring_records.make(0, 10))
    drain(reader, 10)
    writer.write(ring_records.make(10, 12))  # slots 10..15 then 0..5
    assert len(reader.read()) == 6
    assert len(reader.read(3)) == 3
    reader.release(3)
    assert reader.read()["seq"][0] == 13


def test_publish_and_release_check_their_counts(ring: Ring) -> None:
    writer, reader = ring.writer(), ring.reader("a")
    writer.reserve(4)
    with pytest.raises(ValueError):
        writer.publish(5)
    writer.publish(2)
    view = reader.read()
    assert len(view) == 2
    with pytest.raises(ValueError):
        reader.release(3)


def test_put_and_get_single_records(ring: Ring) -> None:
    writer, reader = ring.writer(), ring.reader("a")
    writer.put(ring_records.one(0))  # a tuple
    writer.put(ring_records.make(1, 1)[0])  # a record of the ring's dtype
    first, second = reader.get(), reader.get()
    assert ring_records.check_one(first, 0) is None
    assert ring_records.check_one(second, 1) is None
    assert reader.get(timeout=0) is None


def test_get_returns_copies_that_survive_the_slot_being_reused(ring: Ring) -> None:
    writer, reader = ring.writer(), ring.reader("a")
    kept = []
    for seq in range(100):  # the 16-slot ring is rewritten six times over
        writer.put(ring_records.one(seq))
        kept.append(reader.get())
    for seq, record in enumerate(kept):
        assert ring_records.check_one(record, seq) is None


def test_put_refuses_a_record_of_another_dtype(ring: Ring) -> None:
    writer = ring.writer()
    with pytest.raises(RingMismatch):
        writer.put(ring_records.make(0, 1, ring_records.RECORD_128)[0])
    with pytest.raises(RingMismatch):
        writer.write(np.zeros(3, ring_records.RECORD_128))


def test_write_accepts_a_non_contiguous_batch(ring: Ring) -> None:
    writer, reader = ring.writer(), ring.reader("a")
    every_other = ring_records.make(0, 20)[::2]
    writer.write(every_other)
    assert list(drain(reader, 10)["seq"]) == list(range(0, 20, 2))


# -- back-pressure ---------------------------------------------------------------------------


def test_full_ring_times_out_and_counts_a_stall(ring: Ring) -> None:
    writer, reader = ring.writer(), ring.reader("slow")
    writer.write(ring_records.make(0, 16))
    started = time.monotonic()
    with pytest.raises(RingTimeout, match=r"slow \(pid \d+, alive, cursor 0\)"):
        writer.put(ring_records.one(16), timeout=0.02)
    assert time.monotonic() - started < 5
    assert ring.stats()["stalls"] == 1
    assert ring.readers()[0].stalls == 1
    reader.release(len(reader.read(1)))
    writer.put(ring_records.one(16), timeout=0)


def test_a_new_reader_starts_at_the_published_position(ring: Ring) -> None:
    writer = ring.writer()
    writer.write(ring_records.make(0, 10))
    late = ring.reader("late")
    assert late.cursor == 10 and late.lag == 0
    writer.write(ring_records.make(10, 16))  # the late reader holds 16 slots from 10
    with pytest.raises(RingTimeout):
        writer.put(ring_records.one(26), timeout=0)
    assert ring_records.check(drain(late, 16), 10) is None


def test_without_readers_the_writer_never_blocks(ring: Ring) -> None:
    writer = ring.writer()
    writer.write(ring_records.make(0, 100), timeout=0)
    assert writer.published == 100


@pytest.mark.parametrize(
    "wait", [WaitConfig(), WaitConfig.busy_poll(), WaitConfig.sleeping()], ids=str
)
def test_blocked_writer_resumes_when_a_thread_releases(ring: Ring, wait: WaitConfig) -> None:
    writer, reader = ring.writer(wait), ring.reader("a", wait)
    writer.write(ring_records.make(0, 16))

    def consume() -> None:
        time.sleep(0.05)
        drain(reader, 48)

    consumer = threading.Thread(target=consume)
    consumer.start()
    try:
        writer.write(ring_records.make(16, 32), timeout=10.0)
    finally:
        consumer.join(10)
    assert reader.cursor == 48
    assert ring.stats()["stalls"] >= 1


def test_a_writer_attached_after_its_reader_is_woken_from_a_stall(ring: Ring) -> None:
    reader = ring.reader("early")
    # The writer sleeps for an hour at a time: only the reader's post can wake it in time.
    writer = ring.writer(WaitConfig(spin_us=0, yield_count=0, sleep_timeout=3600.0, timeout=5.0))
    writer.write(ring_records.make(0, 16))
    consumer = threading.Thread(target=lambda: (time.sleep(0.05), drain(reader, 48)))
    consumer.start()
    try:
        writer.write(ring_records.make(16, 32))
    finally:
        consumer.join(10)
    assert reader.cursor == 48


@pytest.mark.parametrize("wait", [WaitConfig.busy_poll(), WaitConfig.sleeping()], ids=str)
def test_waiting_reader_gets_a_record_written_later(ring: Ring, wait: WaitConfig) -> None:
    writer, reader = ring.writer(), ring.reader("a", wait)
    timer = threading.Timer(0.05, writer.put, args=(ring_records.one(0),))
    timer.start()
    try:
        record = reader.get(timeout=10.0)
    finally:
        timer.join(10)
    assert ring_records.check_one(record, 0) is None


def test_sleeping_reader_sets_its_asleep_flag_and_is_posted(ring: Ring) -> None:
    writer = ring.writer()
    wait = WaitConfig(spin_us=0, yield_count=0, sleep_timeout=3600.0, timeout=math.inf)
    reader = ring.reader("sleeper", wait)
    got: list[object] = []
    thread = threading.Thread(target=lambda: got.append(reader.get()))
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not ring.readers()[0].asleep:
            assert time.monotonic() < deadline
            time.sleep(0.001)
        writer.put(ring_records.one(0))
    finally:
        thread.join(10)
    assert not thread.is_alive() and ring_records.check_one(got[0], 0) is None
    assert ring.stats()["wakeups"] == 1 and not ring.readers()[0].asleep


def test_read_timeout_returns_an_empty_view(ring: Ring) -> None:
    reader = ring.reader("a", WaitConfig(timeout=0.01))
    assert len(reader.read()) == 0
    assert len(reader.read(timeout=0)) == 0


def test_wait_config_is_validated() -> None:
    with pytest.raises(ValueError):
        WaitConfig(spin_us=-1)
    with pytest.raises(ValueError):
        WaitConfig(sleep_timeout=0)
    assert not WaitConfig.busy_poll().sleep and WaitConfig.sleeping().spin_us == 0


# -- registration and liveness ---------------------------------------------------------------


def test_reader_reattaches_by_name_at_its_cursor(ring: Ring) -> None:
    writer, reader = ring.writer(), ring.reader("a")
    writer.write(ring_records.make(0, 10))
    drain(reader, 4)
    reader.close()
    again = ring.reader("a")
    assert again.cursor == 4
    assert ring_records.check(drain(again, 6), 4) is None


def test_a_live_reader_slot_cannot_be_taken_twice(ring: Ring) -> None:
    ring.reader("a")
    with pytest.raises(IpcError, match="live pid"):
        ring.reader("a")


def test_a_second_live_writer_is_refused_but_a_closed_one_is_replaced(ring: Ring) -> None:
    first = ring.writer()
    first.write(ring_records.make(0, 3))
    ring.words[layout.WRITER_PID] = os.getppid()  # pretend another live process writes
    with pytest.raises(IpcError, match="live writer"):
        ring.writer()
    ring.words[layout.WRITER_PID] = 0
    assert ring.writer().published == 3


def test_reader_slots_run_out(prefix: str) -> None:
    ring = Ring.create(f"{prefix}.few", RECORD, 8, max_readers=2)
    try:
        ring.reader("a")
        ring.reader("b")
        with pytest.raises(IpcError, match="all 2 reader slots"):
            ring.reader("c")
    finally:
        ring.unlink()
        ring.close()


def test_readers_and_stats_report_positions(ring: Ring) -> None:
    writer, reader = ring.writer(), ring.reader("a")
    ring.reader("b").close()
    writer.write(ring_records.make(0, 6))
    drain(reader, 2)
    infos = {info.name: info for info in ring.readers()}
    assert (infos["a"].cursor, infos["a"].lag, infos["a"].alive) == (2, 4, True)
    assert (infos["b"].pid, infos["b"].alive, infos["b"].lag) == (0, False, 6)
    stats = ring.stats()
    assert stats["published"] == 6 and stats["capacity"] == 16 and stats["record_size"] == 64
    assert stats["writer_pid"] == os.getpid() and stats["writer_alive"]
    assert [r["name"] for r in stats["readers"]] == ["a", "b"]


def test_unregister_frees_the_writer_and_refuses_live_readers(ring: Ring) -> None:
    writer, live = ring.writer(), ring.reader("live")
    ring.reader("gone").close()
    writer.write(ring_records.make(0, 16))
    drain(live, 16)
    with pytest.raises(RingTimeout, match=r"gone \(pid 0, DEAD, cursor 0\)"):
        writer.put(ring_records.one(16), timeout=0)
    with pytest.raises(IpcError, match="alive"):
        ring.unregister_reader("live")
    ring.unregister_reader("gone")
    writer.put(ring_records.one(16), timeout=0)
    with pytest.raises(IpcError, match="no reader"):
        ring.unregister_reader("gone")


def test_a_forcibly_unregistered_reader_notices(ring: Ring) -> None:
    writer, reader = ring.writer(), ring.reader("a", WaitConfig(timeout=0.01))
    ring.unregister_reader("a", force=True)
    writer.write(ring_records.make(0, 40))
    with pytest.raises(IpcError, match="unregistered"):
        for _ in range(2000):
            reader.read()


# -- clean-up --------------------------------------------------------------------------------


def test_unlink_removes_the_segment_and_every_semaphore(prefix: str) -> None:
    ring = Ring.create(f"{prefix}.gone", RECORD, 8, max_readers=3)
    ring.reader("a")
    names = {p.name for p in Path("/dev/shm").iterdir() if prefix in p.name}
    assert names == {f"{prefix}.gone"} | {
        f"sem.{prefix}.gone.{suffix}" for suffix in ("lock", "w", "r0", "r1", "r2")
    }
    ring.unlink()
    ring.close()
    assert not [p for p in Path("/dev/shm").iterdir() if prefix in p.name]


def test_unlink_prefix_removes_every_ring_of_an_instance(prefix: str) -> None:
    rings = [Ring.create(f"{prefix}.{n}", RECORD, 8, max_readers=1) for n in ("x", "y")]
    for ring in rings:
        ring.close()
    removed = unlink_prefix(prefix)
    assert sorted(removed) == sorted(
        [f"{prefix}.{n}" for n in "xy"]
        + [f"sem.{prefix}.{n}.{s}" for n in "xy" for s in ("lock", "w", "r0")]
    )
    assert unlink_prefix(prefix) == []


def test_unlink_prefix_refuses_a_prefix_that_is_not_an_instance() -> None:
    for bad in ("", "sem.", "orders", "shmex/x"):
        with pytest.raises(ValueError):
            unlink_prefix(bad)


def test_close_leaves_the_ring_for_others(ring: Ring) -> None:
    writer = ring.writer()
    writer.write(ring_records.make(0, 3))
    writer.close()
    other = Ring.attach(ring.name, RECORD)
    try:
        assert other.stats()["published"] == 3 and other.stats()["writer_pid"] == 0
    finally:
        other.close()
        other.close()  # closing twice is harmless
