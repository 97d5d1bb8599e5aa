"""The single writer of a ring: reserve slots, fill them, publish; or copy a batch; or put one.

Hot path: the writer keeps its sequence and a space limit (lowest reader cursor + capacity) in
Python ints, so a put is one slot store, one 8-byte sequence store and one comparison. The
readers' cursors are scanned only when the limit is reached.

Wake-ups: each sleeping reader is posted on what it sleeps on, its slot's semaphore or its
process's doorbell (ipc/doorbell.py). Readers that share a doorbell form one group, posted once
per publish however many of them are asleep.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING

import numpy as np
import posix_ipc

from ipc import layout as L
from ipc.cpu import full_fence
from ipc.doorbell import Doorbell
from ipc.errors import RingMismatch, RingTimeout
from ipc.layout import GENERATION, PUBLISHED, WRITER_WAKEUPS
from ipc.liveness import now_ns
from ipc.wait import WaitConfig, Waiter

if TYPE_CHECKING:
    from ipc.ring import Ring

log = logging.getLogger(__name__)

Sleepers = tuple[tuple[tuple[int, ...], posix_ipc.Semaphore], ...]
"""Per wake-up semaphore, the asleep words of the readers that sleep on it."""


class RingWriter:
    """Appends records; blocks (bounded) while the slowest registered reader holds the ring full."""

    def __init__(self, ring: Ring, config: WaitConfig) -> None:
        """Made by Ring.writer(); resumes at the published sequence stored in the ring."""
        self._ring = ring
        self._words = ring.words
        self._slots = ring.slots
        self._raw = ring.slots.view(np.dtype((np.void, ring.slots.dtype.itemsize)))
        self._dtype = ring.slots.dtype
        self._capacity = ring.capacity
        self._mask = ring.capacity - 1
        self._seq = ring.words[PUBLISHED]
        self._limit = 0  # forces a scan of the readers before the first write
        self._reserved = 0
        self._generation = -1
        self._cursor_words: tuple[int, ...] = ()
        self._sleepers: Sleepers = ()
        self._doorbells: dict[str, Doorbell] = {}
        self._waiter = Waiter(
            config, [(ring.words, L.WRITER_ASLEEP)], ring.writer_semaphore, self._beat
        )

    @property
    def published(self) -> int:
        """Total records published to this ring (by any writer, ever)."""
        return self._seq

    def put(self, record: tuple | np.void, timeout: float | None = None) -> None:
        """Publish one record: a np.void of the ring's dtype (fastest) or a tuple in field order."""
        seq = self._seq
        if seq >= self._limit:
            self._wait_space(timeout)
        if type(record) is tuple:
            self._slots[seq & self._mask] = record
        elif record.dtype is self._dtype or record.dtype == self._dtype:
            self._raw[seq & self._mask] = record  # a byte copy: no per-field conversion
        else:
            raise RingMismatch(f"ring {self._ring.name} holds {self._dtype}, not {record.dtype}")
        seq += 1  # _commit inlined: the call would cost ~10% of a put
        self._seq = seq
        words = self._words
        words[PUBLISHED] = seq
        if words[GENERATION] != self._generation or self._sleepers:
            self._after_publish()

    def reserve(self, n: int, timeout: float | None = None) -> np.ndarray:
        """A writable view of 1..n free contiguous slots (shorter at the ring's end or when the
        readers hold the rest); waits for at least one. Fill it, then publish(k)."""
        start, count = self._claim(n, timeout)
        self._reserved = count
        return self._slots[start : start + count]

    def publish(self, k: int) -> None:
        """Make the first k reserved records visible to the readers."""
        if not 0 <= k <= self._reserved:
            raise ValueError(f"publish({k}) but only {self._reserved} slots are reserved")
        self._reserved = 0
        if k:
            self._commit(self._seq + k)

    def write(self, records: np.ndarray, timeout: float | None = None) -> None:
        """Copy a batch in, wrapping and waiting for space as needed (each wait bounded).

        Copies raw bytes: numpy's field-by-field structured copy is ~20x slower.
        """
        if records.dtype != self._dtype:
            raise RingMismatch(f"ring {self._ring.name} holds {self._dtype}, not {records.dtype}")
        raw = np.ascontiguousarray(records).view(self._raw.dtype)
        done = 0
        total = len(raw)
        while done < total:
            start, count = self._claim(total - done, timeout)
            self._raw[start : start + count] = raw[done : done + count]
            self._commit(self._seq + count)
            done += count

    def close(self) -> None:
        """Give up the writer role (the published sequence stays for the next writer)."""
        if self._words[L.WRITER_PID] == os.getpid():
            self._words[L.WRITER_PID] = 0
        self._close_doorbells()

    # -- internals ----------------------------------------------------------------------------

    def _claim(self, n: int, timeout: float | None) -> tuple[int, int]:
        """Wait for space; return the first free slot's index and how many follow it (<= n)."""
        seq = self._seq
        if self._limit - seq < n and not self._has_space():  # the cached limit may be stale
            self._wait_space(timeout)
        start = seq & self._mask
        return start, min(n, self._limit - seq, self._capacity - start)

    def _commit(self, seq: int) -> None:
        """Store the new published sequence (after the payload), then wake sleeping readers."""
        self._seq = seq
        words = self._words
        words[PUBLISHED] = seq
        if words[GENERATION] != self._generation or self._sleepers:
            self._after_publish()

    def _after_publish(self) -> None:
        """Rescan the readers if one (un)registered; post each semaphore (slot or doorbell)
        that a sleeping reader waits on, once, clearing the asleep words of its group."""
        words = self._words
        if words[GENERATION] != self._generation:
            self._scan_readers()
        if self._sleepers:
            full_fence()
            for asleep_words, semaphore in self._sleepers:
                for asleep_word in asleep_words:
                    if words[asleep_word]:
                        for word in asleep_words:
                            words[word] = 0
                        semaphore.release()
                        words[WRITER_WAKEUPS] += 1
                        break

    def _wait_space(self, timeout: float | None) -> None:
        """Wait until a slot is free; counts a stall and raises RingTimeout at the deadline."""
        if self._has_space():
            return
        self._count_stall()
        started = time.perf_counter()
        if not self._waiter.wait(self._has_space, timeout):
            waited = time.perf_counter() - started
            raise RingTimeout(f"ring {self._ring.name}: {self._describe_block(waited)}")

    def _has_space(self) -> bool:
        """Recompute the space limit from the readers' cursors (the slow path)."""
        full_fence()
        words = self._words
        if words[GENERATION] != self._generation:
            self._scan_readers()
        low = self._seq
        for cursor_word in self._cursor_words:
            cursor = words[cursor_word]
            if cursor < low:
                low = cursor
        self._limit = low + self._capacity
        words[L.WRITER_HEARTBEAT] = now_ns()
        return self._seq < self._limit

    def _scan_readers(self) -> None:
        """Rebuild the list of registered readers after a (un)registration."""
        words = self._words
        self._generation = words[GENERATION]
        self._close_doorbells()  # reopened by name: a restarted reader may have a new one
        cursors = []
        groups: dict[str, list[int]] = {}
        semaphores: dict[str, posix_ipc.Semaphore] = {}
        for slot in range(self._ring.max_readers):
            base = L.reader_line(slot)
            if not words[base + L.TOKEN]:
                continue
            cursors.append(base + L.CURSOR)
            if not words[base + L.SLEEPS]:
                continue
            doorbell = self._ring.slot_doorbell(slot)
            key = doorbell or f"slot {slot}"
            semaphore = self._doorbell(doorbell) if doorbell else self._ring.reader_semaphores[slot]
            if semaphore is not None:
                semaphores[key] = semaphore
                groups.setdefault(key, []).append(base + L.ASLEEP)
        self._cursor_words = tuple(cursors)
        self._sleepers = tuple((tuple(group), semaphores[key]) for key, group in groups.items())

    def _close_doorbells(self) -> None:
        for doorbell in self._doorbells.values():
            doorbell.close()
        self._doorbells.clear()

    def _doorbell(self, name: str) -> posix_ipc.Semaphore | None:
        """The open doorbell `name` (kept open while a reader names it); None if it is gone, so
        that reader is woken only by its own sleep timeout."""
        doorbell = self._doorbells.get(name)
        if doorbell is None:
            try:
                doorbell = self._doorbells[name] = Doorbell.attach(name)
            except posix_ipc.ExistentialError:
                log.debug("ring %s: doorbell %s is gone (its reader exited)", self._ring.name, name)
                return None
        return doorbell.semaphore

    def _count_stall(self) -> None:
        """Count a full ring, against the writer and against the reader(s) at the lowest cursor."""
        words = self._words
        words[L.WRITER_STALLS] += 1
        low = self._limit - self._capacity
        for cursor_word in self._cursor_words:
            if words[cursor_word] == low:
                words[cursor_word - L.CURSOR + L.STALLS] += 1

    def _describe_block(self, waited: float) -> str:
        laggards = [
            f"{r.name} (pid {r.pid}, {'alive' if r.alive else 'DEAD'}, cursor {r.cursor})"
            for r in self._ring.readers()
            if r.cursor + self._capacity <= self._seq
        ]
        return (
            f"writer waited {waited:.3f}s for space at sequence {self._seq}; "
            f"held by {', '.join(laggards) or 'no reader (released meanwhile)'}"
        )

    def _beat(self) -> None:
        self._words[L.WRITER_HEARTBEAT] = now_ns()
