"""Test records for the ring tests: every field is a function of the sequence, so a reader can
prove that nothing was lost, duplicated, reordered or torn."""

from __future__ import annotations

import numpy as np

RECORD = np.dtype(
    [
        ("seq", "<i8"),
        ("checksum", "<u8"),
        ("a", "<i8"),
        ("b", "<i8"),
        ("c", "<i8"),
        ("d", "<i8"),
        ("e", "<i8"),
        ("f", "<i8"),
    ]
)
RECORD_128 = np.dtype(RECORD.descr + [(f"pad{i}", "<i8") for i in range(8)])
PAYLOAD = ("a", "b", "c", "d", "e", "f")
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MASK64 = (1 << 64) - 1


def checksum(seq: np.ndarray) -> np.ndarray:
    """A per-record checksum mixing the sequence (uint64 arithmetic wraps, as intended)."""
    mixed = seq.astype(np.uint64) * GOLDEN
    return mixed ^ (mixed >> np.uint64(29))


def fill(view: np.ndarray, first: int) -> None:
    """Write records first, first+1, ... into `view` (a ring slot view or an array)."""
    seq = np.arange(first, first + len(view), dtype=np.int64)
    view["seq"] = seq
    view["checksum"] = checksum(seq)
    for k, name in enumerate(PAYLOAD, start=1):
        view[name] = seq * k


def make(first: int, count: int, dtype: np.dtype = RECORD) -> np.ndarray:
    records = np.zeros(count, dtype)
    fill(records, first)
    return records


def one(seq: int, dtype: np.dtype = RECORD) -> tuple[int, ...]:
    """Record `seq` as a tuple in field order (for put), computed without numpy."""
    mixed = (seq * int(GOLDEN)) & MASK64
    values = (seq, mixed ^ (mixed >> 29), *(seq * k for k in range(1, len(PAYLOAD) + 1)))
    return values + (0,) * (len(dtype.names) - len(values))


def check_one(record: np.void, seq: int) -> str | None:
    """None if `record` is record `seq` (as get() returns it); else what is wrong."""
    got = record.item()
    expected = one(seq, record.dtype)
    return None if got == expected else f"record {seq}: got {got}, expected {expected}"


def check(view: np.ndarray, first: int) -> str | None:
    """None if `view` holds exactly records first, first+1, ...; else what is wrong."""
    seq = view["seq"]
    expected = np.arange(first, first + len(view), dtype=np.int64)
    if not np.array_equal(seq, expected):
        bad = int(np.argmax(seq != expected))
        return f"record {first + bad}: got sequence {int(seq[bad])}"
    if not np.array_equal(view["checksum"], checksum(expected)):
        return f"bad checksum in records {first}..{first + len(view) - 1}"
    for k, name in enumerate(PAYLOAD, start=1):
        if not np.array_equal(view[name], expected * k):
            return f"torn field {name} in records {first}..{first + len(view) - 1}"
    return None
