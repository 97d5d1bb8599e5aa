"""Answers released in the order their requests arrived, whatever order they finish in.

`/ws` handles up to a window of one connection's requests at once (pipelining), yet the
protocol's answers (`order_response`, `query_response`, `error`, ...) carry no request id, so a
client matches them to its requests by order. Each request reserves a place when it is read;
an answer that finishes early waits until every earlier one has been released.
"""

from __future__ import annotations

from collections.abc import Callable


class InOrder:
    """Places numbered in arrival order; `fill` releases every completed answer at the head."""

    def __init__(self, release: Callable[[bytes], None]) -> None:
        self._release = release
        self._reserved = 0
        self._released = 0
        self._done: dict[int, bytes] = {}

    def __len__(self) -> int:
        """Places reserved and not yet released."""
        return self._reserved - self._released

    def reserve(self) -> int:
        place = self._reserved
        self._reserved += 1
        return place

    def fill(self, place: int, answer: bytes) -> None:
        if place != self._released:
            self._done[place] = answer
            return
        self._release(answer)
        self._released += 1
        done = self._done
        while self._released in done:
            self._release(done.pop(self._released))
            self._released += 1
