import random

import pytest

from gateway.feeds.backoff import Backoff


def test_delays_grow_exponentially_and_cap() -> None:
    backoff = Backoff(initial=1.0, cap=60.0, jitter=0.0, rng=random.Random(1))
    assert [backoff.delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_jitter_is_bounded_and_deterministic_with_a_seeded_rng() -> None:
    first = Backoff(initial=1.0, cap=60.0, jitter=0.2, rng=random.Random(42))
    second = Backoff(initial=1.0, cap=60.0, jitter=0.2, rng=random.Random(42))
    delays = [first.delay(n) for n in range(1, 10)]
    assert delays == [second.delay(n) for n in range(1, 10)]
    for n, delay in enumerate(delays, start=1):
        base = min(60.0, 2.0 ** (n - 1))
        assert base * 0.8 <= delay <= base * 1.2
    assert len(set(delays)) == len(delays)  # the jitter really moves them


@pytest.mark.parametrize(
    ("max_attempts", "attempt", "exhausted"),
    [(3, 3, False), (3, 4, True), (-1, 10**6, False), (0, 1, True)],
)
def test_bounded_or_unlimited_attempts(max_attempts: int, attempt: int, exhausted: bool) -> None:
    assert Backoff(max_attempts=max_attempts).exhausted(attempt) is exhausted
