"""monitor/collector without a supervisor: pid files, real rings (replaced ones too), rates."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ipc import records
from ipc.ring import Ring
from monitor.collector import Collector, CollectorConfig, fd_counts


def _publish(ring: Ring, count: int) -> None:
    batch = records.new_batch(records.EXEC, count)
    batch["seq"] = np.arange(1, count + 1)
    writer = ring.writer()
    writer.write(batch, timeout=5)
    writer.close()


def test_pid_files_stand_in_for_a_missing_supervisor(tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "recorder.pid").write_text(f"{sleeper.pid}\n")
        (tmp_path / "matching.0.pid").write_text("999999999\n")
        (tmp_path / "journal").mkdir()
        (tmp_path / "journal" / "seg1").write_bytes(b"x" * 1000)
        config = CollectorConfig(control_timeout_s=0.05)
        with Collector("shmex_none", tmp_path, config) as collector:
            sample = collector.sample()
    finally:
        sleeper.kill()
        sleeper.wait(10)
    rows = {p.name: p for p in sample.processes}
    assert not sample.supervisor_up and rows["supervisor"].state == "down"
    assert rows["recorder"].up and rows["recorder"].state == "unsupervised"
    assert (
        rows["recorder"].rss_bytes and rows["recorder"].threads and rows["recorder"].status is None
    )
    assert rows["matching.0"].state == "down" and rows["matching.0"].pid is None
    assert sample.disk.journal_bytes == 1000 and sample.disk.free_bytes > 0
    down = {a.subject for a in sample.alerts if a.rule == "process_down"}
    assert down == {"supervisor", "matching.0"}


def test_rates_and_a_replaced_ring(prefix: str, tmp_path: Path) -> None:
    name = f"{prefix}.execs.0"
    ring = Ring.create(name, records.EXEC, 256)
    config = CollectorConfig(control_timeout_s=0.05)
    try:
        with Collector(prefix, tmp_path, config) as collector:
            first = collector.sample()
            assert [r.name for r in first.rings] == ["execs.0"]
            _publish(ring, 40)
            time.sleep(0.05)
            second = collector.sample()
            assert second.rings[0].published == 40 and second.rings[0].rate > 0
            assert second.throughput == second.rings[0].rate
            ring.close()
            ring.unlink()
            ring = Ring.create(name, records.EXEC, 512)
            third = collector.sample()
            assert third.rings[0].published == 0 and third.rings[0].capacity == 512
    finally:
        ring.close()
        ring.unlink()


def test_fd_counts_see_a_new_file_and_a_new_socket(tmp_path: Path) -> None:
    before = fd_counts(os.getpid())
    assert before is not None
    with open(tmp_path / "held", "wb"), socket.socket():
        during = fd_counts(os.getpid())
    assert during is not None
    fds, files, sockets = (now - then for now, then in zip(during, before, strict=True))
    assert (fds, files, sockets) == (2, 1, 1)
    assert fd_counts(999_999_999) is None


def test_a_process_row_counts_its_sockets(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import socket, time; s = socket.socket(); time.sleep(60)"]
    )
    try:
        (tmp_path / "recorder.pid").write_text(f"{holder.pid}\n")
        with Collector("shmex_none", tmp_path, CollectorConfig(control_timeout_s=0.05)) as c:
            deadline = time.monotonic() + 10
            row = c.sample().process("recorder")
            while row is not None and not row.connections and time.monotonic() < deadline:
                time.sleep(0.05)  # the child has not opened its socket yet
                row = c.sample().process("recorder")
    finally:
        holder.kill()
        holder.wait(10)
    assert row is not None and row.connections == 1 and row.fds is not None and row.fds >= 4
