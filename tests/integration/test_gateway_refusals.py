"""Hostile and broken input end to end, against the real exchange behind the real gateway:
every bad request gets a code and changes nothing; no user reaches another's accounts or
orders; rate limits answer 9004; a slow WebSocket reader does not hold up a fast one."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import orjson
import pytest

from gateway.client import EdgeClient, Reply, order_body
from tests.integration.test_gateway_fixtures import (
    DiffSocket,
    NativeSocket,
    RunningEdge,
    edge_instance,
    run,
    user,
)

INS = "SHFE.cu2501"
PRICE = 75000


@pytest.fixture(scope="module")
def edge() -> Iterator[RunningEdge]:
    with edge_instance("bad") as running:
        yield running


async def _state(client: EdgeClient, account: int) -> tuple[Any, ...]:
    """Everything a refused request must leave unchanged."""
    money = await client.expect("GET", f"/api/account/{account}")
    orders = await client.expect("GET", f"/api/order/user/{client.user_id}")
    positions = await client.expect("GET", f"/api/position/{account}")
    return money["balance"], money["available"], len(orders), len(positions)


def test_malformed_orders_answer_codes_and_change_nothing(edge: RunningEdge) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            trader = await user(session, edge, "mallory")
            account = await trader.open_funded_account(1_000_000)
            before = await _state(trader, account)
            good = order_body(account, INS, "BUY", PRICE, 1)
            cases: list[tuple[bytes, set[int]]] = [
                (b"{not json", {9003}),
                (orjson.dumps({k: v for k, v in good.items() if k != "volume"}), {9003}),
                (orjson.dumps({**good, "price": "75000"}), {9003}),
                (orjson.dumps({**good, "volume": "1"}), {9003}),
                (orjson.dumps(good)[:-1] + b', "price": NaN}', {9003}),
                (orjson.dumps(good)[:-1] + b', "price": Infinity}', {9003}),
                (orjson.dumps({**good, "price": -75000}), {1008, 9003}),
                (orjson.dumps({**good, "price": 75005}), {4005}),
                (orjson.dumps({**good, "instrument_id": "SHFE.nope"}), {1007}),
                (orjson.dumps({**good, "volume": 0.5}), {1008}),
                (b"\xff\xfe\x00garbage\x80\x81", {9003}),
                (b"x" * (1024 * 1024), {9007}),
            ]
            for raw, codes in cases:
                reply = await trader.call(
                    "POST",
                    "/api/order/submit",
                    data=raw,
                    headers={"Content-Type": "application/json"},
                )
                assert reply.code in codes, (raw[:60], reply.body)
                assert reply.status < 500
            gbk = orjson.dumps({"account_name": "账户"}).decode().encode("gbk")
            reply = await trader.call(
                "POST",
                "/api/account/open",
                data=gbk,
                headers={"Content-Type": "application/json; charset=gbk"},
            )
            assert reply.ok, reply.body
            assert await _state(trader, account) == before

    run(scenario)


async def _trader_on_ws(
    session: aiohttp.ClientSession, edge: RunningEdge, name: str
) -> tuple[EdgeClient, int, tuple[Any, ...], NativeSocket]:
    """A funded trader, its account's state, and its authenticated `/ws` socket."""
    trader = await user(session, edge, name)
    account = await trader.open_funded_account(1_000_000)
    before = await _state(trader, account)
    ws = await NativeSocket.open(session, edge)
    await ws.request({"type": "auth", "token": trader.token}, "auth_response")
    return trader, account, before, ws


def test_websocket_hostile_frames(edge: RunningEdge) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            trader, account, before, ws = await _trader_on_ws(session, edge, "trudy")
            start = len(ws.messages)
            await ws.ws.send_str("{broken")
            await ws.next("error", start, code=9003)
            start = len(ws.messages)
            await ws.ws.send_bytes(b"\x00\x01binary")
            await ws.next("error", start, code=9003)
            start = len(ws.messages)
            await ws.send({"type": "submit_order", **order_body(account, INS, "BUY", "1", 1)})
            await ws.next("error", start, code=9003)
            start = len(ws.messages)
            await ws.send({"type": "submit_order", **order_body(account, "X.Y", "BUY", PRICE, 1)})
            answer = await ws.next("order_response", start)
            assert answer["error_code"] == 1007
            await ws.ws.send_str('{"type": "ping", "pad": "' + "x" * (1024 * 1024) + '"}')
            await asyncio.sleep(0.5)
            await ws.close()
            assert await _state(trader, account) == before

    run(scenario)


