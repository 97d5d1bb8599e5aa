"""Records ↔ the accounts core's commands and events, at the edges of the accounts process.

`cmd` records become `engine.accounts.commands` (the gateway writes them, accounts reads them)
and the core's events become `events` records (accounts writes them, gateways decode them
back); events of several layouts share one batch. Conversion is column-wise per kind
(services/columns.py).

Instrument create/update carry a TOML-shaped table, too wide for one record: it travels as
compact JSON split over consecutive INSTRUMENT_CREATE / INSTRUMENT_UPDATE records (32 bytes
each in the CMD_INSTRUMENT view's `name`, the last flagged LAST_IN_BATCH), which
`CommandDecoder` reassembles per request id (docs/records.md). What a record cannot carry is
refused with `UnsupportedRecord` rather than guessed: CANCEL_ALL (no core command yet) and
SettlementCompleted (per-currency totals). SubmitOrder has no client order id or self-trade
mode, so encoding one leaves both zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, NamedTuple

import numpy as np
import orjson

from engine.accounts.commands import (
    AccountsCommand,
    AmendOrder,
    CancelOrder,
    CreateInstrument,
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
    UpdateInstrument,
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
    CMD_INSTRUMENT,
    EVENT,
    EVENT_ACCOUNT,
    EVENT_ANSWER,
    EVENT_POSITION,
    Flag,
    Kind,
    new_batch,
)
from services.columns import Decoder, Encoder, enum_table, number

MESSAGE_BYTES = EVENT_ANSWER.fields["message"][0].itemsize

InstrumentName = Callable[[int], str]
"""Instrument index → id (`CFFEX.IF2501`); the process passes its registry's lookup."""

InstrumentIndex = Callable[[str], int]
"""Instrument id → index; the gateway passes its registry's lookup."""


class UnsupportedRecord(ValueError):
    """A record or event this codec does not convert."""


def _text(raw: bytes) -> str:
    return raw.rstrip(b"\0").decode("utf-8", "replace")


def _message(text: str) -> bytes:
    """UTF-8, cut to the field without splitting a character."""
    return text.encode()[:MESSAGE_BYTES].decode("utf-8", "ignore").encode()


def _ascii(text: str) -> bytes:
    return text.encode("ascii")


_SIDE = enum_table(Side)
_OFFSET = enum_table(Offset)
_CODE = {code.value: code for code in ResultCode}.__getitem__


class _PricePair(NamedTuple):
    """One (instrument, price) of a SetSettlementPrices, as one cmd record."""

    request_id: int
    instrument_index: int
    price: int
    flags: int
    ts: int


class _ByIndex(NamedTuple):
    """An instrument admin command with its id already turned into an index."""

    kind: Kind
    request_id: int
    instrument_index: int
    ts: int


# -- cmd ---------------------------------------------------------------------------------------

_CMD_OUT = Encoder(CMD)
_MONEY = {
    "request_id": "request_id",
    "account": "account_id",
    "amount": "amount",
    "txn_id": "txn_id",
    "currency": ("currency", _ascii),
    "ts_event": "ts",
}
_CMD_OUT.register(
    OpenAccount,
    Kind.OPEN_ACCOUNT,
    {"request_id": "request_id", "account": "account_id", "ts_event": "ts"},
)
_CMD_OUT.register(Deposit, Kind.DEPOSIT, _MONEY)
_CMD_OUT.register(Withdraw, Kind.WITHDRAW, _MONEY)
_CMD_OUT.register(
    SetAccountFrozen,
    Kind.SET_ACCOUNT_FROZEN,
    {"request_id": "request_id", "account": "account_id", "frozen": "frozen", "ts_event": "ts"},
)
_CMD_OUT.register(
    SubmitOrder,
    Kind.PLACE_ORDER,
    {
        "request_id": "request_id",
        "account": "account_id",
        "instrument": "instrument_index",
        "side": "side",
        "offset": "offset",
        "price": "price",
        "qty": "qty",
        "order_type": "order_type",
        "time_condition": "time_condition",
        "volume_condition": "volume_condition",
        "min_qty": "min_qty",
        "ts_event": "ts",
    },
)
_CMD_OUT.register(
    CancelOrder,
    Kind.CANCEL_ORDER,
    {"request_id": "request_id", "account": "account_id", "order_id": "order_id", "ts_event": "ts"},
)
_CMD_OUT.register(
    AmendOrder,
    Kind.AMEND_ORDER,
    {
        "request_id": "request_id",
        "account": "account_id",
        "order_id": "order_id",
        "price": "price",
        "qty": "qty",
        "ts_event": "ts",
    },
)
_CMD_OUT.register(
    SetSettlementPrice,
    Kind.SET_SETTLEMENT_PRICE,
    {
        "request_id": "request_id",
        "instrument": "instrument_index",
        "price": "price",
        "ts_event": "ts",
    },
)
_CMD_OUT.register(
    _PricePair,
    Kind.SET_SETTLEMENT_PRICES,
    {
        "request_id": "request_id",
        "instrument": "instrument_index",
        "price": "price",
        "flags": "flags",
        "ts_event": "ts",
    },
)
_CMD_OUT.register(
    ExecuteSettlement,
    Kind.EXECUTE_SETTLEMENT,
    {"request_id": "request_id", "trading_day": "trading_day", "ts_event": "ts"},
)

