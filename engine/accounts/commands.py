"""Client-level commands the accounts core accepts (gateway → accounts), imperative and immutable.

Every command carries the gateway's `request_id` (so the answer finds its client) and `ts` (int
ns; the core reads no clock). Prices are ticks, quantities lots, money units of the currency.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from engine.enums import (
    Offset,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeCondition,
    VolumeCondition,
)


class OpenAccount(NamedTuple):
    request_id: int
    account_id: int
    ts: int = 0


class Deposit(NamedTuple):
    """Idempotent by `txn_id`: a repeated transaction id is answered again, never booked twice."""

    request_id: int
    account_id: int
    amount: int
    txn_id: int
    currency: str = "CNY"
    ts: int = 0


class Withdraw(NamedTuple):
    """Idempotent by `txn_id`, like Deposit; refused (2004) above the available money."""

    request_id: int
    account_id: int
    amount: int
    txn_id: int
    currency: str = "CNY"
    ts: int = 0


class SetAccountFrozen(NamedTuple):
    """Admin: a frozen account may cancel but not place orders or withdraw (2002)."""

    request_id: int
    account_id: int
    frozen: bool
    ts: int = 0


class SubmitOrder(NamedTuple):
    """A client order; offset NONE or OPEN for spot instruments. `price` ignored for MARKET.

    `stp` NONE means matching's default self-trade prevention.
    """

    request_id: int
    account_id: int
    instrument_index: int
    side: Side
    offset: Offset
    price: int
    qty: int
    order_type: OrderType = OrderType.LIMIT
    time_condition: TimeCondition = TimeCondition.GFD
    volume_condition: VolumeCondition = VolumeCondition.ANY
    min_qty: int = 0
    ts: int = 0
    stp: SelfTradePrevention = SelfTradePrevention.NONE


class CancelOrder(NamedTuple):
    request_id: int
    account_id: int
    order_id: int
    ts: int = 0


class CancelAll(NamedTuple):
    """Cancel every live order of the account (on one instrument, or all when -1)."""

    request_id: int
    account_id: int
    instrument_index: int = -1
    ts: int = 0


class AmendOrder(NamedTuple):
    """New limit price and new open quantity (lots still to fill) of a live order."""

    request_id: int
    account_id: int
    order_id: int
    price: int
    qty: int
    ts: int = 0


class SetSettlementPrice(NamedTuple):
    request_id: int
    instrument_index: int
    price: int
    ts: int = 0


class SetSettlementPrices(NamedTuple):
    """A batch of `(instrument_index, price)` pairs, all or nothing."""

    request_id: int
    prices: tuple[tuple[int, int], ...]
    ts: int = 0


class ExecuteSettlement(NamedTuple):
    """End of day for `trading_day` (YYYYMMDD): expire day orders, mark, roll, liquidate."""

    request_id: int
    trading_day: int
    ts: int = 0


class CreateInstrument(NamedTuple):
    """Admin: a TOML-shaped table (engine/instruments.py `parse_instrument`)."""

    request_id: int
    fields: Mapping[str, object]
    ts: int = 0


class UpdateInstrument(NamedTuple):
    request_id: int
    instrument_id: str
    changes: Mapping[str, object]
    ts: int = 0


class SuspendInstrument(NamedTuple):
    request_id: int
    instrument_id: str
    ts: int = 0


class ResumeInstrument(NamedTuple):
    request_id: int
    instrument_id: str
    ts: int = 0


class DelistInstrument(NamedTuple):
    """Refused (4007) while any account holds the instrument; the answer names the accounts."""

    request_id: int
    instrument_id: str
    ts: int = 0


AccountsCommand = (
    OpenAccount
    | Deposit
    | Withdraw
    | SetAccountFrozen
    | SubmitOrder
    | CancelOrder
    | CancelAll
    | AmendOrder
    | SetSettlementPrice
    | SetSettlementPrices
    | ExecuteSettlement
    | CreateInstrument
    | UpdateInstrument
    | SuspendInstrument
    | ResumeInstrument
    | DelistInstrument
)
