"""Instruments: what is traded, in which units, and the registry the admin commands change.

Everything the hot path needs is an int: prices in ticks, quantities in lots, money in the
currency's smallest unit. `money_per_tick_lot` (money for 1 tick × 1 lot) must be an exact
integer, so `notional = price × qty × money_per_tick_lot` never rounds; it is checked at load.
The registry is pure: it parses an already-read mapping (TOML text via `from_toml`), never a file.
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TypeVar

from engine.codes import ResultCode
from engine.enums import CloseTodayRule, InstrumentKind, InstrumentStatus, Offset
from engine.money import (
    CEIL_BIAS,
    RATE_SCALE,
    Currency,
    decimal_to_units,
    divide_exact,
    mul_rate_floor,
    rate_from_decimal,
    to_decimal,
)

_E = TypeVar("_E", InstrumentKind, InstrumentStatus, CloseTodayRule)

_OPEN = Offset.OPEN
_CLOSETODAY = Offset.CLOSETODAY

NO_LIMIT = 2**53
"""Upper price limit (ticks) of an instrument without a band; small enough for int64 notionals."""


class InstrumentConfigError(ValueError):
    """An instrument or currency definition that cannot be used (raised at load time only)."""


@dataclass(frozen=True, slots=True)
class CommissionSpec:
    """Commission per trade leg: a rate of notional (ints per 1e8) or money units per lot."""

    by_lot: bool
    open: int
    close: int
    close_today: int

    def amount(self, offset: Offset, notional: int, qty: int) -> int:
        """The commission for one fill; rates round up (the exchange never under-charges)."""
        if offset == _OPEN:
            value = self.open
        elif offset == _CLOSETODAY:
            value = self.close_today
        else:
            value = self.close
        if self.by_lot:
            return qty * value
        return (
            notional * value + CEIL_BIAS
        ) // RATE_SCALE  # mul_rate_ceil, inlined: hot in accounts


@dataclass(frozen=True, slots=True)
class Instrument:
    """One tradable instrument; immutable, so an update replaces it in the registry."""

    index: int
    id: str
    name: str
    kind: InstrumentKind
    currency: Currency
    multiplier: int
    price_tick: Decimal
    lot_size: Decimal
    min_qty: int
    max_qty: int
    margin_rate_e8: int
    commission: CommissionSpec
    band_e8: int
    status: InstrumentStatus
    pre_close: int
    pre_settlement: int
    close_today_rule: CloseTodayRule
    base_asset: str = ""
    money_per_tick_lot: int = field(init=False)
    upper_limit: int = field(init=False)
    lower_limit: int = field(init=False)

    def __post_init__(self) -> None:
        per = self.price_tick * self.lot_size * self.multiplier * self.currency.scale
        if per <= 0 or per != per.to_integral_value():
            raise InstrumentConfigError(
                f"{self.id}: tick {self.price_tick} × lot {self.lot_size} × multiplier "
                f"{self.multiplier} is not a whole number of {self.currency.code} units ({per})"
            )
        object.__setattr__(self, "money_per_tick_lot", int(per))
        if self.band_e8 > 0 and self.pre_settlement > 0:
            width = mul_rate_floor(self.pre_settlement, self.band_e8)
            upper, lower = self.pre_settlement + width, max(1, self.pre_settlement - width)
        else:
            upper, lower = NO_LIMIT, 1
        object.__setattr__(self, "upper_limit", upper)
        object.__setattr__(self, "lower_limit", lower)

    @property
    def exchange(self) -> str:
        return self.id.split(".", 1)[0]

    @property
    def code(self) -> str:
        return self.id.split(".", 1)[1]

    @property
    def trading(self) -> bool:
        return self.status is InstrumentStatus.TRADING

    def notional(self, price_ticks: int, qty_lots: int) -> int:
        """Money units for `qty_lots` at `price_ticks`; exact by construction."""
        return price_ticks * qty_lots * self.money_per_tick_lot

    def margin(self, price_ticks: int, qty_lots: int) -> int:
        """Margin for a futures position or order: notional × margin rate, rounded up."""
        notional = price_ticks * qty_lots * self.money_per_tick_lot
        return (notional * self.margin_rate_e8 + CEIL_BIAS) // RATE_SCALE

    def commission_for(self, offset: Offset, price_ticks: int, qty_lots: int) -> int:
        return self.commission.amount(offset, self.notional(price_ticks, qty_lots), qty_lots)

    def price_to_ticks(self, price: Decimal | str | int) -> int | None:
        """Ticks for a client price; None when it is not a positive multiple of the tick."""
        number = to_decimal(price)
        if number is None or number <= 0:
            return None
        return divide_exact(number, self.price_tick)

    def qty_to_lots(self, qty: Decimal | str | int) -> int | None:
        """Lots for a client quantity; None when it is not a positive multiple of the lot."""
        number = to_decimal(qty)
        if number is None or number <= 0:
            return None
        return divide_exact(number, self.lot_size)

    def ticks_to_price(self, ticks: int) -> Decimal:
        return self.price_tick * ticks

    def lots_to_qty(self, lots: int) -> Decimal:
        return self.lot_size * lots

    def in_band(self, price_ticks: int) -> bool:
        return self.lower_limit <= price_ticks <= self.upper_limit


class InstrumentRegistry:
    """Instruments by dense index and by id, and the admin operations that change them."""

    __slots__ = ("_by_id", "_by_index", "currencies")

    def __init__(
        self, currencies: Mapping[str, Currency], instruments: Collection[Instrument] = ()
    ):
        self.currencies: dict[str, Currency] = dict(currencies)
        self._by_index: list[Instrument] = []
        self._by_id: dict[str, Instrument] = {}
        for instrument in sorted(instruments, key=lambda i: i.index):
            if instrument.index != len(self._by_index) or instrument.id in self._by_id:
                raise InstrumentConfigError(f"{instrument.id}: index or id not dense and unique")
            self.put(instrument)

    @classmethod
    def from_toml(cls, text: str) -> InstrumentRegistry:
        """Parse TOML text (floats as Decimal, never binary floats)."""
        return cls.from_mapping(tomllib.loads(text, parse_float=Decimal))

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, object]) -> InstrumentRegistry:
        """Build from `{currencies: {CODE: {decimals}}, instruments: [{...}, ...]}`."""
        raw_currencies = mapping.get("currencies", {})
        if not isinstance(raw_currencies, Mapping):
            raise InstrumentConfigError("currencies must be a table")
        currencies = {
            code: Currency(code, int(_get(spec, "decimals", code)))
            for code, spec in raw_currencies.items()
        }
        registry = cls(currencies)
        raw_instruments = mapping.get("instruments", [])
        if not isinstance(raw_instruments, list):
            raise InstrumentConfigError("instruments must be an array of tables")
        for fields in raw_instruments:
            registry.put(parse_instrument(len(registry), fields, registry.currencies))
        return registry

    def __len__(self) -> int:
        return len(self._by_index)

    def __iter__(self) -> Iterator[Instrument]:
        return iter(self._by_index)

    def __contains__(self, instrument_id: object) -> bool:
        return instrument_id in self._by_id

    def as_list(self) -> list[Instrument]:
        """The live list of instruments by index (updated in place): the hot path indexes it."""
        return self._by_index

    def by_index(self, index: int) -> Instrument:
        """The instrument at a dense index (raises IndexError: records carry valid indexes)."""
        return self._by_index[index]

    def find(self, index: int) -> Instrument | None:
        """The instrument at an index from outside (a client record), or None."""
        return self._by_index[index] if 0 <= index < len(self._by_index) else None

    def get(self, instrument_id: str) -> Instrument | None:
        return self._by_id.get(instrument_id)

    def put(self, instrument: Instrument) -> None:
        """Insert the next index or replace an existing one (how matching shards learn updates)."""
        if instrument.index == len(self._by_index):
            if instrument.id in self._by_id:
                raise InstrumentConfigError(f"{instrument.id}: duplicate id")
            self._by_index.append(instrument)
        elif self._by_index[instrument.index].id == instrument.id:
            self._by_index[instrument.index] = instrument
        else:
            raise InstrumentConfigError(f"{instrument.id}: index {instrument.index} is taken")
        self._by_id[instrument.id] = instrument

    def create(self, fields: Mapping[str, object]) -> ResultCode:
        """Add an instrument at the next index; INSTRUMENT_EXISTS or CONFIG when refused."""
        if fields.get("id") in self._by_id:
            return ResultCode.INSTRUMENT_EXISTS
        try:
            instrument = parse_instrument(len(self), fields, self.currencies)
        except InstrumentConfigError:
            return ResultCode.CONFIG
        self.put(instrument)
        return ResultCode.OK

    def update(self, instrument_id: str, changes: Mapping[str, object]) -> ResultCode:
        """Change fields (same spelling as the TOML) of an existing instrument; the id and the
        `FIXED_FIELDS` stay (CONFIG; `fixed_changes` names the ones a request would alter)."""
        current = self._by_id.get(instrument_id)
        if current is None:
            return ResultCode.NO_SUCH_INSTRUMENT
        if changes.get("id", instrument_id) != instrument_id:
            return ResultCode.CONFIG
        instrument = self._updated(current, changes)
        if instrument is None or _fixed_differences(current, instrument):
            return ResultCode.CONFIG
        self.put(instrument)
        return ResultCode.OK

    def fixed_changes(self, instrument_id: str, changes: Mapping[str, object]) -> list[str]:
        """The `FIXED_FIELDS` that `changes` would give another value (empty when the update
        is otherwise refused, or changes none of them)."""
        current = self._by_id.get(instrument_id)
        instrument = None if current is None else self._updated(current, changes)
        if current is None or instrument is None:
            return []
        return _fixed_differences(current, instrument)

    def _updated(self, current: Instrument, changes: Mapping[str, object]) -> Instrument | None:
        merged = {**describe(current), **changes}
        try:
            return parse_instrument(current.index, merged, self.currencies)
        except InstrumentConfigError:
            return None

    def roll_day(self, index: int, pre_close: int, pre_settlement: int) -> ResultCode:
        """After settlement: the new reference prices (ticks), which move the limit band."""
        current = self.find(index)
        if current is None:
            return ResultCode.NO_SUCH_INSTRUMENT
        if pre_close <= 0 or pre_settlement <= 0:
            return ResultCode.BAD_ORDER_PARAMETER
        self.put(replace(current, pre_close=pre_close, pre_settlement=pre_settlement))
        return ResultCode.OK

    def suspend(self, instrument_id: str) -> ResultCode:
        return self._set_status(instrument_id, InstrumentStatus.SUSPENDED)

    def resume(self, instrument_id: str) -> ResultCode:
        return self._set_status(instrument_id, InstrumentStatus.TRADING)

    def delist(self, instrument_id: str, holders: Collection[int] = ()) -> ResultCode:
        """Delist, refused with INSTRUMENT_HAS_POSITIONS while `holders` (account ids) is not empty.

        The accounts core knows the holders and names them in its answer.
        """
        if holders and instrument_id in self._by_id:
            return ResultCode.INSTRUMENT_HAS_POSITIONS
        return self._set_status(instrument_id, InstrumentStatus.DELISTED)

    def _set_status(self, instrument_id: str, status: InstrumentStatus) -> ResultCode:
        current = self._by_id.get(instrument_id)
        if current is None:
            return ResultCode.NO_SUCH_INSTRUMENT
        if current.status is InstrumentStatus.DELISTED:
            return ResultCode.INSTRUMENT_NOT_TRADING
        self.put(replace(current, status=status))
        return ResultCode.OK


FIXED_FIELDS = ("kind", "currency", "base_asset", "multiplier", "price_tick", "lot_size")
"""What one tick and one lot of an instrument mean. Books, resting orders, positions, marks,
K-lines and the journal hold prices in ticks and volumes in lots, so these cannot change
after creation (a new contract gets a new id, as exchanges list a new series)."""


def _fixed_differences(current: Instrument, updated: Instrument) -> list[str]:
    return [name for name in FIXED_FIELDS if getattr(current, name) != getattr(updated, name)]


def parse_instrument(index: int, fields: object, currencies: Mapping[str, Currency]) -> Instrument:
    """One instrument from its TOML table; prices in price units, volumes in lots."""
    if not isinstance(fields, Mapping):
        raise InstrumentConfigError(f"instrument #{index} is not a table")
    instrument_id = str(_get(fields, "id", f"#{index}"))
    exchange, dot, code = instrument_id.partition(".")
    if not (exchange and dot and code):
        raise InstrumentConfigError(f"{instrument_id}: id must be EXCHANGE.code")
    currency = currencies.get(str(_get(fields, "currency", instrument_id)))
    if currency is None:
        raise InstrumentConfigError(f"{instrument_id}: unknown currency")
    kind = _enum(InstrumentKind, fields.get("kind", "FUTURE"), instrument_id)
    price_tick = _positive_decimal(fields, "price_tick", instrument_id)
    lot_size = _positive_decimal(fields, "lot_size", instrument_id, default="1")
    multiplier = _positive_int(fields, "multiplier", instrument_id, default=1)
    min_qty = _positive_int(fields, "min_qty", instrument_id, default=1)
    max_qty = _positive_int(fields, "max_qty", instrument_id, default=1_000_000)
    if min_qty > max_qty:
        raise InstrumentConfigError(f"{instrument_id}: min_qty > max_qty")
    margin_rate = _rate(fields, "margin_rate", instrument_id, default="1")
    if not 0 < margin_rate <= RATE_SCALE:
        raise InstrumentConfigError(f"{instrument_id}: margin_rate must be in (0, 1]")
    base_asset = str(fields.get("base_asset", ""))
    if kind is InstrumentKind.SPOT and not base_asset:
        raise InstrumentConfigError(f"{instrument_id}: a spot instrument needs base_asset")
    pre_close = _price(fields, "pre_close", price_tick, instrument_id)
    pre_settlement = _price(fields, "pre_settlement", price_tick, instrument_id) or pre_close
    return Instrument(
        index=index,
        id=instrument_id,
        name=str(fields.get("name", instrument_id)),
        kind=kind,
        currency=currency,
        multiplier=multiplier,
        price_tick=price_tick,
        lot_size=lot_size,
        min_qty=min_qty,
        max_qty=max_qty,
        margin_rate_e8=margin_rate,
        commission=_commission(fields.get("commission", {}), currency, instrument_id),
        band_e8=_rate(fields, "band", instrument_id, default="0"),
        status=_enum(InstrumentStatus, fields.get("status", "TRADING"), instrument_id),
        pre_close=pre_close,
        pre_settlement=pre_settlement,
        close_today_rule=_enum(
            CloseTodayRule, fields.get("close_today_rule", "HISTORY_FIRST"), instrument_id
        ),
        base_asset=base_asset,
    )


def describe(instrument: Instrument) -> dict[str, object]:
    """The TOML-shaped table for an instrument (the inverse of `parse_instrument`)."""
    spec = instrument.commission
    if spec.by_lot:
        scale = instrument.currency.decimals
        values = [Decimal(v).scaleb(-scale) for v in (spec.open, spec.close, spec.close_today)]
    else:
        values = [Decimal(v).scaleb(-8) for v in (spec.open, spec.close, spec.close_today)]
    return {
        "id": instrument.id,
        "name": instrument.name,
        "kind": instrument.kind.name,
        "currency": instrument.currency.code,
        "base_asset": instrument.base_asset,
        "multiplier": instrument.multiplier,
        "price_tick": instrument.price_tick,
        "lot_size": instrument.lot_size,
        "min_qty": instrument.min_qty,
        "max_qty": instrument.max_qty,
        "margin_rate": Decimal(instrument.margin_rate_e8).scaleb(-8),
        "commission": {
            "by": "lot" if spec.by_lot else "rate",
            "open": values[0],
            "close": values[1],
            "close_today": values[2],
        },
        "band": Decimal(instrument.band_e8).scaleb(-8),
        "status": instrument.status.name,
        "pre_close": instrument.ticks_to_price(instrument.pre_close),
        "pre_settlement": instrument.ticks_to_price(instrument.pre_settlement),
        "close_today_rule": instrument.close_today_rule.name,
    }


def _get(fields: object, key: str, where: str) -> object:
    if not isinstance(fields, Mapping) or key not in fields:
        raise InstrumentConfigError(f"{where}: missing {key}")
    return fields[key]


def _decimal(value: object, key: str, where: str) -> Decimal:
    number = to_decimal(value) if isinstance(value, Decimal | str | int) else None
    if number is None:
        raise InstrumentConfigError(f"{where}: {key} must be a decimal number, not {value!r}")
    return number


def _positive_decimal(
    fields: Mapping[str, object], key: str, where: str, default: str | None = None
) -> Decimal:
    raw = fields.get(key, default) if default is not None else _get(fields, key, where)
    number = _decimal(raw, key, where)
    if number <= 0:
        raise InstrumentConfigError(f"{where}: {key} must be positive")
    return number


def _positive_int(fields: Mapping[str, object], key: str, where: str, default: int) -> int:
    raw = fields.get(key, default)
    if isinstance(raw, bool) or not isinstance(raw, int) or raw <= 0:
        raise InstrumentConfigError(f"{where}: {key} must be a positive integer")
    return raw


def _rate(fields: Mapping[str, object], key: str, where: str, default: str) -> int:
    rate = rate_from_decimal(_decimal(fields.get(key, default), key, where))
    if rate is None or rate < 0:
        raise InstrumentConfigError(f"{where}: {key} must be a non-negative rate with ≤ 8 decimals")
    return rate


def _price(fields: Mapping[str, object], key: str, tick: Decimal, where: str) -> int:
    raw = fields.get(key)
    if raw is None:
        return 0
    ticks = divide_exact(_decimal(raw, key, where), tick)
    if ticks is None or ticks < 0:
        raise InstrumentConfigError(f"{where}: {key} {raw} is not on the tick {tick}")
    return ticks


def _commission(raw: object, currency: Currency, where: str) -> CommissionSpec:
    if not isinstance(raw, Mapping):
        raise InstrumentConfigError(f"{where}: commission must be a table")
    by = raw.get("by", "rate")
    if by not in ("rate", "lot"):
        raise InstrumentConfigError(f"{where}: commission.by must be 'rate' or 'lot'")
    decimals = currency.decimals if by == "lot" else 8
    values = []
    for key in ("open", "close", "close_today"):
        default = raw.get("close", "0") if key == "close_today" else "0"
        units = decimal_to_units(_decimal(raw.get(key, default), key, where), decimals)
        if units is None or units < 0:
            raise InstrumentConfigError(f"{where}: commission.{key} is not exact or negative")
        values.append(units)
    return CommissionSpec(by == "lot", values[0], values[1], values[2])


def _enum(enum: type[_E], value: object, where: str) -> _E:
    try:
        member = enum[value] if isinstance(value, str) else enum(value)
    except (KeyError, ValueError):
        raise InstrumentConfigError(f"{where}: {value!r} is not a {enum.__name__}") from None
    if member == 0:
        raise InstrumentConfigError(f"{where}: {enum.__name__} must not be NONE")
    return member
