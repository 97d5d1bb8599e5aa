"""Deterministic bytes for state: the same structure always serializes to the same bytes.

Checkpoints and state hashes need canonical bytes: sorted keys, no whitespace, integers kept
exact. Plain structures (dict with str keys, list, tuple, str, int, bool, None) go through
orjson; raw blocks such as numpy record arrays travel beside them as named sections, because
JSON would turn them into slow, lossy lists.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

import orjson

_SECTIONS_MAGIC = b"SHMEXSEC"
_COUNT = struct.Struct("<I")
_ENTRY = struct.Struct("<HQ")  # name length, body length


def canonical_dumps(value: object) -> bytes:
    """Canonical JSON bytes: keys sorted, compact, ints exact; floats are refused.

    Floats are refused because money and prices are integers inside (shared/STYLE.md) and a
    float in state is a bug that would make hashes depend on rounding.
    """
    _reject_floats(value)
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def canonical_loads(data: bytes) -> object:
    return orjson.loads(data)


def pack_sections(sections: Mapping[str, bytes]) -> bytes:
    """Join named byte blocks into one payload, in name order so the result is canonical."""
    parts = [_SECTIONS_MAGIC, _COUNT.pack(len(sections))]
    for name in sorted(sections):
        encoded = name.encode()
        body = bytes(sections[name])
        parts += [_ENTRY.pack(len(encoded), len(body)), encoded, body]
    return b"".join(parts)


def unpack_sections(data: bytes) -> dict[str, bytes]:
    """The inverse of `pack_sections`; raises ValueError on anything malformed."""
    if data[: len(_SECTIONS_MAGIC)] != _SECTIONS_MAGIC:
        raise ValueError("not a sections payload")
    try:
        return _unpack_sections(data)
    except struct.error as exc:
        raise ValueError(f"sections payload truncated: {exc}") from exc


def _unpack_sections(data: bytes) -> dict[str, bytes]:
    offset = len(_SECTIONS_MAGIC)
    (count,) = _COUNT.unpack_from(data, offset)
    offset += _COUNT.size
    sections = {}
    for _ in range(count):
        name_length, body_length = _ENTRY.unpack_from(data, offset)
        offset += _ENTRY.size
        name = data[offset : offset + name_length].decode()
        offset += name_length
        body = data[offset : offset + body_length]
        if len(body) != body_length:
            raise ValueError(f"section {name!r} truncated")
        sections[name] = body
        offset += body_length
    if offset != len(data):
        raise ValueError("trailing bytes after the last section")
    return sections


def _reject_floats(value: object) -> None:
    if isinstance(value, float):
        raise TypeError(
            f"float {value!r} in canonical state: use integers (ticks, lots, fixed point)"
        )
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"canonical dict keys must be str, got {key!r}")
            _reject_floats(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _reject_floats(item)
