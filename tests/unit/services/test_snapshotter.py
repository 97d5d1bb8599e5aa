"""Snapshotter with real forked children: a checkpoint child that fails is reaped, logged and
counted, the parent goes on, and the next checkpoint succeeds once the cause is gone."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from services.recovery import Snapshotter

WAIT_S = 30.0


def _reap(snapshots: Snapshotter) -> None:
    """Wait (bounded) until the child has been reaped by `poll`."""
    deadline = time.monotonic() + WAIT_S
    while snapshots.poll():
        assert time.monotonic() < deadline, "checkpoint child never exited"
        time.sleep(0.01)


def _write_to(path: Path) -> None:
    path.write_text("checkpoint\n")


def test_a_raising_write_is_counted_as_failed_and_the_next_one_succeeds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    snapshots = Snapshotter("accounts")
    target = tmp_path / "missing" / "accounts-5.ckpt"  # its directory does not exist yet
    with caplog.at_level(logging.ERROR, logger="services.recovery"):
        assert snapshots.start(5, lambda: _write_to(target))
        assert snapshots.child and snapshots.seq == 5
        _reap(snapshots)
    assert (snapshots.written, snapshots.failed, snapshots.child) == (0, 1, 0)
    assert not target.exists()
    assert "accounts at 5 failed (exit 1)" in caplog.text

    target.parent.mkdir()  # the cause is gone
    assert snapshots.start(9, lambda: _write_to(target))
    assert not snapshots.poll(block=True)
    assert (snapshots.written, snapshots.failed, snapshots.seq) == (1, 1, 9)
    assert target.read_text() == "checkpoint\n"


def test_a_child_exiting_non_zero_is_counted_as_failed(tmp_path: Path) -> None:
    snapshots = Snapshotter("matching-0")
    assert snapshots.start(3, lambda: os._exit(7))
    assert not snapshots.poll(block=True)
    assert (snapshots.written, snapshots.failed) == (0, 1)


def test_a_checkpoint_due_while_one_is_written_is_skipped(tmp_path: Path) -> None:
    snapshots = Snapshotter("accounts")
    release = tmp_path / "release"

    def slow_write() -> None:
        deadline = time.monotonic() + WAIT_S
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not release.exists():
            raise TimeoutError("never released")

    assert snapshots.start(1, slow_write)
    try:
        assert not snapshots.start(2, lambda: None)  # still writing the first
        assert snapshots.seq == 1
    finally:
        release.touch()
        _reap(snapshots)
    assert (snapshots.written, snapshots.failed) == (1, 0)
    assert snapshots.start(2, lambda: None)
    assert not snapshots.poll(block=True)
    assert (snapshots.written, snapshots.failed, snapshots.seq) == (2, 0, 2)
