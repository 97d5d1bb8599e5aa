"""A deliberately simple reference order book, written from docs/matching.md and issue 3.

It shares nothing with `engine/matching/`: each side is one plain list of resting orders kept
sorted by (price, arrival) — a new order is inserted at its place by bisection — and matching
walks it from the front; finding an order is a linear scan. Slow and obvious on purpose, so
that a disagreement with the engine is worth reading.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from engine.enums import (
    CancelReason,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeCondition,
    VolumeCondition,
)


@dataclass
class Resting:
    """An order in the book; `arrival` is its time priority (smaller = earlier)."""

    order_id: int
    account_id: int
    side: Side
    price: int
    remaining: int
    arrival: int
    time_condition: TimeCondition


@dataclass(frozen=True)
class Fill:
    """One trade: both legs, at the maker's price."""

    trade_id: int
    price: int
    qty: int
    taker_order_id: int
    taker_account_id: int
    taker_side: Side
    maker_order_id: int
    maker_account_id: int
    taker_remaining: int
    maker_remaining: int


@dataclass(frozen=True)
class Incoming:
    """An order reaching the book (its limits already validated)."""

    order_id: int
    account_id: int
    side: Side
    price: int
    qty: int
    order_type: OrderType
    time_condition: TimeCondition
    volume_condition: VolumeCondition
    min_qty: int
    stp: SelfTradePrevention = SelfTradePrevention.CANCEL_TAKER


@dataclass
class Outcome:
    """What placing one order did: fills, makers removed by STP, and the taker's fate."""

    fills: list[Fill] = field(default_factory=list)
    maker_cancels: list[Resting] = field(default_factory=list)
    rested: bool = False
    canceled_qty: int = 0
    cancel_reason: CancelReason = CancelReason.NONE
    rejected: bool = False
    """Refused by the book (an auction takes only LIMIT GFD/GTC orders of any volume)."""


def _trade(
    next_trade_id: list[int],
    price: int,
    qty: int,
    taker: Incoming | Resting,
    taker_remaining: int,
    maker: Resting,
) -> Fill:
    """The next trade id's fill (the caller has already taken `qty` off both orders)."""
    next_trade_id[0] += 1
    return Fill(
        trade_id=next_trade_id[0] - 1,
        price=price,
        qty=qty,
        taker_order_id=taker.order_id,
        taker_account_id=taker.account_id,
        taker_side=taker.side,
        maker_order_id=maker.order_id,
        maker_account_id=maker.account_id,
        taker_remaining=taker_remaining,
        maker_remaining=maker.remaining,
    )


def _priority(order: Resting) -> tuple[int, int]:
    return (-order.price if order.side is Side.BUY else order.price, order.arrival)


def _crosses(side: Side, limit: int, maker_price: int) -> bool:
    return maker_price <= limit if side is Side.BUY else maker_price >= limit


