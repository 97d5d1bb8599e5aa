"""The accounts process's read-only control queries (JSON over `ipc.control`), for the gateway.

Answered between batches from the live state, so an answer reflects every command the process
has applied so far. Money in QIFI answers is rendered as floats (engine/accounts/qifi.py); the
other answers keep the integers of the records (ticks, lots, fixed-point money). docs/control.md
lists each query, its arguments and its answer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from engine.instruments import describe
from ipc.control import ControlError, ControlServer
from services.accounts_state import AccountsState

StateSource = Callable[[], AccountsState]


def _plain(value: Any) -> Any:
    """JSON-able: Decimals as strings, tuples as lists, enums as their ints."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, int):
        return int(value)
    return value


def _int_arg(args: dict[str, Any], name: str, default: int | None = None) -> int:
    value = args.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ControlError(f"argument {name!r} must be an integer")
    return value


def _account(state: AccountsState, args: dict[str, Any]) -> Any:
    account_id = _int_arg(args, "account_id")
    account = state.core.account(account_id)
    if account is None:
        raise ControlError(f"no account {account_id}")
    return account


def register(server: ControlServer, source: StateSource) -> None:
    """Add the queries to the accounts process's control server."""

    def account(args: dict[str, Any]) -> Any:
        state = source()
        _account(state, args)
        return state.core.to_qifi(_int_arg(args, "account_id"))

    def user_accounts(args: dict[str, Any]) -> Any:
        """Accounts have no owner inside the engine: the gateway keeps users. This answers the
        ids among `account_ids` that exist (the gateway's list checked against the books)."""
        wanted = args.get("account_ids", [])
        if not isinstance(wanted, list):
            raise ControlError("argument 'account_ids' must be a list of integers")
        accounts = source().core.accounts
        return [a for a in wanted if isinstance(a, int) and a in accounts]

    def order(args: dict[str, Any]) -> Any:
        state = source()
        order_id = _int_arg(args, "order_id")
        live = state.core.orders.get(order_id)
        if live is not None:
            return _plain(dataclasses.asdict(live))
        update = state.last_update.get(order_id)
        if update is None:
            raise ControlError(f"no order {order_id} (unknown, or ended too long ago)")
        return _plain(update._asdict())

    def orders(args: dict[str, Any]) -> Any:
        account = _account(source(), args)
        return [_plain(dataclasses.asdict(o)) for _id, o in sorted(account.orders.items())]

    def positions(args: dict[str, Any]) -> Any:
        state = source()
        _account(state, args)
        return state.core.to_qifi(_int_arg(args, "account_id"))["positions"]

    def trades(args: dict[str, Any]) -> Any:
        state = source()
        account_id = _int_arg(args, "account_id")
        limit = _int_arg(args, "limit", 100)
        kept = list(state.trades.get(account_id, ()))
        return [_plain(t._asdict()) for t in kept[-limit:]] if limit > 0 else []

    def instruments(_args: dict[str, Any]) -> Any:
        return [{"index": i.index, **_plain(describe(i))} for i in source().core.instruments]

    def settlement_history(args: dict[str, Any]) -> Any:
        since = _int_arg(args, "since", 0)
        return [_plain(r._asdict()) for r in source().core.settlement_results(since)]

    def settlement_detail(args: dict[str, Any]) -> Any:
        day = _int_arg(args, "trading_day")
        found = source().core.settlement_results(day, day)
        if not found:
            raise ControlError(f"no settlement for trading day {day}")
        return _plain(found[-1]._asdict())

    def state_hash(_args: dict[str, Any]) -> Any:
        return source().core.state_hash()

    for name, handler in {
        "account": account,
        "user_accounts": user_accounts,
        "order": order,
        "orders": orders,
        "positions": positions,
        "trades": trades,
        "instruments": instruments,
        "settlement_history": settlement_history,
        "settlement_detail": settlement_detail,
        "state_hash": state_hash,
    }.items():
        server.register(name, handler)
