"""Named POSIX shared memory and semaphores: the names a ring uses, creating and removing them.

A ring called "shmex_x.orders" owns the segment /dev/shm/shmex_x.orders and the semaphores
sem.shmex_x.orders.lock (registration), .w (the writer sleeps on it) and .r<i> (reader i sleeps
on it). A consuming process's doorbell "shmex_x.bell.accounts" (ipc/doorbell.py) is the
semaphore sem.shmex_x.bell.accounts. Everything an instance creates starts with its prefix, so
`unlink_prefix` can clean up after a crash without knowing which rings existed.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
from pathlib import Path

import posix_ipc

log = logging.getLogger(__name__)

SHM_DIR = Path("/dev/shm")
SEMAPHORE_FILE_PREFIX = "sem."


def check_name(name: str) -> None:
    """Ring names are plain (no slash) and short enough for the semaphore suffixes."""
    if not name or "/" in name or len(name) > 200:
        raise ValueError(f"bad ring name {name!r}: want a non-empty name without '/'")


def lock_semaphore_name(name: str) -> str:
    return f"/{name}.lock"


def writer_semaphore_name(name: str) -> str:
    return f"/{name}.w"


def reader_semaphore_name(name: str, index: int) -> str:
    return f"/{name}.r{index}"


def doorbell_semaphore_name(doorbell: str) -> str:
    return f"/{doorbell}"


def semaphore_names(name: str, max_readers: int) -> list[str]:
    """Every semaphore a ring with `max_readers` slots uses."""
    readers = [reader_semaphore_name(name, i) for i in range(max_readers)]
    return [lock_semaphore_name(name), writer_semaphore_name(name), *readers]


def create_segment(name: str, size: int) -> mmap.mmap:
    """Create a new zero-filled segment; posix_ipc.ExistentialError if it already exists."""
    shm = posix_ipc.SharedMemory(f"/{name}", posix_ipc.O_CREX, mode=0o600, size=size)
    try:
        return mmap.mmap(shm.fd, size)
    finally:
        shm.close_fd()


def open_segment(name: str) -> mmap.mmap | None:
    """Map an existing segment; None while its creator has not sized it yet;
    posix_ipc.ExistentialError if there is none."""
    shm = posix_ipc.SharedMemory(f"/{name}")
    try:
        return mmap.mmap(shm.fd, shm.size) if shm.size else None
    finally:
        shm.close_fd()


def create_semaphore(name: str, value: int) -> posix_ipc.Semaphore:
    """A fresh semaphore; a stale one left by a crashed instance is replaced, not reused."""
    with contextlib.suppress(posix_ipc.ExistentialError):
        posix_ipc.unlink_semaphore(name)
    return posix_ipc.Semaphore(name, posix_ipc.O_CREX, mode=0o600, initial_value=value)


def unlink_ring(name: str, max_readers: int) -> list[str]:
    """Remove a ring's segment and semaphores; returns the names that existed."""
    removed = []
    try:
        posix_ipc.unlink_shared_memory(f"/{name}")
        removed.append(name)
    except posix_ipc.ExistentialError:
        pass
    for sem in semaphore_names(name, max_readers):
        try:
            posix_ipc.unlink_semaphore(sem)
            removed.append(sem.lstrip("/"))
        except posix_ipc.ExistentialError:
            pass
    return removed


def unlink_doorbell(doorbell: str) -> bool:
    """Remove a doorbell's semaphore; False if it did not exist."""
    try:
        posix_ipc.unlink_semaphore(doorbell_semaphore_name(doorbell))
    except posix_ipc.ExistentialError:
        return False
    return True


def prefix_objects(prefix: str) -> list[str]:
    """Entries of /dev/shm (segments, and semaphores as "sem.<name>") whose names start with
    `prefix`; the prefix must name a shmex instance."""
    if "shmex" not in prefix or "/" in prefix:
        raise ValueError(f"refusing {prefix!r}: an instance prefix contains 'shmex'")
    return sorted(
        path.name
        for path in SHM_DIR.iterdir()
        if path.name.startswith((prefix, SEMAPHORE_FILE_PREFIX + prefix))
    )


def unlink_object(entry: str) -> bool:
    """Remove one /dev/shm entry as `prefix_objects` names it; False if it was already gone."""
    try:
        if entry.startswith(SEMAPHORE_FILE_PREFIX):
            posix_ipc.unlink_semaphore(f"/{entry[len(SEMAPHORE_FILE_PREFIX) :]}")
        else:
            posix_ipc.unlink_shared_memory(f"/{entry}")
    except posix_ipc.ExistentialError:
        return False
    return True


def ring_objects(name: str, max_readers: int) -> list[str]:
    """The /dev/shm entries of a ring: its segment and its semaphores."""
    semaphores = [
        SEMAPHORE_FILE_PREFIX + sem.lstrip("/") for sem in semaphore_names(name, max_readers)
    ]
    return [name, *semaphores]


def unlink_prefix(prefix: str) -> list[str]:
    """Remove every segment and semaphore whose name starts with `prefix`; returns their names.

    Used by `bin/exchange down` and by tests. The prefix must name a shmex instance, so that a
    typo cannot wipe another program's shared memory.
    """
    removed = [entry for entry in prefix_objects(prefix) if unlink_object(entry)]
    if removed:
        log.info("unlinked %d shared-memory objects of %s", len(removed), prefix)
    return removed
