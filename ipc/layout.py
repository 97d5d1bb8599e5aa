"""Where everything lives in a ring segment, as indexes into its header viewed as int64 words.

    line 0-1  static header: magic, version, dtype fingerprint, capacity, record size, ...
    line 2    the writer: published sequence, pid, heartbeat, asleep flag, counters
    line 3+i  reader i: cursor, pid, heartbeat, asleep flag, registration token, counters
    then      reader names (64 bytes each), each reader's doorbell name (64 bytes each, empty
              when the reader sleeps on its own semaphore), the layout text (dtype.descr), then
              the slots

Each writer or reader line is 64 bytes so that a process's hot stores never share a cache line
with another process's. Slots start on a page boundary.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

MAGIC = 0x31474E4952584D53  # b"SMXRING1" read as a little-endian int64
VERSION = 2  # 2: a doorbell name per reader slot
LINE_WORDS = 8
NAME_BYTES = 64
PAGE = 4096

# Static header (lines 0-1): written once by the creator, except the registration fields.
MAGIC_WORD = 0
VERSION_WORD = 1
FINGERPRINT = 2
CAPACITY = 3
RECORD_SIZE = 4
MAX_READERS = 5
LAYOUT_LEN = 6
SLOTS_OFFSET = 7
CREATED_NS = 8
LOCK_OWNER = 9  # pid holding the registration lock, so a dead holder can be detected
GENERATION = 10  # bumped on every reader (un)registration; the writer rescans when it changes

# The writer's line.
WRITER_LINE = 16
PUBLISHED = WRITER_LINE + 0
WRITER_PID = WRITER_LINE + 1
WRITER_HEARTBEAT = WRITER_LINE + 2
WRITER_ASLEEP = WRITER_LINE + 3
WRITER_SLEEPS = WRITER_LINE + 4  # 1 if the writer may sleep, so readers must wake it
WRITER_STALLS = WRITER_LINE + 5
WRITER_WAKEUPS = WRITER_LINE + 6

# Offsets inside reader i's line, which starts at reader_line(i).
CURSOR = 0
PID = 1
HEARTBEAT = 2
ASLEEP = 3
TOKEN = 4  # 0 = free slot; otherwise the generation that registered it
SLEEPS = 5  # 1 if this reader may sleep, so the writer must wake it
STALLS = 6  # times the writer found the ring full because of this reader


def reader_line(index: int) -> int:
    """First header word of reader `index`'s line."""
    return WRITER_LINE + LINE_WORDS * (1 + index)


def layout_text(dtype: np.dtype) -> str:
    """The record layout as text, stored in the segment so that a mismatch can name it."""
    return repr(dtype.descr)


def fingerprint(dtype: np.dtype) -> int:
    """A stable 63-bit hash of the field layout and record size (not of numpy's object identity)."""
    text = f"{layout_text(dtype)}/{dtype.itemsize}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


@dataclass(frozen=True)
class Geometry:
    """Byte offsets of a ring's regions, derived from its capacity, record size and reader count."""

    capacity: int
    record_size: int
    max_readers: int
    layout_len: int

    @property
    def names_offset(self) -> int:
        return reader_line(self.max_readers) * 8

    @property
    def doorbells_offset(self) -> int:
        return self.names_offset + NAME_BYTES * self.max_readers

    @property
    def layout_offset(self) -> int:
        return self.doorbells_offset + NAME_BYTES * self.max_readers

    @property
    def slots_offset(self) -> int:
        end = self.layout_offset + self.layout_len
        return (end + PAGE - 1) // PAGE * PAGE

    @property
    def total_bytes(self) -> int:
        return self.slots_offset + self.capacity * self.record_size
