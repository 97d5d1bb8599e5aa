"""The record layouts that cross process boundaries: the only schema between shmex processes.

Every ring carries one fixed-size numpy structured dtype, little-endian and explicit, that starts
with the same 32-byte header. A few kinds need a payload that does not fit the ring's main layout
(instrument create/update, account and position snapshots): they use a second dtype of the SAME
itemsize and header, and a reader views those records by kind::

    wide = batch[batch["kind"] == Kind.INSTRUMENT_CREATE].view(CMD_INSTRUMENT)

Integers inside: prices in ticks, quantities in lots, money in the currency's fixed point,
rates per `engine.money.RATE_SCALE` (1e8). Account, order, trade and request ids start at 1, so
0 means "none" and a zeroed slot names no account or order; instrument indexes are the
registry's dense indexes from 0, and ALL_INSTRUMENTS (-1) means "every instrument". Enum fields
are u1 holding values of `engine.enums`; result codes are u2 holding `engine.codes.ResultCode`.
docs/records.md has the tables; tests/unit/ipc/test_records.py pins every offset.
"""

from __future__ import annotations

import contextlib
from enum import IntEnum, IntFlag
from typing import Any

import numpy as np

RECORD_VERSION = 2
"""Bumped whenever a layout changes; the ring's dtype fingerprint refuses old attachments too."""

ALL_INSTRUMENTS = -1
"""The `instrument` of a CANCEL_ALL or EXPIRE_ORDERS that applies to every instrument."""


class Kind(IntEnum):
    """What a record is. Bands by ring (cmd 1xx, orders 2xx, execs 3xx, events 4xx, md 5xx),
    so a record's kind also says which ring it belongs to; 0 = NONE marks a zeroed slot."""

    NONE = 0

    OPEN_ACCOUNT = 101
    DEPOSIT = 102
    WITHDRAW = 103
    PLACE_ORDER = 104
    CANCEL_ORDER = 105
    AMEND_ORDER = 106
    CANCEL_ALL = 107
    SET_ACCOUNT_FROZEN = 108
    INSTRUMENT_CREATE = 110  # CMD_INSTRUMENT layout
    INSTRUMENT_UPDATE = 111  # CMD_INSTRUMENT layout
    INSTRUMENT_SUSPEND = 112
    INSTRUMENT_RESUME = 113
    INSTRUMENT_DELIST = 114
    SET_SETTLEMENT_PRICE = 120
    EXECUTE_SETTLEMENT = 121
    SET_SETTLEMENT_PRICES = 122  # one record per price; the last of the request has LAST_IN_BATCH

    NEW_ORDER = 201
    CANCEL = 202
    AMEND = 203
    ADD_INSTRUMENT = 210
    SET_INSTRUMENT_STATUS = 211
    EXPIRE_ORDERS = 212
    SET_PHASE = 213
    RUN_AUCTION = 214

    ORDER_ACCEPTED = 301
    TRADE = 302
    ORDER_CANCELED = 303
    ORDER_REJECTED = 304
    ORDER_AMENDED = 305
    BOOK_LEVEL = 306
    INSTRUMENT_STATUS_CHANGED = 307
    CANCEL_REJECTED = 308
    AMEND_REJECTED = 309
    PHASE_CHANGED = 310
    AUCTION_UNCROSSED = 311

    COMMAND_ACCEPTED = 401  # EVENT_ANSWER layout
    COMMAND_REJECTED = 402  # EVENT_ANSWER layout
    ORDER_UPDATED = 403
    TRADE_BOOKED = 404
    ACCOUNT_UPDATED = 405  # EVENT_ACCOUNT layout
    POSITION_UPDATED = 406  # EVENT_POSITION layout
    ACCOUNT_LIQUIDATED = 407

    MD_BOOK_LEVEL = 501
    MD_BOOK_CLEAR = 502
    MD_TRADE = 503


class Flag(IntFlag):
    """Header flag bits."""

    NONE = 0
    REPLAY = 1  # re-emitted while recovering from the journal; consumers may already have it
    LAST_IN_BATCH = 2  # the writer's batch ends here (lets a reader flush at a natural boundary)
    BATCH_END = 4  # journal only: the last record of a batch accounts took in one loop turn


HEADER_SIZE = 32

_HEADER: list[tuple[str, str]] = [
    ("kind", "<u2"),
    ("version", "u1"),
    ("flags", "u1"),
    ("source", "<u4"),  # writer id: gateway id on cmd, shard id on orders/execs
    ("seq", "<i8"),  # the writer's sequence for this ring, from 1
    ("ts_event", "<i8"),  # ns UTC when the thing happened (the client's request, the match)
    ("ts_init", "<i8"),  # ns UTC when this record was written
]