_ADMIN_KINDS: dict[type, Kind] = {
    SuspendInstrument: Kind.INSTRUMENT_SUSPEND,
    ResumeInstrument: Kind.INSTRUMENT_RESUME,
    DelistInstrument: Kind.INSTRUMENT_DELIST,
}
_CMD_OUT.register(
    _ByIndex,
    Kind.INSTRUMENT_SUSPEND,
    {
        "kind": "kind",
        "request_id": "request_id",
        "instrument": "instrument_index",
        "ts_event": "ts",
    },
)


# -- instrument create/update: a JSON table in chunks ------------------------------------------

CHUNK_BYTES = CMD_INSTRUMENT.fields["name"][0].itemsize
"""Payload bytes per INSTRUMENT_CREATE / INSTRUMENT_UPDATE record (the view's `name` field)."""

_INSTRUMENT_KINDS: dict[type, Kind] = {
    CreateInstrument: Kind.INSTRUMENT_CREATE,
    UpdateInstrument: Kind.INSTRUMENT_UPDATE,
}


def _exact(value: object) -> object:
    """orjson's fallback: Decimals as strings, so the table stays exact."""
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def instrument_payload(command: CreateInstrument | UpdateInstrument) -> bytes:
    """The table as compact JSON: a create's fields, or an update's target and changes."""
    if type(command) is CreateInstrument:
        table: object = dict(command.fields)
    else:
        table = {"instrument_id": command.instrument_id, "changes": dict(command.changes)}
    return orjson.dumps(table, default=_exact, option=orjson.OPT_SORT_KEYS)


def _instrument_records(command: CreateInstrument | UpdateInstrument) -> np.ndarray[Any, Any]:
    """The command as consecutive records of its kind, the last flagged LAST_IN_BATCH."""
    payload = instrument_payload(command)
    pieces = [payload[i : i + CHUNK_BYTES] for i in range(0, len(payload), CHUNK_BYTES)]
    batch = new_batch(CMD, len(pieces))
    view = batch.view(CMD_INSTRUMENT)
    view["kind"] = _INSTRUMENT_KINDS[type(command)]
    view["request_id"] = command.request_id
    view["name"] = pieces
    view["ts_event"] = command.ts
    view["flags"][-1] = Flag.LAST_IN_BATCH
    return batch


def _decode_instrument(kind: int, request_id: int, payload: bytes, ts: int) -> Any:
    """The command a reassembled payload names, or its BAD_MESSAGE answer."""
    try:
        table = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        return CommandRejected(request_id, ResultCode.BAD_MESSAGE, f"instrument table: {exc}", ts)
    if kind == Kind.INSTRUMENT_CREATE and isinstance(table, dict):
        return CreateInstrument(request_id, table, ts)
    if (
        isinstance(table, dict)
        and isinstance(table.get("instrument_id"), str)
        and isinstance(table.get("changes"), dict)
    ):
        return UpdateInstrument(request_id, table["instrument_id"], table["changes"], ts)
    return CommandRejected(request_id, ResultCode.BAD_MESSAGE, "instrument table malformed", ts)


