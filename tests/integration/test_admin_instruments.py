"""Instrument create/update through the real gateway, accounts and matching processes: an admin
lists an instrument over REST, two users trade on it, its margin rate changes, and after
SIGKILL of accounts and matching (the supervisor restarts them from checkpoint + journal) the
instrument is still there with the changed rate. Bad tables answer result codes."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from typing import Any

import aiohttp
import psutil
import pytest

from engine.codes import ResultCode
from gateway.client import EdgeClient, order_body
from tests.integration.test_gateway_fixtures import (
    RunningEdge,
    admin,
    edge_instance,
    eventually,
    run,
    user,
)

CASH = 1_000_000
NEW = "TEST.X2601"
TABLE = {
    "instrument_id": NEW,
    "instrument_name": "test future",
    "instrument_type": "FUTURE",
    "contract_multiplier": 10,
    "price_tick": 0.5,
    "margin_rate": 0.1,
    "commission_rate": 0.0001,
}
PRICE = 100.0
RESTING = 90.0
"""A buy price that does not cross: one lot freezes RESTING × 10 × margin rate (CNY)."""


@pytest.fixture
def edge() -> Iterator[RunningEdge]:
    with edge_instance("adm") as running:
        yield running


def _restart(edge: RunningEdge, names: tuple[str, ...]) -> None:
    """SIGKILL the named processes and wait until the supervisor has them running again."""
    exchange = edge.exchange
    before = {name: exchange.process(name)["pid"] for name in names}
    supervisor = psutil.Process(exchange.status()["supervisor_pid"])
    for child in supervisor.children():
        cmdline = child.cmdline()
        if "--name" in cmdline and cmdline[cmdline.index("--name") + 1] in names:
            child.send_signal(signal.SIGKILL)

    def back() -> bool:
        rows = [exchange.process(name) for name in names]
        return all(
            row["pid"] not in (None, before[row["process"]]) and row["state"] == "running"
            for row in rows
        )

    exchange.wait_for(back, timeout=60)


async def _code(client: EdgeClient, method: str, path: str, body: Any = None) -> int:
    reply = await client.call(method, path, body)
    assert not reply.ok, reply.body
    return reply.code


async def _frozen_margin(client: EdgeClient, account: int) -> float:
    return float((await client.expect("GET", f"/api/account/{account}"))["frozen_margin"])


async def _cross(alice: EdgeClient, a: int, bob: EdgeClient, b: int) -> None:
    """One lot of NEW trades between alice (buy) and bob (sell)."""
    buy = await alice.expect("POST", "/api/order/submit", order_body(a, NEW, "BUY", PRICE, 1))
    await bob.expect("POST", "/api/order/submit", order_body(b, NEW, "SELL", PRICE, 1))

    async def filled() -> bool:
        order = await alice.expect("GET", f"/api/order/{buy['order_id']}")
        return bool(order["status"] == "FILLED")

    await eventually(filled)


async def _resting_margin(client: EdgeClient, account: int) -> float:
    """The margin one resting buy lot of NEW freezes (cancelled afterwards)."""
    before = await _frozen_margin(client, account)
    order = await client.expect(
        "POST", "/api/order/submit", order_body(account, NEW, "BUY", RESTING, 1)
    )
    frozen = await _frozen_margin(client, account) - before
    await client.expect(
        "POST", "/api/order/cancel", {"account_id": account, "order_id": order["order_id"]}
    )
    return frozen


def test_create_trade_update_and_survive_a_restart(edge: RunningEdge) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            operator = await admin(session, edge)
            created = await operator.expect("POST", "/admin/instrument/create", TABLE)
            assert created == {"instrument_id": NEW}
            listed = await operator.expect("GET", "/admin/instruments")
            assert [i["margin_rate"] for i in listed if i["id"] == NEW] == [0.1]

            alice, bob = await user(session, edge, "alice"), await user(session, edge, "bob")
            a, b = await alice.open_funded_account(CASH), await bob.open_funded_account(CASH)
            await _cross(alice, a, bob, b)
            assert await _resting_margin(alice, a) == pytest.approx(RESTING * 10 * 0.1)

            path = f"/admin/instrument/{NEW}/update"
            await operator.expect("PUT", path, {"margin_rate": 0.2})
            assert await _resting_margin(alice, a) == pytest.approx(RESTING * 10 * 0.2)

            await asyncio.to_thread(_restart, edge, ("accounts", "matching.0"))

            async def answering() -> bool:
                reply = await alice.call("GET", f"/api/account/{a}")
                return reply.ok

            await eventually(answering, timeout=30)
            listed = await operator.expect("GET", "/api/market/instruments")
            assert [i["margin_rate"] for i in listed if i["id"] == NEW] == [0.2]
            assert await _resting_margin(alice, a) == pytest.approx(RESTING * 10 * 0.2)
            await _cross(alice, a, bob, b)
            positions = await alice.expect("GET", f"/api/position/{a}")
            assert [p for p in positions if p["instrument_id"] == NEW], positions

    run(scenario)


def test_bad_tables_answer_codes(edge: RunningEdge) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            operator = await admin(session, edge)
            await operator.expect("POST", "/admin/instrument/create", TABLE)
            create = "/admin/instrument/create"
            assert await _code(operator, "POST", create, TABLE) == ResultCode.INSTRUMENT_EXISTS
            untradeable_tick = {**TABLE, "instrument_id": "TEST.T1", "contract_multiplier": 1}
            untradeable_tick["price_tick"] = 0.001  # 0.1 fen a tick: not whole money
            assert await _code(operator, "POST", create, untradeable_tick) == ResultCode.CONFIG
            missing = {k: v for k, v in TABLE.items() if k != "price_tick"}
            missing["instrument_id"] = "TEST.T2"
            assert await _code(operator, "POST", create, missing) == ResultCode.CONFIG
            bad_id = {**TABLE, "instrument_id": "NODOT"}
            assert await _code(operator, "POST", create, bad_id) == ResultCode.CONFIG
            unknown = "/admin/instrument/TEST.NONE/update"
            assert (
                await _code(operator, "PUT", unknown, {"margin_rate": 0.2})
                == ResultCode.NO_SUCH_INSTRUMENT
            )
            path = f"/admin/instrument/{NEW}/update"
            assert await _code(operator, "PUT", path, {"price_tick": 0.0001}) == ResultCode.CONFIG
            listed = await operator.expect("GET", "/admin/instruments")
            assert [i["id"] for i in listed if i["id"].startswith("TEST.")] == [NEW]

            trader = await user(session, edge, "carol")
            account = await trader.open_funded_account(CASH)
            off_tick = order_body(account, NEW, "BUY", PRICE + 0.2, 1)
            code = await _code(trader, "POST", "/api/order/submit", off_tick)
            assert code == ResultCode.PRICE_NOT_ON_TICK
            nobody = await user(session, edge, "dave")
            assert await _code(nobody, "POST", create, {**TABLE, "instrument_id": "TEST.U"}) in (
                ResultCode.FORBIDDEN,
                ResultCode.NOT_AUTHENTICATED,
            )

    run(scenario)
