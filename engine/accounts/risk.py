"""Pre-trade risk: the money checks an opening order passes before it may hold and reach matching.

Structural checks (1006–1008, 2002, 2005, instrument status and band) live in the core; these are
the configurable limits of reference part 2 §3, compared in integers (ratios as ints per 1e8).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.accounts.account import Account
from engine.accounts.commands import SubmitOrder
from engine.accounts.ledger import Ledger
from engine.accounts.terms import Terms
from engine.codes import ResultCode
from engine.enums import (
    Offset,
    OrderType,
    Side,
    TimeCondition,
    VolumeCondition,
)
from engine.money import RATE_SCALE

_SIDES = (Side.BUY, Side.SELL)
_TYPES = (OrderType.LIMIT, OrderType.MARKET)
_TIMES = (TimeCondition.GFD, TimeCondition.GTC, TimeCondition.IOC)
_VOLUMES = (VolumeCondition.ANY, VolumeCondition.MIN, VolumeCondition.ALL)
CLOSES = (Offset.CLOSE, Offset.CLOSETODAY, Offset.CLOSEYESTERDAY)
_FUTURES_OFFSETS = (Offset.OPEN, *CLOSES)
_SPOT_OFFSETS = (Offset.NONE, Offset.OPEN)
PLAIN_ORDERS = {
    spot: frozenset(
        (side, OrderType.LIMIT, time, volume, offset)
        for side in _SIDES
        for time in _TIMES
        for volume in (VolumeCondition.ANY, VolumeCondition.ALL)
        for offset in (_SPOT_OFFSETS if spot else _FUTURES_OFFSETS)
    )
    for spot in (False, True)
}
"""By `spot`: (side, type, time, volume, offset) of the LIMIT orders whose fields need only the
qty and price checks, so the submit path asks `bad_order_fields` only about the others."""
_BUY = Side.BUY
_SELL = Side.SELL
_LIMIT = OrderType.LIMIT
_MARKET = OrderType.MARKET
_MIN = VolumeCondition.MIN
_OK = ResultCode.OK
_PASSED = (_OK, "")

NO_RATIO = 2**62
"""Risk ratio of an account with margin but no positive balance."""


@dataclass(frozen=True, slots=True)
class RiskConfig:
    """Limits; None switches a check off. Ratios are ints per 1e8 (95% = 95_000_000)."""

    max_order_value: int | None = 10_000_000
    """1003: an opening order's notional above this many whole currency units."""
    max_concentration_e8: int | None = 50_000_000
    """1002: one instrument's margin (used + held + this order) above this share of balance."""
    max_risk_ratio_e8: int | None = 95_000_000
    """1004: (margin + frozen margin + this order's margin) / balance above this."""
    self_trade_check: bool = False
    """1005: refuse an order crossing the account's own resting order (matching does STP)."""
    liquidation_ratio_e8: int = RATE_SCALE
    """Force-close an account whose margin / balance reaches this (settlement, and intraday)."""
    intraday_liquidation: bool = False
    """Also force-close during the day, when trade prints move an account over the threshold."""


def risk_ratio_e8(margin: int, balance: int) -> int:
    """margin / balance as an int per 1e8 (floor); NO_RATIO: margin without a positive balance."""
    if balance <= 0:
        return NO_RATIO if margin > 0 else 0
    return margin * RATE_SCALE // balance


def check_open(
    config: RiskConfig,
    account: Account,
    terms: Terms,
    holds: tuple[int, int, int],
    notional: int,
    ledger: Ledger,
    balance: int,
) -> tuple[ResultCode, str]:
    """Order value, funds, risk ratio and concentration for an opening futures or spot order.

    `holds` is the order's (margin, commission, asset); `ledger` is the account's ledger in the
    currency the order holds (the base asset for a spot sell) and `balance` that ledger's
    balance at the marks. The concentration input (the instrument's used plus held margin) is
    looked up only when the earlier checks pass.
    """
    cap = config.max_order_value
    if cap is not None and notional > cap * terms.scale:
        return ResultCode.ORDER_VALUE_CAP, f"order value {notional} above {cap}"
    margin, commission, asset = holds
    need = margin + commission + asset
    used = ledger.margin
    frozen_margin = ledger.frozen_margin
    available = balance - used - frozen_margin - ledger.frozen_commission - ledger.frozen_asset
    if need > available:
        return ResultCode.INSUFFICIENT_FUNDS, f"needs {need}, available {available}"
    if terms.spot:
        return _PASSED
    ratio = config.max_risk_ratio_e8
    used += frozen_margin + margin
    if ratio is not None and used * RATE_SCALE > ratio * balance:
        return ResultCode.RISK_RATIO_CAP, f"margin {used} above {ratio}e-8 of balance {balance}"
    share = config.max_concentration_e8
    if share is None:
        return _PASSED
    index = terms.index
    held = account.frozen_by_instrument.get(index, 0) + margin
    position = account.positions.get(index)
    if position is not None:
        held += position.long.margin + position.short.margin
    if held * RATE_SCALE > share * balance:
        return ResultCode.CONCENTRATION_LIMIT, f"{terms.instrument.id} margin {held} of {balance}"
    return _PASSED


def crosses_own_order(
    account: Account, instrument_index: int, side: Side, order_type: OrderType, price: int
) -> int:
    """1005 pre-check: the id of a live opposite order of this account that the order would hit."""
    for order in account.orders.values():
        if order.instrument_index != instrument_index or order.side is side:
            continue
        if order_type is _MARKET:
            return order.order_id
        if (side is _BUY and price >= order.price) or (side is _SELL and price <= order.price):
            return order.order_id
    return 0


def bad_order_fields(c: SubmitOrder, terms: Terms) -> str:
    """Why an order's fields are invalid (1008), or '' when they are fine."""
    (_, _, _, side, offset, price, qty, order_type, time_condition, volume_condition, min_qty,
     _, _) = c  # fmt: skip
    if side not in _SIDES or order_type not in _TYPES:
        return "bad side or order type"
    if time_condition not in _TIMES or volume_condition not in _VOLUMES:
        return "bad time or volume condition"
    if not terms.min_qty <= qty <= terms.max_qty:
        return f"qty {qty} outside {terms.min_qty}..{terms.max_qty}"
    if volume_condition is _MIN and not 0 < min_qty <= qty:
        return f"min_qty {min_qty} outside 1..{qty}"
    if order_type is _LIMIT and price <= 0:
        return f"price {price} must be positive"
    if terms.spot:
        return "" if offset in _SPOT_OFFSETS else "spot orders do not close"
    return "" if offset in _FUTURES_OFFSETS else "bad offset"
