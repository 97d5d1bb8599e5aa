import pytest

from gateway.feeds.dedup import Deduplicator

S = 1_000_000_000


def test_duplicates_within_ttl_are_seen() -> None:
    dedup = Deduplicator(size=10, ttl_ns=5 * S)
    assert not dedup.seen("a", 0)
    assert dedup.seen("a", 4 * S)
    assert not dedup.seen("b", 4 * S)
    assert dedup.duplicates == 1 and dedup.checked == 3
    assert dedup.ratio == pytest.approx(1 / 3)


def test_ttl_expiry_lets_a_key_through_again() -> None:
    dedup = Deduplicator(size=10, ttl_ns=5 * S)
    dedup.seen("a", 0)
    assert not dedup.seen("a", 6 * S)
    assert dedup.seen("a", 7 * S)  # re-armed at 6 s


def test_lru_evicts_the_least_recently_seen() -> None:
    dedup = Deduplicator(size=2, ttl_ns=100 * S)
    dedup.seen("a", 0)
    dedup.seen("b", 1)
    dedup.seen("a", 2)  # a is now the most recent
    dedup.seen("c", 3)  # evicts b
    assert len(dedup) == 2
    assert dedup.seen("a", 4)
    assert not dedup.seen("b", 5)


def test_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Deduplicator(size=0)
