"""Every request the edge accepts, as one declarative schema each (REST, `/ws` and DIFF).

REST and `/ws` share a schema wherever they carry the same request (submit, cancel); DIFF keeps
its own field names (`limit_price`, `price_type`, `volume_condition`) and ignores unknown fields,
as its spec requires. `gateway/openapi.py` renders these same objects.
"""

from __future__ import annotations

from decimal import Decimal

from engine.codes import ResultCode
from engine.enums import Offset, OrderType, Side, TimeCondition, VolumeCondition
from gateway.schema import (
    Schema,
    choice,
    decimal,
    integer,
    objects,
    strings,
    text,
    words,
)

USERNAME = r"[A-Za-z0-9_.@\-]{3,32}"
INSTRUMENT_ID = r"[A-Za-z0-9_]{1,16}(\.[A-Za-z0-9_\-]{1,32})?"
CLIENT_ID = r"[\x21-\x7e]{1,64}"
"""Printable ASCII without spaces: client order ids and transaction ids are echoed in logs."""

MAX_ID = Decimal(2**63 - 1)
MAX_QTY = Decimal(10**12)
"""Largest order size (lots) an instrument may allow: int64 notionals stay far from overflow."""
CURRENCY = r"[A-Z0-9]{2,8}"
_ORDER = ResultCode.BAD_ORDER_PARAMETER

OFFSET_ALIASES = {"CLOSE_TODAY": Offset.CLOSETODAY, "CLOSE_YESTERDAY": Offset.CLOSEYESTERDAY}

_account_id = integer("account_id", minimum=Decimal(1), maximum=MAX_ID)
_instrument_id = text("instrument_id", pattern=INSTRUMENT_ID, max_length=49)

REGISTER = Schema(
    "register",
    (
        text("username", pattern=USERNAME, max_length=32),
        text("password", pattern=r"[^\x00]{8,128}", max_length=128),
        text("email", required=False, max_length=128),
    ),
    description="Create a user; the password is stored only as a scrypt hash.",
)

LOGIN = Schema(
    "login",
    (
        text("username", pattern=USERNAME, max_length=32),
        text("password", max_length=128),
    ),
    description="Exchange a username and password for a signed, expiring token.",
)

OPEN_ACCOUNT = Schema(
    "open_account",
    (text("account_name", required=False, max_length=64),),
    description="Open a trading account owned by the caller.",
)

ADJUST_BALANCE = Schema(
    "adjust_balance",
    (
        _account_id,
        decimal("amount", positive=True, maximum=Decimal(10) ** 15),
        integer(
            "transaction_id",
            minimum=Decimal(1),
            maximum=MAX_ID,
            description="client-chosen key: a retry with the same id is a no-op",
        ),
    ),
    description="Deposit or withdraw; idempotent by transaction_id.",
)

SUBMIT_ORDER = Schema(
    "submit_order",
    (
        _account_id,
        _instrument_id,
        choice("direction", Side),
        choice("offset", Offset, OFFSET_ALIASES),
        decimal("volume", positive=True, bounds_code=_ORDER, description="quantity in lots"),
        decimal("price", required=False, positive=True, bounds_code=_ORDER, description="LIMIT"),
        choice("order_type", OrderType, required=False, default=OrderType.LIMIT),
        choice("time_condition", TimeCondition, required=False, default=TimeCondition.GFD),
        choice("volume_condition", VolumeCondition, required=False, default=VolumeCondition.ANY),
        text("client_order_id", pattern=CLIENT_ID, required=False),
    ),
    description="Place an order on one of the caller's accounts.",
)

CANCEL_ORDER = Schema(
    "cancel_order",
    (_account_id, integer("order_id", minimum=Decimal(1), maximum=MAX_ID)),
    description="Cancel a resting order of one of the caller's accounts.",
)

