"""A trader's whole day through the real gateway and the real exchange processes, once per
client protocol: REST, `/ws` and `/ws/diff`. Register, open, deposit, two users cross with a
partial fill, cancel the rest, close, settle; and what was pushed equals what is queried."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from gateway.client import EdgeClient, order_body
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
MONEY_FIELDS = ("balance", "available", "margin", "close_profit", "commission", "frozen_margin")


@pytest.fixture
def edge() -> Iterator[RunningEdge]:
    with edge_instance("life") as running:
        yield running


async def _settle(
    session: aiohttp.ClientSession, edge: RunningEdge, prices: dict[str, float]
) -> None:
    operator = await admin(session, edge)
    body = {"prices": [{"instrument_id": i, "settlement_price": p} for i, p in prices.items()]}
    assert (await operator.expect("POST", "/admin/settlement/batch-set-prices", body))["count"] == 1
    settled = await operator.expect("POST", "/admin/settlement/execute")
    history = await operator.expect("GET", "/admin/settlement/history")
    assert [row["trading_day"] for row in history] == [settled["trading_day"]]


def _same_money(pushed: dict[str, Any], queried: dict[str, Any]) -> None:
    for name in MONEY_FIELDS:
        assert pushed[name] == pytest.approx(queried[name], abs=1e-6), name


async def _last_order(client: EdgeClient, order_id: int) -> dict[str, Any]:
    return await client.expect("GET", f"/api/order/{order_id}")


def test_rest_lifecycle(edge: RunningEdge) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            alice, bob = await user(session, edge, "alice"), await user(session, edge, "bob")
            a = await alice.open_funded_account(CASH)
            b = await bob.open_funded_account(CASH)
            pushes = await NativeSocket.open(session, edge)
            auth = await pushes.request({"type": "auth", "token": alice.token}, "auth_response")
            assert auth["success"] is True
            ins = "CFFEX.IF2501"

            buy = await alice.expect(
                "POST", "/api/order/submit", order_body(a, ins, "BUY", 3800.0, 2)
            )
            await bob.expect("POST", "/api/order/submit", order_body(b, ins, "SELL", 3800.0, 1))

            async def partially_filled() -> bool:
                order = await _last_order(alice, buy["order_id"])
                return order["status"] == "PARTIALLY_FILLED" and order["filled_volume"] == 1

            await eventually(partially_filled)
            await pushes.next("trade", order_id=buy["order_id"])
            cancel = {"account_id": a, "order_id": buy["order_id"]}
            await alice.expect("POST", "/api/order/cancel", cancel)

            async def cancelled() -> bool:
                return (await _last_order(alice, buy["order_id"]))["status"] == "CANCELLED"

            await eventually(cancelled)
            close = order_body(a, ins, "SELL", 3801.0, 1, offset="CLOSE")
            await alice.expect("POST", "/api/order/submit", close)
            cover = order_body(b, ins, "BUY", 3801.0, 1, offset="CLOSE")
            await bob.expect("POST", "/api/order/submit", cover)

            async def flat() -> bool:
                rows = await alice.expect("GET", f"/api/position/{a}")
                return all(r["volume_long"] == 0 and r["volume_short"] == 0 for r in rows)

            await eventually(flat)
            trades = await alice.expect("GET", f"/api/trades/{a}")
            assert [t["direction"] for t in trades] == ["BUY", "SELL"]
            assert trades[1]["close_profit"] == pytest.approx(1.0 * 300)

            async def pushed_equals_queried() -> bool:
                queried = await alice.expect("GET", f"/api/account/{a}")
                updates = [m for m in pushes.messages if m["type"] == "account_update"]
                if not updates:
                    return False
                try:
                    _same_money(updates[-1], queried)
                except AssertionError:
                    return False
                return True

            await eventually(pushed_equals_queried)
            orders = await alice.expect("GET", f"/api/order/user/{alice.user_id}")
            assert {o["status"] for o in orders} <= {"CANCELLED", "FILLED"}
            await pushes.close()
            await _settle(session, edge, {ins: 3801.0})

    run(scenario)


def test_native_websocket_lifecycle(edge: RunningEdge) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            alice, bob = await user(session, edge, "carol"), await user(session, edge, "dave")
            a = await alice.open_funded_account(CASH)
            b = await bob.open_funded_account(CASH)
            ws_a, ws_b = (
                await NativeSocket.open(session, edge),
                await NativeSocket.open(session, edge),
            )
            for ws, client in ((ws_a, alice), (ws_b, bob)):
                answer = await ws.request({"type": "auth", "token": client.token}, "auth_response")
                assert answer["success"] is True
            ins = "CFFEX.IC2501"
            subscribed = await ws_a.request(
                {
                    "type": "subscribe",
                    "channels": ["trade", "account", "orderbook"],
                    "instruments": [ins],
                },
                "subscribe_response",
            )
            assert subscribed["success"] is True

            placed = await ws_a.request(
                {"type": "submit_order", **order_body(a, ins, "BUY", 5600.0, 2)}, "order_response"
            )
            assert placed["success"] is True, placed
            order_id = placed["order_id"]
            sold = await ws_b.request(
                {"type": "submit_order", **order_body(b, ins, "SELL", 5600.0, 1)}, "order_response"
            )
            assert sold["success"] is True, sold
            await ws_a.next("order_status", order_id=order_id, status="PARTIALLY_FILLED")
            await ws_a.next("trade", order_id=order_id)
            cancelled = await ws_a.request(
                {"type": "cancel_order", "account_id": a, "order_id": order_id}, "order_response"
            )
            assert cancelled["success"] is True, cancelled
            await ws_a.next("order_status", order_id=order_id, status="CANCELLED")

            await ws_a.request(
                {"type": "submit_order", **order_body(a, ins, "SELL", 5601.0, 1, offset="CLOSE")},
                "order_response",
            )
            await ws_b.request(
                {"type": "submit_order", **order_body(b, ins, "BUY", 5601.0, 1, offset="CLOSE")},
                "order_response",
            )

            async def flat() -> bool:
                answer = await ws_a.request(
                    {"type": "query_position", "account_id": a}, "query_response"
                )
                return all(p["volume_long"] == 0 for p in answer["data"])

            await eventually(flat)

            async def pushed_equals_queried() -> bool:
                answer = await ws_a.request(
                    {"type": "query_account", "account_id": a}, "query_response"
                )
                updates = [m for m in ws_a.messages if m["type"] == "account_update"]
                try:
                    _same_money(updates[-1], answer["data"])
                except (AssertionError, IndexError):
                    return False
                return True

            await eventually(pushed_equals_queried)
            await ws_a.close()
            await ws_b.close()
            await _settle(session, edge, {ins: 5601.0})

    run(scenario)


def _diff_trade(state: dict[str, Any], user_name: str) -> dict[str, Any]:
    return state.get("trade", {}).get(user_name, {})


def test_diff_lifecycle_and_conformance(edge: RunningEdge) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            alice, bob = await user(session, edge, "erin"), await user(session, edge, "frank")
            a = await alice.open_funded_account(CASH)
            b = await bob.open_funded_account(CASH)
            diff = await DiffSocket.open(session, edge)
            await diff.until(lambda s: s.get("mdhis_more_data") is False)
            await diff.send(
                {
                    "aid": "req_login",
                    "bid": "shmex",
                    "user_name": "erin",
                    "password": "erin-password-1",
                }
            )
            await diff.until(lambda s: _diff_trade(s, "erin").get("trade_more_data") is False)
            await diff.until(lambda s: "CNY" in _diff_trade(s, "erin").get("accounts", {}))

            await diff.send({"aid": "subscribe_quote", "ins_list": "CFFEX.IH2501"})
            await diff.until(lambda s: s.get("ins_list") == "CFFEX.IH2501")
            quote = diff.state["quotes"]["CFFEX.IH2501"]
            assert quote["price_tick"] == pytest.approx(0.2)
            assert quote["volume_multiple"] == 300

            await diff.send(
                {
                    "aid": "insert_order",
                    "user_id": "erin",
                    "order_id": "erin-1",
                    "exchange_id": "CFFEX",
                    "instrument_id": "IH2501",
                    "direction": "BUY",
                    "offset": "OPEN",
                    "volume": 2,
                    "price_type": "LIMIT",
                    "limit_price": 2800.0,
                    "volume_condition": "ANY",
                    "time_condition": "GFD",
                }
            )
            await diff.until(lambda s: "erin-1" in _diff_trade(s, "erin").get("orders", {}))
            seen = len(diff.packets)
            await bob.expect(
                "POST", "/api/order/submit", order_body(b, "CFFEX.IH2501", "SELL", 2800.0, 1)
            )
            await diff.until(
                lambda s: _diff_trade(s, "erin")["orders"]["erin-1"]["volume_left"] == 1
            )
            atomic = [
                p
                for p in diff.packets[seen:]
                if any("trades" in _diff_trade(patch, "erin") for patch in p)
            ]
            assert atomic, "no rtn_data carried the trade"
            sections = set()
            for patch in atomic[0]:
                sections |= set(_diff_trade(patch, "erin"))
            assert {"trades", "orders", "accounts"} <= sections

            await diff.send(
                {
                    "aid": "set_chart",
                    "chart_id": "c1",
                    "ins_list": "CFFEX.IH2501",
                    "duration": 60 * 10**9,
                    "view_width": 10,
                }
            )
            await diff.until(lambda s: "c1" in s.get("charts", {}))
            await diff.until(
                lambda s: (
                    s.get("klines", {})
                    .get("CFFEX.IH2501", {})
                    .get(str(60 * 10**9), {})
                    .get("last_id", -1)
                    >= 0
                )
            )

            await diff.send({"aid": "cancel_order", "user_id": "erin", "order_id": "erin-1"})
            await diff.until(
                lambda s: _diff_trade(s, "erin")["orders"]["erin-1"]["status"] == "FINISHED"
            )
            queried = await alice.expect("GET", f"/api/account/{a}")
            await diff.until(
                lambda s: (
                    _diff_trade(s, "erin")["accounts"]["CNY"]["balance"]
                    == pytest.approx(queried["balance"])
                )
            )
            await diff.close()
            await _settle(session, edge, {"CFFEX.IH2501": 2800.0})

    run(scenario)
