"""Per-venue parsers against frames in each venue's documented format (tests/feeds/fixtures.py)."""

from dataclasses import fields
from typing import Any

import orjson
import pytest

from engine.enums import Side
from gateway.feeds.config import UPBIT_TICKER_FIELDS, FeedConfig
from gateway.feeds.connector import Connector
from gateway.feeds.records import Bar, BookUpdate, Ticker, Trade
from gateway.feeds.venues import VENUES
from tests.feeds import fixtures

T_RECV = 1_800_000_000_000_000_000


def connector(venue: str, **overrides: Any) -> Connector:
    config = FeedConfig(
        venue, [fixtures.SYMBOL[venue]], buffer_rate=0, buffer_capacity=10_000, **overrides
    )
    return VENUES[venue](config, clock_ns=lambda: T_RECV)


# (venue, instrument id, price ticks, qty lots, taker side, trade id, ts_event ns) of trade 0
FIRST_TRADES = [
    ("BINANCE", "BINANCE.BTCUSDT", 1_650_000, 10_000, Side.SELL, 1000, fixtures.T0_MS * 10**6),
    (
        "BINANCE_FUTURES",
        "BINANCE_FUTURES.BTCUSDT",
        165_000,
        100,
        Side.SELL,
        1000,
        fixtures.T0_MS * 10**6,
    ),
    ("COINBASE", "COINBASE.BTC-USD", 40_023, 523_512_000, Side.SELL, 10, fixtures.T0_MS * 10**6),
    ("OKX", "OKX.BTC-USDT", 422_199, 12_060_306, Side.SELL, 130639474, fixtures.T0_MS * 10**6),
    (
        "BYBIT",
        "BYBIT.BTCUSDT",
        1_657_850,
        1_000,
        Side.SELL,
        2290000000036455162,
        fixtures.T0_MS * 10**6,
    ),
    ("KRAKEN", "KRAKEN.BTC/USD", 260_005, 40_000, Side.BUY, 4665906, fixtures.T0_MS * 10**6),
    (
        "GATEIO",
        "GATEIO.BTC_USDT",
        370_005,
        1_600,
        Side.BUY,
        309143071,
        fixtures.T0_MS * 10**6 + 457800,
    ),
    (
        "UPBIT",
        "UPBIT.KRW-BTC",
        49_100_000,
        12_345,
        Side.SELL,
        17000000000000,
        fixtures.T0_MS * 10**6,
    ),
    (
        "BITHUMB",
        "BITHUMB.KRW-BTC",
        49_100_000,
        12_345,
        Side.SELL,
        17000000000000,
        fixtures.T0_MS * 10**6,
    ),
    ("KORBIT", "KORBIT.btc_krw", 49_100_000, 120_000, Side.SELL, 5000000, fixtures.T0_MS * 10**6),
    (
        "COINONE",
        "COINONE.KRW-BTC",
        49_100_000,
        50_000,
        Side.BUY,
        17000000000000001,
        fixtures.T0_MS * 10**6,
    ),
]


@pytest.mark.parametrize(
    ("venue", "instrument", "price", "qty", "side", "trade_id", "ts_event"), FIRST_TRADES
)
def test_first_trade_normalizes_exactly(
    venue: str, instrument: str, price: int, qty: int, side: Side, trade_id: int, ts_event: int
) -> None:
    feed = connector(venue)
    assert feed.feed(fixtures.trade(venue, 0), T_RECV) == 1
    (trade,) = feed.take()
    assert isinstance(trade, Trade)
    assert (trade.instrument, trade.price, trade.qty, trade.side, trade.trade_id) == (
        instrument,
        price,
        qty,
        side,
        trade_id,
    )
    assert (trade.ts_event, trade.ts_recv, trade.quality) == (ts_event, T_RECV, 100)
    assert trade.to_record()["price"] == price
    # the pipeline sets a trade's fields itself (not through Trade.__init__): all of them
    sequence = 50 if venue == "COINBASE" else 0  # Coinbase's match carries its sequence
    expected = Trade(instrument, ts_event, T_RECV, price, qty, side, trade_id, sequence, 100)
    assert [getattr(trade, f.name) for f in fields(Trade)] == [
        getattr(expected, f.name) for f in fields(Trade)
    ]


@pytest.mark.parametrize("venue", sorted(fixtures.SYMBOL))
def test_a_stream_of_trades_with_a_repeat(venue: str) -> None:
    feed = connector(venue)
    frames = [fixtures.trade(venue, i) for i in range(20)] + [fixtures.trade(venue, 7)]
    for frame in frames:
        feed.feed(frame, T_RECV)
    trades = feed.take()
    assert len(trades) == 20
    assert len({t.trade_id for t in trades}) == 20
    stats = feed.stats()
    assert stats["malformed"] == stats["off_tick"] == stats["unknown_symbol"] == 0
    # Coinbase drops the repeat by its sequence number, every other venue in the LRU
    assert stats["duplicates"] + stats.get("stale_sequence", 0) == 1


