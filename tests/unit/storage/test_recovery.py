"""Recovery planning: newest usable checkpoint + the journal after it, or a clear refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.checkpoint import write_checkpoint
from storage.errors import JournalGap
from storage.journal import Journal, JournalConfig
from storage.recovery import journal_last_seq, plan_recovery


def fill(journal_dir: Path, count: int, segment_bytes: int = 1 << 20) -> None:
    with Journal.open(journal_dir, JournalConfig(segment_bytes=segment_bytes)) as journal:
        for n in range(count):
            journal.append(b"command %d" % n)


def test_no_checkpoint_replays_everything(tmp_path: Path) -> None:
    fill(tmp_path / "journal", 5)
    plan = plan_recovery(tmp_path / "ckpt", "accounts", tmp_path / "journal")
    assert (plan.checkpoint_seq, plan.state, plan.journal_last_seq) == (0, None, 5)
    assert [seq for seq, _ in plan.replay()] == [1, 2, 3, 4, 5]


def test_empty_everything(tmp_path: Path) -> None:
    plan = plan_recovery(tmp_path / "ckpt", "accounts", tmp_path / "journal")
    assert (plan.checkpoint_seq, plan.state, list(plan.replay())) == (0, None, [])
    assert journal_last_seq(tmp_path / "journal") == 0


def test_checkpoint_then_tail(tmp_path: Path) -> None:
    fill(tmp_path / "journal", 10)
    write_checkpoint(tmp_path / "ckpt", "accounts", 4, b"state@4")
    write_checkpoint(tmp_path / "ckpt", "accounts", 7, b"state@7")
    plan = plan_recovery(tmp_path / "ckpt", "accounts", tmp_path / "journal")
    assert (plan.checkpoint_seq, plan.state) == (7, b"state@7")
    assert [p for _, p in plan.replay()] == [b"command 7", b"command 8", b"command 9"]


def test_checkpoint_ahead_of_the_journal_is_passed_over(tmp_path: Path) -> None:
    fill(tmp_path / "journal", 10)
    write_checkpoint(tmp_path / "ckpt", "matching", 6, b"state@6")
    write_checkpoint(tmp_path / "ckpt", "matching", 12, b"state@12")  # journal lost 11..12
    plan = plan_recovery(tmp_path / "ckpt", "matching", tmp_path / "journal")
    assert (plan.checkpoint_seq, plan.state) == (6, b"state@6")


def test_damaged_newest_checkpoint_falls_back(tmp_path: Path) -> None:
    fill(tmp_path / "journal", 10)
    write_checkpoint(tmp_path / "ckpt", "accounts", 3, b"state@3")
    newest = write_checkpoint(tmp_path / "ckpt", "accounts", 9, b"state@9")
    newest.write_bytes(newest.read_bytes()[:-1])
    plan = plan_recovery(tmp_path / "ckpt", "accounts", tmp_path / "journal")
    assert plan.checkpoint_seq == 3
    assert len(list(plan.replay())) == 7


def test_retention_without_a_fitting_checkpoint_is_refused(tmp_path: Path) -> None:
    journal_dir = tmp_path / "journal"
    fill(journal_dir, 300, segment_bytes=1024)
    write_checkpoint(tmp_path / "ckpt", "accounts", 250, b"state@250")
    with Journal.open(journal_dir, JournalConfig(segment_bytes=1024)) as journal:
        assert journal.retain(250, keep_segments=1)
    assert plan_recovery(tmp_path / "ckpt", "accounts", journal_dir).checkpoint_seq == 250
    (tmp_path / "ckpt" / "accounts.00000000000000000250.ckpt").unlink()
    with pytest.raises(JournalGap, match="starts at"):
        plan_recovery(tmp_path / "ckpt", "accounts", journal_dir)
