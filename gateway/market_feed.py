"""Market data into the gateway: the marketdata process's ZeroMQ PUB, fanned out to sinks.

The gateway subscribes to an instrument's topics (`md.<instrument>.`) only while some client
watches it, so a gateway with no market-data clients receives nothing. One receive task per
gateway turns each message into a `MarketUpdate` and calls every sink of that instrument; the
sinks only queue (outbox, DIFF session), so a slow client never holds up the others. ZeroMQ's
receive high-water mark bounds what waits here: a gateway that falls behind drops at the
publisher, never blocks it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import orjson
import zmq
import zmq.asyncio

from gateway.backend import MarketUpdate, Unsubscribe
from gateway.market_view import to_update

log = logging.getLogger(__name__)

RECEIVE_HWM = 100_000

Sink = Callable[[MarketUpdate], None]


class MarketFeed:
    """Sinks per instrument over one SUB socket; `subscribe` returns the way to stop."""

    def __init__(self, context: zmq.asyncio.Context, endpoints: list[str]) -> None:
        self._context = context
        self._endpoints = endpoints
        self._sinks: dict[str, list[Sink]] = {}
        self._socket: zmq.asyncio.Socket | None = None
        self._task: asyncio.Task[None] | None = None
        self.received = 0
        self.delivered = 0

    def subscribe(self, instrument_id: str, sink: Sink) -> Unsubscribe:
        socket = self._open()
        sinks = self._sinks.setdefault(instrument_id, [])
        if not sinks:
            socket.setsockopt(zmq.SUBSCRIBE, f"md.{instrument_id}.".encode())
        sinks.append(sink)

        def stop() -> None:
            current = self._sinks.get(instrument_id)
            if current is None or sink not in current:
                return
            current.remove(sink)
            if not current:
                del self._sinks[instrument_id]
                if self._socket is not None:
                    self._socket.setsockopt(zmq.UNSUBSCRIBE, f"md.{instrument_id}.".encode())

        return stop

    def connect(self, endpoint: str) -> None:
        """Also listen to `endpoint` (marketdata reports where it really bound)."""
        if endpoint not in self._endpoints:
            self._endpoints.append(endpoint)
            if self._socket is not None:
                self._socket.connect(endpoint)

    @property
    def watched(self) -> int:
        return len(self._sinks)

    def _open(self) -> zmq.asyncio.Socket:
        if self._socket is None:
            socket = self._context.socket(zmq.SUB)
            socket.setsockopt(zmq.LINGER, 0)
            socket.setsockopt(zmq.RCVHWM, RECEIVE_HWM)
            for endpoint in self._endpoints:
                socket.connect(endpoint)
            self._socket = socket
            self._task = asyncio.create_task(self._receive(socket))
        return self._socket

    async def _receive(self, socket: zmq.asyncio.Socket) -> None:
        while True:
            frames = await socket.recv_multipart()
            if len(frames) != 2:
                continue
            self.received += 1
            try:
                update = to_update(frames[0].decode(), orjson.loads(frames[1]))
            except (UnicodeDecodeError, orjson.JSONDecodeError):
                log.warning("market data: dropped a malformed message on %r", frames[0][:64])
                continue
            if update is None:
                continue
            for sink in tuple(self._sinks.get(update.instrument_id, ())):
                try:
                    sink(update)
                except Exception:
                    log.exception("market data sink failed for %s", update.instrument_id)
                self.delivered += 1

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None
