"""Rings between real processes: volume, several readers, wrapping, back-pressure, crashes.

Every record a reader sees is checked (sequence, checksum, every field). SHMEX_RING_RECORDS
scales the volume test (default 2,000,000).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import posix_ipc
import pytest

from ipc.errors import RingTimeout
from ipc.ring import Ring, WaitConfig
from tests.integration import ring_records

ROOT = Path(__file__).resolve().parents[2]
RECORDS = int(os.environ.get("SHMEX_RING_RECORDS", "2000000"))
PEER_TIMEOUT = 90.0

Spawn = Callable[..., subprocess.Popen[str]]


@pytest.fixture
def peers() -> Iterator[Spawn]:
    """Start ring_peer processes; every one is killed and reaped when the test ends."""
    started: list[subprocess.Popen[str]] = []

    def spawn(*args: object) -> subprocess.Popen[str]:
        command = [sys.executable, "-m", "tests.integration.ring_peer", *map(str, args)]
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        started.append(process)
        return process

    yield spawn
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def finish(process: subprocess.Popen[str], timeout: float = PEER_TIMEOUT) -> dict[str, int]:
    """Wait for a peer; return its last JSON line, failing the test if it failed."""
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, f"peer failed ({process.returncode}): {out}\n{err}"
    return json.loads(out.strip().splitlines()[-1]) if out.strip() else {}


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def first_line(process: subprocess.Popen[str]) -> dict[str, int]:
    """The peer's first JSON line (a reader prints where it started before reading)."""
    assert process.stdout is not None
    return json.loads(process.stdout.readline())


@pytest.fixture
def make_ring(prefix: str) -> Iterator[Callable[..., Ring]]:
    rings: list[Ring] = []

    def make(
        suffix: str,
        capacity: int,
        readers: tuple[str, ...] = (),
        dtype: np.dtype = ring_records.RECORD,
    ) -> Ring:
        ring = Ring.create(f"{prefix}.{suffix}", dtype, capacity)
        rings.append(ring)
        for name in readers:  # registered up front, so they see every record from sequence 0
            ring.reader(name).close()
        return ring

    yield make
    for ring in rings:
        ring.unlink()
        ring.close()


def test_millions_of_records_between_two_processes(make_ring, peers) -> None:
    ring = make_ring("volume", 4096, readers=("r",))
    reader = peers("read", ring.name, "r", RECORDS, "--block", 1024)
    writer = peers("write", ring.name, RECORDS, "--block", 256)
    finish(writer)
    assert finish(reader) == {"first": 0, "count": RECORDS}
    assert ring.stats()["published"] == RECORDS


