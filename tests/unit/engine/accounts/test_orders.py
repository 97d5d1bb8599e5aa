"""Orders through the Exchange facade: holds, releases, offsets, close-today rules, spot mode."""

from __future__ import annotations

from engine.accounts import commands as c
from engine.accounts.events import OrderUpdated, TradeBooked
from engine.codes import ResultCode
from engine.enums import (
    CancelReason,
    Offset,
    OrderStatus,
    SelfTradePrevention,
    Side,
    TimeCondition,
)
from engine.matching.events import AmendRejected, OrderCanceled
from tests.unit.engine.accounts.conftest import BTC, CNY, CU, IX, Desk

USDT = 10**8
BTC_UNIT = 10**8


def _settle(desk: Desk, day: int, prices: dict[int, int]) -> None:
    desk.run(c.SetSettlementPrices, tuple(prices.items()))
    assert desk.code() is ResultCode.OK
    desk.run(c.ExecuteSettlement, day)
    assert desk.code() is ResultCode.OK


def test_cancel_releases_exactly_what_was_held(desk: Desk) -> None:
    desk.open_account(1, 1_000_000 * CNY)
    order_id = desk.order(1, IX, Side.BUY, Offset.OPEN, 1001, 7)
    assert desk.ledger(1).frozen_margin == 1001 * 7 * 2000 // 10
    desk.run(c.CancelOrder, 1, order_id)
    assert any(isinstance(e, OrderCanceled) and e.reason is CancelReason.USER for e in desk.events)
    ledger = desk.ledger(1)
    assert (ledger.frozen_margin, ledger.frozen_commission) == (0, 0)
    assert desk.core.available(1, "CNY") == 1_000_000 * CNY
    desk.run(c.CancelOrder, 1, order_id)
    assert desk.code() is ResultCode.ORDER_NOT_FOUND


