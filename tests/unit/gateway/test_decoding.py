"""Bad input at the edge: sizes, charsets, broken JSON, wrong types, NaN, off-tick prices."""

from decimal import Decimal
from pathlib import Path

import pytest

from engine.codes import ResultCode
from engine.enums import Offset, OrderType, Side, TimeCondition, VolumeCondition
from engine.instruments import InstrumentRegistry
from gateway.commands import adjust_balance, place_diff_order, place_order
from gateway.decoding import REST_BODY_LIMIT, WS_FRAME_LIMIT, decode_body, decode_frame
from gateway.errors import Rejected
from gateway.requests import (
    ADJUST_BALANCE,
    BATCH_SET_SETTLEMENT_PRICES,
    DIFF_INSERT_ORDER,
    SUBMIT_ORDER,
)

INSTRUMENTS = InstrumentRegistry.from_toml(
    (Path(__file__).resolve().parents[3] / "services" / "instruments.toml").read_text()
)

ORDER = {
    "account_id": 3,
    "instrument_id": "CFFEX.IF2501",
    "direction": "BUY",
    "offset": "OPEN",
    "volume": 2,
    "price": 3800.2,
    "order_type": "LIMIT",
}


def _refused(call, *args) -> Rejected:  # type: ignore[no-untyped-def]
    with pytest.raises(Rejected) as refused:
        call(*args)
    return refused.value


def _order(**changes: object) -> dict[str, object]:
    body = {**ORDER, **changes}
    return {k: v for k, v in body.items() if v is not ...}


def _submit(body: dict[str, object]):  # type: ignore[no-untyped-def]
    return place_order(1, SUBMIT_ORDER.parse(body), INSTRUMENTS.get)


def test_a_good_order_becomes_ticks_and_lots() -> None:
    command = _submit(ORDER)
    assert (command.price, command.qty) == (19001, 2)
    assert (command.side, command.offset) == (Side.BUY, Offset.OPEN)
    assert command.order_type is OrderType.LIMIT
    assert command.time_condition is TimeCondition.GFD
    assert command.volume_condition is VolumeCondition.ANY


def test_choices_accept_any_case_and_aliases() -> None:
    command = _submit(_order(direction="Sell", offset="close_today", order_type="limit"))
    assert (command.side, command.offset) == (Side.SELL, Offset.CLOSETODAY)


def test_float_prices_are_read_as_the_decimal_literal() -> None:
    assert _submit(_order(price=3800.4)).price == 19002
    assert _submit(_order(price=4180)).price == 20900


@pytest.mark.parametrize(
    ("changes", "code", "mentions"),
    [
        ({"price": "3800.2"}, ResultCode.BAD_MESSAGE, "expected a number, got string"),
        ({"volume": "2"}, ResultCode.BAD_MESSAGE, "volume"),
        ({"volume": True}, ResultCode.BAD_MESSAGE, "got boolean"),
        ({"account_id": 1.5}, ResultCode.BAD_MESSAGE, "integer"),
        ({"direction": 1}, ResultCode.BAD_MESSAGE, "direction"),
        ({"direction": "UP"}, ResultCode.BAD_MESSAGE, "expected one of"),
        ({"direction": "NONE"}, ResultCode.BAD_MESSAGE, "expected one of"),
        ({"instrument_id": ...}, ResultCode.BAD_MESSAGE, "'instrument_id': is required"),
        ({"instrument_id": "CFFEX.IF2501;drop"}, ResultCode.BAD_MESSAGE, "does not match"),
        ({"prise": 1}, ResultCode.BAD_MESSAGE, "unknown fields ['prise']"),
        ({"price": -1}, ResultCode.BAD_ORDER_PARAMETER, "must be positive"),
        ({"price": 0}, ResultCode.BAD_ORDER_PARAMETER, "must be positive"),
        ({"volume": -2}, ResultCode.BAD_ORDER_PARAMETER, "must be positive"),
        ({"price": 3800.1}, ResultCode.PRICE_NOT_ON_TICK, "tick"),
        ({"volume": 1.5}, ResultCode.BAD_ORDER_PARAMETER, "whole number of lots"),
        ({"price": ...}, ResultCode.BAD_ORDER_PARAMETER, "needs a positive price"),
        ({"instrument_id": "CFFEX.NOPE"}, ResultCode.NO_SUCH_INSTRUMENT, "CFFEX.NOPE"),
    ],
)
def test_bad_orders_get_a_code_naming_the_problem(
    changes: dict[str, object], code: ResultCode, mentions: str
) -> None:
    refused = _refused(_submit, _order(**changes))
    assert refused.code is code
    assert mentions in refused.message


def test_a_market_order_needs_no_price() -> None:
    command = _submit(_order(price=..., order_type="MARKET"))
    assert (command.order_type, command.price) == (OrderType.MARKET, 0)


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        (b'{"a": 1', "broken JSON"),
        (b"", "empty body"),
        (b"[1, 2]", "expected a JSON object, got array"),
        (b'{"price": NaN}', "broken JSON"),
        (b'{"price": Infinity}', "broken JSON"),
        (b'{"price": -Infinity}', "broken JSON"),
        (b'{"price": 1e999}', "infinity"),
        (b'{"s": "\\ud800"}', "broken JSON"),
    ],
)
def test_broken_json_is_refused_with_9003(body: bytes, mentions: str) -> None:
    refused = _refused(decode_body, body)
    assert refused.code is ResultCode.BAD_MESSAGE
    assert mentions in refused.message


