"""OKX v5 public channels: trades, tickers, books (snapshot + updates chained by seqId).

OKX keeps a connection alive with a text "ping" (answered "pong") at least every 30 s. A book
update whose prevSeqId is not the previous seqId is a gap: OKX's REST book has no seqId, so the
resync is an unsubscribe + subscribe, which makes the socket send a fresh snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from engine.enums import Side
from gateway.feeds.book import PrevIdChain
from gateway.feeds.connector import Connector
from gateway.feeds.pipeline import ms
from gateway.feeds.records import BookUpdate, Record

_SIDE = {"buy": Side.BUY, "sell": Side.SELL}


class Okx(Connector):
    venue = "OKX"
    ws_url = "wss://ws.okx.com:8443/ws/v5/public"
    rest_url = "https://www.okx.com"
    book_rule = PrevIdChain
    pong = "pong"
    default_instruments: ClassVar[dict[str, dict[str, str]]] = {
        "BTC-USDT": {"tick": "0.1", "lot": "0.00000001"},
        "ETH-USDT": {"tick": "0.01", "lot": "0.000001"},
    }

    def _args(self, streams: list[str], symbols: list[str]) -> list[dict[str, str]]:
        return [{"channel": c, "instId": s} for s in symbols for c in streams]

    def subscribe_messages(self) -> list[Any]:
        return [{"op": "subscribe", "args": self._args(self.config.streams, self.config.symbols)}]

    def ping_message(self) -> str | None:
        return "ping"

    def resync_messages(self, symbol: str) -> list[Any]:
        books = [c for c in self.config.streams if c.startswith("books")]
        args = self._args(books, [symbol])
        return [{"op": "unsubscribe", "args": args}, {"op": "subscribe", "args": args}]

    def snapshot_url(self, symbol: str) -> str | None:
        return f"{self.rest_base}/api/v5/market/books?instId={symbol}&sz=400"

    def parse_snapshot(self, symbol: str, body: Any, ts_recv: int) -> BookUpdate | None:
        spec = self.spec(symbol)
        if spec is None or body.get("code") != "0":
            return None
        data = body["data"][0]
        return self.book(spec, ms(data["ts"]), ts_recv, data["bids"], data["asks"], True)

    def parse(self, message: Any, ts_recv: int) -> Sequence[Record]:
        arg = message.get("arg")
        data = message.get("data")
        if arg is None or data is None:
            if message.get("event") == "error":
                return self.venue_error(message)
            return ()  # {"event": "subscribe", ...}
        channel = arg["channel"]
        spec = self.spec(arg["instId"])
        if spec is None:
            return ()
        if channel == "trades":
            for row in data:
                self.trade(
                    spec,
                    ms(row["ts"]),
                    ts_recv,
                    row["px"],
                    row["sz"],
                    _SIDE[row["side"]],
                    row["tradeId"],
                )
            return ()
        out: list[Record | None] = []
        if channel == "tickers":
            for row in data:
                out.append(
                    self.ticker(
                        spec,
                        ms(row["ts"]),
                        ts_recv,
                        row,
                        row["last"],
                        row.get("bidPx") or None,
                        row.get("bidSz") or None,
                        row.get("askPx") or None,
                        row.get("askSz") or None,
                        row.get("vol24h"),
                    )
                )
        elif channel.startswith("books"):
            # books5 / bbo-tbt push whole books without an action field
            snapshot = message.get("action", "snapshot") == "snapshot"
            for row in data:
                out.append(
                    self.book(
                        spec,
                        ms(row["ts"]),
                        ts_recv,
                        row["bids"],
                        row["asks"],
                        snapshot,
                        row.get("seqId", 0),
                        row.get("seqId", 0),
                        row.get("prevSeqId", 0),
                    )
                )
        return [record for record in out if record is not None]
