"""Settlement: prices, 6001, marking and rolling, forced liquidation, results by day."""

from __future__ import annotations

from engine.accounts import commands as c
from engine.accounts.events import AccountLiquidated, OrderUpdated, SettlementCompleted
from engine.accounts.risk import RiskConfig
from engine.codes import ResultCode
from engine.enums import Offset, OrderStatus, Side, TimeCondition
from tests.unit.engine.accounts.conftest import CNY, CU, IX, Desk

LOOSE = RiskConfig(max_concentration_e8=None, max_risk_ratio_e8=None)


def _long_45_at_100(desk: Desk) -> None:
    """Account 1 goes long 45 lots at 100.0 on 100,000 CNY (margin 90,000); 2 is short."""
    desk.open_account(1, 100_000 * CNY)
    desk.open_account(2, 10_000_000 * CNY)
    desk.open_account(3, 10_000_000 * CNY)
    desk.order(1, IX, Side.BUY, Offset.OPEN, 1000, 45)
    desk.order(2, IX, Side.SELL, Offset.OPEN, 1000, 45)


def test_execute_refuses_while_a_held_instrument_has_no_price(desk: Desk) -> None:
    desk.open_account(1, 1_000_000 * CNY)
    desk.open_account(2, 1_000_000 * CNY)
    desk.order(1, IX, Side.BUY, Offset.OPEN, 1000, 1)
    desk.order(2, IX, Side.SELL, Offset.OPEN, 1000, 1)
    desk.run(c.ExecuteSettlement, 20250102)
    assert desk.code() is ResultCode.NO_SETTLEMENT_PRICE
    assert "CFFEX.IX2401" in desk.answer().message
    desk.run(c.SetSettlementPrice, IX, 0)
    assert desk.code() is ResultCode.BAD_ORDER_PARAMETER
    desk.run(c.SetSettlementPrice, IX, 1010)
    desk.run(c.ExecuteSettlement, 20250102)
    assert desk.code() is ResultCode.OK
    desk.run(c.ExecuteSettlement, 20250102)
    assert desk.code() is ResultCode.SETTLEMENT_FAILED


def test_settlement_marks_rolls_and_records_the_day(desk: Desk) -> None:
    desk.open_account(1, 1_000_000 * CNY)
    desk.open_account(2, 1_000_000 * CNY)
    desk.order(1, IX, Side.BUY, Offset.OPEN, 1000, 10)
    desk.order(2, IX, Side.SELL, Offset.OPEN, 1000, 10)
    desk.run(c.SetSettlementPrice, IX, 1010)
    desk.run(c.ExecuteSettlement, 20250102)
    account = desk.qifi(1)
    assert account["pre_balance"] == 1_000_000 - 0.5 + 2_000  # (101 − 100) × 10 × 200
    assert (account["close_profit"], account["commission"], account["deposit"]) == (0, 0, 0)
    assert account["position_profit"] == 0.0
    assert account["margin"] == 20_200.0  # re-margined at the settlement price
    position = desk.core.to_qifi(1)["positions"]["CFFEX.IX2401"]
    assert (position["volume_long_his"], position["volume_long_today"]) == (10.0, 0.0)
    assert position["position_price_long"] == 101.0
    assert position["open_price_long"] == 100.0
    assert position["float_profit"] == 2_000.0
    result = next(e for e in desk.events if isinstance(e, SettlementCompleted)).result
    assert (result.total, result.settled, result.failed, result.force_closed) == (2, 2, 0, ())
    assert result.commission == (("CNY", 100),)
    assert result.profit == (("CNY", 0),)
    assert desk.core.instruments.by_index(IX).pre_settlement == 1010
    assert desk.exchange.matching.instruments.by_index(IX).upper_limit == 1111
    desk.run(c.SetSettlementPrice, IX, 1020)
    desk.run(c.ExecuteSettlement, 20250103)
    assert [r.trading_day for r in desk.core.settlement_results()] == [20250102, 20250103]
    assert [r.trading_day for r in desk.core.settlement_results(20250103)] == [20250103]


def test_settlement_force_closes_accounts_at_the_threshold() -> None:
    desk = Desk(LOOSE)
    _long_45_at_100(desk)
    desk.order(3, IX, Side.BUY, Offset.OPEN, 970, 45, time_condition=TimeCondition.GTC)
    desk.run(c.SetSettlementPrice, IX, 980)
    desk.run(c.ExecuteSettlement, 20250102)
    assert desk.code() is ResultCode.OK
    liquidated = [e for e in desk.events if isinstance(e, AccountLiquidated)]
    assert [e.account_id for e in liquidated] == [1]
    assert liquidated[0].risk_ratio_e8 >= 10**8  # 88,200 margin on ~82,000 balance
    result = next(e for e in desk.events if isinstance(e, SettlementCompleted)).result
    assert result.force_closed == (1,)
    assert desk.position(1, IX) is None
    assert desk.position(3, IX).long.today == 45
    account = desk.qifi(1)
    assert account["margin"] == 0.0
    assert account["balance"] == 100_000 - 2.25 - 2.25 - 3 * 45 * 200  # sold at 97.0


