"""Backend events → the native `/ws` push messages of reference part 2 §6 (times in ms)."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from gateway.backend import AccountEvent, EventKind, MarketChannel, MarketUpdate
from gateway.outbox import Priority

EVENT_CHANNELS = {
    EventKind.ORDER_STATUS: "trade",
    EventKind.TRADE: "trade",
    EventKind.ACCOUNT: "account",
    EventKind.POSITION: "account",
}
MARKET_CHANNELS = {
    MarketChannel.BOOK: "orderbook",
    MarketChannel.QUOTE: "ticker",
    MarketChannel.TICK: "ticker",
    MarketChannel.KLINE: "kline",
}
CHANNELS = frozenset({*EVENT_CHANNELS.values(), *MARKET_CHANNELS.values()})

_EVENT_PRIORITY = {
    EventKind.ORDER_STATUS: Priority.ANSWER,
    EventKind.TRADE: Priority.TRADE,
    EventKind.ACCOUNT: Priority.ACCOUNT,
    EventKind.POSITION: Priority.ACCOUNT,
}


def event_message(event: AccountEvent) -> tuple[dict[str, Any], Priority, Hashable | None]:
    """A push message, its outbox priority and its conflation key (snapshots only)."""
    data = event.data
    if event.kind is EventKind.ORDER_STATUS:
        message = {
            "type": "order_status",
            "order_id": data["order_id"],
            "client_order_id": data.get("client_order_id"),
            "status": data["status"],
            "filled_volume": data["filled_volume"],
            "remaining_volume": data["remaining_volume"],
            "last_msg": data.get("last_msg", ""),
            "timestamp": data["update_time_ns"] // 1_000_000,
        }
        return message, _EVENT_PRIORITY[event.kind], None
    if event.kind is EventKind.TRADE:
        fields = ("trade_id", "order_id", "instrument_id", "direction", "offset", "price", "volume")
        message = {"type": "trade", **{k: data[k] for k in fields}}
        message["timestamp"] = data["trade_time_ns"] // 1_000_000
        return message, _EVENT_PRIORITY[event.kind], None
    kind = "account_update" if event.kind is EventKind.ACCOUNT else "position_update"
    message = {
        "type": kind,
        "account_id": event.account_id,
        **{k: v for k, v in data.items() if k != "update_time_ns"},
        "timestamp": data["update_time_ns"] // 1_000_000,
    }
    key = (kind, event.account_id, data.get("instrument_id"))
    return message, _EVENT_PRIORITY[event.kind], key


def market_message(update: MarketUpdate) -> tuple[dict[str, Any], Hashable | None]:
    """A market push and its conflation key: books, quotes and bars conflate; prints do not."""
    data = dict(update.data)
    timestamp = data.pop("timestamp_ns", data.pop("datetime_ns", 0))
    message = {
        "type": MARKET_CHANNELS[update.channel],
        "instrument_id": update.instrument_id,
        **data,
        "timestamp": timestamp // 1_000_000,
    }
    key: Hashable | None = None
    if update.channel in (MarketChannel.BOOK, MarketChannel.QUOTE):
        key = (update.channel, update.instrument_id)
    elif update.channel is MarketChannel.KLINE:
        key = (update.channel, update.instrument_id, data["period_seconds"], data["id"])
    return message, key
