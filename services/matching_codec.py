"""Records ↔ the matching engine's commands and events, at the edges of the matching process.

`orders` records become `engine.matching.commands` (matching reads them) and the engine's events
become `execs` records (matching writes them; accounts, marketdata and the recorder decode them
back). One `.tolist()` per batch on the way in and one `np.array(rows)` on the way out; dispatch
is through tables, never isinstance chains. Instrument definitions (ADD_INSTRUMENT,
SET_INSTRUMENT_STATUS) need the process's registry and are left to the process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from engine.codes import ResultCode
from engine.enums import (
    CancelReason,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeCondition,
    TradingPhase,
    VolumeCondition,
)
from engine.matching.commands import (
    AmendOrder,
    CancelOrder,
    ExpireOrders,
    MatchingCommand,
    PlaceOrder,
    RunAuction,
    SetPhase,
)
from engine.matching.events import (
    AmendRejected,
    AuctionUncrossed,
    BookChanged,
    CancelRejected,
    MatchingEvent,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderRejected,
    PhaseChanged,
    TradeExecuted,
)
from ipc.records import ALL_INSTRUMENTS, EXEC, ORDER, Kind, new_batch
from services.record_rows import Rows, number

_ORDER_ROWS = Rows(ORDER)
_EXEC_ROWS = Rows(EXEC)
_O = _ORDER_ROWS.index
_E = _EXEC_ROWS.index

Row = tuple[Any, ...]


class UnsupportedRecord(ValueError):
    """A record kind this codec does not convert (the process must handle it itself)."""


# -- orders: records → commands --------------------------------------------------------------


def _place(r: Row) -> PlaceOrder:
    return PlaceOrder(
        r[_O["order_id"]],
        r[_O["account"]],
        r[_O["instrument"]],
        Side(r[_O["side"]]),
        r[_O["price"]],
        r[_O["qty"]],
        OrderType(r[_O["order_type"]]),
        TimeCondition(r[_O["time_condition"]]),
        VolumeCondition(r[_O["volume_condition"]]),
        r[_O["min_qty"]],
        r[_O["ts_event"]],
        SelfTradePrevention(r[_O["self_trade"]]),
    )


def _cancel(r: Row) -> CancelOrder:
    reason = CancelReason(r[_O["reason"]]) or CancelReason.USER
    return CancelOrder(r[_O["order_id"]], r[_O["instrument"]], r[_O["ts_event"]], reason)


def _amend(r: Row) -> AmendOrder:
    return AmendOrder(
        r[_O["order_id"]], r[_O["instrument"]], r[_O["price"]], r[_O["qty"]], r[_O["ts_event"]]
    )


def _expire(r: Row) -> ExpireOrders:
    instrument = r[_O["instrument"]]
    return ExpireOrders(None if instrument == ALL_INSTRUMENTS else instrument, r[_O["ts_event"]])


def _phase(r: Row) -> SetPhase:
    return SetPhase(r[_O["instrument"]], TradingPhase(r[_O["phase"]]), r[_O["ts_event"]])


def _auction(r: Row) -> RunAuction:
    return RunAuction(r[_O["instrument"]], r[_O["ts_event"]])


_DECODE_ORDERS: dict[int, Callable[[Row], MatchingCommand]] = {
    Kind.NEW_ORDER: _place,
    Kind.CANCEL: _cancel,
    Kind.AMEND: _amend,
    Kind.EXPIRE_ORDERS: _expire,
    Kind.SET_PHASE: _phase,
    Kind.RUN_AUCTION: _auction,
}


def orders_to_commands(batch: np.ndarray[Any, Any]) -> list[MatchingCommand]:
    """The matching commands of an `orders` batch, in ring order."""
    out = []
    for row in batch.tolist():
        decode = _DECODE_ORDERS.get(row[0])
        if decode is None:
            raise UnsupportedRecord(f"orders record of kind {row[0]} is not a matching command")
        out.append(decode(row))
    return out


def commands_to_orders(
    commands: Sequence[MatchingCommand], source: int = 0, first_seq: int = 1, ts_init: int = 0
) -> np.ndarray[Any, Any]:
    """An `orders` batch for the commands (the accounts side of the ring)."""
    if not commands:
        return new_batch(ORDER, 0)
    batch = _ORDER_ROWS.array(_ENCODE_COMMANDS[type(c)](c) for c in commands)
    number(batch, source, first_seq, ts_init)
    return batch


_row_o = _ORDER_ROWS.row

_ENCODE_COMMANDS: dict[type, Callable[[Any], list[Any]]] = {
    PlaceOrder: lambda c: _row_o(
        Kind.NEW_ORDER,
        c.ts,
        order_id=c.order_id,
        account=c.account_id,
        instrument=c.instrument_index,
        side=c.side,
        price=c.price,
        qty=c.qty,
        order_type=c.order_type,
        time_condition=c.time_condition,
        volume_condition=c.volume_condition,
        min_qty=c.min_qty,
        self_trade=c.stp,
    ),
    CancelOrder: lambda c: _row_o(
        Kind.CANCEL, c.ts, order_id=c.order_id, instrument=c.instrument_index, reason=c.reason
    ),
    AmendOrder: lambda c: _row_o(
        Kind.AMEND,
        c.ts,
        order_id=c.order_id,
        instrument=c.instrument_index,
        price=c.price,
        qty=c.qty,
    ),
    ExpireOrders: lambda c: _row_o(
        Kind.EXPIRE_ORDERS,
        c.ts,
        instrument=ALL_INSTRUMENTS if c.instrument_index is None else c.instrument_index,
    ),
    SetPhase: lambda c: _row_o(Kind.SET_PHASE, c.ts, instrument=c.instrument_index, phase=c.phase),
    RunAuction: lambda c: _row_o(Kind.RUN_AUCTION, c.ts, instrument=c.instrument_index),
}


# -- execs: events → records -----------------------------------------------------------------


_row = _EXEC_ROWS.row

_ENCODE_EVENTS: dict[type, Callable[[Any], list[Any]]] = {
    OrderAccepted: lambda e: _row(
        Kind.ORDER_ACCEPTED,
        e.ts,
        order_id=e.order_id,
        account=e.account_id,
        instrument=e.instrument_index,
        side=e.side,
        price=e.price,
        qty=e.qty,
        leaves_qty=e.qty,
    ),
    OrderRejected: lambda e: _row(
        Kind.ORDER_REJECTED,
        e.ts,
        order_id=e.order_id,
        account=e.account_id,
        instrument=e.instrument_index,
        code=e.code,
    ),
    OrderCanceled: lambda e: _row(
        Kind.ORDER_CANCELED,
        e.ts,
        order_id=e.order_id,
        account=e.account_id,
        instrument=e.instrument_index,
        reason=e.reason,
        qty=e.qty,
    ),
    OrderAmended: lambda e: _row(
        Kind.ORDER_AMENDED,
        e.ts,
        order_id=e.order_id,
        account=e.account_id,
        instrument=e.instrument_index,
        price=e.price,
        qty=e.qty,
        leaves_qty=e.qty,
        old_price=e.old_price,
        old_qty=e.old_qty,
    ),
    CancelRejected: lambda e: _row(
        Kind.CANCEL_REJECTED, e.ts, order_id=e.order_id, instrument=e.instrument_index, code=e.code
    ),
    AmendRejected: lambda e: _row(
        Kind.AMEND_REJECTED, e.ts, order_id=e.order_id, instrument=e.instrument_index, code=e.code
    ),
    TradeExecuted: lambda e: _row(
        Kind.TRADE,
        e.ts,
        trade_id=e.trade_id,
        instrument=e.instrument_index,
        price=e.price,
        qty=e.qty,
        order_id=e.taker_order_id,
        account=e.taker_account_id,
        side=e.taker_side,
        maker_order_id=e.maker_order_id,
        maker_account=e.maker_account_id,
        leaves_qty=e.taker_remaining,
        maker_leaves_qty=e.maker_remaining,
    ),
    BookChanged: lambda e: _row(
        Kind.BOOK_LEVEL, e.ts, instrument=e.instrument_index, side=e.side, price=e.price, qty=e.qty
    ),
    PhaseChanged: lambda e: _row(
        Kind.PHASE_CHANGED, e.ts, instrument=e.instrument_index, phase=e.phase
    ),
    AuctionUncrossed: lambda e: _row(
        Kind.AUCTION_UNCROSSED,
        e.ts,
        instrument=e.instrument_index,
        price=e.price,
        qty=e.qty,
        leaves_qty=e.imbalance,
    ),
}


def events_to_execs(
    events: Sequence[MatchingEvent], source: int = 0, first_seq: int = 1, ts_init: int = 0
) -> np.ndarray[Any, Any]:
    """An `execs` batch for the engine's events, numbered from `first_seq`."""
    if not events:
        return new_batch(EXEC, 0)
    batch = _EXEC_ROWS.array(_ENCODE_EVENTS[type(e)](e) for e in events)
    number(batch, source, first_seq, ts_init)
    return batch


