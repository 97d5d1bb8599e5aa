"""The accounts service without rings: journal then apply, never twice; restarts rebuild the same
state; a journal that cannot be written refuses commands with STORAGE and applies none."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.accounts.commands import (
    AccountsCommand,
    CreateInstrument,
    Deposit,
    OpenAccount,
    SubmitOrder,
    UpdateInstrument,
)
from engine.accounts.core import AccountsCore
from engine.accounts.events import CommandAccepted, OrderUpdated, TradeBooked
from engine.codes import ResultCode
from engine.enums import Offset, OrderStatus, Side
from engine.exchange import Exchange
from engine.matching.events import MatchingEvent
from ipc.records import EVENT, EVENT_ANSWER, ORDER, Kind
from ipc.ring import Ring, RingReader
from services import accounts_state
from services import config as configuration
from services.accounts import Accounts
from services.accounts_codec import commands_to_cmd, events_to_records
from services.accounts_state import AccountsState
from services.loadgen import DEPOSIT
from services.matching_codec import events_to_execs

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def config(prefix: str, tmp_path: Path) -> configuration.Config:
    return configuration.load(
        env={}, overrides={"instance.prefix": prefix, "instance.home": str(tmp_path)}
    )


def commands(config: configuration.Config) -> list[AccountsCommand]:
    registry = configuration.load_instruments(config)
    instrument = registry.get("CFFEX.IF2501")
    assert instrument is not None
    price = instrument.pre_settlement
    out: list[AccountsCommand] = [OpenAccount(1, 1), OpenAccount(2, 2)]
    out += [Deposit(3, 1, DEPOSIT, 1), Deposit(4, 2, DEPOSIT, 2), Deposit(5, 2, DEPOSIT, 2)]
    out += [
        SubmitOrder(6, 1, instrument.index, Side.SELL, Offset.OPEN, price, 3),
        SubmitOrder(7, 2, instrument.index, Side.BUY, Offset.OPEN, price, 2),
        Deposit(8, 1, DEPOSIT, 3),
    ]
    return out


@contextlib.contextmanager
def wired(
    config: configuration.Config, prefix: str, ring: str, dtype: np.dtype[Any]
) -> Iterator[tuple[Accounts, RingReader]]:
    """A started Accounts writing `ring` into a real ring, and a reader of that ring; the
    journal and the ring are closed (and the ring unlinked) afterwards."""
    created = Ring.create(f"{prefix}.{ring}", dtype, 64)
    try:
        reader = created.reader("check")
        service = Accounts(config, "accounts")
        service.rings[ring] = created
        service.writers[ring] = created.writer()
        service.start()
        yield service, reader
        service.journal.close()
        service.writers[ring].close()
    finally:
        created.close()
        created.unlink()


def started(config: configuration.Config) -> Accounts:
    service = Accounts(config, "accounts")
    service.start()
    return service


def test_commands_and_execs_once_each_and_restarts_rebuild_the_same_state(
    config: configuration.Config,
) -> None:
    cmd = commands_to_cmd(commands(config), lambda _name: 0, source=2)
    reference = Exchange(configuration.load_instruments(config), configuration.risk_config(config))
    matching_events = []
    for command in commands(config):
        matching_events += [e for e in reference.apply(command) if isinstance(e, MatchingEvent)]
    execs = events_to_execs(matching_events)

    service = started(config)
    service.handle("cmd.2", cmd[:3])  # account 1 is booked in this batch and the next
    service.handle("cmd.2", cmd)  # read again after a crash: the first three are skipped
    service.handle("execs.0", execs[:1])
    service.handle("execs.0", execs)
    service.handle("execs.0", execs[:2])
    events = service.state.streams.get("events").seq
    expected = service.state.core.state_hash()
    assert expected == reference.accounts.state_hash()
    assert service.status()["commands_in"] == len(cmd)
    trades = [c["value"] for c in service.metrics.snapshot()["counters"] if c["name"] == "trades"]
    assert trades == [int((execs["kind"] == Kind.TRADE).sum())] and trades[0] > 0
    service.journal.close()

    replayed = started(config)
    assert replayed.state.core.state_hash() == expected
    assert replayed.events_out.regenerated == events  # batch ends kept: same snapshots, same count
    assert replayed.state.gateway_of == {1: 2, 2: 2}
    replayed.checkpoint()
    replayed.journal.close()

    from_checkpoint = started(config)
    assert from_checkpoint.state.core.state_hash() == expected
    assert from_checkpoint.recovered["replayed"] == 0
    assert from_checkpoint.state.gateway_of == replayed.state.gateway_of
    assert from_checkpoint.state.streams.export() == replayed.state.streams.export()
    assert from_checkpoint.state.last_update == replayed.state.last_update
    assert from_checkpoint.state.trades == replayed.state.trades
    from_checkpoint.journal.close()


_FULL_DISK = """
import json, resource, signal, sys
from ipc.records import EVENT, EVENT_ANSWER, Kind
from ipc.ring import Ring
from services import accounts_state
from services import config as configuration
from services.accounts import Accounts
from services.accounts_codec import commands_to_cmd, events_to_records
from services.accounts_state import AccountsState
from engine.accounts.commands import OpenAccount
config = configuration.load(env={}, overrides={"instance.home": sys.argv[1]})
service = Accounts(config, "accounts")
service.start()
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
segment = sorted(service.journal.directory.glob("*.wal"))
used = segment[-1].stat().st_size if segment else 0
resource.setrlimit(resource.RLIMIT_FSIZE, (used + 5000, resource.RLIM_INFINITY))
sent = 0
for first in range(1, 400, 20):
    batch = [OpenAccount(r, r) for r in range(first, first + 20)]
    service.handle("cmd.2", commands_to_cmd(batch, lambda _n: 0, first_seq=first, source=2))
    sent += 20
