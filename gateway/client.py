"""A small aiohttp client of the edge, for the load generator, the benchmark and the tests.

It speaks only what any HTTP client would send (JSON bodies, bearer tokens, the envelope), so
what it proves about the edge holds for every client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson


class EdgeError(Exception):
    """An envelope with `success: false` where the caller expected success."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {code} {message}")
        self.status = status
        self.code = code


@dataclass
class Reply:
    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return isinstance(self.body, dict) and self.body.get("success") is True

    @property
    def code(self) -> int:
        """The envelope's error code, 0 on success."""
        if self.ok:
            return 0
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return int(error["code"]) if isinstance(error, dict) else -1

    @property
    def data(self) -> Any:
        return self.body.get("data") if isinstance(self.body, dict) else None


class EdgeClient:
    """REST calls on one session; `token` is sent as the bearer once logged in."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.token: str | None = None
        self.user_id = 0

    async def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Reply:
        headers = dict(kwargs.pop("headers", {}))
        if self.token and "Authorization" not in headers:
            headers["Authorization"] = f"Bearer {self.token}"
        data = kwargs.pop("data", None)
        if body is not None:
            data = orjson.dumps(body)
            headers.setdefault("Content-Type", "application/json")
        async with self.session.request(
            method, self.base_url + path, data=data, headers=headers, **kwargs
        ) as response:
            raw = await response.read()
            try:
                parsed = orjson.loads(raw)
            except orjson.JSONDecodeError:
                parsed = raw
            return Reply(response.status, parsed)

    async def expect(self, method: str, path: str, body: Any = None) -> Any:
        """The data of a successful call; EdgeError otherwise."""
        reply = await self.call(method, path, body)
        if not reply.ok:
            message = str(reply.body)[:300]
            raise EdgeError(reply.status, reply.code, message)
        return reply.data

    async def sign_up(self, username: str, password: str) -> None:
        """Register (if new) and log in."""
        await self.call("POST", "/api/auth/register", {"username": username, "password": password})
        data = await self.expect(
            "POST", "/api/auth/login", {"username": username, "password": password}
        )
        self.token, self.user_id = data["token"], data["user_id"]

    async def open_funded_account(self, amount: int, transaction_id: int = 1) -> int:
        account = await self.expect("POST", "/api/account/open", {"account_name": "main"})
        account_id = int(account["account_id"])
        await self.expect(
            "POST",
            "/api/account/deposit",
            {"account_id": account_id, "amount": amount, "transaction_id": transaction_id},
        )
        return account_id


def order_body(
    account_id: int,
    instrument_id: str,
    direction: str,
    price: float | int,
    volume: int,
    offset: str = "OPEN",
    **extra: Any,
) -> dict[str, Any]:
    """A `/api/order/submit` body (also the `/ws` `submit_order` fields)."""
    return {
        "account_id": account_id,
        "instrument_id": instrument_id,
        "direction": direction,
        "offset": offset,
        "order_type": "LIMIT",
        "price": price,
        "volume": volume,
        **extra,
    }
