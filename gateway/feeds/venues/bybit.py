"""Bybit v5 public streams (spot by default; linear via ws_url): publicTrade, tickers, orderbook.

Bybit wants {"op": "ping"} every 20 s. Books come as a snapshot then deltas with an increasing
update id `u`; a delta whose `u` is not above the last one is stale, and `u == 1` means the
service restarted and the message is a fresh snapshot (Bybit's documented rule).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from engine.enums import Side
from gateway.feeds.book import SequenceRule, Verdict
from gateway.feeds.connector import Connector
from gateway.feeds.records import BookUpdate, Record

_SIDE = {"Buy": Side.BUY, "Sell": Side.SELL}


class IncreasingId(SequenceRule):
    """Ids only need to grow (no chaining field): older or repeated ids are stale."""

    def first(self, update: BookUpdate, last_id: int) -> Verdict:
        return Verdict.APPLY if update.last_id > last_id else Verdict.STALE

    next = first


class Bybit(Connector):
    venue = "BYBIT"
    ws_url = "wss://stream.bybit.com/v5/public/spot"
    rest_url = "https://api.bybit.com"
    category: ClassVar[str] = "spot"
    book_rule = IncreasingId
    default_instruments: ClassVar[dict[str, dict[str, str]]] = {
        "BTCUSDT": {"tick": "0.01", "lot": "0.000001"},
        "ETHUSDT": {"tick": "0.01", "lot": "0.00001"},
    }

    def subscribe_messages(self) -> list[Any]:
        topics = []
        for symbol in self.config.symbols:
            for stream in self.config.streams:
                topics.append(f"{stream}.{symbol}")  # e.g. publicTrade, tickers, orderbook.50
        return [{"op": "subscribe", "args": topics}]

    def ping_message(self) -> str | None:
        return '{"op":"ping"}'

    def snapshot_url(self, symbol: str) -> str | None:
        query = f"category={self.category}&symbol={symbol}&limit=50"
        return f"{self.rest_base}/v5/market/orderbook?{query}"

    def parse_snapshot(self, symbol: str, body: Any, ts_recv: int) -> BookUpdate | None:
        spec = self.spec(symbol)
        if spec is None or body.get("retCode") != 0:
            return None
        result = body["result"]
        # a REST book carries the same `u` as the socket's; 0 would make every delta acceptable
        update_id = result.get("u", 0)
        return self.book(
            spec,
            result["ts"] * 1_000_000,
            ts_recv,
            result["b"],
            result["a"],
            True,
            update_id,
            update_id,
        )

    def parse(self, message: Any, ts_recv: int) -> Sequence[Record]:
        topic = message.get("topic")
        if topic is None:
            if message.get("success") is False:
                return self.venue_error(message)
            return ()  # {"op": "subscribe" | "ping" | "pong", "success": true}
        channel = topic.partition(".")[0]
        data = message["data"]
        if channel == "publicTrade":
            for row in data:
                spec = self.spec(row["s"])
                if spec is not None:
                    self.trade(
                        spec,
                        row["T"] * 1_000_000,
                        ts_recv,
                        row["p"],
                        row["v"],
                        _SIDE[row["S"]],
                        row["i"],
                    )
            return ()
        if channel == "tickers":
            spec = self.spec(data["symbol"])
            if spec is None:
                return ()
            ticker = self.ticker(
                spec,
                message["ts"] * 1_000_000,
                ts_recv,
                data,
                data.get("lastPrice"),
                data.get("bid1Price"),
                data.get("bid1Size"),
                data.get("ask1Price"),
                data.get("ask1Size"),
                data.get("volume24h"),
            )
            return (ticker,) if ticker is not None else ()
        if channel == "orderbook":
            spec = self.spec(data["s"])
            if spec is None:
                return ()
            update_id = data["u"]
            snapshot = message["type"] == "snapshot" or update_id == 1
            if snapshot and update_id == 1:
                self.books.pop(spec.instrument_id, None)  # service restart: ids start over
            book = self.book(
                spec,
                message.get("cts", message["ts"]) * 1_000_000,
                ts_recv,
                data["b"],
                data["a"],
                snapshot,
                update_id,
                update_id,
            )
            return (book,) if book is not None else ()
        return ()


class BybitLinear(Bybit):
    venue = "BYBIT_LINEAR"
    ws_url = "wss://stream.bybit.com/v5/public/linear"
    category = "linear"
    default_instruments: ClassVar[dict[str, dict[str, str]]] = {
        "BTCUSDT": {"tick": "0.10", "lot": "0.001"},
    }
