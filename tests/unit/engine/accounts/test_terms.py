"""Terms: the flattened per-instrument numbers give exactly what the instrument's methods give."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.accounts.terms import Terms, all_terms
from engine.enums import Offset, Side
from engine.instruments import InstrumentRegistry
from tests.unit.engine.accounts.conftest import BTC, CU, INSTRUMENTS, IX, registry

REGISTRY = registry()
TERMS = all_terms(REGISTRY)


@settings(max_examples=300, deadline=None)
@given(
    index=st.sampled_from([IX, CU, BTC]),
    price=st.integers(1, 10**9),
    qty=st.integers(0, 10**6),
    side=st.sampled_from([Side.BUY, Side.SELL]),
)
def test_terms_match_the_instrument(index: int, price: int, qty: int, side: Side) -> None:
    instrument, terms = REGISTRY.by_index(index), TERMS[index]
    notional = instrument.notional(price, qty)
    commission = instrument.commission_for(Offset.OPEN, price, qty)
    assert terms.margin(price, qty) == instrument.margin(price, qty)
    assert terms.fee(terms.close_fee, price, qty) == instrument.commission_for(
        Offset.CLOSE, price, qty
    )
    assert terms.fee(terms.close_today_fee, price, qty) == instrument.commission_for(
        Offset.CLOSETODAY, price, qty
    )
    if terms.spot:
        units = terms.lot_units()
        expected = (0, 0, qty * units) if side is Side.SELL else (0, 0, notional + commission)
        assert terms.holds(side, price, qty) == expected
    else:
        margin = instrument.margin(price, qty)
        assert terms.holds(side, price, qty) == (margin, commission, 0)
        assert terms.open_fill(price, qty) == (notional, margin, commission)


def test_spot_base_units_per_lot() -> None:
    assert TERMS[BTC].lot_units() == 10_000  # 0.0001 BTC at 8 decimals
    assert TERMS[BTC].asset_currency(Side.SELL) == "BTC"
    assert TERMS[BTC].asset_currency(Side.BUY) == "USDT"
    assert TERMS[IX].asset_currency(Side.SELL) == "CNY"


def test_inexact_base_units_are_a_bug_when_used() -> None:
    currencies = {**INSTRUMENTS["currencies"], "BTC": {"decimals": 2}}  # 0.0001 BTC = 0.01 units
    coarse = InstrumentRegistry.from_mapping(
        {"currencies": currencies, "instruments": [INSTRUMENTS["instruments"][BTC]]}
    )
    terms = Terms(coarse.by_index(0), coarse)
    with pytest.raises(AssertionError, match="not exact"):
        terms.lot_units()