_ORDER_FLAGS: list[tuple[str, str]] = [
    ("side", "u1"),  # Side
    ("offset", "u1"),  # Offset
    ("order_type", "u1"),  # OrderType
    ("time_condition", "u1"),  # TimeCondition
    ("volume_condition", "u1"),  # VolumeCondition
    ("self_trade", "u1"),  # SelfTradePrevention
]


def _layout(name: str, body: list[tuple[str, str]], itemsize: int) -> np.dtype[Any]:
    """Header + body, padded with a trailing `reserved` field to exactly `itemsize` bytes."""
    fields = _HEADER + body
    used = np.dtype(fields).itemsize
    if used > itemsize:
        raise ValueError(f"{name}: {used} bytes of fields do not fit {itemsize}")
    if used < itemsize:
        fields = [*fields, ("reserved", f"V{itemsize - used}")]
    dtype = np.dtype(fields)
    if dtype.itemsize != itemsize:
        raise ValueError(f"{name}: itemsize {dtype.itemsize} != {itemsize}")
    return dtype


CMD = _layout(
    "cmd",
    [
        ("request_id", "<u8"),  # the gateway's id; the answer on `events` carries it back
        ("account", "<i4"),
        ("instrument", "<i4"),
        ("order_id", "<i8"),  # exchange order id (cancel, amend)
        ("client_order_id", "<i8"),  # the client's own id (place)
        ("price", "<i8"),  # ticks (place, amend, settlement price)
        ("qty", "<i8"),  # lots (place; new quantity for amend)
        ("min_qty", "<i8"),  # lots, VolumeCondition.MIN
        ("amount", "<i8"),  # money fixed point (deposit, withdraw, initial cash)
        (
            "txn_id",
            "<i8",
        ),  # idempotency key for deposit/withdraw: a repeat is answered, not applied
        *_ORDER_FLAGS,
        ("frozen", "u1"),  # 1 = freeze, 0 = unfreeze (SET_ACCOUNT_FROZEN)
        ("pad0", "V1"),
        ("currency", "S8"),  # currency code, ASCII, NUL-padded (deposit, withdraw)
        ("trading_day", "<i4"),  # yyyymmdd (settlement)
    ],
    128,
)
"""gateway → accounts, ring `cmd.<gateway>`: one client request per record."""

CMD_INSTRUMENT = _layout(
    "cmd_instrument",
    [
        ("request_id", "<u8"),
        ("instrument", "<i4"),  # 0 on create: accounts assigns the index
        ("price_decimals", "u1"),  # tick_size is in units of 10**-price_decimals
        ("instrument_kind", "u1"),  # InstrumentKind
        ("status", "u1"),  # InstrumentStatus
        ("close_today_rule", "u1"),  # CloseTodayRule
        ("name", "S32"),  # "EXCHANGE.code", ASCII, NUL-padded
        ("multiplier", "<i8"),
        ("tick_size", "<i8"),
        ("margin_rate", "<i8"),  # per RATE_SCALE
        ("commission_rate", "<i8"),  # per RATE_SCALE
        ("limit_up_rate", "<i4"),  # per RATE_SCALE, above the reference price
        ("limit_down_rate", "<i4"),  # per RATE_SCALE, below the reference price
        ("reference_price", "<i8"),  # ticks: pre-settlement price the limits are computed from
    ],
    128,
)
"""Second view of `cmd` for INSTRUMENT_CREATE / INSTRUMENT_UPDATE: same header and size."""

ORDER = _layout(
    "orders",
    [
        ("order_id", "<i8"),  # exchange order id, assigned by accounts
        ("account", "<i4"),
        ("instrument", "<i4"),
        ("price", "<i8"),  # ticks
        ("qty", "<i8"),  # lots
        ("min_qty", "<i8"),
        *_ORDER_FLAGS,
        ("status", "u1"),  # InstrumentStatus (SET_INSTRUMENT_STATUS, ADD_INSTRUMENT)
        ("reason", "u1"),  # CancelReason (CANCEL)
        ("limit_up", "<i8"),  # ticks: the price band (ADD_INSTRUMENT), 0 = none
        ("limit_down", "<i8"),
        ("request_id", "<u8"),  # carried for tracing only
        ("trading_day", "<i4"),  # EXPIRE_ORDERS
        ("phase", "u1"),  # TradingPhase (SET_PHASE)
        ("pad0", "V3"),
        ("max_qty", "<i8"),  # lots: the largest order (ADD_INSTRUMENT, SET_INSTRUMENT_STATUS)
    ],
    128,
)
"""accounts → matching, ring `orders` (one per matching shard): risk-approved orders, cancels,
amends, and the admin commands matching must see."""

