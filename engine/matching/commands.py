"""Commands the matching engine accepts (accounts → matching), imperative and immutable.

Prices are in ticks, quantities in lots, `ts` in int nanoseconds (the engine reads no clock).
Order ids are assigned upstream by the accounts core and must increase; they are never timestamps.
NamedTuples keep construction cheap on the hot path and give value equality for replay tests.
"""

from __future__ import annotations

from typing import NamedTuple

from engine.enums import (
    CancelReason,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeCondition,
    TradingPhase,
    VolumeCondition,
)
from engine.instruments import Instrument
from engine.tuples import positional


class PlaceOrder(NamedTuple):
    """A new order that passed risk. `min_qty` is used by VolumeCondition.MIN only.

    `price` is ignored for MARKET orders (they take the band limit on their side).
    `stp` NONE means the engine's default (CANCEL_TAKER).
    """

    order_id: int
    account_id: int
    instrument_index: int
    side: Side
    price: int
    qty: int
    order_type: OrderType = OrderType.LIMIT
    time_condition: TimeCondition = TimeCondition.GFD
    volume_condition: VolumeCondition = VolumeCondition.ANY
    min_qty: int = 0
    ts: int = 0
    stp: SelfTradePrevention = SelfTradePrevention.NONE


new_place_order = positional(PlaceOrder)


class CancelOrder(NamedTuple):
    order_id: int
    instrument_index: int
    ts: int = 0
    reason: CancelReason = CancelReason.USER


new_cancel_order = positional(CancelOrder)


class AmendOrder(NamedTuple):
    """Set a resting order's price and remaining quantity (`qty` = new open lots, > 0).

    Same price and a smaller qty keeps time priority; any other change re-queues the order
    at the back of its (new) level and may trade at once if it now crosses.
    """

    order_id: int
    instrument_index: int
    price: int
    qty: int
    ts: int = 0


new_amend_order = positional(AmendOrder)


class ExpireOrders(NamedTuple):
    """End of day: cancel every GFD order (of one instrument, or all when None) with END_OF_DAY."""

    instrument_index: int | None
    ts: int = 0


class SetPhase(NamedTuple):
    """Switch a book between continuous matching and a call auction (orders rest, no matching)."""

    instrument_index: int
    phase: TradingPhase
    ts: int = 0


class RunAuction(NamedTuple):
    """Uncross the book at one price, then return to continuous matching."""

    instrument_index: int
    ts: int = 0


class UpsertInstrument(NamedTuple):
    """Create or replace an instrument definition (status, band) in this shard's registry."""

    instrument: Instrument
    ts: int = 0


MatchingCommand = (
    PlaceOrder | CancelOrder | AmendOrder | ExpireOrders | SetPhase | RunAuction | UpsertInstrument
)
