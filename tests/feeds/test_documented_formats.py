"""Korbit and Coinone frames exactly as their published documentation shows them.

Coinone: the DEFAULT-format stream examples of docs.coinone.co.kr/reference/
public-websocket-trade, -orderbook and -ticker (KRW-XRP). Korbit: the v2 public frames used by
Korbit's own CLI tests (github.com/korbit-official/korbit-cli, internal/cli monitor tests),
which docs.korbit.co.kr describes as compatible with its old WebSocket API. docs/feeds.md
cites both.
"""

from __future__ import annotations

from engine.enums import Side
from gateway.feeds.config import FeedConfig
from gateway.feeds.connector import Connector
from gateway.feeds.records import BookUpdate, Ticker, Trade
from gateway.feeds.venues import VENUES

XRP = {"KRW-XRP": {"tick": "0.1", "lot": "0.0001"}}


def _coinone() -> Connector:
    config = FeedConfig("COINONE", ["KRW-XRP"], ["trade", "orderbook", "ticker"], buffer_rate=0)
    config.instruments = dict(XRP)
    return VENUES["COINONE"](config)


def test_coinone_documented_trade() -> None:
    feed = _coinone()
    frame = (
        '{"response_type":"DATA","channel":"TRADE","data":{"quote_currency":"KRW",'
        '"target_currency":"XRP","id":"1693560450996001","timestamp":1693560450996,'
        '"price":"688.3","qty":"5000","is_seller_maker":true}}'
    )
    assert feed.feed(frame, 1) == 1
    (trade,) = feed.take()
    assert isinstance(trade, Trade)
    assert trade.instrument == "COINONE.KRW-XRP"
    assert (trade.price, trade.qty, trade.trade_id) == (6883, 50_000_000, 1693560450996001)
    assert trade.side is Side.BUY  # the seller made the market: the buyer took it
    assert trade.ts_event == 1693560450996 * 1_000_000


def test_coinone_documented_orderbook_and_ticker() -> None:
    feed = _coinone()
    book = (
        '{"response_type":"DATA","channel":"ORDERBOOK","data":{"quote_currency":"KRW",'
        '"target_currency":"XRP","timestamp":1693560155038,"id":"1693560155038001",'
        '"asks":[{"price":"695.5","qty":"5000"},{"price":"692.1","qty":"15000"}],'
        '"bids":[{"price":"688.6","qty":"118063.7475"}]}}'
    )
    ticker = (
        '{"response_type":"DATA","channel":"TICKER","data":{"quote_currency":"KRW",'
        '"target_currency":"XRP","timestamp":1693560155038,"quote_volume":"1","target_volume":'
        '"2","high":"700","low":"680","first":"690","last":"688.3","volume_power":"100",'
        '"ask_best_price":null,"ask_best_qty":"0","bid_best_price":"688.6",'
        '"bid_best_qty":"118063.7475","id":"1693560155038002","yesterday_high":"1",'
        '"yesterday_low":"1","yesterday_first":"1","yesterday_last":"1",'
        '"yesterday_quote_volume":"1","yesterday_target_volume":"1"}}'
    )
    assert feed.feed(book, 1) == 1
    assert feed.feed(ticker, 2) == 1
    update, quote = feed.take()
    assert isinstance(update, BookUpdate) and update.snapshot
    assert update.asks == [(6955, 50_000_000), (6921, 150_000_000)]
    assert update.bids == [(6886, 1_180_637_475)]
    assert isinstance(quote, Ticker)
    assert (quote.last, quote.bid, quote.ask) == (6883, 6886, 0)  # "null when there is none"
    assert feed.stats()["malformed"] == 0


def test_korbit_cli_frames() -> None:
    feed = VENUES["KORBIT"](FeedConfig("KORBIT", ["btc_krw"], ["trade", "ticker"], buffer_rate=0))
    snapshot = (
        '{"type":"trade","timestamp":1700000000000,"symbol":"btc_krw","snapshot":true,"data":'
        '[{"tradeId":1,"timestamp":1699999990000,"price":"100","qty":"0.5","isBuyerTaker":true}]}'
    )
    live = (
        '{"type":"trade","timestamp":1700000001000,"symbol":"btc_krw","snapshot":false,"data":'
        '[{"tradeId":2,"timestamp":1700000000000,"price":"105","qty":"0.25","isBuyerTaker":false}]}'
    )
    ticker = (
        '{"type":"ticker","timestamp":1700000000000,"symbol":"btc_krw","snapshot":false,'
        '"data":{"close":"139000000"}}'
    )
    for n, frame in enumerate((snapshot, live, live, ticker)):
        feed.feed(frame, n)
    first, second, quote = feed.take()  # the repeated live trade is a duplicate
    assert isinstance(first, Trade) and isinstance(second, Trade)
    assert [(t.trade_id, t.price, t.qty, t.side) for t in (first, second)] == [
        (1, 100, 50_000_000, Side.BUY),
        (2, 105, 25_000_000, Side.SELL),
    ]
    assert isinstance(quote, Ticker) and quote.last == 139_000_000 and quote.bid == 0
    assert feed.dedup.duplicates == 1
