"""Reconnect delays: exponential with a cap and jitter, bounded or unlimited attempts.

Seed 000 waits 2^min(attempt, 5) s and gives up after a maximum; seed 003 starts at 1 s, caps at
60 s and allows 100 attempts (−1 = unlimited). The jitter's randomness is injected (a
`random.Random`) so a test can predict every delay.
"""

from __future__ import annotations

import random


class GaveUp(ConnectionError):
    """The connector used all its reconnect attempts."""


class Backoff:
    """`delay(attempt)` for attempt 1, 2, ...: initial·factor^(attempt−1), capped, ± jitter."""

    __slots__ = ("cap", "factor", "initial", "jitter", "max_attempts", "rng")

    def __init__(
        self,
        initial: float = 1.0,
        cap: float = 60.0,
        factor: float = 2.0,
        jitter: float = 0.2,
        max_attempts: int = 100,
        rng: random.Random | None = None,
    ) -> None:
        self.initial = initial
        self.cap = cap
        self.factor = factor
        self.jitter = jitter
        self.max_attempts = max_attempts
        self.rng = rng if rng is not None else random.Random()

    def exhausted(self, attempt: int) -> bool:
        return 0 <= self.max_attempts < attempt

    def delay(self, attempt: int) -> float:
        base = min(self.cap, self.initial * self.factor ** max(attempt - 1, 0))
        spread = base * self.jitter
        return max(0.0, base + self.rng.uniform(-spread, spread))
