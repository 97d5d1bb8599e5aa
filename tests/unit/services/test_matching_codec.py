"""orders/execs records ↔ matching commands/events: lossless both ways, through the real engine."""

import dataclasses
import random

import numpy as np
import pytest

from engine.enums import (
    CancelReason,
    InstrumentStatus,
    Offset,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeCondition,
    TradingPhase,
    VolumeCondition,
)
from engine.matching.commands import (
    AmendOrder,
    CancelOrder,
    ExpireOrders,
    MatchingCommand,
    PlaceOrder,
    RunAuction,
    SetPhase,
)
from engine.matching.engine import MatchingEngine
from ipc import records
from ipc.records import Kind
from services import config as cfg
from services.matching_codec import (
    InstrumentChanged,
    UnsupportedRecord,
    band_from_limits,
    commands_to_orders,
    events_to_execs,
    execs_to_events,
    oi_deltas,
    orders_to_commands,
)


def _commands(seed: int, n: int, registry: object) -> list[MatchingCommand]:
    """A seeded stream of every command kind, with prices near each instrument's reference."""
    rng = random.Random(seed)
    instruments = list(registry)  # type: ignore[call-overload]
    out: list[MatchingCommand] = []
    order_id = 0
    for step in range(n):
        inst = rng.choice(instruments)
        mid = inst.pre_settlement or 1000
        roll = rng.random()
        ts = 1_000 + step
        if roll < 0.7 or order_id == 0:
            order_id += 1
            out.append(
                PlaceOrder(
                    order_id,
                    rng.randint(1, 5),
                    inst.index,
                    rng.choice([Side.BUY, Side.SELL]),
                    mid + rng.randint(-5, 5),
                    rng.randint(1, 3),
                    rng.choice([OrderType.LIMIT, OrderType.LIMIT, OrderType.MARKET]),
                    rng.choice(list(TimeCondition)[1:]),
                    rng.choice([VolumeCondition.ANY, VolumeCondition.ALL, VolumeCondition.MIN]),
                    rng.randint(0, 2),
                    ts,
                    rng.choice(list(SelfTradePrevention)),
                )
            )
        elif roll < 0.82:
            reason = rng.choice([CancelReason.USER, CancelReason.ADMIN])
            out.append(CancelOrder(rng.randint(1, order_id), inst.index, ts, reason))
        elif roll < 0.92:
            price = mid + rng.randint(-5, 5)
            out.append(
                AmendOrder(rng.randint(1, order_id), inst.index, price, rng.randint(1, 3), ts)
            )
        elif roll < 0.95:
            out.append(
                SetPhase(
                    inst.index, rng.choice([TradingPhase.AUCTION, TradingPhase.CONTINUOUS]), ts
                )
            )
        elif roll < 0.98:
            out.append(RunAuction(inst.index, ts))
        else:
            out.append(ExpireOrders(rng.choice([None, inst.index]), ts))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_round_trip_through_records_and_the_engine(seed: int) -> None:
    registry = cfg.load_instruments(cfg.load(env={}))
    commands = _commands(seed, 400, registry)
    batch = commands_to_orders(commands, source=2, first_seq=10, ts_init=99)
    assert batch.dtype == records.ORDER
    assert batch["seq"].tolist() == list(range(10, 410))
    assert orders_to_commands(batch) == commands

    direct, via_records = MatchingEngine(registry), MatchingEngine(registry)
    events = [event for command in commands for event in direct.apply(command)]
    decoded_events = [e for c in orders_to_commands(batch) for e in via_records.apply(c)]
    assert decoded_events == events
    assert direct.state_hash() == via_records.state_hash()

    execs = events_to_execs(events, source=1, first_seq=5, ts_init=7)
    assert execs.dtype == records.EXEC and len(execs) == len(events)
    assert execs["seq"].tolist() == list(range(5, 5 + len(events)))
    assert set(np.unique(execs["version"]).tolist()) == {records.RECORD_VERSION}
    assert execs_to_events(execs) == events
    seen = {Kind(k).name for k in np.unique(execs["kind"]).tolist()}
    assert {"ORDER_ACCEPTED", "TRADE", "BOOK_LEVEL", "ORDER_CANCELED"} <= seen


