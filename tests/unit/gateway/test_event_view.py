"""Engine events → the edge's JSON: driven by the real accounts core and matching engine, and
checked against the core's own QIFI rendering (what the accounts `account` query answers)."""

from typing import Any

import pytest

from engine.accounts import commands as c
from engine.accounts.events import AccountUpdated, OrderUpdated, PositionUpdated, TradeBooked
from engine.codes import ResultCode
from engine.enums import Offset, OrderStatus, OrderType, Side, TimeCondition, VolumeCondition
from engine.exchange import Exchange
from gateway.backend import Answer, EventKind
from gateway.encoding import to_json
from gateway.event_view import EventRenderer, OrderDetails
from gateway.native_ws import ORDER_ACCEPTED, _order_response
from gateway.ring_backend import flatten_qifi
from gateway.views import event_message
from tests.unit.engine.accounts.conftest import CNY, IX, registry


def _crossed() -> tuple[Exchange, list[Any]]:
    exchange = Exchange(registry())
    events: list[Any] = []
    for command in (
        c.OpenAccount(1, 1),
        c.OpenAccount(2, 2),
        c.Deposit(3, 1, 1_000_000 * CNY, 1),
        c.Deposit(4, 2, 1_000_000 * CNY, 2),
        c.SubmitOrder(5, 1, IX, Side.BUY, Offset.OPEN, 1000, 3),
        c.SubmitOrder(6, 2, IX, Side.SELL, Offset.OPEN, 1000, 2),
    ):
        events = exchange.apply(command)
    return exchange, events


def test_a_fill_renders_every_kind_for_the_watched_account_only() -> None:
    exchange, events = _crossed()
    renderer = EventRenderer(exchange.accounts.instruments)
    rendered = renderer.render(events, {1: 42})
    assert {e.user_id for e in rendered} == {42}
    assert {e.account_id for e in rendered} == {1}
    kinds = {e.kind for e in rendered}
    assert {EventKind.ORDER_STATUS, EventKind.TRADE, EventKind.ACCOUNT} <= kinds
    order = next(e.data for e in rendered if e.kind is EventKind.ORDER_STATUS)
    assert order["status"] == "PARTIALLY_FILLED"
    assert order["filled_volume"] + order["remaining_volume"] == order["volume"] == 3


def test_pushed_money_equals_the_qifi_query() -> None:
    exchange, events = _crossed()
    renderer = EventRenderer(exchange.accounts.instruments)
    for account_id in (1, 2):
        pushed = [e for e in events if type(e) is AccountUpdated and e.account_id == account_id]
        queried = flatten_qifi(account_id, exchange.accounts.to_qifi(account_id))
        data = renderer.account(pushed[-1])
        for name in ("balance", "available", "margin", "commission", "frozen_margin"):
            assert data[name] == pytest.approx(queried[name]), name


def test_positions_and_trades_match_the_core() -> None:
    exchange, events = _crossed()
    renderer = EventRenderer(exchange.accounts.instruments)
    position = next(e for e in events if type(e) is PositionUpdated and e.account_id == 2)
    data = renderer.position(position)
    qifi = exchange.accounts.to_qifi(2)["positions"][data["instrument_id"]]
    assert data["volume_short"] == qifi["volume_short"] == 2
    trade = next(e for e in events if type(e) is TradeBooked and e.account_id == 1)
    row = renderer.trade_row(
        {**trade._asdict(), "side": int(trade.side), "offset": int(trade.offset)}
    )
    assert row == renderer.trade(trade)


def test_client_details_follow_an_order_until_it_finishes() -> None:
    exchange, events = _crossed()
    renderer = EventRenderer(exchange.accounts.instruments)
    update = next(e for e in events if type(e) is OrderUpdated and e.account_id == 1)
    details = OrderDetails("mine-1", OrderType.LIMIT, TimeCondition.GTC, VolumeCondition.ANY, 7)
    renderer.remember(update.order_id, 1, details)
    assert renderer.by_client_id(1, "mine-1") == update.order_id
    assert renderer.by_client_id(2, "mine-1") is None
    data = renderer.order(update)
    assert data["client_order_id"] == "mine-1" and data["time_condition"] == "GTC"
    finished = exchange.apply(c.CancelOrder(9, 1, update.order_id))
    cancelled = next(e for e in finished if type(e) is OrderUpdated)
    assert renderer.order(cancelled)["client_order_id"] == "mine-1"
    assert renderer.order(cancelled)["status"] == "CANCELLED"
    _track(renderer, [cancelled])
    assert renderer.by_client_id(1, "mine-1") is None
    assert not renderer.details and not renderer.order_accounts


