"""Token buckets per connection and per user, on a hand-stepped clock."""

import pytest

from engine.codes import ResultCode
from gateway.errors import Rejected
from gateway.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _allowed(limiter: RateLimiter, connection: object, user: int | None, n: int) -> int:
    passed = 0
    for _ in range(n):
        try:
            limiter.check(connection, user)
            passed += 1
        except Rejected as refused:
            assert refused.code is ResultCode.RATE_LIMITED
    return passed


def test_default_is_100_per_second_then_9004() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    assert _allowed(limiter, "c1", None, 150) == 100
    assert limiter.refused == 50
    clock.now += 0.5
    assert _allowed(limiter, "c1", None, 100) == 50


def test_tokens_refill_up_to_the_burst_only() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=10, burst=5, clock=clock)
    assert _allowed(limiter, "c", None, 5) == 5
    clock.now += 100
    assert _allowed(limiter, "c", None, 10) == 5


def test_user_limit_spans_connections() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=10, burst=10, clock=clock)
    assert _allowed(limiter, "c1", 7, 6) == 6
    assert _allowed(limiter, "c2", 7, 6) == 4
    assert _allowed(limiter, "c3", 8, 10) == 10, "another user has its own bucket"


def test_a_user_refusal_does_not_cost_the_connection_a_token() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=10, burst=10, clock=clock)
    assert _allowed(limiter, "c1", 7, 10) == 10
    assert _allowed(limiter, "c2", 7, 5) == 0
    assert _allowed(limiter, "c2", None, 10) == 10


def test_prune_drops_only_refilled_buckets() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=10, burst=10, clock=clock)
    limiter.check("idle", 1)
    clock.now += 0.5
    limiter.check("busy", 2)
    clock.now += 0.6
    assert limiter.prune() == 2
    with pytest.raises(ValueError):
        RateLimiter(rate=0)