def kinds(venue: str) -> list[str]:
    feed = connector(venue)
    for frame in fixtures.EXAMPLES[venue]:
        feed.feed(frame, T_RECV)
    assert feed.stats()["malformed"] == 0
    return [type(r).__name__ for r in feed.take()]


def test_binance_examples() -> None:
    assert kinds("BINANCE") == ["Trade", "Trade", "BookUpdate", "Bar", "Ticker", "Ticker"]


def test_binance_kline_and_tickers() -> None:
    feed = connector("BINANCE")
    for frame in fixtures.EXAMPLES["BINANCE"]:
        feed.feed(frame, T_RECV)
    records = feed.take()
    bar = next(r for r in records if isinstance(r, Bar))
    assert (bar.interval_s, bar.open, bar.high, bar.low, bar.close, bar.volume, bar.closed) == (
        60,
        1_650_000,
        1_652_000,
        1_649_000,
        1_651_000,
        100_000_000,
        False,
    )
    book_ticker, day = [r for r in records if isinstance(r, Ticker)]
    assert (book_ticker.bid, book_ticker.bid_qty, book_ticker.ask, book_ticker.ask_qty) == (
        1_650_000,
        3_121_000,
        1_650_010,
        4_066_000,
    )
    assert book_ticker.sequence == 400900217
    assert (day.last, day.volume) == (1_650_001, 1_000_000_000)
    assert day.fields["o"] == "16300.00" and set(day.fields) <= {
        "E",
        "o",
        "c",
        "h",
        "l",
        "x",
        "v",
        "p",
        "P",
    }


def test_coinbase_examples() -> None:
    assert kinds("COINBASE") == ["Trade", "Ticker", "BookUpdate", "BookUpdate"]


def test_okx_examples_and_pong() -> None:
    feed = connector("OKX")
    assert feed.feed("pong", T_RECV) == 0
    assert feed.stats()["malformed"] == 0
    assert kinds("OKX") == ["Trade", "Ticker", "BookUpdate", "BookUpdate"]


def test_bybit_examples() -> None:
    assert kinds("BYBIT") == ["Trade", "Ticker", "BookUpdate", "BookUpdate"]


def test_kraken_examples_keep_decimal_precision() -> None:
    assert kinds("KRAKEN") == ["Trade", "Ticker", "BookUpdate"]
    feed = connector("KRAKEN")
    feed.feed(fixtures.EXAMPLES["KRAKEN"][3], T_RECV)
    (ticker,) = feed.take()
    assert (ticker.bid, ticker.bid_qty, ticker.ask, ticker.ask_qty) == (
        260_001,
        50_000_000,
        260_002,
        125_000_000,
    )


def test_gateio_examples() -> None:
    assert kinds("GATEIO") == ["Trade", "Ticker"]


def test_upbit_examples_with_seed_001_field_selection() -> None:
    assert kinds("UPBIT") == ["Trade", "Ticker", "BookUpdate"]
    feed = connector("UPBIT")
    feed.feed(fixtures.EXAMPLES["UPBIT"][1].encode(), T_RECV)  # Upbit sends binary frames
    (ticker,) = feed.take()
    assert tuple(ticker.fields) == UPBIT_TICKER_FIELDS
    assert ticker.fields["signed_change_rate"] == "0.0020408163"
    assert ticker.last == 49_100_000


def test_field_selection_is_configuration() -> None:
    feed = connector("UPBIT", ticker_fields=("trade_price", "change"))
    feed.feed(fixtures.EXAMPLES["UPBIT"][1], T_RECV)
    (ticker,) = feed.take()
    assert ticker.fields == {"trade_price": "49100000.0", "change": "RISE"}


def test_binance_depth_diff_is_buffered_until_a_rest_snapshot() -> None:
    feed = connector("BINANCE")
    feed.feed(fixtures.binance_depth(157, 160), T_RECV)
    feed.feed(fixtures.binance_depth(161, 163), T_RECV)
    assert feed.take() == []
    import orjson

    feed.feed_snapshot("BTCUSDT", orjson.dumps(fixtures.binance_snapshot(158)), T_RECV)
    updates = feed.take()
    assert [type(u) for u in updates] == [BookUpdate] * 3
    assert [(u.first_id, u.last_id, u.snapshot) for u in updates] == [
        (158, 158, True),
        (157, 160, False),
        (161, 163, False),
    ]
    keeper = feed.books["BINANCE.BTCUSDT"]
    assert keeper.synced and keeper.book.best_bid() == (1_650_000, 100_000)


