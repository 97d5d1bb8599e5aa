"""RFC 3339 timestamps ("2014-11-07T08:19:27.028459Z") to int nanoseconds, exactly.

Coinbase and Kraken send these on every message. The seconds part is cached (many messages share
it) and the fraction is taken as digits, so no float rounding creeps into `ts_event`.
"""

from __future__ import annotations

import calendar
import time

_NS = 1_000_000_000


_SECOND_NS: dict[str, int] = {}
"""'YYYY-MM-DDTHH:MM:SS' → its epoch time in ns (a multiplication of big ints saved per message)."""
_SECONDS_SIZE = 4096


def _epoch_ns(prefix: str) -> int:
    ns = _SECOND_NS.get(prefix)
    if ns is None:
        ns = calendar.timegm(time.strptime(prefix, "%Y-%m-%dT%H:%M:%S")) * _NS
        if len(_SECOND_NS) >= _SECONDS_SIZE:
            _SECOND_NS.clear()
        _SECOND_NS[prefix] = ns
    return ns


def iso_to_ns(text: str) -> int:
    """Accepts a 'Z' or '+00:00' suffix and 0–9 fraction digits; other offsets are rejected."""
    if len(text) == 27 and text[26] == "Z":  # Coinbase's microseconds
        ns = _SECOND_NS.get(text[:19])
        fraction = text[20:26]
        if ns is not None and text[19] == "." and fraction.isdigit() and fraction.isascii():
            return ns + int(fraction) * 1000
    if text.endswith("Z"):
        body = text[:-1]
    elif text.endswith("+00:00"):
        body = text[:-6]
    else:
        raise ValueError(f"not a UTC RFC 3339 time: {text!r}")
    seconds_part, _, fraction = body.partition(".")
    if len(fraction) > 9 or (fraction and not fraction.isdigit()):
        raise ValueError(f"bad fraction in {text!r}")
    return _epoch_ns(seconds_part) + int(fraction.ljust(9, "0") or 0)
