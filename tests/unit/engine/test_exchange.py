"""The Exchange facade: accounts and matching wired synchronously, in causal order."""

from __future__ import annotations

import pytest

from engine.accounts import commands as c
from engine.accounts.events import (
    AccountUpdated,
    CommandAccepted,
    OrderUpdated,
    PositionUpdated,
    TradeBooked,
)
from engine.enums import InstrumentStatus, Offset, OrderStatus, Side
from engine.exchange import Exchange
from engine.matching.events import BookChanged, OrderAccepted, TradeExecuted
from tests.unit.engine.accounts.conftest import CNY, IX, registry


def _session() -> tuple[Exchange, list[list[object]]]:
    exchange = Exchange(registry())
    answers = []
    script = [
        c.OpenAccount(1, 1),
        c.OpenAccount(2, 2),
        c.Deposit(3, 1, 1_000_000 * CNY, 1),
        c.Deposit(4, 2, 1_000_000 * CNY, 2),
        c.SubmitOrder(5, 1, IX, Side.BUY, Offset.OPEN, 1000, 3),
        c.SubmitOrder(6, 2, IX, Side.SELL, Offset.OPEN, 1000, 2),
    ]
    for command in script:
        answers.append(exchange.apply(command))
    return exchange, answers


def test_events_come_in_causal_order() -> None:
    _, answers = _session()
    kinds = [type(e) for e in answers[-1]]
    assert kinds[:4] == [CommandAccepted, OrderUpdated, OrderAccepted, OrderUpdated]
    trade = kinds.index(TradeExecuted)
    assert kinds[trade + 1 : trade + 3] == [OrderUpdated, TradeBooked]
    assert kinds[-1] is BookChanged
    updates = [e for e in answers[-1] if isinstance(e, OrderUpdated)]
    assert [u.status for u in updates] == [
        OrderStatus.PENDING,
        OrderStatus.ACCEPTED,
        OrderStatus.FILLED,
        OrderStatus.PARTIALLY_FILLED,
    ]


def test_state_hash_covers_both_halves_and_is_reproducible() -> None:
    first, _ = _session()
    second, _ = _session()
    assert first.state_hash() == second.state_hash()
    accounts_hash, matching_hash = first.state_hash().split(":")
    second.apply(c.CancelOrder(7, 1, 1))
    assert second.state_hash().split(":")[0] != accounts_hash
    assert second.state_hash().split(":")[1] != matching_hash


def test_check_invariants_catches_a_drifted_total() -> None:
    exchange, _ = _session()
    exchange.check_invariants()
    exchange.accounts.accounts[1].ledger("CNY").frozen_margin += 1
    with pytest.raises(AssertionError, match="sum of parts"):
        exchange.check_invariants()


def test_check_invariants_catches_money_created_from_nothing() -> None:
    exchange, _ = _session()
    ledger = exchange.accounts.accounts[2].ledger("CNY")
    ledger.close_profit += 1
    ledger.static_balance += 1
    with pytest.raises(AssertionError, match="not conserved"):
        exchange.check_invariants()


def test_admin_changes_reach_matchings_own_registry() -> None:
    exchange, _ = _session()
    assert exchange.accounts.instruments is not exchange.matching.instruments
    exchange.apply(c.SuspendInstrument(8, "CFFEX.IX2401"))
    assert exchange.matching.instruments.by_index(IX).status is InstrumentStatus.SUSPENDED


def test_batched_snapshots_equal_the_last_per_event_snapshots() -> None:
    """snapshots=False: the core remembers who changed; snapshot_events(ts) reports them once."""
    per_event, answers = _session()
    batched = Exchange(registry(), snapshots=False)
    script = [
        c.OpenAccount(1, 1),
        c.OpenAccount(2, 2),
        c.Deposit(3, 1, 1_000_000 * CNY, 1),
        c.Deposit(4, 2, 1_000_000 * CNY, 2),
        c.SubmitOrder(5, 1, IX, Side.BUY, Offset.OPEN, 1000, 3),
        c.SubmitOrder(6, 2, IX, Side.SELL, Offset.OPEN, 1000, 2),
    ]
    for command in script:
        events = batched.apply(command)
        assert not [e for e in events if isinstance(e, AccountUpdated | PositionUpdated)]
    assert batched.state_hash() == per_event.state_hash()
    last: dict[tuple[type, int], object] = {}
    for event in (e for events in answers for e in events):
        if isinstance(event, AccountUpdated | PositionUpdated):
            last[type(event), event.account_id] = event._replace(ts=99)
    snapshots = batched.accounts.snapshot_events(99)
    assert [(type(e), e.account_id) for e in snapshots] == [
        (AccountUpdated, 1),
        (PositionUpdated, 1),
        (AccountUpdated, 2),
        (PositionUpdated, 2),
    ]
    assert {(type(e), e.account_id): e for e in snapshots} == last
    assert batched.accounts.snapshot_events(100) == []