class RefBook:
    """One instrument's book; trade ids come from the caller's counter so shards share one."""

    def __init__(self) -> None:
        self.sides: dict[Side, list[Resting]] = {Side.BUY: [], Side.SELL: []}
        self._arrivals = 0
        self.auction = False
        """In a call auction orders rest without matching until `uncross`."""

    def orders(self, side: Side) -> list[Resting]:
        """Resting orders of one side in priority order."""
        return self.sides[side]

    def find(self, order_id: int) -> Resting | None:
        for side in self.sides.values():
            for order in side:
                if order.order_id == order_id:
                    return order
        return None

    def place(self, order: Incoming, upper: int, lower: int, next_trade_id: list[int]) -> Outcome:
        """Match `order` against the other side, then rest, or cancel what is left.

        A MARKET order is an IOC at today's band limit (`upper` to buy, `lower` to sell).
        """
        limit = order.price
        if order.order_type is OrderType.MARKET:
            limit = upper if order.side is Side.BUY else lower
        outcome = Outcome()
        if self.auction:
            outcome.rejected = (
                order.order_type is not OrderType.LIMIT
                or order.time_condition is TimeCondition.IOC
                or order.volume_condition is not VolumeCondition.ANY
            )
            if not outcome.rejected:
                self.rest(
                    order.order_id, order.account_id, order.side, limit, order.qty,
                    order.time_condition,
                )  # fmt: skip
                outcome.rested = True
            return outcome
        needed = self._needed(order)
        if needed and self._reachable(order, limit) < needed:
            outcome.canceled_qty = order.qty
            outcome.cancel_reason = (
                CancelReason.FOK_UNFILLED
                if order.volume_condition is VolumeCondition.ALL
                else CancelReason.MIN_UNFILLED
            )
            return outcome
        remaining = order.qty
        makers = self.sides[order.side.opposite]
        while remaining and makers and _crosses(order.side, limit, makers[0].price):
            maker = makers[0]
            if maker.account_id == order.account_id and order.stp is not SelfTradePrevention.ALLOW:
                if order.stp in (SelfTradePrevention.CANCEL_MAKER, SelfTradePrevention.CANCEL_BOTH):
                    makers.pop(0)
                    outcome.maker_cancels.append(maker)
                if order.stp is not SelfTradePrevention.CANCEL_MAKER:
                    outcome.canceled_qty = remaining
                    outcome.cancel_reason = CancelReason.SELF_TRADE
                    return outcome
                continue
            qty = min(remaining, maker.remaining)
            remaining -= qty
            maker.remaining -= qty
            outcome.fills.append(_trade(next_trade_id, maker.price, qty, order, remaining, maker))
            if not maker.remaining:
                makers.pop(0)
        if not remaining:
            return outcome
        if order.order_type is OrderType.MARKET or order.time_condition is TimeCondition.IOC:
            outcome.canceled_qty = remaining
            outcome.cancel_reason = CancelReason.IOC_REMAINDER
            return outcome
        self.rest(
            order.order_id, order.account_id, order.side, limit, remaining, order.time_condition
        )
        outcome.rested = True
        return outcome

    def uncross(self, reference: int, next_trade_id: list[int]) -> list[Fill]:
        """End the auction: trade everything that crosses at one price, then match continuously.

        The price is found by trying every tick between the lowest ask and the highest bid
        (outside them nothing can trade): most volume, then least imbalance, then closest to
        `reference` (skipped when 0), then the lower price. Bids and asks are then paired in
        priority order; the later order (larger id) is the taker; no self-trade prevention.
        """
        self.auction = False
        bids, asks = self.sides[Side.BUY], self.sides[Side.SELL]
        if not bids or not asks or asks[0].price > bids[0].price:
            return []
        best: tuple[int, int, int, int] | None = None
        for price in range(asks[0].price, bids[0].price + 1):
            buy = sum(o.remaining for o in bids if o.price >= price)
            sell = sum(o.remaining for o in asks if o.price <= price)
            distance = abs(price - reference) if reference else 0
            key = (-min(buy, sell), abs(buy - sell), distance, price)
            best = key if best is None or key < best else best
        assert best is not None
        price, volume = best[3], -best[0]
        fills = []
        while volume:
            buy, sell = bids[0], asks[0]
            qty = min(buy.remaining, sell.remaining, volume)
            volume -= qty
            buy.remaining -= qty
            sell.remaining -= qty
            taker, maker = (buy, sell) if buy.order_id > sell.order_id else (sell, buy)
            fills.append(_trade(next_trade_id, price, qty, taker, taker.remaining, maker))
            for side in (bids, asks):
                if not side[0].remaining:
                    side.pop(0)
        return fills

    def rest(
        self,
        order_id: int,
        account_id: int,
        side: Side,
        price: int,
        remaining: int,
        time_condition: TimeCondition,
    ) -> None:
        self._arrivals += 1
        order = Resting(
            order_id, account_id, side, price, remaining, self._arrivals, time_condition
        )
        bisect.insort(self.sides[side], order, key=_priority)

    def remove(self, order_id: int) -> Resting | None:
        """Take an order out of the book (cancel, expiry); None when it is not resting."""
        for orders in self.sides.values():
            for position, order in enumerate(orders):
                if order.order_id == order_id:
                    return orders.pop(position)
        return None

    def reduce(self, order_id: int, new_remaining: int) -> None:
        """A volume decrease in place: the order keeps its arrival, hence its priority."""
        order = self.find(order_id)
        assert order is not None and 0 < new_remaining < order.remaining
        order.remaining = new_remaining

    def _needed(self, order: Incoming) -> int:
        if order.volume_condition is VolumeCondition.ALL:
            return order.qty
        if order.volume_condition is VolumeCondition.MIN:
            return min(order.min_qty, order.qty)
        return 0

    def _reachable(self, order: Incoming, limit: int) -> int:
        """Volume the order could take right now, stopping where STP would stop it."""
        total = 0
        for maker in self.sides[order.side.opposite]:
            if not _crosses(order.side, limit, maker.price):
                break
            if maker.account_id == order.account_id and order.stp is not SelfTradePrevention.ALLOW:
                if order.stp is SelfTradePrevention.CANCEL_MAKER:
                    continue
                break
            total += maker.remaining
        return total
