"""Builders for the DIFF state tree: quotes, charts, the trade tree, notify and start-up flags.

Each builder returns one merge patch rooted at the top of the tree, so handlers compose a
transaction as a list of builder results. Numbers leave as JSON numbers except NaN, which the
spec renders as the string "NAN"; times are integer nanoseconds except `quotes/*/datetime`,
a "YYYY-MM-DD HH:MM:SS.ffffff" string in exchange local time (UTC+8 for the Chinese venues
whose symbols stock DIFF clients accept).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from engine.enums import Offset, OrderStatus
from engine.instruments import NO_LIMIT, Instrument
from gateway.external import ExternalInstrument

Patch = dict[str, Any]

NAN = "NAN"

EXCHANGE_UTC_OFFSET_S = 8 * 3600

DEPTH = 5

QUOTE_MARKET_FIELDS = (
    "datetime",
    *(
        f"{side}_{kind}{level}"
        for level in range(1, DEPTH + 1)
        for side in ("ask", "bid")
        for kind in ("price", "volume")
    ),
    "last_price",
    "highest",
    "lowest",
    "open",
    "close",
    "average",
    "volume",
    "amount",
    "open_interest",
    "pre_open_interest",
    "pre_close",
    "pre_settlement",
    "settlement",
    "upper_limit",
    "lower_limit",
)
"""The quote fields that move with the market (diff.md, `quotes/<symbol>`)."""

QUOTE_STATIC_FIELDS = (
    "instrument_id",
    "exchange_id",
    "ins_class",
    "price_tick",
    "price_decs",
    "volume_multiple",
    "max_market_order_volume",
    "min_market_order_volume",
    "max_limit_order_volume",
    "min_limit_order_volume",
    "margin",
    "commission",
    "expired",
)
"""The static quote fields a stock client needs before it subscribes (`price_tick > 0`)."""

ALIVE_STATUSES = frozenset(
    {OrderStatus.PENDING, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED}
)

MDHIS_READY: Patch = {"mdhis_more_data": False}
"""The market-data connection's first answer: history is complete (tqsdk waits for it)."""


def number(value: Any) -> Any:
    """A value as DIFF sends it: NaN and missing numbers as "NAN", Decimals as floats."""
    if value is None:
        return NAN
    if isinstance(value, Decimal):
        return NAN if value.is_nan() else float(value)
    if isinstance(value, float) and math.isnan(value):
        return NAN
    return value


