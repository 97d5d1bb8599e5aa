"""services/feeds.py configuration: venue tables, id clashes, the house funding, topology."""

from __future__ import annotations

from pathlib import Path

import pytest

from services import config as configuration
from services.feeds import FeedsService, house_funding, venue_settings
from services.topology import processes

VENUES = """
[feeds.venues.futures]
venue = "BINANCE_FUTURES"
symbols = ["BTCUSDT"]
streams = ["trade", "depth"]
live = false
mirror = { "CFFEX.IF2501" = "BTCUSDT" }

[feeds.venues.coinbase]
venue = "COINBASE"
symbols = ["BTC-USD"]
ws_url = "ws://127.0.0.1:1/ws"
"""


def load(tmp_path: Path, text: str) -> configuration.Config:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return configuration.load(path, env={}, overrides={"instance.home": str(tmp_path / "home")})


def test_venue_tables_split_into_connector_config_and_process_extras(tmp_path: Path) -> None:
    config = load(tmp_path, VENUES)
    futures, coinbase = venue_settings(config, environ={"SHMEX_FEED_COINBASE_MAX_ATTEMPTS": "3"})
    assert (futures.name, futures.live, futures.mirror) == (
        "futures",
        False,
        {"CFFEX.IF2501": "BTCUSDT"},
    )
    assert futures.feed.streams == ["trade", "depth"]
    assert [s.instrument_id for s in futures.specs()] == ["BINANCE_FUTURES.BTCUSDT"]
    assert (coinbase.live, coinbase.feed.ws_url, coinbase.feed.max_attempts) == (
        True,
        "ws://127.0.0.1:1/ws",
        3,
    )


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('venue = "NOWHERE"\nsymbols = ["X"]', "unknown venue"),
        ('venue = "COINBASE"\nsymbols = ["BTC-USD"]\nspeed = 3', "unknown feed settings"),
    ],
)
def test_bad_venue_tables_fail_at_start(tmp_path: Path, table: str, message: str) -> None:
    config = load(tmp_path, f"[feeds.venues.bad]\n{table}\n")
    with pytest.raises(configuration.ConfigError, match=message):
        venue_settings(config, environ={})


def test_external_ids_may_not_be_local_ids(tmp_path: Path) -> None:
    clash = '[feeds.venues.spot]\nvenue = "BINANCE"\nsymbols = ["BTCUSDT"]\nlive = false\n'
    service = FeedsService(load(tmp_path, clash), "feeds")
    with pytest.raises(configuration.ConfigError, match=r"BINANCE\.BTCUSDT"):
        service.start()
    renamed = clash + (
        '[feeds.venues.spot.instruments.BTCUSDT]\ntick = "0.01"\nlot = "0.00001"\n'
        'instrument_id = "BINANCE-LIVE.BTCUSDT"\n'
    )
    (spot,) = venue_settings(load(tmp_path, renamed), environ={})
    assert [s.instrument_id for s in spot.specs()] == ["BINANCE-LIVE.BTCUSDT"]


def test_mirrors_name_known_instruments(tmp_path: Path) -> None:
    text = VENUES.replace('"CFFEX.IF2501" = "BTCUSDT"', '"CFFEX.NOPE" = "BTCUSDT"')
    service = FeedsService(load(tmp_path, text), "feeds")
    with pytest.raises(configuration.ConfigError, match=r"CFFEX\.NOPE"):
        service.start()


def test_house_funding_covers_currency_and_spot_base_asset(tmp_path: Path) -> None:
    registry = configuration.load_instruments(load(tmp_path, ""))
    assert house_funding(registry, ["CFFEX.IF2501"], "1000") == {"CNY": 100_000}
    assert house_funding(registry, ["BINANCE.BTCUSDT", "CFFEX.IF2501"], "2") == {
        "USDT": 200_000_000,
        "BTC": 200_000_000,
        "CNY": 200,
    }


def test_the_process_runs_only_when_venues_are_configured(tmp_path: Path) -> None:
    assert "feeds" not in [p.name for p in processes(load(tmp_path, ""))]
    assert "feeds" in [p.name for p in processes(load(tmp_path, VENUES))]
