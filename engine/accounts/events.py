"""Events the accounts core emits (accounts → gateways), past tense.

Answers (`CommandAccepted` / `CommandRejected`) carry the request id; the rest are addressed
by account id. Money in units of `currency`, prices in ticks, quantities in lots, ts int ns.
"""

from __future__ import annotations

from typing import NamedTuple

from engine.codes import ResultCode
from engine.enums import Offset, OrderStatus, Side
from engine.tuples import positional


class CommandAccepted(NamedTuple):
    """`order_id` is the exchange order id for SubmitOrder (0 for other commands)."""

    request_id: int
    order_id: int
    ts: int


new_command_accepted = positional(CommandAccepted)


class CommandRejected(NamedTuple):
    request_id: int
    code: ResultCode
    message: str
    ts: int


class OrderUpdated(NamedTuple):
    """An order's status changed (placed, accepted, filled in part or whole, cancelled, rejected).

    `code` is the rejection code (REJECTED) or 0; `qty` is the order's total, `filled` so far.
    """

    account_id: int
    order_id: int
    instrument_index: int
    side: Side
    offset: Offset
    price: int
    qty: int
    filled: int
    status: OrderStatus
    code: ResultCode
    ts: int


new_order_updated = positional(OrderUpdated)


class TradeBooked(NamedTuple):
    """One account's leg of a trade, with what it cost and earned."""

    account_id: int
    order_id: int
    trade_id: int
    instrument_index: int
    side: Side
    offset: Offset
    price: int
    qty: int
    commission: int
    close_profit: int
    ts: int


new_trade_booked = positional(TradeBooked)


class AccountUpdated(NamedTuple):
    """The QIFI money of one account in one currency, after a change (marked at last prices)."""

    account_id: int
    currency: str
    balance: int
    available: int
    margin: int
    frozen_margin: int
    frozen_commission: int
    position_profit: int
    close_profit: int
    commission: int
    ts: int


new_account_updated = positional(AccountUpdated)


class PositionUpdated(NamedTuple):
    account_id: int
    instrument_index: int
    long_today: int
    long_history: int
    short_today: int
    short_history: int
    long_frozen: int
    short_frozen: int
    margin: int
    ts: int


new_position_updated = positional(PositionUpdated)


class AccountLiquidated(NamedTuple):
    """Forced liquidation started: `risk_ratio_e8` = margin / balance × 1e8 when it was decided."""

    account_id: int
    risk_ratio_e8: int
    orders: int
    ts: int


class SettlementResult(NamedTuple):
    """One trading day's settlement; money totals per currency as (code, amount) pairs."""

    trading_day: int
    total: int
    settled: int
    failed: int
    force_closed: tuple[int, ...]
    commission: tuple[tuple[str, int], ...]
    profit: tuple[tuple[str, int], ...]
    ts: int


class SettlementCompleted(NamedTuple):
    result: SettlementResult
    ts: int


AccountsEvent = (
    CommandAccepted
    | CommandRejected
    | OrderUpdated
    | TradeBooked
    | AccountUpdated
    | PositionUpdated
    | AccountLiquidated
    | SettlementCompleted
)
