"""Questions about the history, answered by polars over lazy scans of the Parquet tables.

`HistoryQuery(root)` registers every table of `storage.schemas` as a lazy scan (an empty frame
of the right schema when the table has no files yet), so SQL and the typed helpers read only the
columns and partitions they need. All values stay integers: prices in ticks, quantities in lots,
turnover and PnL in ticks × lots (times the tick value the caller gives).

A live recorder compacts files under a running query. The file list comes from
`storage.compaction.visible_files`, which never shows a merged file together with the sources
it supersedes, so each row is counted exactly once; a listed source that a finished merge
deleted before polars read it fails the attempt with `FileNotFoundError`, and the query is
listed and planned again.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar, cast

import polars as pl

from engine.enums import Side
from storage.compaction import visible_files
from storage.schemas import TABLES

log = logging.getLogger(__name__)

NS_PER_SECOND = 1_000_000_000
_PERIOD = re.compile(r"^(\d+)\s*(s|sec|m|min|h|hour|d|day)?$")
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "d": 86400}
HIVE_SCHEMA = {"date": pl.Date, "instrument": pl.Int32}
ATTEMPTS = 5
"""How many times a query is listed and planned again after a file vanished under it."""

_Args = ParamSpec("_Args")
_Result = TypeVar("_Result")


def period_seconds(period: int | str) -> int:
    """A bar period in seconds from 60, "60", "3s", "1min", "5m", "1h", "1d" or "day"."""
    if isinstance(period, int):
        seconds = period
    else:
        text = period.strip().lower()
        match = _PERIOD.match("1d" if text == "day" else text)
        if not match:
            raise ValueError(f"unknown period {period!r}")
        seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]
    if seconds <= 0:
        raise ValueError(f"period must be positive: {period!r}")
    return seconds


def _replanned(
    method: Callable[Concatenate[HistoryQuery, _Args], _Result],
) -> Callable[Concatenate[HistoryQuery, _Args], _Result]:
    """Run a query again, over a fresh listing, when a file it listed has been deleted since."""

    @functools.wraps(method)
    def run(self: HistoryQuery, *args: _Args.args, **kwargs: _Args.kwargs) -> _Result:
        for attempt in range(1, ATTEMPTS):
            try:
                return method(self, *args, **kwargs)
            except FileNotFoundError as exc:
                log.debug("%s: attempt %d lost a file (%s)", method.__name__, attempt, exc)
        return method(self, *args, **kwargs)

    return run


class HistoryQuery:
    """Read-only queries over `<root>/<table>/date=…/instrument=…/*.parquet`."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def scan(self, table: str) -> pl.LazyFrame:
        """A lazy scan of one table, with the partition columns `date` and `instrument`.

        The files are listed now: collect it soon, or a compaction may delete one of them first
        (`FileNotFoundError`; the other methods then list and plan again).
        """
        files = visible_files(self.root / table)
        if not files:
            empty = cast(pl.DataFrame, pl.from_arrow(TABLES[table].empty_table()))
            return empty.lazy().with_columns(
                pl.lit(None, pl.Date).alias("date"), pl.lit(None, pl.Int32).alias("instrument")
            )
        return pl.scan_parquet(files, hive_partitioning=True, hive_schema=HIVE_SCHEMA)

    @_replanned
    def sql(self, query: str) -> pl.DataFrame:
        """Run SQL over every table of `storage.schemas.TABLES`, each registered by its name."""
        context = pl.SQLContext(frames={name: self.scan(name) for name in TABLES})
        return context.execute(query, eager=False).collect()

    @_replanned
    def klines(
        self,
        instrument_id: int,
        period: int | str,
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> pl.DataFrame:
        """Bars rebuilt from trades, in UTC-aligned buckets `[k·p, (k+1)·p)` of `period`.

        Columns: ts_event (bucket start, ns), open, high, low, close, volume, turnover
        (Σ price × qty), trades. Only buckets with trades appear. `end_ns` is exclusive.
        """
        width = period_seconds(period) * NS_PER_SECOND
        trades = self._trades(instrument_id, start_ns, end_ns)
        return (
            trades.sort("ts_event", "trade_id")
            .with_columns(((pl.col("ts_event") // width) * width).alias("bucket"))
            .group_by("bucket", maintain_order=True)
            .agg(
                pl.col("price").first().alias("open"),
                pl.col("price").max().alias("high"),
                pl.col("price").min().alias("low"),
                pl.col("price").last().alias("close"),
                pl.col("qty").sum().alias("volume"),
                (pl.col("price") * pl.col("qty")).sum().alias("turnover"),
                pl.len().cast(pl.Int64).alias("trades"),
            )
            .rename({"bucket": "ts_event"})
            .sort("ts_event")
            .collect()
        )

    @_replanned
    def stored_klines(
        self, instrument_id: int, period: int | str, end_ns: int | None = None, count: int = 1000
    ) -> pl.DataFrame:
        """The last `count` finished bars the market-data process stored, before `end_ns`.

        For serving bars older than the in-memory history (`/api/klines`); ascending by time.
        """
        condition = (pl.col("instrument") == instrument_id) & (
            pl.col("period_s") == period_seconds(period)
        )
        if end_ns is not None:
            condition &= pl.col("ts_event") < end_ns
        return (
            self.scan("klines")
            .filter(condition)
            .drop("date", "instrument")
            .sort("ts_event")
            .tail(count)
            .collect()
        )

    @_replanned
    def last_seq(self, table: str) -> int:
        """The highest `seq` stored in `table` (0 if none): where a restarted recorder resumes."""
        found = self.scan(table).select(pl.col("seq").max()).collect().item()
        return 0 if found is None else int(found)

    @_replanned
    def account_trades(self, account_id: int) -> pl.DataFrame:
        """Every fill of one account, from its side: side, signed_qty (+buy/−sell), order_id.

        A trade between two orders of the same account appears twice, once per leg.
        """
        return self._account_fills(account_id).collect()

    @_replanned
    def equity_curve(
        self,
        account_id: int,
        period: int | str = "1min",
        tick_values: Mapping[int, int] | None = None,
    ) -> pl.DataFrame:
        """The account's trading PnL, marked at each bucket's last trade price.

        One row per bucket from the account's first fill to the last trade in its instruments:
        ts_event (bucket start), cash (−Σ signed qty × price), market_value (Σ position × last
        price) and pnl = cash + market_value, all multiplied by the instrument's tick value
        (money per tick per lot in fixed point; 1 when not given). Deposits and fees are the
        accounts process's business and are not in trades, so they are not in this curve.
        """
        width = period_seconds(period) * NS_PER_SECOND
        values = pl.DataFrame(
            {
                "instrument_id": list((tick_values or {}).keys()),
                "tick_value": list((tick_values or {}).values()),
            },
            schema={"instrument_id": pl.Int32, "tick_value": pl.Int64},
        ).lazy()
        fills = self._account_fills(account_id).with_columns(
            ((pl.col("ts_event") // width) * width).alias("bucket")
        )
        flows = fills.group_by("instrument_id", "bucket").agg(
            pl.col("signed_qty").sum().alias("position_change"),
            (-pl.col("signed_qty") * pl.col("price")).sum().alias("cash_change"),
        )
        instruments = fills.select("instrument_id").unique()
        marks = (
            self.scan("trades")
            .join(instruments, on="instrument_id", how="semi")
            .sort("ts_event", "trade_id")
            .with_columns(((pl.col("ts_event") // width) * width).alias("bucket"))
            .group_by("instrument_id", "bucket")
            .agg(pl.col("price").last().alias("mark"))
        )
        first = fills.select(pl.col("bucket").min()).collect().item()
        last = marks.select(pl.col("bucket").max()).collect().item()
        if first is None or last is None:
            return _empty_curve()
        buckets = pl.int_range(first, last + width, width, dtype=pl.Int64, eager=True)
        grid = instruments.join(pl.LazyFrame({"bucket": buckets}), how="cross")
        per_instrument = (
            grid.join(flows, on=["instrument_id", "bucket"], how="left")
            .join(marks, on=["instrument_id", "bucket"], how="left")
            .join(values, on="instrument_id", how="left")
            .sort("instrument_id", "bucket")
            .with_columns(
                pl.col("position_change").fill_null(0).cum_sum().over("instrument_id"),
                pl.col("cash_change").fill_null(0).cum_sum().over("instrument_id"),
                pl.col("mark").forward_fill().over("instrument_id").fill_null(0),
                pl.col("tick_value").fill_null(1),
            )
        )
        return (
            per_instrument.group_by("bucket")
            .agg(
                (pl.col("cash_change") * pl.col("tick_value")).sum().alias("cash"),
                (pl.col("position_change") * pl.col("mark") * pl.col("tick_value"))
                .sum()
                .alias("market_value"),
            )
            .with_columns((pl.col("cash") + pl.col("market_value")).alias("pnl"))
            .rename({"bucket": "ts_event"})
            .sort("ts_event")
            .collect()
        )

    def _trades(self, instrument_id: int, start_ns: int | None, end_ns: int | None) -> pl.LazyFrame:
        condition = pl.col("instrument") == instrument_id
        if start_ns is not None:
            condition &= pl.col("ts_event") >= start_ns
        if end_ns is not None:
            condition &= pl.col("ts_event") < end_ns
        return self.scan("trades").filter(condition)

    def _account_fills(self, account_id: int) -> pl.LazyFrame:
        trades = self.scan("trades")
        columns = ["ts_event", "trade_id", "instrument_id", "price", "qty", "aggressor_side"]
        legs = []
        for side, prefix, sign in ((Side.BUY, "buy", 1), (Side.SELL, "sell", -1)):
            legs.append(
                trades.filter(pl.col(f"{prefix}_account_id") == account_id).select(
                    *columns,
                    pl.lit(int(side), pl.Int8).alias("side"),
                    pl.col(f"{prefix}_order_id").alias("order_id"),
                    (pl.col("qty") * sign).alias("signed_qty"),
                )
            )
        return pl.concat(legs).sort("ts_event", "trade_id", "side")


def _empty_curve() -> pl.DataFrame:
    return pl.DataFrame(
        schema={"ts_event": pl.Int64, "cash": pl.Int64, "market_value": pl.Int64, "pnl": pl.Int64}
    )