EXEC = _layout(
    "execs",
    [
        ("order_id", "<i8"),  # the order this report is about (the taker's, for a TRADE)
        ("account", "<i4"),
        ("instrument", "<i4"),
        ("price", "<i8"),  # ticks: trade price, accepted/amended price, level price
        ("qty", "<i8"),  # lots: traded, canceled, or total resting at the level (0 = level gone)
        ("leaves_qty", "<i8"),  # the order's remaining quantity after this report
        ("maker_order_id", "<i8"),
        ("maker_account", "<i4"),
        ("code", "<u2"),  # ResultCode (ORDER_REJECTED)
        ("side", "u1"),  # the order's side; the taker's side on a TRADE; the level's side
        ("reason", "u1"),  # CancelReason
        ("maker_leaves_qty", "<i8"),
        ("trade_id", "<i8"),
        ("level_orders", "<i4"),  # orders resting at the level (BOOK_LEVEL), 0 = not counted
        ("status", "u1"),  # InstrumentStatus (INSTRUMENT_STATUS_CHANGED)
        ("phase", "u1"),  # TradingPhase (PHASE_CHANGED)
        ("taker_offset", "u1"),  # Offset of the taker's order (TRADE)
        ("maker_offset", "u1"),  # Offset of the maker's order (TRADE)
        ("old_price", "<i8"),  # ticks: the price before an ORDER_AMENDED
        ("old_qty", "<i8"),  # lots: the open quantity before an ORDER_AMENDED
    ],
    128,
)
"""matching → accounts, marketdata, recorder, ring `execs`: one writer, several readers."""

_EVENT_ADDRESS: list[tuple[str, str]] = [
    ("request_id", "<u8"),  # the request this answers; 0 for unsolicited events
    ("account", "<i4"),  # at the same offset in every events layout: gateways route on it
]

EVENT = _layout(
    "events",
    [
        *_EVENT_ADDRESS,
        ("instrument", "<i4"),
        ("order_id", "<i8"),
        ("client_order_id", "<i8"),
        ("price", "<i8"),  # ticks: order price, or fill price
        ("qty", "<i8"),  # lots: order quantity, fill quantity; orders sent (ACCOUNT_LIQUIDATED)
        ("filled_qty", "<i8"),  # lots filled so far (ORDER_UPDATED)
        ("trade_id", "<i8"),
        ("commission", "<i8"),  # money fixed point (TRADE_BOOKED)
        ("code", "<u2"),  # ResultCode
        ("status", "u1"),  # OrderStatus
        ("side", "u1"),
        ("offset", "u1"),
        ("reason", "u1"),  # CancelReason
        ("pad0", "V2"),
        ("close_profit", "<i8"),  # money fixed point (TRADE_BOOKED)
        ("risk_ratio", "<i8"),  # margin / balance per RATE_SCALE (ACCOUNT_LIQUIDATED)
    ],
    128,
)
"""accounts → gateways, ring `events`: order updates, booked trades, liquidations."""

EVENT_ANSWER = _layout(
    "events_answer",
    [
        *_EVENT_ADDRESS,
        ("code", "<u2"),  # ResultCode: OK for COMMAND_ACCEPTED
        ("pad0", "V2"),
        ("order_id", "<i8"),  # the exchange order id given to an accepted SubmitOrder
        ("value", "<i8"),  # another id the answer hands back (a new instrument index), else 0
        ("message", "S64"),  # the rejection's short context, UTF-8, NUL-padded, cut at 64 bytes
    ],
    128,
)
"""Second view of `events` for COMMAND_ACCEPTED / COMMAND_REJECTED: the answer to a request."""

EVENT_ACCOUNT = _layout(
    "events_account",
    [
        *_EVENT_ADDRESS,
        ("pad0", "V4"),
        ("currency", "S8"),  # currency code, ASCII, NUL-padded
        ("balance", "<i8"),
        ("available", "<i8"),
        ("margin", "<i8"),
        ("frozen_margin", "<i8"),
        ("frozen_commission", "<i8"),
        ("position_profit", "<i8"),
        ("close_profit", "<i8"),
        ("commission", "<i8"),
    ],
    128,
)
"""Second view of `events` for ACCOUNT_UPDATED: the QIFI money of one account and currency."""

