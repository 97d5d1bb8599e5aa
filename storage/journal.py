"""The write-ahead journal: append batches of records, one write and one fsync per batch.

Durability modes (`Durability`):

- `sync`: `append_batch` returns only after the batch is written and fsynced, so a caller that
  acknowledges after it returns never acknowledges a record a crash could lose. With
  `wait=False` it returns after the write (a process crash already loses nothing); then either
  `flush()` syncs in the caller, or `request_sync()` has the sync thread do it, covering every
  batch written meanwhile in one fdatasync (group commit) and continuing as long as more is
  written; `durable_seq` and the `on_durable` callback say when a batch is on disk, so the
  caller can apply the next batch while the disk works and acknowledge each once it is durable.
- `async`: the batch is written to the OS at once (a process crash loses nothing that `append`
  returned for) and a background thread fsyncs every `flush_interval_ms`. An operating-system
  crash or power loss loses at most the records appended during the last interval plus one
  fsync's duration; `flush()` closes the window on demand and `durable_seq` says how far it is
  closed.

Any write or sync failure (disk full, file too large, I/O error) raises `JournalError`, cuts the
failed batch back off the file when it can, and poisons the journal: every later append raises
until the journal is reopened, so nothing after `durable_seq` is ever reported as written.
"""

from __future__ import annotations

import enum
import fcntl
import itertools
import logging
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from ipc.metrics import Histogram
from storage import segment
from storage.errors import JournalError, JournalGap

log = logging.getLogger(__name__)


class Durability(enum.StrEnum):
    SYNC = "sync"
    ASYNC = "async"


@dataclass(frozen=True)
class JournalConfig:
    """How the journal writes: segment size, durability mode and the async fsync interval."""

    segment_bytes: int = 64 << 20
    durability: Durability = Durability.SYNC
    flush_interval_ms: int = 5


