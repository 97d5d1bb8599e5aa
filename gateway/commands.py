"""Parsed request fields → backend commands: Decimal prices and quantities become ticks and lots.

This is where the edge checks a client's numbers against the instrument (the engine re-checks
them): an unknown instrument is 1007, an off-tick price 4005, a fractional lot or a missing limit
price 1008. Both the REST/`/ws` and the DIFF spellings of an order end in the same `PlaceOrder`.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from engine.codes import ResultCode
from engine.enums import OrderType, TimeCondition, VolumeCondition
from engine.money import CNY, Currency
from gateway.backend import AdjustBalance, InstrumentSpec, PlaceOrder
from gateway.errors import Rejected
from gateway.requests import MAX_ID, SUBMIT_ORDER
from gateway.schema import Field

InstrumentLookup = Callable[[str], InstrumentSpec | None]

DIFF_TIME_CONDITIONS = {
    "GFD": TimeCondition.GFD,
    "GTC": TimeCondition.GTC,
    "IOC": TimeCondition.IOC,
}
DIFF_VOLUME_CONDITIONS = {
    "ANY": VolumeCondition.ANY,
    "MIN": VolumeCondition.MIN,
    "ALL": VolumeCondition.ALL,
}


def place_order(user_id: int, fields: dict[str, Any], lookup: InstrumentLookup) -> PlaceOrder:
    """A parsed `SUBMIT_ORDER` → `PlaceOrder`."""
    return _build_order(
        user_id,
        fields["account_id"],
        fields["instrument_id"],
        fields,
        fields["order_type"],
        fields["price"],
        fields["time_condition"],
        fields["volume_condition"],
        fields["client_order_id"],
        lookup,
    )


def place_order_fast(
    user_id: int, message: dict[str, Any], lookup: InstrumentLookup, envelope: frozenset[str]
) -> PlaceOrder | None:
    """`place_order(SUBMIT_ORDER.parse(message))` in one pass for the common, valid order: the
    same result, without a Decimal per number. None when the message is anything but plainly
    valid (a refusal, an unusual spelling): the generic path then decides, and words the
    refusal. The checks are the schema's own (its fields' spellings, patterns and bounds).
    """
    if not message.keys() <= _allowed(envelope):
        return None
    get = message.get
    account_id = get("account_id")
    if type(account_id) is not int or not 0 < account_id <= _MAX_ID:
        return None
    instrument_id = get("instrument_id")
    if type(instrument_id) is not str or not _valid_text(_INSTRUMENT, instrument_id):
        return None
    side = _choice(_DIRECTION, get("direction"))
    offset = _choice(_OFFSET, get("offset"))
    order_type = _choice(_ORDER_TYPE, get("order_type"))
    time_condition = _choice(_TIME_CONDITION, get("time_condition"))
    volume_condition = _choice(_VOLUME_CONDITION, get("volume_condition"))
    client_order_id = get("client_order_id")
    if (
        side is None
        or offset is None
        or order_type is None
        or time_condition is None
        or volume_condition is None
        or (client_order_id is not None and not _valid_text(_CLIENT_ID, client_order_id))
    ):
        return None
    instrument = lookup(instrument_id)
    if instrument is None:
        return None
    qty = _exact(instrument.lot_size, get("volume"), instrument.qty_to_lots)
    price = get("price")
    ticks = _exact(instrument.price_tick, price, instrument.price_to_ticks) if price else None
    if qty is None or (price is not None and ticks is None):
        return None
    if order_type is OrderType.MARKET:
        ticks = 0
    elif ticks is None:
        return None
    return PlaceOrder(
        user_id=user_id,
        account_id=account_id,
        instrument_id=instrument_id,
        side=side,
        offset=offset,
        order_type=order_type,
        time_condition=time_condition,
        volume_condition=volume_condition,
        price=ticks,
        qty=qty,
        client_order_id=client_order_id,
    )


_FIELDS = {spec.name: spec for spec in SUBMIT_ORDER.fields}
_ORDER_KEYS = frozenset(_FIELDS)
_MAX_ID = int(MAX_ID)
_INSTRUMENT, _CLIENT_ID = _FIELDS["instrument_id"], _FIELDS["client_order_id"]
_DIRECTION, _OFFSET, _ORDER_TYPE, _TIME_CONDITION, _VOLUME_CONDITION = (
    _FIELDS[name]
    for name in ("direction", "offset", "order_type", "time_condition", "volume_condition")
)
_EXACT: dict[tuple[Decimal, int | float], int | None] = {}
"""(tick or lot size, client number) → ticks or lots: clients send few distinct prices and
sizes, and the Decimal arithmetic is most of an order's checking cost."""
_EXACT_KEPT = 100_000


@functools.cache
def _allowed(envelope: frozenset[str]) -> frozenset[str]:
    return _ORDER_KEYS | envelope


