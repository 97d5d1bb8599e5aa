"""Korbit API v2 public WebSocket: trade, ticker, orderbook (each orderbook message is whole).

Requests are lists of {"method": "subscribe", "type": ..., "symbols": [...]}; symbols are
lower-case `btc_krw`; prices and quantities are decimal strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from engine.enums import Side
from gateway.feeds.connector import Connector
from gateway.feeds.records import BookUpdate, Record

_TAKER_BY_BUYER_TAKER = (Side.SELL, Side.BUY)


class Korbit(Connector):
    venue = "KORBIT"
    ws_url = "wss://ws-api.korbit.co.kr/v2/public"
    rest_url = "https://api.korbit.co.kr"
    default_instruments: ClassVar[dict[str, dict[str, str]]] = {
        "btc_krw": {"tick": "1", "lot": "0.00000001", "max_price": "10000000000"},
        "eth_krw": {"tick": "1", "lot": "0.00000001", "max_price": "10000000000"},
    }

    def subscribe_messages(self) -> list[Any]:
        return [
            [
                {"method": "subscribe", "type": stream, "symbols": self.config.symbols}
                for stream in self.config.streams
            ]
        ]

    def snapshot_url(self, symbol: str) -> str | None:
        return f"{self.rest_base}/v2/orderbook?symbol={symbol}"

    def parse_snapshot(self, symbol: str, body: Any, ts_recv: int) -> BookUpdate | None:
        spec = self.spec(symbol)
        if spec is None or not body.get("success"):
            return None
        return self._book(spec, body["data"], ts_recv)

    def _book(self, spec: Any, data: Any, ts_recv: int) -> BookUpdate | None:
        return self.book(
            spec,
            data["timestamp"] * 1_000_000,
            ts_recv,
            [(level["price"], level["qty"]) for level in data["bids"]],
            [(level["price"], level["qty"]) for level in data["asks"]],
            True,
        )

    def parse(self, message: Any, ts_recv: int) -> Sequence[Record]:
        kind = message.get("type")
        if kind not in ("trade", "ticker", "orderbook"):
            if "error" in message or message.get("success") is False:
                return self.venue_error(message)
            return ()
        spec = self.spec(message["symbol"])
        if spec is None:
            return ()
        data = message["data"]
        if kind == "trade":
            for row in data:
                self.trade(
                    spec,
                    row["timestamp"] * 1_000_000,
                    ts_recv,
                    row["price"],
                    row["qty"],
                    _TAKER_BY_BUYER_TAKER[row["isBuyerTaker"]],
                    row["tradeId"],
                )
            return ()
        if kind == "ticker":
            ticker = self.ticker(
                spec,
                message["timestamp"] * 1_000_000,
                ts_recv,
                data,
                data["close"],
                data.get("bestBidPrice"),
                None,
                data.get("bestAskPrice"),
                None,
                data.get("volume"),
            )
            return (ticker,) if ticker is not None else ()
        book = self._book(spec, data, ts_recv)
        return (book,) if book is not None else ()
