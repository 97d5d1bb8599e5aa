"""Instruments: the default TOML, unit conversions, derived limits, and admin operations."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from engine.codes import ResultCode
from engine.enums import CloseTodayRule, InstrumentKind, InstrumentStatus, Offset
from engine.instruments import (
    InstrumentConfigError,
    InstrumentRegistry,
    describe,
    parse_instrument,
)

DEFAULTS = Path(__file__).resolve().parents[3] / "services" / "instruments.toml"


@pytest.fixture
def registry() -> InstrumentRegistry:
    return InstrumentRegistry.from_toml(DEFAULTS.read_text())


def test_defaults_are_loaded_with_dense_indexes(registry: InstrumentRegistry) -> None:
    ids = [i.id for i in registry]
    assert ids[:4] == ["CFFEX.IF2501", "CFFEX.IC2501", "CFFEX.IH2501", "SHFE.cu2501"]
    assert "BINANCE.BTCUSDT" in registry
    assert [i.index for i in registry] == list(range(len(registry)))
    assert registry.by_index(3) is registry.get("SHFE.cu2501")
    assert registry.find(99) is None and registry.get("X.Y") is None


def test_future_units_and_limits(registry: InstrumentRegistry) -> None:
    cu = registry.get("SHFE.cu2501")
    assert cu is not None
    assert (cu.exchange, cu.code, cu.kind) == ("SHFE", "cu2501", InstrumentKind.FUTURE)
    assert cu.close_today_rule is CloseTodayRule.SHFE
    assert cu.money_per_tick_lot == 5 * 10 * 100  # 10 CNY tick × 5 t per lot, in fen
    assert cu.price_to_ticks(Decimal("50000")) == 5000
    assert cu.price_to_ticks("50005") is None and cu.price_to_ticks("-10") is None
    # reference: margin for 50000 × 1 × 5 × 10% = 25,000 CNY
    assert cu.margin(5000, 1) == 25_000_00
    # band 8% of 75,000: 69,000 .. 81,000
    assert (cu.lower_limit, cu.upper_limit) == (6900, 8100)
    assert cu.in_band(8100) and not cu.in_band(8101)


def test_commission_by_rate_by_offset(registry: InstrumentRegistry) -> None:
    ic = registry.get("CFFEX.IF2501")
    assert ic is not None
    price = ic.price_to_ticks("3800")
    assert ic.notional(price, 1) == 3800 * 300 * 100
    assert ic.commission_for(Offset.OPEN, price, 1) == 2622  # 1,140,000 × 0.000023 = 26.22
    assert ic.commission_for(Offset.CLOSETODAY, price, 1) == 26220


def test_commission_by_lot() -> None:
    registry = InstrumentRegistry.from_mapping(
        {
            "currencies": {"CNY": {"decimals": 2}},
            "instruments": [
                {
                    "id": "DCE.m2501",
                    "currency": "CNY",
                    "price_tick": "1",
                    "multiplier": 10,
                    "commission": {"by": "lot", "open": "1.51", "close": "1.51"},
                }
            ],
        }
    )
    m = registry.by_index(0)
    assert m.commission_for(Offset.OPEN, 3000, 4) == 604
    assert m.commission_for(Offset.CLOSETODAY, 3000, 1) == 151  # close_today defaults to close


def test_spot_with_fractional_lots(registry: InstrumentRegistry) -> None:
    btc = registry.get("BINANCE.BTCUSDT")
    assert btc is not None and btc.kind is InstrumentKind.SPOT and btc.base_asset == "BTC"
    assert btc.qty_to_lots("0.0001") == 1 and btc.qty_to_lots("1.5") == 15000
    assert btc.qty_to_lots("0.00015") is None
    price = btc.price_to_ticks("95000.01")
    assert price == 9_500_001
    # 95,000.01 USDT × 0.0001 BTC = 9.500001 USDT = 950,000,100 units of 1e-8
    assert btc.notional(price, 1) == 950_000_100
    assert btc.lots_to_qty(3) == Decimal("0.0003") and btc.ticks_to_price(price) == Decimal(
        "95000.01"
    )


def test_money_per_tick_lot_must_be_exact() -> None:
    with pytest.raises(InstrumentConfigError, match="whole number"):
        InstrumentRegistry.from_mapping(
            {
                "currencies": {"CNY": {"decimals": 2}},
                "instruments": [
                    {"id": "X.Y", "currency": "CNY", "price_tick": "0.001", "lot_size": "1"}
                ],
            }
        )


@pytest.mark.parametrize(
    "change",
    [
        {"id": "nodot"},
        {"currency": "EUR"},
        {"price_tick": "0"},
        {"margin_rate": "1.5"},
        {"min_qty": 5, "max_qty": 2},
        {"kind": "OPTION"},
        {"pre_close": "3800.1"},
        {"commission": {"by": "share"}},
        {"price_tick": 0.2},
    ],
)
def test_bad_definitions_are_refused(registry: InstrumentRegistry, change: dict) -> None:
    fields = {**describe(registry.by_index(0)), **change}
    with pytest.raises(InstrumentConfigError):
        parse_instrument(0, fields, registry.currencies)


def test_describe_round_trips(registry: InstrumentRegistry) -> None:
    for instrument in registry:
        assert parse_instrument(instrument.index, describe(instrument), registry.currencies) == (
            instrument
        )


def test_admin_operations(registry: InstrumentRegistry) -> None:
    fields = {**describe(registry.by_index(0)), "id": "CFFEX.IF2502", "name": "IF 2502"}
    assert registry.create(fields) is ResultCode.OK
    new = registry.get("CFFEX.IF2502")
    assert new is not None and new.index == len(registry) - 1
    assert registry.create(fields) is ResultCode.INSTRUMENT_EXISTS
    assert (
        registry.create({**fields, "id": "CFFEX.IF2503", "price_tick": "-1"}) is ResultCode.CONFIG
    )

    assert registry.update("CFFEX.IF2502", {"margin_rate": "0.2"}) is ResultCode.OK
    assert registry.get("CFFEX.IF2502").margin_rate_e8 == 20_000_000  # type: ignore[union-attr]
    assert registry.update("NOPE.X", {}) is ResultCode.NO_SUCH_INSTRUMENT
    assert registry.update("CFFEX.IF2502", {"id": "OTHER.X"}) is ResultCode.CONFIG

    assert registry.suspend("CFFEX.IF2502") is ResultCode.OK
    assert registry.get("CFFEX.IF2502").status is InstrumentStatus.SUSPENDED  # type: ignore[union-attr]
    assert registry.resume("CFFEX.IF2502") is ResultCode.OK
    assert registry.get("CFFEX.IF2502").trading  # type: ignore[union-attr]

    assert registry.delist("CFFEX.IF2502", holders=[7, 9]) is ResultCode.INSTRUMENT_HAS_POSITIONS
    assert registry.delist("CFFEX.IF2502") is ResultCode.OK
    assert registry.resume("CFFEX.IF2502") is ResultCode.INSTRUMENT_NOT_TRADING
    assert registry.suspend("NOPE.X") is ResultCode.NO_SUCH_INSTRUMENT


def test_roll_day_moves_the_band(registry: InstrumentRegistry) -> None:
    assert registry.roll_day(3, 8000, 8000) is ResultCode.OK
    cu = registry.by_index(3)
    assert (cu.pre_settlement, cu.lower_limit, cu.upper_limit) == (8000, 7360, 8640)
    assert registry.roll_day(99, 1, 1) is ResultCode.NO_SUCH_INSTRUMENT
    assert registry.roll_day(3, 0, 1) is ResultCode.BAD_ORDER_PARAMETER


def test_margin_and_commission_round_up_like_mul_rate_ceil(registry: InstrumentRegistry) -> None:
    from engine.money import mul_rate_ceil

    for instrument in registry:
        for price, qty in ((1, 1), (19_001, 3), (9_500_001, 7)):
            notional = instrument.notional(price, qty)
            assert instrument.margin(price, qty) == mul_rate_ceil(
                notional, instrument.margin_rate_e8
            )
            for offset, rate in (
                (Offset.OPEN, instrument.commission.open),
                (Offset.CLOSE, instrument.commission.close),
                (Offset.CLOSEYESTERDAY, instrument.commission.close),
                (Offset.CLOSETODAY, instrument.commission.close_today),
            ):
                expected = mul_rate_ceil(notional, rate)
                assert instrument.commission_for(offset, price, qty) == expected


def test_what_a_tick_and_a_lot_mean_cannot_change(registry: InstrumentRegistry) -> None:
    instrument = registry.by_index(0)
    now = describe(instrument)
    other_tick = {"price_tick": instrument.price_tick * 2}
    assert registry.fixed_changes(instrument.id, other_tick) == ["price_tick"]
    assert registry.update(instrument.id, other_tick) is ResultCode.CONFIG
    both = {"multiplier": instrument.multiplier * 2, "lot_size": instrument.lot_size * 2}
    assert registry.fixed_changes(instrument.id, both) == ["multiplier", "lot_size"]
    assert registry.by_index(0) == instrument
    same_values = {name: now[name] for name in ("kind", "currency", "price_tick", "lot_size")}
    assert registry.fixed_changes(instrument.id, {**same_values, "margin_rate": "0.3"}) == []
    assert registry.update(instrument.id, {**same_values, "margin_rate": "0.3"}) is ResultCode.OK
    assert registry.fixed_changes("NOPE.X", other_tick) == []
    assert registry.fixed_changes(instrument.id, {"price_tick": "-1"}) == []  # refused otherwise
