"""The `events` ring into the event loop, without ever blocking the loop.

A reader thread waits on the ring (bounded waits, so it notices a stop within ~50 ms), copies
each batch out, releases the slots and queues the raw records for the loop, waking it with
`call_soon_threadsafe` only when no wake-up is pending (one per loop turn however many reads
queued meanwhile); the loop decodes only the records it needs (numpy filters first: other
gateways' answers and unwatched accounts are never turned into Python objects).
At most `MAX_PENDING` batches wait for the loop: when the loop falls behind, the thread stops
reading and the ring fills, which is the exchange's back-pressure (accounts waits and counts
it) rather than memory growing here without bound.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ipc.ring import RingReader

log = logging.getLogger(__name__)

MAX_PENDING = 64
READ_MAX = 4096
WAIT_S = 0.05

Deliver = Callable[[np.ndarray[Any, Any]], None]
"""A copy of one read's `events` records, in ring order, on the loop."""


class EventsPump:
    """Reads `events` in a thread and delivers the record batches on the loop."""

    def __init__(self, reader: RingReader, deliver: Deliver) -> None:
        self._reader = reader
        self._deliver = deliver
        self._stop = threading.Event()
        self._room = threading.Semaphore(MAX_PENDING)
        self._queued: list[np.ndarray[Any, Any]] = []
        self._queue_lock = threading.Lock()
        self._wake_pending = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.records = 0
        self.cpu_s = 0.0
        """CPU seconds the reader thread has used (the rest of the process's is the loop's)."""
        self.failed: BaseException | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="events-pump", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if not self._room.acquire(timeout=WAIT_S):
                    continue
                if not self._pump_one():
                    self._room.release()
                self.cpu_s = time.thread_time()
        except BaseException as exc:  # the process's status reports it; the supervisor restarts
            self.failed = exc
            log.critical("events reader died", exc_info=True)

    def _pump_one(self) -> bool:
        view = self._reader.read(max_n=READ_MAX, timeout=WAIT_S)
        count = len(view)
        if not count:
            return False
        batch = view.copy()
        self._reader.release(count)
        self.records += count
        with self._queue_lock:
            self._queued.append(batch)
            wake, self._wake_pending = not self._wake_pending, True
        if wake:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._handover)
        return True

    def _handover(self) -> None:
        with self._queue_lock:
            batches, self._queued, self._wake_pending = self._queued, [], False
        for batch in batches:
            self._room.release()
            try:
                self._deliver(batch)
            except Exception:  # a bug in one batch's handling must not drop the next ones
                log.exception("an events batch failed")