print(json.dumps({
    "sent": sent,
    "accounts": len(service.state.core.accounts),
    "journal_seq": service.journal.last_seq,
    "refused": service.rejected_storage,
    "error": service.storage_error,
    "hash": service.state.core.state_hash(),
}))
"""


def test_a_full_disk_refuses_commands_with_storage_and_applies_none(
    config: configuration.Config, tmp_path: Path
) -> None:
    child = subprocess.run(
        [sys.executable, "-c", _FULL_DISK, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert child.returncode == 0, child.stderr
    result = json.loads(child.stdout)
    assert result["refused"] > 0 and result["error"]
    assert result["accounts"] == result["journal_seq"] == result["sent"] - result["refused"]
    recovered = started(config)  # no limit now: the journal holds exactly what was applied
    assert recovered.state.core.state_hash() == result["hash"]
    assert len(recovered.state.core.accounts) == result["accounts"]
    recovered.journal.close()
    assert result["refused"] % 20 == 0  # a batch is journaled whole or refused whole


def test_records_that_do_not_decode_are_refused_not_fatal(
    config: configuration.Config, prefix: str
) -> None:
    cmd = commands_to_cmd([OpenAccount(1, 1), OpenAccount(2, 2), OpenAccount(3, 3)], lambda _: 0)
    cmd["kind"][0] = Kind.CANCEL_ALL  # a kind accounts does not take yet
    cmd["kind"][1] = Kind.PLACE_ORDER
    cmd["side"][1] = 200  # no such side
    with wired(config, prefix, "events", EVENT) as (service, reader):
        service.handle("cmd.2", cmd)
        assert list(service.state.core.accounts) == [3]
        counters = {
            (c["name"], c["labels"].get("code")): c["value"]
            for c in service.metrics.snapshot()["counters"]
        }
        assert counters[("commands_in", None)] == 3
        assert counters[("accepted", None)] == 1
        assert counters[("rejects", str(int(ResultCode.BAD_MESSAGE)))] == 2
        answers = reader.read(max_n=64, timeout=1.0).view(EVENT_ANSWER)
        refused = answers[answers["kind"] == Kind.COMMAND_REJECTED]
        assert refused["request_id"].tolist() == [1, 2]
        assert set(refused["code"].tolist()) == {ResultCode.BAD_MESSAGE}
    assert started(config).state.core.state_hash() == service.state.core.state_hash()


def test_an_instrument_created_on_cmd_is_journaled_announced_to_matching_and_replayed(
    config: configuration.Config, prefix: str
) -> None:
    table = {"id": "TEST.NEW", "currency": "CNY", "multiplier": 10, "price_tick": "0.5"}
    index = len(configuration.load_instruments(config))
    cmd = commands_to_cmd(
        [
            CreateInstrument(1, table, 1),
            OpenAccount(2, 1),
            Deposit(3, 1, DEPOSIT, 1),
            SubmitOrder(4, 1, index, Side.BUY, Offset.OPEN, 200, 1),
            UpdateInstrument(5, "TEST.NEW", {"margin_rate": "0.5"}, 2),
        ],
        lambda _name: 0,
    )
    with wired(config, prefix, "orders.0", ORDER) as (service, reader):
        service.handle("cmd.2", cmd[:2])  # the table's chunks span two reads
        service.handle("cmd.2", cmd)
        sent = reader.read(max_n=64, timeout=1.0)
        assert sent["kind"].tolist() == [
            Kind.ADD_INSTRUMENT,
            Kind.NEW_ORDER,
            Kind.SET_INSTRUMENT_STATUS,
        ]
        assert sent["instrument"].tolist() == [index] * 3
        created = service.state.core.instruments.get("TEST.NEW")
        assert created is not None and created.margin_rate_e8 == 50_000_000
        expected = service.state.core.state_hash()
    replayed = started(config)
    assert replayed.state.core.state_hash() == expected
    assert replayed.state.core.instruments.get("TEST.NEW") == created
    replayed.checkpoint()
    replayed.journal.close()
    from_checkpoint = started(config)
    assert from_checkpoint.state.core.instruments.get("TEST.NEW") == created
    from_checkpoint.journal.close()


def test_query_history_keeps_the_newest_orders_updates_and_trades(
    config: configuration.Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each order's last update is kept (oldest orders dropped first, by id, past the cap) and
    each account's trades, picked out of a published batch by its record kinds."""
    monkeypatch.setattr(accounts_state, "UPDATES_KEPT", 3)
    registry = configuration.load_instruments(config)
    state = AccountsState.empty(AccountsCore(registry, snapshots=False))

    def update(order_id: int, filled: int) -> OrderUpdated:
        status = OrderStatus.PARTIALLY_FILLED if filled else OrderStatus.PENDING
        return OrderUpdated(1, order_id, 0, Side.BUY, Offset.OPEN, 100, 5, filled, status, 0, 9)

    trade = TradeBooked(2, 3, 7, 0, Side.SELL, Offset.OPEN, 100, 1, 4, 0, 9)
    first = [update(1, 0), CommandAccepted(5, 1, 9), update(2, 0), update(3, 0), trade]
    second = [update(2, 1), update(4, 0), update(5, 0)]
    for events in (first, second):
        state.remember(events, events_to_records(events)["kind"])
    assert list(state.last_update) == [3, 4, 5]
    assert state.last_update[3] == update(3, 0)
    assert list(state.trades[2]) == [trade]
    state.remember(second[:1], events_to_records(second[:1])["kind"])
    assert list(state.last_update) == [4, 5, 2]  # an update after its order was dropped
