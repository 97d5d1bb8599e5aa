"""Rows for the `external_*` history tables from the feeds process's market-data messages.

The recorder subscribes to the feeds PUB (gateway/feeds/publish.py bodies): every `tick` is
one external trade, every finished `kline.<s>` bar one K-line. External instruments have no
index in the local registry, so their `instrument_id` is a stable hash of the id, negative so
that it never meets a local index; the id itself is kept in `external_id`.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

from engine.enums import Side
from ipc.pubsub import parse_topic
from storage.schemas import TABLES

log = logging.getLogger(__name__)

Columns = dict[str, list[Any]]

_SIDES = {"BUY": int(Side.BUY), "SELL": int(Side.SELL)}


def external_instrument_id(external_id: str) -> int:
    """A stable int32 in [−2**31, −1] for an external id (CRC-32 of its UTF-8 bytes)."""
    return -(zlib.crc32(external_id.encode()) & 0x7FFFFFFF) - 1


class ExternalRows:
    """Accumulates rows from (topic, body) pairs; `take()` hands them over per table. Ticks
    and bars carry their instrument's `price_tick` and `lot_size` (publish.py)."""

    def __init__(self) -> None:
        self._trades: Columns = _empty("external_trades")
        self._klines: Columns = _empty("external_klines")
        self.skipped = 0
        self.malformed = 0

    def add(self, messages: Iterable[tuple[str, Any]]) -> None:
        """Quotes, books and open bars are skipped; malformed bodies are counted and logged."""
        for topic, body in messages:
            try:
                kind = parse_topic(topic)[1]
                if kind == "tick":
                    self._trade(body)
                    continue
                if kind == "kline" and body.get("finished") is True:
                    self._kline(body)
                    continue
            except (ValueError, KeyError, TypeError, AttributeError):
                self.malformed += 1
                log.warning("external history: malformed %s message", topic)
                continue
            self.skipped += 1

    def _row(self, columns: Columns, body: Mapping[str, Any], values: dict[str, int]) -> None:
        """Append one row (all values read first, so a bad body appends nothing)."""
        name = str(body["instrument"])
        tick, lot = str(body["price_tick"]), str(body["lot_size"])
        columns["instrument_id"].append(external_instrument_id(name))
        columns["external_id"].append(name)
        columns["price_tick"].append(tick)
        columns["lot_size"].append(lot)
        for column, value in values.items():
            columns[column].append(value)

    def _trade(self, body: Mapping[str, Any]) -> None:
        values = {
            "ts_event": int(body["ts"]),
            "ts_recv": int(body.get("ts_recv", body["ts"])),
            "trade_id": int(body["trade_id"]),
            "price": int(body["price_ticks"]),
            "qty": int(body["qty"]),
            "aggressor_side": _SIDES.get(body.get("side", ""), int(Side.NONE)),
            "quality": int(body.get("quality", 0)),
        }
        self._row(self._trades, body, values)

    def _kline(self, body: Mapping[str, Any]) -> None:
        values = {
            "ts_event": int(body["datetime"]),
            "period_s": int(body["period"]),
            **{name: int(body[f"{name}_ticks"]) for name in ("open", "high", "low", "close")},
            "volume": int(body["volume"]),
            "turnover": int(body["turnover_ticks_lots"]),
        }
        self._row(self._klines, body, values)

    def pending(self) -> int:
        return len(self._trades["ts_event"]) + len(self._klines["ts_event"])

    def take(self) -> dict[str, Columns]:
        """The rows since the last call, by table; tables without rows are left out."""
        out = {"external_trades": self._trades, "external_klines": self._klines}
        self._trades = _empty("external_trades")
        self._klines = _empty("external_klines")
        return {table: columns for table, columns in out.items() if columns["ts_event"]}


def _empty(table: str) -> Columns:
    return {name: [] for name in TABLES[table].names}
