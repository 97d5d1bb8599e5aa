"""A shared-memory ring: one writer, up to `max_readers` named readers, fixed-size numpy records.

The segment outlives its processes: a writer or reader that restarts re-attaches and carries on
from the sequence stored in the header. The writer never overwrites a slot that a registered
reader has not released (a full ring is back-pressure), so a dead reader holds the writer back
until it restarts or is unregistered (`Ring.unregister_reader`). See ipc/layout.py for the
byte layout and ipc/wait.py for how endpoints wait.

    ring = Ring.create("shmex_x.orders", ORDER, 4096)      # or Ring.attach(name, ORDER)
    writer = ring.writer()
    view = writer.reserve(64); fill(view); writer.publish(len(view))    # or writer.write(batch)
    reader = ring.reader("matching")                        # named: a restart resumes here
    batch = reader.read(1024, timeout=0.1); handle(batch.tolist()); reader.release(len(batch))

A process that reads several rings passes its Doorbell to every `reader(...)` and waits on all
of them at once with an `Inbox` (ipc/doorbell.py).

Each endpoint belongs to one thread. A timeout of None means the endpoint's
WaitConfig.timeout; 0 means do not wait; math.inf waits forever.
"""

from __future__ import annotations

import logging
import mmap
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import posix_ipc

from ipc import layout as L
from ipc import shm
from ipc.cpu import full_fence, require_x86_64
from ipc.doorbell import Doorbell
from ipc.errors import IpcError, RingExists, RingMismatch, RingMissing
from ipc.liveness import now_ns, pid_alive
from ipc.reader import RingReader
from ipc.shm import unlink_prefix
from ipc.wait import WaitConfig
from ipc.writer import RingWriter

__all__ = [
    "ReaderInfo",
    "Ring",
    "RingReader",
    "RingWriter",
    "WaitConfig",
    "unlink_prefix",
]

log = logging.getLogger(__name__)

ATTACH_TIMEOUT = 2.0  # seconds to wait for a creator that has made the segment but not its header
LOCK_TIMEOUT = 2.0  # seconds before the registration lock is presumed held by a dead process
MAX_READERS_LIMIT = 64


@dataclass(frozen=True)
class ReaderInfo:
    """One registered reader, as the header shows it."""

    name: str
    pid: int
    heartbeat_ns: int
    cursor: int
    lag: int
    alive: bool
    asleep: bool
    stalls: int
    doorbell: str  # "" when the reader sleeps on its slot's own semaphore


