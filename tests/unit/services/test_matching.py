"""The matching service without rings: journal first, apply once, and every restart (from the
journal alone or from a checkpoint plus its tail) rebuilds the same books."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from engine.enums import InstrumentStatus, Side
from engine.matching.commands import CancelOrder, PlaceOrder, UpsertInstrument
from engine.matching.engine import MatchingEngine
from ipc.records import ORDER, Kind
from services import config as configuration
from services.accounts import instrument_record
from services.matching import Matching, upsert_from_record
from services.matching_codec import commands_to_orders, orders_to_commands


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
    assert (learned.upper_limit, learned.lower_limit, learned.min_qty) == (
        new.upper_limit,
        new.lower_limit,
        2,
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
