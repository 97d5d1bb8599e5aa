import tomllib

import pytest

from gateway.feeds.config import FeedConfig

TOML = """
[feeds.binance]
venue = "BINANCE"
symbols = ["BTCUSDT", "ETHUSDT"]
streams = ["trade", "depth"]
max_attempts = -1
buffer_capacity = 5000
ticker_fields = ["E", "c"]

[feeds.binance.instruments.SOLUSDT]
tick = "0.01"
lot = "0.001"
"""


def test_toml_table_then_environment_overrides() -> None:
    table = tomllib.loads(TOML)["feeds"]["binance"]
    env = {
        "SHMEX_FEED_BINANCE_BUFFER_RATE": "250",
        "SHMEX_FEED_BINANCE_STREAMS": "trade,bookTicker",
        "SHMEX_FEED_BINANCE_IDLE_TIMEOUT": "12.5",
        "SHMEX_FEED_OKX_BUFFER_RATE": "1",  # another venue's: ignored
    }
    config = FeedConfig.from_mapping(table, env)
    assert config.symbols == ["BTCUSDT", "ETHUSDT"]
    assert config.streams == ["trade", "bookTicker"]
    assert (config.max_attempts, config.buffer_capacity, config.buffer_rate) == (-1, 5000, 250)
    assert config.idle_timeout == 12.5 and config.dedup_size == 10_000
    assert config.ticker_fields == ("E", "c")
    assert config.instruments == {"SOLUSDT": {"tick": "0.01", "lot": "0.001"}}


def test_typos_are_errors() -> None:
    with pytest.raises(ValueError, match="unknown feed settings"):
        FeedConfig.from_mapping({"venue": "BINANCE", "symbols": [], "bufer_rate": 1})
    with pytest.raises(ValueError, match="not a feed setting"):
        FeedConfig.from_mapping(
            {"venue": "BINANCE", "symbols": []}, {"SHMEX_FEED_BINANCE_NOPE": "1"}
        )
