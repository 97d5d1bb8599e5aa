"""Venue messages in each venue's documented format (shapes and field names from the venues'
API documentation examples; values adapted to our instrument tables).

`trade(venue, i)` builds the i-th trade frame of a venue (unique id, price on tick), used by the
parser tests, the local servers and `bin/bench feeds`. `EXAMPLES` holds one documented example per
message type and `SNAPSHOTS` the REST book bodies.
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson

T0_MS = 1_700_000_000_000  # 2023-11-14T22:13:20Z


def _vary(i: int, base: int, span: int, digits: int) -> str:
    """A quantity's fraction digits: `base` for trade 0 (the documented value), then spread over
    `span` values so that a benchmark sees realistic, mostly distinct quantity strings."""
    return f"{base + (i * 7919) % span:0{digits}d}"


def _iso(ms: int) -> str:
    stamp = dt.datetime.fromtimestamp(ms / 1000, dt.UTC).replace(tzinfo=None)
    return stamp.isoformat(timespec="microseconds") + "Z"


def kraken_checksum(
    asks: list[tuple[str, str]], bids: list[tuple[str, str]], price_dp: int, qty_dp: int
) -> int:
    """Kraken's book checksum computed from decimal strings, as its docs describe it."""

    def text(value: str, places: int) -> str:
        return f"{Decimal(value):.{places}f}".replace(".", "").lstrip("0")

    def levels(rows: list[tuple[str, str]]) -> str:
        return "".join(text(p, price_dp) + text(q, qty_dp) for p, q in rows[:10])

    top_asks = sorted(asks, key=lambda row: Decimal(row[0]))
    top_bids = sorted(bids, key=lambda row: Decimal(row[0]), reverse=True)
    return zlib.crc32((levels(top_asks) + levels(top_bids)).encode())


def kraken_book(
    kind: str, asks: list[tuple[str, str]], bids: list[tuple[str, str]], checksum: int
) -> str:
    def rows(levels: list[tuple[str, str]]) -> str:
        return ",".join(f'{{"price":{p},"qty":{q}}}' for p, q in levels)

    return (
        f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"BTC/USD","bids":[{rows(bids)}],'
        f'"asks":[{rows(asks)}],"checksum":{checksum},"timestamp":"2023-10-06T17:35:55.440295Z"}}]}}'
    )


KRAKEN_ASKS = [("26000.2", "1.25"), ("26000.5", "0.00310000")]
KRAKEN_BIDS = [("26000.1", "0.5"), ("25999.9", "3")]


def dumps(message: Any) -> str:
    return orjson.dumps(message).decode()


def _binance_trade(i: int, futures: bool = False) -> dict[str, Any]:
    return {
        "stream": "btcusdt@trade",
        "data": {
            "e": "trade",
            "E": T0_MS + i,
            "s": "BTCUSDT",
            "t": 1000 + i,
            "p": f"{16500 + i % 50}.{i % 10}0",
            "q": f"0.{_vary(i, 100, 900, 3)}" if futures else f"0.{_vary(i, 10000, 90000, 5)}",
            "T": T0_MS + i,
            "m": i % 2 == 0,
            "M": True,
        },
    }


def _coinbase_trade(i: int) -> dict[str, Any]:
    return {
        "type": "match",
        "trade_id": 10 + i,
        "sequence": 50 + 2 * i,
        "maker_order_id": "ac928c66-ca53-498f-9c13-a110027a60e8",
        "taker_order_id": "132fb6ae-456b-4654-b4e0-d681ac05cea1",
        "time": _iso(T0_MS + i),
        "product_id": "BTC-USD",
        "size": f"5.{_vary(i, 23512, 76000, 5)}",
        "price": f"{400 + i % 7}.23",
        "side": "sell" if i % 2 else "buy",
    }


def _okx_trade(i: int) -> dict[str, Any]:
    return {
        "arg": {"channel": "trades", "instId": "BTC-USDT"},
        "data": [
            {
                "instId": "BTC-USDT",
                "tradeId": str(130639474 + i),
                "px": f"{42219 + i % 9}.9",
                "sz": f"0.{_vary(i, 12060306, 87000000, 8)}",
                "side": "buy" if i % 2 else "sell",
                "ts": str(T0_MS + i),
            }
        ],
    }


