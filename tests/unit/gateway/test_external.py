"""The feeds catalogue as the edge keeps it: parsed, refreshed lazily, absent feeds harmless.

The catalogue talks to a real `ipc.control.ControlServer` (what the feeds process runs) on a
loopback TCP port; the server is polled on the test's own event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import zmq
import zmq.asyncio

from gateway.async_control import AsyncControlClient
from gateway.diff import messages as m
from gateway.external import ExternalCatalogue, ExternalInstrument, parse_catalogue
from ipc.control import ControlServer
from tests.unit.gateway.support import run_async

ENTRY = {"venue": "BINANCE", "symbol": "ETHUSDT", "price_tick": "0.01", "lot_size": "0.0001"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@contextlib.asynccontextmanager
async def feeds_server(catalogue: dict[str, Any]) -> AsyncIterator[tuple[str, list[int]]]:
    """A control socket answering `instruments` (counted) and `endpoint`."""
    context: zmq.Context[Any] = zmq.Context()
    server = ControlServer(context, "tcp://127.0.0.1:*")
    asked = [0]

    def instruments(_args: dict[str, Any]) -> dict[str, Any]:
        asked[0] += 1
        return catalogue

    server.register("instruments", instruments)
    server.register("endpoint", lambda _args: "tcp://127.0.0.1:1")

    async def serve() -> None:
        while True:
            server.poll(0)
            await asyncio.sleep(0.005)

    task = asyncio.create_task(serve())
    try:
        yield server.socket.getsockopt_string(zmq.LAST_ENDPOINT), asked
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        server.socket.close(linger=0)
        context.term()


def test_parse_catalogue_keeps_good_entries_and_skips_malformed() -> None:
    parsed = parse_catalogue({"BINANCE.ETHUSDT": ENTRY, "BAD.X": {"venue": "BAD"}, "B.Y": 3})
    assert parsed == {
        "BINANCE.ETHUSDT": ExternalInstrument(
            "BINANCE.ETHUSDT", "BINANCE", "ETHUSDT", Decimal("0.01"), Decimal("0.0001")
        )
    }
    assert parse_catalogue(["not", "a", "mapping"]) == {}
    assert parse_catalogue({"X.Y": {**ENTRY, "price_tick": "tick"}}) == {}


@run_async
async def test_lookup_asks_feeds_and_refreshes_unknown_ids_at_most_once_a_second() -> None:
    catalogue = {"BINANCE.ETHUSDT": ENTRY}
    async with feeds_server(catalogue) as (endpoint, asked):
        context = zmq.asyncio.Context()
        clock = FakeClock()
        endpoints: list[str] = []
        external = ExternalCatalogue(AsyncControlClient(context, endpoint), endpoints.append, clock)
        try:
            found = await external.lookup("BINANCE.ETHUSDT")
            assert found is not None and found.price_tick == Decimal("0.01")
            assert endpoints == ["tcp://127.0.0.1:1"]
            assert asked[0] == 1

            assert await external.lookup("OKX.BTC-USDT") is None
            assert asked[0] == 1  # asked less than a second ago
            catalogue["OKX.BTC-USDT"] = {**ENTRY, "venue": "OKX", "symbol": "BTC-USDT"}
            clock.now = 1.0
            found = await external.lookup("OKX.BTC-USDT")
            assert found is not None and found.venue == "OKX"
            assert asked[0] == 2 and len(external) == 2
            assert endpoints == ["tcp://127.0.0.1:1"]  # the PUB endpoint is asked for once
            assert external.status() == {"known": 2, "refreshes": 2, "failures": 0}
        finally:
            await external.close()
            context.term()


@run_async
async def test_without_a_feeds_process_nothing_is_known_and_nothing_raises() -> None:
    context = zmq.asyncio.Context()
    probe = zmq.Context()
    silent = probe.socket(zmq.ROUTER)  # bound, never answers: a feeds process that is not there
    silent.setsockopt(zmq.LINGER, 0)
    silent.bind("tcp://127.0.0.1:*")
    endpoint = silent.getsockopt_string(zmq.LAST_ENDPOINT)
    external = ExternalCatalogue(AsyncControlClient(context, endpoint), lambda _e: None)
    try:
        assert await external.lookup("BINANCE.ETHUSDT") is None
        assert external.status() == {"known": 0, "refreshes": 0, "failures": 1}
    finally:
        await external.close()
        context.term()
        silent.close(linger=0)
        probe.term()


def test_external_static_quote_has_the_catalogue_fields_and_nan_for_the_rest() -> None:
    instrument = parse_catalogue({"BINANCE.ETHUSDT": ENTRY})["BINANCE.ETHUSDT"]
    quote = m.full_quote("BINANCE.ETHUSDT", m.external_static_quote(instrument), {})
    fields = quote["quotes"]["BINANCE.ETHUSDT"]
    assert fields["exchange_id"] == "BINANCE"
    assert fields["price_tick"] == 0.01 and fields["price_decs"] == 2
    assert fields["volume_multiple"] == "NAN" and fields["margin"] == "NAN"
    assert fields["expired"] is False
    assert set(m.QUOTE_MARKET_FIELDS) | set(m.QUOTE_STATIC_FIELDS) <= set(fields)
