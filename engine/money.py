"""Money as integer fixed point per currency, and the rate arithmetic that books every rounding.

Balances, margin, commission and PnL are ints in the currency's smallest unit (0.01 CNY,
1e-8 USDT), so conservation checks are exact. Rates (margin, commission, limit band) are ints
per `RATE_SCALE`; every product with a rate rounds in a stated direction. Decimal is the only
way in from text, and an inexact value is refused rather than silently rounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext

RATE_SCALE = 10**8
"""Rates are ints per 1e8: 10% margin is 10_000_000, 0.5 bp commission is 5_000."""
CEIL_BIAS = RATE_SCALE - 1
"""`(x + CEIL_BIAS) // RATE_SCALE` is ceil(x / RATE_SCALE) for every int x (floor division),
with two fewer int allocations than `-(-x // RATE_SCALE)`: the accounts hot path rounds so."""


@dataclass(frozen=True, slots=True)
class Currency:
    """A currency code and how many decimals its smallest money unit has."""

    code: str
    decimals: int

    def __post_init__(self) -> None:
        if not self.code or not 0 <= self.decimals <= 18:
            raise ValueError(f"bad currency {self.code!r} with {self.decimals} decimals")

    @property
    def scale(self) -> int:
        """Money units per one whole currency unit (100 for CNY)."""
        return 10**self.decimals

    def to_units(self, amount: Decimal | str | int) -> int | None:
        """Whole money units for an amount, or None when it has more decimals than the currency."""
        return decimal_to_units(amount, self.decimals)

    def from_units(self, units: int) -> Decimal:
        return units_to_decimal(units, self.decimals)


CNY = Currency("CNY", 2)
USDT = Currency("USDT", 8)


def to_decimal(value: Decimal | str | int) -> Decimal | None:
    """A finite Decimal from a Decimal, str or int; None for floats, NaN, infinities or garbage.

    Floats are refused on purpose: `int(float * scale)` is how prices get corrupted.
    """
    if isinstance(value, bool) or not isinstance(value, Decimal | str | int):
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(value)
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def decimal_to_units(amount: Decimal | str | int, decimals: int) -> int | None:
    """`amount × 10**decimals` as an int, or None when that is not exact (or not a number)."""
    number = to_decimal(amount)
    if number is None:
        return None
    scaled = number.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        return None
    return int(scaled)


def units_to_decimal(units: int, decimals: int) -> Decimal:
    """The exact Decimal for `units / 10**decimals`."""
    return Decimal(units).scaleb(-decimals)


def divide_exact(numerator: Decimal, denominator: Decimal) -> int | None:
    """`numerator / denominator` as an int when it divides exactly (a price in ticks), else None."""
    if denominator <= 0:
        return None
    try:
        quotient, remainder = divmod(numerator, denominator)
    except InvalidOperation:  # more quotient digits than the context holds: widen it, rarely
        with localcontext() as wide:
            wide.prec = len(numerator.as_tuple().digits) + len(denominator.as_tuple().digits)
            wide.prec += max(numerator.adjusted() - denominator.adjusted(), 0) + 2
            quotient, remainder = divmod(numerator, denominator)
    if remainder != 0:
        return None
    return int(quotient)


def mul_rate_ceil(amount: int, rate_e8: int) -> int:
    """`amount × rate / RATE_SCALE` rounded up: what the exchange charges or holds."""
    return (amount * rate_e8 + CEIL_BIAS) // RATE_SCALE


def mul_rate_floor(amount: int, rate_e8: int) -> int:
    """`amount × rate / RATE_SCALE` rounded down (towards -inf): limit bands and pay-outs."""
    return (amount * rate_e8) // RATE_SCALE


def rate_from_decimal(rate: Decimal | str | int) -> int | None:
    """A rate given as a fraction (`"0.1"`) as an int per `RATE_SCALE`; None when not exact."""
    return decimal_to_units(rate, 8)
