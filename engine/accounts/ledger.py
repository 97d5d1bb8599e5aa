"""The money of one account in one currency: QIFI's account fields as integer fixed point.

QIFI's derived fields follow from the stored ones (docs/accounting.md §2):
static_balance = pre_balance + deposit − withdraw + close_profit − commission + exchange_flow,
balance = static_balance + position_profit, available = balance − margin − frozen_margin −
frozen_commission − frozen_asset. `exchange_flow` is the net cash of spot trades (exchange mode:
what was received minus what was paid, in this currency); `frozen_asset` is what open spot
orders hold. Position profit and margin depend on marks, so the account computes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Ledger:
    """One currency's stored money fields (money units of that currency).

    `static_balance` is kept in step by every booking (the hot path reads it per order and per
    snapshot; a property costs a Python call each time) and `check` proves it equals its parts.
    """

    currency: str
    pre_balance: int = 0
    deposit: int = 0
    withdraw: int = 0
    close_profit: int = 0
    commission: int = 0
    exchange_flow: int = 0
    margin: int = 0
    frozen_margin: int = 0
    frozen_commission: int = 0
    frozen_asset: int = 0
    static_balance: int = field(default=0, init=False, compare=False)
    """pre_balance + deposit − withdraw + close_profit − commission + exchange_flow."""

    def __post_init__(self) -> None:
        self.static_balance = self.static_parts()

    def static_parts(self) -> int:
        return (
            self.pre_balance
            + self.deposit
            - self.withdraw
            + self.close_profit
            - self.commission
            + self.exchange_flow
        )

    @property
    def frozen(self) -> int:
        return self.frozen_margin + self.frozen_commission + self.frozen_asset

    def available(self, position_profit: int) -> int:
        return self.static_balance + position_profit - self.margin - self.frozen

    def roll(self, position_profit: int) -> None:
        """Settlement: the day's balance becomes tomorrow's pre_balance; daily fields restart."""
        self.pre_balance = self.static_balance = self.static_balance + position_profit
        self.deposit = self.withdraw = self.close_profit = self.commission = 0
        self.exchange_flow = 0

    def state(self) -> tuple[object, ...]:
        return (
            self.currency,
            self.pre_balance,
            self.deposit,
            self.withdraw,
            self.close_profit,
            self.commission,
            self.exchange_flow,
            self.margin,
            self.frozen_margin,
            self.frozen_commission,
            self.frozen_asset,
        )

    def check(self, where: str) -> None:
        if self.static_balance != self.static_parts():
            raise AssertionError(f"{where}: static balance out of step {self.state()}")
        if min(self.frozen_margin, self.frozen_commission, self.frozen_asset, self.margin) < 0:
            raise AssertionError(f"{where}: negative frozen or margin {self.state()}")
        if self.deposit < 0 or self.withdraw < 0 or self.commission < 0:
            raise AssertionError(f"{where}: negative deposit, withdraw or commission")
