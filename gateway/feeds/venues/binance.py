"""Binance spot and USD-M futures: combined streams, U/u (spot) and pu (futures) depth sync.

Streams (config names → Binance): trade, aggTrade, depth (diffs, 100 ms), depth5/10/20 (partial
snapshots), kline_<interval>, bookTicker, ticker (24 h). Everything goes through the combined
endpoint so that each payload carries its stream name (spot partial-depth payloads have no
symbol of their own, and futures ones look like diffs). Diff books are synced from the REST
snapshot (/api/v3/depth, /fapi/v1/depth) by Binance's documented procedure (book.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from engine.enums import Side
from gateway.feeds.book import FuturesUpdateIds, SpotUpdateIds
from gateway.feeds.connector import Connector
from gateway.feeds.records import Record

_TAKER_BY_BUYER_MAKER = (Side.BUY, Side.SELL)  # indexed by `m`; enum lookups are slow on 3.11
_INTERVALS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 2592000}


def interval_seconds(interval: str) -> int:
    """'1m' → 60, '4h' → 14400 (Binance's kline intervals)."""
    return int(interval[:-1]) * _INTERVALS[interval[-1]]


class BinanceSpot(Connector):
    venue = "BINANCE"
    ws_url = "wss://stream.binance.com:9443/stream"
    rest_url = "https://api.binance.com"
    depth_path: ClassVar[str] = "/api/v3/depth"
    book_rule = SpotUpdateIds
    default_instruments: ClassVar[dict[str, dict[str, str]]] = {
        "BTCUSDT": {"tick": "0.01", "lot": "0.00001"},
        "ETHUSDT": {"tick": "0.01", "lot": "0.0001"},
        "BNBUSDT": {"tick": "0.01", "lot": "0.001"},
    }

    def stream_names(self) -> list[str]:
        names = []
        for symbol in self.config.symbols:
            lower = symbol.lower()
            for stream in self.config.streams:
                suffix = "depth@100ms" if stream == "depth" else stream
                if stream.startswith("depth") and stream != "depth":
                    suffix = f"{stream}@100ms"
                names.append(f"{lower}@{suffix}")
        return names

    def subscribe_messages(self) -> list[Any]:
        return [{"method": "SUBSCRIBE", "params": self.stream_names(), "id": 1}]

    def rest_synced_symbols(self) -> list[str]:
        return list(self.config.symbols) if "depth" in self.config.streams else []

    def snapshot_url(self, symbol: str) -> str | None:
        return f"{self.rest_base}{self.depth_path}?symbol={symbol}&limit=1000"

    def parse_snapshot(self, symbol: str, body: Any, ts_recv: int) -> Any:
        spec = self.spec(symbol)
        if spec is None:
            return None
        ts_event = body.get("E", 0) * 1_000_000 or ts_recv
        last_id = body["lastUpdateId"]
        return self.book(
            spec, ts_event, ts_recv, body["bids"], body["asks"], True, last_id, last_id
        )

    def parse(self, message: Any, ts_recv: int) -> Sequence[Record]:
        stream = message.get("stream")
        if stream is None:
            if "error" in message or "code" in message:
                return self.venue_error(message)
            return ()  # {"result": null, "id": 1}: the SUBSCRIBE answer
        data = message["data"]
        event = data.get("e")
        if event == "trade" or event == "aggTrade":
            spec = self.spec(data["s"])
            if spec is not None:
                self.trade(
                    spec,
                    data["T"] * 1_000_000,
                    ts_recv,
                    data["p"],
                    data["q"],
                    _TAKER_BY_BUYER_MAKER[data["m"]],  # m: the buyer is the maker
                    data["t"] if event == "trade" else data["a"],
                )
            return ()
        if "@depth" in stream:
            return self._depth(stream, data, ts_recv)
        if event == "kline":
            return self._kline(data, ts_recv)
        if event == "24hrTicker":
            spec = self.spec(data["s"])
            if spec is None:
                return ()
            ticker = self.ticker(
                spec,
                data["E"] * 1_000_000,
                ts_recv,
                data,
                data["c"],
                data["b"],
                data["B"],
                data["a"],
                data["A"],
                data["v"],
            )
            return (ticker,) if ticker is not None else ()
        if stream.endswith("@bookTicker"):
            spec = self.spec(data["s"])
            if spec is None:
                return ()
            ts_event = data.get("E", 0) * 1_000_000 or ts_recv
            ticker = self.ticker(
                spec,
                ts_event,
                ts_recv,
                data,
                None,
                data["b"],
                data["B"],
                data["a"],
                data["A"],
                sequence=data["u"],
            )
            return (ticker,) if ticker is not None else ()
        return ()

    def _depth(self, stream: str, data: dict[str, Any], ts_recv: int) -> Sequence[Record]:
        symbol = stream.partition("@")[0].upper()
        spec = self.spec(symbol)
        if spec is None:
            return ()
        partial = stream.split("@")[1] != "depth"
        ts_event = data.get("E", 0) * 1_000_000 or ts_recv
        if partial:  # depth5/10/20: a full top-N book each time
            last_id = data.get("lastUpdateId", data.get("u", 0))
            bids, asks = data.get("bids", data.get("b")), data.get("asks", data.get("a"))
            update = self.book(spec, ts_event, ts_recv, bids, asks, True, last_id, last_id)
        else:
            update = self.book(
                spec,
                ts_event,
                ts_recv,
                data["b"],
                data["a"],
                False,
                data["U"],
                data["u"],
                data.get("pu", 0),
            )
        return (update,) if update is not None else ()

    def _kline(self, data: dict[str, Any], ts_recv: int) -> Sequence[Record]:
        spec = self.spec(data["s"])
        if spec is None:
            return ()
        k = data["k"]
        bar = self.bar(
            spec,
            interval_seconds(k["i"]),
            k["t"] * 1_000_000,
            ts_recv,
            (k["o"], k["h"], k["l"], k["c"], k["v"]),
            bool(k["x"]),
        )
        return (bar,) if bar is not None else ()


class BinanceFutures(BinanceSpot):
    """USD-M futures: same payloads plus `pu`, so each diff must chain to the previous one."""

    venue = "BINANCE_FUTURES"
    ws_url = "wss://fstream.binance.com/stream"
    rest_url = "https://fapi.binance.com"
    depth_path = "/fapi/v1/depth"
    book_rule = FuturesUpdateIds
    default_instruments: ClassVar[dict[str, dict[str, str]]] = {
        "BTCUSDT": {"tick": "0.10", "lot": "0.001"},
        "ETHUSDT": {"tick": "0.01", "lot": "0.001"},
    }