class Journal:
    """An append-only sequence of byte records, numbered from 1 without gaps.

    Open with `Journal.open(directory, config)`: it finds the last segment, truncates a torn
    tail and continues the sequence. Appending is thread-safe; the accounts process calls it from
    its main loop while the sync thread (async mode, or deferred syncs) runs beside it.
    """

    def __init__(self, directory: Path, config: JournalConfig, next_seq: int) -> None:
        self.directory = directory
        self.config = config
        self._next_seq = next_seq
        self._durable_seq = next_seq - 1
        self._written_seq = next_seq - 1
        self._fd = -1
        self._lock_fd = -1
        self._path: Path | None = None
        self._size = 0
        self._failure: BaseException | None = None
        self._sync_failure: OSError | None = None
        self._lock = threading.Lock()
        self._wanted = threading.Condition(self._lock)
        """Notified when a deferred append waits for its fsync, and on close."""
        self._closing = False
        self._sync_wanted = 0
        """The sequence `request_sync` asked the sync thread to make durable."""
        self.syncs = 0
        """fdatasync calls made (by the caller or the sync thread): one per group commit."""
        self.sync_times = Histogram()
        """How long each of those fdatasyncs took (ns); the Runner shows it as `fsync`."""
        self._syncer: threading.Thread | None = None
        self.on_durable: Callable[[], None] | None = None
        """Called from the sync thread after `durable_seq` advanced or a background fsync failed
        (`sync_failed`): how a loop sleeping elsewhere learns that its batches are on disk."""

    @classmethod
    def open(cls, directory: Path | str, config: JournalConfig | None = None) -> Journal:
        """Open (creating if needed) the journal in `directory`, repairing a torn tail."""
        directory = Path(directory)
        config = config or JournalConfig()
        try:
            directory.mkdir(parents=True, exist_ok=True)
            lock_fd = _lock_directory(directory)
        except OSError as exc:
            raise JournalError(exc.errno, f"cannot open journal in {directory}: {exc}") from exc
        try:
            segments = segment.list_segments(directory)
            next_seq = _repair_last_segment(segments)
            journal = cls(directory, config, next_seq)
            journal._lock_fd = lock_fd
            journal._open_active(segments)
        except BaseException as exc:
            os.close(lock_fd)
            if isinstance(exc, OSError) and not isinstance(exc, JournalError):
                raise JournalError(exc.errno, f"cannot open journal in {directory}: {exc}") from exc
            raise
        if config.durability is Durability.ASYNC:
            journal._start_syncer()
        return journal

    @property
    def next_seq(self) -> int:
        """The sequence the next appended record will get."""
        return self._next_seq

    @property
    def last_seq(self) -> int:
        """The sequence of the last appended record (0 for an empty journal)."""
        return self._next_seq - 1

    @property
    def durable_seq(self) -> int:
        """Every record up to this sequence has been fsynced."""
        return self._durable_seq

    @property
    def failed(self) -> bool:
        """Appends are refused (a write or an fsync failed) until the journal is reopened."""
        return self._failure is not None

    @property
    def sync_failed(self) -> bool:
        """A background fsync failed: records after `durable_seq` may never reach the disk, so
        whoever waits for them must stop and recover (reopen and replay what the file holds)."""
        return self._sync_failure is not None

    def append(self, payload: bytes | memoryview) -> int:
        """Append one record; returns its sequence."""
        return self.append_batch((payload,))[0]

    def append_batch(
        self, payloads: Iterable[bytes | memoryview], wait: bool = True
    ) -> tuple[int, int]:
        """Append records as one group commit; returns (first, last) sequence of the batch.

        `wait=False` (sync mode): return once written; `flush()` or `request_sync()` makes it
        durable."""
        parts: list[bytes | memoryview] = []
        count = 0
        for payload in payloads:
            parts.append(segment.RECORD_HEADER.pack(len(payload), segment.record_crc(payload)))
            parts.append(payload)
            count += 1
        return self._commit(b"".join(parts), count, wait)

    def append_array(self, records: np.ndarray, wait: bool = True) -> tuple[int, int]:
        """Append each row of a fixed-size numpy array as one record, in one group commit
        (`wait` as in `append_batch`). Framed row by row from one `tobytes()`: a journaled
        batch is usually a few records, where numpy's per-call cost would dominate."""
        width = records.dtype.itemsize
        raw = records.tobytes()
        crc32, pack = zlib.crc32, segment.RECORD_HEADER.pack
        seed = crc32(segment.LENGTH.pack(width))  # the length part, shared by every row
        parts = []
        for start in range(0, len(raw), width):
            payload = raw[start : start + width]
            parts.append(pack(width, crc32(payload, seed)))
            parts.append(payload)
        return self._commit(b"".join(parts), len(records), wait)

    def request_sync(self) -> None:
        """Have the sync thread fsync what is written (sync mode; returns at once). What is
        written while it syncs waits for the next request, which the next fdatasync covers
        whole."""
        with self._lock:
            self._raise_if_failed()
            if self._durable_seq == self._written_seq:
                return
            self._sync_wanted = self._written_seq
            if self._syncer is None:
                self._start_syncer()
            self._wanted.notify()

    def flush(self) -> int:
        """Fsync what has been written; returns the durable sequence."""
        with self._lock:
            self._raise_if_failed()
            self._sync_locked()
            return self._durable_seq

    def retain(self, checkpoint_seq: int, keep_segments: int = 2) -> list[Path]:
        """Delete segments whose records all precede `checkpoint_seq`, keeping the newest few.

        A checkpoint that reflects sequence `checkpoint_seq` makes every record up to it
        unnecessary for recovery; the newest `keep_segments` segments (and the active one) stay
        for inspection and for `recover --verify` style replays of the recent past.
        """
        with self._lock:
            segments = segment.list_segments(self.directory)
            removable = []
            for (_first, path), (next_first, _next_path) in itertools.pairwise(segments):
                if next_first - 1 <= checkpoint_seq and path != self._path:
                    removable.append(path)
            removable = removable[: max(0, len(segments) - max(keep_segments, 1))]
            for path in removable:
                path.unlink()
                log.info("journal retention removed %s", path.name)
            if removable:
                _fsync_directory(self.directory)
            return removable

    def close(self) -> None:
        """Stop the sync thread, fsync (unless failed) and close the active segment."""
        with self._lock:
            self._closing = True
            self._wanted.notify()
        if self._syncer is not None:
            self._syncer.join()
            self._syncer = None
        with self._lock:
            try:
                if self._fd >= 0 and self._failure is None:
                    self._sync_locked()
            finally:
                for fd in (self._fd, self._lock_fd):
                    if fd >= 0:
                        os.close(fd)
                self._fd = self._lock_fd = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _commit(self, data: bytes | memoryview, count: int, wait: bool) -> tuple[int, int]:
        if count == 0:
            raise ValueError("empty batch")
        data = memoryview(data).cast("B")
        with self._lock:
            self._raise_if_failed()
            if self._fd < 0:
                raise JournalError("journal is closed")
            if self._size > segment.FILE_HEADER.size and self._size + len(data) > (
                self.config.segment_bytes
            ):
                self._rotate_locked()
            start = self._size
            first = self._next_seq
            sync_mode = self.config.durability is Durability.SYNC
            sync = sync_mode and wait
            try:
                _write_all(self._fd, data)
                if sync:
                    self._fdatasync(self._fd)
                    self.syncs += 1
            except OSError as exc:
                self._fail(exc, f"write to {self._path} failed", truncate_to=start)
            self._size += len(data)
            self._next_seq += count
            self._written_seq = self._next_seq - 1
            if sync:
                self._durable_seq = self._written_seq
            return first, first + count - 1

    def _sync_locked(self) -> None:
        if self._durable_seq == self._written_seq:
            return
        try:
            self._fdatasync(self._fd)
            self.syncs += 1
        except OSError as exc:
            self._fail(exc, f"fsync of {self._path} failed", truncate_to=None)
        self._durable_seq = self._written_seq

    def _fdatasync(self, fd: int) -> None:
        started = time.perf_counter_ns()
        os.fdatasync(fd)
        self.sync_times.record(time.perf_counter_ns() - started)

    def _rotate_locked(self) -> None:
        self._sync_locked()
        os.close(self._fd)
        self._fd = -1
        self._create_segment(self._next_seq)

    def _open_active(self, segments: list[tuple[int, Path]]) -> None:
        try:
            if segments:
                _first, path = segments[-1]
                if path.exists():
                    self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
                    self._path = path
                    self._size = os.fstat(self._fd).st_size
                    return
            self._create_segment(self._next_seq)
        except OSError as exc:
            raise JournalError(exc.errno, f"cannot open journal segment: {exc}") from exc

    def _create_segment(self, first_seq: int) -> None:
        path = self.directory / segment.segment_name(first_seq)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                _write_all(fd, segment.encode_header(first_seq))
                os.fsync(fd)
                _fsync_directory(self.directory)
            except OSError:
                os.close(fd)
                path.unlink(missing_ok=True)
                raise
        except OSError as exc:
            self._fail(exc, f"cannot create segment {path}", truncate_to=None)
        self._fd = fd
        self._path = path
        self._size = segment.FILE_HEADER.size
        log.debug("journal segment %s opened", path.name)

    def _fail(self, exc: OSError, what: str, truncate_to: int | None) -> None:
        """Poison the journal, cut the unacknowledged batch off if possible, and raise."""
        self._failure = exc
        if truncate_to is not None and self._fd >= 0:
            try:
                os.ftruncate(self._fd, truncate_to)
                self._size = truncate_to
            except OSError:
                log.exception("could not cut the failed batch off %s", self._path)
        log.error("journal failed: %s: %s; appends refused until reopened", what, exc)
        raise JournalError(exc.errno, f"{what}: {exc.strerror or exc}") from exc

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise JournalError(
                getattr(self._failure, "errno", None),
                f"journal in {self.directory} failed earlier ({self._failure}); "
                "appends are refused until it is reopened",
            )

    def _start_syncer(self) -> None:
        self._syncer = threading.Thread(target=self._sync_loop, name="journal-sync", daemon=True)
        self._syncer.start()

    def _sync_loop(self) -> None:
        """Fsync without holding the lock, so appends never wait on the disk: in async mode
        every interval, in sync mode on `request_sync` (each fdatasync covers everything written
        when it starts: the batches requested while the previous one ran share it).

        It syncs a duplicate of the segment's descriptor: a rotation meanwhile closes the
        original (after syncing it itself) without pulling the file from under the thread. A
        failed write does not stop it (the batches before it are intact); a failed fsync does.
        """
        interval = None
        if self.config.durability is Durability.ASYNC:
            interval = self.config.flush_interval_ms / 1000
        while True:
            with self._lock:
                if interval is None:
                    while self._durable_seq >= self._sync_wanted and not self._closing:
                        self._wanted.wait()
                else:
                    self._wanted.wait(interval)
                if self._closing or self._fd < 0:
                    return
                if self._durable_seq == self._written_seq:
                    continue
                target = self._written_seq
                fd = os.dup(self._fd)
            try:
                self._fdatasync(fd)
            except OSError as exc:
                with self._lock:
                    self._sync_failure = exc
                    self._failure = self._failure or exc
                log.error("journal background fsync failed: %s; appends refused", exc)
                self._notify_durable()
                return
            finally:
                os.close(fd)
            with self._lock:
                self._durable_seq = max(self._durable_seq, target)
                self.syncs += 1
            self._notify_durable()

    def _notify_durable(self) -> None:
        callback = self.on_durable
        if callback is not None:
            callback()


