"""Recovery = the newest usable checkpoint + the journal records after it.

Every stateful process starts here, after a crash or a clean stop alike (crash-only design):
`plan_recovery` picks the checkpoint and `RecoveryPlan.replay()` yields the journal tail to feed
through the same engine code as live traffic. A checkpoint that claims records the journal does
not hold (possible only if the journal was not flushed before the checkpoint was written, then
the machine crashed) is passed over for an older one, never trusted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from storage import segment
from storage.checkpoint import list_checkpoints, read_checkpoint
from storage.errors import JournalGap
from storage.journal import read_journal

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecoveryPlan:
    """Where recovery starts: `state` as of `checkpoint_seq` (0 and None: from empty)."""

    journal_dir: Path
    checkpoint_seq: int
    state: bytes | None
    journal_last_seq: int

    def replay(self) -> Iterator[tuple[int, bytes]]:
        """The journal records after the checkpoint, in order."""
        if self.journal_last_seq > self.checkpoint_seq:
            yield from read_journal(self.journal_dir, self.checkpoint_seq + 1)


def plan_recovery(checkpoint_dir: Path | str, name: str, journal_dir: Path | str) -> RecoveryPlan:
    """Choose the newest valid checkpoint of `name` that the journal can continue from.

    Raises `JournalGap` if no checkpoint fits and the journal no longer starts at 1.
    """
    journal_dir = Path(journal_dir)
    last = journal_last_seq(journal_dir)
    segments = segment.list_segments(journal_dir)
    first_kept = segments[0][0] if segments else last + 1
    for seq, path in reversed(list_checkpoints(checkpoint_dir, name)):
        if seq > last:
            log.warning("checkpoint %s is ahead of the journal (last %d); skipped", path, last)
            continue
        if seq + 1 < first_kept:
            break  # older checkpoints are even further behind the retained journal
        payload = read_checkpoint(path, seq)
        if payload is not None:
            return RecoveryPlan(journal_dir, seq, payload, last)
    if first_kept > 1:
        raise JournalGap(
            f"no checkpoint of {name!r} at or after seq {first_kept - 1}, and the journal in "
            f"{journal_dir} starts at {first_kept}: records before it are gone"
        )
    return RecoveryPlan(journal_dir, 0, None, last)


def journal_last_seq(directory: Path | str) -> int:
    """The sequence of the journal's last valid record (0 if empty); reads, never repairs."""
    segments = segment.list_segments(Path(directory))
    if not segments:
        return 0
    first, path = segments[-1]
    return first + segment.scan_segment(path, first, last=True).count - 1
