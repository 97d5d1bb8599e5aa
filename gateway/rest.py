"""The REST routes of issue 5: one thin handler each, and `ROUTES`, the table of all of them.

Handlers receive a decoded, authenticated `Call` (gateway/app.py did the size, charset, JSON,
schema, token and rate checks) and do only the ownership check and the backend call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

from engine.codes import ResultCode
from gateway.auth import Principal, authorize, require_admin
from gateway.backend import AdminAction, AdminCommand, Answer, CancelOrder, OpenAccount
from gateway.commands import adjust_balance, place_order, place_order_fast
from gateway.edge import Edge
from gateway.errors import Rejected
from gateway.openapi import openapi_document
from gateway.requests import (
    ADJUST_BALANCE,
    BATCH_SET_SETTLEMENT_PRICES,
    CANCEL_ORDER,
    CREATE_INSTRUMENT,
    INSTRUMENT_ID,
    LOGIN,
    MAX_ID,
    OPEN_ACCOUNT,
    REGISTER,
    SET_SETTLEMENT_PRICE,
    SUBMIT_ORDER,
    UPDATE_INSTRUMENT,
)
from gateway.routes import Access, Call, Handler, Route
from gateway.schema import Field, integer, text

KLINE_PERIODS = {
    "3s": 3,
    "1min": 60,
    "1m": 60,
    "5min": 300,
    "5m": 300,
    "15min": 900,
    "15m": 900,
    "30min": 1800,
    "30m": 1800,
    "60min": 3600,
    "60m": 3600,
    "1h": 3600,
    "day": 86400,
    "1d": 86400,
    "d": 86400,
}
"""K-line periods (reference part 2 §1) and their aliases, in seconds."""

_account = integer("account_id", minimum=Decimal(1), maximum=MAX_ID)
_order = integer("order_id", minimum=Decimal(1), maximum=MAX_ID)
_user = integer("user_id", minimum=Decimal(1), maximum=MAX_ID)
_instrument = text("instrument_id", pattern=INSTRUMENT_ID, max_length=49)
_date = text("date", pattern=r"[0-9]{4}-[0-9]{2}-[0-9]{2}", max_length=10)


def _count(name: str, default: int, maximum: int = 1000) -> Field:
    return integer(
        name, required=False, default=default, minimum=Decimal(1), maximum=Decimal(maximum)
    )


async def health(edge: Edge, call: Call) -> Answer:
    return await edge.backend.health()


async def register(edge: Edge, call: Call) -> Answer:
    user = await edge.register(call.body["username"], call.body["password"])
    return Answer(ResultCode.OK, data={"user_id": user.user_id, "username": user.username})


async def login(edge: Edge, call: Call) -> Answer:
    user = await edge.login(call.body["username"], call.body["password"])
    token, expires_at = edge.signer.issue(user)
    data = {
        "token": token,
        "user_id": user.user_id,
        "username": user.username,
        "role": user.role.name,
        "expires_at": expires_at * 1000,
    }
    return Answer(ResultCode.OK, data=data)


async def open_account(edge: Edge, call: Call) -> Answer:
    return await edge.backend.submit(OpenAccount(call.user.user_id, call.body["account_name"]))


async def get_account(edge: Edge, call: Call) -> Answer:
    await edge.owns_account(call.user, call.params["account_id"])
    return await edge.backend.query_account(call.params["account_id"])


async def user_accounts(edge: Edge, call: Call) -> Answer:
    _same_user(call)
    return await edge.backend.query_user_accounts(call.params["user_id"])


async def deposit(edge: Edge, call: Call) -> Answer:
    await edge.owns_account(call.user, call.body["account_id"])
    return await edge.backend.submit(adjust_balance(call.user.user_id, dict(call.body), 1))


async def withdraw(edge: Edge, call: Call) -> Answer:
    await edge.owns_account(call.user, call.body["account_id"])
    return await edge.backend.submit(adjust_balance(call.user.user_id, dict(call.body), -1))


async def submit_order(edge: Edge, call: Call) -> Answer:
    await edge.owns_account(call.user, call.body["account_id"])
    await edge.backend.find_instrument(call.body["instrument_id"])
    command = place_order(call.user.user_id, dict(call.body), edge.backend.instrument)
    return await edge.backend.submit(command)


def submit_order_fast(
    edge: Edge, user: Principal | None, body: dict[str, Any]
) -> Awaitable[Answer] | None:
    """`submit_order` for a plainly valid order on a known instrument, checked in one pass
    (`place_order_fast`, as `/ws` does) instead of the schema then Decimals; None declines
    (the schema's path then decides, and words any refusal)."""
    assert user is not None, "submit_order is a USER route"
    backend = edge.backend
    command = place_order_fast(user.user_id, body, backend.instrument, NO_ENVELOPE)
    if command is None:
        return None
    authorize(user, backend.known_owner(command.account_id), ResultCode.NO_SUCH_ACCOUNT)
    return backend.submit(command)


async def cancel_order(edge: Edge, call: Call) -> Answer:
    account_id, order_id = call.body["account_id"], call.body["order_id"]
    await edge.owns_account(call.user, account_id)
    await edge.owns_order(call.user, order_id, account_id)
    return await edge.backend.submit(CancelOrder(call.user.user_id, account_id, order_id))


async def get_order(edge: Edge, call: Call) -> Answer:
    await edge.owns_order(call.user, call.params["order_id"])
    return await edge.backend.query_order(call.params["order_id"])


async def user_orders(edge: Edge, call: Call) -> Answer:
    _same_user(call)
    return await edge.backend.query_user_orders(call.params["user_id"])


async def positions(edge: Edge, call: Call) -> Answer:
    await edge.owns_account(call.user, call.params["account_id"])
    return await edge.backend.query_positions(call.params["account_id"])


async def trades(edge: Edge, call: Call) -> Answer:
    await edge.owns_account(call.user, call.params["account_id"])
    return await edge.backend.query_trades(call.params["account_id"])


async def instruments(edge: Edge, call: Call) -> Answer:
    return await edge.backend.query_instruments()


async def tick(edge: Edge, call: Call) -> Answer:
    return await edge.backend.market_snapshot(call.params["instrument_id"], depth=1)


async def orderbook(edge: Edge, call: Call) -> Answer:
    depth = min(call.params["depth"], edge.config.max_orderbook_depth)
    return await edge.backend.market_snapshot(call.params["instrument_id"], depth=depth)


async def recent_trades(edge: Edge, call: Call) -> Answer:
    count = min(call.params["count"], edge.config.max_query_count)
    return await edge.backend.recent_trades(call.params["instrument_id"], count)


async def klines(edge: Edge, call: Call) -> Answer:
    period = KLINE_PERIODS.get(call.params["period"])
    if period is None:
        raise Rejected(
            ResultCode.BAD_MESSAGE,
            f"period {call.params['period']!r} is not one of {sorted(KLINE_PERIODS)}",
        )
    count = min(call.params["count"], edge.config.max_query_count)
    return await edge.backend.klines(call.params["instrument_id"], period, count)


async def admin_instruments(edge: Edge, call: Call) -> Answer:
    return await edge.backend.query_instruments()


async def create_instrument(edge: Edge, call: Call) -> Answer:
    return await _admin(edge, call, AdminAction.CREATE_INSTRUMENT, call.body["instrument_id"])


async def update_instrument(edge: Edge, call: Call) -> Answer:
    return await _admin(edge, call, AdminAction.UPDATE_INSTRUMENT)


async def suspend_instrument(edge: Edge, call: Call) -> Answer:
    return await _admin(edge, call, AdminAction.SUSPEND_INSTRUMENT)


async def resume_instrument(edge: Edge, call: Call) -> Answer:
    return await _admin(edge, call, AdminAction.RESUME_INSTRUMENT)


async def delist_instrument(edge: Edge, call: Call) -> Answer:
    return await _admin(edge, call, AdminAction.DELIST_INSTRUMENT)


async def set_settlement_price(edge: Edge, call: Call) -> Answer:
    return await _admin(edge, call, AdminAction.SET_SETTLEMENT_PRICE, call.body["instrument_id"])


async def batch_set_settlement_prices(edge: Edge, call: Call) -> Answer:
    require_admin(call.user)
    unknown = [
        p["instrument_id"]
        for p in call.body["prices"]
        if await edge.backend.find_instrument(p["instrument_id"]) is None
    ]
    if unknown:
        raise Rejected(ResultCode.NO_SUCH_INSTRUMENT, f"no instruments {unknown}; nothing was set")
    for price in call.body["prices"]:
        command = AdminCommand(
            call.user.user_id, AdminAction.SET_SETTLEMENT_PRICE, price["instrument_id"], price
        )
        answer = await edge.backend.submit(command)
        if not answer.ok:
            return Answer(answer.code, f"{price['instrument_id']}: {answer.message}")
    return Answer(ResultCode.OK, data={"count": len(call.body["prices"])})


async def execute_settlement(edge: Edge, call: Call) -> Answer:
    return await _admin(edge, call, AdminAction.EXECUTE_SETTLEMENT)


async def settlement_history(edge: Edge, call: Call) -> Answer:
    require_admin(call.user)
    return await edge.backend.settlement_history(call.params["start_date"], call.params["end_date"])


async def settlement_detail(edge: Edge, call: Call) -> Answer:
    require_admin(call.user)
    return await edge.backend.settlement_detail(call.params["date"])


async def openapi(edge: Edge, call: Call) -> Answer:
    return Answer(ResultCode.OK, data=openapi_document(ROUTES))


def _same_user(call: Call) -> None:
    """A user's own lists: the user named in the path owns them."""
    authorize(call.user, call.params["user_id"], ResultCode.NO_SUCH_ACCOUNT)


async def _admin(
    edge: Edge, call: Call, action: AdminAction, instrument_id: str | None = None
) -> Answer:
    require_admin(call.user)
    target = instrument_id or call.params.get("instrument_id")
    return await edge.backend.submit(AdminCommand(call.user.user_id, action, target, call.body))


NO_ENVELOPE: frozenset[str] = frozenset()
"""A REST body carries only its schema's keys."""

FastHandler = Callable[[Edge, Principal | None, dict[str, Any]], Awaitable[Answer] | None]
FAST_HANDLERS: dict[Handler, FastHandler] = {submit_order: submit_order_fast}
"""Routes whose decoded body may skip the schema: the shortcut answers, or declines (None)."""

_ins_path = (_instrument,)
_range = (
    replace(_date, name="start_date", required=False),
    replace(_date, name="end_date", required=False),
)

ROUTES: tuple[Route, ...] = (
    Route("GET", "/health", health, Access.PUBLIC, "Liveness of the edge and the exchange"),
    Route("GET", "/openapi.json", openapi, Access.PUBLIC, "This document", raw=True),
    Route("POST", "/api/auth/register", register, Access.PUBLIC, "Create a user", REGISTER),
    Route("POST", "/api/auth/login", login, Access.PUBLIC, "Get a bearer token", LOGIN),
    Route("POST", "/api/account/open", open_account, Access.USER, "Open an account", OPEN_ACCOUNT),
    Route("POST", "/api/account/deposit", deposit, Access.USER, "Deposit", ADJUST_BALANCE),
    Route("POST", "/api/account/withdraw", withdraw, Access.USER, "Withdraw", ADJUST_BALANCE),
    Route(
        "GET",
        "/api/account/{account_id}",
        get_account,
        Access.USER,
        "One account (QIFI)",
        path_params=(_account,),
    ),
    Route(
        "GET",
        "/api/user/{user_id}/accounts",
        user_accounts,
        Access.USER,
        "A user's accounts",
        path_params=(_user,),
    ),
    Route("POST", "/api/order/submit", submit_order, Access.USER, "Place an order", SUBMIT_ORDER),
    Route("POST", "/api/order/cancel", cancel_order, Access.USER, "Cancel an order", CANCEL_ORDER),
    Route(
        "GET",
        "/api/order/user/{user_id}",
        user_orders,
        Access.USER,
        "A user's orders",
        path_params=(_user,),
    ),
    Route(
        "GET",
        "/api/order/{order_id}",
        get_order,
        Access.USER,
        "One order",
        path_params=(_order,),
    ),
    Route(
        "GET",
        "/api/position/{account_id}",
        positions,
        Access.USER,
        "An account's positions",
        path_params=(_account,),
    ),
    Route(
        "GET",
        "/api/trades/{account_id}",
        trades,
        Access.USER,
        "An account's trades",
        path_params=(_account,),
    ),
    Route(
        "GET",
        "/api/market/instruments",
        instruments,
        Access.PUBLIC,
        "Listed instruments",
        tag="market",
    ),
    Route(
        "GET",
        "/api/market/tick/{instrument_id}",
        tick,
        Access.PUBLIC,
        "Last price and top of book",
        path_params=_ins_path,
        tag="market",
    ),
    Route(
        "GET",
        "/api/market/orderbook/{instrument_id}",
        orderbook,
        Access.PUBLIC,
        "Order book",
        path_params=_ins_path,
        query_params=(_count("depth", 5, 50),),
        tag="market",
    ),
    Route(
        "GET",
        "/api/market/recent-trades/{instrument_id}",
        recent_trades,
        Access.PUBLIC,
        "Latest trades",
        path_params=_ins_path,
        query_params=(_count("count", 50),),
        tag="market",
    ),
    Route(
        "GET",
        "/api/klines/{instrument_id}/{period}",
        klines,
        Access.PUBLIC,
        f"K-lines; period one of {', '.join(KLINE_PERIODS)}",
        path_params=(_instrument, text("period", max_length=8)),
        query_params=(_count("count", 100),),
        tag="market",
    ),
    Route(
        "GET",
        "/admin/instruments",
        admin_instruments,
        Access.ADMIN,
        "All instruments",
        tag="admin",
    ),
    Route(
        "POST",
        "/admin/instrument/create",
        create_instrument,
        Access.ADMIN,
        "List an instrument",
        CREATE_INSTRUMENT,
        tag="admin",
    ),
    Route(
        "PUT",
        "/admin/instrument/{instrument_id}/update",
        update_instrument,
        Access.ADMIN,
        "Change an instrument",
        UPDATE_INSTRUMENT,
        path_params=_ins_path,
        tag="admin",
    ),
    Route(
        "PUT",
        "/admin/instrument/{instrument_id}/suspend",
        suspend_instrument,
        Access.ADMIN,
        "Suspend trading",
        path_params=_ins_path,
        tag="admin",
    ),
    Route(
        "PUT",
        "/admin/instrument/{instrument_id}/resume",
        resume_instrument,
        Access.ADMIN,
        "Resume trading",
        path_params=_ins_path,
        tag="admin",
    ),
    Route(
        "DELETE",
        "/admin/instrument/{instrument_id}/delist",
        delist_instrument,
        Access.ADMIN,
        "Delist (refused while positions are open)",
        path_params=_ins_path,
        tag="admin",
    ),
    Route(
        "POST",
        "/admin/settlement/set-price",
        set_settlement_price,
        Access.ADMIN,
        "Set a settlement price",
        SET_SETTLEMENT_PRICE,
        tag="admin",
    ),
    Route(
        "POST",
        "/admin/settlement/batch-set-prices",
        batch_set_settlement_prices,
        Access.ADMIN,
        "Set several settlement prices",
        BATCH_SET_SETTLEMENT_PRICES,
        tag="admin",
    ),
    Route(
        "POST",
        "/admin/settlement/execute",
        execute_settlement,
        Access.ADMIN,
        "Run the daily settlement",
        tag="admin",
    ),
    Route(
        "GET",
        "/admin/settlement/history",
        settlement_history,
        Access.ADMIN,
        "Past settlements",
        query_params=_range,
        tag="admin",
    ),
    Route(
        "GET",
        "/admin/settlement/detail/{date}",
        settlement_detail,
        Access.ADMIN,
        "One day's settlement",
        path_params=(_date,),
        tag="admin",
    ),
)
