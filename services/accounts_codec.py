"""Records ↔ the accounts core's commands and events, at the edges of the accounts process.

`cmd` records become `engine.accounts.commands` (the gateway writes them, accounts reads them)
and the core's events become `events` records (accounts writes them, gateways decode them
back). Events of several layouts share one batch: each layout's rows are built in one
`np.array` and placed through that layout's view of the batch.

What a record cannot carry is refused with `UnsupportedRecord` rather than guessed:
instrument create/update (a TOML-shaped table, too wide for a record), CANCEL_ALL (no core
command yet) and SettlementCompleted (per-currency totals); those travel another way in phase 2.
SubmitOrder has no client order id or self-trade mode, so encoding one leaves both zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from engine.accounts.commands import (
    AccountsCommand,
    AmendOrder,
    CancelOrder,
    DelistInstrument,
    Deposit,
    ExecuteSettlement,
    OpenAccount,
    ResumeInstrument,
    SetAccountFrozen,
    SetSettlementPrice,
    SetSettlementPrices,
    SubmitOrder,
    SuspendInstrument,
    Withdraw,
)
from engine.accounts.events import (
    AccountLiquidated,
    AccountsEvent,
    AccountUpdated,
    CommandAccepted,
    CommandRejected,
    OrderUpdated,
    PositionUpdated,
    TradeBooked,
)
from engine.codes import ResultCode
from engine.enums import Offset, OrderStatus, OrderType, Side, TimeCondition, VolumeCondition
from ipc.records import (
    CMD,
    EVENT,
    EVENT_ACCOUNT,
    EVENT_ANSWER,
    EVENT_POSITION,
    Flag,
    Kind,
    dtype_of,
    new_batch,
)
from services.record_rows import Rows, number

MESSAGE_BYTES = EVENT_ANSWER.fields["message"][0].itemsize


class UnsupportedRecord(ValueError):
    """A record or event this codec does not convert."""


_C = Rows(CMD)
_ROWS = {dtype: Rows(dtype) for dtype in (EVENT, EVENT_ANSWER, EVENT_ACCOUNT, EVENT_POSITION)}

Row = Sequence[Any]


def _text(raw: bytes) -> str:
    return raw.rstrip(b"\0").decode("utf-8", "replace")


def _message(text: str) -> bytes:
    """UTF-8, cut to the field without splitting a character."""
    return text.encode()[:MESSAGE_BYTES].decode("utf-8", "ignore").encode()


# -- cmd: records → commands -------------------------------------------------------------------

InstrumentName = Callable[[int], str]
"""Instrument index → id (`CFFEX.IF2501`); the process passes its registry's lookup."""


def _g(row: Row, name: str) -> Any:
    return row[_C.index[name]]


_DECODE_CMD: dict[int, Callable[[Row], AccountsCommand]] = {
    Kind.OPEN_ACCOUNT: lambda r: OpenAccount(
        _g(r, "request_id"), _g(r, "account"), _g(r, "ts_event")
    ),
    Kind.DEPOSIT: lambda r: Deposit(
        _g(r, "request_id"),
        _g(r, "account"),
        _g(r, "amount"),
        _g(r, "txn_id"),
        _text(_g(r, "currency")),
        _g(r, "ts_event"),
    ),
    Kind.WITHDRAW: lambda r: Withdraw(
        _g(r, "request_id"),
        _g(r, "account"),
        _g(r, "amount"),
        _g(r, "txn_id"),
        _text(_g(r, "currency")),
        _g(r, "ts_event"),
    ),
    Kind.SET_ACCOUNT_FROZEN: lambda r: SetAccountFrozen(
        _g(r, "request_id"), _g(r, "account"), bool(_g(r, "frozen")), _g(r, "ts_event")
    ),
    Kind.PLACE_ORDER: lambda r: SubmitOrder(
        _g(r, "request_id"),
        _g(r, "account"),
        _g(r, "instrument"),
        Side(_g(r, "side")),
        Offset(_g(r, "offset")),
        _g(r, "price"),
        _g(r, "qty"),
        OrderType(_g(r, "order_type")),
        TimeCondition(_g(r, "time_condition")),
        VolumeCondition(_g(r, "volume_condition")),
        _g(r, "min_qty"),
        _g(r, "ts_event"),
    ),
    Kind.CANCEL_ORDER: lambda r: CancelOrder(
        _g(r, "request_id"), _g(r, "account"), _g(r, "order_id"), _g(r, "ts_event")
    ),
    Kind.AMEND_ORDER: lambda r: AmendOrder(
        _g(r, "request_id"),
        _g(r, "account"),
        _g(r, "order_id"),
        _g(r, "price"),
        _g(r, "qty"),
        _g(r, "ts_event"),
    ),
    Kind.SET_SETTLEMENT_PRICE: lambda r: SetSettlementPrice(
        _g(r, "request_id"), _g(r, "instrument"), _g(r, "price"), _g(r, "ts_event")
    ),
    Kind.EXECUTE_SETTLEMENT: lambda r: ExecuteSettlement(
        _g(r, "request_id"), _g(r, "trading_day"), _g(r, "ts_event")
    ),
}


