"""The journal's on-disk format: segment files of `[len u32][crc32 u32][payload]` records.

A segment starts with a 24-byte header (magic, version, first sequence) and is named for its
first sequence (`00000000000000000001.wal`); record `i` of a segment has sequence `first + i`,
so sequences cost no bytes. The crc covers the length field and the payload, which makes a
zero-filled region (what a torn append often leaves) fail the check instead of reading as an
empty record.

Scanning tells a torn tail from corruption: when a record fails, the rest of the file is
searched for any later valid record. None found means the damage is the unfinished end of the
last write (a torn tail, safe to cut); a valid record after it means bytes in the middle changed
(corruption, recovery must stop).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from storage.errors import JournalCorruption

MAGIC = b"SHMEXWAL"
VERSION = 1
SEGMENT_SUFFIX = ".wal"
FILE_HEADER = struct.Struct("<8sIIQ")  # magic, version, reserved, first sequence
RECORD_HEADER = struct.Struct("<II")  # payload length, crc32(length bytes + payload)
LENGTH = struct.Struct("<I")
MAX_RECORD_BYTES = 64 << 20


def record_crc(payload: bytes | memoryview) -> int:
    """The crc stored with a record: over the little-endian length, then the payload."""
    return zlib.crc32(payload, zlib.crc32(LENGTH.pack(len(payload))))


def encode_header(first_seq: int) -> bytes:
    return FILE_HEADER.pack(MAGIC, VERSION, 0, first_seq)


def segment_name(first_seq: int) -> str:
    return f"{first_seq:020d}{SEGMENT_SUFFIX}"


def list_segments(directory: Path) -> list[tuple[int, Path]]:
    """Segment files in sequence order, as (first sequence, path)."""
    found = []
    for path in directory.glob(f"*{SEGMENT_SUFFIX}"):
        stem = path.name[: -len(SEGMENT_SUFFIX)]
        if len(stem) == 20 and stem.isdigit():
            found.append((int(stem), path))
    found.sort()
    return found


@dataclass(frozen=True)
class ScanResult:
    """Where a segment's valid records end, and why scanning stopped there."""

    count: int  # valid records
    end: int  # byte offset just after the last valid record
    size: int  # file size when scanned
    torn: bool  # bytes after `end` that are an unfinished write


def iter_records(
    path: Path, data: bytes | memoryview, first_seq: int, *, last: bool
) -> Iterator[tuple[int, memoryview]]:
    """Yield (sequence, payload) for each valid record of one segment's bytes.

    Stops quietly at a torn tail of the last segment; raises `JournalCorruption` otherwise.
    The payloads are views into `data`: copy them (`bytes(p)`) to keep them.
    """
    view = memoryview(data)
    _check_file_header(path, view, first_seq)
    offset = FILE_HEADER.size
    size = len(view)
    seq = first_seq
    unpack = RECORD_HEADER.unpack_from
    crc32 = zlib.crc32
    while offset < size:
        if offset + RECORD_HEADER.size <= size:
            length, crc = unpack(view, offset)
            end = offset + RECORD_HEADER.size + length
            if length <= MAX_RECORD_BYTES and end <= size:
                payload = view[offset + RECORD_HEADER.size : end]
                if crc32(payload, crc32(view[offset : offset + 4])) == crc:
                    yield seq, payload
                    seq += 1
                    offset = end
                    continue
        _classify_failure(path, view, offset, last=last)
        return


def header_is_torn(data: bytes) -> bool:
    """A segment whose creation a crash interrupted: header incomplete, or the file all zeros."""
    return len(data) < FILE_HEADER.size or data.count(0) == len(data)


def scan_segment(path: Path, first_seq: int, *, last: bool) -> ScanResult:
    """Validate a whole segment and report where its valid records end.

    `end == 0` means the last segment's header itself is torn (see `header_is_torn`).
    """
    data = path.read_bytes()
    if header_is_torn(data):
        if not last:
            raise JournalCorruption(path, 0, "segment header missing")
        return ScanResult(0, 0, len(data), torn=True)
    count = 0
    end = FILE_HEADER.size
    for _seq, payload in iter_records(path, data, first_seq, last=last):
        count += 1
        end += RECORD_HEADER.size + len(payload)
    return ScanResult(count, end, len(data), torn=end < len(data))


def _check_file_header(path: Path, view: memoryview, first_seq: int) -> None:
    if len(view) < FILE_HEADER.size:
        raise JournalCorruption(path, 0, "segment shorter than its header")
    magic, version, _reserved, seq = FILE_HEADER.unpack_from(view, 0)
    if magic != MAGIC:
        raise JournalCorruption(path, 0, f"bad magic {magic!r}")
    if version != VERSION:
        raise JournalCorruption(path, 0, f"unsupported version {version}")
    if seq != first_seq:
        raise JournalCorruption(path, 0, f"header says first sequence {seq}, name {first_seq}")


def _classify_failure(path: Path, view: memoryview, offset: int, *, last: bool) -> None:
    """Return if the bad bytes at `offset` are a torn tail; raise `JournalCorruption` if not."""
    if not last:
        raise JournalCorruption(path, offset, "bad record in a segment that is not the last")
    later = _next_valid_record(view, offset + 1)
    if later is not None:
        raise JournalCorruption(
            path, offset, f"bad record followed by a valid record at offset {later}"
        )


def _next_valid_record(view: memoryview, start: int) -> int | None:
    """The offset of the first position from `start` that holds a record with a valid crc."""
    size = len(view)
    unpack = RECORD_HEADER.unpack_from
    for offset in range(start, size - RECORD_HEADER.size + 1):
        length, crc = unpack(view, offset)
        end = offset + RECORD_HEADER.size + length
        if end <= size and record_crc(view[offset + RECORD_HEADER.size : end]) == crc:
            return offset
    return None
