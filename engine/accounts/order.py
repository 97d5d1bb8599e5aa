"""The accounts core's view of an order: what it holds (money or volume) until it ends.

Holds are recomputed from the remaining quantity at the freeze price after every fill or
amend, never decremented per fill, so rounded margins and commissions cannot drift
(docs/accounting.md §3).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.enums import (
    Offset,
    OrderStatus,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeCondition,
    VolumeCondition,
)

LIVE_STATUSES = frozenset({OrderStatus.PENDING, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED})


@dataclass(slots=True)
class Order:
    """One order of one account; `price` and `freeze_price` in ticks, volumes in lots."""

    order_id: int
    account_id: int
    instrument_index: int
    side: Side
    offset: Offset
    price: int
    qty: int
    order_type: OrderType
    time_condition: TimeCondition
    volume_condition: VolumeCondition
    min_qty: int
    ts: int
    freeze_price: int
    request_id: int = 0
    filled: int = 0
    status: OrderStatus = OrderStatus.PENDING
    frozen_margin: int = 0
    frozen_commission: int = 0
    frozen_asset: int = 0
    reserved_history: int = 0
    reserved_today: int = 0
    liquidation: bool = False
    stp: SelfTradePrevention = SelfTradePrevention.NONE
    closes: bool = False
    """True for CLOSE, CLOSETODAY and CLOSEYESTERDAY (set once; read on every fill)."""
    pending_price: int = 0
    pending_qty: int = 0
    pending_history: int = 0
    """History lots a close order's pending amend reserved (given back first if refused)."""
    pending_today: int = 0

    @property
    def remaining(self) -> int:
        return self.qty - self.filled

    @property
    def live(self) -> bool:
        return self.status in LIVE_STATUSES

    def state(self) -> tuple[int, ...]:
        return (
            self.order_id,
            self.account_id,
            self.instrument_index,
            self.side,
            self.offset,
            self.price,
            self.qty,
            self.filled,
            self.status,
            self.freeze_price,
            self.frozen_margin,
            self.frozen_commission,
            self.frozen_asset,
            self.reserved_history,
            self.reserved_today,
            int(self.liquidation),
            self.pending_price,
            self.pending_qty,
            self.stp,
            self.pending_history,
            self.pending_today,
        )
