"""Events the matching engine emits (matching → accounts, market data, recorder), past tense.

A PlaceOrder that passes validation always yields OrderAccepted first, then its trades, then
(for IOC, FOK, MIN, market orders and self-trade prevention) an OrderCanceled for the rest;
one that fails yields only OrderRejected. Quantities are lots, prices ticks, ts int ns.
"""

from __future__ import annotations

from typing import NamedTuple

from engine.codes import ResultCode
from engine.enums import CancelReason, Side, TradingPhase


class OrderAccepted(NamedTuple):
    """The order entered matching; `price` is its limit (the band limit for a MARKET order)."""

    order_id: int
    account_id: int
    instrument_index: int
    side: Side
    price: int
    qty: int
    ts: int


class OrderRejected(NamedTuple):
    """A PlaceOrder refused before matching (band, tick, status, parameters, duplicate id)."""

    order_id: int
    account_id: int
    instrument_index: int
    code: ResultCode
    ts: int


class OrderCanceled(NamedTuple):
    """`qty` open lots left the book (or never rested) for `reason`; the order is finished."""

    order_id: int
    account_id: int
    instrument_index: int
    reason: CancelReason
    qty: int
    ts: int


class OrderAmended(NamedTuple):
    """A resting order now has `price`/`qty` (open lots); the old values let accounts re-freeze."""

    order_id: int
    account_id: int
    instrument_index: int
    price: int
    qty: int
    old_price: int
    old_qty: int
    ts: int


class CancelRejected(NamedTuple):
    """A cancel that found no open order (already filled, cancelled, or unknown)."""

    order_id: int
    instrument_index: int
    code: ResultCode
    ts: int


class AmendRejected(NamedTuple):
    """An amend refused; the order (if any) is unchanged."""

    order_id: int
    instrument_index: int
    code: ResultCode
    ts: int


class TradeExecuted(NamedTuple):
    """One fill between a taker and a resting maker, at the maker's price.

    `*_remaining` are the open lots each order still has after this fill (0 = filled).
    """

    trade_id: int
    instrument_index: int
    price: int
    qty: int
    taker_order_id: int
    taker_account_id: int
    taker_side: Side
    maker_order_id: int
    maker_account_id: int
    taker_remaining: int
    maker_remaining: int
    ts: int


class BookChanged(NamedTuple):
    """The total resting lots at one price level after a command (0 = the level is gone)."""

    instrument_index: int
    side: Side
    price: int
    qty: int
    ts: int


class PhaseChanged(NamedTuple):
    instrument_index: int
    phase: TradingPhase
    ts: int


class AuctionUncrossed(NamedTuple):
    """A call auction ran: `qty` lots traded at `price` (0, 0 when nothing crossed)."""

    instrument_index: int
    price: int
    qty: int
    imbalance: int
    ts: int


MatchingEvent = (
    OrderAccepted
    | OrderRejected
    | OrderCanceled
    | OrderAmended
    | CancelRejected
    | AmendRejected
    | TradeExecuted
    | BookChanged
    | PhaseChanged
    | AuctionUncrossed
)
