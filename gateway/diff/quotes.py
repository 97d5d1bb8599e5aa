"""The quotes of one gateway's DIFF connections: one market-data sink per symbol, not per client.

Every connection subscribed to a symbol gets the same quote patch; the board builds it (patch,
JSON, whole `rtn_data` frame) once per market update and hands that one `SharedPatch` to each
subscriber. It also keeps the symbol's latest quote while anyone watches it, so a new
subscriber's first quote needs no question to marketdata: the board's copy is the state as of
a point in the stream, and every update after that point reaches the subscriber. Only the
first subscriber of a symbol asks for a snapshot, and subscribers arriving meanwhile share
that one answer.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.instruments import Instrument
from gateway.backend import ExchangeBackend, MarketChannel, MarketUpdate, Unsubscribe
from gateway.diff import messages as m
from gateway.diff.session import SharedPatch

log = logging.getLogger(__name__)

QuoteSink = Callable[[SharedPatch], None]
Fields = dict[str, Any]


@dataclass
class _Symbol:
    stop: Unsubscribe
    sinks: dict[int, QuoteSink] = field(default_factory=dict)
    latest: Fields | None = None
    """The DIFF market fields of the last quote received (or of the first snapshot)."""
    fields: frozenset[str] = frozenset()


class QuoteBoard:
    """Subscribers per symbol over one backend market subscription each."""

    def __init__(self, backend: ExchangeBackend) -> None:
        self._backend = backend
        self._symbols: dict[str, _Symbol] = {}
        self._asking: dict[str, asyncio.Future[Fields]] = {}
        self._keys = itertools.count()
        self._static_of: tuple[Instrument, ...] = ()
        self._statics: list[SharedPatch] = []

    def statics(self, instruments: Sequence[Instrument]) -> list[SharedPatch]:
        """Every instrument's static quote fields (what a connection gets first), built once
        per instrument table (an instrument update replaces its object)."""
        if len(instruments) != len(self._static_of) or any(
            a is not b for a, b in zip(instruments, self._static_of, strict=False)
        ):
            self._static_of = tuple(instruments)
            self._statics = [_shared(i.id, m.static_quote(i)) for i in instruments]
        return self._statics

    @property
    def watched(self) -> int:
        return len(self._symbols)

    def latest(self, symbol: str) -> Fields | None:
        """The symbol's current market fields while someone watches it, else None."""
        entry = self._symbols.get(symbol)
        return None if entry is None else entry.latest

    async def market(self, symbol: str) -> Fields:
        """The symbol's market fields: the board's copy, else marketdata's snapshot (asked
        once however many callers wait for it); empty when nobody publishes it yet."""
        known = self.latest(symbol)
        if known is not None:
            return known
        asking = self._asking.get(symbol)
        if asking is None:
            asking = self._asking[symbol] = asyncio.ensure_future(self._snapshot(symbol))
            asking.add_done_callback(lambda _: self._asking.pop(symbol, None))
        snapshot = await asyncio.shield(asking)
        return self.latest(symbol) or snapshot

    def watch(self, symbol: str, sink: QuoteSink, market: Fields) -> Unsubscribe:
        """Send `sink` every quote update of `symbol` from now on; `market` (what the caller
        just showed its client) becomes the board's copy if it has none (an empty one, a
        snapshot that failed, does not: the next subscriber asks again)."""
        entry = self._symbols.get(symbol)
        if entry is None:
            entry = _Symbol(self._backend.subscribe_market(symbol, self._on_update))
            self._symbols[symbol] = entry
        if entry.latest is None and market:
            entry.latest = market
        key = next(self._keys)
        entry.sinks[key] = sink

        def stop() -> None:
            current = self._symbols.get(symbol)
            if current is None or current.sinks.pop(key, None) is None or current.sinks:
                return
            del self._symbols[symbol]
            current.stop()

        return stop

    async def _snapshot(self, symbol: str) -> Fields:
        answer = await self._backend.market_snapshot(symbol)
        return m.quote_fields(answer.data["quote"]) if answer.ok else {}

    def _on_update(self, update: MarketUpdate) -> None:
        if update.channel is not MarketChannel.QUOTE:
            return
        entry = self._symbols.get(update.instrument_id)
        if entry is None:
            return
        market = m.quote_fields(update.data)
        entry.latest = market
        shared = _shared(update.instrument_id, m.quote_values(market), entry)
        for sink in tuple(entry.sinks.values()):
            try:
                sink(shared)
            except Exception:
                log.exception("DIFF quote sink failed for %s", update.instrument_id)


def _shared(symbol: str, fields: dict[str, Any], entry: _Symbol | None = None) -> SharedPatch:
    """`quotes/<symbol>` setting `fields` (scalars), the key set reused from `entry`'s last."""
    keys = frozenset(fields)
    if entry is not None:
        if keys != entry.fields:
            entry.fields = keys
        keys = entry.fields
    return SharedPatch.of(symbol, keys, {"quotes": {symbol: fields}})
