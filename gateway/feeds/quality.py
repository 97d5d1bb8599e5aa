"""The trade quality score of reference/ingestion.md (seed 000), in integer units.

Starts at 100 and saturates at 0: −30 for a non-positive price, −30 for a non-positive size,
−20 for an empty or malformed symbol, −10 for dust (size < 0.0001), −20 for an implausible price
(> 1,000,000 by default). NaN and infinity never get here: `Scale.units` rejects them. The two
thresholds are per instrument (`InstrumentSpec.dust_lots`, `max_price_ticks`) because a KRW
price above a million is normal.
"""

from __future__ import annotations

import re

_SYMBOL = re.compile(r"^[A-Za-z0-9]+([-_/][A-Za-z0-9]+)*$")


def symbol_ok(symbol: str) -> bool:
    return bool(symbol) and _SYMBOL.match(symbol) is not None


def quality_score(
    price: int, qty: int, symbol_valid: bool, dust_lots: int, max_price_ticks: int
) -> int:
    score = 100
    if price <= 0:
        score -= 30
    if qty <= 0:
        score -= 30
    if not symbol_valid:
        score -= 20
    if qty < dust_lots:
        score -= 10
    if price > max_price_ticks:
        score -= 20
    return score if score > 0 else 0
