"""Every pre-trade rejection code, each provoked on its own (reference part 2 §3)."""

from __future__ import annotations

import itertools

import pytest

from engine.accounts import commands as c
from engine.accounts.risk import PLAIN_ORDERS, RiskConfig, bad_order_fields
from engine.codes import ResultCode
from engine.enums import Offset, OrderType, Side, TimeCondition, VolumeCondition
from tests.unit.engine.accounts.conftest import BTC, CNY, CU, IX, Desk


@pytest.mark.parametrize(
    ("account", "instrument", "side", "offset", "price", "qty", "code"),
    [
        (99, IX, Side.BUY, Offset.OPEN, 1000, 1, ResultCode.NO_SUCH_ACCOUNT),
        (1, 99, Side.BUY, Offset.OPEN, 1000, 1, ResultCode.NO_SUCH_INSTRUMENT),
        (1, IX, Side.BUY, Offset.OPEN, 1000, 0, ResultCode.BAD_ORDER_PARAMETER),
        (1, IX, Side.BUY, Offset.OPEN, 1000, 1001, ResultCode.BAD_ORDER_PARAMETER),
        (1, IX, Side.BUY, Offset.OPEN, 0, 1, ResultCode.BAD_ORDER_PARAMETER),
        (1, IX, Side.NONE, Offset.OPEN, 1000, 1, ResultCode.BAD_ORDER_PARAMETER),
        (1, IX, Side.BUY, Offset.NONE, 1000, 1, ResultCode.BAD_ORDER_PARAMETER),
        (1, BTC, Side.BUY, Offset.CLOSE, 9_500_000, 1, ResultCode.BAD_ORDER_PARAMETER),
        (1, IX, Side.BUY, Offset.OPEN, 1101, 1, ResultCode.PRICE_OUT_OF_BAND),
        (1, IX, Side.SELL, Offset.CLOSE, 1000, 1, ResultCode.INSUFFICIENT_POSITION),
        (1, IX, Side.BUY, Offset.OPEN, 1000, 501, ResultCode.ORDER_VALUE_CAP),
        (1, IX, Side.BUY, Offset.OPEN, 1000, 251, ResultCode.INSUFFICIENT_FUNDS),
        (1, IX, Side.BUY, Offset.OPEN, 1000, 126, ResultCode.CONCENTRATION_LIMIT),
        (1, IX, Side.BUY, Offset.OPEN, 1000, 125, ResultCode.OK),
    ],
)
def test_order_checks(
    desk: Desk,
    account: int,
    instrument: int,
    side: Side,
    offset: Offset,
    price: int,
    qty: int,
    code: ResultCode,
) -> None:
    desk.open_account(1, 500_000 * CNY)
    desk.order(account, instrument, side, offset, price, qty)
    assert desk.code() is code
    if code is not ResultCode.OK:
        assert desk.core.orders == {}
        assert desk.ledger(1).frozen_margin == 0


def test_risk_ratio_cap_when_concentration_is_off() -> None:
    desk = Desk(RiskConfig(max_concentration_e8=None))
    desk.open_account(1, 100_000 * CNY)
    desk.order(1, IX, Side.BUY, Offset.OPEN, 1000, 48)  # margin 96,000 of 100,000 > 95%
    assert desk.code() is ResultCode.RISK_RATIO_CAP
    desk.order(1, IX, Side.BUY, Offset.OPEN, 1000, 47)
    assert desk.code() is ResultCode.OK


def test_self_trade_pre_check_is_off_by_default_and_refuses_when_on() -> None:
    for enabled, code in ((False, ResultCode.OK), (True, ResultCode.SELF_TRADE)):
        desk = Desk(RiskConfig(self_trade_check=enabled))
        desk.open_account(1, 1_000_000 * CNY)
        desk.order(1, IX, Side.SELL, Offset.OPEN, 1000, 1)
        desk.order(1, IX, Side.BUY, Offset.OPEN, 1000, 1)
        assert desk.code() is code


