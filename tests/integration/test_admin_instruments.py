"""Instrument create/update through the real gateway, accounts and matching processes: an admin
lists an instrument over REST, two users trade on it, its margin rate changes, and after
SIGKILL of accounts and matching (the supervisor restarts them from checkpoint + journal) the
instrument is still there with the changed rate. Bad tables answer result codes.

With two gateways, an instrument created through one reaches every process without a restart:
marketdata publishes its ticks, book and K-lines over ZeroMQ and answers `snapshot`, the other
gateway lists, trades and quotes it (REST and DIFF), a suspension reaches the quote, a SIGKILLed
marketdata learns it back from accounts, and the recorder writes its ticks."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import polars as pl
import psutil
import pytest

from engine.codes import ResultCode
from gateway.client import EdgeClient, order_body
from gateway.ring_backend import ON_DEMAND_EVERY_S
from ipc.control import call
from services import config as configuration
from services.mdclient import Stream, publisher_endpoint, snapshot
from storage.query import HistoryQuery
from tests.integration.test_gateway_fixtures import (
    DiffSocket,
    NativeSocket,
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


LIVE = "TEST.LIVE1"
LIVE_TABLE = {
    **TABLE,
    "instrument_id": LIVE,
    "min_qty": 1,
    "max_qty": 5,
    "currency": "CNY",
    "pre_settlement": 100.0,
    "pre_close": 99.5,
    "limit_up_rate": 0.05,
    "limit_down_rate": 0.05,
}
"""Every field the registry has: a 5 % band around 100 in 0.5 ticks is 95 .. 105."""


@pytest.fixture
def edge() -> Iterator[RunningEdge]:
    with edge_instance("adm") as running:
        yield running


@pytest.fixture
def two_gateways() -> Iterator[tuple[RunningEdge, RunningEdge]]:
    """One instance running gateway.1 and gateway.2, each with its own `cmd` ring."""
    with edge_instance("adm2", SHMEX_GATEWAYS_COUNT="2") as first:
        url = call(first.exchange.endpoint("gateway.2"), "status", timeout=5.0)["http"]
        yield first, RunningEdge(first.exchange, url.rstrip("/"))


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


async def _cross(
    alice: EdgeClient, a: int, bob: EdgeClient, b: int, name: str = NEW, price: float = PRICE
) -> None:
    """One lot of `name` trades between alice (buy) and bob (sell)."""
    buy = await alice.expect("POST", "/api/order/submit", order_body(a, name, "BUY", price, 1))
    await bob.expect("POST", "/api/order/submit", order_body(b, name, "SELL", price, 1))

    async def filled() -> bool:
        order = await alice.expect("GET", f"/api/order/{buy['order_id']}")
        return bool(order["status"] == "FILLED")

    await eventually(filled)


async def _resting_margin(client: EdgeClient, account: int) -> float:
    """The margin one resting buy lot of NEW freezes. The order is cancelled afterwards and
    awaited until CANCELLED: a cancel's OK only means "sent to matching" (docs/accounting.md),
    the margin comes back when matching reports the cancel (checked), and a later call must
    not see it come back between its two reads."""
    before = await _frozen_margin(client, account)
    order = await client.expect(
        "POST", "/api/order/submit", order_body(account, NEW, "BUY", RESTING, 1)
    )
    frozen = await _frozen_margin(client, account) - before
    await client.expect(
        "POST", "/api/order/cancel", {"account_id": account, "order_id": order["order_id"]}
    )

    async def cancelled() -> bool:
        row = await client.expect("GET", f"/api/order/{order['order_id']}")
        return bool(row["status"] == "CANCELLED")

    await eventually(cancelled)
    assert await _frozen_margin(client, account) == pytest.approx(before)
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
            refused = {
                "max_qty": (0, ResultCode.BAD_MESSAGE),
                "min_qty": (2.5, ResultCode.BAD_MESSAGE),
                "currency": ("cny!", ResultCode.BAD_MESSAGE),
                "pre_settlement": (-1, ResultCode.BAD_MESSAGE),
            }
            for name, (value, expected) in refused.items():
                bad = {**TABLE, "instrument_id": "TEST.T3", name: value}
                assert await _code(operator, "POST", create, bad) == expected, name
            for fields in (
                {"min_qty": 5, "max_qty": 2},
                {"currency": "XYZ"},
                {"pre_settlement": 100.2},
                {"limit_up_rate": 0.05, "limit_down_rate": 0.1},
                {"instrument_type": "SPOT"},
            ):
                bad = {**TABLE, "instrument_id": "TEST.T4", **fields}
                assert await _code(operator, "POST", create, bad) == ResultCode.CONFIG, fields
            path = f"/admin/instrument/{NEW}/update"
            assert await _code(operator, "PUT", path, {"currency": "USDT"}) == ResultCode.CONFIG
            assert await _code(operator, "PUT", path, {"max_qty": 0}) == ResultCode.BAD_MESSAGE
            changes = {"max_qty": 7, "min_qty": 2, "pre_settlement": 101.5, "pre_close": 101}
            await operator.expect("PUT", path, {**changes, "limit_up_rate": 0.1})
            listed = await operator.expect("GET", "/admin/instruments")
            assert [i["id"] for i in listed if i["id"].startswith("TEST.")] == [NEW]
            (row,) = [i for i in listed if i["id"] == NEW]
            assert {k: float(row[k]) for k in changes} == changes
            assert float(row["band"]) == 0.1

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


def _received(
    stream: Stream, wanted: set[str], check: Callable[[dict[str, Any]], bool] = bool
) -> dict[str, Any]:
    """The first message of each topic in `wanted` whose body passes `check` (blocking: run it
    in a thread)."""
    seen: dict[str, Any] = {}
    deadline = time.monotonic() + 30.0
    while wanted - seen.keys() and time.monotonic() < deadline:
        item = stream.receive(0.2)
        if item is not None and item[0] in wanted and check(item[1]):
            seen.setdefault(item[0], item[1])
    assert not wanted - seen.keys(), f"never received {sorted(wanted - seen.keys())}"
    return seen


def test_a_created_instrument_reaches_marketdata_and_the_other_gateway(
    two_gateways: tuple[RunningEdge, RunningEdge],
) -> None:
    first, second = two_gateways
    home = first.exchange.home
    stream = Stream([LIVE], ["tick", "book", "quote", "kline"], publisher_endpoint(home))

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            operator = await admin(session, first)
            assert await operator.expect("POST", "/admin/instrument/create", LIVE_TABLE)
            (listed,) = [
                i for i in await operator.expect("GET", "/admin/instruments") if i["id"] == LIVE
            ]
            assert (listed["min_qty"], listed["max_qty"], listed["currency"]) == (1, 5, "CNY")
            assert (float(listed["pre_settlement"]), float(listed["pre_close"])) == (100, 99.5)
            assert float(listed["band"]) == 0.05

            alice, bob = await user(session, first, "alice"), await user(session, first, "bob")
            a, b = await alice.open_funded_account(CASH), await bob.open_funded_account(CASH)
            too_big = order_body(a, LIVE, "BUY", 100.0, 6)
            code = await _code(alice, "POST", "/api/order/submit", too_big)
            assert code == ResultCode.BAD_ORDER_PARAMETER
            await _cross(alice, a, bob, b, LIVE, 100.0)

            seen = await asyncio.to_thread(
                _received, stream, {f"md.{LIVE}.{t}" for t in ("tick", "book", "kline.60")}
            )
            tick = seen[f"md.{LIVE}.tick"]
            assert (tick["price"], tick["qty"], tick["volume"]) == (100.0, 1, 1)
            assert seen[f"md.{LIVE}.kline.60"]["close"] == 100.0
            answer = snapshot(LIVE, home)
            quote = answer["quote"]
            assert (quote["last"], quote["volume"], quote["status"]) == (100.0, 1, "TRADING")
            assert (quote["upper_limit"], quote["lower_limit"]) == (105.0, 95.0)
            assert answer["klines"]["60"]["volume"] == 1

            async def listed_on_second() -> bool:
                reply = await carol.call("GET", "/api/market/instruments")
                return reply.ok and LIVE in {i["id"] for i in reply.data}

            carol, dave = await user(session, second, "carol"), await user(session, second, "dave")
            await eventually(listed_on_second)
            c, d = await carol.open_funded_account(CASH), await dave.open_funded_account(CASH)
            await _cross(carol, c, dave, d, LIVE, 100.5)

            async def ticked_on_second() -> bool:
                reply = await carol.call("GET", f"/api/market/tick/{LIVE}")
                return reply.ok and reply.data["quote"]["volume"] == 2

            await eventually(ticked_on_second)
            diff = await DiffSocket.open(session, second)
            try:
                await diff.send({"aid": "subscribe_quote", "ins_list": LIVE})
                await diff.until(lambda s: s.get("quotes", {}).get(LIVE, {}).get("volume") == 2)
                quote = diff.state["quotes"][LIVE]
                assert (quote["last_price"], quote["price_tick"]) == (100.5, 0.5)
                assert quote["upper_limit"] == 105.0
            finally:
                await diff.close()

            root = await admin(session, second)
            await root.expect("PUT", f"/admin/instrument/{LIVE}/suspend")
            suspended = await asyncio.to_thread(
                _received, stream, {f"md.{LIVE}.quote"}, lambda q: q["status"] != "TRADING"
            )
            assert suspended[f"md.{LIVE}.quote"]["status"] == "SUSPENDED"

            other = {**LIVE_TABLE, "instrument_id": "TEST.LIVE2"}
            await operator.expect("POST", "/admin/instrument/create", other)
            update = "/admin/instrument/TEST.LIVE2/update"
            await root.expect("PUT", update, {"max_qty": 3})  # the second gateway asks accounts
            listed = await root.expect("GET", "/admin/instruments")
            assert [i["max_qty"] for i in listed if i["id"] == "TEST.LIVE2"] == [3]

    try:
        run(scenario)
    finally:
        stream.close()
    _restart(first, ("marketdata",))
    first.exchange.wait_for(lambda: _snapshot_ok(home), timeout=30)
    quote = snapshot(LIVE, home)["quote"]
    assert (quote["volume"], quote["status"]) == (2, "SUSPENDED")
    call(first.exchange.endpoint("recorder"), "checkpoint", timeout=30)
    ticks = HistoryQuery(home / "history").scan("ticks")
    index = len(configuration.load_instruments(configuration.load(env={})))
    recorded = ticks.filter(pl.col("instrument_id") == index).collect()
    assert recorded["qty"].to_list() == [1, 1]


def _snapshot_ok(home: Any) -> bool:
    try:
        snapshot(LIVE, home)
    except Exception:
        return False
    return True


def test_the_other_gateway_finds_a_just_created_instrument_on_first_request(
    two_gateways: tuple[RunningEdge, RunningEdge],
) -> None:
    """Every request path of gateway 2 that names an instrument asks accounts before it
    answers 1007: each instrument is created through gateway 1 and used at once through
    gateway 2 (a pause before each create lets the on-demand refresh run again)."""
    first, second = two_gateways

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            operator, root = await admin(session, first), await admin(session, second)
            carol = await user(session, second, "carol")
            account = await carol.open_funded_account(CASH)
            ws = await NativeSocket.open(session, second)
            await ws.request({"type": "auth", "token": carol.token}, "auth_response")

            async def created(name: str) -> str:
                await asyncio.sleep(ON_DEMAND_EVERY_S)
                await operator.expect(
                    "POST", "/admin/instrument/create", {**TABLE, "instrument_id": name}
                )
                return name

            name = await created("TEST.FIRST1")
            body = order_body(account, name, "BUY", RESTING, 1)
            assert (await carol.expect("POST", "/api/order/submit", body))["order_id"]

            name = await created("TEST.FIRST2")
            body = order_body(account, name, "BUY", RESTING, 1)
            answer = await ws.request({"type": "submit_order", **body}, "order_response")
            assert answer["success"] is True, answer

            name = await created("TEST.FIRST3")
            subscribe = {"type": "subscribe", "channels": ["ticker"], "instruments": [name]}
            answer = await ws.request(subscribe, "subscribe_response")
            assert answer["instruments"] == [name], answer

            name = await created("TEST.FIRST4")
            price = {"instrument_id": name, "settlement_price": PRICE}
            await root.expect("POST", "/admin/settlement/set-price", price)

            name = await created("TEST.FIRST5")
            prices = {"prices": [{"instrument_id": name, "settlement_price": PRICE}]}
            await root.expect("POST", "/admin/settlement/batch-set-prices", prices)

            name = await created("TEST.FIRST6")
            await root.expect("PUT", f"/admin/instrument/{name}/suspend")

            name = await created("TEST.FIRST7")
            reply = await carol.call("GET", f"/api/market/tick/{name}")
            assert reply.code != ResultCode.NO_SUCH_INSTRUMENT, reply.body
            await ws.close()

            diff = await DiffSocket.open(session, second)
            await diff.send(
                {"aid": "req_login", "bid": "shmex", "user_name": "carol", "password": carol.token}
            )
            await diff.until(lambda s: "carol" in s.get("trade", {}))
            name = await created("TEST.FIRST8")
            exchange_id, instrument_id = name.split(".")
            await diff.send(
                {
                    "aid": "insert_order",
                    "user_id": "carol",
                    "order_id": "first8",
                    "exchange_id": exchange_id,
                    "instrument_id": instrument_id,
                    "direction": "BUY",
                    "offset": "OPEN",
                    "volume": 1,
                    "price_type": "LIMIT",
                    "limit_price": RESTING,
                    "volume_condition": "ANY",
                    "time_condition": "GFD",
                }
            )

            def placed(state: dict[str, Any]) -> bool:
                orders = state["trade"]["carol"].get("orders", {}).values()
                return any(o.get("instrument_id") == instrument_id for o in orders)

            await diff.until(placed)
            await diff.close()

    run(scenario)
