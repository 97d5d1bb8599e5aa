"""Kraken WebSocket v2: trade, ticker, book (snapshot + updates), {"method": "ping"} keep-alive.

v2 sends prices and quantities as JSON numbers, so this venue parses JSON with
`numbers.loads_exact` (orjson, with floats only where their `repr` is the literal). Book
levels are objects ({"price", "qty"}). Every book message carries a CRC32 of the top ten
levels after the update; a mismatch means our book drifted, and the book is resubscribed for
a fresh snapshot. Kraken books are kept to the subscribed depth (`book_depth`), as its docs
require.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any, ClassVar

from engine.enums import Side
from gateway.feeds.book import OrderBook
from gateway.feeds.connector import Connector
from gateway.feeds.numbers import loads_exact
from gateway.feeds.records import BookUpdate, Record
from gateway.feeds.timeparse import iso_to_ns

_SIDE = {"buy": Side.BUY, "sell": Side.SELL}


class Kraken(Connector):
    venue = "KRAKEN"
    ws_url = "wss://ws.kraken.com/v2"
    rest_url = "https://api.kraken.com"
    default_instruments: ClassVar[dict[str, dict[str, str]]] = {
        "BTC/USD": {"tick": "0.1", "lot": "0.00000001"},
        "ETH/USD": {"tick": "0.01", "lot": "0.00000001"},
    }

    book_depth: ClassVar[int] = 10

    loads = staticmethod(loads_exact)

    def subscribe_messages(self) -> list[Any]:
        out = []
        for channel in self.config.streams:
            params: dict[str, Any] = {"channel": channel, "symbol": self.config.symbols}
            if channel == "book":
                params["depth"] = self.book_depth
            out.append({"method": "subscribe", "params": params})
        return out

    def book_checksum(self, book: OrderBook) -> int:
        """CRC32 over the top ten asks (ascending) then bids (descending), each level written as
        price then qty in the pair's precision without the point and leading zeros — which is
        exactly the decimal text of our integer ticks and lots when tick and lot are the pair's
        precision (the instrument table's job). Trims the book to `book_depth` first, as Kraken
        expects of a client after every update."""
        self._truncate(book)
        bids, asks = book.depth(10)
        text = "".join(f"{price}{qty}" for price, qty in asks)
        text += "".join(f"{price}{qty}" for price, qty in bids)
        return zlib.crc32(text.encode())

    def _truncate(self, book: OrderBook) -> None:
        for side, worst in ((book.bids, min), (book.asks, max)):
            while len(side) > self.book_depth:
                del side[worst(side)]

    def ping_message(self) -> str | None:
        return '{"method":"ping"}'

    def resync_messages(self, symbol: str) -> list[Any]:
        params = {"channel": "book", "symbol": [symbol], "depth": self.book_depth}
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

    def parse(self, message: Any, ts_recv: int) -> Sequence[Record]:
        channel = message.get("channel")
        data = message.get("data")
        if data is None or channel not in ("trade", "ticker", "book"):
            if message.get("success") is False:
                return self.venue_error(message)
            return ()  # heartbeat, status, pong, subscribe acks
        out: list[Record | None] = []
        for row in data:
            spec = self.spec(row["symbol"])
            if spec is None:
                continue
            if channel == "trade":
                self.trade(
                    spec,
                    iso_to_ns(row["timestamp"]),
                    ts_recv,
                    row["price"],
                    row["qty"],
                    _SIDE[row["side"]],
                    row["trade_id"],
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
                        checksum=row.get("checksum"),
                    )
                )
        return [record for record in out if record is not None]
