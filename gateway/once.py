"""Build a push once however many connections receive it.

The market-data and event fan-outs call every subscriber's sink with the same update object in
a row; each sink asks `OncePer` for the encoded message, which is built for the first sink and
handed out (the same bytes) to the rest. One entry is enough because the fan-out finishes one
update before it starts the next; the entry holds the update, so its identity cannot be reused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class OncePer(Generic[K, V]):
    """`build(key)` memoized on the identity of the last key."""

    __slots__ = ("_build", "_key", "_value")

    def __init__(self, build: Callable[[K], V]) -> None:
        self._build = build
        self._key: K | None = None
        self._value: V | None = None

    def __call__(self, key: K) -> V:
        if key is not self._key:
            self._value = self._build(key)
            self._key = key
        return self._value  # type: ignore[return-value]
