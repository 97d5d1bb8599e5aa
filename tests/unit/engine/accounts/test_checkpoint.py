"""Checkpoints: export at any point, restore, continue — identical events and state hash.

The stream is the reference generator's (tests/reference), run through the `Exchange` facade
with account snapshots on, so every AccountUpdated/PositionUpdated is compared too. The export
goes through orjson, as the processes' checkpoint files do.
"""

from __future__ import annotations

import os
import random
from typing import Any

import orjson
import pytest

from engine.accounts import commands as c
from engine.accounts.core import AccountsCore
from engine.accounts.settlement import SettlementPhase
from engine.codes import ResultCode
from engine.enums import CancelReason, Offset, Side, TimeCondition
from engine.exchange import Exchange
from engine.instruments import InstrumentRegistry
from engine.matching import events as me
from tests.reference.driver import Driver
from tests.reference.generator import Mix
from tests.reference.instruments import DEFAULT_TOML
from tests.unit.engine.accounts.conftest import CNY, IX, registry

OPS = int(os.environ.get("SHMEX_CHECKPOINT_OPS", "6000"))


def _config() -> InstrumentRegistry:
    return InstrumentRegistry.from_toml(DEFAULT_TOML.read_text())


def _commands(seed: int, count: int) -> list[Any]:
    driver = Driver()
    driver.run(seed, count, mix=Mix(settle_every=count // 4, suspend_rate=0.002))
    return driver.commands


def _through_json(state: dict[str, Any]) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(orjson.dumps(state))
    return loaded


def test_restored_exchange_continues_identically() -> None:
    commands = _commands(11, OPS)
    rng = random.Random(5)
    cuts = sorted(rng.sample(range(1, len(commands)), 4))
    original = Exchange(_config())
    answers: list[list[Any]] = []
    saved: dict[int, dict[str, Any]] = {}
    for step, command in enumerate(commands):
        if step in cuts:
            saved[step] = _through_json(original.export_state())
        answers.append(original.apply(command))
    original.check_invariants()
    assert any(original.accounts.settlement.results), "the stream should settle"
    for cut, state in saved.items():
        restored = Exchange.from_state(_config(), state)
        restored.check_invariants()
        assert orjson.dumps(restored.export_state()) == orjson.dumps(state)
        for step in range(cut, len(commands)):
            assert restored.apply(commands[step]) == answers[step], f"cut {cut}, step {step}"
        assert restored.state_hash() == original.state_hash()
        assert orjson.dumps(restored.export_state()) == orjson.dumps(original.export_state())


def test_restore_reproduces_the_state_hash_and_instruments() -> None:
    commands = _commands(12, 2_000)
    exchange = Exchange(_config())
    for command in commands:
        exchange.apply(command)
    state = _through_json(exchange.export_state())
    restored = Exchange.from_state(_config(), state)
    assert restored.state_hash() == exchange.state_hash()
    assert list(restored.accounts.instruments) == list(exchange.accounts.instruments)
    assert list(restored.matching.instruments) == list(exchange.matching.instruments)
    assert restored.accounts.day_orders == exchange.accounts.day_orders
    assert restored.accounts.orders.keys() == exchange.accounts.orders.keys()
    for account_id, account in exchange.accounts.accounts.items():
        again = restored.accounts.accounts[account_id]
        assert list(again.ledgers) == list(account.ledgers)
        assert list(again.positions) == list(account.positions)
        frozen = {i: m for i, m in account.frozen_by_instrument.items() if m}
        assert {i: m for i, m in again.frozen_by_instrument.items() if m} == frozen


def test_a_repeated_transaction_stays_idempotent_after_restore() -> None:
    exchange = Exchange(registry())
    exchange.apply(c.OpenAccount(1, 1))
    deposit = c.Deposit(2, 1, 1_000 * CNY, 77)
    exchange.apply(deposit)
    restored = Exchange.from_state(registry(), _through_json(exchange.export_state()))
    restored.apply(deposit)
    assert restored.accounts.accounts[1].ledger("CNY").deposit == 1_000 * CNY
    other = restored.apply(c.Deposit(3, 1, 5 * CNY, 77))
    assert other[0].code is ResultCode.DEPOSIT_FAILED


def test_a_settlement_waiting_for_day_orders_survives_a_restore() -> None:
    """In the multiprocess exchange a checkpoint may fall while settlement awaits expiries."""
    core = AccountsCore(registry())
    core.apply(c.OpenAccount(1, 1))
    core.apply(c.Deposit(2, 1, 1_000_000 * CNY, 1))
    (place,), _ = core.apply(
        c.SubmitOrder(3, 1, IX, Side.BUY, Offset.OPEN, 1000, 2, time_condition=TimeCondition.GFD)
    )
    core.on_exec(me.OrderAccepted(place.order_id, 1, IX, Side.BUY, 1000, 2, 4))
    core.apply(c.SetSettlementPrice(5, IX, 1010, 5))
    to_matching, _ = core.apply(c.ExecuteSettlement(6, 20250102, 6))
    assert core.settlement.phase is SettlementPhase.EXPIRING and to_matching
    restored = AccountsCore.from_state(registry(), _through_json(core.export_state()))
    assert restored.state_hash() == core.state_hash()
    expired = me.OrderCanceled(place.order_id, 1, IX, CancelReason.END_OF_DAY, 2, 7)
    assert restored.on_exec(expired) == core.on_exec(expired)
    assert restored.settlement.phase is SettlementPhase.IDLE
    assert restored.settlement_results() == core.settlement_results()
    assert restored.state_hash() == core.state_hash()
    restored.check_invariants()


def test_a_mismatched_checkpoint_is_refused() -> None:
    state = _through_json(AccountsCore(registry()).export_state())
    with pytest.raises(ValueError, match="version"):
        AccountsCore.from_state(registry(), {**state, "version": 0})
    with pytest.raises(ValueError, match="instruments"):
        AccountsCore.from_state(registry(), {**state, "instruments": state["instruments"][:1]})


def test_a_version_1_checkpoint_loads_with_no_pending_amend_split() -> None:
    """Version 1 predates Order.pending_history/today: its orders load with both 0."""
    core = AccountsCore(registry())
    core.apply(c.OpenAccount(1, 1))
    core.apply(c.Deposit(2, 1, 1_000_000 * CNY, 1))
    core.apply(c.SubmitOrder(3, 1, IX, Side.BUY, Offset.OPEN, 1000, 2))
    state = _through_json(core.export_state())
    old = {**state, "version": 1}
    old["accounts"] = [
        {**account, "orders": [values[:-2] for values in account["orders"]]}
        for account in state["accounts"]
    ]
    assert any(account["orders"] for account in old["accounts"])
    restored = AccountsCore.from_state(registry(), old)
    assert restored.state_hash() == core.state_hash()
    restored.check_invariants()