def commands_to_cmd(
    commands: Sequence[AccountsCommand],
    instrument_index: InstrumentIndex,
    source: int = 0,
    first_seq: int = 1,
    ts_init: int = 0,
) -> np.ndarray[Any, Any]:
    """A `cmd` batch for the commands (the gateway side). SetSettlementPrices becomes one
    record per pair, the last flagged LAST_IN_BATCH; an instrument create/update becomes its
    JSON chunks; instrument ids become indexes."""
    if any(type(command) in _INSTRUMENT_KINDS for command in commands):
        parts: list[np.ndarray[Any, Any]] = []
        run: list[AccountsCommand] = []
        for command in commands:
            if type(command) in _INSTRUMENT_KINDS:
                if run:
                    parts.append(_simple_records(run, instrument_index))
                parts.append(_instrument_records(command))  # type: ignore[arg-type]
                run = []
            else:
                run.append(command)
        if run:
            parts.append(_simple_records(run, instrument_index))
        batch = np.concatenate(parts)
    else:
        batch = _simple_records(commands, instrument_index)
    number(batch, source, first_seq, ts_init)
    return batch


def _simple_records(
    commands: Sequence[AccountsCommand], instrument_index: InstrumentIndex
) -> np.ndarray[Any, Any]:
    """Records for commands other than instrument create/update, one or more per command."""
    items: list[Any] = []
    for command in commands:
        kind = type(command)
        if kind is SetSettlementPrices:
            last = len(command.prices) - 1
            items.extend(
                _PricePair(
                    command.request_id,
                    instrument,
                    price,
                    Flag.LAST_IN_BATCH if i == last else Flag.NONE,
                    command.ts,
                )
                for i, (instrument, price) in enumerate(command.prices)
            )
        elif kind in _ADMIN_KINDS:
            index = instrument_index(command.instrument_id)
            items.append(_ByIndex(_ADMIN_KINDS[kind], command.request_id, index, command.ts))
        elif _CMD_OUT.handles(kind):
            items.append(command)
        else:
            raise UnsupportedRecord(f"{kind.__name__} does not fit a cmd record")
    return _CMD_OUT.encode(items)


_CMD_IN = Decoder()
_CMD_IN.register(Kind.OPEN_ACCOUNT, OpenAccount, CMD, ["request_id", "account", "ts_event"])
for _kind, _cls in ((Kind.DEPOSIT, Deposit), (Kind.WITHDRAW, Withdraw)):
    _CMD_IN.register(
        _kind,
        _cls,
        CMD,
        ["request_id", "account", "amount", "txn_id", ("currency", _text), "ts_event"],
    )
_CMD_IN.register(
    Kind.SET_ACCOUNT_FROZEN,
    SetAccountFrozen,
    CMD,
    ["request_id", "account", ("frozen", bool), "ts_event"],
)
_CMD_IN.register(
    Kind.PLACE_ORDER,
    SubmitOrder,
    CMD,
    [
        "request_id",
        "account",
        "instrument",
        ("side", _SIDE),
        ("offset", _OFFSET),
        "price",
        "qty",
        ("order_type", enum_table(OrderType)),
        ("time_condition", enum_table(TimeCondition)),
        ("volume_condition", enum_table(VolumeCondition)),
        "min_qty",
        "ts_event",
    ],
)
_CMD_IN.register(
    Kind.CANCEL_ORDER, CancelOrder, CMD, ["request_id", "account", "order_id", "ts_event"]
)
_CMD_IN.register(
    Kind.AMEND_ORDER,
    AmendOrder,
    CMD,
    ["request_id", "account", "order_id", "price", "qty", "ts_event"],
)
_CMD_IN.register(
    Kind.SET_SETTLEMENT_PRICE,
    SetSettlementPrice,
    CMD,
    ["request_id", "instrument", "price", "ts_event"],
)
_CMD_IN.register(
    Kind.EXECUTE_SETTLEMENT, ExecuteSettlement, CMD, ["request_id", "trading_day", "ts_event"]
)


