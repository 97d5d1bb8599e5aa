"""RFC 3339 timestamps ("2014-11-07T08:19:27.028459Z") to int nanoseconds, exactly.

Coinbase and Kraken send these on every message. The seconds part is cached (many messages share
it) and the fraction is taken as digits, so no float rounding creeps into `ts_event`.
"""

from __future__ import annotations

import calendar
import time

_NS = 1_000_000_000


_SECONDS: dict[str, int] = {}
_SECONDS_SIZE = 4096


def _epoch_seconds(prefix: str) -> int:
    seconds = _SECONDS.get(prefix)
    if seconds is None:
        seconds = calendar.timegm(time.strptime(prefix, "%Y-%m-%dT%H:%M:%S"))
        if len(_SECONDS) >= _SECONDS_SIZE:
            _SECONDS.clear()
        _SECONDS[prefix] = seconds
    return seconds


def iso_to_ns(text: str) -> int:
    """Accepts a 'Z' or '+00:00' suffix and 0–9 fraction digits; other offsets are rejected."""
    if len(text) == 27 and text[19] == "." and text[26] == "Z":  # Coinbase's microseconds
        seconds = _SECONDS.get(text[:19])
        fraction = text[20:26]
        if seconds is not None and fraction.isdigit() and fraction.isascii():
            return seconds * _NS + int(fraction) * 1000
    if text.endswith("Z"):
        body = text[:-1]
    elif text.endswith("+00:00"):
        body = text[:-6]
    else:
        raise ValueError(f"not a UTC RFC 3339 time: {text!r}")
    seconds_part, _, fraction = body.partition(".")
    if len(fraction) > 9 or (fraction and not fraction.isdigit()):
        raise ValueError(f"bad fraction in {text!r}")
    return _epoch_seconds(seconds_part) * _NS + int(fraction.ljust(9, "0") or 0)
