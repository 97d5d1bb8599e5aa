"""One instrument's numbers as the accounts hot path reads them, precomputed per version.

An `Instrument` is immutable and replaced on every change (admin commands, the settlement roll),
and the core rebuilds an index's terms whenever it puts a new one. The formulas are the
instrument's own (engine/instruments.py), flattened so that booking a fill costs a few integer
operations instead of a chain of method calls: notional = price × qty × money per tick-lot;
margin = ceil(notional × margin rate); commission = fee per lot × qty, or ceil(notional × rate).
"""

from __future__ import annotations

from engine.enums import CloseTodayRule, InstrumentKind, InstrumentStatus, Side
from engine.instruments import Instrument, InstrumentRegistry
from engine.money import CEIL_BIAS, RATE_SCALE

_SELL = Side.SELL
_SHFE = CloseTodayRule.SHFE


class Terms:
    """What the core needs of one instrument version, as plain attributes."""

    __slots__ = (
        "base_asset",
        "base_units",
        "by_lot",
        "close_fee",
        "close_today_fee",
        "close_today_rule",
        "currency",
        "index",
        "instrument",
        "lower",
        "margin_rate",
        "max_qty",
        "min_qty",
        "open_fee",
        "per_tick_lot",
        "scale",
        "shfe",
        "spot",
        "trading",
        "upper",
    )

    def __init__(self, instrument: Instrument, registry: InstrumentRegistry) -> None:
        commission = instrument.commission
        self.instrument = instrument
        self.index = instrument.index
        self.spot = instrument.kind is InstrumentKind.SPOT
        self.trading = instrument.status is InstrumentStatus.TRADING
        self.currency = instrument.currency.code
        self.scale = instrument.currency.scale
        self.base_asset = instrument.base_asset
        self.base_units = base_units_per_lot(instrument, registry) if self.spot else 0
        """Base-asset money units per lot (spot); None when not exact, which orders then trip."""
        self.per_tick_lot = instrument.money_per_tick_lot
        self.margin_rate = instrument.margin_rate_e8
        self.by_lot = commission.by_lot
        self.open_fee = commission.open
        self.close_fee = commission.close
        self.close_today_fee = commission.close_today
        self.close_today_rule = instrument.close_today_rule
        self.shfe = instrument.close_today_rule is _SHFE
        self.upper = instrument.upper_limit
        self.lower = instrument.lower_limit
        self.min_qty = instrument.min_qty
        self.max_qty = instrument.max_qty

    def fee(self, rate: int, price: int, qty: int) -> int:
        """Commission for `qty` lots at `price` with one of the fee values (open/close/today)."""
        if self.by_lot:
            return qty * rate
        return (price * qty * self.per_tick_lot * rate + CEIL_BIAS) // RATE_SCALE

    def margin(self, price: int, qty: int) -> int:
        return (price * qty * self.per_tick_lot * self.margin_rate + CEIL_BIAS) // RATE_SCALE

    def lot_units(self) -> int:
        """Base units per lot of a spot instrument; a bug when the definition is not exact."""
        if self.base_units is None:
            raise AssertionError(f"{self.instrument.id}: base asset units per lot are not exact")
        return self.base_units

    def open_fill(self, price: int, qty: int) -> tuple[int, int, int]:
        """(notional, margin, commission) of a futures fill that opens `qty` lots at `price`."""
        notional = price * qty * self.per_tick_lot
        if self.by_lot:
            commission = qty * self.open_fee
        else:
            commission = (notional * self.open_fee + CEIL_BIAS) // RATE_SCALE
        return notional, (notional * self.margin_rate + CEIL_BIAS) // RATE_SCALE, commission

    def holds(self, side: Side, price: int, qty: int) -> tuple[int, int, int]:
        """(margin, commission, asset) an opening futures or spot order of `qty` lots holds.

        Spot: a buy holds notional + commission of the quote currency, a sell the base asset.
        """
        notional = price * qty * self.per_tick_lot
        if self.by_lot:
            commission = qty * self.open_fee
        else:
            commission = (notional * self.open_fee + CEIL_BIAS) // RATE_SCALE
        if self.spot:
            if side is _SELL:
                return 0, 0, qty * self.lot_units()
            return 0, 0, notional + commission
        return (notional * self.margin_rate + CEIL_BIAS) // RATE_SCALE, commission, 0

    def asset_currency(self, side: Side) -> str:
        """The currency an order holds: the base asset for a spot sell, else the instrument's."""
        return self.base_asset if self.spot and side is _SELL else self.currency


def base_units_per_lot(instrument: Instrument, registry: InstrumentRegistry) -> int | None:
    """Base-asset money units in one lot of a spot instrument; None when not exact or unknown."""
    currency = registry.currencies.get(instrument.base_asset)
    if currency is None:
        return None
    units = instrument.lot_size * currency.scale
    return int(units) if units == units.to_integral_value() else None


def all_terms(registry: InstrumentRegistry) -> list[Terms]:
    return [Terms(instrument, registry) for instrument in registry]
