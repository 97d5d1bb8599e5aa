"""Hand-worked examples (issue 3, reference/exchange.md) for the reference model in tests/reference.

The model is what the generator test trusts to judge the engine, so its rules are pinned here
on their own: margin 100 × 10 × 200 × 0.1 = 20,000; 1,000,000 → 1,000,999; close-today vs
history; FOK atomicity; amend priority; self-trade prevention; band rejections; settlement
with liquidation; and conservation after each.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.codes import ResultCode
from engine.enums import (
    CancelReason,
    Offset,
    OrderType,
    Side,
    TimeCondition,
    VolumeCondition,
)
from tests.reference.instruments import load_instruments
from tests.reference.model import RefExchange

TOML = """
[currencies]
CNY = { decimals = 2 }

[[instruments]]
id = "TEST.IX2401"
kind = "FUTURE"
currency = "CNY"
multiplier = 200
price_tick = "1"
margin_rate = "0.1"
commission = { by = "lot", open = "0.5", close = "0.5", close_today = "0.5" }
band = "0.5"
max_qty = 1000
pre_settlement = "100"
close_today_rule = "HISTORY_FIRST"

[[instruments]]
id = "SHFE.xx2401"
kind = "FUTURE"
currency = "CNY"
multiplier = 100
price_tick = "1"
margin_rate = "0.1"
commission = { by = "lot", open = "0.5", close = "0.5", close_today = "0.5" }
band = "0.5"
pre_settlement = "100"
close_today_rule = "SHFE"
"""

IX, SHFE = 0, 1
YUAN = 100


@pytest.fixture
def model(tmp_path: Path) -> RefExchange:
    path = tmp_path / "instruments.toml"
    path.write_text(TOML)
    exchange = RefExchange(*load_instruments(path))
    for account in (1, 2, 3):
        assert exchange.open_account(account) is ResultCode.OK
        assert exchange.transfer(account, "CNY", 1_000_000 * YUAN, account, 1) is ResultCode.OK
    return exchange


def place(
    model: RefExchange,
    ref: int,
    account: int,
    side: Side,
    price: int,
    qty: int,
    offset: Offset = Offset.OPEN,
    instrument: int = IX,
    **kw: object,
) -> ResultCode:
    code, _ = model.submit(ref, account, instrument, side, offset, price, qty, **kw)  # type: ignore[arg-type]
    return code


def conserved(model: RefExchange) -> bool:
    interest = model.open_interest().values()
    return not any(model.conservation().values()) and all(a == b for a, b in interest)


def test_margin_worked_example(model: RefExchange) -> None:
    """100 × 10 × 200 × 0.1 = 20,000 frozen on the order, then used on the fill."""
    assert place(model, 1, 1, Side.BUY, 100, 10) is ResultCode.OK
    assert model.frozen(1, "CNY") == (20_000 * YUAN, 5 * YUAN, 0)
    assert place(model, 2, 2, Side.SELL, 100, 10) is ResultCode.OK
    assert model.frozen(1, "CNY") == (0, 0, 0)
    assert model.margin(1, "CNY") == model.margin(2, "CNY") == 20_000 * YUAN
    assert model.available(1, "CNY") == (1_000_000 - 20_000 - 5) * YUAN
    assert conserved(model)


def test_profit_worked_example(model: RefExchange) -> None:
    """1,000,000 → 1,000,999: +1,000 on 1 lot (×100, 10 points) minus 0.5 × 2 fees."""
    assert place(model, 1, 1, Side.BUY, 100, 1, instrument=SHFE) is ResultCode.OK
    assert place(model, 2, 2, Side.SELL, 100, 1, instrument=SHFE) is ResultCode.OK
    assert place(model, 3, 3, Side.BUY, 110, 1, instrument=SHFE) is ResultCode.OK
    assert model.position_profit(1, "CNY", model.marks) == 0
    assert place(model, 4, 1, Side.SELL, 110, 1, Offset.CLOSETODAY, SHFE) is ResultCode.OK
    assert model.accounts[1].flows["CNY"].close_profit == 1_000 * YUAN
    assert model.balance(1, "CNY") == 1_000_999 * YUAN
    assert SHFE not in model.accounts[1].positions
    assert conserved(model)


def test_close_today_versus_history(model: RefExchange) -> None:
    """SHFE: CLOSE takes history only, so today's lots need CLOSETODAY until settlement."""
    assert place(model, 1, 1, Side.BUY, 100, 3, instrument=SHFE) is ResultCode.OK
    assert place(model, 2, 2, Side.SELL, 100, 3, instrument=SHFE) is ResultCode.OK
    assert place(model, 3, 1, Side.SELL, 120, 1, Offset.CLOSE, SHFE) is (
        ResultCode.INSUFFICIENT_POSITION
    )
    assert place(model, 4, 1, Side.SELL, 120, 2, Offset.CLOSETODAY, SHFE) is ResultCode.OK
    assert model.frozen_volume(1, SHFE, Side.BUY) == (0, 2)
    assert model.set_price(SHFE, 100) is ResultCode.OK
    assert model.settle(20250102) is ResultCode.OK
    assert model.accounts[1].positions[SHFE][Side.BUY].history == 3
    assert not model.accounts[1].orders, "a GFD close order expires at settlement"
    assert place(model, 5, 1, Side.SELL, 120, 3, Offset.CLOSE, SHFE) is ResultCode.OK
    assert place(model, 6, 1, Side.SELL, 120, 1, Offset.CLOSETODAY, SHFE) is (
        ResultCode.INSUFFICIENT_POSITION
    )
    assert conserved(model)