def read_journal(directory: Path | str, from_seq: int = 1) -> Iterator[tuple[int, bytes]]:
    """Yield (sequence, payload) for every record from `from_seq` on, in order.

    Read-only: a torn tail of the last segment ends the iteration (`Journal.open` is what cuts
    it off). Damage anywhere else raises `JournalCorruption` naming the file and offset; records
    that retention deleted, or a missing segment, raise `JournalGap`.
    """
    for seq, payload in iter_journal_views(directory, from_seq):
        yield seq, bytes(payload)


def iter_journal_views(
    directory: Path | str, from_seq: int = 1
) -> Iterator[tuple[int, memoryview]]:
    """Like `read_journal`, but payloads are views valid only until the next iteration step."""
    segments = segment.list_segments(Path(directory))
    if not segments:
        return
    if from_seq < segments[0][0]:
        raise JournalGap(
            f"records {from_seq}..{segments[0][0] - 1} are not in {directory} (retention?)"
        )
    start = 0
    for index, (first, _path) in enumerate(segments):
        if first <= from_seq:
            start = index
    expected = segments[start][0]
    for index in range(start, len(segments)):
        first, path = segments[index]
        if first != expected:
            raise JournalGap(f"{path.name} starts at {first}, expected {expected}")
        last = index == len(segments) - 1
        data = path.read_bytes()
        if last and segment.header_is_torn(data):
            return
        for seq, payload in segment.iter_records(path, data, first, last=last):
            expected = seq + 1
            if seq >= from_seq:
                yield seq, payload


