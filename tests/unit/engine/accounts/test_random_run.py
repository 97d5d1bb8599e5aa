"""A seeded random stream through the Exchange facade, checking every identity after every step.

After each command: the core's invariants (stored totals = sum of parts, frozen never negative,
exact conservation per currency, long = short per future), QIFI identities of every account's
rendering, and both legs of every trade. Two runs of one seed end with the same state hash.
Scale with SHMEX_ACCOUNTS_STEPS (default 1,500 commands per run).
"""

from __future__ import annotations

import os
import random
from typing import Any

import pytest

from engine.accounts import commands as c
from engine.accounts.events import TradeBooked
from engine.accounts.risk import RiskConfig
from engine.enums import Offset, OrderType, Side, TimeCondition, VolumeCondition
from engine.exchange import Exchange
from tests.unit.engine.accounts.conftest import BTC, CNY, CU, IX, registry

STEPS = int(os.environ.get("SHMEX_ACCOUNTS_STEPS", "1500"))
ACCOUNTS = range(1, 9)
FUTURES = {IX: 1000, CU: 5000}  # instrument → centre price in ticks
USDT = 10**8
SPOT = 9_500_000
VOLUME_CONDITIONS = (VolumeCondition.ANY,) * 6 + (VolumeCondition.ALL, VolumeCondition.MIN)


class Stream:
    """Random client commands; the choices depend only on the seed and the order ids seen."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.request = 0
        self.txn = 0
        self.day = 20250101

    def setup(self) -> list[Any]:
        commands: list[Any] = []
        for account in ACCOUNTS:
            commands.append(c.OpenAccount(self._id(), account))
            commands.append(c.Deposit(self._id(), account, 400_000 * CNY, self._txn()))
            commands.append(c.Deposit(self._id(), account, 200_000 * USDT, self._txn(), "USDT"))
            commands.append(c.Deposit(self._id(), account, 2 * 10**8, self._txn(), "BTC"))
        return commands

    def next(self, live: list[tuple[int, int, int]]) -> list[Any]:
        """The next command(s); `live` is (account, order id, instrument) of the live orders."""
        rng = self.rng
        roll = rng.random()
        account = rng.choice(ACCOUNTS)
        if roll < 0.6 or (roll < 0.85 and not live):
            return [self._order(account)]
        if roll < 0.72:
            owner, order_id, _ = rng.choice(live)
            return [c.CancelOrder(self._id(), owner, order_id)]
        if roll < 0.85:
            owner, order_id, instrument = rng.choice(live)
            centre = FUTURES.get(instrument, SPOT)
            price = centre + rng.randint(-6, 6) * (100 if instrument == BTC else 1)
            return [c.AmendOrder(self._id(), owner, order_id, price, rng.randint(1, 6))]
        if roll < 0.93:
            amount = rng.randint(1, 50_000) * CNY
            txn = rng.choice((self._txn(), max(1, self.txn - 1)))
            kind = c.Deposit if rng.random() < 0.5 else c.Withdraw
            return [kind(self._id(), account, amount, txn)]
        if roll < 0.995:
            return [c.CancelOrder(self._id(), account, rng.randint(1, 10_000))]
        self.day += 1
        prices = tuple(
            (i, p + rng.randint(-60, 60) * (1 if i == IX else 5)) for i, p in FUTURES.items()
        )
        return [
            c.SetSettlementPrices(self._id(), prices),
            c.ExecuteSettlement(self._id(), self.day),
        ]

    def _order(self, account: int) -> c.SubmitOrder:
        rng = self.rng
        instrument = rng.choice((IX, IX, CU, BTC))
        side = rng.choice((Side.BUY, Side.SELL))
        if instrument == BTC:
            price = SPOT + rng.randint(-30, 30) * 100
            offset, qty = Offset.NONE, rng.randint(1, 3000)
        else:
            price = FUTURES[instrument] + rng.randint(-8, 8)
            offset = rng.choice(
                (Offset.OPEN, Offset.OPEN, Offset.CLOSE, Offset.CLOSETODAY, Offset.CLOSEYESTERDAY)
            )
            qty = rng.randint(1, 8)
        order_type = OrderType.MARKET if rng.random() < 0.08 else OrderType.LIMIT
        time_condition = rng.choice((TimeCondition.GFD, TimeCondition.GFD, TimeCondition.GTC,
                                     TimeCondition.IOC))  # fmt: skip
        volume_condition = rng.choice(VOLUME_CONDITIONS)
        min_qty = rng.randint(1, qty) if volume_condition is VolumeCondition.MIN else 0
        return c.SubmitOrder(self._id(), account, instrument, side, offset, price, qty,
                             order_type, time_condition, volume_condition, min_qty)  # fmt: skip

    def _id(self) -> int:
        self.request += 1
        return self.request

    def _txn(self) -> int:
        self.txn += 1
        return self.txn


def _check_qifi(exchange: Exchange) -> None:
    for account_id in exchange.accounts.accounts:
        rendered = exchange.accounts.to_qifi(account_id)["accounts"]
        for code, fields in rendered.items():
            ledger = exchange.accounts.accounts[account_id].ledgers[code]
            profit, _ = exchange.accounts.accounts[account_id].profits(
                code, exchange.accounts.instruments, exchange.accounts.marks
            )
            balance = ledger.static_balance + profit
            available = balance - ledger.margin - ledger.frozen
            assert ledger.available(profit) == available
            scale = exchange.accounts.instruments.currencies[code].scale
            assert fields["balance"] == balance / scale
            assert (
                abs(fields["balance"] - fields["static_balance"] - fields["position_profit"]) < 1e-6
            )
            identity = fields["balance"] - fields["margin"] - fields["frozen_margin"]
            assert abs(identity - fields["frozen_commission"] - fields["available"]) < 1e-6


def _check_legs(events: list[Any]) -> None:
    legs: dict[int, list[TradeBooked]] = {}
    for event in events:
        if isinstance(event, TradeBooked):
            legs.setdefault(event.trade_id, []).append(event)
    for trade_id, pair in legs.items():
        assert len(pair) == 2, f"trade {trade_id} has {len(pair)} legs"
        first, second = pair
        assert first.side is second.side.opposite
        assert (first.price, first.qty) == (second.price, second.qty)


def run(seed: int, steps: int, risk: RiskConfig) -> tuple[Exchange, int]:
    exchange = Exchange(registry(), risk)
    stream = Stream(seed)
    trades = 0
    for command in stream.setup():
        exchange.apply(command)
    for _ in range(steps):
        live = [(o.account_id, i, o.instrument_index) for i, o in exchange.accounts.orders.items()]
        for command in stream.next(live):
            events = exchange.apply(command)
            _check_legs(events)
            trades += sum(isinstance(e, TradeBooked) for e in events) // 2
            exchange.check_invariants()
        _check_qifi(exchange)
    return exchange, trades


@pytest.mark.parametrize("intraday", [False, True], ids=["plain", "intraday-liquidation"])
def test_random_run_keeps_every_identity_and_is_deterministic(intraday: bool) -> None:
    risk = RiskConfig(intraday_liquidation=intraday, liquidation_ratio_e8=50_000_000)
    first, trades = run(7, STEPS, risk)
    assert trades > STEPS // 20
    assert first.accounts.settlement_results()
    second, _ = run(7, STEPS, risk)
    assert first.state_hash() == second.state_hash()
    third, _ = run(8, STEPS // 10, risk)
    assert third.state_hash() != first.state_hash()
