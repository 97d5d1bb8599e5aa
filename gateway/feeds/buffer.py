"""The bounded hand-off between a connector and its consumer, with a rate limit (seed 003).

A record is dropped — and counted — when the buffer is full or when the token bucket is empty;
a feed never grows memory without bound and never blocks its socket reader. Time is passed in.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from gateway.feeds.records import Record

_NS = 1_000_000_000


class BoundedBuffer:
    """A FIFO of at most `capacity` records accepting at most `rate` records per second
    (0 = no rate limit), with a burst of up to `rate` records."""

    __slots__ = (
        "_items",
        "_last_ns",
        "_tokens",
        "accepted",
        "capacity",
        "dropped_full",
        "dropped_rate",
        "rate",
    )

    def __init__(self, capacity: int = 1_000, rate: int = 1_000) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self.rate = rate
        self._items: deque[Record] = deque()
        self._tokens = float(rate)
        self._last_ns: int | None = None
        self.accepted = 0
        self.dropped_full = 0
        self.dropped_rate = 0

    def offer(self, record: Record, now_ns: int) -> bool:
        items = self._items
        if len(items) >= self.capacity:
            self.dropped_full += 1
            return False
        if self.rate and not self._token(now_ns):
            self.dropped_rate += 1
            return False
        items.append(record)
        self.accepted += 1
        return True

    def _token(self, now_ns: int) -> bool:
        """Refill the bucket for the time since the last offer and take one token, if any."""
        last = self._last_ns
        self._last_ns = now_ns
        if last is not None and now_ns > last:
            self._tokens = min(float(self.rate), self._tokens + (now_ns - last) * self.rate / _NS)
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def drain(self, limit: int = 0) -> list[Record]:
        """Take up to `limit` records (all when 0), oldest first."""
        items = self._items
        if limit <= 0 or limit >= len(items):  # the consumer's usual case: one copy in C
            taken = list(items)
            items.clear()
            return taken
        return [items.popleft() for _ in range(limit)]

    def __iter__(self) -> Iterator[Record]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def dropped(self) -> int:
        return self.dropped_full + self.dropped_rate

    @property
    def fill(self) -> float:
        """Fraction of capacity in use (the health line's "Buffer %")."""
        return len(self._items) / self.capacity
