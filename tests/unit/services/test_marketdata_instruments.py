"""Instruments created or changed at run time reach the readers of `execs`: a real accounts
service (answering `instruments` on a real control socket) creates one and a real matching
service announces it; `InstrumentSync` learns it before the trades that follow, applies status
changes in ring order, and the market data of the new instrument renders with its own tick."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from engine.accounts.commands import CreateInstrument, SuspendInstrument
from engine.enums import InstrumentStatus, Side
from engine.instruments import InstrumentRegistry
from engine.marketdata.aggregator import MarketData
from engine.matching.commands import PlaceOrder
from ipc.control import ControlServer
from ipc.records import Kind
from services import config as configuration
from services.accounts import Accounts
from services.accounts_codec import commands_to_cmd
from services.instrument_sync import InstrumentSync, adopt_definitions
from services.marketdata import Renderer, market_events
from services.matching_codec import InstrumentChanged, commands_to_orders, events_to_execs
from tests.unit.services.test_matching import drain, pipeline

NEW = "TEST.NEW1"
TABLE = {
    "id": NEW,
    "currency": "CNY",
    "multiplier": 10,
    "price_tick": "0.5",
    "margin_rate": "0.1",
    "band": "0.05",
    "pre_settlement": "100",
    "pre_close": "99.5",
}


@pytest.fixture
def registry() -> InstrumentRegistry:
    return configuration.load_instruments(configuration.load(env={}))


@pytest.fixture
def config(prefix: str, tmp_path: Path) -> configuration.Config:
    return configuration.load(
        env={}, overrides={"instance.prefix": prefix, "instance.home": str(tmp_path)}
    )


@contextlib.contextmanager
def answering(accounts: Accounts, endpoint: str) -> Iterator[None]:
    """The accounts service's control queries on a real socket, polled in a thread (the
    process's loop would poll it between batches)."""
    context: zmq.Context[Any] = zmq.Context()
    server = ControlServer(context, endpoint)
    accounts.register_commands(server)
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            server.poll(20)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stopping.set()
        thread.join(timeout=5)
        server.socket.close(0)
        context.term()


def test_a_created_instrument_is_learned_before_its_trades(
    config: configuration.Config, prefix: str, tmp_path: Path
) -> None:
    downstream = configuration.load_instruments(config)
    known = len(downstream)
    cmd = commands_to_cmd(
        [CreateInstrument(1, TABLE, 1), SuspendInstrument(2, NEW, 5)],
        {NEW: known}.__getitem__,
        source=1,
    )
    endpoint = f"ipc://{tmp_path}/accounts.ctl"
    with pipeline(config, prefix) as running:
        running.accounts.handle("cmd.1", cmd[:-1])  # the create (its chunks)
        added = drain(running.orders)
        assert added["kind"].tolist() == [Kind.ADD_INSTRUMENT]
        price = int(added["price"][0])
        trades = commands_to_orders(
            [
                PlaceOrder(1, 1, known, Side.SELL, price, 2, ts=2),
                PlaceOrder(2, 2, known, Side.BUY, price + 1, 2, ts=3),
            ],
            first_seq=2,
        )
        running.matching.handle("orders.0", np.concatenate([added, trades]))
        running.accounts.handle("cmd.1", cmd[-1:])  # suspend, after the trades
        suspended = drain(running.orders)
        suspended["seq"] = 4
        running.matching.handle("orders.0", suspended)
        execs = drain(running.execs)
        with answering(running.accounts, endpoint):
            sync = InstrumentSync(downstream, endpoint)
            first, rest = execs[:1], execs[1:]
            assert sync.apply(first) == [known]
    learned = downstream.by_index(known)
    assert (learned.id, str(learned.price_tick), learned.multiplier) == (NEW, "0.5", 10)
    assert (learned.upper_limit, learned.lower_limit) == (210, 190)  # 100 ± 5 % in 0.5 ticks

    market = MarketData(downstream)
    events, _seqs = market_events(rest, len(downstream))
    update = market.apply(events)
    assert [t.instrument_index for t in update.ticks] == [known]
    assert sync.apply(rest) == [known]  # the suspension, after the trade
    assert downstream.by_index(known).status is InstrumentStatus.SUSPENDED
    quote = Renderer(downstream).quote(market, known, 9)
    assert (quote["last"], quote["volume"], quote["status"]) == (100.0, 2, "SUSPENDED")
    assert (quote["upper_limit"], quote["lower_limit"]) == (105.0, 95.0)


def test_without_accounts_unknown_indexes_stay_unknown_and_changes_apply(
    registry: InstrumentRegistry,
) -> None:
    sync = InstrumentSync(registry, None)
    count = len(registry)
    known = registry.by_index(0)
    moved = known.pre_settlement + 100
    changed = InstrumentChanged(0, InstrumentStatus.SUSPENDED, moved, known.pre_close, 0, 0, 1)
    changed = changed._replace(
        upper_limit=moved + known.upper_limit - known.pre_settlement,
        lower_limit=moved - (known.upper_limit - known.pre_settlement),
    )
    unknown = InstrumentChanged(len(registry), InstrumentStatus.TRADING, 1, 1, 2, 1, 2)
    assert sync.apply(events_to_execs([changed, unknown])) == [0]
    after = registry.by_index(0)
    assert (after.status, after.pre_settlement) == (InstrumentStatus.SUSPENDED, moved)
    assert after.upper_limit - after.pre_settlement == known.upper_limit - known.pre_settlement
    assert len(registry) == count and registry.find(unknown.instrument_index) is None


def test_definitions_are_adopted_densely(registry: InstrumentRegistry) -> None:
    count = len(registry)
    tables = [
        {"index": count, **TABLE},
        {"index": count + 1, **TABLE, "id": "TEST.BAD", "price_tick": "-1"},
        {"index": count + 2, **TABLE, "id": "TEST.AFTER"},
    ]
    assert adopt_definitions(registry, tables) == 1
    assert [i.id for i in registry][count:] == [NEW]
    assert adopt_definitions(registry, tables[:1]) == 0  # unchanged: nothing replaced
