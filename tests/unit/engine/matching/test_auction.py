"""Call-auction price selection: the three tie-breaks, in order, and their exactness."""

from __future__ import annotations

import random

from engine.matching.auction import AuctionResult, select_price


def test_maximum_executable_volume_wins() -> None:
    bids = [(102, 10), (101, 5)]
    asks = [(100, 8), (101, 6)]
    # at 100: min(15, 8) = 8; at 101: min(15, 14) = 14; at 102: min(10, 14) = 10
    assert select_price(bids, asks, reference=102) == AuctionResult(101, 14, 1)


def test_then_minimum_imbalance_even_against_the_reference() -> None:
    bids = [(101, 10), (100, 4)]
    asks = [(100, 10)]
    # 100 and 101 both execute 10; imbalance 4 at 100, 0 at 101; the reference is 100.
    assert select_price(bids, asks, reference=100) == AuctionResult(101, 10, 0)


def test_then_closest_to_the_reference_price() -> None:
    bids = [(102, 10)]
    asks = [(98, 10)]
    # every price from 98 to 102 executes 10 with no imbalance
    assert select_price(bids, asks, reference=100).price == 100
    assert select_price(bids, asks, reference=101).price == 101
    assert select_price(bids, asks, reference=150).price == 102
    assert select_price(bids, asks, reference=50).price == 98


def test_without_a_reference_the_lowest_best_price_wins() -> None:
    assert select_price([(102, 10)], [(98, 10)], reference=0) == AuctionResult(98, 10, 0)


def test_nothing_crosses() -> None:
    assert select_price([(99, 5)], [(100, 5)], reference=100) == AuctionResult(0, 0, 0)
    assert select_price([], [(100, 5)], reference=100) == AuctionResult(0, 0, 0)


def _brute_force(bids: list, asks: list, reference: int) -> AuctionResult:
    best = None
    for price in range(1, 200):
        buy = sum(q for p, q in bids if p >= price)
        sell = sum(q for p, q in asks if p <= price)
        key = (-min(buy, sell), abs(buy - sell), abs(price - reference), price)
        best = key if best is None or key < best else best
    if best[0] == 0:
        return AuctionResult(0, 0, 0)
    return AuctionResult(best[3], -best[0], best[1])


def test_agrees_with_a_brute_force_scan_of_every_price() -> None:
    rng = random.Random(3)
    for _ in range(300):
        bids = {rng.randint(80, 120): rng.randint(1, 9) for _ in range(rng.randint(0, 6))}
        asks = {rng.randint(80, 120): rng.randint(1, 9) for _ in range(rng.randint(0, 6))}
        reference = rng.choice([0, rng.randint(70, 130)])
        expected = _brute_force(list(bids.items()), list(asks.items()), reference)
        assert select_price(list(bids.items()), list(asks.items()), reference) == expected
