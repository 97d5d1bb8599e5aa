"""Running a connector against a `VenueServer` with bounded waits, for the feed tests."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

from gateway.feeds.config import FeedConfig
from gateway.feeds.connector import Connector
from gateway.feeds.records import Record
from gateway.feeds.venues import VENUES
from tests.feeds.server import VenueServer

TIME_SCALE = 1000
"""Backoff waits run this many times faster than configured (the delays are still recorded)."""


async def scaled_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds / TIME_SCALE)


def make_connector(
    venue: str, server: VenueServer | None, seed: int = 7, **overrides: Any
) -> Connector:
    from tests.feeds.fixtures import SYMBOL

    settings: dict[str, Any] = {
        "symbols": [SYMBOL[venue]],
        "buffer_rate": 0,
        "buffer_capacity": 10_000,
        "ping_interval": 5.0,
        "idle_timeout": 5.0,
        "rest_poll_interval": 0.5,
        "max_attempts": 5,
    }
    if server is not None:
        settings.update(ws_url=server.ws_url, rest_url=server.rest_url)
    settings.update(overrides)
    config = FeedConfig(venue, **settings)
    return VENUES[venue](config, rng=random.Random(seed), sleep=scaled_sleep)


async def run_until(
    connector: Connector, done: Callable[[list[Record]], bool], timeout: float = 10.0
) -> list[Record]:
    """Run until `done(records taken so far)`; always stops the connector and awaits it."""
    records: list[Record] = []
    task = asyncio.create_task(connector.run())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while True:
            records += connector.take()
            if done(records):
                return records
            if task.done():
                task.result()
                raise AssertionError(f"connector ended early: {connector.stats()}")
            if loop.time() > deadline:
                raise AssertionError(f"timed out; stats={connector.stats()}")
            await asyncio.sleep(0.01)
    finally:
        connector.stop()
        try:
            await asyncio.wait_for(task, 5.0)
        except TimeoutError:
            task.cancel()


def run(coroutine: Any, timeout: float = 30.0) -> Any:
    """asyncio.run with an overall bound, so no feed test can hang."""
    return asyncio.run(asyncio.wait_for(coroutine, timeout))
