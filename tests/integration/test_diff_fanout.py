"""DIFF quotes shared by many connections, through the real gateway and exchange processes.

Every subscriber of a symbol gets the same quote updates; one that subscribes later starts
from the gateway's current copy of the quote (no older snapshot), complete with its static
fields; one that changes its ins_list stops getting the symbol it dropped; and every client's
mirror of the quote equals the others'.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from gateway.client import order_body
from tests.integration.test_gateway_fixtures import (
    DiffSocket,
    RunningEdge,
    edge_instance,
    run,
    user,
)

SYMBOL = "CFFEX.IH2501"
OTHER = "CFFEX.IF2501"


@pytest.fixture
def edge() -> Iterator[RunningEdge]:
    with edge_instance("fan") as running:
        yield running


def _quote(state: dict[str, Any]) -> dict[str, Any]:
    return dict(state.get("quotes", {}).get(SYMBOL, {}))


def _subscribed(ins_list: str) -> Any:
    return lambda s: s.get("ins_list") == ins_list


def test_quotes_are_shared_and_late_subscribers_start_current(edge: RunningEdge) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            trader = await user(session, edge, "fanny")
            account = await trader.open_funded_account(10**8)
            early = [await DiffSocket.open(session, edge) for _ in range(3)]
            for diff in early:
                await diff.send({"aid": "subscribe_quote", "ins_list": SYMBOL})
                await diff.until(_subscribed(SYMBOL))
            body = order_body(account, SYMBOL, "BUY", 2700.2, 2)
            await trader.expect("POST", "/api/order/submit", body)
            for diff in early:
                await diff.until(lambda s: _quote(s).get("bid_price1") == 2700.2)

            late = await DiffSocket.open(session, edge)
            await late.send({"aid": "subscribe_quote", "ins_list": SYMBOL})
            await late.until(_subscribed(SYMBOL))
            first = _quote(late.state)
            assert first["bid_price1"] == 2700.2 and first["bid_volume1"] == 2
            assert first["price_tick"] > 0 and first["datetime"] != ""

            dropper = early[0]
            await dropper.send({"aid": "subscribe_quote", "ins_list": OTHER})
            await dropper.until(_subscribed(OTHER))
            dropped_at = len(dropper.packets)
            body = order_body(account, SYMBOL, "BUY", 2700.4, 1)
            await trader.expect("POST", "/api/order/submit", body)
            watching = [*early[1:], late]
            for diff in watching:
                await diff.until(lambda s: _quote(s).get("bid_price1") == 2700.4)
            quotes = [_quote(diff.state) for diff in watching]
            assert all(q == quotes[0] for q in quotes), "every subscriber mirrors the same quote"
            after = [p for packet in dropper.packets[dropped_at:] for p in packet]
            assert not any(SYMBOL in p.get("quotes", {}) for p in after)
            for diff in [*early, late]:
                await diff.close()

    run(scenario)
