"""The app over loopback: requests refused at the edge answer with the envelope and a code
and never reach the exchange. The backend here is a tripwire that fails the test if any
method but the gateway's own instrument table is called; route-level tests with the real
backend run against real processes."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.auth import Principal, Role, ScryptParams, TokenSigner, UserStore
from gateway.config import EdgeConfig
from gateway.edge import Edge
from gateway.openapi import openapi_document
from gateway.ratelimit import RateLimiter
from gateway.rest import ROUTES
from tests.unit.gateway.support import Tripwire, run_async

SECRET = b"s" * 32
WAIT_S = 5.0


class _NoInstruments(Tripwire):
    """The tripwire, but with the gateway's own instrument table (empty): the one-pass order
    check reads it before it declines a body; everything else still reaches the exchange."""

    def instrument(self, instrument_id: str) -> None:
        return None


@asynccontextmanager
async def serve(tmp_path: Path, config: EdgeConfig | None = None) -> AsyncIterator[TestClient]:
    config = config or EdgeConfig()
    edge = Edge(
        backend=_NoInstruments(),  # type: ignore[arg-type]
        users=UserStore(tmp_path / "users.jsonl", ScryptParams(n=2**10)),
        signer=TokenSigner(SECRET),
        limiter=RateLimiter(config.rate_per_second, config.rate_burst),
        config=config,
    )
    async with TestClient(TestServer(create_app(edge))) as client:
        yield client


async def _json(response: aiohttp.ClientResponse) -> tuple[int, dict[str, Any]]:
    return response.status, orjson.loads(await response.read())


def _token(role: Role = Role.USER) -> str:
    return TokenSigner(SECRET).issue(Principal(1, "alice", role))[0]


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@run_async
async def test_unknown_routes_and_methods_answer_with_the_envelope(tmp_path: Path) -> None:
    async with serve(tmp_path) as client:
        status, body = await _json(await client.get("/api/nope"))
        assert status == 404
        assert body["success"] is False and body["error"]["code"] == 9003
        status, body = await _json(await client.delete("/api/auth/login"))
        assert status == 405 and body["error"]["code"] == 9003


@run_async
async def test_register_and_login_issue_a_token_the_server_accepts(tmp_path: Path) -> None:
    async with serve(tmp_path) as client:
        creds = {"username": "alice", "password": "long-enough"}
        status, body = await _json(await client.post("/api/auth/register", json=creds))
        assert (status, body["data"]["user_id"]) == (200, 1)
        status, body = await _json(await client.post("/api/auth/register", json=creds))
        assert (status, body["error"]["code"]) == (409, 2001)
        status, body = await _json(await client.post("/api/auth/login", json=creds))
        assert status == 200 and body["data"]["role"] == "USER"
        assert TokenSigner(SECRET).verify(body["data"]["token"]) == Principal(1, "alice", Role.USER)
        wrong = {**creds, "password": "wrong-password"}
        status, body = await _json(await client.post("/api/auth/login", json=wrong))
        assert (status, body["error"]["code"]) == (401, 9001)


@run_async
async def test_password_work_is_bounded(tmp_path: Path) -> None:
    async with serve(tmp_path, EdgeConfig(max_password_queue=0)) as client:
        creds = {"username": "alice", "password": "long-enough"}
        status, body = await _json(await client.post("/api/auth/register", json=creds))
        assert (status, body["error"]["code"]) == (503, 9005)
        status, body = await _json(await client.post("/api/auth/login", json=creds))
        assert (status, body["error"]["code"]) == (503, 9005)


@run_async
async def test_missing_bad_and_expired_tokens(tmp_path: Path) -> None:
    async with serve(tmp_path) as client:
        status, body = await _json(await client.get("/api/account/1"))
        assert (status, body["error"]["code"]) == (401, 9002)
        forged = _token()[:-3] + "AAA"
        status, body = await _json(await client.get("/api/account/1", headers=_auth(forged)))
        assert (status, body["error"]["code"]) == (401, 9001)
        expired = TokenSigner(SECRET, lifetime_s=-1).issue(Principal(1, "alice", Role.USER))[0]
        status, body = await _json(await client.get("/api/account/1", headers=_auth(expired)))
        assert (status, body["error"]["code"]) == (401, 9001)


@run_async
async def test_admin_routes_refuse_users(tmp_path: Path) -> None:
    async with serve(tmp_path) as client:
        for method, path in (("GET", "/admin/instruments"), ("POST", "/admin/settlement/execute")):
            response = await client.request(method, path, headers=_auth(_token()))
            status, body = await _json(response)
            assert (status, body["error"]["code"]) == (403, 9006), path


@run_async
async def test_bad_bodies_are_refused_before_the_backend(tmp_path: Path) -> None:
    headers = {**_auth(_token()), "Content-Type": "application/json"}
    cases = [
        (b'{"account_id": 1,', 400, 9003),
        (
            b'{"account_id": 1, "instrument_id": "CFFEX.IF2501", "direction": "BUY", '
            b'"offset": "OPEN", "volume": 1, "price": NaN}',
            400,
            9003,
        ),
        (b'{"account_id": "1"}', 400, 9003),
        (
            b'{"account_id": 1, "instrument_id": "CFFEX.IF2501", "direction": "BUY", '
            b'"offset": "OPEN", "volume": 1, "price": -5}',
            400,
            1008,
        ),
        (b"\x00\x01\x02\xff\xfe binary", 400, 9003),
        (b'{"x": "' + b"a" * (1024 * 1024) + b'"}', 413, 9007),
    ]
    async with serve(tmp_path) as client:
        for payload, want_status, want_code in cases:
            response = await client.post("/api/order/submit", data=payload, headers=headers)
            status, body = await _json(response)
            assert (status, body["error"]["code"]) == (want_status, want_code), payload[:60]
            assert body["error"]["message"]


@run_async
async def test_bad_path_and_query_parameters(tmp_path: Path) -> None:
    async with serve(tmp_path) as client:
        for path in ("/api/account/abc", "/api/account/0", "/api/account/99999999999999999999"):
            status, body = await _json(await client.get(path, headers=_auth(_token())))
            assert (status, body["error"]["code"]) == (400, 9003), path
        status, body = await _json(await client.get("/api/klines/CFFEX.IF2501/7min"))
        assert (status, body["error"]["code"]) == (400, 9003)
        assert "7min" in body["error"]["message"]
        status, body = await _json(await client.get("/api/market/orderbook/X.y?depth=-1"))
        assert (status, body["error"]["code"]) == (400, 9003)


@run_async
async def test_a_gbk_login_body_is_decoded(tmp_path: Path) -> None:
    async with serve(tmp_path) as client:
        body = '{"username": "alice", "password": "密码是中文的密码"}'.encode("gbk")
        headers = {"Content-Type": "application/json; charset=gbk"}
        status, answer = await _json(
            await client.post("/api/auth/register", data=body, headers=headers)
        )
        assert status == 200, answer
        login = '{"username": "alice", "password": "密码是中文的密码"}'.encode()
        status, answer = await _json(await client.post("/api/auth/login", data=login))
        assert status == 200, answer


@run_async
async def test_rate_limit_per_connection(tmp_path: Path) -> None:
    config = EdgeConfig(rate_per_second=5, rate_burst=5)
    async with serve(tmp_path, config) as client:
        codes = []
        for _ in range(8):
            _, body = await _json(await client.get("/api/klines/CFFEX.IF2501/7min"))
            codes.append(body["error"]["code"])
        assert codes.count(9004) >= 2
        assert codes[:5] == [9003] * 5


@run_async
async def test_openapi_json_is_the_generated_document(tmp_path: Path) -> None:
    async with serve(tmp_path) as client:
        status, body = await _json(await client.get("/openapi.json"))
        assert status == 200
        assert body == orjson.loads(orjson.dumps(openapi_document(ROUTES)))


@run_async
async def test_native_ws_refuses_before_auth_and_bad_frames(tmp_path: Path) -> None:
    async with serve(tmp_path) as client, client.ws_connect("/ws") as ws:
        await ws.send_str('{"type": "ping"}')
        assert await ws.receive_json(timeout=WAIT_S) == {"type": "pong"}
        await ws.send_str('{"type": "submit_order", "account_id": 1}')
        assert (await ws.receive_json(timeout=WAIT_S))["code"] == 9002
        await ws.send_str("{broken")
        assert (await ws.receive_json(timeout=WAIT_S))["code"] == 9003
        await ws.send_bytes(b"\x00\x01")
        reply = await ws.receive_json(timeout=WAIT_S)
        assert (reply["type"], reply["code"]) == ("error", 9003)
        await ws.send_str('{"type": "teleport"}')
        assert "teleport" in (await ws.receive_json(timeout=WAIT_S))["message"]
        await ws.send_str('{"x": "' + "a" * (1024 * 1024 + 10) + '"}')
        assert (await ws.receive_json(timeout=WAIT_S))["code"] == 9007
        await ws.send_str('{"type": "auth", "token": "not-a-token"}')
        reply = await ws.receive_json(timeout=WAIT_S)
        assert (reply["type"], reply["success"]) == ("auth_response", False)


@run_async
async def test_native_ws_closes_after_silence(tmp_path: Path) -> None:
    config = EdgeConfig(ws_idle_timeout_s=0.2)
    async with serve(tmp_path, config) as client, client.ws_connect("/ws") as ws:
        message = await ws.receive(timeout=WAIT_S)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
