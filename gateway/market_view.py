"""The marketdata process's JSON (services/marketdata.py `Renderer`) → the edge's market shapes.

marketdata publishes one body per topic with decimal prices next to integer ticks; the edge's
`MarketUpdate` shapes (gateway/backend.py) use the DIFF field names. The same functions shape
the live messages and the control answers (snapshot, K-lines, recent trades), so a pushed quote
and a queried one always agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.backend import MarketChannel, MarketUpdate
from ipc.pubsub import parse_topic

_QUOTE_NAMES = {
    "bid_price": "bid_price1",
    "bid_volume": "bid_volume1",
    "ask_price": "ask_price1",
    "ask_volume": "ask_volume1",
    "last": "last_price",
    "high": "highest",
    "low": "lowest",
    "open": "open",
    "volume": "volume",
    "turnover": "amount",
    "open_interest": "open_interest",
    "pre_close": "pre_close",
    "pre_settlement": "pre_settlement",
    "upper_limit": "upper_limit",
    "lower_limit": "lower_limit",
}


def quote(body: Mapping[str, Any]) -> dict[str, Any]:
    data = {new: body[old] for old, new in _QUOTE_NAMES.items() if old in body}
    data["datetime_ns"] = body.get("ts", 0)
    return data


def book(body: Mapping[str, Any]) -> dict[str, Any]:
    """Levels `[ticks, lots, price]` → `{price, volume, order_count}` (count not published)."""

    def levels(side: str) -> list[dict[str, Any]]:
        return [{"price": level[2], "volume": level[1], "order_count": 0} for level in body[side]]

    return {"bids": levels("bids"), "asks": levels("asks"), "timestamp_ns": body.get("ts", 0)}


def tick(body: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": body["trade_id"],
        "last_price": body["price"],
        "volume": body["qty"],
        "direction": body.get("side", "NONE"),
        "timestamp_ns": body["ts"],
    }


def bar(body: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "period_seconds": body["period"],
        "id": body["id"],
        "datetime_ns": body["datetime"],
        "open": body["open"],
        "high": body["high"],
        "low": body["low"],
        "close": body["close"],
        "volume": body["volume"],
        "open_oi": body.get("open_oi", 0),
        "close_oi": body.get("close_oi", 0),
    }


def snapshot(instrument_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """The `snapshot` control answer as the backend's `market_snapshot` data."""
    depth = book(body["book"])
    return {"instrument_id": instrument_id, "quote": quote(body["quote"]), **depth}


_SHAPES = {
    "quote": (MarketChannel.QUOTE, quote),
    "book": (MarketChannel.BOOK, book),
    "tick": (MarketChannel.TICK, tick),
    "kline": (MarketChannel.KLINE, bar),
}


def to_update(topic: str, body: Any) -> MarketUpdate | None:
    """A published message as a MarketUpdate; None for what the edge does not use."""
    if not isinstance(body, dict):
        return None
    try:
        instrument_id, kind, _seconds = parse_topic(topic)
        channel, shape = _SHAPES[kind]
        return MarketUpdate(channel, instrument_id, shape(body))
    except (ValueError, KeyError, TypeError, IndexError):
        return None
