"""A futures position per (account, instrument): volumes, frozen volumes, costs and margin per side.

All amounts are ints: volumes in lots, costs and margin in money units. The position does not
know prices or rates; the account passes in notionals and margins computed by the instrument, so
every rounding happens in one place (`engine/instruments.py`) and the split rules live here.
Splitting cost or margin on a partial close takes `amount × closed // volume` (floor) and leaves
the remainder with the volume that stays open; closing the whole side takes it all. So nothing
is lost to rounding and conservation stays exact (docs/accounting.md §4).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.enums import Side


@dataclass(slots=True)
class PositionSide:
    """One direction (long or short) of a position."""

    today: int = 0
    history: int = 0
    frozen_today: int = 0
    frozen_history: int = 0
    open_cost: int = 0
    position_cost: int = 0
    margin: int = 0

    @property
    def volume(self) -> int:
        return self.today + self.history

    @property
    def frozen(self) -> int:
        return self.frozen_today + self.frozen_history

    @property
    def closable_today(self) -> int:
        return self.today - self.frozen_today

    @property
    def closable_history(self) -> int:
        return self.history - self.frozen_history

    def open(self, qty: int, notional: int, margin: int) -> None:
        """A fill that opens `qty` lots at `notional` money, holding `margin`."""
        self.today += qty
        self.open_cost += notional
        self.position_cost += notional
        self.margin += margin

    def close(self, history_qty: int, today_qty: int) -> tuple[int, int]:
        """Remove closed (already frozen) volume; returns the (position cost, margin) released.

        The open cost is split the same way, so open and position cost both keep their remainders.
        """
        volume = self.volume
        closed = history_qty + today_qty
        if closed == volume:
            cost, margin, open_cost = self.position_cost, self.margin, self.open_cost
        else:
            cost = self.position_cost * closed // volume
            margin = self.margin * closed // volume
            open_cost = self.open_cost * closed // volume
        self.history -= history_qty
        self.frozen_history -= history_qty
        self.today -= today_qty
        self.frozen_today -= today_qty
        self.position_cost -= cost
        self.open_cost -= open_cost
        self.margin -= margin
        return cost, margin

    def roll(self, settlement_notional: int, margin: int) -> None:
        """Settlement: today becomes history, position cost and margin are reset at the price."""
        self.history += self.today
        self.frozen_history += self.frozen_today
        self.today = 0
        self.frozen_today = 0
        self.position_cost = settlement_notional
        self.margin = margin

    def state(self) -> tuple[int, ...]:
        return (
            self.today,
            self.history,
            self.frozen_today,
            self.frozen_history,
            self.open_cost,
            self.position_cost,
            self.margin,
        )

    def check(self, where: str) -> None:
        """Raise on a broken invariant (a bug, never a business outcome)."""
        if min(self.today, self.history, self.frozen_today, self.frozen_history) < 0:
            raise AssertionError(f"{where}: negative volume {self.state()}")
        if self.frozen_today > self.today or self.frozen_history > self.history:
            raise AssertionError(f"{where}: frozen volume above volume {self.state()}")
        if self.margin < 0:
            raise AssertionError(f"{where}: negative margin {self.state()}")
        if self.volume == 0 and (self.open_cost or self.position_cost or self.margin):
            raise AssertionError(f"{where}: empty side keeps cost or margin {self.state()}")


@dataclass(slots=True)
class Position:
    """Both sides of one account's position in one futures instrument."""

    instrument_index: int
    long: PositionSide
    short: PositionSide

    @classmethod
    def empty(cls, instrument_index: int) -> Position:
        return cls(instrument_index, PositionSide(), PositionSide())

    def side(self, side: Side) -> PositionSide:
        """The side a BUY opens (long) or a SELL opens (short)."""
        return self.long if side is Side.BUY else self.short

    @property
    def margin(self) -> int:
        return self.long.margin + self.short.margin

    @property
    def is_flat(self) -> bool:
        return (
            self.long.volume == 0
            and self.short.volume == 0
            and not (self.long.frozen or self.short.frozen)
        )

    def float_profit(self, mark_notional_long: int, mark_notional_short: int) -> int:
        """Profit against the open cost: long (mark − cost), short (cost − mark)."""
        return (mark_notional_long - self.long.open_cost) + (
            self.short.open_cost - mark_notional_short
        )

    def position_profit(self, mark_notional_long: int, mark_notional_short: int) -> int:
        """Profit against the position cost (reset to the settlement price each day)."""
        return (mark_notional_long - self.long.position_cost) + (
            self.short.position_cost - mark_notional_short
        )

    def state(self) -> tuple[int, ...]:
        return (self.instrument_index, *self.long.state(), *self.short.state())

    def check(self, where: str) -> None:
        self.long.check(f"{where} long")
        self.short.check(f"{where} short")