def _bybit_trade(i: int) -> dict[str, Any]:
    return {
        "topic": "publicTrade.BTCUSDT",
        "type": "snapshot",
        "ts": T0_MS + i,
        "data": [
            {
                "T": T0_MS + i,
                "s": "BTCUSDT",
                "S": "Buy" if i % 2 else "Sell",
                "v": f"0.{_vary(i, 1000, 998000, 6)}",
                "p": f"{16578.5 + i % 5:.2f}",
                "L": "PlusTick",
                "i": str(2290000000036455162 + i),
                "BT": False,
            }
        ],
    }


def _kraken_trade(i: int) -> str:
    # v2 sends numbers; written by hand so that the JSON numbers keep their documented digits
    side, qty = "sell" if i % 2 else "buy", _vary(i, 40000, 9900000, 8)
    return (
        f'{{"channel":"trade","type":"update","data":[{{"symbol":"BTC/USD","side":"{side}",'
        f'"price":{26000 + i % 11}.5,"qty":0.{qty},"ord_type":"market",'
        f'"trade_id":{4665906 + i},"timestamp":"{_iso(T0_MS + i)}"}}]}}'
    )


def _gate_trade(i: int) -> dict[str, Any]:
    return {
        "time": (T0_MS + i) // 1000,
        "time_ms": T0_MS + i,
        "channel": "spot.trades",
        "event": "update",
        "result": {
            "id": 309143071 + i,
            "create_time": (T0_MS + i) // 1000,
            "create_time_ms": f"{T0_MS + i}.4578",
            "side": "sell" if i % 2 else "buy",
            "currency_pair": "BTC_USDT",
            "amount": f"0.{_vary(i, 1600, 998000, 6)}",
            "price": f"{37000 + i % 13}.5",
        },
    }


def _upbit_trade(i: int, code: str = "KRW-BTC") -> str:
    ts, price, side = T0_MS + i, 49100000 + 1000 * (i % 20), "BID" if i % 2 else "ASK"
    volume = _vary(i, 12345, 9900000, 8)
    return (
        f'{{"type":"trade","code":"{code}","timestamp":{ts},"trade_date":"2023-11-14",'
        f'"trade_time":"22:13:20","trade_timestamp":{ts},"trade_price":{price}.0,'
        f'"trade_volume":0.{volume},"ask_bid":"{side}","prev_closing_price":49000000.0,'
        f'"change":"RISE","change_price":100000.0,"sequential_id":{17000000000000 + i},'
        f'"stream_type":"REALTIME"}}'
    )


def _korbit_trade(i: int) -> dict[str, Any]:
    return {
        "type": "trade",
        "timestamp": T0_MS + i,
        "symbol": "btc_krw",
        "snapshot": False,
        "data": [
            {
                "timestamp": T0_MS + i,
                "price": str(49100000 + 1000 * (i % 20)),
                "qty": f"0.{_vary(i, 120000, 9800000, 8)}",
                "isBuyerTaker": i % 2 == 1,
                "tradeId": 5000000 + i,
            }
        ],
    }


def _coinone_trade(i: int) -> dict[str, Any]:
    return {
        "response_type": "DATA",
        "channel": "TRADE",
        "data": {
            "quote_currency": "KRW",
            "target_currency": "BTC",
            "id": str(17000000000000001 + i),
            "timestamp": T0_MS + i,
            "price": str(49100000 + 1000 * (i % 20)),
            "qty": f"0.{_vary(i, 50000, 9900000, 8)}",
            "is_seller_maker": i % 2 == 0,
        },
    }