class Ring:
    """A mapped ring segment; make endpoints with `writer()` and `reader(name)`."""

    def __init__(self, name: str, dtype: np.dtype, segment: mmap.mmap) -> None:
        """Wrap an already initialised segment (use create/attach/open_or_create)."""
        self.name = name
        self.dtype = dtype
        self._segment = segment
        self._closed = False
        self._memory = memoryview(segment)
        static = self._memory[: L.WRITER_LINE * 8].cast("q")
        geometry = _geometry_of(static)
        static.release()
        self.capacity = geometry.capacity
        self.max_readers = geometry.max_readers
        self.words = self._memory[: geometry.names_offset].cast("q")
        self._names = self._memory[geometry.names_offset : geometry.doorbells_offset]
        self._doorbells = self._memory[geometry.doorbells_offset : geometry.layout_offset]
        self.slots_offset = geometry.slots_offset
        self.slots = np.frombuffer(segment, dtype, count=self.capacity, offset=self.slots_offset)
        self.lock_semaphore = posix_ipc.Semaphore(shm.lock_semaphore_name(name))
        self.writer_semaphore = posix_ipc.Semaphore(shm.writer_semaphore_name(name))
        self.reader_semaphores = [
            posix_ipc.Semaphore(shm.reader_semaphore_name(name, i)) for i in range(self.max_readers)
        ]

    # -- creating and attaching -------------------------------------------------------------

    @classmethod
    def create(cls, name: str, dtype: np.dtype, capacity: int, *, max_readers: int = 8) -> Ring:
        """Create a new ring; RingExists if a segment of that name is already there."""
        require_x86_64()
        shm.check_name(name)
        dtype = np.dtype(dtype)
        if capacity < 2 or capacity & (capacity - 1):
            raise ValueError(f"ring capacity must be a power of two >= 2, not {capacity}")
        if not 1 <= max_readers <= MAX_READERS_LIMIT:
            raise ValueError(f"max_readers must be 1..{MAX_READERS_LIMIT}, not {max_readers}")
        text = L.layout_text(dtype).encode()
        geometry = L.Geometry(capacity, dtype.itemsize, max_readers, len(text))
        try:
            segment = shm.create_segment(name, geometry.total_bytes)
        except posix_ipc.ExistentialError:
            raise RingExists(f"ring {name} already exists") from None
        shm.create_semaphore(shm.lock_semaphore_name(name), 1).close()
        for sem_name in shm.semaphore_names(name, max_readers)[1:]:
            shm.create_semaphore(sem_name, 0).close()
        words = memoryview(segment)[: L.WRITER_LINE * 8].cast("q")
        words[L.VERSION_WORD] = L.VERSION
        words[L.FINGERPRINT] = L.fingerprint(dtype)
        words[L.CAPACITY] = capacity
        words[L.RECORD_SIZE] = dtype.itemsize
        words[L.MAX_READERS] = max_readers
        words[L.LAYOUT_LEN] = len(text)
        words[L.SLOTS_OFFSET] = geometry.slots_offset
        words[L.CREATED_NS] = time.time_ns()
        segment[geometry.layout_offset : geometry.layout_offset + len(text)] = text
        words[L.MAGIC_WORD] = L.MAGIC  # last: attachers wait for it (x86-64 keeps store order)
        words.release()
        log.debug("created ring %s: %d x %d bytes", name, capacity, dtype.itemsize)
        return cls(name, dtype, segment)

    @classmethod
    def attach(cls, name: str, dtype: np.dtype) -> Ring:
        """Map an existing ring; RingMismatch if it holds another layout or format version."""
        require_x86_64()
        shm.check_name(name)
        dtype = np.dtype(dtype)
        segment = _open_initialised(name)
        try:
            _check_header(name, segment, dtype)
            return cls(name, dtype, segment)
        except BaseException:
            segment.close()
            raise

    @classmethod
    def open_or_create(
        cls, name: str, dtype: np.dtype, capacity: int, max_readers: int = 8
    ) -> Ring:
        """Attach to the ring if it exists, else create it (safe when two processes race)."""
        try:
            return cls.attach(name, dtype)
        except RingMissing:
            pass
        try:
            return cls.create(name, dtype, capacity, max_readers=max_readers)
        except RingExists:
            return cls.attach(name, dtype)

    def close(self) -> None:
        """Unmap the segment (it stays in /dev/shm; see unlink). Endpoints stop working."""
        if self._closed:
            return
        self._closed = True
        for sem in (self.lock_semaphore, self.writer_semaphore, *self.reader_semaphores):
            sem.close()
        self._names.release()
        self._doorbells.release()
        self.words.release()
        self._memory.release()
        del self.slots
        try:
            self._segment.close()
        except BufferError:
            log.debug("ring %s: views still in use; unmapped when they are freed", self.name)

    def unlink(self) -> None:
        """Remove the segment and its semaphores from the system (mapped views stay valid)."""
        shm.unlink_ring(self.name, self.max_readers)

    def __enter__(self) -> Ring:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- endpoints --------------------------------------------------------------------------

    def writer(self, wait: WaitConfig | None = None) -> RingWriter:
        """Become the ring's single writer (refused while another live process is)."""
        with self._registration():
            pid = self.words[L.WRITER_PID]
            if pid and pid != os.getpid() and pid_alive(pid):
                raise IpcError(f"ring {self.name} already has a live writer, pid {pid}")
            config = wait or WaitConfig()
            self.words[L.WRITER_PID] = os.getpid()
            self.words[L.WRITER_HEARTBEAT] = now_ns()
            self.words[L.WRITER_ASLEEP] = 0
            self.words[L.WRITER_SLEEPS] = int(config.sleep)
        return RingWriter(self, config)

    def reader(
        self, name: str, wait: WaitConfig | None = None, doorbell: Doorbell | None = None
    ) -> RingReader:
        """Register the named reader, or take over its existing slot (resuming at its cursor).

        With a doorbell the reader sleeps on it (and the writer posts it) instead of on its
        slot's own semaphore, so one process can sleep on all its rings at once.
        """
        encoded = name.encode()
        if not encoded or len(encoded) >= L.NAME_BYTES:
            raise ValueError(f"reader name must be 1..{L.NAME_BYTES - 1} bytes, not {name!r}")
        config = wait or WaitConfig()
        with self._registration():
            slot = self._find_reader(name)
            if slot is None:
                slot = self._register_new(encoded, config, doorbell)
            else:
                self._reattach(slot, name, config, doorbell)
        semaphore = self.reader_semaphores[slot] if doorbell is None else doorbell.semaphore
        return RingReader(self, slot, name, config, semaphore)

    # -- readers and statistics -------------------------------------------------------------

    def readers(self) -> list[ReaderInfo]:
        """Every registered reader, with its position and liveness."""
        words = self.words
        published = words[L.PUBLISHED]
        infos = []
        for slot in self._registered_slots():
            base = L.reader_line(slot)
            pid = words[base + L.PID]
            cursor = words[base + L.CURSOR]
            infos.append(
                ReaderInfo(
                    name=self._slot_name(slot),
                    pid=pid,
                    heartbeat_ns=words[base + L.HEARTBEAT],
                    cursor=cursor,
                    lag=published - cursor,
                    alive=pid_alive(pid),
                    asleep=bool(words[base + L.ASLEEP]),
                    stalls=words[base + L.STALLS],
                    doorbell=self.slot_doorbell(slot),
                )
            )
        return infos

    def unregister_reader(self, name: str, *, force: bool = False) -> None:
        """Free a reader's slot so it stops holding the writer back.

        Refused for a live reader unless force=True (its later cursor stores would land in a
        slot that may be given to another reader).
        """
        with self._registration():
            slot = self._find_reader(name)
            if slot is None:
                raise IpcError(f"ring {self.name} has no reader {name!r}")
            base = L.reader_line(slot)
            pid = self.words[base + L.PID]
            if pid_alive(pid) and not force:
                raise IpcError(f"reader {name!r} of ring {self.name} is alive (pid {pid})")
            doorbell = self.slot_doorbell(slot)
            self.words[base + L.TOKEN] = 0
            self.words[base + L.PID] = 0
            self.words[L.GENERATION] += 1
            self._names[slot * L.NAME_BYTES : (slot + 1) * L.NAME_BYTES] = bytes(L.NAME_BYTES)
            self._set_doorbell(slot, None)
        self._wake_reader(slot, doorbell)
        if self.words[L.WRITER_ASLEEP]:
            self.writer_semaphore.release()
        log.info("ring %s: unregistered reader %s (pid %d)", self.name, name, pid)

    def unregister_dead_readers(self, keep: Callable[[str], bool]) -> list[ReaderInfo]:
        """Unregister every reader whose process is gone, except those `keep(name)` says will
        come back (their restart resumes at the cursor); returns the ones removed."""
        dropped = [r for r in self.readers() if not r.alive and not keep(r.name)]
        for info in dropped:
            self.unregister_reader(info.name)
        return dropped

    def objects(self) -> list[str]:
        """This ring's entries in /dev/shm (segment and semaphores)."""
        return shm.ring_objects(self.name, self.max_readers)

    def stats(self) -> dict[str, Any]:
        """Positions, counters and liveness, for `status` and the monitor."""
        words = self.words
        writer_pid = words[L.WRITER_PID]
        return {
            "name": self.name,
            "published": words[L.PUBLISHED],
            "capacity": self.capacity,
            "record_size": words[L.RECORD_SIZE],
            "writer_pid": writer_pid,
            "writer_alive": pid_alive(writer_pid),
            "writer_heartbeat_ns": words[L.WRITER_HEARTBEAT],
            "created_ns": words[L.CREATED_NS],
            "stalls": words[L.WRITER_STALLS],
            "wakeups": words[L.WRITER_WAKEUPS],
            "readers": [asdict(info) for info in self.readers()],
        }

    # -- registration internals -------------------------------------------------------------

    @contextmanager
    def _registration(self) -> Iterator[None]:
        """Hold the ring's registration lock, taking it over if its holder died."""
        words = self.words
        try:
            self.lock_semaphore.acquire(LOCK_TIMEOUT)
        except posix_ipc.BusyError:
            owner = words[L.LOCK_OWNER]
            if owner and pid_alive(owner):
                raise IpcError(f"ring {self.name}: registration lock held by pid {owner}") from None
            log.warning("ring %s: taking the registration lock of dead pid %d", self.name, owner)
        words[L.LOCK_OWNER] = os.getpid()
        try:
            yield
        finally:
            words[L.LOCK_OWNER] = 0
            self.lock_semaphore.release()

    def slot_doorbell(self, slot: int) -> str:
        """The doorbell reader `slot` sleeps on; "" for its own semaphore."""
        raw = bytes(self._doorbells[slot * L.NAME_BYTES : (slot + 1) * L.NAME_BYTES])
        return raw.rstrip(b"\0").decode()

    def _set_doorbell(self, slot: int, doorbell: Doorbell | None) -> None:
        encoded = b"" if doorbell is None else doorbell.name.encode()
        start = slot * L.NAME_BYTES
        self._doorbells[start : start + L.NAME_BYTES] = encoded.ljust(L.NAME_BYTES, b"\0")

    def _wake_reader(self, slot: int, doorbell: str) -> None:
        """Post whatever the (unregistered) reader sleeps on, so that it notices."""
        if not doorbell:
            self.reader_semaphores[slot].release()
            return
        try:
            with Doorbell.attach(doorbell) as bell:
                bell.ring()
        except posix_ipc.ExistentialError:
            log.debug("ring %s: doorbell %s is gone", self.name, doorbell)

    def _register_new(
        self, encoded_name: bytes, config: WaitConfig, doorbell: Doorbell | None
    ) -> int:
        """Claim a free slot for a new reader starting at the current published position.

        The cursor is stored before the token, then re-read after a fence: either the writer's
        next scan sees this reader, or this reader sees every sequence the writer published
        before that scan, so the writer's space limit never passes this cursor.
        """
        words = self.words
        slot = next((s for s in range(self.max_readers) if not self._slot_token(s)), None)
        if slot is None:
            raise IpcError(f"ring {self.name}: all {self.max_readers} reader slots are taken")
        base = L.reader_line(slot)
        words[base + L.CURSOR] = words[L.PUBLISHED]
        words[base + L.PID] = os.getpid()
        words[base + L.HEARTBEAT] = now_ns()
        words[base + L.ASLEEP] = 0
        words[base + L.SLEEPS] = int(config.sleep)
        words[base + L.STALLS] = 0
        start = slot * L.NAME_BYTES
        self._names[start : start + L.NAME_BYTES] = encoded_name.ljust(L.NAME_BYTES, b"\0")
        self._set_doorbell(slot, doorbell)
        generation = words[L.GENERATION] + 1
        words[base + L.TOKEN] = generation
        words[L.GENERATION] = generation
        full_fence()
        words[base + L.CURSOR] = words[L.PUBLISHED]
        return slot

    def _reattach(
        self, slot: int, name: str, config: WaitConfig, doorbell: Doorbell | None
    ) -> None:
        """Take over an existing reader slot; its cursor is kept, so nothing is missed.
        The writer rescans (generation bump), so it posts the new doorbell from now on."""
        words = self.words
        base = L.reader_line(slot)
        pid = words[base + L.PID]
        if pid and pid_alive(pid):
            raise IpcError(f"reader {name!r} of ring {self.name} is held by live pid {pid}")
        words[base + L.PID] = os.getpid()
        words[base + L.HEARTBEAT] = now_ns()
        words[base + L.ASLEEP] = 0
        words[base + L.SLEEPS] = int(config.sleep)
        self._set_doorbell(slot, doorbell)
        words[L.GENERATION] += 1

    def _find_reader(self, name: str) -> int | None:
        return next((s for s in self._registered_slots() if self._slot_name(s) == name), None)

    def _registered_slots(self) -> list[int]:
        return [s for s in range(self.max_readers) if self._slot_token(s)]

    def _slot_token(self, slot: int) -> int:
        return self.words[L.reader_line(slot) + L.TOKEN]

    def _slot_name(self, slot: int) -> str:
        raw = bytes(self._names[slot * L.NAME_BYTES : (slot + 1) * L.NAME_BYTES])
        return raw.rstrip(b"\0").decode()


