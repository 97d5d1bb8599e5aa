"""DIFF message builders: quote fields incl. static ones, NaN as "NAN", charts, trade tree."""

from pathlib import Path

from engine.enums import OrderStatus
from engine.instruments import InstrumentRegistry
from gateway.diff import messages as m
from gateway.diff.merge_patch import apply_merge_patch

INSTRUMENTS = InstrumentRegistry.from_toml(
    (Path(__file__).resolve().parents[3] / "services" / "instruments.toml").read_text()
)


def test_static_quote_carries_what_a_stock_client_needs() -> None:
    instrument = INSTRUMENTS.get("CFFEX.IF2501")
    assert instrument is not None
    static = m.static_quote(instrument)
    assert static["price_tick"] == 0.2
    assert static["price_decs"] == 1
    assert static["volume_multiple"] == 300
    assert static["exchange_id"] == "CFFEX"
    assert static["ins_class"] == "FUTURE"
    assert (static["min_limit_order_volume"], static["max_limit_order_volume"]) == (1, 20)
    assert static["margin"] == 3800.0 * 300 * 0.12
    assert static["upper_limit"] == 4180.0 and static["lower_limit"] == 3420.0


def test_a_first_quote_has_every_spec_field_and_nan_as_the_string() -> None:
    instrument = INSTRUMENTS.get("CFFEX.IF2501")
    assert instrument is not None
    market = m.quote_fields(
        {"last_price": 3801.2, "datetime_ns": 1_700_000_000_123_456_789, "bid_price1": float("nan")}
    )
    patch = m.full_quote("CFFEX.IF2501", m.static_quote(instrument), market)
    quote = patch["quotes"]["CFFEX.IF2501"]
    for field in (*m.QUOTE_MARKET_FIELDS, *m.QUOTE_STATIC_FIELDS):
        assert field in quote, field
    assert quote["bid_price1"] == "NAN"
    assert quote["ask_volume5"] == "NAN"
    assert quote["last_price"] == 3801.2
    assert quote["datetime"] == "2023-11-15 06:13:20.123456"


def test_quote_datetime_is_exchange_local_time_with_microseconds() -> None:
    assert m.quote_datetime(0) == "1970-01-01 08:00:00.000000"
    assert m.quote_datetime(1_500) == "1970-01-01 08:00:00.000001"


def test_charts_klines_and_last_id() -> None:
    request = {
        "chart_id": "c1",
        "ins_list": "CFFEX.IF2501",
        "duration": 60 * 10**9,
        "view_width": 2,
    }
    state = apply_merge_patch({}, m.chart_patch("c1", request, 7, 8))
    bars = [(7, {"datetime": 1, "open": 1.0, "close": float("nan")}), (8, {"datetime": 2})]
    state = apply_merge_patch(state, m.kline_patch("CFFEX.IF2501", 60 * 10**9, bars, 8))
    chart = state["charts"]["c1"]
    assert (chart["left_id"], chart["right_id"], chart["ready"]) == (7, 8, True)
    assert chart["state"] == request
    series = state["klines"]["CFFEX.IF2501"][str(60 * 10**9)]
    assert series["last_id"] == 8
    assert series["data"]["7"]["close"] == "NAN"
    rolled = m.kline_patch("CFFEX.IF2501", 60 * 10**9, [(7, None), (9, {"datetime": 3})], 9)
    series = apply_merge_patch(state, rolled)["klines"]["CFFEX.IF2501"][str(60 * 10**9)]
    assert sorted(series["data"]) == ["8", "9"]


def test_startup_flags_and_trade_tree() -> None:
    assert m.MDHIS_READY == {"mdhis_more_data": False}
    state = apply_merge_patch({}, m.trade_ready_patch("alice"))
    assert state["trade"]["alice"]["trade_more_data"] is False
    assert set(state["trade"]["alice"]) >= {"accounts", "positions", "orders", "trades"}
    state = apply_merge_patch(state, m.account_patch("alice", {"balance": 10.5, "available": 5}))
    assert state["trade"]["alice"]["accounts"]["CNY"] == {"balance": 10.5, "available": 5}


def test_orders_and_trades_in_diff_shape() -> None:
    order = {
        "order_id": 42,
        "client_order_id": "my-1",
        "instrument_id": "CFFEX.IF2501",
        "direction": "BUY",
        "offset": "OPEN",
        "order_type": "LIMIT",
        "price": 3800.2,
        "volume": 2,
        "filled_volume": 1,
        "remaining_volume": 1,
        "status": "PARTIALLY_FILLED",
        "time_condition": "GFD",
        "volume_condition": "ANY",
        "last_msg": "",
        "insert_time_ns": 5,
        "update_time_ns": 6,
    }
    diff = m.diff_order(order)
    assert (diff["order_id"], diff["exchange_order_id"], diff["instrument_id"]) == (
        "my-1",
        "42",
        "IF2501",
    )
    assert (diff["status"], diff["volume_orign"], diff["volume_left"]) == ("ALIVE", 2, 1)
    assert m.diff_order({**order, "status": "CANCELLED"})["status"] == "FINISHED"
    assert m.order_key({**order, "client_order_id": None}) == "42"
    trade = {
        "trade_id": 43,
        "order_id": 42,
        "client_order_id": "my-1",
        "instrument_id": "CFFEX.IF2501",
        "direction": "BUY",
        "offset": "OPEN",
        "price": 3800.2,
        "volume": 1,
        "commission": 0.5,
        "trade_time_ns": 7,
    }
    assert m.diff_trade(trade)["order_id"] == "my-1"
    assert m.diff_trade(trade)["trade_date_time"] == 7


def test_order_status_is_alive_or_finished() -> None:
    alive = {s for s in OrderStatus if m.order_status(s) == "ALIVE"}
    assert alive == {OrderStatus.PENDING, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED}


def test_notify_and_ins_list() -> None:
    assert m.notify_patch("n1", 9001, "bad", "ERROR") == {
        "notify": {"n1": {"type": "MESSAGE", "level": "ERROR", "code": 9001, "content": "bad"}}
    }
    assert m.ins_list_patch("SHFE.cu2501,CFFEX.IF2501") == {"ins_list": "SHFE.cu2501,CFFEX.IF2501"}
