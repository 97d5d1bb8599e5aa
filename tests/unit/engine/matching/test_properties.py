"""Seeded random streams: invariants after every command, lots conserved per order, determinism.

`SHMEX_MATCHING_OPS` scales the stream (CI can run a big version); the default is quick.
"""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.enums import (
    OrderType,
    SelfTradePrevention,
    Side,
    TimeCondition,
    TradingPhase,
    VolumeCondition,
)
from engine.instruments import InstrumentRegistry
from engine.matching.commands import (
    AmendOrder,
    CancelOrder,
    ExpireOrders,
    PlaceOrder,
    RunAuction,
    SetPhase,
)
from engine.matching.engine import MatchingEngine
from engine.matching.events import (
    BookChanged,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderRejected,
    TradeExecuted,
)

OPS = int(os.environ.get("SHMEX_MATCHING_OPS", "4000"))
BANDS = {0: (900, 1100), 1: (450, 550)}


class Ledger:
    """Open lots per order rebuilt from events alone: placed = filled + cancelled + resting."""

    def __init__(self) -> None:
        self.open: dict[int, int] = {}
        self.placed = self.filled = self.cancelled = 0
        self.trade_ids: list[int] = []
        self.levels: dict[tuple[int, Side, int], int] = {}

    def apply(self, command: object, events: list) -> None:
        if isinstance(command, PlaceOrder):
            assert events, "a PlaceOrder always answers"
            first = events[0]
            assert isinstance(first, OrderAccepted | OrderRejected)
            assert first.order_id == command.order_id
            if isinstance(first, OrderRejected):
                assert len(events) == 1
        for event in events:
            self._event(event)

    def _event(self, event: object) -> None:
        if isinstance(event, OrderAccepted):
            assert event.order_id not in self.open
            self.open[event.order_id] = event.qty
            self.placed += event.qty
        elif isinstance(event, OrderAmended):
            assert self.open[event.order_id] == event.old_qty
            self.open[event.order_id] = event.qty
            self.placed += event.qty - event.old_qty
        elif isinstance(event, TradeExecuted):
            assert event.qty > 0
            for order_id, remaining in (
                (event.taker_order_id, event.taker_remaining),
                (event.maker_order_id, event.maker_remaining),
            ):
                self.open[order_id] -= event.qty
                assert self.open[order_id] == remaining >= 0
            self.filled += event.qty
            self.trade_ids.append(event.trade_id)
        elif isinstance(event, OrderCanceled):
            assert self.open[event.order_id] == event.qty > 0
            self.open[event.order_id] = 0
            self.cancelled += event.qty
        elif isinstance(event, BookChanged):
            self.levels[(event.instrument_index, event.side, event.price)] = event.qty

    def check_against(self, engine: MatchingEngine) -> None:
        resting = {}
        for book in engine.books.values():
            for order_id in book.orders:
                view = book.resting(order_id)
                assert view is not None and view.order_id == order_id
                resting[order_id] = view.qty
        assert {o: q for o, q in self.open.items() if q} == resting
        assert self.placed == 2 * self.filled + self.cancelled + sum(resting.values())
        assert self.trade_ids == sorted(set(self.trade_ids))
        for (index, side, price), qty in self.levels.items():
            assert engine.book(index).level_qty(side, price) == qty