class CommandDecoder:
    """cmd records → accounts commands. Keeps the pairs of a SET_SETTLEMENT_PRICES request
    that spans ring reads until its LAST_IN_BATCH record arrives."""

    def __init__(self, instrument_name: InstrumentName) -> None:
        self._instrument_name = instrument_name
        self._prices: list[tuple[int, int]] = []
        self._names: dict[int, Callable[[Row], AccountsCommand]] = {
            Kind.INSTRUMENT_SUSPEND: self._by_name(SuspendInstrument),
            Kind.INSTRUMENT_RESUME: self._by_name(ResumeInstrument),
            Kind.INSTRUMENT_DELIST: self._by_name(DelistInstrument),
        }

    def _by_name(self, command: Callable[..., AccountsCommand]) -> Callable[[Row], AccountsCommand]:
        return lambda r: command(
            _g(r, "request_id"), self._instrument_name(_g(r, "instrument")), _g(r, "ts_event")
        )

    def decode(self, batch: np.ndarray[Any, Any]) -> list[AccountsCommand]:
        out: list[AccountsCommand] = []
        for row in batch.tolist():
            kind = row[0]
            if kind == Kind.SET_SETTLEMENT_PRICES:
                self._prices.append((_g(row, "instrument"), _g(row, "price")))
                if _g(row, "flags") & Flag.LAST_IN_BATCH:
                    pairs, self._prices = tuple(self._prices), []
                    out.append(
                        SetSettlementPrices(_g(row, "request_id"), pairs, _g(row, "ts_event"))
                    )
                continue
            decode = _DECODE_CMD.get(kind) or self._names.get(kind)
            if decode is None:
                raise UnsupportedRecord(f"cmd record of kind {kind} has no accounts command")
            out.append(decode(row))
        return out


def commands_to_cmd(
    commands: Sequence[AccountsCommand],
    instrument_index: Callable[[str], int],
    source: int = 0,
    first_seq: int = 1,
    ts_init: int = 0,
) -> np.ndarray[Any, Any]:
    """A `cmd` batch for the commands (the gateway side); SetSettlementPrices becomes one
    record per pair, the last flagged LAST_IN_BATCH."""
    rows: list[list[Any]] = []
    for command in commands:
        if isinstance(command, SetSettlementPrices):
            for instrument, price in command.prices:
                rows.append(
                    _C.row(
                        Kind.SET_SETTLEMENT_PRICES,
                        command.ts,
                        request_id=command.request_id,
                        instrument=instrument,
                        price=price,
                    )
                )
            rows[-1][_C.index["flags"]] = Flag.LAST_IN_BATCH
            continue
        encode = _ENCODE_CMD.get(type(command))
        if encode is None:
            raise UnsupportedRecord(f"{type(command).__name__} does not fit a cmd record")
        rows.append(encode(command, instrument_index))
    if not rows:
        return new_batch(CMD, 0)
    batch = _C.array(rows)
    number(batch, source, first_seq, ts_init)
    return batch


def _money(kind: Kind) -> Callable[[Any, Any], list[Any]]:
    return lambda c, _index: _C.row(
        kind,
        c.ts,
        request_id=c.request_id,
        account=c.account_id,
        amount=c.amount,
        txn_id=c.txn_id,
        currency=c.currency.encode(),
    )


def _named(kind: Kind) -> Callable[[Any, Callable[[str], int]], list[Any]]:
    return lambda c, index: _C.row(
        kind, c.ts, request_id=c.request_id, instrument=index(c.instrument_id)
    )


