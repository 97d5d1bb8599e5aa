"""A bounded per-connection send queue that never blocks the producer.

Producers (the event and market-data fan-out) call `put`, which returns at once. When the
connection's reader is slow the queue fills; market data is conflated by key (only the newest
book/ticker of an instrument is kept), then the lowest-priority messages are dropped oldest
first (market data, then account snapshots); answers, order status and trades are never
dropped: if they alone overflow the queue, the outbox closes and `disconnected` is set, so the
connection is closed and the client re-syncs by query after reconnecting.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import OrderedDict
from collections.abc import Callable, Hashable
from enum import IntEnum

DEFAULT_MAX_MESSAGES = 1024
DEFAULT_MAX_BYTES = 4 * 1024 * 1024


class Priority(IntEnum):
    """Send order and drop order: a lower value is sent first and dropped last."""

    NONE = 0
    ANSWER = 1
    TRADE = 2
    ACCOUNT = 3
    MARKET = 4


DROPPABLE = (Priority.MARKET, Priority.ACCOUNT)
"""Priorities that may be dropped, in the order they are dropped."""


class Outbox:
    """Per-priority FIFO queues of encoded JSON (a keyed message replaces its older copy in place).

    Messages are the UTF-8 bytes shared by every connection that gets them; sizes are counted
    in those bytes, so the limit also bounds characters. `notify` is called when a put finds
    the outbox empty and when it closes: the sender then takes everything in one go (one call
    per batch of puts, not one per message).
    """

    def __init__(
        self,
        max_messages: int = DEFAULT_MAX_MESSAGES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        notify: Callable[[], None] = lambda: None,
    ) -> None:
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._queues: dict[Priority, OrderedDict[Hashable, bytes]] = {
            p: OrderedDict() for p in Priority if p is not Priority.NONE
        }
        self._unique = itertools.count()
        self._count = 0
        self._bytes = 0
        self._notify = notify
        self.disconnected = asyncio.Event()
        self._closed = False
        self.dropped = 0
        self.conflated = 0
        self.overflowed = False

    def __len__(self) -> int:
        return self._count

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, message: bytes, priority: Priority, key: Hashable | None = None) -> bool:
        """Queue `message`; False if the outbox is closed (now or by this overflow)."""
        if self._closed:
            return False
        was_empty = not self._count
        queue = self._queues[priority]
        if key is None:
            queue[(None, next(self._unique))] = message
        else:
            old = queue.get(key)
            if old is not None:
                self._bytes -= len(old)
                self._count -= 1
                self.conflated += 1
            queue[key] = message
        self._count += 1
        self._bytes += len(message)
        if self._count > self.max_messages or self._bytes > self.max_bytes:
            self._shed()
            if self._closed:
                return False
        if was_empty:
            self._notify()
        return True

    def close(self) -> None:
        """Stop accepting messages and tell the sender, so it can finish."""
        if not self._closed:
            self._closed = True
            self.disconnected.set()
            self._notify()

    def take(self) -> list[bytes]:
        """Everything queued, most important first (empty if nothing is)."""
        batch: list[bytes] = []
        for queue in self._queues.values():
            batch.extend(queue.values())
            queue.clear()
        self._count = 0
        self._bytes = 0
        return batch

    def _over(self) -> bool:
        return self._count > self.max_messages or self._bytes > self.max_bytes

    def _shed(self) -> None:
        for priority in DROPPABLE:
            queue = self._queues[priority]
            while self._over() and queue:
                _, dropped = queue.popitem(last=False)
                self._count -= 1
                self._bytes -= len(dropped)
                self.dropped += 1
        if self._over():
            self.overflowed = True
            self.close()
