"""Records ↔ the matching engine's commands and events, at the edges of the matching process.

`orders` records become `engine.matching.commands` (matching reads them) and the engine's events
become `execs` records (matching writes them; accounts, marketdata and the recorder decode them
back). Conversion is column-wise over runs of one kind (services/columns.py). Instrument
definitions (ADD_INSTRUMENT, SET_INSTRUMENT_STATUS) need the process's registry and are left to
the process; what it adopted goes downstream as an `InstrumentChanged`. `oi_deltas` reads the
legs' offsets the matching process writes into TRADEs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from engine.codes import ResultCode
from engine.enums import (
    CancelReason,
    InstrumentStatus,
    Offset,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeCondition,
    TradingPhase,
    VolumeCondition,
)
from engine.instruments import NO_LIMIT, Instrument
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
from engine.money import RATE_SCALE
from ipc.records import ALL_INSTRUMENTS, EXEC, ORDER, Kind
from services.columns import Decoder, Encoder, enum_table, number


class UnsupportedRecord(ValueError):
    """A record kind this codec does not convert (the process must handle it itself)."""


class InstrumentChanged(NamedTuple):
    """Matching adopted an instrument definition (an index new to it, or a change of status,
    reference prices or band): what readers of `execs` show of it. The matching process writes
    it where it applied the definition, so it precedes every later record of the instrument;
    its id, tick and currency are accounts' (`instruments` on its control socket)."""

    instrument_index: int
    status: InstrumentStatus
    pre_settlement: int
    pre_close: int
    upper_limit: int
    lower_limit: int
    ts: int

    @classmethod
    def of(cls, instrument: Instrument, ts: int) -> InstrumentChanged:
        return cls(
            instrument.index,
            instrument.status,
            instrument.pre_settlement,
            instrument.pre_close,
            instrument.upper_limit,
            instrument.lower_limit,
            ts,
        )


