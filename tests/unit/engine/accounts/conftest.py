"""Instruments and a small driver for the accounts tests: the worked examples' IX2401 and friends.

IX2401 is the reference's example: multiplier 200, 10% margin, 0.05 CNY commission per lot,
tick 0.1 (price 100.0 = 1000 ticks), band ±10% around 100.0.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from engine.accounts import commands as c
from engine.accounts.events import CommandAccepted, CommandRejected
from engine.accounts.risk import RiskConfig
from engine.codes import ResultCode
from engine.enums import Offset, OrderType, Side, TimeCondition
from engine.exchange import Exchange
from engine.instruments import InstrumentRegistry

IX, CU, BTC = 0, 1, 2
CNY = 100  # money units per yuan
INSTRUMENTS: dict[str, Any] = {
    "currencies": {"CNY": {"decimals": 2}, "USDT": {"decimals": 8}, "BTC": {"decimals": 8}},
    "instruments": [
        {
            "id": "CFFEX.IX2401",
            "currency": "CNY",
            "multiplier": 200,
            "price_tick": "0.1",
            "max_qty": 1000,
            "margin_rate": "0.1",
            "commission": {"by": "lot", "open": "0.05", "close": "0.05", "close_today": "0.05"},
            "band": "0.1",
            "pre_close": "100.0",
            "pre_settlement": "100.0",
            "close_today_rule": "HISTORY_FIRST",
        },
        {
            "id": "SHFE.cu2501",
            "currency": "CNY",
            "multiplier": 5,
            "price_tick": "10",
            "max_qty": 500,
            "margin_rate": "0.1",
            "commission": {"by": "rate", "open": "0.0005", "close": "0.0005", "close_today": "0"},
            "band": "0.08",
            "pre_close": "50000",
            "pre_settlement": "50000",
            "close_today_rule": "SHFE",
        },
        {
            "id": "BINANCE.BTCUSDT",
            "kind": "SPOT",
            "currency": "USDT",
            "base_asset": "BTC",
            "price_tick": "0.01",
            "lot_size": "0.0001",
            "max_qty": 1_000_000,
            "commission": {"by": "rate", "open": "0.001", "close": "0.001"},
            "band": "0.1",
            "pre_close": "95000.00",
            "pre_settlement": "95000.00",
        },
    ],
}


def registry() -> InstrumentRegistry:
    return InstrumentRegistry.from_mapping(INSTRUMENTS)


class Desk:
    """An Exchange plus short helpers; every command checks invariants afterwards."""

    def __init__(self, risk: RiskConfig | None = None) -> None:
        self.exchange = Exchange(registry(), risk)
        self.core = self.exchange.accounts
        self._request = 0
        self.events: list[Any] = []

    def run(self, command_type: type, *args: Any, **kwargs: Any) -> list[Any]:
        self._request += 1
        events = self.exchange.apply(command_type(self._request, *args, **kwargs))
        self.exchange.check_invariants()
        self.events = events
        return events

    def answer(self) -> CommandAccepted | CommandRejected:
        return next(e for e in self.events if isinstance(e, CommandAccepted | CommandRejected))

    def code(self) -> ResultCode:
        answer = self.answer()
        return answer.code if isinstance(answer, CommandRejected) else ResultCode.OK

    def open_account(self, account_id: int, cash: int, currency: str = "CNY") -> None:
        self.run(c.OpenAccount, account_id)
        self.run(c.Deposit, account_id, cash, 1_000_000 + self._request, currency)
        assert self.code() is ResultCode.OK

    def order(
        self,
        account_id: int,
        instrument: int,
        side: Side,
        offset: Offset,
        price: int,
        qty: int,
        order_type: OrderType = OrderType.LIMIT,
        time_condition: TimeCondition = TimeCondition.GFD,
    ) -> int:
        """Submit; returns the order id (0 when rejected, see `code()`)."""
        self.run(
            c.SubmitOrder, account_id, instrument, side, offset, price, qty, order_type,
            time_condition,
        )  # fmt: skip
        answer = self.answer()
        return answer.order_id if isinstance(answer, CommandAccepted) else 0

    def ledger(self, account_id: int, currency: str = "CNY") -> Any:
        return self.core.accounts[account_id].ledger(currency)

    def qifi(self, account_id: int, currency: str = "CNY") -> dict[str, Any]:
        return self.core.to_qifi(account_id)["accounts"][currency]

    def position(self, account_id: int, instrument: int) -> Any:
        return self.core.accounts[account_id].positions.get(instrument)


@pytest.fixture
def desk() -> Iterator[Desk]:
    yield Desk()