def _track(renderer: EventRenderer, updates: list[OrderUpdated]) -> None:
    """What the backend does with an `events` read's ORDER_UPDATED columns."""
    renderer.track(
        [u.order_id for u in updates], [u.account_id for u in updates], [u.status for u in updates]
    )


def _update(order_id: int, status: OrderStatus) -> OrderUpdated:
    return OrderUpdated(1, order_id, IX, Side.BUY, Offset.OPEN, 1000, 1, 0, status, 0, 0)


def test_order_memory_shrinks_as_orders_finish() -> None:
    """Every order placed here or seen in `events` is remembered until its final update;
    a thousand orders that all finish leave nothing behind, live ones stay."""
    renderer = EventRenderer(registry())
    details = OrderDetails(None, OrderType.LIMIT, TimeCondition.GFD, VolumeCondition.ANY, 0)
    for order_id in range(1, 1001):
        renderer.remember(order_id, 1, details._replace(client_order_id=f"c{order_id}"))
    _track(renderer, [_update(n, OrderStatus.ACCEPTED) for n in range(1, 2001)])
    assert len(renderer.order_accounts) == 2000 and len(renderer.details) == 1000
    finals = (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED)
    assert {s for s in OrderStatus if s >= OrderStatus.FILLED} == set(finals)  # track's test
    _track(renderer, [_update(n, finals[n % 3]) for n in range(1, 2001) if n % 10])
    live = [n for n in range(1, 2001) if n % 10 == 0]
    assert sorted(renderer.order_accounts) == live
    assert sorted(renderer.details) == [n for n in live if n <= 1000]
    assert renderer.by_client_id(1, "c10") == 10 and renderer.by_client_id(1, "c11") is None


def test_orders_that_never_finish_are_capped_oldest_first() -> None:
    renderer = EventRenderer(registry(), max_orders=100)
    details = OrderDetails("same", OrderType.LIMIT, TimeCondition.GFD, VolumeCondition.ANY, 0)
    for order_id in range(1, 1001):
        renderer.remember(order_id, 1, details)
    assert len(renderer.details) <= 100 and 1000 in renderer.details
    assert renderer.by_client_id(1, "same") == 1000
    _track(renderer, [_update(n, OrderStatus.ACCEPTED) for n in range(1001, 3001)])
    assert len(renderer.order_accounts) <= 100 and 3000 in renderer.order_accounts
    assert not renderer.details and renderer.by_client_id(1, "same") is None


def test_ws_pushes_show_the_full_views_fields_with_the_details_of_their_read() -> None:
    """`/ws` order statuses and trades are built from the record, not from `data`: they must
    say what `data` says (reference part 2 §6 fields), with the client's details as they
    were when the record was read, even if the order is forgotten before `data` is drawn."""
    exchange, events = _crossed()
    renderer = EventRenderer(exchange.accounts.instruments)
    details = OrderDetails("mine-7", OrderType.LIMIT, TimeCondition.GTC, VolumeCondition.ANY, 5)
    order_id = next(e.order_id for e in events if type(e) is OrderUpdated and e.account_id == 1)
    renderer.remember(order_id, 1, details)
    rendered = renderer.render(events, {1: 42, 2: 43})
    messages = [(e, event_message(e)[0]) for e in rendered]
    renderer._forget(order_id)
    statuses = [(e, m) for e, m in messages if e.kind is EventKind.ORDER_STATUS]
    trades = [(e, m) for e, m in messages if e.kind is EventKind.TRADE]
    assert {e.account_id for e, _ in statuses} == {e.account_id for e, _ in trades} == {1, 2}
    for event, message in statuses:
        data = event.data
        assert message == {
            "type": "order_status",
            "order_id": data["order_id"],
            "client_order_id": data["client_order_id"],
            "status": data["status"],
            "filled_volume": data["filled_volume"],
            "remaining_volume": data["remaining_volume"],
            "last_msg": data["last_msg"],
            "timestamp": data["update_time_ns"] // 1_000_000,
        }
    for event, message in trades:
        data = event.data
        fields = ("trade_id", "order_id", "instrument_id", "direction", "offset", "price", "volume")
        expected = {"type": "trade", **{k: data[k] for k in fields}}
        assert message == {**expected, "timestamp": data["trade_time_ns"] // 1_000_000}
    mine = [m for e, m in statuses if e.account_id == 1]
    assert {m["client_order_id"] for m in mine} == {"mine-7"}
    assert next(e for e, _ in statuses if e.account_id == 1).data["time_condition"] == "GTC"


def test_an_accepted_orders_answer_from_its_template_is_the_encoded_response() -> None:
    for order_id in (1, 42, 2**63 - 1):
        answer = Answer(ResultCode.OK, data={"order_id": order_id, "status": "PENDING"})
        assert ORDER_ACCEPTED % order_id == to_json(_order_response(answer))