def test_frozen_account_cannot_trade_or_withdraw(desk: Desk) -> None:
    desk.open_account(1, 1_000_000 * CNY)
    desk.run(c.SetAccountFrozen, 1, True)
    desk.order(1, IX, Side.BUY, Offset.OPEN, 1000, 1)
    assert desk.code() is ResultCode.ACCOUNT_FROZEN
    desk.run(c.Withdraw, 1, 1, 77)
    assert desk.code() is ResultCode.ACCOUNT_FROZEN
    desk.run(c.SetAccountFrozen, 1, False)
    desk.order(1, IX, Side.BUY, Offset.OPEN, 1000, 1)
    assert desk.code() is ResultCode.OK


def test_suspended_instrument_refuses_orders(desk: Desk) -> None:
    desk.open_account(1, 1_000_000 * CNY)
    desk.run(c.SuspendInstrument, "SHFE.cu2501")
    desk.order(1, CU, Side.BUY, Offset.OPEN, 5000, 1)
    assert desk.code() is ResultCode.INSTRUMENT_NOT_TRADING
    desk.run(c.ResumeInstrument, "SHFE.cu2501")
    desk.order(1, CU, Side.BUY, Offset.OPEN, 5000, 1)
    assert desk.code() is ResultCode.OK


def test_market_orders_hold_at_the_band_limit(desk: Desk) -> None:
    desk.open_account(1, 1_000_000 * CNY)
    desk.open_account(2, 1_000_000 * CNY)
    desk.order(2, IX, Side.SELL, Offset.OPEN, 1000, 1)
    desk.order(1, IX, Side.BUY, Offset.OPEN, 0, 3, OrderType.MARKET)
    ledger = desk.ledger(1)
    assert (ledger.margin, ledger.frozen_margin) == (1000 * 2000 // 10, 0)  # rest: IOC cancelled
    assert desk.position(1, IX).long.today == 1


def test_deposits_and_withdrawals_are_idempotent_by_transaction_id(desk: Desk) -> None:
    desk.run(c.OpenAccount, 1)
    desk.run(c.OpenAccount, 1)
    assert desk.code() is ResultCode.ACCOUNT_EXISTS
    for _ in range(2):
        desk.run(c.Deposit, 1, 5_000 * CNY, 11)
        assert desk.code() is ResultCode.OK
    for _ in range(2):
        desk.run(c.Withdraw, 1, 1_000 * CNY, 12)
        assert desk.code() is ResultCode.OK
    ledger = desk.ledger(1)
    assert (ledger.deposit, ledger.withdraw) == (5_000 * CNY, 1_000 * CNY)
    desk.run(c.Withdraw, 1, 1_000 * CNY, 11)
    assert desk.code() is ResultCode.WITHDRAW_FAILED  # txn 11 was a deposit
    desk.run(c.Deposit, 1, 6_000 * CNY, 11)
    assert desk.code() is ResultCode.DEPOSIT_FAILED  # txn 11 was 5,000
    desk.run(c.Withdraw, 1, 4_001 * CNY, 13)
    assert desk.code() is ResultCode.WITHDRAW_FAILED
    desk.run(c.Deposit, 1, -5, 14)
    assert desk.code() is ResultCode.DEPOSIT_FAILED
    desk.run(c.Deposit, 2, 5, 15)
    assert desk.code() is ResultCode.NO_SUCH_ACCOUNT


@pytest.mark.parametrize("instrument", [IX, BTC])
def test_plain_orders_pass_bad_order_fields(desk: Desk, instrument: int) -> None:
    """The submit path skips `bad_order_fields` for PLAIN_ORDERS (qty and price in range).

    Over every combination of enum values, a key is in the set only if the full check passes,
    and every LIMIT order with volume ANY or ALL that the full check passes is in the set.
    """
    terms = desk.core.terms[instrument]
    plain = PLAIN_ORDERS[terms.spot]
    for side, order_type, time, volume, offset in itertools.product(
        Side, OrderType, TimeCondition, VolumeCondition, Offset
    ):
        submit = c.SubmitOrder(
            1, 1, instrument, side, offset, 1000, terms.min_qty, order_type, time, volume, 0
        )
        key = (side, order_type, time, volume, offset)
        passes = bad_order_fields(submit, terms) == ""
        if key in plain:
            assert passes, key
        elif order_type is OrderType.LIMIT and volume is not VolumeCondition.MIN:
            assert not passes, key
