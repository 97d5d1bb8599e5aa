"""Kraken WebSocket v2: trade, ticker, book (snapshot + updates), {"method": "ping"} keep-alive.

v2 sends prices and quantities as JSON numbers, so this venue parses JSON with
`parse_float=Decimal` (orjson would round them through float). Book levels are objects
({"price", "qty"}); the CRC32 checksum is not verified yet (docs/feeds.md, gaps).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, ClassVar

from engine.enums import Side
from gateway.feeds.connector import Connector
from gateway.feeds.records import BookUpdate, Record
from gateway.feeds.timeparse import iso_to_ns

_SIDE = {"buy": Side.BUY, "sell": Side.SELL}
_DECODER = json.JSONDecoder(parse_float=Decimal)


class Kraken(Connector):
    venue = "KRAKEN"
    ws_url = "wss://ws.kraken.com/v2"
    rest_url = "https://api.kraken.com"
    default_instruments: ClassVar[dict[str, dict[str, str]]] = {
        "BTC/USD": {"tick": "0.1", "lot": "0.00000001"},
        "ETH/USD": {"tick": "0.01", "lot": "0.00000001"},
    }

    def loads(self, text: str) -> Any:
        return _DECODER.decode(text)

    def subscribe_messages(self) -> list[Any]:
        return [
            {"method": "subscribe", "params": {"channel": channel, "symbol": self.config.symbols}}
            for channel in self.config.streams
        ]

    def ping_message(self) -> str | None:
        return '{"method":"ping"}'

    def resync_messages(self, symbol: str) -> list[Any]:
        params = {"channel": "book", "symbol": [symbol]}
        return [
            {"method": "unsubscribe", "params": params},
            {"method": "subscribe", "params": params},
        ]

    def snapshot_url(self, symbol: str) -> str | None:
        return f"{self.rest_base}/0/public/Depth?pair={symbol.replace('/', '')}&count=100"

    def parse_snapshot(self, symbol: str, body: Any, ts_recv: int) -> BookUpdate | None:
        spec = self.spec(symbol)
        if spec is None or body.get("error"):
            return None
        (book,) = body["result"].values()
        return self.book(spec, ts_recv, ts_recv, book["bids"], book["asks"], True)

    def parse(self, message: Any, ts_recv: int) -> Iterable[Record]:
        channel = message.get("channel")
        data = message.get("data")
        if data is None or channel not in ("trade", "ticker", "book"):
            return ()  # heartbeat, status, pong, subscribe acks
        out: list[Record | None] = []
        for row in data:
            spec = self.spec(row["symbol"])
            if spec is None:
                continue
            if channel == "trade":
                out.append(
                    self.trade(
                        spec,
                        iso_to_ns(row["timestamp"]),
                        ts_recv,
                        row["price"],
                        row["qty"],
                        _SIDE[row["side"]],
                        row["trade_id"],
                    )
                )
            elif channel == "ticker":
                out.append(
                    self.ticker(
                        spec,
                        ts_recv,
                        ts_recv,
                        row,
                        row["last"],
                        row["bid"],
                        row["bid_qty"],
                        row["ask"],
                        row["ask_qty"],
                        row["volume"],
                    )
                )
            else:
                ts_event = iso_to_ns(row["timestamp"]) if "timestamp" in row else ts_recv
                out.append(
                    self.book(
                        spec,
                        ts_event,
                        ts_recv,
                        [(level["price"], level["qty"]) for level in row["bids"]],
                        [(level["price"], level["qty"]) for level in row["asks"]],
                        message["type"] == "snapshot",
                    )
                )
        return [record for record in out if record is not None]
