"""Feed configuration: which venue, symbols and streams, and every limit the pipeline enforces.

Defaults follow the seeds: dedup 10,000 keys for 5 min, buffer 1,000 records at 1,000/s, backoff
1 s → 60 s for 100 attempts (seed 003); a health line every 30 s. `ticker_fields` is seed 001's
per-venue field selection: the raw ticker fields kept on each `Ticker.fields`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

UPBIT_TICKER_FIELDS = (
    "timestamp",
    "opening_price",
    "trade_price",
    "high_price",
    "low_price",
    "prev_closing_price",
    "acc_trade_volume_24h",
    "signed_change_price",
    "signed_change_rate",
)
"""Seed 001's nine fields (its YAML lists the same nine for every Korean venue)."""

DEFAULT_TICKER_FIELDS: dict[str, tuple[str, ...]] = {
    "UPBIT": UPBIT_TICKER_FIELDS,
    "BITHUMB": UPBIT_TICKER_FIELDS,
    "BINANCE": ("E", "o", "c", "h", "l", "x", "v", "p", "P"),
    "BINANCE_FUTURES": ("E", "o", "c", "h", "l", "v", "p", "P"),
    "COINBASE": ("time", "open_24h", "price", "high_24h", "low_24h", "volume_24h"),
    "OKX": ("ts", "open24h", "last", "high24h", "low24h", "sodUtc0", "vol24h"),
    "BYBIT": (
        "lastPrice",
        "highPrice24h",
        "lowPrice24h",
        "prevPrice24h",
        "volume24h",
        "price24hPcnt",
    ),
    "KRAKEN": ("last", "high", "low", "volume", "change", "change_pct"),
    "GATEIO": ("last", "high_24h", "low_24h", "base_volume", "change_percentage"),
    "KORBIT": (
        "open",
        "close",
        "high",
        "low",
        "prevClose",
        "volume",
        "priceChange",
        "priceChangePercent",
    ),
    "COINONE": ("first", "last", "high", "low", "yesterday_last", "target_volume"),
}


@dataclass
class FeedConfig:
    """One connector's settings. `ws_url`/`rest_url` override the venue's real endpoints (tests
    and recordings point them at local servers); `instruments` rows are
    `{symbol: {"tick": ..., "lot": ..., "max_price": ...}}` merged over the venue's defaults."""

    venue: str
    symbols: list[str]
    streams: list[str] = field(default_factory=lambda: ["trade"])
    ws_url: str = ""
    rest_url: str = ""
    instruments: dict[str, dict[str, str]] = field(default_factory=dict)
    ticker_fields: tuple[str, ...] | None = None
    ping_interval: float = 20.0
    idle_timeout: float = 60.0
    connect_timeout: float = 10.0
    rest_timeout: float = 10.0
    max_frame_bytes: int = 4 * 1024 * 1024
    backoff_initial: float = 1.0
    backoff_cap: float = 60.0
    backoff_jitter: float = 0.2
    max_attempts: int = 100  # −1 = unlimited
    rest_poll_interval: float = 5.0  # REST snapshots while the socket is down
    dedup_size: int = 10_000
    dedup_ttl: float = 300.0
    buffer_capacity: int = 1_000
    buffer_rate: int = 1_000  # records per second, 0 = unlimited
    health_interval: float = 30.0
    min_decode_confidence: float = 0.5

    @classmethod
    def from_mapping(
        cls, table: Mapping[str, Any], environ: Mapping[str, str] | None = None
    ) -> FeedConfig:
        """Build from a TOML table (`[feeds.<name>]`), then apply `SHMEX_FEED_<VENUE>_<FIELD>`
        environment overrides (DESIGN.md: defaults < file < environment). Unknown keys are an
        error, so a typo never silently falls back to a default."""
        known = {f.name: f for f in fields(cls)}
        unknown = set(table) - set(known)
        if unknown:
            raise ValueError(f"unknown feed settings: {sorted(unknown)}")
        values = dict(table)
        prefix = f"SHMEX_FEED_{str(values.get('venue', '')).upper()}_"
        for key, text in (environ or {}).items():
            if not key.startswith(prefix):
                continue
            name = key[len(prefix) :].lower()
            if name not in known or name in ("venue", "instruments"):
                raise ValueError(f"{key}: not a feed setting")
            values[name] = _from_text(text, known[name].type)
        if "ticker_fields" in values and values["ticker_fields"] is not None:
            values["ticker_fields"] = tuple(values["ticker_fields"])
        return cls(**values)


def _from_text(text: str, kind: Any) -> Any:
    """An environment string as the field's type (lists are comma-separated)."""
    kind = str(kind)
    if kind.startswith("list") or kind.startswith("tuple"):
        return [part for part in text.split(",") if part]
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    return text