_instrument_fields = (
    text("instrument_name", required=False, max_length=64),
    words("instrument_type", ("FUTURE", "SPOT"), required=False),
    decimal("contract_multiplier", positive=True, required=False),
    decimal("price_tick", positive=True, required=False),
    decimal("lot_size", positive=True, required=False),
    decimal("margin_rate", positive=True, maximum=Decimal(1), required=False),
    decimal("commission_rate", minimum=Decimal(0), maximum=Decimal(1), required=False),
    decimal("limit_up_rate", positive=True, maximum=Decimal(1), required=False),
    decimal(
        "limit_down_rate",
        positive=True,
        maximum=Decimal(1),
        required=False,
        description="the registry's band is symmetric: equal to limit_up_rate when both are given",
    ),
    integer("min_qty", minimum=Decimal(1), maximum=MAX_QTY, required=False, description="lots"),
    integer(
        "max_qty", minimum=Decimal(1), maximum=MAX_QTY, required=False, description="lots, ≥ min"
    ),
    text("currency", pattern=CURRENCY, max_length=8, required=False, description="default CNY"),
    text("base_asset", pattern=CURRENCY, max_length=8, required=False, description="SPOT only"),
    decimal("pre_settlement", positive=True, required=False, description="on the tick"),
    decimal("pre_close", positive=True, required=False, description="on the tick"),
)

CREATE_INSTRUMENT = Schema(
    "create_instrument",
    (_instrument_id, *_instrument_fields),
    description="List a new instrument (admin).",
)

UPDATE_INSTRUMENT = Schema(
    "update_instrument",
    _instrument_fields,
    description="Change an instrument's parameters; the id is fixed (admin).",
)

SET_SETTLEMENT_PRICE = Schema(
    "set_settlement_price",
    (_instrument_id, decimal("settlement_price", positive=True)),
    description="Record the day's settlement price of an instrument (admin).",
)

BATCH_SET_SETTLEMENT_PRICES = Schema(
    "batch_set_settlement_prices",
    (objects("prices", SET_SETTLEMENT_PRICE),),
    description="Record several settlement prices at once (admin).",
)

EMPTY = Schema("empty", (), description="No body fields.")

WS_AUTH = Schema("auth", (text("token", max_length=512),))

WS_SUBSCRIBE = Schema(
    "subscribe",
    (
        strings("channels", max_items=8, required=False, default=[]),
        strings("instruments", max_items=256, required=False, default=[]),
    ),
)

WS_QUERY_ORDER = Schema("query_order", (integer("order_id", minimum=Decimal(1), maximum=MAX_ID),))

WS_QUERY_ACCOUNT = Schema("query_account", (integer("account_id", required=False),))

WS_QUERY_POSITION = Schema(
    "query_position",
    (integer("account_id", required=False), text("instrument_id", required=False)),
)

DIFF_LOGIN = Schema(
    "req_login",
    (
        text("user_name", pattern=USERNAME, max_length=32),
        text("password", max_length=512),
        text("bid", required=False, max_length=64),
    ),
    ignore_unknown=True,
)

DIFF_SUBSCRIBE_QUOTE = Schema(
    "subscribe_quote", (text("ins_list", max_length=16384),), ignore_unknown=True
)

DIFF_SET_CHART = Schema(
    "set_chart",
    (
        text("chart_id", pattern=CLIENT_ID),
        text("ins_list", max_length=1024),
        integer("duration", minimum=Decimal(0), maximum=Decimal(86400 * 10**9 * 366)),
        integer("view_width", minimum=Decimal(0), maximum=Decimal(10000), required=False),
        integer("left_kline_id", required=False),
        text("focus_datetime", required=False),
        integer("focus_position", required=False),
    ),
    ignore_unknown=True,
)

DIFF_INSERT_ORDER = Schema(
    "insert_order",
    (
        text("user_id", max_length=64),
        text("order_id", pattern=CLIENT_ID),
        text("exchange_id", pattern=r"[A-Za-z0-9_]{1,16}"),
        text("instrument_id", pattern=r"[A-Za-z0-9_\-]{1,32}"),
        choice("direction", Side),
        choice("offset", Offset, OFFSET_ALIASES),
        decimal("volume", positive=True, bounds_code=_ORDER),
        words("price_type", ("LIMIT", "ANY", "BEST", "FIVELEVEL")),
        decimal("limit_price", required=False, positive=True, bounds_code=_ORDER),
        words("volume_condition", ("ANY", "MIN", "ALL"), required=False, default="ANY"),
        words(
            "time_condition",
            ("IOC", "GFS", "GFD", "GTD", "GTC", "GFA"),
            required=False,
            default="GFD",
        ),
    ),
    ignore_unknown=True,
)

DIFF_CANCEL_ORDER = Schema(
    "cancel_order",
    (text("user_id", max_length=64), text("order_id", pattern=CLIENT_ID)),
    ignore_unknown=True,
)
