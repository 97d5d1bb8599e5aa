"""Mirror mode: external trade prints → IOC orders of the house account on local instruments.

The fill rule (docs/feeds.md): an external trade at price P for quantity Q whose taker SOLD
becomes a house SELL IOC limit at P on every local instrument that mirrors it, which takes the
local bids at or above P; a taker BUY becomes a BUY IOC at P, which takes the local asks at or
below P. The order is limited to Q, so the local book never trades more than the external
market did, and matching fills at the resting (local maker's) price. P is converted exactly:
external ticks → decimal → local ticks, rounded towards the side that trades less (a SELL's
limit up, a BUY's limit down); Q is floored to local lots and capped at the instrument's
`max_qty`. The house always opens (`Offset.OPEN`), so a futures house account carries both a
long and a short side; nothing here looks at the house's position. Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from engine.accounts.commands import SubmitOrder
from engine.enums import Offset, OrderType, Side, TimeCondition
from engine.instruments import Instrument
from gateway.feeds.instruments import InstrumentSpec
from gateway.feeds.records import Trade


@dataclass(frozen=True)
class MirrorTarget:
    """One local instrument that follows one external instrument."""

    local: Instrument
    external: InstrumentSpec


class Mirror:
    """Builds the house's IOC orders for a batch of external trades; counts what it skipped."""

    def __init__(self, house_account: int, targets: Iterable[MirrorTarget]) -> None:
        self.house_account = house_account
        self.targets: dict[str, list[MirrorTarget]] = {}
        for target in targets:
            self.targets.setdefault(target.external.instrument_id, []).append(target)
        self.counters: Counter[str] = Counter()

    def orders(
        self, trades: Iterable[Trade], request_ids: Iterable[int], ts: int
    ) -> list[SubmitOrder]:
        """One order per (trade, mirroring local instrument) that converts to ≥ 1 local lot.

        `request_ids` supplies the ids (an iterator the caller advances)."""
        ids = iter(request_ids)
        out: list[SubmitOrder] = []
        for trade in trades:
            for target in self.targets.get(trade.instrument, ()):
                order = self._order(target, trade, ids, ts)
                if order is not None:
                    out.append(order)
        return out

    def _order(
        self, target: MirrorTarget, trade: Trade, ids: Iterator[int], ts: int
    ) -> SubmitOrder | None:
        if trade.side not in (Side.BUY, Side.SELL):
            self.counters["no_side"] += 1
            return None
        local = target.local
        price = target.external.tick.step * trade.price / local.price_tick
        ticks = math.ceil(price) if trade.side is Side.SELL else math.floor(price)
        qty = math.floor(target.external.lot.step * trade.qty / local.lot_size)
        if qty <= 0 or ticks <= 0:
            self.counters["below_one_lot"] += 1
            return None
        if qty > local.max_qty:
            self.counters["capped"] += 1
            qty = local.max_qty
        self.counters["orders"] += 1
        return SubmitOrder(
            next(ids),
            self.house_account,
            local.index,
            Side(trade.side),
            Offset.OPEN,
            ticks,
            qty,
            OrderType.LIMIT,
            TimeCondition.IOC,
            ts=ts,
        )

    def stats(self) -> Mapping[str, int]:
        return dict(self.counters)
