"""Checkpoints: atomic writes, newest valid wins, damaged ones skipped; canonical bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.canonical import canonical_dumps, canonical_loads, pack_sections, unpack_sections
from storage.checkpoint import (
    HEADER,
    latest_checkpoint,
    list_checkpoints,
    read_checkpoint,
    write_checkpoint,
)


def test_round_trip(tmp_path: Path) -> None:
    path = write_checkpoint(tmp_path, "accounts", 42, b"state bytes")
    assert path.name == "accounts.00000000000000000042.ckpt"
    assert latest_checkpoint(tmp_path, "accounts") == (42, b"state bytes")
    assert latest_checkpoint(tmp_path, "matching") is None
    assert latest_checkpoint(tmp_path / "missing", "accounts") is None


def test_latest_valid_wins_and_keep_k(tmp_path: Path) -> None:
    for seq in (10, 20, 30, 40, 50):
        write_checkpoint(tmp_path, "matching", seq, f"state at {seq}".encode(), keep=3)
    assert [seq for seq, _ in list_checkpoints(tmp_path, "matching")] == [30, 40, 50]
    assert latest_checkpoint(tmp_path, "matching") == (50, b"state at 50")
    write_checkpoint(tmp_path, "accounts", 99, b"other")
    assert latest_checkpoint(tmp_path, "matching") == (50, b"state at 50")


def test_partial_temp_file_is_ignored(tmp_path: Path) -> None:
    write_checkpoint(tmp_path, "accounts", 5, b"good")
    # A writer that died before its rename leaves a hidden temp file with a higher sequence.
    (tmp_path / ".accounts.00000000000000000009.ckpt.tmp-12345").write_bytes(b"SHMEXCKP\x01")
    assert latest_checkpoint(tmp_path, "accounts") == (5, b"good")
    write_checkpoint(tmp_path, "accounts", 6, b"newer")
    assert not list(tmp_path.glob(".accounts*"))  # stale temp files are cleaned up


@pytest.mark.parametrize(
    "damage",
    ["flip_payload", "truncate", "header_only", "bad_magic", "wrong_seq_in_name", "empty"],
)
def test_corrupt_newest_is_skipped(tmp_path: Path, damage: str) -> None:
    write_checkpoint(tmp_path, "accounts", 1, b"older state", keep=5)
    newest = write_checkpoint(tmp_path, "accounts", 2, b"newest state", keep=5)
    data = bytearray(newest.read_bytes())
    if damage == "flip_payload":
        data[-1] ^= 0x40
    elif damage == "truncate":
        data = data[:-3]
    elif damage == "header_only":
        data = data[: HEADER.size]
    elif damage == "bad_magic":
        data[0:8] = b"NOTACKPT"
    elif damage == "empty":
        data = bytearray()
    newest.write_bytes(bytes(data))
    if damage == "wrong_seq_in_name":
        newest.rename(tmp_path / "accounts.00000000000000000003.ckpt")
    assert latest_checkpoint(tmp_path, "accounts") == (1, b"older state")


def test_all_corrupt_means_none(tmp_path: Path) -> None:
    path = write_checkpoint(tmp_path, "md", 3, b"x")
    path.write_bytes(b"garbage")
    assert read_checkpoint(path) is None
    assert latest_checkpoint(tmp_path, "md") is None


def test_bad_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_checkpoint(tmp_path, "a.b", 1, b"")


def test_canonical_bytes_do_not_depend_on_insertion_order() -> None:
    one = {"b": [1, 2, {"z": 1, "a": None}], "a": True, "c": "x"}
    two = {"c": "x", "a": True, "b": [1, 2, {"a": None, "z": 1}]}
    assert canonical_dumps(one) == canonical_dumps(two)
    assert canonical_dumps(one) == b'{"a":true,"b":[1,2,{"a":null,"z":1}],"c":"x"}'
    assert canonical_loads(canonical_dumps(one)) == one


@pytest.mark.parametrize("bad", [{"price": 1.5}, [0.1], {1: "int key"}])
def test_canonical_refuses_floats_and_non_str_keys(bad: object) -> None:
    with pytest.raises(TypeError):
        canonical_dumps(bad)


def test_sections_round_trip_and_are_canonical() -> None:
    sections = {"books": bytes(range(256)) * 3, "accounts": canonical_dumps({"n": 1}), "e": b""}
    packed = pack_sections(sections)
    assert unpack_sections(packed) == sections
    assert pack_sections(dict(reversed(sections.items()))) == packed
    with pytest.raises(ValueError):
        unpack_sections(packed[:-5])
    with pytest.raises(ValueError):
        unpack_sections(b"nonsense")
