"""Local order books kept consistent with each venue's sequence rules.

A `BookKeeper` owns one instrument's book. Diffs that arrive before a snapshot (or after a gap)
are buffered; a snapshot resets the book and replays the buffer through the venue's
`SequenceRule`; a diff that breaks the rule marks the book out of sync and asks for a resync
(a REST snapshot, or a resubscribe on venues whose snapshots come over the socket).
"""

from __future__ import annotations

from collections import deque
from enum import IntEnum

from gateway.feeds.records import BookUpdate, Level


class Verdict(IntEnum):
    NONE = 0
    APPLY = 1
    STALE = 2  # already reflected in the book: drop silently (counted)
    GAP = 3  # something was missed: resync


class SequenceRule:
    """How a venue's diffs chain; the default accepts everything (venues without sequence ids)."""

    def first(self, update: BookUpdate, last_id: int) -> Verdict:
        """The first diff after a snapshot whose id is `last_id`."""
        return Verdict.APPLY

    def next(self, update: BookUpdate, last_id: int) -> Verdict:
        """Every later diff; `last_id` is the previous diff's last id."""
        return Verdict.APPLY


class SpotUpdateIds(SequenceRule):
    """Binance spot (and Gate.io v4): drop u <= lastUpdateId; the first diff must satisfy
    U <= lastUpdateId+1 <= u; then each U == previous u + 1."""

    def first(self, update: BookUpdate, last_id: int) -> Verdict:
        if update.last_id <= last_id:
            return Verdict.STALE
        return Verdict.APPLY if update.first_id <= last_id + 1 else Verdict.GAP

    def next(self, update: BookUpdate, last_id: int) -> Verdict:
        if update.last_id <= last_id:
            return Verdict.STALE
        return Verdict.APPLY if update.first_id == last_id + 1 else Verdict.GAP


class FuturesUpdateIds(SequenceRule):
    """Binance USD-M futures: drop u < lastUpdateId; the first diff must satisfy
    U <= lastUpdateId <= u; then each pu == previous u."""

    def first(self, update: BookUpdate, last_id: int) -> Verdict:
        if update.last_id < last_id:
            return Verdict.STALE
        return Verdict.APPLY if update.first_id <= last_id else Verdict.GAP

    def next(self, update: BookUpdate, last_id: int) -> Verdict:
        if update.prev_id == last_id:
            return Verdict.APPLY
        return Verdict.STALE if update.last_id <= last_id else Verdict.GAP


class PrevIdChain(SequenceRule):
    """OKX v5 books: each diff names the previous one (prevSeqId == previous seqId)."""

    def first(self, update: BookUpdate, last_id: int) -> Verdict:
        return self.next(update, last_id)

    def next(self, update: BookUpdate, last_id: int) -> Verdict:
        if update.prev_id == last_id:
            return Verdict.APPLY
        return Verdict.STALE if update.last_id <= last_id else Verdict.GAP


class Contiguous(SequenceRule):
    """One sequence number per message, incremented by one (Coinbase's product sequence)."""

    def first(self, update: BookUpdate, last_id: int) -> Verdict:
        if update.last_id <= last_id:
            return Verdict.STALE
        return Verdict.APPLY

    def next(self, update: BookUpdate, last_id: int) -> Verdict:
        if update.last_id <= last_id:
            return Verdict.STALE
        return Verdict.APPLY if update.first_id == last_id + 1 else Verdict.GAP


class OrderBook:
    """Price ticks → quantity lots per side; sorting happens only when someone asks for depth."""

    __slots__ = ("asks", "bids")

    def __init__(self) -> None:
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()

    def apply(self, bids: list[Level], asks: list[Level]) -> None:
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for price, qty in levels:
                if qty:
                    side[price] = qty
                else:
                    side.pop(price, None)  # removing an absent level is normal (Binance docs)

    def best_bid(self) -> Level | None:
        if not self.bids:
            return None
        price = max(self.bids)
        return price, self.bids[price]

    def best_ask(self) -> Level | None:
        if not self.asks:
            return None
        price = min(self.asks)
        return price, self.asks[price]

    def depth(self, levels: int) -> tuple[list[Level], list[Level]]:
        bids = sorted(self.bids.items(), reverse=True)[:levels]
        asks = sorted(self.asks.items())[:levels]
        return bids, asks

    def crossed(self) -> bool:
        bid, ask = self.best_bid(), self.best_ask()
        return bid is not None and ask is not None and bid[0] >= ask[0]


class BookKeeper:
    """One instrument's book and its sync state; returns what to publish and when to resync."""

    __slots__ = (
        "_first",
        "_pending",
        "book",
        "gaps",
        "last_id",
        "max_pending",
        "overflowed",
        "rule",
        "stale",
        "synced",
    )

    def __init__(self, rule: SequenceRule, max_pending: int = 10_000) -> None:
        self.rule = rule
        self.book = OrderBook()
        self.synced = False
        self.last_id = 0
        self._first = True
        self._pending: deque[BookUpdate] = deque()
        self.max_pending = max_pending
        self.gaps = 0
        self.stale = 0
        self.overflowed = 0

    def on_update(self, update: BookUpdate) -> tuple[list[BookUpdate], bool]:
        """Feed one snapshot or diff; returns (updates applied, resync needed)."""
        if update.snapshot:
            return self._on_snapshot(update)
        if not self.synced:
            self._buffer(update)
            return [], False
        verdict = self._check(update)
        if verdict is Verdict.APPLY:
            self._apply(update)
            return [update], False
        if verdict is Verdict.STALE:
            self.stale += 1
            return [], False
        self._lose_sync(update)
        return [], True

    def pending(self) -> int:
        return len(self._pending)

    def invalidate(self) -> None:
        """The venue says our book is wrong (a checksum mismatch): out of sync until a snapshot."""
        self.gaps += 1
        self.reset()

    def reset(self) -> None:
        """Out of sync until the next snapshot, without blame (a new connection starts over)."""
        self.synced = False
        self._pending.clear()

    def _on_snapshot(self, snapshot: BookUpdate) -> tuple[list[BookUpdate], bool]:
        self.book.clear()
        self.book.apply(snapshot.bids, snapshot.asks)
        self.last_id = snapshot.last_id
        self.synced = True
        self._first = True
        applied = [snapshot]
        while self._pending:
            update = self._pending.popleft()
            verdict = self._check(update)
            if verdict is Verdict.APPLY:
                self._apply(update)
                applied.append(update)
            elif verdict is Verdict.STALE:
                self.stale += 1
            else:
                self._lose_sync(update)
                return applied, True
        return applied, False

    def _check(self, update: BookUpdate) -> Verdict:
        if self._first:
            return self.rule.first(update, self.last_id)
        return self.rule.next(update, self.last_id)

    def _apply(self, update: BookUpdate) -> None:
        self.book.apply(update.bids, update.asks)
        self.last_id = update.last_id
        self._first = False

    def _lose_sync(self, update: BookUpdate) -> None:
        """Keep the offending diff and everything after it: the next snapshot may cover them."""
        self.gaps += 1
        self.synced = False
        self._pending.appendleft(update)

    def _buffer(self, update: BookUpdate) -> None:
        if len(self._pending) >= self.max_pending:
            self._pending.popleft()
            self.overflowed += 1
        self._pending.append(update)