def test_one_record_at_a_time_both_sides(make_ring, peers) -> None:
    count = max(RECORDS // 40, 1000)
    ring = make_ring("single", 1024, readers=("r",))
    reader = peers("read", ring.name, "r", count, "--block", 0)
    writer = peers("write", ring.name, count, "--block", 0)
    finish(writer)
    assert finish(reader) == {"first": 0, "count": count}


def test_wide_records_in_sleep_mode(make_ring, peers) -> None:
    count = max(RECORDS // 20, 1000)
    ring = make_ring("wide", 256, readers=("r",), dtype=ring_records.RECORD_128)
    reader = peers("read", ring.name, "r", count, "--block", 100, "--wait", "sleep", "--wide")
    writer = peers("write", ring.name, count, "--block", 7, "--wait", "sleep", "--wide")
    finish(writer)
    assert finish(reader) == {"first": 0, "count": count}


def test_several_readers_at_different_speeds(make_ring, peers) -> None:
    count = max(RECORDS // 20, 1000)
    ring = make_ring("fanout", 256, readers=("fast", "single", "slow"))
    readers = [
        peers("read", ring.name, "fast", count, "--block", 512, "--wait", "busy"),
        peers("read", ring.name, "single", count, "--block", 0, "--wait", "sleep"),
        peers("read", ring.name, "slow", count, "--block", 16, "--pause-every", 2048),
    ]
    writer = peers("write", ring.name, count, "--block", 64)
    finish(writer)
    for reader in readers:
        assert finish(reader) == {"first": 0, "count": count}
    stats = ring.stats()
    assert stats["published"] == count
    assert stats["stalls"] > 0, "a 256-slot ring and a pausing reader must hold the writer back"
    assert {r["name"]: r["cursor"] for r in stats["readers"]} == dict.fromkeys(
        ("fast", "single", "slow"), count
    )


def test_tiny_ring_wraps_many_times(make_ring, peers) -> None:
    count = 20_000
    ring = make_ring("tiny", 8, readers=("r",))
    reader = peers("read", ring.name, "r", count, "--block", 3)
    writer = peers("write", ring.name, count, "--block", 0)
    finish(writer)
    assert finish(reader) == {"first": 0, "count": count}
    assert ring.stats()["published"] // ring.capacity == count // 8


def test_writer_blocked_by_slow_reader_resumes(make_ring, peers) -> None:
    ring = make_ring("blocked", 64, readers=("late",))
    writer = ring.writer(WaitConfig(timeout=30.0))
    writer.write(ring_records.make(0, 64))
    with pytest.raises(RingTimeout, match="late"):
        writer.put(ring_records.one(64), timeout=0.05)
    reader = peers("read", ring.name, "late", 1064, "--block", 10)
    writer.write(ring_records.make(64, 1000))  # blocks until the reader process frees slots
    assert finish(reader) == {"first": 0, "count": 1064}
    info = ring.readers()[0]
    assert info.stalls >= 1 and ring.stats()["stalls"] >= 1


def test_reader_killed_with_sigkill_resumes_at_its_cursor(make_ring, peers) -> None:
    count = 200_000
    ring = make_ring("crash", 1024, readers=("victim",))
    reader = peers("read", ring.name, "victim", count, "--block", 8, "--pause-every", 512)
    writer = peers("write", ring.name, count, "--block", 64)
    wait_for(lambda: ring.readers()[0].cursor > 5_000)
    reader.send_signal(signal.SIGKILL)
    reader.wait(timeout=10)
    info = ring.readers()[0]
    assert not info.alive and info.name == "victim"
    cursor = info.cursor
    assert 0 < cursor < count
    restarted = peers("read", ring.name, "victim", count - cursor, "--block", 64)
    assert first_line(restarted) == {"started": cursor}
    finish(writer)
    assert finish(restarted) == {"first": cursor, "count": count - cursor}
    assert ring.readers()[0].cursor == count


def test_sleeping_reader_is_woken_by_the_writer(make_ring, peers) -> None:
    ring = make_ring("wake", 64, readers=("sleeper",))
    reader = peers("read", ring.name, "sleeper", 1, "--block", 0, "--wait", "sleep-forever")
    first_line(reader)
    wait_for(lambda: ring.readers()[0].asleep)
    writer = ring.writer()
    writer.put(ring_records.one(0))
    # The sleeper's own timeouts are an hour, so only the writer's post can wake it.
    assert finish(reader, timeout=20) == {"first": 0, "count": 1}
    assert ring.stats()["wakeups"] == 1


def test_dead_reader_is_detected_and_unregistered(make_ring, peers) -> None:
    ring = make_ring("dead", 16, readers=("ghost", "live"))
    writer = ring.writer()
    writer.write(ring_records.make(0, 4))
    ghost = peers("read", ring.name, "ghost", 1_000_000, "--block", 1)
    wait_for(lambda: ring.readers()[0].cursor == 4)
    ghost.kill()
    ghost.wait(timeout=10)
    live = ring.reader("live")
    drain(live, 4)
    writer.write(ring_records.make(4, 16))  # ghost's cursor 4 + capacity 16 allows up to 20
    drain(live, 16)
    info = next(r for r in ring.readers() if r.name == "ghost")
    assert (info.alive, info.cursor, info.lag) == (False, 4, 16)
    with pytest.raises(RingTimeout, match=r"ghost \(pid \d+, DEAD"):
        writer.put(ring_records.one(20), timeout=0.05)
    ring.unregister_reader("ghost")
    assert [r.name for r in ring.readers()] == ["live"]
    writer.put(ring_records.one(20), timeout=1.0)
    assert ring_records.check_one(live.get(timeout=1.0), 20) is None


def drain(reader, count: int) -> None:
    """Read and release `count` records in this process, checking them."""
    seen = 0
    while seen < count:
        view = reader.read(count - seen, timeout=1.0)
        assert ring_records.check(view, reader.cursor) is None
        reader.release(len(view))
        seen += len(view)


DOORBELL_ECHO = """
import sys
from ipc.doorbell import Doorbell, Inbox
from ipc.ring import Ring, WaitConfig
from tests.integration import ring_records

inputs, pong, bell = sys.argv[1].split(","), sys.argv[2], sys.argv[3]
only_posts = WaitConfig(spin_us=0, yield_count=0, sleep_timeout=3600.0, timeout=60.0)
doorbell = Doorbell.open(bell)
readers = [Ring.attach(n, ring_records.RECORD).reader("echo", only_posts, doorbell) for n in inputs]
inbox = Inbox(readers, doorbell, only_posts)
writer = Ring.attach(pong, ring_records.RECORD).writer()
print("ready", flush=True)
while True:  # killed by the test; a False wait is a stale post (woken by a re-check first)
    inbox.wait()
    for reader in readers:
        view = reader.read(64, timeout=0)
        if len(view):
            writer.write(view)
            reader.release(len(view))
"""


def test_a_process_sleeping_on_its_doorbell_is_woken_by_any_of_its_rings(
    make_ring, prefix: str
) -> None:
    """Three input rings, one sleeper that only a post can wake (its sleep slice is an hour):
    each record, on whichever ring, comes back. Then the sleeper is SIGKILLed asleep: the
    writers carry on (each posts its doorbell once, then finds its flag clear), and a restart
    under the same name reattaches to the doorbell and its cursors and answers what was written
    meanwhile."""
    inputs = [make_ring(f"in{i}", 16, readers=("echo",)) for i in range(3)]
    pong = make_ring("pong", 64, readers=("parent",))
    answers = pong.reader("parent")
    writers = [ring.writer() for ring in inputs]
    bell = f"{prefix}.bell.echo"
    code = [sys.executable, "-c", DOORBELL_ECHO, ",".join(r.name for r in inputs), pong.name, bell]

    def start() -> subprocess.Popen[str]:
        process = subprocess.Popen(code, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None and process.stdout.readline() == "ready\n"
        return process

    def asleep() -> bool:
        return all(next(r for r in ring.readers() if r.name == "echo").asleep for ring in inputs)

    echo = start()
    try:
        for seq in range(9):
            wait_for(asleep)
            writers[seq % 3].put(ring_records.one(seq))
            assert ring_records.check_one(answers.get(timeout=10.0), seq) is None
        wait_for(asleep)
        echo.kill()
        echo.wait(timeout=10)
        for seq in range(9, 9 + 3 * 16):  # fills every input ring: no wait, no error
            writers[seq % 3].put(ring_records.one(seq), timeout=0)
        assert posix_ipc.Semaphore(f"/{bell}").value == 3  # once per ring: then its flag is clear
        echo = start()
        got = sorted(int(answers.get(timeout=10.0)["seq"]) for _ in range(3 * 16))
        assert got == list(range(9, 9 + 3 * 16))
    finally:
        echo.kill()
        echo.wait(timeout=10)
        posix_ipc.unlink_semaphore(f"/{bell}")
