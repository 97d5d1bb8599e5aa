"""`to_record()` is the contract with the market-data ring writer: flat integer fields."""

from engine.enums import Side
from gateway.feeds.records import Bar, BookUpdate, Ticker, Trade


def test_every_record_flattens_to_integers_and_a_kind() -> None:
    records = [
        Trade("BINANCE.BTCUSDT", 5, 6, 1_650_000, 10_000, Side.SELL, 1000, 7, 90),
        Ticker("COINBASE.BTC-USD", 5, 6, 40_023, 40_022, 3, 40_024, 4, 99, 8, {"price": "400.23"}),
        BookUpdate("OKX.BTC-USDT", 5, 6, [(1, 2)], [(3, 4), (5, 0)], False, 10, 11, 9),
        Bar("BINANCE.BTCUSDT", 60, 5, 6, 1, 3, 0, 2, 100, True),
    ]
    kinds = []
    for record in records:
        flat = record.to_record()
        kinds.append(flat.pop("kind"))
        assert flat.pop("instrument") == record.instrument
        assert all(isinstance(value, int) for value in flat.values()), flat
        assert flat["ts_recv"] == 6
    assert kinds == ["MD_TRADE", "MD_QUOTE", "MD_BOOK_LEVEL", "MD_KLINE"]
    trade = records[0].to_record()
    assert (trade["price"], trade["qty"], trade["side"], trade["trade_id"], trade["quality"]) == (
        1_650_000,
        10_000,
        2,
        1000,
        90,
    )
    assert records[2].to_record()["levels"] == 3
    snapshot = BookUpdate("X.Y", 0, 0, [], [], True)
    assert snapshot.to_record()["kind"] == "MD_BOOK_CLEAR"