def test_no_user_reaches_another_users_ids(edge: RunningEdge) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            owner, thief = await user(session, edge, "olivia"), await user(session, edge, "thief")
            account = await owner.open_funded_account(1_000_000)
            own = await thief.open_funded_account(1_000_000)
            placed = await owner.expect(
                "POST", "/api/order/submit", order_body(account, INS, "BUY", PRICE - 1000, 1)
            )
            order_id = placed["order_id"]
            before = await _state(owner, account)
            attempts = [
                ("GET", f"/api/account/{account}", None),
                ("GET", f"/api/position/{account}", None),
                ("GET", f"/api/trades/{account}", None),
                ("GET", f"/api/order/{order_id}", None),
                ("GET", f"/api/order/user/{owner.user_id}", None),
                ("GET", f"/api/user/{owner.user_id}/accounts", None),
                (
                    "POST",
                    "/api/account/deposit",
                    {"account_id": account, "amount": 1, "transaction_id": 9},
                ),
                (
                    "POST",
                    "/api/account/withdraw",
                    {"account_id": account, "amount": 1, "transaction_id": 9},
                ),
                ("POST", "/api/order/submit", order_body(account, INS, "SELL", PRICE, 1)),
                ("POST", "/api/order/cancel", {"account_id": account, "order_id": order_id}),
                ("POST", "/api/order/cancel", {"account_id": own, "order_id": order_id}),
                ("POST", "/admin/settlement/execute", None),
                ("GET", "/admin/instruments", None),
            ]
            for method, path, body in attempts:
                reply = await thief.call(method, path, body)
                assert not reply.ok and reply.status in (403, 404), (path, reply.body)
            ws = await NativeSocket.open(session, edge)
            await ws.request({"type": "auth", "token": thief.token}, "auth_response")
            for message in (
                {"type": "query_account", "account_id": account},
                {"type": "query_position", "account_id": account},
                {"type": "query_order", "order_id": order_id},
                {"type": "cancel_order", "account_id": account, "order_id": order_id},
                {"type": "submit_order", **order_body(account, INS, "SELL", PRICE, 1)},
            ):
                start = len(ws.messages)
                await ws.send(message)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and len(ws.messages) == start:
                    await asyncio.sleep(0.02)
                answer = ws.messages[start]
                refused = answer.get("type") == "error" or answer.get("success") is False
                assert refused, (message, answer)
            await ws.close()
            diff = await DiffSocket.open(session, edge)
            await diff.send(
                {"aid": "req_login", "bid": "shmex", "user_name": "thief", "password": thief.token}
            )
            await diff.until(lambda s: "thief" in s.get("trade", {}))
            for message in (
                {"aid": "cancel_order", "user_id": "thief", "order_id": str(order_id)},
                {"aid": "cancel_order", "user_id": "olivia", "order_id": str(order_id)},
            ):
                await diff.send(message)
            await diff.until(lambda _s: len(_refusals(diff)) >= 2)
            assert not any(code in (0, 5000) for code in _refusals(diff))
            assert "olivia" not in diff.state["trade"]
            await diff.close()
            assert await _state(owner, account) == before
            order = await owner.expect("GET", f"/api/order/{order_id}")
            assert order["status"] in ("PENDING", "ACCEPTED")

    run(scenario)


def _refusals(diff: DiffSocket) -> list[int]:
    """The codes of every ERROR notice received (the state keeps only the latest notice)."""
    notices = [n for packet in diff.packets for p in packet for n in p.get("notify", {}).values()]
    return [n["code"] for n in notices if n and n.get("level") == "ERROR"]


def test_rate_limit_answers_9004(edge: RunningEdge) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            ws = await NativeSocket.open(session, edge)
            for _ in range(300):
                await ws.send({"type": "ping"})
            await ws.next("error", code=9004)
            await ws.close()

    run(scenario)


async def _silent_reader(edge: RunningEdge, token: str) -> asyncio.StreamWriter:
    """A WebSocket client that authenticates, subscribes to everything, then never reads: a
    tiny receive buffer, so the gateway's writes to it back up at once."""
    host, port = edge.url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
    subscribe = {
        "type": "subscribe",
        "channels": ["orderbook", "ticker", "trade", "account"],
        "instruments": [INS],
    }
    for message in ({"type": "auth", "token": token}, subscribe):
        writer.write(_masked_text_frame(orjson.dumps(message)))
    await writer.drain()
    return writer


def _masked_text_frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    size = len(payload)
    header = (
        bytes([0x81, 0x80 | size]) if size < 126 else bytes([0x81, 0xFE]) + size.to_bytes(2, "big")
    )
    return header + mask + masked


