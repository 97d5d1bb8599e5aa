"""Events the matching engine emits (matching → accounts, market data, recorder), past tense.

A PlaceOrder that passes validation always yields OrderAccepted first, then its trades, then
(for IOC, FOK, MIN, market orders and self-trade prevention) an OrderCanceled for the rest;
one that fails yields only OrderRejected. Quantities are lots, prices ticks, ts int ns.
The hot path builds events with the `new_*` constructors below (engine/tuples.py): one tuple
of the fields in the class's own order, the same object as the keyword constructor's.
"""

from __future__ import annotations

from typing import NamedTuple

from engine.codes import ResultCode
from engine.enums import CancelReason, Side, TradingPhase
from engine.tuples import positional


class OrderAccepted(NamedTuple):
    """The order entered matching; `price` is its limit (the band limit for a MARKET order)."""

    order_id: int
    account_id: int
    instrument_index: int
    side: Side
    price: int
    qty: int
    ts: int


new_order_accepted = positional(OrderAccepted)


class OrderRejected(NamedTuple):
    """A PlaceOrder refused before matching (band, tick, status, parameters, duplicate id)."""

    order_id: int
    account_id: int
    instrument_index: int
    code: ResultCode
    ts: int


new_order_rejected = positional(OrderRejected)


class OrderCanceled(NamedTuple):
    """`qty` open lots left the book (or never rested) for `reason`; the order is finished."""

    order_id: int
    account_id: int
    instrument_index: int
    reason: CancelReason
    qty: int
    ts: int


new_order_canceled = positional(OrderCanceled)


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


new_order_amended = positional(OrderAmended)


class CancelRejected(NamedTuple):
    """A cancel that found no open order (already filled, cancelled, or unknown)."""

    order_id: int
    instrument_index: int
    code: ResultCode
    ts: int


new_cancel_rejected = positional(CancelRejected)


class AmendRejected(NamedTuple):
    """An amend refused; the order (if any) is unchanged."""

    order_id: int
    instrument_index: int
    code: ResultCode
    ts: int


new_amend_rejected = positional(AmendRejected)


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


new_trade_executed = positional(TradeExecuted)


class BookChanged(NamedTuple):
    """The total resting lots at one price level after a command (0 = the level is gone)."""

    instrument_index: int
    side: Side
    price: int
    qty: int
    ts: int


new_book_changed = positional(BookChanged)


class PhaseChanged(NamedTuple):
    instrument_index: int
    phase: TradingPhase
    ts: int


new_phase_changed = positional(PhaseChanged)


class AuctionUncrossed(NamedTuple):
    """A call auction ran: `qty` lots traded at `price` (0, 0 when nothing crossed)."""

    instrument_index: int
    price: int
    qty: int
    imbalance: int
    ts: int


new_auction_uncrossed = positional(AuctionUncrossed)


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
