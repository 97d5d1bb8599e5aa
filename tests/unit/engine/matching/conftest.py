"""Fixtures for the matching tests: a small instrument set and scenario-table helpers."""

from __future__ import annotations

import pytest

from engine.instruments import InstrumentRegistry
from engine.matching.book import OrderBook
from engine.matching.engine import MatchingEngine

TEST_INSTRUMENTS = {
    "currencies": {"CNY": {"decimals": 2}},
    "instruments": [
        {
            "id": "TEST.A",
            "currency": "CNY",
            "multiplier": 10,
            "price_tick": "1",
            "max_qty": 1000,
            "margin_rate": "0.1",
            "band": "0.10",
            "pre_close": "1000",
            "pre_settlement": "1000",
        },
        {
            "id": "TEST.B",
            "currency": "CNY",
            "multiplier": 10,
            "price_tick": "1",
            "max_qty": 1000,
            "margin_rate": "0.1",
            "band": "0.10",
            "pre_close": "500",
            "pre_settlement": "500",
        },
    ],
}
"""TEST.A trades between 900 and 1100 ticks; TEST.B between 450 and 550."""


@pytest.fixture
def registry() -> InstrumentRegistry:
    return InstrumentRegistry.from_mapping(TEST_INSTRUMENTS)


@pytest.fixture
def engine(registry: InstrumentRegistry) -> MatchingEngine:
    return MatchingEngine(registry)


def render(book: OrderBook) -> list[tuple[str, str, str]]:
    """The book as `| bid | price | ask |` rows, highest price first (asks above bids)."""
    rows = [("", str(price), str(qty)) for price, qty, _ in reversed(book.depth(1000).asks)]
    rows += [(str(qty), str(price), "") for price, qty, _ in book.depth(1000).bids]
    return rows


def table(text: str) -> list[tuple[str, str, str]]:
    """Parse a scenario table written as `| bid | price | ask |` rows (header row skipped)."""
    rows = []
    for line in text.strip().splitlines()[1:]:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        rows.append((cells[0], cells[1], cells[2]))
    return rows