def test_close_history_first_elsewhere(model: RefExchange) -> None:
    """Outside SHFE a CLOSE takes history first, then today; the fill charges each its rate."""
    assert place(model, 1, 1, Side.BUY, 100, 2) is ResultCode.OK
    assert place(model, 2, 2, Side.SELL, 100, 2) is ResultCode.OK
    assert model.set_price(IX, 100) is ResultCode.OK
    assert model.settle(20250102) is ResultCode.OK
    assert place(model, 3, 1, Side.BUY, 100, 1) is ResultCode.OK
    assert place(model, 4, 2, Side.SELL, 100, 1) is ResultCode.OK
    assert place(model, 5, 1, Side.SELL, 101, 3, Offset.CLOSE) is ResultCode.OK
    assert model.frozen_volume(1, IX, Side.BUY) == (2, 1)
    assert place(model, 6, 3, Side.BUY, 101, 3) is ResultCode.OK
    assert model.accounts[1].flows["CNY"].close_profit == 3 * 200 * YUAN
    assert IX not in model.accounts[1].positions
    assert conserved(model)


def test_fok_is_atomic(model: RefExchange) -> None:
    assert place(model, 1, 1, Side.SELL, 100, 5) is ResultCode.OK
    fok = {"time_condition": TimeCondition.IOC, "volume_condition": VolumeCondition.ALL}
    assert place(model, 2, 2, Side.BUY, 100, 6, **fok) is ResultCode.OK
    assert model.trades == []
    assert model.cancels[-1][1:] == (CancelReason.FOK_UNFILLED, 6)
    assert model.frozen(2, "CNY") == (0, 0, 0)
    assert place(model, 3, 2, Side.BUY, 100, 5, **fok) is ResultCode.OK
    assert [t.qty for t in model.trades] == [5]
    assert conserved(model)


def test_min_quantity(model: RefExchange) -> None:
    """MIN: at least min_qty now or nothing; a GFD remainder then rests."""
    assert place(model, 1, 1, Side.SELL, 100, 3) is ResultCode.OK
    mins = {"volume_condition": VolumeCondition.MIN}
    assert place(model, 2, 2, Side.BUY, 100, 8, min_qty=4, **mins) is ResultCode.OK
    assert model.cancels[-1][1:] == (CancelReason.MIN_UNFILLED, 8)
    assert place(model, 3, 2, Side.BUY, 100, 8, min_qty=3, **mins) is ResultCode.OK
    assert model.order_info(3) == (2, IX, 100, 5)


def test_amend_priority(model: RefExchange) -> None:
    """A decrease keeps the queue position; an increase or a price change loses it."""
    assert place(model, 1, 1, Side.SELL, 100, 5) is ResultCode.OK
    assert place(model, 2, 2, Side.SELL, 100, 5) is ResultCode.OK
    assert model.amend(1, 1, 100, 4) is ResultCode.OK
    assert [o.order_id for o in model.books[IX].orders(Side.SELL)] == [1, 2]
    assert model.amend(1, 1, 100, 6) is ResultCode.OK
    assert [o.order_id for o in model.books[IX].orders(Side.SELL)] == [2, 1]
    assert model.amend(2, 2, 99, 5) is ResultCode.OK
    assert model.amend(2, 2, 100, 5) is ResultCode.OK
    assert [o.order_id for o in model.books[IX].orders(Side.SELL)] == [1, 2]
    assert place(model, 3, 3, Side.BUY, 100, 2) is ResultCode.OK
    assert model.trades[-1].maker_order_id == 1
    assert model.amend(3, 1, 100, 1) is ResultCode.ORDER_NOT_FOUND, "not the owner"


def test_self_trade_prevention_cancels_the_taker(model: RefExchange) -> None:
    assert place(model, 1, 2, Side.SELL, 99, 2) is ResultCode.OK
    assert place(model, 2, 1, Side.SELL, 100, 5) is ResultCode.OK
    assert place(model, 3, 1, Side.BUY, 100, 10) is ResultCode.OK
    assert [(t.maker_order_id, t.qty) for t in model.trades] == [(1, 2)]
    assert model.cancels[-1] == (3, CancelReason.SELF_TRADE, 8)
    assert model.order_info(2) == (1, IX, 100, 5), "the resting order of the same account stays"
    assert conserved(model)