_TRADES: dict[str, Callable[[int], Any]] = {
    "BINANCE": _binance_trade,
    "BINANCE_FUTURES": lambda i: _binance_trade(i, futures=True),
    "COINBASE": _coinbase_trade,
    "OKX": _okx_trade,
    "BYBIT": _bybit_trade,
    "KRAKEN": _kraken_trade,
    "GATEIO": _gate_trade,
    "UPBIT": _upbit_trade,
    "BITHUMB": _upbit_trade,
    "KORBIT": _korbit_trade,
    "COINONE": _coinone_trade,
}

SYMBOL = {
    "BINANCE": "BTCUSDT",
    "BINANCE_FUTURES": "BTCUSDT",
    "COINBASE": "BTC-USD",
    "OKX": "BTC-USDT",
    "BYBIT": "BTCUSDT",
    "KRAKEN": "BTC/USD",
    "GATEIO": "BTC_USDT",
    "UPBIT": "KRW-BTC",
    "BITHUMB": "KRW-BTC",
    "KORBIT": "btc_krw",
    "COINONE": "KRW-BTC",
}
"""The symbol every fixture trades, per venue."""


def trade(venue: str, i: int) -> str:
    """The i-th trade frame of `venue` as the text the venue would send."""
    message = _TRADES[venue](i)
    return message if isinstance(message, str) else dumps(message)


# -- Binance diff-depth sequences ----------------------------------------------------------------


def binance_depth(
    first: int, last: int, prev: int = 0, bid: str = "16500.00", qty: str = "1.00000"
) -> str:
    data: dict[str, Any] = {
        "e": "depthUpdate",
        "E": T0_MS + last,
        "s": "BTCUSDT",
        "U": first,
        "u": last,
        "b": [[bid, qty]],
        "a": [["16500.10", "2.00000"]],
    }
    if prev:
        data["pu"] = prev
    return dumps({"stream": "btcusdt@depth@100ms", "data": data})


def binance_snapshot(last_update_id: int) -> dict[str, Any]:
    return {
        "lastUpdateId": last_update_id,
        "bids": [["16499.00", "3.00000"], ["16498.00", "4.00000"]],
        "asks": [["16501.00", "1.50000"], ["16502.00", "2.50000"]],
    }


# -- one documented example per message type ------------------------------------------------------

