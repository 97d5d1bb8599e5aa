"""The reference's worked examples (seed 004): margin 20,000 and 1,000,000 → 1,000,999."""

from __future__ import annotations

import pytest

from engine.enums import Offset, Side
from tests.unit.engine.accounts.conftest import CNY, IX, Desk


def test_open_freezes_margin_and_commission_then_the_fill_uses_them(desk: Desk) -> None:
    desk.open_account(1, 1_000_000 * CNY)
    desk.open_account(2, 1_000_000 * CNY)
    desk.order(1, IX, Side.BUY, Offset.OPEN, 1000, 10)
    ledger = desk.ledger(1)
    assert ledger.frozen_margin == 20_000 * CNY  # 100 × 10 × 200 × 0.1
    assert ledger.frozen_commission == 50  # 0.05 × 10 lots
    assert desk.qifi(1)["available"] == 979_999.5
    desk.order(2, IX, Side.SELL, Offset.OPEN, 1000, 10)
    account = desk.qifi(1)
    assert (account["balance"], account["available"]) == (999_999.5, 979_999.5)
    assert (account["margin"], account["frozen_margin"], account["frozen_commission"]) == (
        20_000.0,
        0.0,
        0.0,
    )
    position = desk.core.to_qifi(1)["positions"]["CFFEX.IX2401"]
    assert position["volume_long"] == 10.0
    assert position["open_price_long"] == 100.0


@pytest.mark.parametrize(
    ("opener", "open_side", "close_price"),
    [(1, Side.BUY, 1005), (2, Side.SELL, 995)],
    ids=["long closed at 100.5", "short closed at 99.5"],
)
def test_round_trip_books_1000_profit_and_two_fees(
    desk: Desk, opener: int, open_side: Side, close_price: int
) -> None:
    desk.open_account(1, 1_000_000 * CNY)
    desk.open_account(2, 1_000_000 * CNY)
    desk.open_account(3, 1_000_000 * CNY)
    other = 3 - opener
    desk.order(opener, IX, open_side, Offset.OPEN, 1000, 10)
    desk.order(other, IX, open_side.opposite, Offset.OPEN, 1000, 10)
    desk.order(3, IX, open_side, Offset.OPEN, close_price, 10)
    desk.order(opener, IX, open_side.opposite, Offset.CLOSE, close_price, 10)
    account = desk.qifi(opener)
    assert account["close_profit"] == 1_000.0
    assert account["commission"] == 1.0
    assert account["balance"] == account["available"] == 1_000_999.0
    assert account["margin"] == 0.0
    assert desk.position(opener, IX) is None


def test_hedged_long_and_short_pay_margin_on_both_sides(desk: Desk) -> None:
    desk.open_account(1, 1_000_000 * CNY)
    desk.open_account(2, 1_000_000 * CNY)
    desk.order(1, IX, Side.BUY, Offset.OPEN, 1000, 10)
    desk.order(2, IX, Side.SELL, Offset.OPEN, 1000, 10)
    desk.order(1, IX, Side.SELL, Offset.OPEN, 1000, 5)
    desk.order(2, IX, Side.BUY, Offset.OPEN, 1000, 5)
    assert desk.qifi(1)["margin"] == 30_000.0  # (10 + 5) × 100 × 200 × 0.1
    position = desk.position(1, IX)
    assert (position.long.today, position.short.today) == (10, 5)
