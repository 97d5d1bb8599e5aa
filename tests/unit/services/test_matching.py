"""The matching service without rings: journal first, apply once, and every restart (from the
journal alone or from a checkpoint plus its tail) rebuilds the same books. With real rings: an
instrument's raised max order size reaches matching from accounts, and trades carry both legs'
offsets across restarts."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.accounts.commands import Deposit, OpenAccount, SubmitOrder, UpdateInstrument
from engine.enums import InstrumentStatus, Offset, Side
from engine.matching.commands import CancelOrder, PlaceOrder, UpsertInstrument
from engine.matching.engine import MatchingEngine
from ipc.reader import RingReader
from ipc.records import EXEC, ORDER, Kind
from ipc.ring import Ring
from services import config as configuration
from services.accounts import Accounts, instrument_record
from services.accounts_codec import commands_to_cmd
from services.loadgen import DEPOSIT
from services.matching import Matching, upsert_from_record
from services.matching_codec import commands_to_orders, oi_deltas, orders_to_commands
from services.process import Service


@pytest.fixture
def config(prefix: str, tmp_path: Path) -> configuration.Config:
    return configuration.load(
        env={}, overrides={"instance.prefix": prefix, "instance.home": str(tmp_path)}
    )


def orders(config: configuration.Config, first_id: int, count: int, first_seq: int) -> np.ndarray:
    registry = configuration.load_instruments(config)
    instrument = registry.get("CFFEX.IF2501")
    assert instrument is not None
    price = instrument.pre_settlement
    commands = [
        PlaceOrder(
            first_id + n,
            1 + n % 3,
            instrument.index,
            Side.BUY if n % 2 else Side.SELL,
            price + (n % 5) - 2,
            1 + n % 3,
            ts=n,
        )
        for n in range(count)
    ]
    commands.append(CancelOrder(first_id, instrument.index, count))
    return commands_to_orders(commands, first_seq=first_seq)


def started(config: configuration.Config) -> Matching:
    service = Matching(config, "matching.0", 0)
    service.start()
    return service


def test_a_batch_read_twice_is_applied_once_and_restarts_rebuild_the_books(
    config: configuration.Config,
) -> None:
    first = orders(config, 1, 50, 1)
    second = orders(config, 100, 30, len(first) + 1)
    service = started(config)
    service.handle("orders.0", first)
    service.handle("orders.0", first)  # the batch a crash made it read again
    service.handle("orders.0", second)
    expected = service.engine.state_hash()
    reference = MatchingEngine(configuration.load_instruments(config))
    for command in orders_to_commands(np.concatenate([first, second])):
        reference.apply(command)
    assert reference.state_hash() == expected
    assert service.status()["orders_applied"] == len(first) + len(second)
    service.journal.close()

    replayed = started(config)
    assert replayed.engine.state_hash() == expected
    assert replayed.output.regenerated == replayed.streams.get("execs.0").seq
    replayed.checkpoint()
    replayed.journal.close()

    from_checkpoint = started(config)
    assert from_checkpoint.engine.state_hash() == expected
    assert from_checkpoint.output.regenerated == 0
    from_checkpoint.journal.close()


def test_an_instrument_record_changes_status_and_day_values(config: configuration.Config) -> None:
    registry = configuration.load_instruments(config)
    instrument = registry.get("CFFEX.IF2501")
    assert instrument is not None
    record = np.zeros(1, ORDER)[0]
    record["kind"] = Kind.SET_INSTRUMENT_STATUS
    record["instrument"] = instrument.index
    record["status"] = InstrumentStatus.SUSPENDED
    record["price"] = instrument.pre_settlement + 10
    record["qty"] = instrument.pre_close + 5
    changed, _ts = upsert_from_record(registry, record)
    assert changed.status is InstrumentStatus.SUSPENDED
    assert (changed.pre_settlement, changed.pre_close) == (
        instrument.pre_settlement + 10,
        instrument.pre_close + 5,
    )


def test_a_new_instrument_index_is_learned_traded_on_and_kept_across_restarts(
    config: configuration.Config,
) -> None:
    registry = configuration.load_instruments(config)
    base = registry.get("CFFEX.IF2501")
    assert base is not None
    new = dataclasses.replace(
        base, index=len(registry), id="TEST.NEW", min_qty=2, band_e8=5_000_000
    )
    added = instrument_record(UpsertInstrument(new, 1), Kind.ADD_INSTRUMENT)
    added["seq"] = 1
    price = new.pre_settlement
    trade = commands_to_orders(
        [
            PlaceOrder(1, 1, new.index, Side.SELL, price, 2, ts=2),
            PlaceOrder(2, 2, new.index, Side.BUY, price, 2, ts=3),
            PlaceOrder(3, 2, new.index, Side.BUY, new.upper_limit + 1, 2, ts=4),
        ],
        first_seq=2,
    )
    service = started(config)
    service.handle("orders.0", np.concatenate([added, trade]))
    learned = service.engine.instruments.by_index(new.index)
    assert (learned.upper_limit, learned.lower_limit, learned.min_qty, learned.max_qty) == (
        new.upper_limit,
        new.lower_limit,
        2,
        new.max_qty,
    )
    assert service.status()["trades"] == 1
    counters = {c["name"]: c["value"] for c in service.metrics.snapshot()["counters"]}
    assert (counters["orders"], counters["trades"]) == (3, 1)
    expected = service.engine.state_hash()
    service.checkpoint()
    service.journal.close()
    restarted = started(config)
    assert restarted.engine.state_hash() == expected
    assert restarted.engine.instruments.by_index(new.index) == learned
    restarted.journal.close()


@contextlib.contextmanager
def ring(prefix: str, name: str, dtype: np.dtype[Any]) -> Iterator[tuple[Ring, RingReader]]:
    """A real ring and a reader of it, closed and unlinked afterwards."""
    created = Ring.create(f"{prefix}.{name}", dtype, 64)
    try:
        yield created, created.reader("check")
    finally:
        created.close()
        created.unlink()


def writing(service: Service, name: str, target: Ring) -> Service:
    """`service` started as the writer of `target` (ring `name`)."""
    service.rings[name] = target
    service.writers[name] = target.writer()
    service.start()
    return service


def stop(service: Accounts | Matching) -> None:
    service.journal.close()
    for writer in service.writers.values():
        writer.close()


def drain(reader: RingReader) -> np.ndarray:
    """Every record published to the reader so far (copies)."""
    parts = []
    while len(view := reader.read(max_n=64, timeout=0)):
        parts.append(view.copy())
        reader.release(len(view))
    return np.concatenate([*parts, view])


@dataclasses.dataclass
class Pipeline:
    """A real accounts service writing `orders.0` and a real matching service writing
    `execs.0`, with a reader of each ring."""

    accounts: Accounts
    matching: Matching
    orders: RingReader
    execs: RingReader
    execs_ring: Ring


@contextlib.contextmanager
def pipeline(config: configuration.Config, prefix: str) -> Iterator[Pipeline]:
    """Both services started on fresh rings, stopped (journals closed) on the way out."""
    with (
        ring(prefix, "orders.0", ORDER) as (orders_ring, orders_reader),
        ring(prefix, "execs.0", EXEC) as (execs_ring, execs_reader),
    ):
        accounts = writing(Accounts(config, "accounts"), "orders.0", orders_ring)
        matching = writing(Matching(config, "matching.0", 0), "execs.0", execs_ring)
        try:
            yield Pipeline(accounts, matching, orders_reader, execs_reader, execs_ring)
        finally:
            stop(accounts)
            stop(matching)


def test_a_raised_max_order_size_reaches_matching_and_trades(prefix: str, tmp_path: Path) -> None:
    overrides = {"instance.prefix": prefix, "instance.home": str(tmp_path)}
    # No notional cap: with the default one an IF order stops at fewer lots than max_qty.
    config = configuration.load(env={}, overrides={**overrides, "risk.max_order_value": 0})
    instrument = configuration.load_instruments(config).get("CFFEX.IF2501")
    assert instrument is not None
    index, price, qty = instrument.index, instrument.pre_settlement, instrument.max_qty + 10
    cmd = commands_to_cmd(
        [
            OpenAccount(1, 1),
            OpenAccount(2, 2),
            Deposit(3, 1, DEPOSIT, 1),
            Deposit(4, 2, DEPOSIT, 2),
            UpdateInstrument(5, instrument.id, {"max_qty": qty}, 5),
            SubmitOrder(6, 1, index, Side.SELL, Offset.OPEN, price, qty, ts=6),
            SubmitOrder(7, 2, index, Side.BUY, Offset.OPEN, price, qty, ts=7),
        ],
        lambda _name: 0,
        source=2,
    )
    with pipeline(config, prefix) as running:
        accounts, matching = running.accounts, running.matching
        accounts.handle("cmd.2", cmd)
        sent = drain(running.orders)
        assert sent["kind"].tolist() == [Kind.SET_INSTRUMENT_STATUS] + [Kind.NEW_ORDER] * 2
        assert sent["max_qty"][0] == qty
        matching.handle("orders.0", sent)
        assert matching.engine.instruments.by_index(index).max_qty == qty
        execs = drain(running.execs)
        assert execs[execs["kind"] == Kind.TRADE]["qty"].tolist() == [qty]
        accounts.handle("execs.0", execs)
        position = accounts.state.core.accounts[2].positions[index]
        assert position.long.today == qty
        matching.checkpoint()
    with ring(prefix, "execs.0", EXEC) as (execs_ring, _reader):
        restarted = writing(Matching(config, "matching.0", 0), "execs.0", execs_ring)
        stop(restarted)
    assert restarted.engine.instruments.by_index(index).max_qty == qty


def test_trades_carry_both_legs_offsets_kept_across_restarts(
    config: configuration.Config, prefix: str
) -> None:
    instrument = configuration.load_instruments(config).get("CFFEX.IF2501")
    assert instrument is not None
    index, price = instrument.index, instrument.pre_settlement
    first = commands_to_orders(
        [
            PlaceOrder(1, 1, index, Side.SELL, price, 5),  # rests; 2 lots trade with order 3
            PlaceOrder(2, 2, index, Side.SELL, price + 1, 5),  # rests
            PlaceOrder(3, 3, index, Side.BUY, price, 2),  # fills against order 1
            PlaceOrder(4, 4, index, Side.BUY, price - 5, 1),  # rests
            PlaceOrder(5, 5, index, Side.BUY, price, 1, ts=1),  # refused: outside the band
        ],
        first_seq=1,
    )
    first["offset"] = [Offset.OPEN, Offset.CLOSETODAY, Offset.OPEN, Offset.CLOSE, Offset.OPEN]
    first["price"][4] = instrument.upper_limit + 1
    second = commands_to_orders(
        [PlaceOrder(6, 6, index, Side.BUY, price + 1, 8), CancelOrder(4, index)],
        first_seq=len(first) + 1,
    )
    second["offset"][0] = Offset.CLOSE
    live = {1: Offset.OPEN, 2: Offset.CLOSETODAY, 4: Offset.CLOSE}
    with ring(prefix, "execs.0", EXEC) as (execs_ring, execs_reader):
        service = writing(Matching(config, "matching.0", 0), "execs.0", execs_ring)
        service.handle("orders.0", first)
        stop(service)
        trades = drain(execs_reader)
        trades = trades[trades["kind"] == Kind.TRADE]
        assert trades[["order_id", "maker_order_id"]].tolist() == [(3, 1)]
        assert (trades["taker_offset"][0], trades["maker_offset"][0]) == (Offset.OPEN,) * 2
        assert oi_deltas(trades) == {int(trades["trade_id"][0]): 2}
        assert service.offsets == live

        replayed = writing(Matching(config, "matching.0", 0), "execs.0", execs_ring)
        assert replayed.offsets == live  # from the journal alone
        replayed.checkpoint()
        stop(replayed)
        assert not len(drain(execs_reader))  # replay rewrote nothing the ring already had

        restored = writing(Matching(config, "matching.0", 0), "execs.0", execs_ring)
        assert restored.offsets == live  # from the checkpoint
        restored.handle("orders.0", second)
        stop(restored)
        execs = drain(execs_reader)
    trades = execs[execs["kind"] == Kind.TRADE]
    assert trades[["order_id", "maker_order_id", "qty"]].tolist() == [(6, 1, 3), (6, 2, 5)]
    assert trades["taker_offset"].tolist() == [Offset.CLOSE] * 2
    assert trades["maker_offset"].tolist() == [Offset.OPEN, Offset.CLOSETODAY]
    ids = trades["trade_id"].tolist()
    assert oi_deltas(execs) == {ids[0]: 0, ids[1]: -5}
    assert restored.offsets == {}  # every order is filled or canceled


def test_adopted_instruments_are_announced_on_execs_ahead_of_their_records(
    config: configuration.Config, prefix: str
) -> None:
    registry = configuration.load_instruments(config)
    base = registry.get("CFFEX.IF2501")
    assert base is not None
    new = dataclasses.replace(base, index=len(registry), id="TEST.NEW", band_e8=5_000_000)
    added = instrument_record(UpsertInstrument(new, 1), Kind.ADD_INSTRUMENT)
    price = new.pre_settlement
    trade = commands_to_orders(
        [
            PlaceOrder(1, 1, new.index, Side.SELL, price, 2, ts=2),
            PlaceOrder(2, 2, new.index, Side.BUY, price, 1, ts=3),
        ]
    )
    delisted = dataclasses.replace(new, status=InstrumentStatus.DELISTED)
    delist = instrument_record(UpsertInstrument(delisted, 4), Kind.SET_INSTRUMENT_STATUS)
    batch = np.concatenate([added, trade, delist])
    batch["seq"] = np.arange(1, len(batch) + 1)
    with ring(prefix, "execs.0", EXEC) as (execs_ring, execs_reader):
        service = writing(Matching(config, "matching.0", 0), "execs.0", execs_ring)
        service.handle("orders.0", batch)
        stop(service)
        execs = drain(execs_reader)
        replayed = writing(Matching(config, "matching.0", 0), "execs.0", execs_ring)
        stop(replayed)
        assert not len(drain(execs_reader)), "the replay regenerates the same execs"
    kinds = execs["kind"].tolist()
    announced = np.flatnonzero(execs["kind"] == Kind.INSTRUMENT_STATUS_CHANGED).tolist()
    assert announced == [0, kinds.index(Kind.ORDER_CANCELED) - 1]
    assert Kind.TRADE in kinds[1 : announced[1]]
    first, last = execs[announced]
    assert (first["instrument"], first["status"]) == (new.index, InstrumentStatus.TRADING)
    assert (first["price"], first["old_price"], first["old_qty"]) == (
        price,
        new.upper_limit,
        new.lower_limit,
    )
    assert (last["status"], last["ts_event"]) == (InstrumentStatus.DELISTED, 4)
    canceled = execs[execs["kind"] == Kind.ORDER_CANCELED]
    assert canceled[["order_id", "qty"]].tolist() == [(1, 1)]