# -- execs: records → events -----------------------------------------------------------------


_g = _EXEC_ROWS.get


_DECODE_EXECS: dict[int, Callable[[Row], MatchingEvent]] = {
    Kind.ORDER_ACCEPTED: lambda r: OrderAccepted(
        _g(r, "order_id"),
        _g(r, "account"),
        _g(r, "instrument"),
        Side(_g(r, "side")),
        _g(r, "price"),
        _g(r, "qty"),
        _g(r, "ts_event"),
    ),
    Kind.ORDER_REJECTED: lambda r: OrderRejected(
        _g(r, "order_id"),
        _g(r, "account"),
        _g(r, "instrument"),
        ResultCode(_g(r, "code")),
        _g(r, "ts_event"),
    ),
    Kind.ORDER_CANCELED: lambda r: OrderCanceled(
        _g(r, "order_id"),
        _g(r, "account"),
        _g(r, "instrument"),
        CancelReason(_g(r, "reason")),
        _g(r, "qty"),
        _g(r, "ts_event"),
    ),
    Kind.ORDER_AMENDED: lambda r: OrderAmended(
        _g(r, "order_id"),
        _g(r, "account"),
        _g(r, "instrument"),
        _g(r, "price"),
        _g(r, "qty"),
        _g(r, "old_price"),
        _g(r, "old_qty"),
        _g(r, "ts_event"),
    ),
    Kind.CANCEL_REJECTED: lambda r: CancelRejected(
        _g(r, "order_id"), _g(r, "instrument"), ResultCode(_g(r, "code")), _g(r, "ts_event")
    ),
    Kind.AMEND_REJECTED: lambda r: AmendRejected(
        _g(r, "order_id"), _g(r, "instrument"), ResultCode(_g(r, "code")), _g(r, "ts_event")
    ),
    Kind.TRADE: lambda r: TradeExecuted(
        _g(r, "trade_id"),
        _g(r, "instrument"),
        _g(r, "price"),
        _g(r, "qty"),
        _g(r, "order_id"),
        _g(r, "account"),
        Side(_g(r, "side")),
        _g(r, "maker_order_id"),
        _g(r, "maker_account"),
        _g(r, "leaves_qty"),
        _g(r, "maker_leaves_qty"),
        _g(r, "ts_event"),
    ),
    Kind.BOOK_LEVEL: lambda r: BookChanged(
        _g(r, "instrument"), Side(_g(r, "side")), _g(r, "price"), _g(r, "qty"), _g(r, "ts_event")
    ),
    Kind.PHASE_CHANGED: lambda r: PhaseChanged(
        _g(r, "instrument"), TradingPhase(_g(r, "phase")), _g(r, "ts_event")
    ),
    Kind.AUCTION_UNCROSSED: lambda r: AuctionUncrossed(
        _g(r, "instrument"), _g(r, "price"), _g(r, "qty"), _g(r, "leaves_qty"), _g(r, "ts_event")
    ),
}


def execs_to_events(batch: np.ndarray[Any, Any]) -> list[MatchingEvent]:
    """The engine events of an `execs` batch, in ring order."""
    out = []
    for row in batch.tolist():
        decode = _DECODE_EXECS.get(row[0])
        if decode is None:
            raise UnsupportedRecord(f"execs record of kind {row[0]} is not a matching event")
        out.append(decode(row))
    return out
