"""The storage package's exceptions: one root, each mixed with the builtin it behaves like.

A caller that only knows builtins still catches the right thing (`except OSError` sees a failed
journal write); a caller that knows storage catches `StorageError`.
"""

from __future__ import annotations

from pathlib import Path


class StorageError(Exception):
    """Root of every storage failure."""


class JournalError(StorageError, OSError):
    """The journal could not write or sync: nothing after the last durable sequence is safe.

    After this is raised the journal refuses every further append until it is reopened, so a
    caller can never be told "accepted" for a record that did not reach the disk.
    """


class JournalCorruption(StorageError, ValueError):
    """A record in the middle of the journal is damaged; recovery must stop here.

    Carries the segment file and byte offset so an operator can inspect or cut the file by hand.
    """

    def __init__(self, path: Path, offset: int, reason: str) -> None:
        super().__init__(f"journal corrupt in {path} at offset {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason


class JournalGap(StorageError, LookupError):
    """The records asked for are not in the journal (deleted by retention, or a segment missing)."""


class CheckpointError(StorageError, OSError):
    """A checkpoint could not be written."""