def test_slow_reader_does_not_delay_a_fast_one(edge: RunningEdge) -> None:
    """The silent client gets every push of the fast one's orders (same user) and the order
    book; the fast client still gets every answer (each wait is bounded by the helper)."""

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            trader = await user(session, edge, "speedy")
            account = await trader.open_funded_account(10_000_000)
            silent = await _silent_reader(edge, trader.token)
            fast = await NativeSocket.open(session, edge)
            await fast.request({"type": "auth", "token": trader.token}, "auth_response")
            for n in range(60):
                body = order_body(account, INS, "BUY", PRICE - 2000 - 10 * n, 1)
                answer = await fast.request({"type": "submit_order", **body}, "order_response")
                assert answer["success"] is True, answer
            pushes = [m for m in fast.messages if m["type"] == "order_status"]
            assert len(pushes) >= 60
            await fast.close()
            silent.close()

    run(scenario)


OUT_OF_RANGE: list[tuple[str, Any, set[int]]] = [
    ("volume", 1e28, {1008}),
    ("volume", 10**28, {1008}),
    ("volume", int("9" * 60), {1008}),
    ("volume", 1e-30, {1008}),
    ("volume", 1.0000000000001, {1008}),
    ("price", 1e30, {1008}),
    ("price", 10**30, {1008}),
    ("price", 1e-30, {1008, 4005}),
    ("price", 75000.00000000001, {4005}),
    ("price", 12345678901234567890123456789.0, {1008}),
]
"""(order field, value, the codes a refusal may carry): huge, tiny and many-digit numbers."""
AMOUNTS = [1e40, 10**40, 1e-30, 0.123456789, int("9" * 60), 1.0000000000000002e15]
"""Deposit and withdrawal amounts out of range or with more decimals than CNY has."""


async def _post_text(client: EdgeClient, path: str, body: dict[str, Any]) -> Reply:
    """POST a body as the standard library writes it (integers of any size, unlike orjson)."""
    headers = {"Content-Type": "application/json"}
    return await client.call("POST", path, data=json.dumps(body).encode(), headers=headers)


async def _answer_after(ws: NativeSocket, start: int) -> dict[str, Any]:
    """The first message at or after `start` (an order's answer: an error or order_response)."""
    deadline = time.monotonic() + 10
    while len(ws.messages) <= start:
        assert time.monotonic() < deadline, "no answer"
        await asyncio.sleep(0.02)
    return ws.messages[start]


def test_out_of_range_numbers_answer_codes_on_every_path(edge: RunningEdge) -> None:
    """Numbers beyond Decimal's default precision or the records' integers are refused with
    1008/4005/9003, never 5000, over REST, `/ws` and DIFF; nothing changes."""

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            trader, account, before, ws = await _trader_on_ws(session, edge, "huge")
            for name, value, codes in OUT_OF_RANGE:
                body = {**order_body(account, INS, "BUY", PRICE, 1), name: value}
                reply = await _post_text(trader, "/api/order/submit", body)
                assert reply.code in codes and reply.status < 500, (name, value, reply.body)
                start = len(ws.messages)
                await ws.ws.send_str(json.dumps({"type": "submit_order", **body}))
                answer = await _answer_after(ws, start)
                code = answer.get("code", answer.get("error_code"))
                assert code in codes, (name, value, answer)
            for path in ("/api/account/deposit", "/api/account/withdraw"):
                for n, amount in enumerate(AMOUNTS):
                    body = {"account_id": account, "amount": amount, "transaction_id": 100 + n}
                    reply = await _post_text(trader, path, body)
                    assert reply.code == 9003 and reply.status < 500, (path, amount, reply.body)
            await ws.close()

            diff = await DiffSocket.open(session, edge)
            login = {"aid": "req_login", "bid": "shmex", "user_name": "huge"}
            await diff.send({**login, "password": trader.token})
            await diff.until(lambda s: "huge" in s.get("trade", {}))
            for n, (name, value, codes) in enumerate(OUT_OF_RANGE):
                diff_name = "limit_price" if name == "price" else name
                order = {
                    "aid": "insert_order",
                    "user_id": "huge",
                    "order_id": f"huge-{n}",
                    "exchange_id": "SHFE",
                    "instrument_id": "cu2501",
                    "direction": "BUY",
                    "offset": "OPEN",
                    "volume": 1,
                    "price_type": "LIMIT",
                    "limit_price": PRICE,
                    diff_name: value,
                }
                await diff.ws.send_str(json.dumps(order))
                await diff.until(lambda _s, n=n: len(_refusals(diff)) > n)
                assert _refusals(diff)[n] in codes | {9003}, (name, value, _refusals(diff))
            await diff.close()
            assert await _state(trader, account) == before

    run(scenario)
