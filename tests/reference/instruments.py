"""The reference model's own reading of the instruments TOML (independent of engine/instruments.py).

Only what the model needs, as plain ints: money per tick × lot, rates per 1e8, limits in ticks.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path

from engine.enums import InstrumentKind, Offset

DEFAULT_TOML = Path(__file__).resolve().parents[2] / "services" / "instruments.toml"
E8 = 10**8
NO_BAND = 2**53
"""Half-width (ticks) standing for "no limit band" (band 0 in the TOML)."""


def ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


@dataclass
class RefInstrument:
    index: int
    id: str
    kind: InstrumentKind
    currency: str
    base_asset: str
    base_units_per_lot: int
    money_per_tick_lot: int
    min_qty: int
    max_qty: int
    margin_e8: int
    commission_by_lot: bool
    commission: dict[Offset, int]
    band: Decimal
    pre_settlement: int
    shfe: bool
    pre_close: int = 0
    """The call auction's reference price (matching's; settlement sets it to the last mark)."""
    trading: bool = True

    @property
    def upper(self) -> int:
        return self.pre_settlement + self._width()

    @property
    def lower(self) -> int:
        return max(1, self.pre_settlement - self._width())

    def _width(self) -> int:
        if not self.band:
            return NO_BAND
        return int((self.pre_settlement * self.band).to_integral_value(ROUND_FLOOR))

    def value(self, price: int, qty: int) -> int:
        return price * qty * self.money_per_tick_lot

    def margin(self, price: int, qty: int) -> int:
        return ceil_div(self.value(price, qty) * self.margin_e8, E8)

    def fee(self, offset: Offset, price: int, qty: int) -> int:
        rate = self.commission[offset]
        if self.commission_by_lot:
            return rate * qty
        return ceil_div(self.value(price, qty) * rate, E8)


def _units(text: object, decimals: int) -> int:
    scaled = Decimal(str(text)).scaleb(decimals)
    assert scaled == scaled.to_integral_value(), f"{text} has more than {decimals} decimals"
    return int(scaled)


def load_instruments(path: Path = DEFAULT_TOML) -> tuple[list[RefInstrument], dict[str, int]]:
    """(instruments in index order, currency decimals) from the TOML file."""
    data = tomllib.loads(path.read_text(), parse_float=Decimal)
    decimals = {code: spec["decimals"] for code, spec in data["currencies"].items()}
    instruments = []
    for index, fields in enumerate(data["instruments"]):
        tick, lot = Decimal(str(fields["price_tick"])), Decimal(str(fields.get("lot_size", "1")))
        currency = fields["currency"]
        per = tick * lot * fields.get("multiplier", 1) * 10 ** decimals[currency]
        assert per == per.to_integral_value()
        spec = fields["commission"]
        by_lot = spec.get("by", "rate") == "lot"
        places = decimals[currency] if by_lot else 8
        close = spec.get("close", "0")
        base = fields.get("base_asset", "")
        instruments.append(
            RefInstrument(
                index=index,
                id=fields["id"],
                kind=InstrumentKind[fields.get("kind", "FUTURE")],
                currency=currency,
                base_asset=base,
                base_units_per_lot=_units(lot, decimals[base]) if base else 0,
                money_per_tick_lot=int(per),
                min_qty=fields.get("min_qty", 1),
                max_qty=fields.get("max_qty", 1_000_000),
                margin_e8=_units(fields.get("margin_rate", "1"), 8),
                commission_by_lot=by_lot,
                commission={
                    Offset.OPEN: _units(spec.get("open", "0"), places),
                    Offset.CLOSE: _units(close, places),
                    Offset.CLOSETODAY: _units(spec.get("close_today", close), places),
                },
                band=Decimal(str(fields.get("band", "0"))),
                pre_settlement=int(Decimal(str(fields["pre_settlement"])) / tick),
                shfe=fields.get("close_today_rule", "HISTORY_FIRST") == "SHFE",
                pre_close=int(Decimal(str(fields.get("pre_close", "0"))) / tick),
            )
        )
    return instruments, decimals
