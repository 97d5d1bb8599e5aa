"""Upbit and Bithumb: the same WebSocket protocol (seed 001: "Upbit and Bithumb are the same").

A request is a list: a ticket, one object per data type (trade, ticker, orderbook) with its
codes, and a format. Data arrives in binary frames holding UTF-8 JSON whose prices are JSON
numbers, parsed with `numbers.loads_exact` (exact without Decimal on the hot path). Every
orderbook message is a whole book (a snapshot). The socket is kept alive with a text "PING"
(answered {"status": "UP"}).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from engine.enums import Side
from gateway.feeds.connector import Connector
from gateway.feeds.numbers import loads_exact
from gateway.feeds.records import BookUpdate, Record

_TAKER = {"BID": Side.BUY, "ASK": Side.SELL}  # ask_bid: the taker's side


class Upbit(Connector):
    venue = "UPBIT"
    ws_url = "wss://api.upbit.com/websocket/v1"
    rest_url = "https://api.upbit.com"
    default_instruments: ClassVar[dict[str, dict[str, str]]] = {
        # KRW tick sizes depend on the price band; 1 KRW divides all of them
        "KRW-BTC": {"tick": "1", "lot": "0.00000001", "max_price": "10000000000"},
        "KRW-ETH": {"tick": "1", "lot": "0.00000001", "max_price": "10000000000"},
    }

    loads = staticmethod(loads_exact)

    def subscribe_messages(self) -> list[Any]:
        request: list[dict[str, Any]] = [{"ticket": "shmex-feed"}]
        request += [
            {"type": stream, "codes": self.config.symbols} for stream in self.config.streams
        ]
        request.append({"format": "DEFAULT"})
        return [request]

    def ping_message(self) -> str | None:
        return "PING"

    def snapshot_url(self, symbol: str) -> str | None:
        return f"{self.rest_base}/v1/orderbook?markets={symbol}"

    def parse_snapshot(self, symbol: str, body: Any, ts_recv: int) -> BookUpdate | None:
        return self._orderbook(body[0], ts_recv)

    def parse(self, message: Any, ts_recv: int) -> Sequence[Record]:
        kind = message.get("type")
        if kind == "trade":
            spec = self.spec(message["code"])
            if spec is not None:
                self.trade(
                    spec,
                    message["trade_timestamp"] * 1_000_000,
                    ts_recv,
                    message["trade_price"],
                    message["trade_volume"],
                    _TAKER[message["ask_bid"]],
                    message["sequential_id"],
                )
            return ()
        if kind == "ticker":
            spec = self.spec(message["code"])
            if spec is None:
                return ()
            ticker = self.ticker(
                spec,
                message["timestamp"] * 1_000_000,
                ts_recv,
                message,
                message["trade_price"],
                volume=message.get("acc_trade_volume_24h"),
            )
            return (ticker,) if ticker is not None else ()
        if kind == "orderbook":
            book = self._orderbook(message, ts_recv)
            return (book,) if book is not None else ()
        if "error" in message:
            return self.venue_error(message)
        return ()  # {"status": "UP"}

    def _orderbook(self, message: Any, ts_recv: int) -> BookUpdate | None:
        spec = self.spec(message.get("code") or message["market"])
        if spec is None:
            return None
        units = message["orderbook_units"]
        return self.book(
            spec,
            message["timestamp"] * 1_000_000,
            ts_recv,
            [(u["bid_price"], u["bid_size"]) for u in units],
            [(u["ask_price"], u["ask_size"]) for u in units],
            True,
        )


class Bithumb(Upbit):
    venue = "BITHUMB"
    ws_url = "wss://ws-api.bithumb.com/websocket/v1"
    rest_url = "https://api.bithumb.com"