def test_intraday_liquidation_on_a_trade_print_when_enabled() -> None:
    for enabled in (False, True):
        desk = Desk(RiskConfig(max_concentration_e8=None, max_risk_ratio_e8=None,
                               intraday_liquidation=enabled))  # fmt: skip
        _long_45_at_100(desk)
        desk.open_account(4, 10_000_000 * CNY)
        desk.order(4, IX, Side.BUY, Offset.OPEN, 970, 45, time_condition=TimeCondition.GTC)
        desk.order(3, IX, Side.BUY, Offset.OPEN, 980, 1)
        desk.order(2, IX, Side.SELL, Offset.OPEN, 980, 1)
        liquidated = [e for e in desk.events if isinstance(e, AccountLiquidated)]
        assert [e.account_id for e in liquidated] == ([1] if enabled else [])
        assert (desk.position(1, IX) is None) is enabled


def test_delist_is_refused_while_positions_are_open_and_names_the_holders(desk: Desk) -> None:
    desk.open_account(1, 1_000_000 * CNY)
    desk.open_account(2, 1_000_000 * CNY)
    desk.order(1, IX, Side.BUY, Offset.OPEN, 1000, 1)
    desk.order(2, IX, Side.SELL, Offset.OPEN, 1000, 1)
    desk.run(c.DelistInstrument, "CFFEX.IX2401")
    assert desk.code() is ResultCode.INSTRUMENT_HAS_POSITIONS
    assert "1, 2" in desk.answer().message
    desk.order(1, IX, Side.SELL, Offset.CLOSE, 1000, 1)
    desk.order(2, IX, Side.BUY, Offset.CLOSE, 1000, 1)
    desk.run(c.DelistInstrument, "CFFEX.IX2401")
    assert desk.code() is ResultCode.OK
    desk.order(1, IX, Side.BUY, Offset.OPEN, 1000, 1)
    assert desk.code() is ResultCode.INSTRUMENT_NOT_TRADING


def test_created_instrument_reaches_matching_and_trades(desk: Desk) -> None:
    desk.open_account(1, 1_000_000 * CNY)
    desk.open_account(2, 1_000_000 * CNY)
    fields = {"id": "CFFEX.IX2402", "currency": "CNY", "multiplier": 200, "price_tick": "0.1",
              "margin_rate": "0.1", "band": "0.1", "pre_close": "100.0"}  # fmt: skip
    desk.run(c.CreateInstrument, fields)
    assert desk.code() is ResultCode.OK
    index = desk.core.instruments.get("CFFEX.IX2402").index
    desk.order(1, index, Side.BUY, Offset.OPEN, 1000, 2)
    desk.order(2, index, Side.SELL, Offset.OPEN, 1000, 2)
    assert desk.position(1, index).long.today == 2
    desk.run(c.CreateInstrument, fields)
    assert desk.code() is ResultCode.INSTRUMENT_EXISTS


def test_shfe_liquidation_closes_history_with_close_and_today_with_closetoday() -> None:
    desk = Desk(RiskConfig(max_concentration_e8=None, max_risk_ratio_e8=None,
                           intraday_liquidation=True, liquidation_ratio_e8=80_000_000))  # fmt: skip
    desk.open_account(1, 100_000 * CNY)
    desk.open_account(2, 10_000_000 * CNY)
    desk.open_account(3, 10_000_000 * CNY)
    desk.order(1, CU, Side.BUY, Offset.OPEN, 5000, 2)  # margin 25,000 a lot
    desk.order(2, CU, Side.SELL, Offset.OPEN, 5000, 2)
    desk.run(c.SetSettlementPrice, CU, 5000)
    desk.run(c.ExecuteSettlement, 20250102)
    desk.order(1, CU, Side.BUY, Offset.OPEN, 5000, 1)
    desk.order(2, CU, Side.SELL, Offset.OPEN, 5000, 1)
    assert not [e for e in desk.events if isinstance(e, AccountLiquidated)]  # 75% < 80%
    desk.order(3, CU, Side.BUY, Offset.OPEN, 4700, 10, time_condition=TimeCondition.GTC)
    desk.order(3, CU, Side.BUY, Offset.OPEN, 4800, 1)
    desk.order(2, CU, Side.SELL, Offset.OPEN, 4800, 1)  # 4800: 30,000 lost, 75,000 margin on 70,000
    closers = [e for e in desk.events if isinstance(e, OrderUpdated) and e.account_id == 1]
    placed = [(e.offset, e.qty) for e in closers if e.status is OrderStatus.PENDING]
    assert placed == [(Offset.CLOSE, 2), (Offset.CLOSETODAY, 1)]
    assert desk.position(1, CU) is None
