"""Money: exact Decimal ↔ units conversion and the rounding direction of rate products."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.money import (
    CNY,
    RATE_SCALE,
    USDT,
    Currency,
    decimal_to_units,
    divide_exact,
    mul_rate_ceil,
    mul_rate_floor,
    rate_from_decimal,
    units_to_decimal,
)


def test_currency_scales() -> None:
    assert CNY.scale == 100 and USDT.scale == 10**8
    assert CNY.to_units("1000000.00") == 100_000_000
    assert USDT.to_units(Decimal("0.00000001")) == 1
    assert CNY.from_units(100_099_900) == Decimal("1000999.00")


@pytest.mark.parametrize("value", ["0.001", "1e-3", "NaN", "Infinity", "abc", 0.1, True, None])
def test_inexact_or_non_decimal_values_are_refused(value: object) -> None:
    assert CNY.to_units(value) is None  # type: ignore[arg-type]


def test_round_trip_is_exact() -> None:
    for units in (0, 1, -1, 12345678901, -99):
        assert decimal_to_units(units_to_decimal(units, 8), 8) == units


def test_rate_products_round_in_the_stated_direction() -> None:
    assert mul_rate_ceil(20_000_00, 10_000_000) == 2_000_00  # exact: 10% of 20,000.00
    assert mul_rate_ceil(1, 1) == 1 and mul_rate_floor(1, 1) == 0
    assert mul_rate_ceil(-1, 1) == 0 and mul_rate_floor(-1, 1) == -1
    assert mul_rate_ceil(3, RATE_SCALE // 3) == 1


@given(st.integers(-(10**30), 10**30), st.integers(0, RATE_SCALE))
def test_ceil_is_exact_for_every_sign(amount: int, rate: int) -> None:
    """The biased floor division (engine/money.py CEIL_BIAS) equals the true ceiling."""
    product = amount * rate
    assert mul_rate_ceil(amount, rate) == -(-product // RATE_SCALE)
    assert mul_rate_floor(amount, rate) == product // RATE_SCALE


def test_reference_margin_example() -> None:
    # margin = 100 × 10 lots × 200 multiplier × 10% = 20,000 (CNY), in fen
    notional = CNY.to_units(Decimal(100) * 10 * 200)
    assert mul_rate_ceil(notional, rate_from_decimal("0.1")) == CNY.to_units("20000")


def test_rates_and_exact_division() -> None:
    assert rate_from_decimal("0.000023") == 2300
    assert rate_from_decimal("0.000000001") is None
    assert divide_exact(Decimal("3800.2"), Decimal("0.2")) == 19001
    assert divide_exact(Decimal("3800.1"), Decimal("0.2")) is None


def test_bad_currency_is_a_config_error() -> None:
    with pytest.raises(ValueError):
        Currency("", 2)
