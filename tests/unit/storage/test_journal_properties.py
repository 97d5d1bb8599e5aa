"""Generated damage: any cut gives a clean prefix; any flipped byte is caught, never misread."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from storage import segment
from storage.errors import JournalCorruption
from storage.journal import Journal, read_journal

batches = st.lists(st.lists(st.binary(max_size=40), min_size=1, max_size=6), min_size=1, max_size=6)


def write(directory: Path, groups: list[list[bytes]]) -> list[bytes]:
    with Journal.open(directory) as journal:
        for group in groups:
            journal.append_batch(group)
    return [payload for group in groups for payload in group]


def record_ends(payloads: list[bytes]) -> list[int]:
    """Byte offset just past each record."""
    ends, offset = [], segment.FILE_HEADER.size
    for payload in payloads:
        offset += segment.RECORD_HEADER.size + len(payload)
        ends.append(offset)
    return ends


@settings(max_examples=60, deadline=None)
@given(groups=batches, data=st.data())
def test_any_cut_leaves_a_clean_prefix(groups: list[list[bytes]], data: st.DataObject) -> None:
    directory = Path(tempfile.mkdtemp(prefix="shmex-journal-prop-"))
    try:
        payloads = write(directory, groups)
        (path,) = [p for _, p in segment.list_segments(directory)]
        size = path.stat().st_size
        cut = data.draw(st.integers(segment.FILE_HEADER.size, size))
        with path.open("r+b") as handle:
            handle.truncate(cut)
        whole = sum(1 for end in record_ends(payloads) if end <= cut)
        assert [p for _, p in read_journal(directory)] == payloads[:whole]
        with Journal.open(directory) as journal:
            assert journal.next_seq == whole + 1
            journal.append(b"next")
        assert [p for _, p in read_journal(directory)] == [*payloads[:whole], b"next"]
    finally:
        shutil.rmtree(directory)


@settings(max_examples=80, deadline=None)
@given(groups=batches, data=st.data())
def test_a_flipped_byte_is_never_misread(groups: list[list[bytes]], data: st.DataObject) -> None:
    directory = Path(tempfile.mkdtemp(prefix="shmex-journal-prop-"))
    try:
        payloads = write(directory, groups)
        (path,) = [p for _, p in segment.list_segments(directory)]
        raw = bytearray(path.read_bytes())
        position = data.draw(st.integers(segment.FILE_HEADER.size, len(raw) - 1))
        raw[position] ^= data.draw(st.integers(1, 255))
        path.write_bytes(bytes(raw))
        damaged = next(i for i, end in enumerate(record_ends(payloads)) if position < end)
        try:
            got = [p for _, p in read_journal(directory)]
        except JournalCorruption as exc:
            assert exc.path == path
            starts = [segment.FILE_HEADER.size, *record_ends(payloads)]
            assert exc.offset == starts[damaged]
        else:
            # Only damage in the last record may pass as a torn tail, and then it is dropped.
            assert damaged == len(payloads) - 1
            assert got == payloads[:damaged]
    finally:
        shutil.rmtree(directory)
