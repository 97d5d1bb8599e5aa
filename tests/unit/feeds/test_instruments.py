from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.feeds.instruments import InstrumentSpec, InstrumentTable, OffTick, Scale


@pytest.mark.parametrize(
    ("step", "text", "units"),
    [
        ("0.01", "16500.01", 1650001),
        ("0.01", "16500.1", 1650010),
        ("0.01", "16500", 1650000),
        ("0.01", "16500.01000000", 1650001),
        ("0.00001", "0.10000000", 10000),
        ("1", "49100000", 49100000),
        ("1", "49100000.0", 49100000),
        ("10", "49100000", 4910000),
        ("0.5", "100.5", 201),
        ("0.25", "0.75", 3),
        ("0.01", "1.5E+2", 15000),
        ("0.01", Decimal("16500.01"), 1650001),
        ("0.1", 26000, 260000),
    ],
)
def test_units_are_exact(step: str, text: str, units: int) -> None:
    assert Scale(step).units(text) == units


@pytest.mark.parametrize(
    ("step", "text"),
    [
        ("0.01", "16500.001"),
        ("1", "49100000.5"),
        ("0.5", "100.2"),
        ("0.01", "NaN"),
        ("0.01", "Infinity"),
        ("0.01", "abc"),
        ("0.01", ""),
        ("10", "49100005"),
    ],
)
def test_off_tick_and_garbage_raise(step: str, text: str) -> None:
    with pytest.raises(OffTick):
        Scale(step).units(text)


def test_negative_values_keep_their_sign() -> None:
    assert Scale("0.01").units("-1.25") == -125


@given(st.integers(min_value=0, max_value=10**15), st.integers(min_value=0, max_value=10))
def test_fast_path_agrees_with_decimal(units: int, decimals: int) -> None:
    step = Decimal(1).scaleb(-decimals)
    text = str(Decimal(units).scaleb(-decimals))
    scale = Scale(step)
    assert scale.units(text) == units
    assert scale._slow(text) == units
    assert scale.value(units) == Decimal(text)


def test_table_lookup_and_ids() -> None:
    table = InstrumentTable.from_mapping("BINANCE", {"BTCUSDT": {"tick": "0.01", "lot": "0.00001"}})
    spec = table.get("BTCUSDT")
    assert spec is not None and spec.instrument_id == "BINANCE.BTCUSDT"
    assert table.symbol_of("BINANCE.BTCUSDT") == "BTCUSDT"
    assert table.get("ETHUSDT") is None
    with pytest.raises(ValueError):
        table.add(InstrumentSpec("OKX", "BTC-USDT", "0.1", "1"))
    assert spec.dust_lots == 10  # 0.0001 / 0.00001
    assert spec.max_price_ticks == 100_000_000
    assert InstrumentSpec("X", "Y", "0.01", "0.00003").dust_lots == 4  # ceil(3.33)


def test_memo_is_bounded_and_returns_the_same_units() -> None:
    from gateway.feeds.instruments import MEMO_SIZE

    scale = Scale("0.01")
    for n in range(MEMO_SIZE + 10):
        assert scale.units(f"{n}.25") == n * 100 + 25
    assert len(scale._memo) <= MEMO_SIZE
    assert scale.units("7.25") == 725
    with pytest.raises(OffTick):
        scale.units("7.255")
    with pytest.raises(OffTick):  # an off-tick value is never memoised as valid
        scale.units("7.255")
