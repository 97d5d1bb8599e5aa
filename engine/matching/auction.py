"""Call-auction price selection: one price that uncrosses the book collected during an auction.

The rule (docs/matching.md): maximise executable volume; among those prices minimise the
imbalance |buy volume − sell volume|; then take the price closest to the reference price;
then the lower price. Volume and imbalance are step functions of the price that change only at
level prices, so the level prices, their neighbours one tick away and the reference price are
the only prices that can win; evaluating those is exact.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from itertools import accumulate
from typing import NamedTuple


class AuctionResult(NamedTuple):
    """The chosen price and its executable volume and imbalance (qty 0: nothing crosses)."""

    price: int
    qty: int
    imbalance: int


def select_price(
    bids: Sequence[tuple[int, int]], asks: Sequence[tuple[int, int]], reference: int
) -> AuctionResult:
    """The auction price for bid and ask levels given as (price, qty), in any order."""
    bid_prices = sorted(price for price, _ in bids)
    ask_prices = sorted(price for price, _ in asks)
    bid_qty = dict(bids)
    ask_qty = dict(asks)
    # buy_at_or_above[i]: lots bid at bid_prices[i] or higher; sell_at_or_below: asks up to it.
    buy_at_or_above = list(accumulate(bid_qty[p] for p in reversed(bid_prices)))[::-1]
    sell_at_or_below = list(accumulate(ask_qty[p] for p in ask_prices))
    candidates = {p + d for p in (*bid_prices, *ask_prices) for d in (-1, 0, 1) if p + d > 0}
    if reference > 0:
        candidates.add(reference)
    best: tuple[int, int, int, int] | None = None
    for price in candidates:
        i = bisect_left(bid_prices, price)
        buy = buy_at_or_above[i] if i < len(bid_prices) else 0
        j = bisect_right(ask_prices, price)
        sell = sell_at_or_below[j - 1] if j else 0
        qty = min(buy, sell)
        distance = abs(price - reference) if reference > 0 else 0
        key = (-qty, abs(buy - sell), distance, price)
        if best is None or key < best:
            best = key
    if best is None or best[0] == 0:
        return AuctionResult(0, 0, 0)
    return AuctionResult(best[3], -best[0], best[1])