def _choice(spec: Field, value: Any) -> Any:
    """The member an upper-case spelling names; the default when absent; None otherwise."""
    if value is None:
        return spec.default if not spec.required else None
    return spec.choices.get(value) if type(value) is str else None


def _valid_text(spec: Field, value: Any) -> bool:
    return (
        type(value) is str
        and len(value) <= spec.max_length
        and (spec.pattern is None or _pattern(spec.pattern).fullmatch(value) is not None)
    )


@functools.cache
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _exact(step: Decimal, value: Any, convert: Callable[[Decimal], int | None]) -> int | None:
    """A positive finite JSON number as a whole count of `step` (None if it is not one)."""
    kind = type(value)
    if kind is float:
        if not math.isfinite(value):
            return None
    elif kind is not int:
        return None
    key = (step, value)
    if key in _EXACT:
        return _EXACT[key]
    if len(_EXACT) >= _EXACT_KEPT:
        _EXACT.clear()
    number = Decimal(repr(value)) if kind is float else Decimal(value)
    try:
        count = convert(number) if number > 0 else None
    except ArithmeticError:  # not countable here: the generic path answers it
        return None
    _EXACT[key] = count
    return count


def place_diff_order(
    user_id: int, account_id: int, fields: dict[str, Any], lookup: InstrumentLookup
) -> PlaceOrder:
    """A parsed DIFF `insert_order` → `PlaceOrder`; ANY/BEST/FIVELEVEL are market orders."""
    time_condition = DIFF_TIME_CONDITIONS.get(fields["time_condition"])
    if time_condition is None:
        raise Rejected(
            ResultCode.BAD_ORDER_PARAMETER,
            f"time_condition {fields['time_condition']} is not supported",
        )
    market = fields["price_type"] != "LIMIT"
    return _build_order(
        user_id,
        account_id,
        f"{fields['exchange_id']}.{fields['instrument_id']}",
        fields,
        OrderType.MARKET if market else OrderType.LIMIT,
        fields["limit_price"],
        TimeCondition.IOC if market else time_condition,
        DIFF_VOLUME_CONDITIONS[fields["volume_condition"]],
        fields["order_id"],
        lookup,
    )


def adjust_balance(user_id: int, fields: dict[str, Any], sign: int) -> AdjustBalance:
    """A parsed `ADJUST_BALANCE` → a deposit (sign +1) or withdrawal (sign −1)."""
    return AdjustBalance(
        user_id=user_id,
        account_id=fields["account_id"],
        amount=sign * to_money(fields["amount"]),
        transaction_id=fields["transaction_id"],
    )


def to_money(amount: Decimal, currency: Currency = CNY) -> int:
    """A client amount → fixed-point units; more decimals than the currency has is refused."""
    units = currency.to_units(amount)
    if units is None:
        raise Rejected(
            ResultCode.BAD_MESSAGE,
            f"amount {amount} has more than {currency.decimals} decimals ({currency.code})",
        )
    return units


def _build_order(
    user_id: int,
    account_id: int,
    instrument_id: str,
    fields: dict[str, Any],
    order_type: OrderType,
    price: Decimal | None,
    time_condition: TimeCondition,
    volume_condition: VolumeCondition,
    client_order_id: str | None,
    lookup: InstrumentLookup,
) -> PlaceOrder:
    instrument = lookup(instrument_id)
    if instrument is None:
        raise Rejected(ResultCode.NO_SUCH_INSTRUMENT, f"no instrument {instrument_id}")
    qty = instrument.qty_to_lots(fields["volume"])
    if qty is None:
        raise Rejected(
            ResultCode.BAD_ORDER_PARAMETER,
            f"volume {fields['volume']} is not a whole number of lots of {instrument_id}",
        )
    return PlaceOrder(
        user_id=user_id,
        account_id=account_id,
        instrument_id=instrument_id,
        side=fields["direction"],
        offset=fields["offset"],
        order_type=order_type,
        time_condition=time_condition,
        volume_condition=volume_condition,
        price=_limit_ticks(instrument, order_type, price),
        qty=qty,
        client_order_id=client_order_id,
    )


def _limit_ticks(instrument: InstrumentSpec, order_type: OrderType, price: Decimal | None) -> int:
    if order_type is OrderType.MARKET:
        return 0
    if price is None:
        raise Rejected(ResultCode.BAD_ORDER_PARAMETER, "a LIMIT order needs a positive price")
    if price <= 0:
        raise Rejected(ResultCode.BAD_ORDER_PARAMETER, f"price {price} is not positive")
    ticks = instrument.price_to_ticks(price)
    if ticks is None:
        raise Rejected(
            ResultCode.PRICE_NOT_ON_TICK,
            f"price {price} is not a multiple of {instrument.id}'s tick",
        )
    return ticks
