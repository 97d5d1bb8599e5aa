"""Every matching rule of docs/matching.md, one test (or scenario table) each."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

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
from engine.matching.commands import (
    AmendOrder,
    CancelOrder,
    ExpireOrders,
    PlaceOrder,
    RunAuction,
    SetPhase,
    UpsertInstrument,
)
from engine.matching.engine import MatchingEngine
from engine.matching.events import (
    AmendRejected,
    AuctionUncrossed,
    BookChanged,
    CancelRejected,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderRejected,
    PhaseChanged,
    TradeExecuted,
)

from .conftest import render, table

BUY, SELL = Side.BUY, Side.SELL
A = 0  # TEST.A: band 900..1100


class Desk:
    """Places orders with increasing ids, as the accounts core would."""

    def __init__(self, engine: MatchingEngine) -> None:
        self.engine = engine
        self.ids = itertools.count(1)

    def place(self, account: int, side: Side, price: int, qty: int, **kw: object) -> list:
        command = PlaceOrder(next(self.ids), account, kw.pop("index", A), side, price, qty, **kw)
        return self.engine.apply(command)


@pytest.fixture
def desk(engine: MatchingEngine) -> Desk:
    return Desk(engine)


def of(events: list, kind: type) -> list:
    return [e for e in events if isinstance(e, kind)]


def trades(events: list) -> list[tuple[int, int, int, int]]:
    """(price, qty, taker order id, maker order id) of each trade."""
    return [(t.price, t.qty, t.taker_order_id, t.maker_order_id) for t in of(events, TradeExecuted)]


def test_resting_orders_form_the_book(desk: Desk, engine: MatchingEngine) -> None:
    desk.place(1, SELL, 1002, 5)
    desk.place(1, SELL, 1001, 3)
    desk.place(2, BUY, 999, 4)
    desk.place(2, BUY, 999, 1)
    desk.place(2, BUY, 998, 7)
    assert render(engine.book(A)) == table(
        """
        | bid | price | ask |
        |     | 1002  | 5   |
        |     | 1001  | 3   |
        | 5   | 999   |     |
        | 7   | 998   |     |
        """
    )
    assert engine.book(A).best_bid == 999 and engine.book(A).best_ask == 1001
    engine.check_invariants()


def test_price_then_time_priority_and_maker_price(desk: Desk, engine: MatchingEngine) -> None:
    desk.place(1, SELL, 1001, 2)  # id 1
    desk.place(2, SELL, 1000, 2)  # id 2: better price
    desk.place(3, SELL, 1000, 2)  # id 3: same price, later
    events = desk.place(4, BUY, 1001, 5)  # id 4
    assert trades(events) == [(1000, 2, 4, 2), (1000, 2, 4, 3), (1001, 1, 4, 1)]
    assert [t.taker_remaining for t in of(events, TradeExecuted)] == [3, 1, 0]
    assert [t.maker_remaining for t in of(events, TradeExecuted)] == [0, 0, 1]
    assert render(engine.book(A)) == table(
        """
        | bid | price | ask |
        |     | 1001  | 1   |
        """
    )


def test_accepted_comes_first_and_book_changes_follow_levels(desk: Desk) -> None:
    desk.place(1, SELL, 1000, 2)
    desk.place(1, SELL, 1001, 2)
    events = desk.place(2, BUY, 1001, 3)
    assert isinstance(events[0], OrderAccepted)
    assert of(events, BookChanged) == [
        BookChanged(A, SELL, 1000, 0, 0),
        BookChanged(A, SELL, 1001, 1, 0),
    ]


def test_unfilled_limit_rests_and_partial_remainder_rests(
    desk: Desk, engine: MatchingEngine
) -> None:
    desk.place(1, SELL, 1000, 2)
    events = desk.place(2, BUY, 1000, 5)
    assert trades(events) == [(1000, 2, 2, 1)]
    assert events[-1] == BookChanged(A, BUY, 1000, 3, 0)
    assert engine.book(A).queue(BUY, 1000) == [2]


def test_ioc_remainder_is_cancelled(desk: Desk, engine: MatchingEngine) -> None:
    desk.place(1, SELL, 1000, 2)
    events = desk.place(2, BUY, 1000, 5, time_condition=TimeCondition.IOC)
    assert trades(events) == [(1000, 2, 2, 1)]
    assert events[-1] == OrderCanceled(2, 2, A, CancelReason.IOC_REMAINDER, 3, 0)
    assert engine.book(A).orders == {}


def test_fok_fills_completely_across_levels(desk: Desk) -> None:
    desk.place(1, SELL, 1000, 2)
    desk.place(1, SELL, 1001, 3)
    events = desk.place(2, BUY, 1001, 5, volume_condition=VolumeCondition.ALL)
    assert trades(events) == [(1000, 2, 3, 1), (1001, 3, 3, 2)]
    assert not of(events, OrderCanceled)


def test_fok_is_atomic_when_volume_is_short(desk: Desk, engine: MatchingEngine) -> None:
    desk.place(1, SELL, 1000, 2)
    desk.place(1, SELL, 1001, 3)
    desk.place(1, SELL, 1002, 9)  # beyond the limit: must not count
    before = render(engine.book(A))
    events = desk.place(2, BUY, 1001, 6, volume_condition=VolumeCondition.ALL)
    assert events[1:] == [OrderCanceled(4, 2, A, CancelReason.FOK_UNFILLED, 6, 0)]
    assert render(engine.book(A)) == before
    assert engine.book(A).queue(SELL, 1000) == [1]


def test_fok_counts_only_volume_before_a_self_trade(desk: Desk, engine: MatchingEngine) -> None:
    desk.place(1, SELL, 1000, 2)
    desk.place(2, SELL, 1000, 2)  # the taker's own order blocks the rest (CANCEL_TAKER)
    desk.place(1, SELL, 1000, 5)
    events = desk.place(2, BUY, 1000, 3, volume_condition=VolumeCondition.ALL)
    assert events[1:] == [OrderCanceled(4, 2, A, CancelReason.FOK_UNFILLED, 3, 0)]
    assert engine.book(A).level_qty(SELL, 1000) == 9


def test_min_quantity_unreachable_changes_nothing(desk: Desk, engine: MatchingEngine) -> None:
    desk.place(1, SELL, 1000, 2)
    events = desk.place(2, BUY, 1000, 5, volume_condition=VolumeCondition.MIN, min_qty=3)
    assert events[1:] == [OrderCanceled(2, 2, A, CancelReason.MIN_UNFILLED, 5, 0)]
    assert engine.book(A).level_qty(SELL, 1000) == 2


def test_min_quantity_reached_then_remainder_rests(desk: Desk, engine: MatchingEngine) -> None:
    desk.place(1, SELL, 1000, 3)
    events = desk.place(2, BUY, 1000, 5, volume_condition=VolumeCondition.MIN, min_qty=3)
    assert trades(events) == [(1000, 3, 2, 1)]
    assert engine.book(A).level_qty(BUY, 1000) == 2


def test_min_quantity_with_nothing_crossing_is_unfilled(desk: Desk, engine: MatchingEngine) -> None:
    events = desk.place(2, BUY, 1000, 5, volume_condition=VolumeCondition.MIN, min_qty=1)
    assert events[1:] == [OrderCanceled(1, 2, A, CancelReason.MIN_UNFILLED, 5, 0)]
    assert engine.book(A).orders == {}


def test_market_order_is_ioc_at_the_band_limit(desk: Desk, engine: MatchingEngine) -> None:
    desk.place(1, SELL, 1000, 2)
    desk.place(1, SELL, 1100, 2)  # at the upper limit: reachable
    events = desk.place(2, BUY, 0, 6, order_type=OrderType.MARKET)
    assert events[0] == OrderAccepted(3, 2, A, BUY, 1100, 6, 0)
    assert trades(events) == [(1000, 2, 3, 1), (1100, 2, 3, 2)]
    assert events[-1] == OrderCanceled(3, 2, A, CancelReason.IOC_REMAINDER, 2, 0)
    desk.place(1, BUY, 900, 1)
    events = desk.place(2, SELL, 0, 1, order_type=OrderType.MARKET)
    assert events[0].price == 900 and trades(events) == [(900, 1, 5, 4)]
    assert engine.book(A).orders == {}


def test_cancel_by_user_and_unknown(desk: Desk, engine: MatchingEngine) -> None:
    desk.place(1, BUY, 1000, 4)
    events = engine.apply(CancelOrder(1, A, ts=7))
    assert events == [
        OrderCanceled(1, 1, A, CancelReason.USER, 4, 7),
        BookChanged(A, BUY, 1000, 0, 7),
    ]
    assert engine.apply(CancelOrder(1, A, ts=8)) == [
        CancelRejected(1, A, ResultCode.ORDER_NOT_FOUND, 8)
    ]
    assert engine.apply(CancelOrder(99, A)) == [
        CancelRejected(99, A, ResultCode.ORDER_NOT_FOUND, 0)
    ]


def test_cancel_in_the_middle_of_a_level_keeps_the_others_in_order(
    desk: Desk, engine: MatchingEngine
) -> None:
    for _ in range(5):
        desk.place(1, BUY, 1000, 1)
    engine.apply(CancelOrder(3, A))
    assert engine.book(A).queue(BUY, 1000) == [1, 2, 4, 5]
    events = desk.place(2, SELL, 1000, 3)
    assert [t[3] for t in trades(events)] == [1, 2, 4]


def test_amend_volume_decrease_keeps_priority(desk: Desk, engine: MatchingEngine) -> None:
    desk.place(1, BUY, 1000, 5)
    desk.place(2, BUY, 1000, 5)
    events = engine.apply(AmendOrder(1, A, 1000, 2))
    assert events == [OrderAmended(1, 1, A, 1000, 2, 1000, 5, 0), BookChanged(A, BUY, 1000, 7, 0)]
    assert engine.book(A).queue(BUY, 1000) == [1, 2]


def test_amend_volume_increase_loses_priority(desk: Desk, engine: MatchingEngine) -> None:
    desk.place(1, BUY, 1000, 5)
    desk.place(2, BUY, 1000, 5)
    engine.apply(AmendOrder(1, A, 1000, 6))
    assert engine.book(A).queue(BUY, 1000) == [2, 1]
    assert engine.book(A).level_qty(BUY, 1000) == 11
    engine.check_invariants()


def test_amend_price_change_loses_priority_and_may_trade(
    desk: Desk, engine: MatchingEngine
) -> None:
    desk.place(1, BUY, 999, 5)  # 1
    desk.place(2, BUY, 1000, 5)  # 2
    desk.place(3, SELL, 1001, 2)  # 3
    events = engine.apply(AmendOrder(1, A, 1001, 5))
    assert trades(events) == [(1001, 2, 1, 3)]
    assert render(engine.book(A)) == table(
        """
        | bid | price | ask |
        | 3   | 1001  |     |
        | 5   | 1000  |     |
        """
    )
    engine.apply(AmendOrder(2, A, 1001, 5))
    assert engine.book(A).queue(BUY, 1001) == [1, 2]


def test_amend_refusals(desk: Desk, engine: MatchingEngine) -> None:
    desk.place(1, BUY, 1000, 5)
    assert engine.apply(AmendOrder(9, A, 1000, 1)) == [
        AmendRejected(9, A, ResultCode.ORDER_NOT_FOUND, 0)
    ]
    assert of(engine.apply(AmendOrder(1, A, 1101, 1)), AmendRejected)[0].code == (
        ResultCode.PRICE_OUT_OF_BAND
    )
    assert of(engine.apply(AmendOrder(1, A, 1000, 0)), AmendRejected)[0].code == (
        ResultCode.BAD_ORDER_PARAMETER
    )
    assert engine.book(A).queue(BUY, 1000) == [1]


@pytest.mark.parametrize(
    ("stp", "expected_trades", "canceled", "book"),
    [
        (
            SelfTradePrevention.CANCEL_TAKER,
            [(1000, 1, 4, 1)],
            [(4, CancelReason.SELF_TRADE, 4)],
            {1000: [2, 3]},
        ),
        (
            SelfTradePrevention.CANCEL_MAKER,
            [(1000, 1, 4, 1), (1000, 3, 4, 3)],
            [(2, CancelReason.SELF_TRADE, 2)],
            {1000: []},
        ),
        (
            SelfTradePrevention.CANCEL_BOTH,
            [(1000, 1, 4, 1)],
            [(2, CancelReason.SELF_TRADE, 2), (4, CancelReason.SELF_TRADE, 4)],
            {1000: [3]},
        ),
        (
            SelfTradePrevention.ALLOW,
            [(1000, 1, 4, 1), (1000, 2, 4, 2), (1000, 2, 4, 3)],
            [],
            {1000: [3]},
        ),
    ],
)
def test_self_trade_prevention(
    desk: Desk,
    engine: MatchingEngine,
    stp: SelfTradePrevention,
    expected_trades: list,
    canceled: list,
    book: dict,
) -> None:
    desk.place(1, SELL, 1000, 1)  # 1: another account
    desk.place(7, SELL, 1000, 2)  # 2: the taker's own order
    desk.place(1, SELL, 1000, 3)  # 3
    events = desk.place(7, BUY, 1000, 5, stp=stp)  # 4
    assert trades(events) == expected_trades
    assert [(e.order_id, e.reason, e.qty) for e in of(events, OrderCanceled)] == canceled
    assert {p: engine.book(A).queue(SELL, p) for p in book} == book
    engine.check_invariants()


def test_default_self_trade_prevention_is_cancel_taker(desk: Desk, engine: MatchingEngine) -> None:
    desk.place(7, SELL, 1000, 2)
    events = desk.place(7, BUY, 1000, 2)
    assert events[1:] == [OrderCanceled(2, 7, A, CancelReason.SELF_TRADE, 2, 0)]
    assert engine.book(A).queue(SELL, 1000) == [1]


def test_engine_default_self_trade_prevention_is_configurable(registry: InstrumentRegistry) -> None:
    engine = MatchingEngine(registry, default_stp=SelfTradePrevention.CANCEL_MAKER)
    engine.apply(PlaceOrder(1, 7, A, SELL, 1000, 2))
    events = engine.apply(PlaceOrder(2, 7, A, BUY, 1000, 2))
    assert of(events, OrderCanceled)[0].order_id == 1
    assert engine.book(A).queue(BUY, 1000) == [2]


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"price": 1101}, ResultCode.PRICE_OUT_OF_BAND),
        ({"price": 899}, ResultCode.PRICE_OUT_OF_BAND),
        ({"price": 0}, ResultCode.BAD_ORDER_PARAMETER),
        ({"price": -5}, ResultCode.BAD_ORDER_PARAMETER),
        ({"qty": 0}, ResultCode.BAD_ORDER_PARAMETER),
        ({"qty": 1001}, ResultCode.BAD_ORDER_PARAMETER),
        ({"side": Side.NONE}, ResultCode.BAD_ORDER_PARAMETER),
        ({"order_type": OrderType.NONE}, ResultCode.BAD_ORDER_PARAMETER),
        ({"time_condition": TimeCondition.NONE}, ResultCode.BAD_ORDER_PARAMETER),
        ({"volume_condition": VolumeCondition.NONE}, ResultCode.BAD_ORDER_PARAMETER),
        ({"volume_condition": VolumeCondition.MIN, "min_qty": 0}, ResultCode.BAD_ORDER_PARAMETER),
        ({"volume_condition": VolumeCondition.MIN, "min_qty": 6}, ResultCode.BAD_ORDER_PARAMETER),
        ({"instrument_index": 9}, ResultCode.NO_SUCH_INSTRUMENT),
    ],
)
def test_rejections_carry_a_code(engine: MatchingEngine, change: dict, code: ResultCode) -> None:
    command = PlaceOrder(1, 1, A, BUY, 1000, 5)._replace(**change)
    events = engine.apply(command)
    assert events == [OrderRejected(1, 1, command.instrument_index, code, 0)]
    assert engine.book(A).orders == {}


def test_band_edges_are_accepted(desk: Desk) -> None:
    assert isinstance(desk.place(1, BUY, 900, 1)[0], OrderAccepted)
    assert isinstance(desk.place(1, SELL, 1100, 1)[0], OrderAccepted)


@pytest.mark.parametrize("status", [InstrumentStatus.SUSPENDED, InstrumentStatus.DELISTED])
def test_orders_on_a_halted_instrument_are_rejected(
    registry: InstrumentRegistry, desk: Desk, status: InstrumentStatus
) -> None:
    assert registry.suspend("TEST.A") is ResultCode.OK
    if status is InstrumentStatus.DELISTED:
        registry.delist("TEST.A")
    assert desk.place(1, BUY, 1000, 1) == [
        OrderRejected(1, 1, A, ResultCode.INSTRUMENT_NOT_TRADING, 0)
    ]


def test_cancel_works_while_suspended_but_amend_does_not(
    registry: InstrumentRegistry, desk: Desk, engine: MatchingEngine
) -> None:
    desk.place(1, BUY, 1000, 1)
    desk.place(1, BUY, 1000, 1)
    registry.suspend("TEST.A")
    assert engine.apply(AmendOrder(1, A, 1000, 1))[0].code == ResultCode.INSTRUMENT_NOT_TRADING
    assert isinstance(engine.apply(CancelOrder(2, A))[0], OrderCanceled)


def test_delisting_through_the_engine_cancels_resting_orders(
    desk: Desk, engine: MatchingEngine
) -> None:
    desk.place(1, BUY, 1000, 1)
    desk.place(2, SELL, 1001, 2)
    delisted = replace(engine.instruments.by_index(A), status=InstrumentStatus.DELISTED)
    events = engine.apply(UpsertInstrument(delisted, ts=5))
    assert [(e.order_id, e.reason) for e in of(events, OrderCanceled)] == [
        (1, CancelReason.ADMIN),
        (2, CancelReason.ADMIN),
    ]
    assert engine.instruments.by_index(A).status is InstrumentStatus.DELISTED
    assert engine.book(A).orders == {}


def test_order_ids_must_increase(engine: MatchingEngine) -> None:
    engine.apply(PlaceOrder(5, 1, A, BUY, 1000, 1))
    for order_id in (5, 4):
        assert engine.apply(PlaceOrder(order_id, 1, A, BUY, 1000, 1)) == [
            OrderRejected(order_id, 1, A, ResultCode.ORDER_BOOK_ERROR, 0)
        ]
    assert engine.book(A).queue(BUY, 1000) == [5]
    engine.apply(PlaceOrder(6, 1, 9, BUY, 1000, 1))  # rejected (no instrument 9), id still used
    assert engine.apply(PlaceOrder(6, 1, A, BUY, 1000, 1))[0].code == ResultCode.ORDER_BOOK_ERROR
    assert engine.last_order_id == 6


def test_trade_ids_increase_and_never_collide_across_shards(registry: InstrumentRegistry) -> None:
    seen: list[list[int]] = []
    for shard in (0, 1):
        engine = MatchingEngine(registry, shard=shard, shards=2)
        ids = []
        for n in range(1, 40, 2):
            engine.apply(PlaceOrder(n, 1, A, SELL, 1000, 1))
            events = engine.apply(PlaceOrder(n + 1, 2, A, BUY, 1000, 1))
            ids += [t.trade_id for t in of(events, TradeExecuted)]
        assert ids == sorted(ids) and len(set(ids)) == len(ids) == 20
        assert engine.last_trade_id == ids[-1]
        seen.append(ids)
    assert not set(seen[0]) & set(seen[1])


def test_end_of_day_expires_gfd_orders_only(desk: Desk, engine: MatchingEngine) -> None:
    desk.place(1, BUY, 1000, 1)  # 1 GFD
    desk.place(1, BUY, 1000, 2, time_condition=TimeCondition.GTC)  # 2
    desk.place(1, SELL, 501, 3, index=1)  # 3 GFD on TEST.B
    events = engine.apply(ExpireOrders(A, ts=9))
    assert [(e.order_id, e.reason, e.qty) for e in of(events, OrderCanceled)] == [
        (1, CancelReason.END_OF_DAY, 1)
    ]
    assert engine.book(A).queue(BUY, 1000) == [2] and engine.book(1).queue(SELL, 501) == [3]
    events = engine.apply(ExpireOrders(None, ts=10))
    assert [e.order_id for e in of(events, OrderCanceled)] == [3]
    assert engine.book(A).queue(BUY, 1000) == [2]


def test_auction_phase_collects_then_uncrosses_at_one_price(
    desk: Desk, engine: MatchingEngine
) -> None:
    assert engine.apply(SetPhase(A, TradingPhase.AUCTION)) == [
        PhaseChanged(A, TradingPhase.AUCTION, 0)
    ]
    desk.place(1, BUY, 1003, 4)  # 1
    desk.place(2, BUY, 1001, 3)  # 2
    desk.place(3, SELL, 999, 2)  # 3
    desk.place(4, SELL, 1001, 3)  # 4
    desk.place(5, SELL, 1004, 1)  # 5
    assert not engine.book(A).best_bid < engine.book(A).best_ask  # crossed while collecting
    engine.check_invariants()
    events = engine.apply(RunAuction(A, ts=3))
    # At 1001: buy 7, sell 5 -> 5 executable (the maximum); every trade at 1001.
    assert of(events, AuctionUncrossed) == [AuctionUncrossed(A, 1001, 5, 2, 3)]
    assert {t.price for t in of(events, TradeExecuted)} == {1001}
    assert sum(t.qty for t in of(events, TradeExecuted)) == 5
    assert [(t.maker_order_id, t.taker_order_id) for t in of(events, TradeExecuted)] == [
        (1, 3),
        (1, 4),
        (2, 4),
    ]
    assert events[-1] == PhaseChanged(A, TradingPhase.CONTINUOUS, 3)
    assert render(engine.book(A)) == table(
        """
        | bid | price | ask |
        |     | 1004  | 1   |
        | 2   | 1001  |     |
        """
    )
    engine.check_invariants()


def test_auction_phase_refuses_immediate_orders(desk: Desk, engine: MatchingEngine) -> None:
    engine.apply(SetPhase(A, TradingPhase.AUCTION))
    assert desk.place(1, BUY, 1000, 1, order_type=OrderType.MARKET)[0].code == (
        ResultCode.BAD_ORDER_PARAMETER
    )
    assert desk.place(1, BUY, 1000, 1, volume_condition=VolumeCondition.ALL)[0].code == (
        ResultCode.BAD_ORDER_PARAMETER
    )


def test_leaving_the_auction_phase_uncrosses(desk: Desk, engine: MatchingEngine) -> None:
    engine.apply(SetPhase(A, TradingPhase.AUCTION))
    desk.place(1, BUY, 1001, 2)
    desk.place(2, SELL, 1000, 2)
    events = engine.apply(SetPhase(A, TradingPhase.CONTINUOUS))
    assert of(events, AuctionUncrossed)[0].qty == 2
    assert engine.book(A).phase is TradingPhase.CONTINUOUS and engine.book(A).orders == {}


def test_auction_with_nothing_crossing_trades_nothing(desk: Desk, engine: MatchingEngine) -> None:
    engine.apply(SetPhase(A, TradingPhase.AUCTION))
    desk.place(1, BUY, 999, 2)
    desk.place(2, SELL, 1000, 2)
    events = engine.apply(RunAuction(A))
    assert not of(events, TradeExecuted)
    assert of(events, AuctionUncrossed) == [AuctionUncrossed(A, 0, 0, 0, 0)]


def test_depth_snapshot(desk: Desk, engine: MatchingEngine) -> None:
    for price in (1001, 1002, 1003):
        desk.place(1, SELL, price, 1)
        desk.place(1, SELL, price, 2)
    desk.place(2, BUY, 999, 4)
    snapshot = engine.book(A).depth(2)
    assert snapshot.asks == ((1001, 3, 2), (1002, 3, 2))
    assert snapshot.bids == ((999, 4, 1),)


def _session(engine: MatchingEngine) -> list:
    desk = Desk(engine)
    events = []
    for n in range(60):
        side = BUY if n % 3 else SELL
        events += desk.place(n % 4, side, 995 + (n * 7) % 11, 1 + n % 5)
        if n % 5 == 4:
            events += engine.apply(CancelOrder(n - 2, A))
    return events


def test_state_hash_is_stable_across_identical_runs(registry: InstrumentRegistry) -> None:
    first, second = MatchingEngine(registry), MatchingEngine(registry)
    assert first.state_hash() == second.state_hash()
    assert _session(first) == _session(second)
    assert first.state_hash() == second.state_hash()
    first.apply(CancelOrder(max(first.book(A).orders), A))
    assert first.state_hash() != second.state_hash()