_ENCODE_CMD: dict[type, Callable[[Any, Callable[[str], int]], list[Any]]] = {
    OpenAccount: lambda c, _i: _C.row(
        Kind.OPEN_ACCOUNT, c.ts, request_id=c.request_id, account=c.account_id
    ),
    Deposit: _money(Kind.DEPOSIT),
    Withdraw: _money(Kind.WITHDRAW),
    SetAccountFrozen: lambda c, _i: _C.row(
        Kind.SET_ACCOUNT_FROZEN,
        c.ts,
        request_id=c.request_id,
        account=c.account_id,
        frozen=int(c.frozen),
    ),
    SubmitOrder: lambda c, _i: _C.row(
        Kind.PLACE_ORDER,
        c.ts,
        request_id=c.request_id,
        account=c.account_id,
        instrument=c.instrument_index,
        side=c.side,
        offset=c.offset,
        price=c.price,
        qty=c.qty,
        order_type=c.order_type,
        time_condition=c.time_condition,
        volume_condition=c.volume_condition,
        min_qty=c.min_qty,
    ),
    CancelOrder: lambda c, _i: _C.row(
        Kind.CANCEL_ORDER, c.ts, request_id=c.request_id, account=c.account_id, order_id=c.order_id
    ),
    AmendOrder: lambda c, _i: _C.row(
        Kind.AMEND_ORDER,
        c.ts,
        request_id=c.request_id,
        account=c.account_id,
        order_id=c.order_id,
        price=c.price,
        qty=c.qty,
    ),
    SetSettlementPrice: lambda c, _i: _C.row(
        Kind.SET_SETTLEMENT_PRICE,
        c.ts,
        request_id=c.request_id,
        instrument=c.instrument_index,
        price=c.price,
    ),
    ExecuteSettlement: lambda c, _i: _C.row(
        Kind.EXECUTE_SETTLEMENT, c.ts, request_id=c.request_id, trading_day=c.trading_day
    ),
    SuspendInstrument: _named(Kind.INSTRUMENT_SUSPEND),
    ResumeInstrument: _named(Kind.INSTRUMENT_RESUME),
    DelistInstrument: _named(Kind.INSTRUMENT_DELIST),
}


# -- events: events → records ------------------------------------------------------------------

_EV, _ANS, _ACC, _POS = (_ROWS[d] for d in (EVENT, EVENT_ANSWER, EVENT_ACCOUNT, EVENT_POSITION))

_ENCODE_EVENT: dict[type, Callable[[Any], tuple[Rows, list[Any]]]] = {
    CommandAccepted: lambda e: (
        _ANS,
        _ANS.row(Kind.COMMAND_ACCEPTED, e.ts, request_id=e.request_id, order_id=e.order_id),
    ),
    CommandRejected: lambda e: (
        _ANS,
        _ANS.row(
            Kind.COMMAND_REJECTED,
            e.ts,
            request_id=e.request_id,
            code=e.code,
            message=_message(e.message),
        ),
    ),
    OrderUpdated: lambda e: (
        _EV,
        _EV.row(
            Kind.ORDER_UPDATED,
            e.ts,
            account=e.account_id,
            order_id=e.order_id,
            instrument=e.instrument_index,
            side=e.side,
            offset=e.offset,
            price=e.price,
            qty=e.qty,
            filled_qty=e.filled,
            status=e.status,
            code=e.code,
        ),
    ),
    TradeBooked: lambda e: (
        _EV,
        _EV.row(
            Kind.TRADE_BOOKED,
            e.ts,
            account=e.account_id,
            order_id=e.order_id,
            trade_id=e.trade_id,
            instrument=e.instrument_index,
            side=e.side,
            offset=e.offset,
            price=e.price,
            qty=e.qty,
            commission=e.commission,
            close_profit=e.close_profit,
        ),
    ),
    AccountUpdated: lambda e: (
        _ACC,
        _ACC.row(
            Kind.ACCOUNT_UPDATED,
            e.ts,
            account=e.account_id,
            currency=e.currency.encode(),
            balance=e.balance,
            available=e.available,
            margin=e.margin,
            frozen_margin=e.frozen_margin,
            frozen_commission=e.frozen_commission,
            position_profit=e.position_profit,
            close_profit=e.close_profit,
            commission=e.commission,
        ),
    ),
    PositionUpdated: lambda e: (
        _POS,
        _POS.row(
            Kind.POSITION_UPDATED,
            e.ts,
            account=e.account_id,
            instrument=e.instrument_index,
            long_today=e.long_today,
            long_history=e.long_history,
            short_today=e.short_today,
            short_history=e.short_history,
            long_frozen=e.long_frozen,
            short_frozen=e.short_frozen,
            margin=e.margin,
        ),
    ),
    AccountLiquidated: lambda e: (
        _EV,
        _EV.row(
            Kind.ACCOUNT_LIQUIDATED,
            e.ts,
            account=e.account_id,
            risk_ratio=e.risk_ratio_e8,
            qty=e.orders,
        ),
    ),
}


