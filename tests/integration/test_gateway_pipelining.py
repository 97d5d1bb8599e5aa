"""The edge's fast paths against the real exchange: `/ws` requests sent back to back are
handled concurrently yet answered in request order, refusals included; DIFF subscribers of one
instrument receive the same quote (built once, shared); `status` names the port it bound."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
import pytest

from gateway.client import order_body
from tests.integration.test_gateway_fixtures import (
    DiffSocket,
    RunningEdge,
    edge_instance,
    eventually,
    run,
    user,
)

CASH = 10**9
INSTRUMENT = "CFFEX.IF2501"
ANSWERS = frozenset({"order_response", "query_response", "pong", "error", "auth_response"})
PIPELINED_ORDERS = 40
WAIT_S = 15.0


@pytest.fixture
def edge() -> Iterator[RunningEdge]:
    with edge_instance("pipe") as running:
        yield running


async def _answers(ws: aiohttp.ClientWebSocketResponse, count: int) -> list[dict[str, Any]]:
    """The next `count` answers, in arrival order (pushes in between are skipped)."""
    answers: list[dict[str, Any]] = []
    while len(answers) < count:
        frame = await ws.receive(timeout=WAIT_S)
        assert frame.type is aiohttp.WSMsgType.TEXT, frame
        message = orjson.loads(frame.data)
        if message.get("type") in ANSWERS:
            answers.append(message)
    return answers


def test_pipelined_ws_requests_are_answered_in_request_order(edge: RunningEdge) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            alice, mallory = await user(session, edge, "pia"), await user(session, edge, "mal")
            account = await alice.open_funded_account(CASH)
            other = await mallory.open_funded_account(CASH)
            ws = await session.ws_connect(edge.url + "/ws", heartbeat=None)
            buy = order_body(account, INSTRUMENT, "BUY", 3800.0, 1)
            requests: list[dict[str, Any]] = [
                {"type": "auth", "token": alice.token},
                {"type": "submit_order", **buy},
                {"type": "query_account", "account_id": account},
                {"type": "submit_order", **{**buy, "price": 3800.1}},  # not on the 0.2 tick
                {"type": "ping"},
                {"type": "submit_order", **{**buy, "account_id": other}},  # not hers
                {"type": "teleport"},
                {"type": "cancel_order", "account_id": account, "order_id": 10**12},
                *({"type": "submit_order", **buy} for _ in range(PIPELINED_ORDERS)),
            ]
            for request in requests:
                await ws.send_str(orjson.dumps(request).decode())
            answers = await _answers(ws, len(requests))
            kinds = [a["type"] for a in answers]
            assert kinds[:8] == [
                "auth_response",
                "order_response",
                "query_response",
                "order_response",
                "pong",
                "order_response",
                "error",
                "order_response",
            ]
            assert answers[1]["success"] is True
            assert answers[2]["data"]["account_id"] == account
            assert answers[3]["success"] is False and answers[3]["error_code"]
            assert answers[5]["success"] is False and answers[5]["error_code"]
            assert "teleport" in answers[6]["message"]
            assert answers[7]["success"] is False
            placed = answers[8:]
            assert [a["type"] for a in placed] == ["order_response"] * PIPELINED_ORDERS
            assert all(a["success"] for a in placed), placed
            ids = [answers[1]["order_id"], *(a["order_id"] for a in placed)]
            assert ids == sorted(ids) and len(set(ids)) == len(ids)
            orders = await alice.expect("GET", f"/api/order/user/{alice.user_id}")
            assert {o["order_id"] for o in orders} >= set(ids)
            await ws.close()

    run(scenario)


def test_diff_subscribers_of_one_instrument_see_the_same_quote(edge: RunningEdge) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            trader = await user(session, edge, "quo")
            account = await trader.open_funded_account(CASH)
            watchers = [await DiffSocket.open(session, edge) for _ in range(3)]
            for diff in watchers:
                await diff.send({"aid": "subscribe_quote", "ins_list": INSTRUMENT})
                await diff.until(lambda s: s.get("ins_list") == INSTRUMENT)
            price = 3790.0
            await trader.expect(
                "POST", "/api/order/submit", order_body(account, INSTRUMENT, "BUY", price, 3)
            )

            async def all_see_the_bid() -> bool:
                quotes = [d.state["quotes"][INSTRUMENT] for d in watchers]
                return all(q.get("bid_price1") == price for q in quotes)

            await eventually(all_see_the_bid)
            first = watchers[0].state["quotes"][INSTRUMENT]
            for diff in watchers[1:]:
                assert diff.state["quotes"][INSTRUMENT] == first
            for diff in watchers:
                await diff.close()

    run(scenario)


def test_status_reports_the_bound_http_port_and_cpu(edge: RunningEdge) -> None:
    status = edge.status()
    assert status["http_port"] == urlsplit(edge.url).port
    assert status["cpu_s"] > 0
    assert status["service"]["events_thread_cpu_s"] >= 0


async def _pushes_until(
    ws: aiohttp.ClientWebSocketResponse, done: Any, limit_s: float = WAIT_S
) -> list[dict[str, Any]]:
    """Every message until `done(message)` holds for one (that one included)."""
    seen: list[dict[str, Any]] = []
    while True:
        frame = await ws.receive(timeout=limit_s)
        assert frame.type is aiohttp.WSMsgType.TEXT, frame
        seen.append(orjson.loads(frame.data))
        if done(seen[-1]):
            return seen


def test_a_socket_gets_only_the_account_events_of_its_channels(edge: RunningEdge) -> None:
    """The gateway decodes and renders only the event kinds some socket of the user wants;
    each socket still gets exactly its channels, and a fill's answer precedes nothing lost."""

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            alice, bob = await user(session, edge, "cha"), await user(session, edge, "chb")
            account, other = (
                await alice.open_funded_account(CASH),
                await bob.open_funded_account(CASH),
            )
            sockets = {}
            for channel in ("trade", "account"):
                ws = await session.ws_connect(edge.url + "/ws", heartbeat=None)
                await ws.send_str(orjson.dumps({"type": "auth", "token": alice.token}).decode())
                subscribe = {"type": "subscribe", "channels": [channel]}
                await ws.send_str(orjson.dumps(subscribe).decode())
                await _pushes_until(ws, lambda m: m["type"] == "subscribe_response")
                sockets[channel] = ws
            sell = order_body(other, INSTRUMENT, "SELL", 3800.0, 1)
            await bob.expect("POST", "/api/order/submit", sell)
            buy = order_body(account, INSTRUMENT, "BUY", 3800.0, 1)
            await sockets["trade"].send_str(orjson.dumps({"type": "submit_order", **buy}).decode())
            trade_side = await _pushes_until(sockets["trade"], lambda m: m["type"] == "trade")
            account_side = await _pushes_until(
                sockets["account"], lambda m: m["type"] == "position_update"
            )
            answer = next(m for m in trade_side if m["type"] == "order_response")
            assert answer["success"] is True
            statuses = [m for m in trade_side if m["type"] == "order_status"]
            assert statuses and all(m["order_id"] == answer["order_id"] for m in statuses)
            assert not {"account_update", "position_update"} & {m["type"] for m in trade_side}
            kinds = {m["type"] for m in account_side}
            assert "account_update" in kinds and not {"order_status", "trade"} & kinds
            for ws in sockets.values():
                await ws.close()

    run(scenario)