def _open_initialised(name: str) -> mmap.mmap:
    """Map a segment once its creator has written the header (a bounded wait)."""
    deadline = time.monotonic() + ATTACH_TIMEOUT
    while True:
        try:
            segment = shm.open_segment(name)
        except posix_ipc.ExistentialError:
            raise RingMissing(f"ring {name} does not exist") from None
        if segment is not None:
            if int.from_bytes(segment[:8], "little"):
                return segment
            segment.close()
        if time.monotonic() >= deadline:
            raise IpcError(f"ring {name} exists but its creator never initialised it")
        time.sleep(0.001)


def _check_header(name: str, segment: mmap.mmap, dtype: np.dtype) -> None:
    """Refuse a segment that is not a ring, or holds another format version or record layout."""
    words = memoryview(segment)[: L.WRITER_LINE * 8].cast("q")
    try:
        if words[L.MAGIC_WORD] != L.MAGIC:
            raise IpcError(f"/dev/shm/{name} is not a shmex ring (bad magic)")
        if words[L.VERSION_WORD] != L.VERSION:
            raise RingMismatch(
                f"ring {name} has format version {words[L.VERSION_WORD]}, "
                f"this code reads version {L.VERSION}"
            )
        if words[L.SLOTS_OFFSET] != _geometry_of(words).slots_offset:
            raise IpcError(f"ring {name} has a corrupt header (slot offset disagrees)")
        if words[L.FINGERPRINT] != L.fingerprint(dtype) or words[L.RECORD_SIZE] != dtype.itemsize:
            geometry = _geometry_of(words)
            start = geometry.layout_offset
            held = bytes(segment[start : start + geometry.layout_len]).decode()
            raise RingMismatch(
                f"ring {name} holds records {held} ({words[L.RECORD_SIZE]} bytes); "
                f"the caller expects {L.layout_text(dtype)} ({dtype.itemsize} bytes)"
            )
    finally:
        words.release()


def _geometry_of(words: memoryview) -> L.Geometry:
    """The region offsets recorded in a ring's static header."""
    return L.Geometry(
        words[L.CAPACITY], words[L.RECORD_SIZE], words[L.MAX_READERS], words[L.LAYOUT_LEN]
    )
