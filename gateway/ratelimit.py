"""Token buckets per connection and per user (default 100 requests/s, code 9004).

A request must find a token in both its connection's bucket and its user's bucket, so that
opening more connections does not multiply a user's rate. Time is injected (monotonic seconds)
so tests step it by hand. Idle buckets are full buckets, so `prune` may drop them at any time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from engine.codes import ResultCode
from gateway.errors import Rejected

DEFAULT_RATE = 100.0
"""Requests per second per connection and per user (reference part 2 §3)."""

DEFAULT_BURST = 100.0
"""Tokens a full bucket holds: one second's worth."""


@dataclass
class TokenBucket:
    """`rate` tokens per second up to `burst`; starts full."""

    rate: float
    burst: float
    tokens: float
    updated: float

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Take `cost` tokens if there are enough (refilled up to `now`)."""
        if now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
        if self.tokens < cost:
            return False
        self.tokens -= cost
        return True

    def give_back(self, cost: float = 1.0) -> None:
        """Return tokens taken for a request another bucket then refused."""
        self.tokens = min(self.burst, self.tokens + cost)


class RateLimiter:
    """Per-connection and per-user buckets of the same rate and burst."""

    def __init__(
        self,
        rate: float = DEFAULT_RATE,
        burst: float = DEFAULT_BURST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate {rate} and burst {burst} must be positive (burst ≥ 1)")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._connections: dict[Any, TokenBucket] = {}
        self._users: dict[Any, TokenBucket] = {}
        self.refused = 0

    def check(self, connection: Hashable, user_id: int | None = None) -> None:
        """Spend one request of `connection` (and of `user_id` once known), or raise 9004."""
        now = self._clock()
        own = self._bucket(self._connections, connection, now)
        if not own.take(now):
            self._refuse(f"more than {self.rate:g} requests/s on this connection")
        if user_id is not None and not self._bucket(self._users, user_id, now).take(now):
            own.give_back()
            self._refuse(f"more than {self.rate:g} requests/s for this user")

    def forget_connection(self, connection: Hashable) -> None:
        self._connections.pop(connection, None)

    def prune(self) -> int:
        """Drop buckets that have refilled completely (idle keys cost nothing); returns how many."""
        now = self._clock()
        idle_after = self.burst / self.rate
        dropped = 0
        for table in (self._connections, self._users):
            for key in [k for k, b in table.items() if now - b.updated >= idle_after]:
                del table[key]
                dropped += 1
        return dropped

    def _bucket(self, table: dict[Any, TokenBucket], key: Hashable, now: float) -> TokenBucket:
        bucket = table.get(key)
        if bucket is None:
            bucket = table[key] = TokenBucket(self.rate, self.burst, self.burst, now)
        return bucket

    def _refuse(self, message: str) -> None:
        self.refused += 1
        raise Rejected(ResultCode.RATE_LIMITED, message)