def test_a_full_window_holds_reading_and_every_request_is_answered() -> None:
    """With 2 requests in flight at most, 30 orders and a ping sent back to back are still all
    answered, in order: the reader resumes each time an answer frees a place."""
    with edge_instance("win", SHMEX_GATEWAY_WS_MAX_IN_FLIGHT="2") as narrow:

        async def scenario() -> None:
            async with aiohttp.ClientSession() as session:
                alice = await user(session, narrow, "win")
                account = await alice.open_funded_account(CASH)
                ws = await session.ws_connect(narrow.url + "/ws", heartbeat=None)
                buy = order_body(account, INSTRUMENT, "BUY", 3800.0, 1)
                requests: list[dict[str, Any]] = [
                    {"type": "auth", "token": alice.token},
                    *({"type": "submit_order", **buy} for _ in range(15)),
                    {"type": "ping"},
                    *({"type": "submit_order", **buy} for _ in range(15)),
                ]
                for request in requests:
                    await ws.send_str(orjson.dumps(request).decode())
                answers = await _answers(ws, len(requests))
                kinds = [a["type"] for a in answers]
                orders = ["order_response"] * 15
                assert kinds == ["auth_response", *orders, "pong", *orders]
                placed = [a for a in answers if a["type"] == "order_response"]
                assert all(a["success"] for a in placed), placed
                ids = [a["order_id"] for a in placed]
                assert ids == sorted(ids) and len(set(ids)) == len(ids)
                await ws.close()

        run(scenario)
