"""The accounts core's checkpoint format: everything it holds, as ints, strs, lists and dicts.

`export_state` writes what `load_state` reads; the pair round-trips exactly (same `state_hash`,
same answers to every later command). Containers keep their insertion order, because the core
iterates some of them (ledgers, for the order of AccountUpdated events). Derived indexes (the
core's order map, the day-order set, frozen margin per instrument) are rebuilt, not stored.
The instruments are stored too: settlement and admin commands change them (docs/accounting.md).
"""

from __future__ import annotations

from dataclasses import fields
from decimal import Decimal
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from engine.accounts.account import Account
from engine.accounts.events import SettlementResult
from engine.accounts.ledger import Ledger
from engine.accounts.order import Order
from engine.accounts.position import Position, PositionSide
from engine.accounts.settlement import SettlementPhase
from engine.accounts.terms import all_terms
from engine.enums import (
    Offset,
    OrderStatus,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeCondition,
    VolumeCondition,
)
from engine.instruments import InstrumentRegistry, describe, parse_instrument

if TYPE_CHECKING:
    from engine.accounts.core import AccountsCore

VERSION = 2
"""2: orders carry the split a pending amend of a close order reserved (pending_history/today)."""

ORDER_FIELDS = tuple(f.name for f in fields(Order))
"""An exported order is a list of these fields, in this order (enums and flags as ints)."""
_ORDER_TYPES: dict[str, type[IntEnum] | type[bool]] = {
    "side": Side,
    "offset": Offset,
    "order_type": OrderType,
    "time_condition": TimeCondition,
    "volume_condition": VolumeCondition,
    "status": OrderStatus,
    "stp": SelfTradePrevention,
    "liquidation": bool,
    "closes": bool,
}
_ORDER_LOADERS = tuple(_ORDER_TYPES.get(name) for name in ORDER_FIELDS)


def export_state(core: AccountsCore) -> dict[str, Any]:
    """The core as plain data; see the module docstring."""
    settlement = core.settlement
    return {
        "version": VERSION,
        "instruments": [_export_instrument(i) for i in core.instruments],
        "next_order_id": core.next_order_id,
        "marks": [[index, mark] for index, mark in core.marks.items()],
        "transactions": [[txn, *details] for txn, details in core.transactions.items()],
        "deposits": dict(core.deposits),
        "withdrawals": dict(core.withdrawals),
        "fees": dict(core.fees),
        "accounts": [_export_account(a) for a in core.accounts.values()],
        "settlement": {
            "prices": [[index, price] for index, price in settlement.prices.items()],
            "phase": int(settlement.phase),
            "request_id": settlement.request_id,
            "trading_day": settlement.trading_day,
            "results": [_export_result(r) for r in settlement.results.values()],
        },
    }


def load_state(core: AccountsCore, state: dict[str, Any]) -> None:
    """Fill a freshly constructed core (no accounts yet) with an exported state."""
    state = _upgraded(state)
    _load_instruments(core.instruments, state["instruments"])
    core.terms = all_terms(core.instruments)
    core.next_order_id = state["next_order_id"]
    core.marks = {index: mark for index, mark in state["marks"]}
    core.transactions = {txn: tuple(details) for txn, *details in state["transactions"]}
    core.deposits = dict(state["deposits"])
    core.withdrawals = dict(state["withdrawals"])
    core.fees = dict(state["fees"])
    for exported in state["accounts"]:
        account = _load_account(exported)
        core.accounts[account.account_id] = account
        for order in account.orders.values():
            core.orders[order.order_id] = order
            if order.time_condition is not TimeCondition.GTC:
                core.day_orders.add(order.order_id)
            index = order.instrument_index
            frozen = account.frozen_by_instrument
            frozen[index] = frozen.get(index, 0) + order.frozen_margin
    settlement = state["settlement"]
    core.settlement.prices = {index: price for index, price in settlement["prices"]}
    core.settlement.phase = SettlementPhase(settlement["phase"])
    core.settlement.request_id = settlement["request_id"]
    core.settlement.trading_day = settlement["trading_day"]
    core.settlement.results = {
        result.trading_day: result for result in map(_load_result, settlement["results"])
    }


def _upgraded(state: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint of an older version in the current shape (a bug: one from the future)."""
    version = state.get("version")
    if version == 1:  # orders gain pending_history/pending_today: no amend split recorded
        for account in state["accounts"]:
            account["orders"] = [[*values, 0, 0] for values in account["orders"]]
        return {**state, "version": VERSION}
    if version != VERSION:
        raise ValueError(f"accounts checkpoint version {version}, expected 1..{VERSION}")
    return state


def _export_instrument(instrument: Any) -> dict[str, Any]:
    """The instrument's TOML-shaped table with decimals as strings (exact, JSON-able)."""
    return _decimals_as_strings(describe(instrument))


def _decimals_as_strings(table: dict[str, Any]) -> dict[str, Any]:
    return {
        key: str(value)
        if isinstance(value, Decimal)
        else _decimals_as_strings(value)
        if isinstance(value, dict)
        else value
        for key, value in table.items()
    }


def _load_instruments(registry: InstrumentRegistry, tables: list[dict[str, Any]]) -> None:
    for index, table in enumerate(tables):
        registry.put(parse_instrument(index, table, registry.currencies))
    if len(registry) != len(tables):
        raise ValueError(f"registry has {len(registry)} instruments, checkpoint {len(tables)}")


def _export_account(account: Account) -> dict[str, Any]:
    return {
        "account_id": account.account_id,
        "frozen": int(account.frozen),
        "ledgers": [list(ledger.state()) for ledger in account.ledgers.values()],
        "positions": [
            [p.instrument_index, list(p.long.state()), list(p.short.state())]
            for p in account.positions.values()
        ],
        "orders": [_export_order(order) for order in account.orders.values()],
    }


def _load_account(exported: dict[str, Any]) -> Account:
    account = Account(exported["account_id"])
    account.frozen = bool(exported["frozen"])
    for values in exported["ledgers"]:
        ledger = Ledger(*values)
        account.ledgers[ledger.currency] = ledger
    for index, long, short in exported["positions"]:
        account.positions[index] = Position(index, PositionSide(*long), PositionSide(*short))
    for values in exported["orders"]:
        order = _load_order(values)
        account.orders[order.order_id] = order
    return account


def _export_order(order: Order) -> list[int]:
    return [int(getattr(order, name)) for name in ORDER_FIELDS]


def _load_order(values: list[int]) -> Order:
    loaders = zip(_ORDER_LOADERS, values, strict=True)
    return Order(*(value if load is None else load(value) for load, value in loaders))


def _export_result(result: SettlementResult) -> dict[str, Any]:
    return {
        "trading_day": result.trading_day,
        "total": result.total,
        "settled": result.settled,
        "failed": result.failed,
        "force_closed": list(result.force_closed),
        "commission": [list(pair) for pair in result.commission],
        "profit": [list(pair) for pair in result.profit],
        "ts": result.ts,
    }


def _load_result(exported: dict[str, Any]) -> SettlementResult:
    return SettlementResult(
        exported["trading_day"],
        exported["total"],
        exported["settled"],
        exported["failed"],
        tuple(exported["force_closed"]),
        tuple((code, amount) for code, amount in exported["commission"]),
        tuple((code, amount) for code, amount in exported["profit"]),
        exported["ts"],
    )