def iter_journal_arrays(
    directory: Path | str, dtype: np.dtype[Any], from_seq: int = 1, batch: int = 4096
) -> Iterator[tuple[int, np.ndarray[Any, Any]]]:
    """Replay fixed-size records as numpy batches: (first sequence, array of up to `batch`).

    The counterpart of `append_array`, for replaying through the same batch code as live
    traffic. Raises ValueError if a record's size is not the dtype's.
    """
    dtype = np.dtype(dtype)
    parts: list[memoryview] = []
    first = from_seq
    for seq, payload in iter_journal_views(directory, from_seq):
        if len(payload) != dtype.itemsize:
            raise ValueError(
                f"record {seq} has {len(payload)} bytes, {dtype} needs {dtype.itemsize}"
            )
        if not parts:
            first = seq
        parts.append(payload)
        if len(parts) == batch:
            yield first, np.frombuffer(b"".join(parts), dtype)
            parts = []
    if parts:
        yield first, np.frombuffer(b"".join(parts), dtype)


def _repair_last_segment(segments: list[tuple[int, Path]]) -> int:
    """Cut a torn tail off the last segment; returns the next sequence to write."""
    if not segments:
        return 1
    first, path = segments[-1]
    result = segment.scan_segment(path, first, last=True)
    if result.end == 0:
        log.warning("journal segment %s has a torn header; rewriting it", path.name)
        path.unlink()
        return first
    if result.torn:
        log.warning(
            "journal %s: torn tail of %d bytes at offset %d truncated",
            path.name,
            result.size - result.end,
            result.end,
        )
        with path.open("r+b") as handle:
            handle.truncate(result.end)
            handle.flush()
            os.fsync(handle.fileno())
    return first + result.count


def _lock_directory(directory: Path) -> int:
    """Hold an exclusive lock on the journal directory: two writers would interleave records."""
    fd = os.open(directory / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        os.close(fd)
        raise JournalError(exc.errno, f"journal {directory} is open in another writer") from exc
    return fd


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data).cast("B")
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
