"""Backend events → the native `/ws` push messages of reference part 2 §6 (times in ms)."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from gateway.backend import AccountEvent, EventKind, EventRendering, MarketChannel, MarketUpdate
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


def event_message(event: AccountEvent) -> tuple[dict[str, Any], Priority, Hashable | None]:
    """A push message, its outbox priority and its conflation key (snapshots only). Order
    statuses (most pushes: several per order) are built straight from the record
    (`AccountEvent.source`), without the full `data` view they mostly do not show."""
    if event.kind is EventKind.ORDER_STATUS:
        return _renderer(event).status_message(event), Priority.ANSWER, None
    data = event.data
    if event.kind is EventKind.TRADE:
        fields = ("trade_id", "order_id", "instrument_id", "direction", "offset", "price", "volume")
        message = {"type": "trade", **{k: data[k] for k in fields}}
        message["timestamp"] = data["trade_time_ns"] // 1_000_000
        return message, Priority.TRADE, None
    kind = "account_update" if event.kind is EventKind.ACCOUNT else "position_update"
    message = {
        "type": kind,
        "account_id": event.account_id,
        **{k: v for k, v in data.items() if k != "update_time_ns"},
        "timestamp": data["update_time_ns"] // 1_000_000,
    }
    key = (kind, event.account_id, data.get("instrument_id"))
    return message, Priority.ACCOUNT, key


def _renderer(event: AccountEvent) -> EventRendering:
    if event.renderer is None:
        raise ValueError(f"{event!r} has no source record to build a /ws push from")
    return event.renderer


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
