"""A named reader of a ring: read what is available as one view, then release it.

The cursor (next sequence to read) lives in the reader's own header line, so a reader that is
killed and restarted under the same name resumes exactly where it released. The published
sequence is loaded from shared memory only when the locally known records run out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import posix_ipc

from ipc import layout as L
from ipc.cpu import full_fence
from ipc.errors import IpcError
from ipc.layout import PUBLISHED, WRITER_ASLEEP, WRITER_SLEEPS
from ipc.liveness import now_ns
from ipc.wait import AsleepFlag, WaitConfig, Waiter

if TYPE_CHECKING:
    from ipc.ring import Ring

MAINTENANCE_EVERY = 1024  # refreshes between heartbeat/registration checks on a busy reader
ARENA_RECORDS = 1024  # get() copies per private arena
GET_BATCH = 256  # most records get() copies out of the ring at once


class RingReader:
    """Consumes a ring at its own pace; the writer waits for it when the ring is full."""

    def __init__(
        self,
        ring: Ring,
        slot: int,
        name: str,
        config: WaitConfig,
        semaphore: posix_ipc.Semaphore,
    ) -> None:
        """Made by Ring.reader(); starts at the slot's stored cursor and sleeps on `semaphore`
        (the slot's own, or the process's doorbell)."""
        self.name = name
        self.doorbell = ring.slot_doorbell(slot)
        """The doorbell this reader sleeps on ("" = the slot's own semaphore)."""
        self._ring = ring
        self._words = ring.words
        self._slots = ring.slots
        self._capacity = ring.capacity
        self._mask = ring.capacity - 1
        base = L.reader_line(slot)
        self._base = base
        self._cursor_word = base + L.CURSOR
        self._token = ring.words[base + L.TOKEN]
        self._cursor = ring.words[self._cursor_word]
        self._published = self._cursor
        self._held = 0
        self._countdown = 0
        self._writer_sleeps = ring.words[L.WRITER_SLEEPS]
        self._writer_semaphore = ring.writer_semaphore
        self._raw = ring.slots.view(np.dtype((np.void, ring.slots.dtype.itemsize)))
        self._arena = ring.slots[:0]
        self._arena_raw = self._raw[:0]
        self._arena_next = ARENA_RECORDS
        self._arena_shift = 0
        self._copied_from = 0
        self._copied_until = 0  # get() hands out copies of sequences [from, until)
        self._dtype = ring.slots.dtype
        self.asleep_flag: AsleepFlag = (ring.words, base + L.ASLEEP)
        """Where this reader announces it is asleep, for a process-wide wait (ipc/doorbell.py)."""
        self._waiter = Waiter(config, [self.asleep_flag], semaphore, self._maintain)

    @property
    def cursor(self) -> int:
        """Sequence of the next record this reader will see (= records released so far)."""
        return self._cursor

    @property
    def lag(self) -> int:
        """Records published but not yet released by this reader."""
        return self._words[PUBLISHED] - self._cursor

    def read(self, max_n: int = 1024, timeout: float | None = None) -> np.ndarray:
        """A read-only-by-convention view of 1..max_n contiguous records, or an empty view if
        none arrive within `timeout`. The records stay valid until release()."""
        cursor = self._cursor
        if (
            self._published - cursor < max_n
            and not self._has_data()
            and (timeout == 0 or not self._waiter.wait(self._has_data, timeout))
        ):
            self._held = 0
            return self._slots[:0]
        available = self._published - cursor
        start = cursor & self._mask
        count = min(max_n, available, self._capacity - start)
        self._held = count
        return self._slots[start : start + count]

    def release(self, k: int) -> None:
        """Hand the first k records of the last read() back to the writer."""
        if not 0 <= k <= self._held:
            raise ValueError(f"release({k}) but only {self._held} records are held")
        self._held -= k
        self._advance(self._cursor + k)

    def get(self, timeout: float | None = None) -> np.void | None:
        """The next record as a copy (already released), or None if none arrives in time.

        Copies land in a private arena that is never reused (a full one is replaced and freed
        once no record refers to it). When several records are waiting they are copied in
        one go, and later calls only hand out the copies: a raw copy of many records costs
        little more than one, and far less than building structured numpy records.
        """
        cursor = self._cursor
        if not self._copied_from <= cursor < self._copied_until and not self._copy_ahead(timeout):
            return None
        record = self._arena[cursor - self._arena_shift]
        self._held = 0
        cursor += 1  # _advance inlined: the call would cost ~10% of a get
        self._cursor = cursor
        self._words[self._cursor_word] = cursor
        if self._writer_sleeps:
            self._wake_writer()
        return record

    def ready(self) -> bool:
        """True if a record is waiting (never waits)."""
        return self._published > self._cursor or self._has_data()

    def beat(self) -> None:
        """Refresh the heartbeat and check the registration (a process-wide wait calls it)."""
        self._maintain()

    def close(self) -> None:
        """Stop reading but keep the registration: a reader of this name resumes here."""
        if self._words[self._base + L.TOKEN] == self._token:
            self._words[self._base + L.PID] = 0

    # -- internals ----------------------------------------------------------------------------

    def _advance(self, cursor: int) -> None:
        """Store the cursor, then wake the writer if it sleeps waiting for space."""
        self._cursor = cursor
        self._words[self._cursor_word] = cursor
        if self._writer_sleeps:
            self._wake_writer()

    def _wake_writer(self) -> None:
        full_fence()
        words = self._words
        if words[WRITER_ASLEEP]:
            words[WRITER_ASLEEP] = 0
            self._writer_semaphore.release()

    def _copy_ahead(self, timeout: float | None) -> bool:
        """Copy the waiting records (contiguous, up to GET_BATCH) into the arena for get()."""
        cursor = self._cursor
        if (
            cursor >= self._published
            and not self._has_data()
            and not self._waiter.wait(self._has_data, timeout)
        ):
            return False
        if self._arena_next == ARENA_RECORDS:
            self._new_arena()
        start = cursor & self._mask
        count = min(
            self._published - cursor,
            self._capacity - start,
            ARENA_RECORDS - self._arena_next,
            GET_BATCH,
        )
        first = self._arena_next
        if count == 1:  # the common case when keeping up: an item copy beats two slices
            self._arena_raw[first] = self._raw[start]
        else:
            self._arena_raw[first : first + count] = self._raw[start : start + count]
        self._arena_next = first + count
        self._arena_shift = cursor - first
        self._copied_from = cursor
        self._copied_until = cursor + count
        return True

    def _new_arena(self) -> None:
        """A fresh arena for get()'s copies; also the busy reader's maintenance point."""
        self._arena = np.empty(ARENA_RECORDS, self._dtype)
        self._arena_raw = self._arena.view(self._raw.dtype)
        self._arena_next = 0
        self._maintain()

    def _has_data(self) -> bool:
        """Load the published sequence and whether the writer may sleep (a writer that attached
        after this reader must be woken from its first stall); every MAINTENANCE_EVERY loads,
        also beat and check the registration."""
        words = self._words
        published = words[PUBLISHED]
        self._published = published
        self._writer_sleeps = words[WRITER_SLEEPS]
        self._countdown -= 1
        if self._countdown <= 0:
            self._maintain()
        return published > self._cursor

    def _maintain(self) -> None:
        """Beat the heartbeat, and check we are still registered
        and not overrun (which only a forced unregister can cause)."""
        self._countdown = MAINTENANCE_EVERY
        words = self._words
        if words[self._base + L.TOKEN] != self._token:
            raise IpcError(f"reader {self.name!r} of ring {self._ring.name} was unregistered")
        if words[PUBLISHED] - self._cursor > self._capacity:
            raise IpcError(f"reader {self.name!r} of ring {self._ring.name} was overrun")
        words[self._base + L.HEARTBEAT] = now_ns()
