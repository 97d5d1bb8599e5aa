"""Duplicate suppression: an LRU of recently seen event keys with a time-to-live (seed 003).

Keys are whatever identifies an event at its venue (trade id, or event time for streams that
have none). Time is passed in, never read here, so tests and replays are deterministic.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class Deduplicator:
    """`seen(key, now_ns)` is True for a key already seen within `ttl_ns`; holds ≤ `size` keys."""

    __slots__ = ("_entries", "checked", "duplicates", "size", "ttl_ns")

    def __init__(self, size: int = 10_000, ttl_ns: int = 300 * 1_000_000_000) -> None:
        if size <= 0:
            raise ValueError("size must be positive")
        self.size = size
        self.ttl_ns = ttl_ns
        self._entries: OrderedDict[Hashable, int] = OrderedDict()
        """Key → when it was first seen (re-armed after its TTL), least recently seen first."""
        self.checked = 0
        self.duplicates = 0

    def seen(self, key: Hashable, now_ns: int) -> bool:
        """One lookup for the common case, a new key: `setdefault` inserts it, and only when
        the length did not grow (the key was there) is it looked at again."""
        self.checked += 1
        entries = self._entries
        n = len(entries)
        entries.setdefault(key, now_ns)
        if len(entries) == n:
            return self._again(key, now_ns)
        if n >= self.size:
            entries.popitem(False)  # the least recently seen
        return False

    def _again(self, key: Hashable, now_ns: int) -> bool:
        """A key already held: a duplicate within the TTL (now the most recently seen), else
        re-armed at the young end as a new event."""
        entries = self._entries
        if now_ns - entries[key] <= self.ttl_ns:
            entries.move_to_end(key)
            self.duplicates += 1
            return True
        del entries[key]
        entries[key] = now_ns
        return False

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def ratio(self) -> float:
        """Fraction of checked events that were duplicates."""
        return self.duplicates / self.checked if self.checked else 0.0