def test_malformed_frames_are_counted_never_raised() -> None:
    feed = connector("BINANCE")
    bad = [
        "not json",
        "{",
        '{"stream":"btcusdt@trade","data":{"e":"trade"}}',  # missing fields
        '{"stream":"btcusdt@trade","data":[]}',
        "[]",
        b"\xff\xfe\xfa\x80\x81\x00\x9f",
    ]
    for frame in bad:
        assert feed.feed(frame, T_RECV) == 0
    stats = feed.stats()
    assert stats["malformed"] == 5 and stats["undecodable"] == 1 and stats["frames"] == 6


def test_off_tick_price_and_unknown_symbol_and_non_positive_are_rejected() -> None:
    feed = connector("BINANCE")
    good = fixtures.trade("BINANCE", 0)
    feed.feed(good.replace('"p":"16500.00"', '"p":"16500.001"'), T_RECV)
    feed.feed(good.replace('"s":"BTCUSDT"', '"s":"DOGEUSDT"'), T_RECV)
    feed.feed(good.replace('"q":"0.10000"', '"q":"0"'), T_RECV)
    assert feed.take() == []
    stats = feed.stats()
    assert (stats["off_tick"], stats["unknown_symbol"], stats["rejected"]) == (1, 1, 1)


def test_dust_trade_scores_lower() -> None:
    feed = connector("BINANCE")
    feed.feed(fixtures.trade("BINANCE", 0).replace('"q":"0.10000"', '"q":"0.00005"'), T_RECV)
    (trade,) = feed.take()
    assert trade.quality == 90


def test_coinbase_and_gateio_rest_snapshots() -> None:
    coinbase = connector("COINBASE")
    coinbase.feed_snapshot("BTC-USD", orjson.dumps(fixtures.SNAPSHOTS["COINBASE"]), T_RECV)
    (book,) = coinbase.take()
    assert (book.snapshot, book.last_id, book.bids, book.asks) == (
        True,
        3,
        [(40000, 150_000_000)],
        [(40005, 50_000_000)],
    )
    gate = connector("GATEIO", instruments={"BTC_USDT": {"tick": "0.01", "lot": "0.001"}})
    gate.feed_snapshot("BTC_USDT", orjson.dumps(fixtures.SNAPSHOTS["GATEIO"]), T_RECV)
    (book,) = gate.take()
    assert (book.last_id, book.bids, book.asks) == (123456, [(117, 201_863)], [(152, 1_151)])


def test_bad_rest_snapshot_is_counted() -> None:
    feed = connector("BINANCE")
    assert feed.feed_snapshot("BTCUSDT", b'{"bids": []}', T_RECV) == 0
    assert feed.stats()["rest_errors"] == 1 and feed.stats()["rest_snapshots"] == 0


def test_okx_books_chain_and_gap_request_resync() -> None:
    feed = connector("OKX")
    snapshot, update = fixtures.EXAMPLES["OKX"][3], fixtures.EXAMPLES["OKX"][4]
    feed.feed(snapshot, T_RECV)
    feed.feed(update, T_RECV)
    assert feed.books["OKX.BTC-USDT"].book.asks == {84769: 20_000_000_000}  # 200 in 1e-8 lots
    feed.feed(
        update.replace('"prevSeqId":123456,"seqId":123457', '"prevSeqId":123459,"seqId":123460'),
        T_RECV,
    )
    assert feed.resync_pending == {"BTC-USDT"} and feed.stats()["book_gaps"] == 1


def test_bybit_update_id_one_means_a_fresh_snapshot() -> None:
    feed = connector("BYBIT")
    for frame in fixtures.EXAMPLES["BYBIT"][3:]:
        feed.feed(frame, T_RECV)
    restart = (
        fixtures.EXAMPLES["BYBIT"][4]
        .replace('"u":18521289', '"u":1')
        .replace('"type":"delta"', '"type":"delta"')
    )
    feed.feed(restart, T_RECV)
    keeper = feed.books["BYBIT.BTCUSDT"]
    assert keeper.synced and keeper.last_id == 1 and keeper.book.bids == {}


def test_binance_futures_partial_depth_is_a_snapshot_and_book_ticker_has_an_event_type() -> None:
    assert kinds("BINANCE_FUTURES") == ["BookUpdate", "Ticker"]
    feed = connector("BINANCE_FUTURES")
    for frame in fixtures.EXAMPLES["BINANCE_FUTURES"]:
        feed.feed(frame, T_RECV)
    book, ticker = feed.take()
    assert book.snapshot and book.last_id == 390497878 and book.bids == [(165_001, 7_600)]
    assert (ticker.bid, ticker.ask_qty, ticker.ts_event) == (
        165_001,
        40_660,
        fixtures.T0_MS * 10**6,
    )


