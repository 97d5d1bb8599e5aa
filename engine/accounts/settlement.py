"""End of day: settlement prices, the settlement state machine, and marking one account.

Settlement is a round trip in the multiprocess exchange (accounts asks matching to expire the
day's orders, then waits for every day order to end), so it is a small state machine:
IDLE → EXPIRING (waiting for day orders) → marked and rolled → IDLE, with one result per day.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from engine.accounts.account import Account
from engine.accounts.events import SettlementResult
from engine.accounts.terms import Terms


class SettlementPhase(IntEnum):
    NONE = 0
    IDLE = 1
    EXPIRING = 2


@dataclass(slots=True)
class Settlement:
    """Prices set for the coming settlement, the run in progress and the results so far."""

    prices: dict[int, int] = field(default_factory=dict)
    phase: SettlementPhase = SettlementPhase.IDLE
    request_id: int = 0
    trading_day: int = 0
    results: dict[int, SettlementResult] = field(default_factory=dict)

    def begin(self, request_id: int, trading_day: int) -> None:
        self.phase = SettlementPhase.EXPIRING
        self.request_id = request_id
        self.trading_day = trading_day

    def end(self, result: SettlementResult) -> None:
        self.results[result.trading_day] = result
        self.prices.clear()
        self.phase = SettlementPhase.IDLE
        self.request_id = self.trading_day = 0

    def history(self, first_day: int = 0, last_day: int = 99_999_999) -> list[SettlementResult]:
        """Results between two trading days (YYYYMMDD, inclusive), oldest first."""
        return [self.results[d] for d in sorted(self.results) if first_day <= d <= last_day]

    def state(self) -> tuple[object, ...]:
        return (
            tuple(sorted(self.prices.items())),
            self.phase,
            self.request_id,
            self.trading_day,
            tuple(self.results[d] for d in sorted(self.results)),
        )


def settle_account(
    account: Account, terms: Sequence[Terms], prices: Mapping[int, int]
) -> dict[str, tuple[int, int]]:
    """Mark every position at its settlement price, book it, roll today into history.

    Returns per currency (commission, profit) of the day, where profit is close profit plus
    the position profit marked at settlement. Position cost becomes the settlement notional and
    margin is recomputed at the settlement price (docs/accounting.md §6).
    """
    day: dict[str, tuple[int, int]] = {}
    for code, ledger in account.ledgers.items():
        position_profit = account.position_profit(code, terms, prices)
        day[code] = (ledger.commission, ledger.close_profit + position_profit)
        ledger.roll(position_profit)
        ledger.margin = 0
    for index, position in account.positions.items():
        instrument = terms[index]
        price = prices[index]
        for side in (position.long, position.short):
            volume = side.volume
            side.roll(price * volume * instrument.per_tick_lot, instrument.margin(price, volume))
        account.ledger(instrument.currency).margin += position.margin
    for order in account.orders.values():
        order.reserved_history += order.reserved_today
        order.reserved_today = 0
    return day
