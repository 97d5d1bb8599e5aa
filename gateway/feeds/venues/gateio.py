"""Gate.io API v4 spot: spot.trades, spot.tickers, spot.order_book_update (U/u like Binance).

Requests carry a `time` field (seconds, from the injected clock); {"channel": "spot.ping"}
keeps the socket alive. The diff book syncs from /api/v4/spot/order_book?with_id=true, whose
`id` plays Binance's lastUpdateId.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from engine.enums import Side
from gateway.feeds.book import SpotUpdateIds
from gateway.feeds.connector import Connector
from gateway.feeds.pipeline import ms
from gateway.feeds.records import BookUpdate, Record

_SIDE = {"buy": Side.BUY, "sell": Side.SELL}


class GateIo(Connector):
    venue = "GATEIO"
    ws_url = "wss://api.gateio.ws/ws/v4/"
    rest_url = "https://api.gateio.ws"
    book_rule = SpotUpdateIds
    default_instruments: ClassVar[dict[str, dict[str, str]]] = {
        "BTC_USDT": {"tick": "0.1", "lot": "0.000001"},
        "ETH_USDT": {"tick": "0.01", "lot": "0.0001"},
    }

    def _now_s(self) -> int:
        return self.clock_ns() // 1_000_000_000

    def subscribe_messages(self) -> list[Any]:
        out = []
        for stream in self.config.streams:
            channel = f"spot.{stream}"
            if stream == "order_book_update":
                for symbol in self.config.symbols:
                    out.append(
                        {
                            "time": self._now_s(),
                            "channel": channel,
                            "event": "subscribe",
                            "payload": [symbol, "100ms"],
                        }
                    )
            else:
                out.append(
                    {
                        "time": self._now_s(),
                        "channel": channel,
                        "event": "subscribe",
                        "payload": self.config.symbols,
                    }
                )
        return out

    def ping_message(self) -> str | None:
        return '{"channel":"spot.ping"}'

    def rest_synced_symbols(self) -> list[str]:
        return list(self.config.symbols) if "order_book_update" in self.config.streams else []

    def snapshot_url(self, symbol: str) -> str | None:
        return (
            f"{self.rest_base}/api/v4/spot/order_book?currency_pair={symbol}&limit=100&with_id=true"
        )

    def parse_snapshot(self, symbol: str, body: Any, ts_recv: int) -> BookUpdate | None:
        spec = self.spec(symbol)
        if spec is None:
            return None
        ts_event = body.get("update", 0) * 1_000_000 or ts_recv
        return self.book(
            spec, ts_event, ts_recv, body["bids"], body["asks"], True, body["id"], body["id"]
        )

    def parse(self, message: Any, ts_recv: int) -> Sequence[Record]:
        if message.get("event") != "update":
            if message.get("error"):
                return self.venue_error(message)
            return ()  # subscribe acks, spot.pong
        channel = message["channel"]
        result = message["result"]
        if channel == "spot.trades":
            spec = self.spec(result["currency_pair"])
            if spec is not None:
                self.trade(
                    spec,
                    ms(result["create_time_ms"]),
                    ts_recv,
                    result["price"],
                    result["amount"],
                    _SIDE[result["side"]],
                    result["id"],
                )
            return ()
        if channel == "spot.tickers":
            spec = self.spec(result["currency_pair"])
            if spec is None:
                return ()
            ticker = self.ticker(
                spec,
                ms(message["time_ms"]),
                ts_recv,
                result,
                result["last"],
                result.get("highest_bid") or None,
                None,
                result.get("lowest_ask") or None,
                None,
                result.get("base_volume"),
            )
            return (ticker,) if ticker is not None else ()
        if channel == "spot.order_book_update":
            spec = self.spec(result["s"])
            if spec is None:
                return ()
            book = self.book(
                spec,
                result["t"] * 1_000_000,
                ts_recv,
                result.get("b", []),
                result.get("a", []),
                False,
                result["U"],
                result["u"],
            )
            return (book,) if book is not None else ()
        return ()
