"""The matching engine: applies matching commands to the books and returns the events, in order.

Deterministic and pure: the same commands give the same events and the same `state_hash()`.
This is the hot path, so the handlers bind locals, compare ints and build their NamedTuple
events with the C-level `new_*` constructors of engine.matching.events;
there is no per-order logging. The rules are written out in docs/matching.md.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Callable
from typing import Any

from engine.codes import ResultCode
from engine.enums import (
    CancelReason,
    InstrumentStatus,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeCondition,
    TradingPhase,
    VolumeCondition,
)
from engine.instruments import InstrumentRegistry
from engine.matching.auction import select_price
from engine.matching.book import (
    ACCOUNT_ID,
    LEVEL,
    ORDER_ID,
    QTY,
    SIDE,
    TIME_CONDITION,
    BookSide,
    InvariantViolation,
    OrderBook,
)
from engine.matching.commands import (
    AmendOrder,
    CancelOrder,
    ExpireOrders,
    PlaceOrder,
    RunAuction,
    SetPhase,
    UpsertInstrument,
    new_cancel_order,
)
from engine.matching.events import (
    new_amend_rejected,
    new_auction_uncrossed,
    new_book_changed,
    new_cancel_rejected,
    new_order_accepted,
    new_order_amended,
    new_order_canceled,
    new_order_rejected,
    new_phase_changed,
    new_trade_executed,
)

_OK = ResultCode.OK
_BAD_ORDER_PARAMETER = ResultCode.BAD_ORDER_PARAMETER
_BUY = Side.BUY
_SELL = Side.SELL
_LIMIT = OrderType.LIMIT
_MARKET = OrderType.MARKET
_GFD = TimeCondition.GFD
_GTC = TimeCondition.GTC
_IOC = TimeCondition.IOC
_TIME_CONDITIONS = frozenset(TimeCondition) - {TimeCondition.NONE}
_ANY = VolumeCondition.ANY
_ALL = VolumeCondition.ALL
_MIN = VolumeCondition.MIN
_STP_DEFAULT = SelfTradePrevention.NONE
_ALLOW = SelfTradePrevention.ALLOW
_CANCEL_TAKER = SelfTradePrevention.CANCEL_TAKER
_CANCEL_MAKER = SelfTradePrevention.CANCEL_MAKER
_STP_MODES = frozenset(SelfTradePrevention)
_TRADING = InstrumentStatus.TRADING
_CONTINUOUS = TradingPhase.CONTINUOUS
_AUCTION = TradingPhase.AUCTION
_SELF_TRADE = CancelReason.SELF_TRADE
_IOC_REMAINDER = CancelReason.IOC_REMAINDER

Event = Any
"""One of the NamedTuples of engine.matching.events (MatchingEvent)."""


class MatchingEngine:
    """Books for every instrument of a registry; `apply(command)` returns that command's events.

    Trade ids are `seq × shards + shard` with `seq` counting from 1 in this engine, so they
    increase monotonically here and never collide with another shard's.
    """

    __slots__ = (
        "_default_stp",
        "_instrument_list",
        "_last_order_id",
        "_shard",
        "_shards",
        "_trade_id",
        "books",
        "handlers",
        "instruments",
    )

    def __init__(
        self,
        instruments: InstrumentRegistry,
        shard: int = 0,
        shards: int = 1,
        default_stp: SelfTradePrevention = SelfTradePrevention.CANCEL_TAKER,
    ) -> None:
        if not 0 <= shard < shards:
            raise ValueError(f"shard {shard} is not in 0..{shards - 1}")
        if default_stp == SelfTradePrevention.NONE:
            raise ValueError("the default self-trade prevention must be a real mode")
        self.instruments = instruments
        self._instrument_list = instruments.as_list()
        self.books: dict[int, OrderBook] = {i.index: OrderBook(i.index) for i in instruments}
        self._shard = shard
        self._shards = shards
        self._default_stp = default_stp
        self._trade_id = shard
        self._last_order_id = 0
        self.handlers: dict[type, Callable[[Any], list[Event]]] = {
            PlaceOrder: self._place,
            CancelOrder: self._cancel,
            AmendOrder: self._amend,
            ExpireOrders: self._expire,
            SetPhase: self._set_phase,
            RunAuction: self._run_auction,
            UpsertInstrument: self._upsert_instrument,
        }

    @property
    def last_order_id(self) -> int:
        return self._last_order_id

    @property
    def last_trade_id(self) -> int:
        """The last trade id issued (0 before the first trade)."""
        return self._trade_id if self._trade_id != self._shard else 0

    @property
    def _trade_seq(self) -> int:
        """Trades issued so far: `_trade_id` is the last id, `seq × shards + shard`."""
        return (self._trade_id - self._shard) // self._shards

    def apply(self, command: Any) -> list[Event]:
        """Apply one command; unknown command types are bugs (KeyError)."""
        return self.handlers[type(command)](command)

    def book(self, instrument_index: int) -> OrderBook:
        return self.books[instrument_index]

    # -- orders -------------------------------------------------------------------------------

    def _place(self, command: PlaceOrder) -> list[Event]:
        # `command + ()` is an exact tuple (copied in C), which unpacks in one specialised step;
        # a NamedTuple (and `(*command,)`) unpacks through the iterator protocol, ~220
        # instructions more here.
        (order_id, account_id, index, side, price, qty, order_type, time_condition,
         volume_condition, min_qty, ts, stp) = command + ()  # fmt: skip  # noqa: RUF005
        if order_id <= self._last_order_id:
            return [
                new_order_rejected((order_id, account_id, index, ResultCode.ORDER_BOOK_ERROR, ts))
            ]
        self._last_order_id = order_id
        book = self.books.get(index)
        if book is None:
            return [
                new_order_rejected((order_id, account_id, index, ResultCode.NO_SUCH_INSTRUMENT, ts))
            ]
        instrument = self._instrument_list[index]
        if instrument.status is not _TRADING:
            return [
                new_order_rejected(
                    (order_id, account_id, index, ResultCode.INSTRUMENT_NOT_TRADING, ts)
                )
            ]
        # A plain LIMIT order (enum members, the engine's own STP) is classified by identity
        # tests: an IntEnum `==` or a dict keyed by the fields costs several times more.
        if (
            order_type is _LIMIT
            and volume_condition is _ANY
            and stp is _STP_DEFAULT
            and (side is _BUY or side is _SELL)
            and (time_condition is _GFD or time_condition is _IOC or time_condition is _GTC)
        ):
            is_buy = side is _BUY
            is_ioc = time_condition is _IOC
            any_volume = True
            stp = self._default_stp
        else:
            flags = _classify(order_type, side, time_condition, volume_condition, min_qty, qty, stp)
            if flags is None:
                return [new_order_rejected((order_id, account_id, index, _BAD_ORDER_PARAMETER, ts))]
            is_buy, is_ioc, is_market, any_volume = flags
            side = _BUY if is_buy else _SELL  # a member from here on: the book tests `is _BUY`
            if is_market:
                price = instrument.upper_limit if is_buy else instrument.lower_limit
                time_condition = _IOC
            stp = stp or self._default_stp
        if book.phase is _AUCTION and (is_ioc or not any_volume):
            return [new_order_rejected((order_id, account_id, index, _BAD_ORDER_PARAMETER, ts))]
        if (
            qty < instrument.min_qty
            or qty > instrument.max_qty
            or price < instrument.lower_limit
            or price > instrument.upper_limit
        ):
            code = ResultCode.PRICE_OUT_OF_BAND
            if not instrument.min_qty <= qty <= instrument.max_qty or price <= 0:
                code = _BAD_ORDER_PARAMETER
            return [new_order_rejected((order_id, account_id, index, code, ts))]
        events: list[Event] = [
            new_order_accepted((order_id, account_id, index, side, price, qty, ts))
        ]
        if is_buy:
            opposite, own, key_limit, key = book.asks, book.bids, price, -price
        else:
            opposite, own, key, key_limit = book.bids, book.asks, price, -price
        if not any_volume:
            need = qty if volume_condition == _ALL else min_qty
            if _available(opposite, key_limit, account_id, stp, need) < need:
                reason = (
                    CancelReason.FOK_UNFILLED
                    if volume_condition == _ALL
                    else CancelReason.MIN_UNFILLED
                )
                events.append(new_order_canceled((order_id, account_id, index, reason, qty, ts)))
                return events
        # The order enters the book: match as the taker, then rest or cancel what is left.
        # Written out here and in _amend, because a shared method would cost a call (~700
        # instructions, 5% of a plain order) on every order; the taking is shared (_take).
        # An Order list is made only for what rests: takers that fill or die never allocate one.
        if opposite.best <= key_limit and book.phase is _CONTINUOUS:
            qty = self._take(
                book, opposite, key_limit, order_id, account_id, side, qty, stp, ts, events
            )
            if not qty:
                return events
        if is_ioc:
            events.append(
                new_order_canceled((order_id, account_id, index, _IOC_REMAINDER, qty, ts))
            )
            return events
        level = own.levels.get(key) or own.add(key, price)
        order = [order_id, account_id, side, price, qty, time_condition, stp, ts, level]
        level.queue.append(order)
        level.qty += qty
        book.orders[order_id] = order
        events.append(new_book_changed((index, side, price, level.qty, ts)))
        return events

    def _take(
        self,
        book: OrderBook,
        opposite: BookSide,
        key_limit: int,
        taker_id: int,
        account_id: int,
        side: Side,
        remaining: int,
        stp: SelfTradePrevention,
        ts: int,
        events: list[Event],
    ) -> int:
        """Fill a taker against `opposite` up to `key_limit`; returns the lots left to it.

        When self-trade prevention stops the taker, its OrderCanceled (SELF_TRADE) for the lots
        left is appended here and the result is 0: nothing of it may rest.
        """
        levels = opposite.levels
        orders = book.orders
        index = book.instrument_index
        shards = self._shards
        trade_id = self._trade_id
        blocked = False
        while True:  # the caller saw the best opposite level cross
            key = opposite.best
            level = levels[key]
            queue = level.queue
            price = level.price
            lots = level_lots = level.qty
            while True:
                maker = queue[0]
                maker_id, maker_account, _, _, left, _, _, _, resting = maker
                if resting is None:
                    queue.popleft()
                    level.dead -= 1
                    continue
                if maker_account == account_id and stp != _ALLOW:
                    if stp != _CANCEL_TAKER:
                        queue.popleft()
                        maker[LEVEL] = None
                        lots -= left
                        del orders[maker_id]
                        events.append(
                            new_order_canceled((maker_id, account_id, index, _SELF_TRADE, left, ts))
                        )
                    if stp != _CANCEL_MAKER:
                        blocked = True
                        break
                    if not lots:
                        break
                    continue
                trade_id += shards
                if left > remaining:  # the taker is filled, the maker keeps the rest
                    left -= remaining
                    maker[QTY] = left
                    lots -= remaining
                    events.append(
                        new_trade_executed(
                            (trade_id, index, price, remaining, taker_id, account_id, side,
                             maker_id, maker_account, 0, left, ts)
                        )
                    )  # fmt: skip
                    remaining = 0
                    break
                remaining -= left
                lots -= left
                events.append(
                    new_trade_executed(
                        (trade_id, index, price, left, taker_id, account_id, side, maker_id,
                         maker_account, remaining, 0, ts)
                    )
                )  # fmt: skip
                maker[LEVEL] = None
                queue.popleft()
                del orders[maker_id]
                if not lots or not remaining:
                    break
            level.qty = lots
            if lots != level_lots:
                events.append(new_book_changed((index, opposite.side, price, lots, ts)))
            if not lots:
                opposite.drop(key)
            if blocked or not remaining or opposite.best > key_limit:
                break
        self._trade_id = trade_id
        if blocked:
            events.append(
                new_order_canceled((taker_id, account_id, index, _SELF_TRADE, remaining, ts))
            )
            return 0
        return remaining

    def _cancel(self, command: CancelOrder) -> list[Event]:
        order_id, index, ts, reason = command + ()  # noqa: RUF005 (exact tuple: see _place)
        try:
            book = self.books[index]
            order = book.orders.pop(order_id)
        except KeyError:
            return [new_cancel_rejected((order_id, index, ResultCode.ORDER_NOT_FOUND, ts))]
        _, account_id, side, price, qty, _, _, _, _ = order
        level = (book.bids if side is _BUY else book.asks).remove(order)
        return [
            new_order_canceled((order_id, account_id, index, reason, qty, ts)),
            new_book_changed((index, side, price, level.qty, ts)),
        ]

    def _cancel_all(
        self, book: OrderBook, order_ids: list[int], reason: CancelReason, ts: int
    ) -> list[Event]:
        """Cancel these resting orders of `book` in this order, as CancelOrder commands would."""
        events: list[Event] = []
        index = book.instrument_index
        for order_id in order_ids:
            events += self._cancel(new_cancel_order((order_id, index, ts, reason)))
        return events

    def _amend(self, command: AmendOrder) -> list[Event]:
        order_id, index, price, qty, ts = command + ()  # noqa: RUF005 (exact tuple: see _place)
        try:
            book = self.books[index]
            order = book.orders[order_id]
        except KeyError:
            return [new_amend_rejected((order_id, index, ResultCode.ORDER_NOT_FOUND, ts))]
        instrument = self._instrument_list[index]
        if (
            instrument.status is not _TRADING
            or qty <= 0
            or qty > instrument.max_qty
            or price < instrument.lower_limit
            or price > instrument.upper_limit
        ):
            code = ResultCode.PRICE_OUT_OF_BAND
            if instrument.status is not _TRADING:
                code = ResultCode.INSTRUMENT_NOT_TRADING
            elif qty <= 0 or qty > instrument.max_qty or price <= 0:
                code = _BAD_ORDER_PARAMETER
            return [new_amend_rejected((order_id, index, code, ts))]
        _, account_id, side, old_price, old_qty, time_condition, stp, _, level = order
        amended = new_order_amended(
            (order_id, account_id, index, price, qty, old_price, old_qty, ts)
        )
        if price == old_price and qty <= old_qty:
            level.qty -= old_qty - qty
            order[QTY] = qty
            return [amended, new_book_changed((index, side, price, level.qty, ts))]
        if side is _BUY:
            own, opposite, key_limit, key = book.bids, book.asks, price, -price
        else:
            own, opposite, key, key_limit = book.asks, book.bids, price, -price
        del book.orders[order_id]
        level = own.remove(order)
        events = [amended, new_book_changed((index, side, old_price, level.qty, ts))]
        # Enters the book as in _place (written out there too: see the note there).
        if opposite.best <= key_limit and book.phase is _CONTINUOUS:
            qty = self._take(
                book, opposite, key_limit, order_id, account_id, side, qty, stp, ts, events
            )
            if not qty:
                return events
        level = own.levels.get(key) or own.add(key, price)
        order = [order_id, account_id, side, price, qty, time_condition, stp, ts, level]
        level.queue.append(order)
        level.qty += qty
        book.orders[order_id] = order
        events.append(new_book_changed((index, side, price, level.qty, ts)))
        return events

    def _expire(self, command: ExpireOrders) -> list[Event]:
        """Cancel GFD orders with END_OF_DAY, book by book, oldest order first."""
        index, ts = command
        books = [self.books[index]] if index is not None else [
            self.books[i] for i in sorted(self.books)
        ]  # fmt: skip
        events: list[Event] = []
        for book in books:
            expired = sorted(o for o, order in book.orders.items() if order[TIME_CONDITION] == _GFD)
            events += self._cancel_all(book, expired, CancelReason.END_OF_DAY, ts)
        return events

    # -- phases and auctions ------------------------------------------------------------------

    def _set_phase(self, command: SetPhase) -> list[Event]:
        index, phase, ts = command
        book = self.books[index]
        if phase == _CONTINUOUS and book.phase == _AUCTION:
            return self._run_auction(RunAuction(index, ts))
        if phase not in (_CONTINUOUS, _AUCTION):
            raise ValueError(f"phase {phase!r} cannot be set")
        book.phase = TradingPhase(phase)
        return [new_phase_changed((index, phase, ts))]

    def _run_auction(self, command: RunAuction) -> list[Event]:
        """Uncross at the auction price: every trade at that price, in price-time priority."""
        index, ts = command
        book = self.books[index]
        instrument = self.instruments.by_index(index)
        bids, asks = book.bids, book.asks
        result = select_price(
            [(level.price, level.qty) for level in bids.ordered()],
            [(level.price, level.qty) for level in asks.ordered()],
            instrument.pre_close or instrument.pre_settlement,
        )
        events: list[Event] = []
        touched: dict[tuple[Side, int], None] = {}
        remaining = result.qty
        while remaining:
            bid_level = bids.levels[bids.best]
            ask_level = asks.levels[asks.best]
            buy = bid_level.front()
            sell = ask_level.front()
            fill = min(buy[QTY], sell[QTY], remaining)
            remaining -= fill
            taker, maker = (buy, sell) if buy[ORDER_ID] > sell[ORDER_ID] else (sell, buy)
            for order, book_side, level in ((buy, bids, bid_level), (sell, asks, ask_level)):
                order[QTY] -= fill
                level.qty -= fill
                touched[(book_side.side, level.price)] = None
                if not order[QTY]:
                    order[LEVEL] = None
                    level.queue.popleft()
                    del book.orders[order[ORDER_ID]]
                    if not level.qty:
                        book_side.drop(book_side.best)
            self._trade_id += self._shards
            events.append(
                new_trade_executed(
                    (
                        self._trade_id,
                        index,
                        result.price,
                        fill,
                        taker[ORDER_ID],
                        taker[ACCOUNT_ID],
                        taker[SIDE],
                        maker[ORDER_ID],
                        maker[ACCOUNT_ID],
                        taker[QTY],
                        maker[QTY],
                        ts,
                    )
                )
            )
        for side, price in touched:
            events.append(new_book_changed((index, side, price, book.level_qty(side, price), ts)))
        events.append(
            new_auction_uncrossed((index, result.price, result.qty, result.imbalance, ts))
        )
        book.phase = _CONTINUOUS
        events.append(new_phase_changed((index, _CONTINUOUS, ts)))
        return events

    # -- admin --------------------------------------------------------------------------------

    def _upsert_instrument(self, command: UpsertInstrument) -> list[Event]:
        """Adopt an instrument definition; delisting cancels its resting orders (ADMIN)."""
        instrument, ts = command
        self.instruments.put(instrument)
        book = self.books.setdefault(instrument.index, OrderBook(instrument.index))
        events: list[Event] = []
        if instrument.status == InstrumentStatus.DELISTED:
            events += self._cancel_all(book, sorted(book.orders), CancelReason.ADMIN, ts)
        return events

    # -- state --------------------------------------------------------------------------------

    def state_hash(self) -> str:
        """A blake2b digest of every book (orders in queue order) and the id counters."""
        values = [self._shard, self._shards, self._trade_seq, self._last_order_id, len(self.books)]
        for index in sorted(self.books):
            values += self.books[index].canonical()
        return hashlib.blake2b(array("q", values).tobytes(), digest_size=16).hexdigest()

    def export_state(self) -> dict[str, Any]:
        """Everything needed to rebuild this engine, as ints and lists (for checkpoints)."""
        return {
            "shard": self._shard,
            "shards": self._shards,
            "default_stp": int(self._default_stp),
            "trade_seq": self._trade_seq,
            "last_order_id": self._last_order_id,
            "books": [self.books[index].export() for index in sorted(self.books)],
        }

    @classmethod
    def from_state(cls, instruments: InstrumentRegistry, state: dict[str, Any]) -> MatchingEngine:
        """The engine `export_state` described, over `instruments` (same state_hash)."""
        engine = cls(
            instruments,
            shard=state["shard"],
            shards=state["shards"],
            default_stp=SelfTradePrevention(state["default_stp"]),
        )
        engine._trade_id = state["trade_seq"] * engine._shards + engine._shard
        engine._last_order_id = state["last_order_id"]
        for exported in state["books"]:
            engine.books[exported["index"]] = OrderBook.load(exported)
        return engine

    def check_invariants(self) -> None:
        """Raise InvariantViolation when a book is inconsistent or holds an id from the future."""
        for book in self.books.values():
            book.check_invariants()
            if book.orders and max(book.orders) > self._last_order_id:
                raise InvariantViolation(f"book {book.instrument_index}: order id ahead of input")


def _classify(
    order_type: int,
    side: int,
    time_condition: int,
    volume_condition: int,
    min_qty: int,
    qty: int,
    stp: int,
) -> tuple[bool, bool, bool, bool] | None:
    """(is_buy, is_ioc, is_market, any_volume) of a valid order; None for BAD_ORDER_PARAMETER."""
    if (
        (order_type != _LIMIT and order_type != _MARKET)
        or (side != _BUY and side != _SELL)
        or time_condition not in _TIME_CONDITIONS
        or stp not in _STP_MODES
        or (volume_condition != _ANY and volume_condition != _ALL and volume_condition != _MIN)
        or (volume_condition == _MIN and not 0 < min_qty <= qty)
    ):
        return None
    is_market = order_type == _MARKET
    return side == _BUY, is_market or time_condition == _IOC, is_market, volume_condition == _ANY


_SIMPLE = {
    (_LIMIT, side, time_condition, _ANY, stp): (side is _BUY, time_condition is _IOC, False, True)
    for side in (_BUY, _SELL)
    for time_condition in _TIME_CONDITIONS
    for stp in _STP_MODES
}
"""The flags of every plain LIMIT order, found with one dict lookup instead of a dozen enum
comparisons (comparing IntEnum members takes CPython's generic, slow path)."""


def _available(
    opposite: BookSide, key_limit: int, account_id: int, stp: SelfTradePrevention, need: int
) -> int:
    """Lots the taker could fill now (up to `need`), honouring its self-trade prevention.

    Used before a FOK/MIN order touches the book, so that an order that cannot reach its
    minimum changes nothing.
    """
    total = 0
    levels = opposite.levels
    for rank in reversed(opposite.ranks):
        if -rank > key_limit:
            break
        level = levels[-rank]
        if stp == _ALLOW:
            total += level.qty
        else:
            for order in level.live():
                if order[ACCOUNT_ID] == account_id:
                    if stp == _CANCEL_MAKER:
                        continue
                    return total
                total += order[QTY]
                if total >= need:
                    return total
        if total >= need:
            return total
    return total