class CommandDecoder:
    """cmd records → accounts commands. Keeps the pairs of a SET_SETTLEMENT_PRICES request,
    and the chunks of an instrument table (per request id), that span ring reads until their
    LAST_IN_BATCH record arrives. A batch that fails to decode leaves both as they were, so
    the caller may decode its records again one by one."""

    def __init__(self, instrument_name: InstrumentName) -> None:
        self._instrument_name = instrument_name
        self._prices: list[tuple[int, int]] = []
        self._chunks: dict[int, bytes] = {}
        self._admin = {kind: cls for cls, kind in _ADMIN_KINDS.items()}

    @property
    def pending(self) -> list[tuple[int, int]]:
        """The (instrument, price) pairs of a request still waiting for its last record
        (part of the accounts process's checkpoint)."""
        return list(self._prices)

    @pending.setter
    def pending(self, pairs: list[tuple[int, int]]) -> None:
        self._prices = [(int(i), int(p)) for i, p in pairs]

    @property
    def pending_chunks(self) -> list[list[Any]]:
        """`[request_id, hex payload so far]` of instrument tables still being read (part of
        the accounts process's checkpoint)."""
        return [[request, payload.hex()] for request, payload in self._chunks.items()]

    @pending_chunks.setter
    def pending_chunks(self, chunks: list[list[Any]]) -> None:
        self._chunks = {int(request): bytes.fromhex(payload) for request, payload in chunks}

    def decode(self, batch: np.ndarray[Any, Any]) -> list[AccountsCommand]:
        prices, chunks = list(self._prices), dict(self._chunks)
        try:
            return self._decode(batch)
        except Exception:
            self._prices, self._chunks = prices, chunks
            raise

    def _decode(self, batch: np.ndarray[Any, Any]) -> list[AccountsCommand]:
        def other(kind: int, where: list[int]) -> list[Any]:
            if kind == Kind.SET_SETTLEMENT_PRICES:
                return [self._price_pair(batch[i]) for i in where]
            if kind == Kind.INSTRUMENT_CREATE or kind == Kind.INSTRUMENT_UPDATE:
                return self._instrument_chunks(kind, batch[where].view(CMD_INSTRUMENT))
            admin = self._admin.get(kind)
            if admin is None:
                raise UnsupportedRecord(f"cmd record of kind {kind} has no accounts command")
            return [
                admin(
                    int(r["request_id"]),
                    self._instrument_name(int(r["instrument"])),
                    int(r["ts_event"]),
                )
                for r in batch[where]
            ]

        return _CMD_IN.decode(batch, other)

    def _instrument_chunks(self, kind: int, records: np.ndarray[Any, Any]) -> list[Any]:
        """One result per record: None until a table's last chunk, then its command."""
        out: list[Any] = []
        for request, piece, flags, ts in zip(
            records["request_id"].tolist(),
            records["name"].tolist(),
            records["flags"].tolist(),
            records["ts_event"].tolist(),
            strict=True,
        ):
            payload = self._chunks.pop(request, b"") + piece
            if flags & Flag.LAST_IN_BATCH:
                out.append(_decode_instrument(kind, request, payload, ts))
            else:
                self._chunks[request] = payload
                out.append(None)
        return out

    def _price_pair(self, record: Any) -> SetSettlementPrices | None:
        self._prices.append((int(record["instrument"]), int(record["price"])))
        if not int(record["flags"]) & Flag.LAST_IN_BATCH:
            return None
        pairs, self._prices = tuple(self._prices), []
        return SetSettlementPrices(int(record["request_id"]), pairs, int(record["ts_event"]))


# -- events ------------------------------------------------------------------------------------

