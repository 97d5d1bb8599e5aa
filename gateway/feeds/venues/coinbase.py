"""Coinbase Exchange: matches, ticker, level2 (snapshot + l2update) on ws-feed.

Times are RFC 3339 strings; `match.side` is the MAKER's side, so the taker is the opposite.
Every match and ticker carries the product's `sequence`: a message whose sequence is not above
the last one seen for that product is stale (a replay after reconnect) and is dropped; trade ids
are contiguous per product, so a jump is counted as `trade_gaps`. The level2 book comes as a
socket snapshot on subscribe; while the socket is down, /products/<id>/book?level=2 stands in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from engine.enums import Side
from gateway.feeds.config import FeedConfig
from gateway.feeds.connector import Connector
from gateway.feeds.records import BookUpdate, Record
from gateway.feeds.timeparse import iso_to_ns

_TAKER = {"buy": Side.SELL, "sell": Side.BUY}  # the maker's side → the taker's


class Coinbase(Connector):
    venue = "COINBASE"
    ws_url = "wss://ws-feed.exchange.coinbase.com"
    rest_url = "https://api.exchange.coinbase.com"
    default_instruments: ClassVar[dict[str, dict[str, str]]] = {
        "BTC-USD": {"tick": "0.01", "lot": "0.00000001"},
        "ETH-USD": {"tick": "0.01", "lot": "0.00000001"},
    }

    def __init__(self, config: FeedConfig, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self._sequence: dict[str, int] = {}
        self._trade_id: dict[str, int] = {}
        self.counters["stale_sequence"] = 0
        self.counters["trade_gaps"] = 0

    def subscribe_messages(self) -> list[Any]:
        return [
            {
                "type": "subscribe",
                "product_ids": self.config.symbols,
                "channels": self.config.streams,
            }
        ]

    def snapshot_url(self, symbol: str) -> str | None:
        return f"{self.rest_base}/products/{symbol}/book?level=2"

    def parse_snapshot(self, symbol: str, body: Any, ts_recv: int) -> BookUpdate | None:
        spec = self.spec(symbol)
        if spec is None:
            return None
        ts_event = iso_to_ns(body["time"]) if "time" in body else ts_recv
        sequence = body.get("sequence", 0)
        return self.book(
            spec, ts_event, ts_recv, body["bids"], body["asks"], True, sequence, sequence
        )

    def _fresh(self, product: str, sequence: int) -> bool:
        if sequence <= self._sequence.get(product, 0):
            self.counters["stale_sequence"] += 1
            return False
        self._sequence[product] = sequence
        return True

    def parse(self, message: Any, ts_recv: int) -> Sequence[Record]:
        kind = message["type"]
        if kind == "match" or kind == "last_match":
            product = message["product_id"]
            spec = self.spec(product)
            if spec is None or not self._fresh(product, message["sequence"]):
                return ()
            trade_id = message["trade_id"]
            previous = self._trade_id.get(product)
            if previous is not None and trade_id != previous + 1:
                self.counters["trade_gaps"] += 1
            self._trade_id[product] = trade_id
            self.trade(
                spec,
                iso_to_ns(message["time"]),
                ts_recv,
                message["price"],
                message["size"],
                _TAKER[message["side"]],
                trade_id,
                message["sequence"],
            )
            return ()
        if kind == "ticker":
            product = message["product_id"]
            spec = self.spec(product)
            if spec is None or not self._fresh(product, message["sequence"]):
                return ()
            ts_event = iso_to_ns(message["time"]) if "time" in message else ts_recv
            ticker = self.ticker(
                spec,
                ts_event,
                ts_recv,
                message,
                message["price"],
                message.get("best_bid"),
                message.get("best_bid_size"),
                message.get("best_ask"),
                message.get("best_ask_size"),
                message.get("volume_24h"),
                message["sequence"],
            )
            return (ticker,) if ticker is not None else ()
        if kind == "snapshot" or kind == "l2update":
            return self._level2(kind, message, ts_recv)
        if kind == "error":
            return self.venue_error(message)
        return ()  # subscriptions, heartbeat

    def _level2(self, kind: str, message: Any, ts_recv: int) -> Sequence[Record]:
        spec = self.spec(message["product_id"])
        if spec is None:
            return ()
        ts_event = iso_to_ns(message["time"]) if "time" in message else ts_recv
        if kind == "snapshot":
            update = self.book(spec, ts_event, ts_recv, message["bids"], message["asks"], True)
        else:
            bids = [(price, size) for side, price, size in message["changes"] if side == "buy"]
            asks = [(price, size) for side, price, size in message["changes"] if side == "sell"]
            update = self.book(spec, ts_event, ts_recv, bids, asks, False)
        return (update,) if update is not None else ()
