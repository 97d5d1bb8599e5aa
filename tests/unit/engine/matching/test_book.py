"""The book's own structures: ranked levels per side and lazily cancelled queues."""

from __future__ import annotations

import random

from engine.enums import Side
from engine.instruments import InstrumentRegistry
from engine.matching.book import EMPTY, BookSide
from engine.matching.commands import CancelOrder, PlaceOrder
from engine.matching.engine import MatchingEngine


def test_levels_stay_ranked_best_first_through_random_adds_and_drops() -> None:
    rng = random.Random(3)
    for side, sign in ((Side.BUY, -1), (Side.SELL, 1)):
        book_side = BookSide(side)
        prices: set[int] = set()
        for _ in range(2_000):
            price = rng.randint(900, 1100)
            if price in prices and rng.random() < 0.6:
                prices.discard(price)
                book_side.drop(sign * price)
            elif price not in prices:
                prices.add(price)
                book_side.add(sign * price, price)
            keys = sorted(sign * p for p in prices)
            assert book_side.keys() == keys
            assert book_side.best == (keys[0] if keys else EMPTY)
            assert [level.price for level in book_side.ordered()] == [sign * k for k in keys]


def test_cancels_behind_a_resting_head_keep_the_queue_bounded(
    registry: InstrumentRegistry,
) -> None:
    """Dead entries are counted and compacted away once they outnumber the live ones."""
    engine = MatchingEngine(registry)
    engine.apply(PlaceOrder(1, 1, 0, Side.BUY, 1000, 1))
    for order_id in range(2, 2_000):
        engine.apply(PlaceOrder(order_id, 2, 0, Side.BUY, 1000, 1))
        engine.apply(CancelOrder(order_id, 0))
        level = engine.book(0).bids.levels[-1000]
        assert level.count == 1
        assert len(level.queue) <= 2 * level.count + 17
        engine.check_invariants()
    assert engine.book(0).queue(Side.BUY, 1000) == [1]
