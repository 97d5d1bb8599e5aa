"""accounts → matching → accounts with real processes through `bin/exchange`, driven by the
direct client of bin/loadgen, checked against a clean synchronous `engine.exchange.Exchange`."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from engine.accounts.commands import AccountsCommand, Deposit, OpenAccount, SubmitOrder
from engine.enums import Offset, OrderStatus, Side
from engine.exchange import Exchange
from ipc.control import call
from ipc.records import EXEC, Kind
from ipc.ring import Ring
from services import config as configuration
from services.loadgen import DEPOSIT, DirectClient, LoadConfig, OrderStream
from tests.integration.conftest import Exchange as Instance

PIPELINE_PROCESSES = '["accounts", "matching"]'


def pipeline_config(tmp_path: Path, mode: str = "sync", **extra: str) -> Path:
    """A config file running only accounts and matching (no ports), in durability `mode`."""
    lines = [
        "[processes]",
        f"enabled = {PIPELINE_PROCESSES}",
        "[durability]",
        f'mode = "{mode}"',
        "[supervisor]",
        "backoff_initial_s = 0.1",
        "backoff_max_s = 0.5",
    ]
    lines += [f"{key} = {value}" for key, value in extra.items()]
    path = tmp_path / f"pipeline-{mode}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def instance_config(instance: Instance, config_file: Path) -> configuration.Config:
    return configuration.load(
        config_file,
        env={},
        overrides={"instance.prefix": instance.prefix, "instance.home": str(instance.home)},
    )


def start(factory: Callable[..., Instance], config_file: Path) -> Instance:
    instance = factory("--config", str(config_file))
    result = instance.run("up")
    assert result.returncode == 0, f"up failed:\n{result.stdout}\n{result.stderr}"
    return instance


def control(instance: Instance, process: str, command: str, **args: Any) -> Any:
    return call(instance.endpoint(process), command, timeout=10.0, **args)


def setup_commands(client: DirectClient, accounts: Sequence[int]) -> list[AccountsCommand]:
    opens: list[AccountsCommand] = [
        OpenAccount(r, a, 1)
        for r, a in zip(client.request_ids(len(accounts)), accounts, strict=True)
    ]
    deposits: list[AccountsCommand] = [
        Deposit(r, a, DEPOSIT, r, "CNY", 2)
        for r, a in zip(client.request_ids(len(accounts)), accounts, strict=True)
    ]
    return opens + deposits


def clean_replay(config: configuration.Config, commands: Sequence[AccountsCommand]) -> str:
    """The state hash of the same commands applied by the synchronous facade, in order."""
    exchange = Exchange(configuration.load_instruments(config), configuration.risk_config(config))
    for command in commands:
        exchange.apply(command)
    exchange.check_invariants()
    return exchange.state_hash()


def live_hash(instance: Instance) -> str:
    accounts = control(instance, "accounts", "state_hash")
    return f"{accounts}:{control(instance, 'matching.0', 'state_hash')}"


def wait_quiet(instance: Instance, timeout: float = 60.0) -> None:
    """Until matching took every order accounts sent and accounts read every exec back
    (seen twice in a row, so nothing was in flight between the two looks)."""

    def quiet() -> bool:
        try:
            accounts = control(instance, "accounts", "status")
            matching = control(instance, "matching.0", "status")
        except Exception:
            return False
        sent = accounts["service"]["streams"].get("orders.0", [0, 0])[1]
        readers = accounts["rings"]["execs.0"]["readers"]
        behind = [r for r in readers if r["name"] == "accounts" and r["lag"]]
        return sent == matching["service"]["orders_applied"] and not behind

    deadline = time.monotonic() + timeout
    streak = 0
    while time.monotonic() < deadline and streak < 2:
        streak = streak + 1 if quiet() else 0
        time.sleep(0.1)
    assert streak >= 2, "pipeline did not go quiet"


@pytest.fixture
def execs_tap(request: pytest.FixtureRequest) -> Iterator[Callable[[Instance], Any]]:
    """Registers a reader on an instance's execs.0 that the test drains; unregistered after."""
    opened: list[tuple[Ring, str]] = []

    def tap(instance: Instance) -> Any:
        ring = Ring.attach(f"{instance.prefix}.execs.0", EXEC)
        name = f"tap{request.node.name[-20:]}"
        opened.append((ring, name))
        return ring.reader(name)

    yield tap
    for ring, name in opened:
        ring.unregister_reader(name, force=True)
        ring.close()


def drain(reader: Any, into: list[np.ndarray[Any, Any]]) -> None:
    while True:
        view = reader.read(max_n=65536, timeout=0.05)
        if view is None or not len(view):
            return
        into.append(view.copy())
        reader.release(len(view))