def test_oversized_bodies_and_frames_are_9007() -> None:
    big = b'{"x": "' + b"a" * (1024 * 1024) + b'"}'
    assert _refused(decode_body, big).code is ResultCode.PAYLOAD_TOO_LARGE
    assert decode_body(b'{"x": "' + b"a" * (REST_BODY_LIMIT - 20) + b'"}')
    assert _refused(decode_frame, big.decode()).code is ResultCode.PAYLOAD_TOO_LARGE
    multibyte = '{"x": "' + "铜" * (WS_FRAME_LIMIT // 3) + '"}'
    assert _refused(decode_frame, multibyte).code is ResultCode.PAYLOAD_TOO_LARGE
    assert decode_frame('{"x": "' + "铜" * 1000 + '"}')["x"] == "铜" * 1000


def test_a_gbk_body_is_detected_and_decoded() -> None:
    text = '{"account_name": "上海期货交易所 铜 期货 账户 测试 买入 开仓 平仓"}'
    assert decode_body(text.encode("gbk")) == {
        "account_name": "上海期货交易所 铜 期货 账户 测试 买入 开仓 平仓"
    }


def test_a_declared_charset_is_used() -> None:
    body = '{"name": "铜"}'.encode("gb18030")
    assert decode_body(body, "GB18030") == {"name": "铜"}
    refused = _refused(decode_body, b'{"name": "\xff\xfe\xfd"}', "shift_jis")
    assert refused.code is ResultCode.BAD_MESSAGE
    assert "not valid shift_jis" in refused.message


def test_undecodable_bytes_are_9003_naming_the_detection() -> None:
    refused = _refused(decode_body, bytes(range(128, 256)) * 4)
    assert refused.code is ResultCode.BAD_MESSAGE
    assert "not UTF-8; detected" in refused.message
    assert "confidence" in refused.message


def test_binary_bodies_are_refused() -> None:
    refused = _refused(decode_body, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00")
    assert refused.code is ResultCode.BAD_MESSAGE


def test_money_is_fixed_point_and_refuses_extra_decimals() -> None:
    fields = ADJUST_BALANCE.parse({"account_id": 3, "amount": 1000.25, "transaction_id": 1})
    assert adjust_balance(1, fields, -1).amount == -100025
    fields = ADJUST_BALANCE.parse({"account_id": 3, "amount": 0.001, "transaction_id": 2})
    refused = _refused(adjust_balance, 1, fields, 1)
    assert "more than 2 decimals" in refused.message
    refused = _refused(ADJUST_BALANCE.parse, {"account_id": 3, "amount": 5, "transaction_id": "7"})
    assert "transaction_id" in refused.message


def test_nested_objects_are_checked_item_by_item() -> None:
    good = {"prices": [{"instrument_id": "SHFE.cu2501", "settlement_price": 70000}]}
    assert BATCH_SET_SETTLEMENT_PRICES.parse(good)["prices"][0]["settlement_price"] == Decimal(
        70000
    )
    bad = {"prices": [{"instrument_id": "SHFE.cu2501", "settlement_price": "x"}]}
    assert "settlement_price" in _refused(BATCH_SET_SETTLEMENT_PRICES.parse, bad).message


DIFF_ORDER = {
    "aid": "insert_order",
    "user_id": "alice",
    "order_id": "my-1",
    "exchange_id": "CFFEX",
    "instrument_id": "IF2501",
    "direction": "SELL",
    "offset": "CLOSETODAY",
    "volume": 1,
    "price_type": "LIMIT",
    "limit_price": 3900.0,
    "volume_condition": "ANY",
    "time_condition": "GFD",
    "some_future_field": {"ignored": True},
}


def test_diff_orders_ignore_unknown_fields_and_map_price_types() -> None:
    command = place_diff_order(1, 5, DIFF_INSERT_ORDER.parse(DIFF_ORDER), INSTRUMENTS.get)
    assert command.instrument_id == "CFFEX.IF2501"
    assert (command.price, command.client_order_id) == (19500, "my-1")
    market = {**DIFF_ORDER, "price_type": "ANY", "time_condition": "IOC"}
    command = place_diff_order(1, 5, DIFF_INSERT_ORDER.parse(market), INSTRUMENTS.get)
    assert (command.order_type, command.time_condition, command.price) == (
        OrderType.MARKET,
        TimeCondition.IOC,
        0,
    )
    gtd = DIFF_INSERT_ORDER.parse({**DIFF_ORDER, "time_condition": "GTD"})
    assert _refused(place_diff_order, 1, 5, gtd, INSTRUMENTS.get).code is (
        ResultCode.BAD_ORDER_PARAMETER
    )
