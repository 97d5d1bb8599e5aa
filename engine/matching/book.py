"""The order book data structure: price levels in time priority, per side, per instrument.

Each side keys its levels so that the best level has the smallest key: asks by `price`, bids by
`-price`. A taker therefore crosses when the opposite side's best key is `<= key_limit` (its
limit price, negated when it sells), one loop serving both sides. The levels live in a plain
dict by key; their order is a plain list of negated keys kept sorted with `bisect`, so the best
level is the list's last item: the frequent level changes happen at the best end (a level
emptied by trades, a new best price), where `list.pop()` and `insort` move nothing, and the
rare deep ones move pointers with one memmove (a SortedDict's Python-level insert and delete
cost several times more at book depths of hundreds of levels). A level is a deque in arrival
order; a cancel marks the order dead in O(1) and the deque drops dead entries when they reach
its front (or when they outnumber the live ones).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterator
from typing import Any, NamedTuple

from engine.enums import SelfTradePrevention, Side, TimeCondition, TradingPhase

EMPTY = 2**62
"""The best key of an empty side: larger than any key, so nothing crosses it."""

_COMPACT_SLACK = 16


class InvariantViolation(RuntimeError):
    """A broken book invariant: a bug, never a business outcome."""


ORDER_ID, ACCOUNT_ID, SIDE, PRICE, QTY, TIME_CONDITION, STP, TS, LEVEL = range(9)
"""Field positions of an Order; the hot path indexes with these."""


Order = list
"""A resting order: `[order_id, account_id, side, price, qty, time_condition, stp, ts, level]`.

A plain list because matching builds one per resting order, and CPython builds and indexes an
exact list (specialised BUILD_LIST and subscripts) several times faster than it runs a
slotted class's __init__. Index it with the constants above; `qty` is the open lots and
`level` the Level it rests in (so a cancel or an amend finds it without a lookup by price),
None once the order has left the book: a dead order no longer refers to its level, so the
two never form a reference cycle. Readers outside matching use named views:
`OrderBook.resting(order_id)` and `Level.live_orders()`.
"""


class RestingOrder(NamedTuple):
    """A read-only, named view of a resting order."""

    order_id: int
    account_id: int
    side: Side
    price: int
    qty: int
    time_condition: TimeCondition
    stp: SelfTradePrevention
    ts: int


class Level:
    """One price level: its queue in time priority, open lots, and how many queued orders are dead.

    The queue may hold dead orders (cancelled in place); `dead` counts them so that the live
    count is known without a counter to update on every fill and every resting order. A live
    order always has lots, so the level is empty exactly when `qty` is 0.
    """

    __slots__ = ("dead", "price", "qty", "queue")

    def __init__(self, price: int) -> None:
        self.price = price
        self.queue: deque[Order] = deque()
        self.qty = 0
        self.dead = 0

    @property
    def count(self) -> int:
        """The number of live orders."""
        return len(self.queue) - self.dead

    def live(self) -> Iterator[Order]:
        """The level's live orders in time priority (raw lists, for matching itself)."""
        return (order for order in self.queue if order[LEVEL])

    def live_orders(self) -> Iterator[RestingOrder]:
        """The level's live orders in time priority, as named views (for readers outside)."""
        return (RestingOrder(*order[:LEVEL]) for order in self.queue if order[LEVEL])

    def compact(self) -> None:
        """Drop the dead orders from the queue (when they outnumber the live ones)."""
        self.queue = deque(self.live())
        self.dead = 0

    def front(self) -> Order:
        """The first live order, dropping the dead ones before it (the level must not be empty)."""
        queue = self.queue
        while not queue[0][LEVEL]:
            queue.popleft()
            self.dead -= 1
        return queue[0]


class BookSide:
    """The levels of one side, keyed `sign × price` so the best level has the smallest key.

    `levels` maps a key to its Level; `ranks` holds the negated keys in ascending order (best
    level last) and `best` the best key (EMPTY when the side is empty).
    """

    __slots__ = ("best", "levels", "ranks", "side", "sign")

    def __init__(self, side: Side) -> None:
        self.side = side
        self.sign = 1 if side == Side.SELL else -1
        self.levels: dict[int, Level] = {}
        self.ranks: list[int] = []
        self.best = EMPTY

    def add(self, key: int, price: int) -> Level:
        """A new, empty level at `key` (which has none), ranked and maybe the new best."""
        level = self.levels[key] = Level(price)
        insort(self.ranks, -key)
        if key < self.best:
            self.best = key
        return level

    def remove(self, order: Order) -> Level:
        """Take a live order off its level (lazily); drops the level when it empties."""
        level: Level = order[LEVEL]
        order[LEVEL] = None
        level.qty -= order[QTY]
        if not level.qty:
            self.drop(self.sign * order[PRICE])
        else:
            level.dead += 1
            if 2 * level.dead > len(level.queue) + _COMPACT_SLACK:
                level.compact()
        return level

    def drop(self, key: int) -> None:
        """Delete an empty level and recompute the best key."""
        del self.levels[key]
        ranks = self.ranks
        if key == self.best:
            ranks.pop()
            self.best = -ranks[-1] if ranks else EMPTY
        else:
            del ranks[bisect_left(ranks, -key)]

    def keys(self) -> list[int]:
        """The level keys, best first."""
        return [-rank for rank in reversed(self.ranks)]

    def ordered(self) -> list[Level]:
        """The levels, best first."""
        levels = self.levels
        return [levels[-rank] for rank in reversed(self.ranks)]

    def best_price(self) -> int | None:
        return None if self.best == EMPTY else self.sign * self.best

    def depth(self, levels: int) -> tuple[tuple[int, int, int], ...]:
        """(price, qty, order count) of the best `levels` levels, best first."""
        best = self.ordered()[:levels]
        return tuple((level.price, level.qty, level.count) for level in best)