def test_an_order_crossing_a_resting_one_fills_both(
    exchange_factory: Callable[..., Instance], tmp_path: Path
) -> None:
    config_file = pipeline_config(tmp_path)
    instance = start(exchange_factory, config_file)
    config = instance_config(instance, config_file)
    with DirectClient(config) as client:
        setup = setup_commands(client, [1, 2])
        client.send(setup)
        answers = client.collect([c.request_id for c in setup])
        assert all(int(a["code"]) == 0 for a in answers.values())
        registry = client.registry
        assert registry is not None
        instrument = registry.get("CFFEX.IF2501")
        assert instrument is not None
        price = instrument.pre_settlement
        sell, buy = client.request_ids(2)
        orders: list[AccountsCommand] = [
            SubmitOrder(sell, 1, instrument.index, Side.SELL, Offset.OPEN, price, 2, ts=3),
            SubmitOrder(buy, 2, instrument.index, Side.BUY, Offset.OPEN, price, 2, ts=4),
        ]
        client.send(orders)
        answers = client.collect([sell, buy])
        assert [int(answers[r]["code"]) for r in (sell, buy)] == [0, 0]
        order_ids = [int(answers[r]["order_id"]) for r in (sell, buy)]
        deadline = time.monotonic() + 20
        filled: set[int] = set()
        trades: list[Any] = []
        while filled != set(order_ids) and time.monotonic() < deadline:
            batch = client.poll(timeout=0.1)
            updates = batch[batch["kind"] == Kind.ORDER_UPDATED]
            filled |= {int(u["order_id"]) for u in updates if u["status"] == OrderStatus.FILLED}
            trades.extend(batch[batch["kind"] == Kind.TRADE_BOOKED])
        assert filled == set(order_ids)
        assert sorted(int(t["account"]) for t in trades) == [1, 2]
        assert {int(t["qty"]) for t in trades} == {2}
    wait_quiet(instance)
    qifi = control(instance, "accounts", "account", account_id=2)
    assert qifi["positions"], qifi
    assert control(instance, "accounts", "trades", account_id=1, limit=10)[0]["qty"] == 2
    assert control(instance, "accounts", "order", order_id=order_ids[0])["status"] == int(
        OrderStatus.FILLED
    )
    assert control(instance, "accounts", "orders", account_id=1) == []
    assert len(control(instance, "accounts", "instruments")) == len(registry)
    assert live_hash(instance) == clean_replay(config, setup + orders)
    assert instance.run("recover", "--verify").returncode == 0


def test_sigkill_matching_mid_stream_loses_and_repeats_nothing(
    exchange_factory: Callable[..., Instance],
    tmp_path: Path,
    execs_tap: Callable[[Instance], Any],
) -> None:
    config_file = pipeline_config(tmp_path)
    instance = start(exchange_factory, config_file)
    config = instance_config(instance, config_file)
    tap = execs_tap(instance)
    seen: list[np.ndarray[Any, Any]] = []
    with DirectClient(config) as client:
        accounts = list(range(1, 11))
        sent = setup_commands(client, accounts)
        client.send(sent)
        client.collect([c.request_id for c in sent])
        assert client.registry is not None
        stream = OrderStream(client.registry, accounts, LoadConfig(seed=7))
        killed_pid = 0
        for chunk in range(20):
            orders = stream.next(client.request_ids(100), 10 + chunk)
            client.send(orders)
            sent += orders
            if chunk == 8:
                killed_pid = instance.process("matching.0")["pid"]
                psutil.Process(killed_pid).send_signal(signal.SIGKILL)
            drain(tap, seen)
        answers = client.collect([c.request_id for c in sent[20:]], timeout=60)
        assert len(answers) == len(sent) - 20
        instance.wait_for(
            lambda: (
                instance.process("matching.0")["pid"] not in (killed_pid, None)
                and instance.process("matching.0")["state"] == "running"
            )
        )
        wait_quiet(instance)
    drain(tap, seen)
    execs = np.concatenate(seen)
    assert execs["seq"].tolist() == list(range(1, len(execs) + 1)), "an exec lost or repeated"
    matching = control(instance, "matching.0", "status")["service"]
    assert matching["execs_emitted"] == len(execs)
    applied = control(instance, "accounts", "status")["service"]["streams"]
    assert applied["orders.0"][1] == matching["orders_applied"]
    assert live_hash(instance) == clean_replay(config, sent)


def test_down_then_up_keeps_the_state_and_new_rings_carry_on(
    exchange_factory: Callable[..., Instance], tmp_path: Path
) -> None:
    config_file = pipeline_config(tmp_path, "async")
    instance = start(exchange_factory, config_file)
    config = instance_config(instance, config_file)
    with DirectClient(config) as client:
        accounts = [1, 2, 3]
        sent = setup_commands(client, accounts)
        assert client.registry is not None
        stream = OrderStream(client.registry, accounts, LoadConfig(seed=3))
        sent += stream.next(client.request_ids(300), 9)
        client.send(sent)
        client.collect([c.request_id for c in sent], timeout=60)
        next_request = client.next_request
    wait_quiet(instance)
    before = live_hash(instance)
    assert instance.run("down").returncode == 0
    result = instance.run("up")
    assert result.returncode == 0, result.stderr
    assert f"state hash accounts: {before.split(':')[0]}" in result.stdout
    assert live_hash(instance) == before
    with DirectClient(config) as client:
        client.next_request = next_request
        more = stream.next(client.request_ids(200), 10)
        client.send(more)
        answers = client.collect([c.request_id for c in more], timeout=60)
        assert len(answers) == len(more)
    wait_quiet(instance)
    assert live_hash(instance) == clean_replay(config, sent + more)
    assert instance.run("recover", "--verify").returncode == 0
