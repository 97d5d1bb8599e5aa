"""Checkpoints: a process's state as of a journal sequence, written so a crash never leaves half.

A checkpoint file `<name>.<seq:020d>.ckpt` is a 32-byte header (magic, version, crc, sequence,
length) and the payload. It is written to a hidden temp file, fsynced, renamed into place and the
directory fsynced, so a reader sees either the whole file or none of it. `latest_checkpoint`
still checks every header and crc and falls back to an older one, because a disk can lie.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from pathlib import Path

from storage.errors import CheckpointError

log = logging.getLogger(__name__)

MAGIC = b"SHMEXCKP"
VERSION = 1
HEADER = struct.Struct("<8sIIQQ")  # magic, version, crc32(seq, length, payload), seq, length
SUFFIX = ".ckpt"
TEMP_MARK = ".tmp-"


def write_checkpoint(
    directory: Path | str, name: str, seq: int, payload: bytes, keep: int = 3
) -> Path:
    """Atomically write `payload` as the state of `name` after journal sequence `seq`.

    Keeps the newest `keep` checkpoints of this name and removes older ones and stale temp
    files. Raises `CheckpointError` if anything could not be written.
    """
    if "." in name or "/" in name or not name:
        raise ValueError(f"checkpoint name must be non-empty without '.' or '/': {name!r}")
    directory = Path(directory)
    final = directory / f"{name}.{seq:020d}{SUFFIX}"
    temp = directory / f".{final.name}{TEMP_MARK}{os.getpid()}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with temp.open("wb") as handle:
            handle.write(_header(seq, payload))
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, final)
        _fsync_directory(directory)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise CheckpointError(exc.errno, f"cannot write checkpoint {final}: {exc}") from exc
    _prune(directory, name, keep)
    log.info("checkpoint %s written at seq %d (%d bytes)", name, seq, len(payload))
    return final


def latest_checkpoint(directory: Path | str, name: str) -> tuple[int, bytes] | None:
    """The newest valid checkpoint of `name` as (seq, payload), skipping damaged ones."""
    for seq, path in reversed(list_checkpoints(directory, name)):
        payload = read_checkpoint(path, seq)
        if payload is not None:
            return seq, payload
    return None


def list_checkpoints(directory: Path | str, name: str) -> list[tuple[int, Path]]:
    """Every finished checkpoint file of `name`, valid or not, as (seq, path) oldest first."""
    found = []
    for path in Path(directory).glob(f"{name}.*{SUFFIX}"):
        middle = path.name[len(name) + 1 : -len(SUFFIX)]
        if middle.isdigit():
            found.append((int(middle), path))
    found.sort()
    return found


def read_checkpoint(path: Path, seq: int | None = None) -> bytes | None:
    """The payload of one checkpoint file, or None (logged) if it is damaged or unreadable."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        log.warning("checkpoint %s unreadable: %s", path, exc)
        return None
    if len(data) < HEADER.size:
        log.warning("checkpoint %s skipped: shorter than its header", path)
        return None
    magic, version, crc, stored_seq, length = HEADER.unpack_from(data)
    payload = data[HEADER.size :]
    problem = None
    if magic != MAGIC or version != VERSION:
        problem = "bad magic or version"
    elif seq is not None and stored_seq != seq:
        problem = f"header sequence {stored_seq} does not match the file name"
    elif length != len(payload):
        problem = f"length {len(payload)}, header says {length}"
    elif crc != _crc(stored_seq, payload):
        problem = "crc mismatch"
    if problem:
        log.warning("checkpoint %s skipped: %s", path, problem)
        return None
    return payload


def _header(seq: int, payload: bytes) -> bytes:
    return HEADER.pack(MAGIC, VERSION, _crc(seq, payload), seq, len(payload))


def _crc(seq: int, payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(struct.pack("<QQ", seq, len(payload))))


def _prune(directory: Path, name: str, keep: int) -> None:
    for _seq, path in list_checkpoints(directory, name)[: -max(keep, 1)]:
        path.unlink(missing_ok=True)
    for temp in directory.glob(f".{name}.*{SUFFIX}{TEMP_MARK}*"):
        temp.unlink(missing_ok=True)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