def quote_datetime(ts_ns: int, utc_offset_s: int = EXCHANGE_UTC_OFFSET_S) -> str:
    """Nanoseconds UTC → the quote `datetime` string in exchange local time."""
    tz = dt.timezone(dt.timedelta(seconds=utc_offset_s))
    moment = dt.datetime.fromtimestamp(ts_ns // 1_000_000_000, tz)
    return f"{moment:%Y-%m-%d %H:%M:%S}.{ts_ns % 1_000_000_000 // 1000:06d}"


def static_quote(instrument: Instrument) -> dict[str, Any]:
    """The static fields of an instrument's quote, from the engine's instrument table."""
    scale = instrument.currency.scale
    reference = instrument.pre_settlement or instrument.pre_close
    exponent = instrument.price_tick.normalize().as_tuple().exponent
    return {
        "instrument_id": instrument.id,
        "exchange_id": instrument.exchange,
        "ins_class": instrument.kind.name,
        "price_tick": float(instrument.price_tick),
        "price_decs": max(0, -exponent) if isinstance(exponent, int) else 0,
        "volume_multiple": instrument.multiplier,
        "max_market_order_volume": instrument.max_qty,
        "min_market_order_volume": instrument.min_qty,
        "max_limit_order_volume": instrument.max_qty,
        "min_limit_order_volume": instrument.min_qty,
        "margin": instrument.margin(reference, 1) / scale if reference else NAN,
        "commission": instrument.commission_for(Offset.OPEN, reference, 1) / scale
        if reference
        else NAN,
        "expired": not instrument.trading,
        "pre_close": _price(instrument, instrument.pre_close),
        "pre_settlement": _price(instrument, instrument.pre_settlement),
        "upper_limit": _price(instrument, instrument.upper_limit),
        "lower_limit": _price(instrument, instrument.lower_limit),
    }


def external_static_quote(instrument: ExternalInstrument) -> dict[str, Any]:
    """The static fields of another venue's instrument: what the feeds catalogue knows (venue,
    tick); "NAN" for what it does not (contract size, margins, order limits: never traded here).
    Prices of external quotes are the venue's, volumes in its lots."""
    exponent = instrument.price_tick.normalize().as_tuple().exponent
    unknown = (
        "ins_class",
        "volume_multiple",
        "max_market_order_volume",
        "min_market_order_volume",
        "max_limit_order_volume",
        "min_limit_order_volume",
        "margin",
        "commission",
        "pre_close",
        "pre_settlement",
        "upper_limit",
        "lower_limit",
    )
    return {
        "instrument_id": instrument.id,
        "exchange_id": instrument.venue,
        "price_tick": float(instrument.price_tick),
        "price_decs": max(0, -exponent) if isinstance(exponent, int) else 0,
        "expired": False,
        **dict.fromkeys(unknown, NAN),
    }


def quote_values(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a `quotes/<symbol>` update: market fields as given (NaN → "NAN") and any
    static ones; absent fields are left out."""
    rendered = {k: number(v) for k, v in fields.items() if k in QUOTE_MARKET_FIELDS}
    for key in QUOTE_STATIC_FIELDS:
        if key in fields:
            rendered[key] = number(fields[key])
    return rendered


def full_quote(symbol: str, static: Mapping[str, Any], market: Mapping[str, Any]) -> Patch:
    """A first quote: every field of the spec, "NAN" where nothing is known yet."""
    fields: dict[str, Any] = {k: NAN for k in QUOTE_MARKET_FIELDS}
    fields.update(static)
    fields.update(market)
    fields["instrument_id"] = symbol
    if fields["datetime"] == NAN:
        fields["datetime"] = "1970-01-01 08:00:00.000000"
    return {"quotes": {symbol: {k: number(v) for k, v in fields.items()}}}


def ins_list_patch(ins_list: str) -> Patch:
    """The echo of `subscribe_quote`: a client knows its subscription took effect."""
    return {"ins_list": ins_list}


def chart_patch(
    chart_id: str, request: Mapping[str, Any], left_id: int, right_id: int, more_data: bool = False
) -> Patch:
    """`charts/<id>`: the window served and an echo of the request (`state`)."""
    return {
        "charts": {
            chart_id: {
                "left_id": left_id,
                "right_id": right_id,
                "more_data": more_data,
                "ready": True,
                "state": dict(request),
            }
        }
    }


def drop_chart_patch(chart_id: str) -> Patch:
    return {"charts": {chart_id: None}}


def kline_patch(
    symbol: str,
    duration_ns: int,
    bars: Iterable[tuple[int, Mapping[str, Any] | None]],
    last_id: int,
) -> Patch:
    """`klines/<symbol>/<duration>`: bars by id ({datetime ns, open, high, low, close, volume,
    open_oi, close_oi}) and the id of the newest bar."""
    data = {str(bar_id): _row(bar) for bar_id, bar in bars}
    return {"klines": {symbol: {str(duration_ns): {"last_id": last_id, "data": data}}}}


def tick_patch(
    symbol: str, ticks: Iterable[tuple[int, Mapping[str, Any] | None]], last_id: int
) -> Patch:
    """`ticks/<symbol>`: a `set_chart` with duration 0."""
    data = {str(tick_id): _row(tick) for tick_id, tick in ticks}
    return {"ticks": {symbol: {"last_id": last_id, "data": data}}}


def trade_ready_patch(user: str) -> Patch:
    """The trading connection's start-up answer after login (tqsdk waits for it)."""
    sections: dict[str, Any] = {s: {} for s in ("accounts", "positions", "orders", "trades")}
    return {"trade": {user: {**sections, "banks": {}, "transfers": {}, "trade_more_data": False}}}


def account_patch(user: str, fields: Mapping[str, Any], currency: str = "CNY") -> Patch:
    return _trade(user, "accounts", currency, fields)


def position_patch(user: str, symbol: str, fields: Mapping[str, Any]) -> Patch:
    return _trade(user, "positions", symbol, fields)


def order_patch(user: str, order_id: str, fields: Mapping[str, Any]) -> Patch:
    return _trade(user, "orders", order_id, fields)


def trade_record_patch(user: str, trade_key: str, fields: Mapping[str, Any]) -> Patch:
    return _trade(user, "trades", trade_key, fields)


def order_status(status: OrderStatus) -> str:
    """DIFF's two order states: ALIVE while the order can still trade, FINISHED after."""
    return "ALIVE" if status in ALIVE_STATUSES else "FINISHED"


def notify_patch(
    key: str, code: int, content: str, level: str = "INFO", kind: str = "MESSAGE"
) -> Patch:
    """`notify/<key>`: every notice carries type, level, code and content."""
    return {"notify": {key: {"type": kind, "level": level, "code": code, "content": content}}}


def _row(row: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A bar or tick by id; None deletes one that left the chart's window."""
    return None if row is None else {k: number(v) for k, v in row.items()}


def _trade(user: str, section: str, key: str, fields: Mapping[str, Any]) -> Patch:
    return {"trade": {user: {section: {key: {k: number(v) for k, v in fields.items()}}}}}


def _price(instrument: Instrument, ticks: int) -> Any:
    if ticks <= 0 or ticks >= NO_LIMIT:
        return NAN
    return float(instrument.ticks_to_price(ticks))


def quote_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """Backend quote data (with `datetime_ns`) → DIFF quote fields (with `datetime`)."""
    fields = {k: v for k, v in data.items() if k != "datetime_ns"}
    if data.get("datetime_ns"):
        fields["datetime"] = quote_datetime(data["datetime_ns"])
    return fields


def order_key(data: Mapping[str, Any]) -> str:
    """The DIFF key of an order: the client's order_id when it chose one."""
    return data.get("client_order_id") or str(data["order_id"])


def diff_order(data: Mapping[str, Any]) -> dict[str, Any]:
    """Backend order data (backend.AccountEvent ORDER_STATUS) → `trade/<u>/orders/<id>`."""
    exchange_id, _, code = data["instrument_id"].partition(".")
    return {
        "order_id": order_key(data),
        "exchange_order_id": str(data["order_id"]),
        "exchange_id": exchange_id,
        "instrument_id": code,
        "direction": data["direction"],
        "offset": data["offset"],
        "volume_orign": data["volume"],
        "volume_left": data["remaining_volume"],
        "price_type": "LIMIT" if data["order_type"] == "LIMIT" else "ANY",
        "limit_price": number(data.get("price")),
        "time_condition": data["time_condition"],
        "volume_condition": data["volume_condition"],
        "status": order_status(OrderStatus[data["status"]]),
        "last_msg": data.get("last_msg", ""),
        "insert_date_time": data["insert_time_ns"],
    }


def diff_trade(data: Mapping[str, Any]) -> dict[str, Any]:
    """Backend trade data (backend.AccountEvent TRADE) → `trade/<u>/trades/<id>`."""
    exchange_id, _, code = data["instrument_id"].partition(".")
    return {
        "order_id": order_key(data),
        "exchange_trade_id": str(data["trade_id"]),
        "exchange_id": exchange_id,
        "instrument_id": code,
        "direction": data["direction"],
        "offset": data["offset"],
        "volume": data["volume"],
        "price": data["price"],
        "commission": data.get("commission", 0.0),
        "trade_date_time": data["trade_time_ns"],
    }


def without_time(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != "update_time_ns"}