def _random_command(rng: random.Random, next_id: int, live: list[tuple[int, int]], ts: int):
    roll = rng.random()
    if live and roll < 0.15:
        order_id, index = rng.choice(live)
        return CancelOrder(order_id, index, ts)
    if live and roll < 0.27:
        order_id, index = rng.choice(live)
        low, high = BANDS[index]
        price = rng.randint(low + 90, high - 90) if index == 0 else rng.randint(low + 45, high - 45)
        return AmendOrder(order_id, index, price, rng.randint(1, 12), ts)
    if roll < 0.273:
        return ExpireOrders(rng.choice([None, 0, 1]), ts)
    if roll < 0.278:
        return SetPhase(rng.randint(0, 1), TradingPhase.AUCTION, ts)
    if roll < 0.288:
        return RunAuction(rng.randint(0, 1), ts)
    index = rng.randint(0, 1)
    low, high = BANDS[index]
    mid = (low + high) // 2
    side = rng.choice([Side.BUY, Side.SELL])
    price = mid + rng.randint(-15, 15) if rng.random() < 0.97 else rng.choice([low - 1, high + 1])
    volume_condition = rng.choices(
        [VolumeCondition.ANY, VolumeCondition.ALL, VolumeCondition.MIN], [0.8, 0.1, 0.1]
    )[0]
    qty = rng.randint(1, 12)
    return PlaceOrder(
        order_id=next_id,
        account_id=rng.randint(1, 6),
        instrument_index=index,
        side=side,
        price=price,
        qty=qty,
        order_type=OrderType.MARKET if rng.random() < 0.05 else OrderType.LIMIT,
        time_condition=rng.choices(
            [TimeCondition.GFD, TimeCondition.GTC, TimeCondition.IOC], [0.6, 0.25, 0.15]
        )[0],
        volume_condition=volume_condition,
        min_qty=rng.randint(1, qty) if volume_condition == VolumeCondition.MIN else 0,
        ts=ts,
        stp=rng.choice(list(SelfTradePrevention)),
    )


def run_stream(registry: InstrumentRegistry, seed: int, ops: int) -> tuple[MatchingEngine, list]:
    """Apply a seeded stream, checking invariants and the ledger after every command."""
    rng = random.Random(seed)
    engine = MatchingEngine(registry)
    ledger = Ledger()
    log: list = []
    next_id = 1
    for ts in range(1, ops + 1):
        live = [(o, b.instrument_index) for b in engine.books.values() for o in b.orders]
        command = _random_command(rng, next_id, live, ts)
        if isinstance(command, PlaceOrder):
            next_id += 1
        events = engine.apply(command)
        ledger.apply(command, events)
        engine.check_invariants()
        log += events
    ledger.check_against(engine)
    return engine, log


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_streams_keep_invariants_and_conserve_lots(
    registry: InstrumentRegistry, seed: int
) -> None:
    _, log = run_stream(registry, seed, OPS)
    assert any(isinstance(e, TradeExecuted) for e in log)
    assert any(isinstance(e, OrderRejected) for e in log)


def test_same_seed_same_events_and_hash(registry: InstrumentRegistry) -> None:
    first, first_log = run_stream(registry, 11, OPS // 4)
    second, second_log = run_stream(registry, 11, OPS // 4)
    assert first_log == second_log
    assert first.state_hash() == second.state_hash()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([Side.BUY, Side.SELL]),
            st.integers(995, 1005),
            st.integers(1, 5),
            st.integers(1, 3),
        ),
        max_size=40,
    )
)
def test_no_crossed_book_after_any_limit_sequence(orders: list) -> None:
    from .conftest import TEST_INSTRUMENTS

    engine = MatchingEngine(InstrumentRegistry.from_mapping(TEST_INSTRUMENTS))
    ledger = Ledger()
    for n, (side, price, qty, account) in enumerate(orders, start=1):
        command = PlaceOrder(n, account, 0, side, price, qty)
        ledger.apply(command, engine.apply(command))
        engine.check_invariants()
        book = engine.book(0)
        if book.best_bid is not None and book.best_ask is not None:
            assert book.best_bid < book.best_ask
    ledger.check_against(engine)


def test_export_and_restore_continue_identically(registry: InstrumentRegistry) -> None:
    import json

    engine, _ = run_stream(registry, 5, OPS // 4)
    state = json.loads(json.dumps(engine.export_state()))
    restored = MatchingEngine.from_state(registry, state)
    restored.check_invariants()
    assert restored.state_hash() == engine.state_hash()
    rng = random.Random(9)
    next_id = engine.last_order_id + 1
    for ts in range(OPS // 4):
        live = [(o, b.instrument_index) for b in engine.books.values() for o in b.orders]
        command = _random_command(rng, next_id, live, ts)
        next_id += isinstance(command, PlaceOrder)
        assert engine.apply(command) == restored.apply(command)
    assert restored.state_hash() == engine.state_hash()
