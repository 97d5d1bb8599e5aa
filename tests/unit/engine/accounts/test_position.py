"""Position arithmetic: remainders stay with the open volume, so nothing is lost to rounding."""

from __future__ import annotations

from engine.accounts.position import Position, PositionSide
from engine.enums import Side


def test_partial_closes_keep_the_remainder_and_the_last_close_takes_all() -> None:
    side = PositionSide()
    side.open(3, 1000, 101)
    side.frozen_today = 3
    released = [side.close(0, 1), side.close(0, 1), side.close(0, 1)]
    assert released == [(333, 33), (333, 34), (334, 34)]
    assert sum(cost for cost, _ in released) == 1000
    assert sum(margin for _, margin in released) == 101
    side.check("test")
    assert side.state() == (0,) * 7


def test_roll_moves_today_and_its_frozen_volume_into_history() -> None:
    side = PositionSide()
    side.open(5, 5000, 500)
    side.frozen_today = 2
    side.roll(5100, 510)
    assert (side.today, side.history, side.frozen_history) == (0, 5, 2)
    assert (side.open_cost, side.position_cost, side.margin) == (5000, 5100, 510)


def test_profits_long_and_short() -> None:
    position = Position.empty(0)
    position.side(Side.BUY).open(2, 2000, 200)
    position.side(Side.SELL).open(1, 1100, 110)
    assert position.float_profit(2100, 1050) == 100 + 50
    assert position.position_profit(2100, 1050) == 150
