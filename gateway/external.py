"""External instruments (other venues, published by the feeds process) as the edge knows them.

The feeds process (services/feeds.py) publishes its instruments on its own ZeroMQ PUB and lists
them with its `instruments` control command. The edge keeps a copy of that catalogue, refreshed
periodically and on demand when a client names an id it does not know yet (a replay can add
instruments at any time). The feeds process may not run at all: then the catalogue stays empty
and nothing changes. External instruments can be watched and charted (the feeds process keeps
their K-lines and recent trades and answers `klines`/`recent_trades` like the marketdata
process), never traded: orders go through the local registry only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from gateway.async_control import AsyncControlClient
from ipc.control import ControlError

log = logging.getLogger(__name__)

REFRESH_S = 5.0
"""How often the catalogue is asked for while nobody needs it sooner."""

LAZY_REFRESH_S = 1.0
"""At most one on-demand refresh this often, so unknown ids cannot flood the feeds process."""

ASK_TIMEOUT_S = 0.5
QUERY_TIMEOUT_S = 3.0
"""A market query waits for the feeds loop thread (its own limit is 2 s)."""


@dataclass(frozen=True)
class ExternalInstrument:
    """One entry of the feeds catalogue: venue, the venue's symbol, tick and lot sizes, and
    the catalogue it came from, which answers for its market history (charts)."""

    id: str
    venue: str
    symbol: str
    price_tick: Decimal
    lot_size: Decimal
    catalogue: ExternalCatalogue | None = field(default=None, compare=False, repr=False)

    async def klines(self, period_seconds: int, count: int) -> list[dict[str, Any]]:
        """The newest `count` bars, oldest first, as the marketdata `klines` answer shapes them
        (the feeds process builds them from the venue's trades); raises ControlError."""
        return await self._ask("klines", period=period_seconds, count=count)

    async def recent_trades(self, count: int) -> list[dict[str, Any]]:
        """The newest trade prints, oldest first, as the marketdata `recent_trades` answer."""
        return await self._ask("recent_trades", count=count)

    async def _ask(self, command: str, **args: Any) -> list[dict[str, Any]]:
        if self.catalogue is None:
            raise ControlError(f"{self.id}: no feeds process to ask")
        return await self.catalogue.market_query(command, self.id, **args)


def parse_catalogue(
    data: Any, source: ExternalCatalogue | None = None
) -> dict[str, ExternalInstrument]:
    """The `instruments` answer (`{id: {venue, symbol, price_tick, lot_size}}`) from `source`;
    entries that are not of that shape are skipped and logged."""
    catalogue: dict[str, ExternalInstrument] = {}
    if not isinstance(data, Mapping):
        return catalogue
    for instrument_id, entry in data.items():
        try:
            catalogue[str(instrument_id)] = ExternalInstrument(
                str(instrument_id),
                str(entry["venue"]),
                str(entry["symbol"]),
                Decimal(str(entry["price_tick"])),
                Decimal(str(entry["lot_size"])),
                source,
            )
        except (KeyError, TypeError, InvalidOperation):
            log.warning("feeds catalogue: skipped a malformed entry for %r", instrument_id)
    return catalogue


class ExternalCatalogue:
    """The feeds process's catalogue, asked for over its control socket."""

    def __init__(
        self,
        client: AsyncControlClient,
        on_endpoint: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._on_endpoint = on_endpoint
        self._clock = clock
        self._instruments: dict[str, ExternalInstrument] = {}
        self._asked_at: float | None = None
        self._refreshing: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._endpoint_known = False
        self.refreshes = 0
        self.failures = 0

    def get(self, instrument_id: str) -> ExternalInstrument | None:
        return self._instruments.get(instrument_id)

    def __len__(self) -> int:
        return len(self._instruments)

    async def lookup(self, instrument_id: str) -> ExternalInstrument | None:
        """The instrument, asking the feeds process again if it is unknown and the last ask is
        older than LAZY_REFRESH_S."""
        known = self._instruments.get(instrument_id)
        if known is not None:
            return known
        if self._asked_at is None or self._clock() - self._asked_at >= LAZY_REFRESH_S:
            await self.refresh()
        return self._instruments.get(instrument_id)

    async def refresh(self) -> None:
        """Ask once; concurrent callers share the ask in flight."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.create_task(self._ask())
        await asyncio.shield(self._refreshing)

    async def _ask(self) -> None:
        self._asked_at = self._clock()
        try:
            data = await self._client.request("instruments", timeout=ASK_TIMEOUT_S)
            if not self._endpoint_known:
                endpoint = await self._client.request("endpoint", timeout=ASK_TIMEOUT_S)
                if isinstance(endpoint, str) and endpoint:
                    self._on_endpoint(endpoint)
                    self._endpoint_known = True
        except ControlError:  # no feeds process (ControlTimeout is a ControlError)
            self.failures += 1
            return
        self.refreshes += 1
        fresh = parse_catalogue(data, self)
        if fresh.keys() != self._instruments.keys():
            log.info("external instruments: %d from feeds", len(fresh))
        self._instruments = fresh

    async def market_query(self, command: str, instrument_id: str, **args: Any) -> Any:
        """One of the feeds process's market queries (`snapshot` answers a dict, `klines` and
        `recent_trades` a list of rows), in the marketdata process's shapes; raises
        ControlError (ControlTimeout when silent)."""
        answer = await self._client.request(
            command, timeout=QUERY_TIMEOUT_S, instrument=instrument_id, **args
        )
        if not isinstance(answer, dict if command == "snapshot" else list):
            raise ControlError(f"feeds {command}: unexpected answer {answer!r:.200}")
        return answer

    def start(self) -> None:
        """Refresh every REFRESH_S (call on the running loop)."""
        self._watcher = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(REFRESH_S)

    async def close(self) -> None:
        for task in (self._watcher, self._refreshing):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._client.close()

    def status(self) -> dict[str, Any]:
        return {
            "known": len(self._instruments),
            "refreshes": self.refreshes,
            "failures": self.failures,
        }