def band_from_limits(pre_settlement: int, limit_up: int) -> int:
    """The band (per RATE_SCALE) that gives `limit_up` over `pre_settlement`: the smallest
    rate whose width rounds down to the record's (the one accounts used gives the same)."""
    if limit_up >= NO_LIMIT or pre_settlement <= 0:
        return 0
    width = limit_up - pre_settlement
    return max(1, -((-width * RATE_SCALE) // pre_settlement))


_SIDE = enum_table(Side)
_CODE = {code.value: code for code in ResultCode}.__getitem__
_REASON = enum_table(CancelReason)
_PHASE = enum_table(TradingPhase)
_STATUS = enum_table(InstrumentStatus)


def _instrument_or_all(value: int) -> int | None:
    return None if value == ALL_INSTRUMENTS else value


def _all_or_instrument(value: int | None) -> int:
    return ALL_INSTRUMENTS if value is None else value


def _cancel_reason(value: int) -> CancelReason:
    return _REASON(value) or CancelReason.USER


# -- orders ------------------------------------------------------------------------------------

_ORDERS_OUT = Encoder(ORDER)
_ORDERS_OUT.register(
    PlaceOrder,
    Kind.NEW_ORDER,
    {
        "order_id": "order_id",
        "account": "account_id",
        "instrument": "instrument_index",
        "side": "side",
        "price": "price",
        "qty": "qty",
        "order_type": "order_type",
        "time_condition": "time_condition",
        "volume_condition": "volume_condition",
        "min_qty": "min_qty",
        "ts_event": "ts",
        "self_trade": "stp",
    },
)
_ORDERS_OUT.register(
    CancelOrder,
    Kind.CANCEL,
    {
        "order_id": "order_id",
        "instrument": "instrument_index",
        "ts_event": "ts",
        "reason": "reason",
    },
)
_ORDERS_OUT.register(
    AmendOrder,
    Kind.AMEND,
    {
        "order_id": "order_id",
        "instrument": "instrument_index",
        "price": "price",
        "qty": "qty",
        "ts_event": "ts",
    },
)
_ORDERS_OUT.register(
    ExpireOrders,
    Kind.EXPIRE_ORDERS,
    {"instrument": ("instrument_index", _all_or_instrument), "ts_event": "ts"},
)
_ORDERS_OUT.register(
    SetPhase, Kind.SET_PHASE, {"instrument": "instrument_index", "phase": "phase", "ts_event": "ts"}
)
_ORDERS_OUT.register(
    RunAuction, Kind.RUN_AUCTION, {"instrument": "instrument_index", "ts_event": "ts"}
)

_ORDERS_IN = Decoder()
_ORDERS_IN.register(
    Kind.NEW_ORDER,
    PlaceOrder,
    ORDER,
    [
        "order_id",
        "account",
        "instrument",
        ("side", _SIDE),
        "price",
        "qty",
        ("order_type", enum_table(OrderType)),
        ("time_condition", enum_table(TimeCondition)),
        ("volume_condition", enum_table(VolumeCondition)),
        "min_qty",
        "ts_event",
        ("self_trade", enum_table(SelfTradePrevention)),
    ],
)
_ORDERS_IN.register(
    Kind.CANCEL,
    CancelOrder,
    ORDER,
    ["order_id", "instrument", "ts_event", ("reason", _cancel_reason)],
)
_ORDERS_IN.register(
    Kind.AMEND, AmendOrder, ORDER, ["order_id", "instrument", "price", "qty", "ts_event"]
)
_ORDERS_IN.register(
    Kind.EXPIRE_ORDERS, ExpireOrders, ORDER, [("instrument", _instrument_or_all), "ts_event"]
)
_ORDERS_IN.register(Kind.SET_PHASE, SetPhase, ORDER, ["instrument", ("phase", _PHASE), "ts_event"])
_ORDERS_IN.register(Kind.RUN_AUCTION, RunAuction, ORDER, ["instrument", "ts_event"])


def commands_to_orders(
    commands: Sequence[MatchingCommand], source: int = 0, first_seq: int = 1, ts_init: int = 0
) -> np.ndarray[Any, Any]:
    """An `orders` batch for the commands (the accounts side of the ring)."""
    batch = _ORDERS_OUT.encode(commands)
    number(batch, source, first_seq, ts_init)
    return batch


def orders_to_commands(batch: np.ndarray[Any, Any]) -> list[MatchingCommand]:
    """The matching commands of an `orders` batch, in ring order."""
    return _decode(_ORDERS_IN, batch, "orders")


# -- execs -------------------------------------------------------------------------------------

_EXECS_OUT = Encoder(EXEC)
_EXECS_OUT.register(
    OrderAccepted,
    Kind.ORDER_ACCEPTED,
    {
        "order_id": "order_id",
        "account": "account_id",
        "instrument": "instrument_index",
        "side": "side",
        "price": "price",
        "qty": "qty",
        "leaves_qty": "qty",
        "ts_event": "ts",
    },
)
_EXECS_OUT.register(
    OrderRejected,
    Kind.ORDER_REJECTED,
    {
        "order_id": "order_id",
        "account": "account_id",
        "instrument": "instrument_index",
        "code": "code",
        "ts_event": "ts",
    },
)
_EXECS_OUT.register(
    OrderCanceled,
    Kind.ORDER_CANCELED,
    {
        "order_id": "order_id",
        "account": "account_id",
        "instrument": "instrument_index",
        "reason": "reason",
        "qty": "qty",
        "ts_event": "ts",
    },
)
_EXECS_OUT.register(
    OrderAmended,
    Kind.ORDER_AMENDED,
    {
        "order_id": "order_id",
        "account": "account_id",
        "instrument": "instrument_index",
        "price": "price",
        "qty": "qty",
        "leaves_qty": "qty",
        "old_price": "old_price",
        "old_qty": "old_qty",
        "ts_event": "ts",
    },
)
for _cls, _kind in ((CancelRejected, Kind.CANCEL_REJECTED), (AmendRejected, Kind.AMEND_REJECTED)):
    _EXECS_OUT.register(
        _cls,
        _kind,
        {
            "order_id": "order_id",
            "instrument": "instrument_index",
            "code": "code",
            "ts_event": "ts",
        },
    )
_EXECS_OUT.register(
    TradeExecuted,
    Kind.TRADE,
    {
        "trade_id": "trade_id",
        "instrument": "instrument_index",
        "price": "price",
        "qty": "qty",
        "order_id": "taker_order_id",
        "account": "taker_account_id",
        "side": "taker_side",
        "maker_order_id": "maker_order_id",
        "maker_account": "maker_account_id",
        "leaves_qty": "taker_remaining",
        "maker_leaves_qty": "maker_remaining",
        "ts_event": "ts",
    },
)
_EXECS_OUT.register(
    BookChanged,
    Kind.BOOK_LEVEL,
    {
        "instrument": "instrument_index",
        "side": "side",
        "price": "price",
        "qty": "qty",
        "ts_event": "ts",
    },
)
_EXECS_OUT.register(
    PhaseChanged,
    Kind.PHASE_CHANGED,
    {"instrument": "instrument_index", "phase": "phase", "ts_event": "ts"},
)
_EXECS_OUT.register(
    AuctionUncrossed,
    Kind.AUCTION_UNCROSSED,
    {
        "instrument": "instrument_index",
        "price": "price",
        "qty": "qty",
        "leaves_qty": "imbalance",
        "ts_event": "ts",
    },
)
_EXECS_OUT.register(
    InstrumentChanged,
    Kind.INSTRUMENT_STATUS_CHANGED,
    {
        "instrument": "instrument_index",
        "status": "status",
        "price": "pre_settlement",
        "qty": "pre_close",
        "old_price": "upper_limit",
        "old_qty": "lower_limit",
        "ts_event": "ts",
    },
)

_EXECS_IN = Decoder()
_EXECS_IN.register(
    Kind.ORDER_ACCEPTED,
    OrderAccepted,
    EXEC,
    ["order_id", "account", "instrument", ("side", _SIDE), "price", "qty", "ts_event"],
)
_EXECS_IN.register(
    Kind.ORDER_REJECTED,
    OrderRejected,
    EXEC,
    ["order_id", "account", "instrument", ("code", _CODE), "ts_event"],
)
_EXECS_IN.register(
    Kind.ORDER_CANCELED,
    OrderCanceled,
    EXEC,
    ["order_id", "account", "instrument", ("reason", _REASON), "qty", "ts_event"],
)
_EXECS_IN.register(
    Kind.ORDER_AMENDED,
    OrderAmended,
    EXEC,
    ["order_id", "account", "instrument", "price", "qty", "old_price", "old_qty", "ts_event"],
)
for _cls, _kind in ((CancelRejected, Kind.CANCEL_REJECTED), (AmendRejected, Kind.AMEND_REJECTED)):
    _EXECS_IN.register(_kind, _cls, EXEC, ["order_id", "instrument", ("code", _CODE), "ts_event"])
_EXECS_IN.register(
    Kind.TRADE,
    TradeExecuted,
    EXEC,
    [
        "trade_id",
        "instrument",
        "price",
        "qty",
        "order_id",
        "account",
        ("side", _SIDE),
        "maker_order_id",
        "maker_account",
        "leaves_qty",
        "maker_leaves_qty",
        "ts_event",
    ],
)
_EXECS_IN.register(
    Kind.BOOK_LEVEL, BookChanged, EXEC, ["instrument", ("side", _SIDE), "price", "qty", "ts_event"]
)
_EXECS_IN.register(
    Kind.PHASE_CHANGED, PhaseChanged, EXEC, ["instrument", ("phase", _PHASE), "ts_event"]
)
_EXECS_IN.register(
    Kind.AUCTION_UNCROSSED,
    AuctionUncrossed,
    EXEC,
    ["instrument", "price", "qty", "leaves_qty", "ts_event"],
)
_EXECS_IN.register(
    Kind.INSTRUMENT_STATUS_CHANGED,
    InstrumentChanged,
    EXEC,
    ["instrument", ("status", _STATUS), "price", "qty", "old_price", "old_qty", "ts_event"],
)


def events_to_execs(
    events: Sequence[MatchingEvent | InstrumentChanged],
    source: int = 0,
    first_seq: int = 1,
    ts_init: int = 0,
) -> np.ndarray[Any, Any]:
    """An `execs` batch for the engine's events, numbered from `first_seq`."""
    batch = _EXECS_OUT.encode(events)
    number(batch, source, first_seq, ts_init)
    return batch


def execs_to_events(batch: np.ndarray[Any, Any]) -> list[MatchingEvent | InstrumentChanged]:
    """The engine events (and InstrumentChanged) of an `execs` batch, in ring order."""
    return _decode(_EXECS_IN, batch, "execs")


_CLOSES = np.zeros(256, dtype=bool)
_CLOSES[[Offset.CLOSE, Offset.CLOSETODAY, Offset.CLOSEYESTERDAY]] = True


def oi_deltas(execs: np.ndarray[Any, Any]) -> dict[int, int]:
    """trade_id → open-interest change of each TRADE in an `execs` batch: +qty when both legs
    open, −qty when both close (CLOSE, CLOSETODAY, CLOSEYESTERDAY), 0 otherwise (the position
    changes hands, or a leg's offset is not known). Meaningful for futures only: a spot order's
    offset follows its side, not a position."""
    trades = execs[execs["kind"] == Kind.TRADE]
    taker, maker = trades["taker_offset"], trades["maker_offset"]
    qty = trades["qty"]
    opens = (taker == Offset.OPEN) & (maker == Offset.OPEN)
    closes = _CLOSES[taker] & _CLOSES[maker]
    delta = np.where(opens, qty, np.where(closes, -qty, 0))
    return dict(zip(trades["trade_id"].tolist(), delta.tolist(), strict=True))


def _decode(decoder: Decoder, batch: np.ndarray[Any, Any], ring: str) -> list[Any]:
    def refuse(kind: int, _where: list[int]) -> list[Any]:
        raise UnsupportedRecord(f"{ring} record of kind {kind} is not for the matching engine")

    return decoder.decode(batch, refuse)
