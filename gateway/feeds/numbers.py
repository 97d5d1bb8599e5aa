"""JSON with numbers kept exact, for venues that send prices as JSON numbers (Kraken v2,
Upbit, Bithumb), without paying for `Decimal` on every frame.

orjson turns `49100000.5` into a float. A float is exact enough when the literal has at most
15 significant digits: every decimal of ≤ 15 significant digits (in the normal range) maps to
a distinct double (DBL_DIG = 15), and `repr` gives the shortest decimal that maps back to the
same double — which then has ≤ 15 digits too, so it *is* the literal. `Scale.units` converts a
float through `repr`, so such values reach the integer ticks/lots digit-exactly (and refuses
subnormal floats, where DBL_DIG does not hold).

A frame whose text holds 17 or more number characters (digits, `.`, `e`, `E`, `+`, `-`) in a
row — where a literal with 16+ significant digits would be, exponent forms included — is
parsed again with `parse_float=Decimal` instead. The check is conservative (such a run inside
a string, or a 17-digit integer, only costs the slow path) and never lossy. JSON integers are
exact either way.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson

_DIGITS = bytes(ord("d") if chr(c) in "0123456789.eE+-" else ord(" ") for c in range(256))
"""bytes.translate table: the characters of a JSON number → "d", everything else → " "."""

_LONG_RUN = b"d" * 17

_DECIMAL = json.JSONDecoder(parse_float=Decimal)


def risky(text: str) -> bool:
    """True when a number literal in `text` may not survive a double (see the module doc)."""
    # find, not `in`: bytes.__contains__ first tries the needle as an int and formats (then
    # clears) a TypeError, a third of this function's cost
    return text.encode().translate(_DIGITS).find(_LONG_RUN) >= 0


def loads_exact(text: str) -> Any:
    """JSON → Python with every non-integer number either a float whose `repr` is the literal
    or, when that cannot be guaranteed, a `Decimal`."""
    if risky(text):
        return _DECIMAL.decode(text)
    return orjson.loads(text)