def _export_order(o: Order) -> list[int]:
    """One resting order as plain ints (no enum members, so any serializer takes it)."""
    return [
        o[ORDER_ID],
        o[ACCOUNT_ID],
        int(o[SIDE]),
        o[PRICE],
        o[QTY],
        int(o[TIME_CONDITION]),
        int(o[STP]),
        o[TS],
    ]


class BookSnapshot(NamedTuple):
    """A depth snapshot for market data: levels as (price, qty, order count), best first."""

    instrument_index: int
    phase: TradingPhase
    bids: tuple[tuple[int, int, int], ...]
    asks: tuple[tuple[int, int, int], ...]


class OrderBook:
    """One instrument's book: two sides, the live orders by id, and the trading phase."""

    __slots__ = ("asks", "bids", "instrument_index", "orders", "phase", "sides")

    def __init__(self, instrument_index: int) -> None:
        self.instrument_index = instrument_index
        self.bids = BookSide(Side.BUY)
        self.asks = BookSide(Side.SELL)
        self.sides = {Side.BUY: self.bids, Side.SELL: self.asks}
        self.orders: dict[int, Order] = {}
        self.phase = TradingPhase.CONTINUOUS

    @property
    def best_bid(self) -> int | None:
        return self.bids.best_price()

    @property
    def best_ask(self) -> int | None:
        return self.asks.best_price()

    def depth(self, levels: int = 5) -> BookSnapshot:
        return BookSnapshot(
            self.instrument_index, self.phase, self.bids.depth(levels), self.asks.depth(levels)
        )

    def resting(self, order_id: int) -> RestingOrder | None:
        """A named view of a resting order, or None when it is not in the book."""
        order = self.orders.get(order_id)
        return None if order is None else RestingOrder(*order[:LEVEL])

    def level_qty(self, side: Side, price: int) -> int:
        book_side = self.sides[side]
        level = book_side.levels.get(book_side.sign * price)
        return 0 if level is None else level.qty

    def queue(self, side: Side, price: int) -> list[int]:
        """Order ids resting at one price, in time priority (for tests and market data)."""
        book_side = self.sides[side]
        level = book_side.levels.get(book_side.sign * price)
        return [] if level is None else [order[ORDER_ID] for order in level.live()]

    def export(self) -> dict[str, Any]:
        """The phase and every live order (bids then asks, best level first, queue order)."""
        return {
            "index": self.instrument_index,
            "phase": int(self.phase),
            "orders": [
                _export_order(o)
                for book_side in (self.bids, self.asks)
                for level in book_side.ordered()
                for o in level.live()
            ],
        }

    @classmethod
    def load(cls, exported: dict[str, Any]) -> OrderBook:
        """Rebuild a book from `export()`; appending in export order restores time priority."""
        book = cls(exported["index"])
        book.phase = TradingPhase(exported["phase"])
        for order_id, account_id, side, price, qty, time_condition, stp, ts in exported["orders"]:
            book_side = book.sides[Side(side)]
            key = book_side.sign * price
            level = book_side.levels.get(key) or book_side.add(key, price)
            order = [
                order_id,
                account_id,
                book_side.side,
                price,
                qty,
                TimeCondition(time_condition),
                SelfTradePrevention(stp),
                ts,
                level,
            ]
            level.queue.append(order)
            level.qty += qty
            book.orders[order_id] = order
        return book

    def canonical(self) -> list[int]:
        """Every fact of the book as ints in a fixed order (for state_hash)."""
        out = [self.instrument_index, int(self.phase), len(self.orders)]
        for book_side in (self.bids, self.asks):
            out.append(len(book_side.levels))
            for level in book_side.ordered():
                out += (level.price, level.qty, level.count)
                for order in level.live():
                    out += (
                        order[ORDER_ID],
                        order[ACCOUNT_ID],
                        order[QTY],
                        int(order[TIME_CONDITION]),
                        int(order[STP]),
                        order[TS],
                    )
        return out

    def check_invariants(self) -> None:
        """Raise InvariantViolation unless levels, counts, best keys and the id index agree."""
        seen: set[int] = set()
        for book_side in (self.bids, self.asks):
            keys = sorted(book_side.levels)
            if book_side.keys() != keys:
                raise InvariantViolation(f"book {self.instrument_index}: level ranks are wrong")
            if book_side.best != (keys[0] if keys else EMPTY):
                raise InvariantViolation(f"book {self.instrument_index}: stale best key")
            for key, level in book_side.levels.items():
                live = list(level.live())
                if not live or len(live) != level.count:
                    raise InvariantViolation(f"level {level.price}: count {level.count} is wrong")
                if (
                    sum(order[QTY] for order in live) != level.qty
                    or key != book_side.sign * level.price
                ):
                    raise InvariantViolation(f"level {level.price}: qty or key is wrong")
                for order in live:
                    if (
                        order[LEVEL] is not level
                        or order[QTY] <= 0
                        or order[PRICE] != level.price
                        or order[SIDE] != book_side.side
                    ):
                        raise InvariantViolation(f"order {order[ORDER_ID]} is malformed")
                    if self.orders.get(order[ORDER_ID]) is not order or order[ORDER_ID] in seen:
                        raise InvariantViolation(f"order {order[ORDER_ID]} is not indexed once")
                    seen.add(order[ORDER_ID])
        if len(seen) != len(self.orders):
            raise InvariantViolation(f"book {self.instrument_index}: index holds dead orders")
        crossed = self.bids.best != EMPTY and self.asks.best != EMPTY
        if crossed and self.phase == TradingPhase.CONTINUOUS and -self.bids.best >= self.asks.best:
            raise InvariantViolation(f"book {self.instrument_index} is crossed")