def test_korbit_examples() -> None:
    assert kinds("KORBIT") == ["Ticker", "BookUpdate"]
    feed = connector("KORBIT")
    for frame in fixtures.EXAMPLES["KORBIT"]:
        feed.feed(frame, T_RECV)
    ticker, book = feed.take()
    assert (ticker.last, ticker.bid, ticker.ask, ticker.volume) == (
        49_100_000,
        49_099_000,
        49_100_000,
        12_345_678_901,
    )
    assert ticker.fields["prevClose"] == "49000000"
    assert book.asks == [(49_100_000, 50_000_000)] and book.bids == [(49_099_000, 25_000_000)]


def test_coinone_examples() -> None:
    assert kinds("COINONE") == ["Ticker", "BookUpdate"]
    feed = connector("COINONE")
    for frame in fixtures.EXAMPLES["COINONE"]:
        feed.feed(frame, T_RECV)
    ticker, _ = feed.take()
    assert (ticker.last, ticker.bid_qty, ticker.ask_qty) == (49_100_000, 25_000_000, 50_000_000)
    assert ticker.fields["yesterday_last"] == "49000000"


def test_kraken_book_checksum_verified_and_mismatch_resyncs() -> None:
    feed = connector("KRAKEN")
    asks, bids = fixtures.KRAKEN_ASKS, fixtures.KRAKEN_BIDS
    feed.feed(
        fixtures.kraken_book("snapshot", asks, bids, fixtures.kraken_checksum(asks, bids, 1, 8)),
        T_RECV,
    )
    new_bids = [("26000.1", "0"), *bids[1:], ("25999.5", "0.12345678")]
    changed = [("26000.1", "0"), ("25999.5", "0.12345678")]
    good = fixtures.kraken_checksum(asks, new_bids[1:], 1, 8)
    feed.feed(fixtures.kraken_book("update", [], changed, good), T_RECV)
    assert [u.snapshot for u in feed.take()] == [True, False]
    assert feed.books["KRAKEN.BTC/USD"].book.bids == {259_999: 300_000_000, 259_995: 12_345_678}
    feed.feed(
        fixtures.kraken_book("update", [], [("25999.9", "2")], good), T_RECV
    )  # stale checksum
    assert feed.take() == []
    assert feed.stats()["checksum_errors"] == 1 and feed.resync_pending == {"BTC/USD"}
    assert feed.resync_messages("BTC/USD")[0]["method"] == "unsubscribe"


def test_kraken_book_is_kept_to_the_subscribed_depth() -> None:
    feed = connector("KRAKEN")
    bids = [(f"{25000 + n}.0", "1") for n in range(12)]
    asks = [(f"{26000 + n}.0", "1") for n in range(12)]
    feed.feed(
        fixtures.kraken_book("snapshot", asks, bids, fixtures.kraken_checksum(asks, bids, 1, 8)),
        T_RECV,
    )
    book = feed.books["KRAKEN.BTC/USD"].book
    assert len(book.bids) == len(book.asks) == 10
    assert min(book.bids) == 250_020 and max(book.asks) == 260_090
    assert feed.stats()["checksum_errors"] == 0


VENUE_ERRORS = {
    "BINANCE": {"code": 2, "msg": "Invalid request: property name must be a string", "id": 1},
    "COINBASE": {
        "type": "error",
        "message": "Failed to subscribe",
        "reason": "BTC-XYZ is not a valid product",
    },
    "OKX": {"event": "error", "code": "60012", "msg": "Invalid request", "connId": "a4d3ae55"},
    "BYBIT": {
        "success": False,
        "ret_msg": "error:handler not found",
        "conn_id": "x",
        "op": "subscribe",
    },
    "KRAKEN": {"error": "Currency pair not supported", "method": "subscribe", "success": False},
    "GATEIO": {
        "time": 1606292218,
        "channel": "spot.trades",
        "event": "subscribe",
        "error": {"code": 2, "message": "unknown currency pair GIBBERISH_USD"},
        "result": None,
    },
    "UPBIT": {"error": {"name": "WRONG_FORMAT", "message": "요청 형식이 올바르지 않습니다."}},
    "COINONE": {"response_type": "ERROR", "error_code": 160012, "message": "Invalid topic"},
}


@pytest.mark.parametrize("venue", sorted(VENUE_ERRORS))
def test_venue_error_answers_are_counted(venue: str, caplog: pytest.LogCaptureFixture) -> None:
    feed = connector(venue)
    with caplog.at_level("WARNING"):
        assert feed.feed(orjson.dumps(VENUE_ERRORS[venue]), T_RECV) == 0
    stats = feed.stats()
    assert stats["venue_errors"] == 1 and stats["malformed"] == 0
    assert "venue error" in caplog.text