_EVENTS_OUT = Encoder(EVENT)
_EVENTS_OUT.register(
    CommandAccepted,
    Kind.COMMAND_ACCEPTED,
    {"request_id": "request_id", "order_id": "order_id", "ts_event": "ts"},
    EVENT_ANSWER,
)
_EVENTS_OUT.register(
    CommandRejected,
    Kind.COMMAND_REJECTED,
    {
        "request_id": "request_id",
        "code": "code",
        "message": ("message", _message),
        "ts_event": "ts",
    },
    EVENT_ANSWER,
)
_EVENTS_OUT.register(
    OrderUpdated,
    Kind.ORDER_UPDATED,
    {
        "account": "account_id",
        "order_id": "order_id",
        "instrument": "instrument_index",
        "side": "side",
        "offset": "offset",
        "price": "price",
        "qty": "qty",
        "filled_qty": "filled",
        "status": "status",
        "code": "code",
        "ts_event": "ts",
    },
)
_EVENTS_OUT.register(
    TradeBooked,
    Kind.TRADE_BOOKED,
    {
        "account": "account_id",
        "order_id": "order_id",
        "trade_id": "trade_id",
        "instrument": "instrument_index",
        "side": "side",
        "offset": "offset",
        "price": "price",
        "qty": "qty",
        "commission": "commission",
        "close_profit": "close_profit",
        "ts_event": "ts",
    },
)
_ACCOUNT_MONEY = (
    "balance",
    "available",
    "margin",
    "frozen_margin",
    "frozen_commission",
    "position_profit",
    "close_profit",
    "commission",
)
_EVENTS_OUT.register(
    AccountUpdated,
    Kind.ACCOUNT_UPDATED,
    {
        "account": "account_id",
        "currency": ("currency", _ascii),
        **{name: name for name in _ACCOUNT_MONEY},
        "ts_event": "ts",
    },
    EVENT_ACCOUNT,
)
_POSITION_LOTS = (
    "long_today",
    "long_history",
    "short_today",
    "short_history",
    "long_frozen",
    "short_frozen",
    "margin",
)
_EVENTS_OUT.register(
    PositionUpdated,
    Kind.POSITION_UPDATED,
    {
        "account": "account_id",
        "instrument": "instrument_index",
        **{name: name for name in _POSITION_LOTS},
        "ts_event": "ts",
    },
    EVENT_POSITION,
)
_EVENTS_OUT.register(
    AccountLiquidated,
    Kind.ACCOUNT_LIQUIDATED,
    {"account": "account_id", "risk_ratio": "risk_ratio_e8", "qty": "orders", "ts_event": "ts"},
)

_EVENTS_IN = Decoder()
_EVENTS_IN.register(
    Kind.COMMAND_ACCEPTED,
    CommandAccepted,
    EVENT_ANSWER,
    ["request_id", "order_id", "ts_event"],
)
_EVENTS_IN.register(
    Kind.COMMAND_REJECTED,
    CommandRejected,
    EVENT_ANSWER,
    ["request_id", ("code", _CODE), ("message", _text), "ts_event"],
)
_EVENTS_IN.register(
    Kind.ORDER_UPDATED,
    OrderUpdated,
    EVENT,
    [
        "account",
        "order_id",
        "instrument",
        ("side", _SIDE),
        ("offset", _OFFSET),
        "price",
        "qty",
        "filled_qty",
        ("status", enum_table(OrderStatus)),
        ("code", _CODE),
        "ts_event",
    ],
)
_EVENTS_IN.register(
    Kind.TRADE_BOOKED,
    TradeBooked,
    EVENT,
    [
        "account",
        "order_id",
        "trade_id",
        "instrument",
        ("side", _SIDE),
        ("offset", _OFFSET),
        "price",
        "qty",
        "commission",
        "close_profit",
        "ts_event",
    ],
)
_EVENTS_IN.register(
    Kind.ACCOUNT_UPDATED,
    AccountUpdated,
    EVENT_ACCOUNT,
    ["account", ("currency", _text), *_ACCOUNT_MONEY, "ts_event"],
)
_EVENTS_IN.register(
    Kind.POSITION_UPDATED,
    PositionUpdated,
    EVENT_POSITION,
    ["account", "instrument", *_POSITION_LOTS, "ts_event"],
)
_EVENTS_IN.register(
    Kind.ACCOUNT_LIQUIDATED,
    AccountLiquidated,
    EVENT,
    ["account", "risk_ratio", "qty", "ts_event"],
)


def events_to_records(
    events: Sequence[AccountsEvent], source: int = 0, first_seq: int = 1, ts_init: int = 0
) -> np.ndarray[Any, Any]:
    """An `events` batch for the core's events, in order, each in its kind's layout."""
    for kind in set(map(type, events)):
        if not _EVENTS_OUT.handles(kind):
            raise UnsupportedRecord(f"{kind.__name__} does not fit an events record")
    batch = _EVENTS_OUT.encode(events)
    number(batch, source, first_seq, ts_init)
    return batch


def records_to_events(batch: np.ndarray[Any, Any]) -> list[AccountsEvent]:
    """The core's events from an `events` batch (the gateway side), in ring order."""

    def refuse(kind: int, _where: list[int]) -> list[Any]:
        raise UnsupportedRecord(f"events record of kind {kind} has no accounts event")

    return _EVENTS_IN.decode(batch, refuse)