def test_partial_fills_recompute_holds_for_the_remaining_quantity(desk: Desk) -> None:
    desk.open_account(1, 1_000_000 * CNY)
    desk.open_account(2, 1_000_000 * CNY)
    desk.order(1, IX, Side.BUY, Offset.OPEN, 1003, 9)
    for qty in (2, 3):
        desk.order(2, IX, Side.SELL, Offset.OPEN, 1003, qty)
    ledger = desk.ledger(1)
    assert ledger.frozen_margin == -(-(1003 * 4 * 2000) // 10)
    assert ledger.margin == 1003 * 5 * 2000 // 10
    assert ledger.frozen_commission == 4 * 5


def test_a_fill_better_than_the_limit_uses_margin_at_the_fill_price(desk: Desk) -> None:
    desk.open_account(1, 1_000_000 * CNY)
    desk.open_account(2, 1_000_000 * CNY)
    desk.order(2, IX, Side.SELL, Offset.OPEN, 990, 5)
    desk.order(1, IX, Side.BUY, Offset.OPEN, 1010, 5)
    ledger = desk.ledger(1)
    assert (ledger.margin, ledger.frozen_margin) == (990 * 5 * 2000 // 10, 0)


def test_amend_holds_first_and_settles_on_the_amended_order(desk: Desk) -> None:
    desk.open_account(1, 1_000_000 * CNY)
    order_id = desk.order(1, IX, Side.BUY, Offset.OPEN, 1000, 5)
    desk.run(c.AmendOrder, 1, order_id, 1010, 8)
    assert desk.code() is ResultCode.OK
    assert desk.ledger(1).frozen_margin == 1010 * 8 * 2000 // 10
    desk.run(c.AmendOrder, 1, order_id, 1000, 2)
    assert desk.ledger(1).frozen_margin == 1000 * 2 * 2000 // 10
    desk.run(c.AmendOrder, 1, order_id, 1000, 999)
    assert desk.code() is ResultCode.INSUFFICIENT_FUNDS
    assert desk.ledger(1).frozen_margin == 1000 * 2 * 2000 // 10


def test_close_takes_history_first_then_today(desk: Desk) -> None:
    for account in (1, 2, 3):
        desk.open_account(account, 1_000_000 * CNY)
    desk.order(1, IX, Side.BUY, Offset.OPEN, 1000, 4)
    desk.order(2, IX, Side.SELL, Offset.OPEN, 1000, 4)
    _settle(desk, 20250102, {IX: 1000})
    desk.order(1, IX, Side.BUY, Offset.OPEN, 1000, 3)
    desk.order(2, IX, Side.SELL, Offset.OPEN, 1000, 3)
    position = desk.position(1, IX)
    assert (position.long.history, position.long.today) == (4, 3)
    desk.order(1, IX, Side.SELL, Offset.CLOSE, 1002, 5)
    assert (position.long.frozen_history, position.long.frozen_today) == (4, 1)
    desk.order(1, IX, Side.SELL, Offset.CLOSEYESTERDAY, 1002, 1)
    assert desk.code() is ResultCode.INSUFFICIENT_POSITION
    desk.order(1, IX, Side.SELL, Offset.CLOSETODAY, 1002, 3)
    assert desk.code() is ResultCode.INSUFFICIENT_POSITION
    desk.order(1, IX, Side.SELL, Offset.CLOSETODAY, 1002, 2)
    assert desk.code() is ResultCode.OK
    desk.order(3, IX, Side.BUY, Offset.OPEN, 1002, 7)
    assert (position.long.history, position.long.today) == (0, 0)
    assert desk.position(1, IX) is None
    # history closes against the settlement price, today against the open price: 0.2 × 200 each
    assert desk.ledger(1).close_profit == 7 * 2 * 2000


def test_shfe_close_needs_closetoday_for_todays_position(desk: Desk) -> None:
    desk.open_account(1, 1_000_000 * CNY)
    desk.open_account(2, 1_000_000 * CNY)
    desk.order(1, CU, Side.BUY, Offset.OPEN, 5000, 2)
    desk.order(2, CU, Side.SELL, Offset.OPEN, 5000, 2)
    desk.order(1, CU, Side.SELL, Offset.CLOSE, 5000, 1)
    assert desk.code() is ResultCode.INSUFFICIENT_POSITION
    desk.order(1, CU, Side.SELL, Offset.CLOSETODAY, 5010, 1)
    desk.order(2, CU, Side.BUY, Offset.CLOSETODAY, 5010, 1)
    booked = [e for e in desk.events if isinstance(e, TradeBooked)]
    assert [b.commission for b in booked] == [0, 0]  # SHFE copper: close today is free here
    _settle(desk, 20250102, {CU: 5010})
    desk.order(1, CU, Side.SELL, Offset.CLOSE, 5010, 1)
    desk.order(2, CU, Side.BUY, Offset.CLOSE, 5010, 1)
    booked = [e for e in desk.events if isinstance(e, TradeBooked)]
    notional = 5010 * 5 * 1000
    assert [b.commission for b in booked] == [-(-notional * 50_000 // 10**8)] * 2
    assert desk.position(1, CU) is None


def test_spot_exchange_mode_holds_quote_for_buys_and_base_for_sells(desk: Desk) -> None:
    desk.open_account(1, 100_000 * USDT, "USDT")
    desk.open_account(2, BTC_UNIT, "BTC")
    desk.order(2, BTC, Side.SELL, Offset.NONE, 9_500_000, 10_001)
    assert desk.code() is ResultCode.INSUFFICIENT_FUNDS
    desk.order(1, BTC, Side.BUY, Offset.NONE, 9_500_000, 5_000)
    notional = 47_500 * USDT
    fee = notional // 1000
    assert desk.ledger(1, "USDT").frozen_asset == notional + fee
    desk.order(2, BTC, Side.SELL, Offset.NONE, 9_500_000, 5_000)
    assert desk.ledger(2, "BTC").frozen_asset == 0
    assert desk.core.balance(1, "USDT") == 100_000 * USDT - notional - fee
    assert desk.core.balance(1, "BTC") == BTC_UNIT // 2
    assert desk.core.balance(2, "USDT") == notional - fee
    assert desk.core.balance(2, "BTC") == BTC_UNIT // 2
    assert desk.ledger(1, "USDT").frozen_asset == 0
    assert desk.core.to_qifi(1)["positions"] == {}


def test_gfd_orders_expire_at_settlement_and_gtc_orders_stay(desk: Desk) -> None:
    desk.open_account(1, 1_000_000 * CNY)
    day = desk.order(1, IX, Side.BUY, Offset.OPEN, 990, 1)
    kept = desk.order(1, IX, Side.BUY, Offset.OPEN, 980, 1, time_condition=TimeCondition.GTC)
    desk.run(c.ExecuteSettlement, 20250102)
    cancelled = [e for e in desk.events if isinstance(e, OrderCanceled)]
    assert [(e.order_id, e.reason) for e in cancelled] == [(day, CancelReason.END_OF_DAY)]
    assert list(desk.core.orders) == [kept]
    assert desk.ledger(1).frozen_margin == 980 * 2000 // 10
    updates = [e for e in desk.events if isinstance(e, OrderUpdated)]
    assert updates[-1].status is OrderStatus.CANCELLED


def test_cancel_all_cancels_the_accounts_orders_on_one_or_every_instrument(desk: Desk) -> None:
    desk.open_account(1, 1_000_000 * CNY)
    desk.open_account(2, 1_000_000 * CNY)
    first = desk.order(1, IX, Side.BUY, Offset.OPEN, 990, 1)
    second = desk.order(1, IX, Side.BUY, Offset.OPEN, 991, 1)
    other = desk.order(2, IX, Side.BUY, Offset.OPEN, 991, 1)
    desk.order(1, CU, Side.BUY, Offset.OPEN, 5000, 1)
    desk.run(c.CancelAll, 1, IX)
    cancelled = [e for e in desk.events if isinstance(e, OrderCanceled)]
    assert [(e.order_id, e.reason) for e in cancelled] == [
        (first, CancelReason.USER),
        (second, CancelReason.USER),
    ]
    assert sorted(o.instrument_index for o in desk.core.orders.values()) == [IX, CU]
    desk.run(c.CancelAll, 1)
    assert list(desk.core.orders) == [other]
    assert desk.ledger(1).frozen_margin == 0
    desk.run(c.CancelAll, 9)
    assert desk.code() is ResultCode.NO_SUCH_ACCOUNT


def test_self_trade_mode_travels_to_matching(desk: Desk) -> None:
    desk.open_account(1, 1_000_000 * CNY)
    resting = desk.order(1, IX, Side.SELL, Offset.OPEN, 1000, 1)
    desk.run(
        c.SubmitOrder, 1, IX, Side.BUY, Offset.OPEN, 1000, 1, stp=SelfTradePrevention.CANCEL_MAKER
    )
    cancelled = [e for e in desk.events if isinstance(e, OrderCanceled)]
    assert [(e.order_id, e.reason) for e in cancelled] == [(resting, CancelReason.SELF_TRADE)]
    assert [o.side for o in desk.core.orders.values()] == [Side.BUY]


def test_a_refused_amend_gives_back_exactly_what_it_reserved(desk: Desk) -> None:
    """A close order's pending amend reserved history lots; matching refuses the amend (the
    instrument is suspended), and the order's history/today split is what it was before."""
    for account in (1, 2):
        desk.open_account(account, 1_000_000 * CNY)
    desk.order(1, IX, Side.BUY, Offset.OPEN, 1000, 2)
    desk.order(2, IX, Side.SELL, Offset.OPEN, 1000, 2)
    _settle(desk, 20250102, {IX: 1000})
    desk.order(1, IX, Side.BUY, Offset.OPEN, 1000, 2)
    desk.order(2, IX, Side.SELL, Offset.OPEN, 1000, 2)
    yesterday = desk.order(1, IX, Side.SELL, Offset.CLOSEYESTERDAY, 1005, 2)
    close = desk.order(1, IX, Side.SELL, Offset.CLOSE, 1005, 2)
    position = desk.position(1, IX)
    assert (position.long.frozen_history, position.long.frozen_today) == (2, 2)
    desk.run(c.CancelOrder, 1, yesterday)
    desk.run(c.SuspendInstrument, "CFFEX.IX2401")
    desk.run(c.AmendOrder, 1, close, 1005, 3)
    assert desk.code() is ResultCode.OK
    assert any(isinstance(e, AmendRejected) for e in desk.events)
    order = desk.core.orders[close]
    assert (order.reserved_history, order.reserved_today) == (0, 2)
    assert (position.long.frozen_history, position.long.frozen_today) == (0, 2)
    assert (order.pending_qty, order.qty) == (0, 2)
