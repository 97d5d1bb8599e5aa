"""A DIFF connection's state changes: a fill is one transaction, charts roll, notices rotate.

These drive the connection's sinks directly (as the backend's event and market-data fan-out
does); the backend is a tripwire that fails the test if the connection calls it.
"""

import asyncio
from pathlib import Path
from typing import Any

from engine.codes import ResultCode
from gateway.auth import Principal, Role, ScryptParams, TokenSigner, UserStore
from gateway.backend import AccountEvent, EventKind, MarketChannel, MarketUpdate
from gateway.config import EdgeConfig
from gateway.diff.handler import Chart, DiffConnection
from gateway.diff.merge_patch import apply_merge_patch
from gateway.edge import Edge
from gateway.ratelimit import RateLimiter
from tests.unit.gateway.support import Tripwire, run_async

MINUTE_NS = 60 * 10**9


def _connection(tmp_path: Path) -> DiffConnection:
    edge = Edge(
        backend=Tripwire(),  # type: ignore[arg-type]
        users=UserStore(tmp_path / "users.jsonl", ScryptParams(n=2**10)),
        signer=TokenSigner(b"s" * 32),
        limiter=RateLimiter(),
        config=EdgeConfig(),
    )
    connection = DiffConnection(edge, None)  # type: ignore[arg-type]
    connection.principal, connection.user_key, connection.account_id = (
        Principal(1, "alice", Role.USER),
        "alice",
        5,
    )
    return connection


def _fill() -> list[AccountEvent]:
    order = {
        "order_id": 42,
        "client_order_id": "my-1",
        "instrument_id": "CFFEX.IF2501",
        "direction": "BUY",
        "offset": "OPEN",
        "order_type": "LIMIT",
        "price": 3800.2,
        "volume": 2,
        "filled_volume": 2,
        "remaining_volume": 0,
        "status": "FILLED",
        "time_condition": "GFD",
        "volume_condition": "ANY",
        "last_msg": "filled",
        "insert_time_ns": 5,
        "update_time_ns": 6,
    }
    trade = {
        "trade_id": 43,
        "order_id": 42,
        "client_order_id": "my-1",
        "instrument_id": "CFFEX.IF2501",
        "direction": "BUY",
        "offset": "OPEN",
        "price": 3800.2,
        "volume": 2,
        "commission": 1.5,
        "trade_time_ns": 6,
    }
    account = {"balance": 999.5, "available": 500.0, "margin": 498.0, "update_time_ns": 6}
    return [
        AccountEvent(EventKind.TRADE, 1, 5, trade),
        AccountEvent(EventKind.ORDER_STATUS, 1, 5, order),
        AccountEvent(EventKind.ACCOUNT, 1, 5, account),
    ]


@run_async
async def test_a_fill_arrives_as_one_rtn_data(tmp_path: Path) -> None:
    connection = _connection(tmp_path)
    parked = asyncio.ensure_future(connection.session.peek())
    await asyncio.sleep(0)
    connection._on_events(_fill())
    patches = await asyncio.wait_for(parked, 2)
    assert len(patches) == 3
    state: dict[str, Any] = {}
    for patch in patches:
        state = apply_merge_patch(state, patch)
    tree = state["trade"]["alice"]
    assert tree["orders"]["my-1"]["status"] == "FINISHED"
    assert tree["orders"]["my-1"]["volume_left"] == 0
    assert tree["trades"]["43"]["order_id"] == "my-1"
    assert tree["accounts"]["CNY"] == {"balance": 999.5, "available": 500.0, "margin": 498.0}
    assert connection.orders["my-1"] == 42


def test_events_of_other_accounts_do_not_touch_the_account_view(tmp_path: Path) -> None:
    connection = _connection(tmp_path)
    connection._on_events([AccountEvent(EventKind.ACCOUNT, 1, 6, {"balance": 1.0})])
    assert connection.session.pending == []


def _bar(bar_id: int) -> MarketUpdate:
    data = {
        "period_seconds": 60,
        "id": bar_id,
        "datetime_ns": bar_id * MINUTE_NS,
        "open": 1.0,
        "high": 2.0,
        "low": 0.5,
        "close": 1.5,
        "volume": 3,
        "open_oi": 0,
        "close_oi": 0,
    }
    return MarketUpdate(MarketChannel.KLINE, "CFFEX.IF2501", data)


def test_a_chart_rolls_and_drops_bars_left_of_its_window(tmp_path: Path) -> None:
    connection = _connection(tmp_path)
    stopped: list[bool] = []
    connection.charts["c1"] = Chart(
        "CFFEX.IF2501", MINUTE_NS, 3, 10, 12, lambda: stopped.append(True)
    )
    state: dict[str, Any] = {
        "klines": {
            "CFFEX.IF2501": {
                str(MINUTE_NS): {
                    "last_id": 12,
                    "data": {str(i): {"close": 1.0} for i in (10, 11, 12)},
                }
            }
        },
        "charts": {"c1": {"left_id": 10, "right_id": 12}},
    }
    connection._on_chart_update("c1", _bar(12))
    connection._on_chart_update("c1", _bar(13))
    connection._on_chart_update("c1", _bar(14))
    connection._on_chart_update(
        "c1",
        MarketUpdate(MarketChannel.KLINE, "CFFEX.IF2501", {**_bar(15).data, "period_seconds": 300}),
    )
    for patch in connection.session.drain():
        state = apply_merge_patch(state, patch)
    series = state["klines"]["CFFEX.IF2501"][str(MINUTE_NS)]
    assert sorted(series["data"], key=int) == ["12", "13", "14"]
    assert series["last_id"] == 14
    assert state["charts"]["c1"] == {"left_id": 12, "right_id": 14}
    connection._stop_feeds()
    assert stopped == [True]


def test_notices_keep_only_the_latest(tmp_path: Path) -> None:
    connection = _connection(tmp_path)
    state: dict[str, Any] = {}
    for i in range(5):
        connection._notify(ResultCode.BAD_MESSAGE, f"bad {i}")
    for patch in connection.session.drain():
        state = apply_merge_patch(state, patch)
    assert list(state["notify"].values()) == [
        {"type": "MESSAGE", "level": "ERROR", "code": 9003, "content": "bad 4"}
    ]