def events_to_records(
    events: Sequence[AccountsEvent], source: int = 0, first_seq: int = 1, ts_init: int = 0
) -> np.ndarray[Any, Any]:
    """An `events` batch for the core's events, in order, each in its kind's layout."""
    groups: dict[np.dtype[Any], tuple[Rows, list[int], list[list[Any]]]] = {}
    for position, event in enumerate(events):
        encode = _ENCODE_EVENT.get(type(event))
        if encode is None:
            raise UnsupportedRecord(f"{type(event).__name__} does not fit an events record")
        rows, row = encode(event)
        group = groups.setdefault(rows.dtype, (rows, [], []))
        group[1].append(position)
        group[2].append(row)
    batch = new_batch(EVENT, len(events))
    for rows, positions, layout_rows in groups.values():
        batch.view(rows.dtype)[positions] = rows.array(layout_rows)
    number(batch, source, first_seq, ts_init)
    return batch


# -- events: records → events ------------------------------------------------------------------

_DECODE_EVENT: dict[int, Callable[[Row], AccountsEvent]] = {
    Kind.COMMAND_ACCEPTED: lambda r: CommandAccepted(
        _ANS.get(r, "request_id"), _ANS.get(r, "order_id"), _ANS.get(r, "ts_event")
    ),
    Kind.COMMAND_REJECTED: lambda r: CommandRejected(
        _ANS.get(r, "request_id"),
        ResultCode(_ANS.get(r, "code")),
        _text(_ANS.get(r, "message")),
        _ANS.get(r, "ts_event"),
    ),
    Kind.ORDER_UPDATED: lambda r: OrderUpdated(
        _EV.get(r, "account"),
        _EV.get(r, "order_id"),
        _EV.get(r, "instrument"),
        Side(_EV.get(r, "side")),
        Offset(_EV.get(r, "offset")),
        _EV.get(r, "price"),
        _EV.get(r, "qty"),
        _EV.get(r, "filled_qty"),
        OrderStatus(_EV.get(r, "status")),
        ResultCode(_EV.get(r, "code")),
        _EV.get(r, "ts_event"),
    ),
    Kind.TRADE_BOOKED: lambda r: TradeBooked(
        _EV.get(r, "account"),
        _EV.get(r, "order_id"),
        _EV.get(r, "trade_id"),
        _EV.get(r, "instrument"),
        Side(_EV.get(r, "side")),
        Offset(_EV.get(r, "offset")),
        _EV.get(r, "price"),
        _EV.get(r, "qty"),
        _EV.get(r, "commission"),
        _EV.get(r, "close_profit"),
        _EV.get(r, "ts_event"),
    ),
    Kind.ACCOUNT_UPDATED: lambda r: AccountUpdated(
        _ACC.get(r, "account"),
        _text(_ACC.get(r, "currency")),
        *(
            _ACC.get(r, name)
            for name in (
                "balance",
                "available",
                "margin",
                "frozen_margin",
                "frozen_commission",
                "position_profit",
                "close_profit",
                "commission",
                "ts_event",
            )
        ),
    ),
    Kind.POSITION_UPDATED: lambda r: PositionUpdated(
        *(
            _POS.get(r, name)
            for name in (
                "account",
                "instrument",
                "long_today",
                "long_history",
                "short_today",
                "short_history",
                "long_frozen",
                "short_frozen",
                "margin",
                "ts_event",
            )
        )
    ),
    Kind.ACCOUNT_LIQUIDATED: lambda r: AccountLiquidated(
        _EV.get(r, "account"), _EV.get(r, "risk_ratio"), _EV.get(r, "qty"), _EV.get(r, "ts_event")
    ),
}


def records_to_events(batch: np.ndarray[Any, Any]) -> list[AccountsEvent]:
    """The core's events from an `events` batch (the gateway side), in ring order."""
    kinds = batch["kind"].tolist()
    views: dict[np.dtype[Any], list[Any]] = {}
    out: list[AccountsEvent] = []
    for position, kind in enumerate(kinds):
        decode = _DECODE_EVENT.get(kind)
        if decode is None:
            raise UnsupportedRecord(f"events record of kind {kind} has no accounts event")
        layout = dtype_of(kind)
        rows = views.get(layout)
        if rows is None:
            rows = views[layout] = batch.view(layout).tolist()
        out.append(decode(rows[position]))
    return out