EVENT_POSITION = _layout(
    "events_position",
    [
        *_EVENT_ADDRESS,
        ("instrument", "<i4"),
        ("long_today", "<i8"),  # lots
        ("long_history", "<i8"),
        ("short_today", "<i8"),
        ("short_history", "<i8"),
        ("long_frozen", "<i8"),  # lots held by closing orders
        ("short_frozen", "<i8"),
        ("margin", "<i8"),  # money fixed point
    ],
    128,
)
"""Second view of `events` for POSITION_UPDATED."""

MD = _layout(
    "md",
    [
        ("instrument", "<i4"),
        ("side", "u1"),
        ("level", "u1"),  # depth index, 0 = best
        ("pad0", "V2"),
        ("level_orders", "<i4"),
        ("pad1", "V4"),
        ("price", "<i8"),  # ticks
        ("qty", "<i8"),  # lots (0 = level gone)
    ],
    64,
)
"""marketdata's book updates, ring `md`: 64 bytes is enough for one level."""

RING_DTYPES: dict[str, np.dtype[Any]] = {
    "cmd": CMD,
    "orders": ORDER,
    "execs": EXEC,
    "events": EVENT,
    "md": MD,
}
"""The main dtype per ring kind; `cmd` and `orders` rings are `cmd.<gw>` and `orders.<shard>`."""

_WIDE: dict[Kind, np.dtype[Any]] = {
    Kind.INSTRUMENT_CREATE: CMD_INSTRUMENT,
    Kind.INSTRUMENT_UPDATE: CMD_INSTRUMENT,
    Kind.COMMAND_ACCEPTED: EVENT_ANSWER,
    Kind.COMMAND_REJECTED: EVENT_ANSWER,
    Kind.ACCOUNT_UPDATED: EVENT_ACCOUNT,
    Kind.POSITION_UPDATED: EVENT_POSITION,
}

_BANDS: dict[int, np.dtype[Any]] = {1: CMD, 2: ORDER, 3: EXEC, 4: EVENT, 5: MD}


def dtype_of(kind: Kind | int) -> np.dtype[Any]:
    """The layout a record of this kind is written in (its ring's dtype, or a second view)."""
    kind = Kind(kind)
    wide = _WIDE.get(kind)
    if wide is not None:
        return wide
    band = _BANDS.get(int(kind) // 100)
    if band is None:
        raise ValueError(f"kind {kind!r} has no layout")
    return band


def ring_dtype(ring_name: str) -> np.dtype[Any]:
    """The dtype of a ring from its name (`cmd.1` → CMD, `orders.0` → ORDER, `execs` → EXEC)."""
    base = ring_name.split(".", 1)[0]
    try:
        return RING_DTYPES[base]
    except KeyError:
        raise ValueError(f"unknown ring {ring_name!r}; known: {sorted(RING_DTYPES)}") from None


def new_batch(dtype: np.dtype[Any], n: int) -> np.ndarray[Any, Any]:
    """A zeroed batch with the header version set, ready to fill and publish."""
    batch = np.zeros(n, dtype=dtype)
    batch["version"] = RECORD_VERSION
    return batch


def make(kind: Kind, **fields: Any) -> np.ndarray[Any, Any]:
    """One record (a 0-d array) of `kind` in its layout, with the given fields set.

    For tests, admin tools and rare commands; hot paths fill batches column-wise instead.
    """
    record = new_batch(dtype_of(kind), 1)[0]
    record["kind"] = kind
    for name, value in fields.items():
        record[name] = value
    return np.asarray(record)


def describe(record: np.void | np.ndarray[Any, Any]) -> dict[str, Any]:
    """A record as a plain dict in its kind's layout, for logs and error reports (not hot paths)."""
    array = np.asarray(record).reshape(1)
    kind = int(array["kind"][0])
    with contextlib.suppress(ValueError):
        array = array.view(dtype_of(kind))
    values = array[0].item()
    out: dict[str, Any] = {}
    for name, value in zip(array.dtype.names or (), values, strict=True):
        if name == "reserved" or name.startswith("pad"):
            continue
        out[name] = (
            value.rstrip(b"\0").decode("utf-8", "replace") if isinstance(value, bytes) else value
        )
    try:
        out["kind"] = Kind(kind).name
    except ValueError:
        out["kind"] = kind
    return out
