"""Coinone public WebSocket: TRADE, TICKER, ORDERBOOK per (quote, target) currency pair.

One SUBSCRIBE request per channel and pair; {"request_type": "PING"} keeps it alive. Our
symbol is `KRW-BTC` (quote-target, like Upbit's codes). Orderbook messages are whole books.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from engine.enums import Side
from gateway.feeds.connector import Connector
from gateway.feeds.records import BookUpdate, Record

_TAKER_BY_SELLER_MAKER = (Side.SELL, Side.BUY)


def _symbol(data: Any) -> str:
    return f"{data['quote_currency']}-{data['target_currency']}"


class Coinone(Connector):
    venue = "COINONE"
    ws_url = "wss://stream.coinone.co.kr"
    rest_url = "https://api.coinone.co.kr"
    default_instruments: ClassVar[dict[str, dict[str, str]]] = {
        "KRW-BTC": {"tick": "1", "lot": "0.00000001", "max_price": "10000000000"},
        "KRW-ETH": {"tick": "1", "lot": "0.00000001", "max_price": "10000000000"},
    }

    def subscribe_messages(self) -> list[Any]:
        out = []
        for symbol in self.config.symbols:
            quote, _, target = symbol.partition("-")
            for stream in self.config.streams:
                out.append(
                    {
                        "request_type": "SUBSCRIBE",
                        "channel": stream.upper(),
                        "topic": {"quote_currency": quote, "target_currency": target},
                    }
                )
        return out

    def ping_message(self) -> str | None:
        return '{"request_type":"PING"}'

    def snapshot_url(self, symbol: str) -> str | None:
        quote, _, target = symbol.partition("-")
        return f"{self.rest_base}/public/v2/orderbook/{quote}/{target}?size=15"

    def parse_snapshot(self, symbol: str, body: Any, ts_recv: int) -> BookUpdate | None:
        if body.get("result") != "success":
            return None
        return self._book(body, ts_recv)

    def _book(self, data: Any, ts_recv: int) -> BookUpdate | None:
        spec = self.spec(_symbol(data))
        if spec is None:
            return None
        return self.book(
            spec,
            int(data["timestamp"]) * 1_000_000,
            ts_recv,
            [(level["price"], level["qty"]) for level in data["bids"]],
            [(level["price"], level["qty"]) for level in data["asks"]],
            True,
        )

    def parse(self, message: Any, ts_recv: int) -> Sequence[Record]:
        if message.get("response_type") != "DATA":
            if message.get("response_type") == "ERROR":
                return self.venue_error(message)
            return ()  # CONNECTED, SUBSCRIBED, PONG
        channel = message["channel"]
        data = message["data"]
        if channel == "ORDERBOOK":
            book = self._book(data, ts_recv)
            return (book,) if book is not None else ()
        spec = self.spec(_symbol(data))
        if spec is None:
            return ()
        if channel == "TRADE":
            self.trade(
                spec,
                int(data["timestamp"]) * 1_000_000,
                ts_recv,
                data["price"],
                data["qty"],
                _TAKER_BY_SELLER_MAKER[data["is_seller_maker"]],
                data["id"],
            )
            return ()
        if channel == "TICKER":
            ticker = self.ticker(
                spec,
                int(data["timestamp"]) * 1_000_000,
                ts_recv,
                data,
                data["last"],
                data.get("bid_best_price"),
                data.get("bid_best_qty"),
                data.get("ask_best_price"),
                data.get("ask_best_qty"),
                data.get("target_volume"),
            )
            return (ticker,) if ticker is not None else ()
        return ()