EXAMPLES: dict[str, list[str]] = {
    "BINANCE": [
        dumps({"result": None, "id": 1}),
        trade("BINANCE", 0),
        dumps(
            {
                "stream": "btcusdt@aggTrade",
                "data": {
                    "e": "aggTrade",
                    "E": T0_MS,
                    "s": "BTCUSDT",
                    "a": 26129,
                    "p": "16500.02",
                    "q": "0.05000",
                    "f": 100,
                    "l": 105,
                    "T": T0_MS,
                    "m": False,
                    "M": True,
                },
            }
        ),
        binance_depth(157, 160),
        dumps(
            {
                "stream": "btcusdt@depth20@100ms",
                "data": {
                    "lastUpdateId": 160,
                    "bids": [["16500.00", "1.50000"]],
                    "asks": [["16500.10", "2.00000"]],
                },
            }
        ),
        dumps(
            {
                "stream": "btcusdt@kline_1m",
                "data": {
                    "e": "kline",
                    "E": T0_MS,
                    "s": "BTCUSDT",
                    "k": {
                        "t": T0_MS - 60000,
                        "T": T0_MS - 1,
                        "s": "BTCUSDT",
                        "i": "1m",
                        "f": 100,
                        "L": 200,
                        "o": "16500.00",
                        "c": "16510.00",
                        "h": "16520.00",
                        "l": "16490.00",
                        "v": "1000.00000",
                        "n": 100,
                        "x": False,
                        "q": "1.0000",
                        "V": "500",
                        "Q": "0.500",
                        "B": "123456",
                    },
                },
            }
        ),
        dumps(
            {
                "stream": "btcusdt@bookTicker",
                "data": {
                    "u": 400900217,
                    "s": "BTCUSDT",
                    "b": "16500.00",
                    "B": "31.21000",
                    "a": "16500.10",
                    "A": "40.66000",
                },
            }
        ),
        dumps(
            {
                "stream": "btcusdt@ticker",
                "data": {
                    "e": "24hrTicker",
                    "E": T0_MS,
                    "s": "BTCUSDT",
                    "p": "15.00",
                    "P": "0.091",
                    "w": "16450.10",
                    "x": "16400.00",
                    "c": "16500.01",
                    "Q": "10.00000",
                    "b": "16500.00",
                    "B": "10.00000",
                    "a": "16500.10",
                    "A": "100.00000",
                    "o": "16300.00",
                    "h": "16600.00",
                    "l": "16200.00",
                    "v": "10000.00000",
                    "q": "18",
                    "O": 0,
                    "C": 86400000,
                    "F": 0,
                    "L": 18150,
                    "n": 18151,
                },
            }
        ),
    ],
    "COINBASE": [
        dumps(
            {"type": "subscriptions", "channels": [{"name": "matches", "product_ids": ["BTC-USD"]}]}
        ),
        trade("COINBASE", 0),
        dumps(
            {
                "type": "ticker",
                "sequence": 37475248783,
                "product_id": "BTC-USD",
                "price": "16500.01",
                "open_24h": "16400.00",
                "volume_24h": "1000.12345678",
                "low_24h": "16300.00",
                "high_24h": "16600.00",
                "volume_30d": "50000.00000000",
                "best_bid": "16500.00",
                "best_bid_size": "0.01000000",
                "best_ask": "16500.01",
                "best_ask_size": "0.02000000",
                "side": "buy",
                "time": "2022-10-19T23:28:22.061769Z",
                "trade_id": 370843401,
                "last_size": "0.00010000",
            }
        ),
        dumps(
            {
                "type": "snapshot",
                "product_id": "BTC-USD",
                "bids": [["10101.10", "0.45054140"]],
                "asks": [["10102.55", "0.57753524"]],
            }
        ),
        dumps(
            {
                "type": "l2update",
                "product_id": "BTC-USD",
                "time": "2019-08-14T20:42:27.265Z",
                "changes": [["buy", "10101.80", "0.162567"]],
            }
        ),
        dumps(
            {
                "type": "heartbeat",
                "sequence": 90,
                "last_trade_id": 20,
                "product_id": "BTC-USD",
                "time": "2014-11-07T08:19:28.464459Z",
            }
        ),
    ],
    "OKX": [
        dumps(
            {
                "event": "subscribe",
                "arg": {"channel": "trades", "instId": "BTC-USDT"},
                "connId": "a4d3ae55",
            }
        ),
        trade("OKX", 0),
        dumps(
            {
                "arg": {"channel": "tickers", "instId": "BTC-USDT"},
                "data": [
                    {
                        "instType": "SPOT",
                        "instId": "BTC-USDT",
                        "last": "9999.9",
                        "lastSz": "0.1",
                        "askPx": "9999.9",
                        "askSz": "11",
                        "bidPx": "8888.8",
                        "bidSz": "5",
                        "open24h": "9000",
                        "high24h": "10000",
                        "low24h": "8888.8",
                        "volCcy24h": "2222",
                        "vol24h": "2222",
                        "sodUtc0": "2222",
                        "sodUtc8": "2222",
                        "ts": "1597026383085",
                    }
                ],
            }
        ),
        dumps(
            {
                "arg": {"channel": "books", "instId": "BTC-USDT"},
                "action": "snapshot",
                "data": [
                    {
                        "asks": [["8476.9", "256", "0", "13"]],
                        "bids": [["8476.8", "37", "0", "9"]],
                        "ts": "1597026383085",
                        "checksum": -855196043,
                        "prevSeqId": -1,
                        "seqId": 123456,
                    }
                ],
            }
        ),
        dumps(
            {
                "arg": {"channel": "books", "instId": "BTC-USDT"},
                "action": "update",
                "data": [
                    {
                        "asks": [["8476.9", "200", "0", "12"]],
                        "bids": [],
                        "ts": "1597026383090",
                        "checksum": 1,
                        "prevSeqId": 123456,
                        "seqId": 123457,
                    }
                ],
            }
        ),
    ],
    "BYBIT": [
        dumps({"success": True, "ret_msg": "", "conn_id": "x", "op": "subscribe"}),
        trade("BYBIT", 0),
        dumps(
            {
                "topic": "tickers.BTCUSDT",
                "ts": 1673853746003,
                "type": "snapshot",
                "cs": 2588407389,
                "data": {
                    "symbol": "BTCUSDT",
                    "lastPrice": "21109.77",
                    "highPrice24h": "21426.99",
                    "lowPrice24h": "20575",
                    "prevPrice24h": "20704.93",
                    "volume24h": "6780.866843",
                    "turnover24h": "141946527.22907118",
                    "price24hPcnt": "0.0196",
                    "usdIndexPrice": "21120.2400136",
                },
            }
        ),
        dumps(
            {
                "topic": "orderbook.50.BTCUSDT",
                "type": "snapshot",
                "ts": 1672304484978,
                "data": {
                    "s": "BTCUSDT",
                    "b": [["16493.50", "0.006"]],
                    "a": [["16611.00", "0.029"]],
                    "u": 18521288,
                    "seq": 7961638724,
                },
                "cts": 1672304484976,
            }
        ),
        dumps(
            {
                "topic": "orderbook.50.BTCUSDT",
                "type": "delta",
                "ts": 1672304484979,
                "data": {
                    "s": "BTCUSDT",
                    "b": [["16493.50", "0"]],
                    "a": [],
                    "u": 18521289,
                    "seq": 7961638725,
                },
                "cts": 1672304484977,
            }
        ),
    ],
    "KRAKEN": [
        '{"method":"subscribe","result":{"channel":"trade","symbol":"BTC/USD"},"success":true}',
        '{"channel":"heartbeat"}',
        trade("KRAKEN", 0),
        '{"channel":"ticker","type":"snapshot","data":[{"symbol":"BTC/USD","bid":26000.1,"bid_qty":0.5,'
        '"ask":26000.2,"ask_qty":1.25,"last":26000.1,"volume":1250.5,"vwap":25900.3,"low":25800.0,'
        '"high":26100.0,"change":120.5,"change_pct":0.46}]}',
        kraken_book(
            "snapshot", KRAKEN_ASKS, KRAKEN_BIDS, kraken_checksum(KRAKEN_ASKS, KRAKEN_BIDS, 1, 8)
        ),
    ],
    "GATEIO": [
        dumps(
            {
                "time": 1606292218,
                "time_ms": 1606292218231,
                "channel": "spot.trades",
                "event": "subscribe",
                "result": {"status": "success"},
            }
        ),
        trade("GATEIO", 0),
        dumps(
            {
                "time": 1669107766,
                "time_ms": 1669107766406,
                "channel": "spot.tickers",
                "event": "update",
                "result": {
                    "currency_pair": "BTC_USDT",
                    "last": "16500.1",
                    "lowest_ask": "16500.2",
                    "highest_bid": "16500.1",
                    "change_percentage": "-0.2",
                    "base_volume": "1234.5",
                    "quote_volume": "20000000",
                    "high_24h": "16700",
                    "low_24h": "16400",
                },
            }
        ),
    ],
    "UPBIT": [
        trade("UPBIT", 0),
        '{"type":"ticker","code":"KRW-BTC","opening_price":49000000.0,"high_price":49500000.0,'
        '"low_price":48800000.0,"trade_price":49100000.0,"prev_closing_price":49000000.0,'
        '"change":"RISE","change_price":100000.0,"signed_change_price":100000.0,"change_rate":0.0020408163,'
        '"signed_change_rate":0.0020408163,"trade_volume":0.0001,"acc_trade_volume":1234.56789,'
        '"acc_trade_volume_24h":2345.6789,"acc_trade_price":60000000000.0,"timestamp":1700000000000,'
        '"stream_type":"REALTIME"}',
        '{"type":"orderbook","code":"KRW-BTC","timestamp":1700000000000,"total_ask_size":1.5,'
        '"total_bid_size":2.5,"orderbook_units":[{"ask_price":49101000.0,"bid_price":49100000.0,'
        '"ask_size":0.5,"bid_size":1.25}],"stream_type":"REALTIME"}',
        '{"status":"UP"}',
    ],
}

