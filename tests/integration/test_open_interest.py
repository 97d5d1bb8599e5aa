"""Open interest through the real processes: accounts stamps each order's offset, matching
copies both legs' offsets into the trade, market data counts +qty when both open, −qty when
both close (docs/records.md, "Trades' offsets: open interest")."""

from __future__ import annotations

from collections.abc import Iterator

import aiohttp
import pytest

from gateway.client import EdgeClient, order_body
from tests.integration.test_gateway_fixtures import (
    RunningEdge,
    edge_instance,
    eventually,
    run,
    user,
)

CASH = 10_000_000
FUTURE = "CFFEX.IF2501"
PRICE = 3800.0


@pytest.fixture
def edge() -> Iterator[RunningEdge]:
    with edge_instance("oi") as running:
        yield running


async def _trade(
    buyer: EdgeClient, b: int, seller: EdgeClient, s: int, lots: int, offset: str
) -> None:
    """`lots` of FUTURE between the two, both legs with `offset`, filled before returning."""
    buy = await buyer.expect(
        "POST", "/api/order/submit", order_body(b, FUTURE, "BUY", PRICE, lots, offset)
    )
    await seller.expect(
        "POST", "/api/order/submit", order_body(s, FUTURE, "SELL", PRICE, lots, offset)
    )

    async def filled() -> bool:
        order = await buyer.expect("GET", f"/api/order/{buy['order_id']}")
        return bool(order["status"] == "FILLED")

    await eventually(filled)


async def _open_interest_becomes(client: EdgeClient, expected: int) -> None:
    async def reached() -> bool:
        tick = await client.expect("GET", f"/api/market/tick/{FUTURE}")
        return bool(tick["quote"].get("open_interest") == expected)

    await eventually(reached)


def test_open_interest_follows_opening_and_closing_trades(edge: RunningEdge) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            alice, bob = await user(session, edge, "alice"), await user(session, edge, "bob")
            a, b = await alice.open_funded_account(CASH), await bob.open_funded_account(CASH)
            await _trade(alice, a, bob, b, 3, "OPEN")
            await _open_interest_becomes(alice, 3)
            await _trade(bob, b, alice, a, 2, "CLOSE")  # bob buys back, alice sells out
            await _open_interest_becomes(alice, 1)

    run(scenario)