def test_trade_record_carries_both_legs() -> None:
    registry = cfg.load_instruments(cfg.load(env={}))
    engine = MatchingEngine(registry)
    inst = next(iter(registry))
    price = inst.pre_settlement
    engine.apply(PlaceOrder(1, 7, inst.index, Side.SELL, price, 2))
    events = engine.apply(PlaceOrder(2, 8, inst.index, Side.BUY, price, 3))
    execs = events_to_execs(events)
    (trade,) = execs[execs["kind"] == Kind.TRADE]
    assert (trade["order_id"], trade["account"], trade["side"]) == (2, 8, Side.BUY)
    assert (trade["maker_order_id"], trade["maker_account"]) == (1, 7)
    assert (trade["price"], trade["qty"], trade["leaves_qty"], trade["maker_leaves_qty"]) == (
        price,
        2,
        1,
        0,
    )


def test_instrument_admin_records_are_left_to_the_process() -> None:
    batch = records.new_batch(records.ORDER, 1)
    batch["kind"] = Kind.ADD_INSTRUMENT
    with pytest.raises(UnsupportedRecord):
        orders_to_commands(batch)
    assert len(events_to_execs([])) == 0


def test_an_adopted_instrument_travels_as_an_instrument_status_changed_exec() -> None:
    registry = cfg.load_instruments(cfg.load(env={}))
    inst = registry.get("CFFEX.IF2501")
    assert inst is not None and inst.band_e8 > 0
    engine = MatchingEngine(registry)
    engine.apply(PlaceOrder(1, 7, inst.index, Side.SELL, inst.pre_settlement, 2))
    changed = InstrumentChanged.of(inst, 9)
    events = [
        changed,
        *engine.apply(PlaceOrder(2, 8, inst.index, Side.BUY, inst.pre_settlement, 1)),
    ]
    execs = events_to_execs(events, first_seq=1)
    first = execs[0]
    assert first["kind"] == Kind.INSTRUMENT_STATUS_CHANGED
    assert (first["instrument"], first["status"], first["ts_event"]) == (
        inst.index,
        InstrumentStatus.TRADING,
        9,
    )
    assert (first["price"], first["qty"]) == (inst.pre_settlement, inst.pre_close)
    assert (first["old_price"], first["old_qty"]) == (inst.upper_limit, inst.lower_limit)
    assert execs_to_events(execs) == events
    band = band_from_limits(inst.pre_settlement, inst.upper_limit)
    rebuilt = dataclasses.replace(inst, band_e8=band)
    assert (rebuilt.upper_limit, rebuilt.lower_limit) == (inst.upper_limit, inst.lower_limit)


def test_oi_deltas_count_trades_whose_legs_both_open_or_both_close() -> None:
    legs = [
        (Offset.OPEN, Offset.OPEN, 3, 3),
        (Offset.CLOSE, Offset.CLOSETODAY, 2, -2),
        (Offset.CLOSEYESTERDAY, Offset.CLOSE, 4, -4),
        (Offset.OPEN, Offset.CLOSE, 5, 0),
        (Offset.CLOSETODAY, Offset.OPEN, 6, 0),
        (Offset.NONE, Offset.OPEN, 7, 0),
        (Offset.CLOSE, Offset.NONE, 8, 0),
    ]
    batch = records.new_batch(records.EXEC, len(legs) + 2)
    batch["kind"] = Kind.TRADE
    batch["kind"][[0, 4]] = [Kind.ORDER_ACCEPTED, Kind.ORDER_CANCELED]
    trades = np.flatnonzero(batch["kind"] == Kind.TRADE)
    batch["trade_id"][trades] = np.arange(11, 11 + len(legs))
    batch["taker_offset"][trades] = [taker for taker, *_ in legs]
    batch["maker_offset"][trades] = [maker for _, maker, *_ in legs]
    batch["qty"] = 99  # the other kinds' quantities are not trades
    batch["qty"][trades] = [qty for *_, qty, _ in legs]
    assert oi_deltas(batch) == {11 + n: delta for n, (*_, delta) in enumerate(legs)}
    assert oi_deltas(records.new_batch(records.EXEC, 0)) == {}
