"""Parsed request fields → backend commands: Decimal prices and quantities become ticks and lots.

This is where the edge checks a client's numbers against the instrument (the engine re-checks
them): an unknown instrument is 1007, an off-tick price 4005, a fractional lot or a missing limit
price 1008. Both the REST/`/ws` and the DIFF spellings of an order end in the same `PlaceOrder`.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from engine.codes import ResultCode
from engine.enums import OrderType, TimeCondition, VolumeCondition
from engine.money import CNY, Currency
from gateway.backend import AdjustBalance, InstrumentSpec, PlaceOrder
from gateway.errors import Rejected

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