def test_band_and_parameter_rejections(model: RefExchange) -> None:
    assert place(model, 1, 1, Side.BUY, 151, 1) is ResultCode.PRICE_OUT_OF_BAND
    assert place(model, 2, 1, Side.SELL, 49, 1) is ResultCode.PRICE_OUT_OF_BAND
    assert place(model, 3, 1, Side.BUY, 150, 1) is ResultCode.OK
    assert place(model, 4, 1, Side.BUY, 100, 0) is ResultCode.BAD_ORDER_PARAMETER
    assert place(model, 5, 9, Side.BUY, 100, 1) is ResultCode.NO_SUCH_ACCOUNT
    assert place(model, 6, 1, Side.BUY, 100, 1, instrument=7) is ResultCode.NO_SUCH_INSTRUMENT
    assert place(model, 7, 1, Side.SELL, 100, 1, Offset.CLOSE) is ResultCode.INSUFFICIENT_POSITION


def test_market_order_is_ioc_at_the_band(model: RefExchange) -> None:
    assert place(model, 1, 1, Side.SELL, 140, 2) is ResultCode.OK
    market = {"order_type": OrderType.MARKET}
    assert place(model, 2, 2, Side.BUY, 0, 5, **market) is ResultCode.OK
    assert [(t.price, t.qty) for t in model.trades] == [(140, 2)]
    assert model.cancels[-1] == (2, CancelReason.IOC_REMAINDER, 3)


def test_risk_codes(model: RefExchange) -> None:
    """1001 funds; 1003 order value cap (10M); 1002 concentration above half the balance."""
    assert place(model, 1, 1, Side.BUY, 100, 600) is ResultCode.ORDER_VALUE_CAP
    assert place(model, 2, 1, Side.BUY, 100, 260) is ResultCode.CONCENTRATION_LIMIT
    assert place(model, 3, 1, Side.BUY, 100, 240) is ResultCode.OK
    assert model.transfer(1, "CNY", 700_000 * YUAN, 10, -1) is ResultCode.WITHDRAW_FAILED
    assert model.transfer(1, "CNY", 500_000 * YUAN, 10, -1) is ResultCode.OK
    assert model.transfer(1, "CNY", 500_000 * YUAN, 10, -1) is ResultCode.OK, "idempotent"
    assert model.withdrawals["CNY"] == 500_000 * YUAN
    assert model.transfer(1, "CNY", 1 * YUAN, 10, -1) is ResultCode.WITHDRAW_FAILED, "reused"
    assert model.transfer(1, "CNY", 1 * YUAN, 10, 1) is ResultCode.DEPOSIT_FAILED, "reused"
    assert place(model, 4, 1, Side.BUY, 100, 20) is ResultCode.INSUFFICIENT_FUNDS


def test_settlement_with_liquidation(model: RefExchange) -> None:
    """A move that leaves margin ≥ balance force-closes the account at settlement."""
    assert model.transfer(1, "CNY", 995_000 * YUAN, 20, -1) is ResultCode.OK
    assert place(model, 1, 1, Side.BUY, 100, 1) is ResultCode.OK
    assert place(model, 2, 2, Side.SELL, 100, 1) is ResultCode.OK
    assert place(model, 3, 3, Side.BUY, 60, 5, time_condition=TimeCondition.GTC) is ResultCode.OK
    assert model.settle(20250102) is ResultCode.NO_SETTLEMENT_PRICE
    assert model.set_price(IX, 0) is ResultCode.BAD_ORDER_PARAMETER
    assert model.set_price(IX, 80) is ResultCode.OK
    assert model.settle(20250102) is ResultCode.OK
    assert model.settled_days[20250102][2] == (1,)
    assert model.band(IX) == (40, 120)
    last = model.trades[-1]
    assert (last.price, last.qty, last.maker_account_id, last.taker_account_id) == (60, 1, 3, 1)
    assert IX not in model.accounts[1].positions
    assert model.settle(20250102) is ResultCode.SETTLEMENT_FAILED
    assert conserved(model)


def test_suspension(model: RefExchange) -> None:
    """Suspended: new orders 4004; an amend is answered OK but matching refuses it (no change);
    cancels still work; resuming restores trading."""
    assert place(model, 1, 1, Side.SELL, 100, 5) is ResultCode.OK
    assert model.set_trading(IX, False) is ResultCode.OK
    assert place(model, 2, 2, Side.BUY, 100, 1) is ResultCode.INSTRUMENT_NOT_TRADING
    assert model.amend(1, 1, 101, 3) is ResultCode.OK
    assert model.order_info(1) == (1, IX, 100, 5)
    assert model.set_trading(IX, True) is ResultCode.OK
    assert place(model, 3, 2, Side.BUY, 100, 1) is ResultCode.OK
    assert model.set_trading(IX, False) is ResultCode.OK
    assert model.cancel(1, 1) is ResultCode.OK
    assert model.cancels[-1] == (1, CancelReason.USER, 4)