EXAMPLES["BINANCE_FUTURES"] = [
    dumps(
        {
            "stream": "btcusdt@depth20@100ms",
            "data": {
                "e": "depthUpdate",
                "E": T0_MS,
                "T": T0_MS - 2,
                "s": "BTCUSDT",
                "U": 390497796,
                "u": 390497878,
                "pu": 390497794,
                "b": [["16500.10", "7.600"]],
                "a": [["16500.20", "0.410"]],
            },
        }
    ),
    dumps(
        {
            "stream": "btcusdt@bookTicker",
            "data": {
                "e": "bookTicker",
                "u": 400900217,
                "E": T0_MS,
                "T": T0_MS - 1,
                "s": "BTCUSDT",
                "b": "16500.10",
                "B": "31.210",
                "a": "16500.20",
                "A": "40.660",
            },
        }
    ),
]
EXAMPLES["KORBIT"] = [
    dumps(
        {
            "type": "ticker",
            "timestamp": T0_MS,
            "symbol": "btc_krw",
            "snapshot": True,
            "data": {
                "open": "49000000",
                "high": "49500000",
                "low": "48800000",
                "close": "49100000",
                "prevClose": "49000000",
                "priceChange": "100000",
                "priceChangePercent": "0.2",
                "volume": "123.45678901",
                "quoteVolume": "6000000000",
                "bestBidPrice": "49099000",
                "bestAskPrice": "49100000",
                "lastTradedAt": T0_MS,
            },
        }
    ),
    dumps(
        {
            "type": "orderbook",
            "timestamp": T0_MS,
            "symbol": "btc_krw",
            "snapshot": True,
            "data": {
                "timestamp": T0_MS,
                "asks": [{"price": "49100000", "qty": "0.5"}],
                "bids": [{"price": "49099000", "qty": "0.25"}],
            },
        }
    ),
]
EXAMPLES["COINONE"] = [
    dumps({"response_type": "SUBSCRIBED", "channel": "TICKER"}),
    dumps(
        {
            "response_type": "DATA",
            "channel": "TICKER",
            "data": {
                "quote_currency": "KRW",
                "target_currency": "BTC",
                "timestamp": T0_MS,
                "quote_volume": "6000000000",
                "target_volume": "123.456",
                "high": "49500000",
                "low": "48800000",
                "first": "49000000",
                "last": "49100000",
                "volume_power": "100",
                "ask_best_price": "49100000",
                "ask_best_qty": "0.5",
                "bid_best_price": "49099000",
                "bid_best_qty": "0.25",
                "id": "1700000000000001",
                "yesterday_high": "49600000",
                "yesterday_low": "48000000",
                "yesterday_first": "48500000",
                "yesterday_last": "49000000",
                "yesterday_quote_volume": "1",
                "yesterday_target_volume": "1",
            },
        }
    ),
    dumps(
        {
            "response_type": "DATA",
            "channel": "ORDERBOOK",
            "data": {
                "quote_currency": "KRW",
                "target_currency": "BTC",
                "timestamp": T0_MS,
                "id": "1700000000000002",
                "asks": [{"price": "49100000", "qty": "0.5"}],
                "bids": [{"price": "49099000", "qty": "0.25"}],
            },
        }
    ),
    dumps({"response_type": "PONG"}),
]

SNAPSHOTS: dict[str, dict[str, Any]] = {
    "BINANCE": binance_snapshot(158),
    "COINBASE": {
        "bids": [["400.00", "1.5", 2]],
        "asks": [["400.05", "0.5", 1]],
        "sequence": 3,
        "time": "2023-11-14T22:13:20.000000Z",
    },
    "GATEIO": {
        "id": 123456,
        "current": 1623898993123,
        "update": 1623898993121,
        "asks": [["1.52", "1.151"]],
        "bids": [["1.17", "201.863"]],
    },
}
