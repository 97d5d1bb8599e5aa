"""AccountsCore with matching as a separate party, as in the multiprocess exchange.

The Exchange facade delivers every matching command at once; here the tests hold commands
"in the ring" and deliver them later, to show the core's round trips: settlement waits for the
day's orders to end, and a pending amend stays held until matching answers it.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from engine.accounts import commands as c
from engine.accounts.core import AccountsCore
from engine.accounts.events import CommandAccepted, CommandRejected, SettlementCompleted
from engine.codes import ResultCode
from engine.enums import Offset, Side
from engine.matching import commands as mc
from engine.matching.engine import MatchingEngine
from tests.unit.engine.accounts.conftest import CNY, IX, registry


class Wire:
    """The core and a matching engine joined by a FIFO the test delivers from by hand."""

    def __init__(self) -> None:
        self.core = AccountsCore(registry())
        self.matching = MatchingEngine(registry())
        self.ring: deque[Any] = deque()
        self.request = 0

    def send(self, command_type: type, *args: Any) -> list[Any]:
        self.request += 1
        to_matching, events = self.core.apply(command_type(self.request, *args))
        self.ring.extend(to_matching)
        return events

    def deliver(self, count: int | None = None) -> list[Any]:
        """Apply `count` queued commands (all when None) and book their events."""
        events: list[Any] = []
        for _ in range(len(self.ring) if count is None else count):
            for event in self.matching.apply(self.ring.popleft()):
                to_matching, booked = self.core.on_exec(event)
                self.ring.extend(to_matching)
                events.extend(booked)
        return events

    def fund(self, *accounts: int) -> None:
        for account in accounts:
            self.send(c.OpenAccount, account)
            self.send(c.Deposit, account, 1_000_000 * CNY, account)


def test_settlement_waits_for_the_day_orders_to_end() -> None:
    wire = Wire()
    wire.fund(1, 2)
    wire.send(c.SubmitOrder, 1, IX, Side.BUY, Offset.OPEN, 1000, 2)
    wire.send(c.SubmitOrder, 2, IX, Side.SELL, Offset.OPEN, 1000, 1)
    wire.deliver()
    wire.send(c.SetSettlementPrice, IX, 1000)
    assert wire.send(c.ExecuteSettlement, 20250102) == []
    assert list(wire.ring) == [mc.ExpireOrders(None, 0)]
    refused = wire.send(c.SubmitOrder, 2, IX, Side.SELL, Offset.OPEN, 1000, 1)
    assert isinstance(refused[0], CommandRejected)
    assert refused[0].code is ResultCode.ENGINE_NOT_READY
    events = wire.deliver()
    assert any(isinstance(e, SettlementCompleted) for e in events)
    assert isinstance(events[-1], CommandAccepted)
    assert wire.core.orders == {}
    assert wire.core.accounts[1].positions[IX].long.history == 1
    wire.core.check_invariants()


def test_a_pending_amend_stays_held_across_a_fill_until_matching_answers() -> None:
    wire = Wire()
    wire.fund(1, 2)
    wire.send(c.SubmitOrder, 1, IX, Side.BUY, Offset.OPEN, 1000, 5)
    wire.deliver()
    wire.send(c.AmendOrder, 1, 1, 1000, 8)
    ledger = wire.core.accounts[1].ledger("CNY")
    assert ledger.frozen_margin == 1000 * 8 * 2000 // 10
    wire.send(c.SubmitOrder, 2, IX, Side.SELL, Offset.OPEN, 1000, 2)
    wire.ring.rotate(-1)  # the crossing order reaches matching before the amend
    wire.deliver(1)
    assert ledger.frozen_margin == 1000 * 8 * 2000 // 10  # max(3 left, 8 pending)
    wire.core.check_invariants()
    wire.deliver()
    order = wire.core.orders[1]
    assert (order.filled, order.remaining, order.pending_qty) == (2, 8, 0)
    assert ledger.frozen_margin == 1000 * 8 * 2000 // 10
    wire.core.check_invariants()


def test_an_amend_that_loses_the_race_with_the_last_fill_releases_everything() -> None:
    wire = Wire()
    wire.fund(1, 2)
    wire.send(c.SubmitOrder, 1, IX, Side.BUY, Offset.OPEN, 1000, 5)
    wire.deliver()
    wire.send(c.AmendOrder, 1, 1, 1010, 9)
    wire.send(c.SubmitOrder, 2, IX, Side.SELL, Offset.OPEN, 1000, 5)
    wire.ring.rotate(-1)
    wire.deliver()
    ledger = wire.core.accounts[1].ledger("CNY")
    assert (ledger.frozen_margin, ledger.frozen_commission) == (0, 0)
    assert ledger.margin == 1000 * 5 * 2000 // 10
    assert wire.core.orders == {}
    wire.core.check_invariants()


def test_amending_a_close_order_reserves_and_releases_volume() -> None:
    wire = Wire()
    wire.fund(1, 2)
    wire.send(c.SubmitOrder, 1, IX, Side.BUY, Offset.OPEN, 1000, 6)
    wire.send(c.SubmitOrder, 2, IX, Side.SELL, Offset.OPEN, 1000, 6)
    wire.deliver()
    wire.send(c.SubmitOrder, 1, IX, Side.SELL, Offset.CLOSE, 1050, 2)
    wire.deliver()
    long = wire.core.accounts[1].positions[IX].long
    assert long.frozen_today == 2
    wire.send(c.AmendOrder, 1, 3, 1050, 5)
    assert long.frozen_today == 5
    wire.deliver()
    rejected = wire.send(c.AmendOrder, 1, 3, 1050, 7)
    assert rejected[0].code is ResultCode.INSUFFICIENT_POSITION
    wire.send(c.AmendOrder, 1, 3, 1050, 1)
    assert long.frozen_today == 5  # held until matching confirms
    wire.deliver()
    assert long.frozen_today == 1
    wire.core.check_invariants()


def test_an_update_of_the_tick_is_refused_naming_it_and_changes_nothing() -> None:
    wire = Wire()
    instrument = wire.core.instruments.by_index(IX)
    (refused,) = wire.send(c.UpdateInstrument, instrument.id, {"price_tick": "0.5"}, 1)
    assert isinstance(refused, CommandRejected) and refused.code is ResultCode.CONFIG
    assert "price_tick cannot change" in refused.message and instrument.id in refused.message
    assert wire.core.instruments.by_index(IX) == instrument
    (accepted,) = wire.send(c.UpdateInstrument, instrument.id, {"max_qty": 77}, 2)
    assert isinstance(accepted, CommandAccepted)
    assert wire.core.instruments.by_index(IX).max_qty == 77
