"""History: written rows equal what was appended and queries are right (compaction:
test_compaction.py)."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from engine.enums import Side
from storage import query_cli
from storage.history import NS_PER_DAY, HistoryConfig, HistoryWriter
from storage.query import HistoryQuery, period_seconds
from storage.schemas import TABLES

ROOT = Path(__file__).resolve().parents[3]
DAY0 = 20_000 * NS_PER_DAY  # 2024-10-04 00:00 UTC
SECOND = 1_000_000_000


def make_trades(count: int, seed: int = 7, start_ns: int = DAY0 - 3600 * SECOND) -> dict:
    """Trades over ~2 hours across midnight for 3 instruments and 6 accounts."""
    rng = np.random.default_rng(seed)
    ts = start_ns + np.sort(rng.integers(0, 7200 * SECOND, count))
    buyer = rng.integers(1, 7, count)
    return {
        "ts_event": ts,
        "seq": np.arange(1, count + 1),
        "instrument_id": rng.integers(1, 4, count).astype(np.int32),
        "trade_id": np.arange(1, count + 1),
        "price": rng.integers(3800, 3900, count),
        "qty": rng.integers(1, 50, count),
        "aggressor_side": rng.integers(1, 3, count).astype(np.int8),
        "buy_order_id": rng.integers(1, 10**6, count),
        "sell_order_id": rng.integers(1, 10**6, count),
        "buy_account_id": buyer,
        "sell_account_id": (buyer + rng.integers(1, 6, count)) % 6 + 1,
    }


def take(columns: dict, index: slice | np.ndarray) -> dict:
    return {name: values[index] for name, values in columns.items()}


def stats(columns: dict) -> dict[int, tuple[int, int, int]]:
    """(count, volume, Σ price·qty) per instrument, computed with plain Python."""
    out: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    for inst, price, qty in zip(
        columns["instrument_id"].tolist(),
        columns["price"].tolist(),
        columns["qty"].tolist(),
        strict=True,
    ):
        row = out[inst]
        row[0] += 1
        row[1] += qty
        row[2] += price * qty
    return {k: tuple(v) for k, v in out.items()}


def write_in_batches(root: Path, columns: dict, batch: int, config: HistoryConfig) -> None:
    writer = HistoryWriter(root, config)
    total = len(columns["ts_event"])
    for start in range(0, total, batch):
        part = take(columns, slice(start, start + batch))
        writer.append("trades", part, now_ns=int(part["ts_event"][-1]))
    writer.flush()


def test_written_rows_equal_appended(tmp_path: Path) -> None:
    trades = make_trades(5000)
    write_in_batches(tmp_path, trades, 97, HistoryConfig(max_rows=1000, max_age_ns=600 * SECOND))
    query = HistoryQuery(tmp_path)
    got = query.sql(
        "SELECT instrument_id, COUNT(*) AS n, SUM(qty) AS volume, SUM(price * qty) AS turnover "
        "FROM trades GROUP BY instrument_id ORDER BY instrument_id"
    )
    expected = stats(trades)
    assert {row[0]: tuple(row[1:]) for row in got.iter_rows()} == expected
    vwap = query.sql(
        "SELECT instrument_id, SUM(price * qty) / SUM(qty) AS vwap FROM trades "
        "GROUP BY instrument_id"
    )
    for inst, value in vwap.iter_rows():
        assert value == pytest.approx(expected[inst][2] / expected[inst][1])
    full = query.scan("trades").sort("seq").collect()
    assert full["trade_id"].to_list() == trades["trade_id"].tolist()
    assert full["price"].to_list() == trades["price"].tolist()


def test_partition_layout_by_utc_date_and_instrument(tmp_path: Path) -> None:
    trades = make_trades(600)
    write_in_batches(tmp_path, trades, 600, HistoryConfig())
    directories = {p.parent.relative_to(tmp_path) for p in tmp_path.rglob("*.parquet")}
    days = {"2024-10-03", "2024-10-04"}
    assert directories == {
        Path("trades") / f"date={day}" / f"instrument={inst}" for day in days for inst in (1, 2, 3)
    }
    for path in tmp_path.rglob("*.parquet"):
        table = pq.read_table(path)
        assert table.schema.equals(TABLES["trades"])
        day = path.parent.parent.name.removeprefix("date=")
        dates = {
            (dt.date(1970, 1, 1) + dt.timedelta(days=ts // NS_PER_DAY)).isoformat()
            for ts in table.column("ts_event").to_pylist()
        }
        assert dates == {day}
        assert set(table.column("instrument_id").to_pylist()) == {
            int(path.parent.name.removeprefix("instrument="))
        }


def test_buffer_flushes_by_rows_and_by_time(tmp_path: Path) -> None:
    writer = HistoryWriter(tmp_path, HistoryConfig(max_rows=100, max_age_ns=5 * SECOND))
    trades = make_trades(250, start_ns=DAY0)
    one_instrument = {**trades, "instrument_id": np.full(250, 1, np.int32)}
    assert writer.append("trades", take(one_instrument, slice(0, 60)), now_ns=DAY0) == []
    assert writer.buffered_rows("trades") == 60
    assert writer.append("trades", take(one_instrument, slice(60, 90)), now_ns=DAY0 + SECOND) == []
    assert writer.poll(DAY0 + 4 * SECOND) == []
    assert len(writer.poll(DAY0 + 5 * SECOND)) == 1  # the oldest row has waited 5 s
    assert writer.buffered_rows("trades") == 0
    files = writer.append("trades", take(one_instrument, slice(90, 250)), now_ns=DAY0 + 6 * SECOND)
    assert len(files) == 1  # 160 rows ≥ max_rows
    assert HistoryQuery(tmp_path).scan("trades").collect().height == 250


def test_failed_flush_keeps_unwritten_partitions_and_never_duplicates(tmp_path: Path) -> None:
    trades = make_trades(900)
    writer = HistoryWriter(tmp_path, HistoryConfig(max_rows=10**6, max_age_ns=10**18))
    writer.append("trades", trades, now_ns=DAY0)
    blocker = tmp_path / "trades" / "date=2024-10-03" / "instrument=2"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the partition directory should be")
    with pytest.raises(OSError):
        writer.flush()
    written = list(tmp_path.rglob("*.parquet"))
    assert len(written) == 1  # (2024-10-03, instrument 1) went out before the failure
    assert 0 < writer.buffered_rows("trades") < 900
    assert not list(tmp_path.rglob(".*.tmp-*"))
    blocker.unlink()
    writer.flush()
    assert writer.buffered_rows("trades") == 0
    frame = HistoryQuery(tmp_path).scan("trades").sort("trade_id").collect()
    assert frame["trade_id"].to_list() == trades["trade_id"].tolist()


def test_other_tables_accept_numpy_records(tmp_path: Path) -> None:
    dtype = np.dtype(
        [
            (name, f"<i{TABLES['klines'].field(name).type.bit_width // 8}")
            for name in TABLES["klines"].names
        ]
    )
    bars = np.zeros(3, dtype)
    bars["ts_event"] = DAY0 + np.arange(3) * 60 * SECOND
    bars["instrument_id"] = 2
    bars["period_s"] = 60
    bars["open"], bars["close"], bars["volume"] = 3800 + np.arange(3), 3820 + np.arange(3), 100
    writer = HistoryWriter(tmp_path)
    writer.append("klines", bars, now_ns=DAY0)
    writer.flush()
    got = HistoryQuery(tmp_path).sql(
        "SELECT open, close FROM klines WHERE period_s = 60 ORDER BY ts_event"
    )
    assert got.rows() == [(3800, 3820), (3801, 3821), (3802, 3822)]
    with pytest.raises(ValueError, match="missing columns"):
        writer.append("ticks", {"ts_event": [1]}, now_ns=DAY0)


def test_stored_klines_page_backwards(tmp_path: Path) -> None:
    names = TABLES["klines"].names
    bars = {name: np.zeros(30, np.int64) for name in names}
    bars["ts_event"] = DAY0 + np.arange(30) * 60 * SECOND
    bars["instrument_id"] = np.full(30, 4)
    bars["period_s"] = np.full(30, 60)
    bars["close"] = np.arange(30)
    other = {**bars, "period_s": np.full(30, 300)}
    writer = HistoryWriter(tmp_path)
    writer.append("klines", bars, now_ns=DAY0)
    writer.append("klines", other, now_ns=DAY0)
    writer.flush()
    query = HistoryQuery(tmp_path)
    latest = query.stored_klines(4, "1min", count=10)
    assert latest["close"].to_list() == list(range(20, 30))
    older = query.stored_klines(4, 60, end_ns=int(latest["ts_event"][0]), count=10)
    assert older["close"].to_list() == list(range(10, 20))
    assert query.stored_klines(5, "1min").is_empty()


def test_last_seq(tmp_path: Path) -> None:
    assert HistoryQuery(tmp_path).last_seq("trades") == 0
    write_in_batches(tmp_path, make_trades(300), 100, HistoryConfig())
    assert HistoryQuery(tmp_path).last_seq("trades") == 300


def reference_bars(trades: dict, instrument: int, seconds: int) -> list[tuple[int, ...]]:
    """Bars computed the slow, obvious way, to check the polars version against."""
    order = np.lexsort((trades["trade_id"], trades["ts_event"]))
    bars: dict[int, list[int]] = {}
    for i in order.tolist():
        if trades["instrument_id"][i] != instrument:
            continue
        ts, price, qty = int(trades["ts_event"][i]), int(trades["price"][i]), int(trades["qty"][i])
        start = ts - ts % (seconds * SECOND)
        bar = bars.get(start)
        if bar is None:
            bars[start] = [start, price, price, price, price, qty, price * qty, 1]
        else:
            bar[2], bar[3], bar[4] = max(bar[2], price), min(bar[3], price), price
            bar[5] += qty
            bar[6] += price * qty
            bar[7] += 1
    return [tuple(bars[k]) for k in sorted(bars)]


@pytest.mark.parametrize("period", ["3s", "1min", "5min", "15min", "1h", "day", 7])
def test_klines_from_trades_equal_a_simple_computation(tmp_path: Path, period: str | int) -> None:
    trades = make_trades(3000, seed=11)
    write_in_batches(tmp_path, trades, 500, HistoryConfig(max_rows=500))
    query = HistoryQuery(tmp_path)
    for instrument in (1, 2, 3):
        bars = query.klines(instrument, period)
        assert bars.columns == [
            "ts_event",
            "open",
            "high",
            "low",
            "close",
            "volume",
            "turnover",
            "trades",
        ]
        assert bars.rows() == reference_bars(trades, instrument, period_seconds(period))


def test_klines_time_window(tmp_path: Path) -> None:
    trades = make_trades(1000)
    write_in_batches(tmp_path, trades, 1000, HistoryConfig())
    bars = HistoryQuery(tmp_path).klines(2, "1min", start_ns=DAY0, end_ns=DAY0 + 600 * SECOND)
    assert bars["ts_event"].min() >= DAY0
    assert bars["ts_event"].max() < DAY0 + 600 * SECOND
    assert 0 < bars.height <= 10


def test_period_parsing() -> None:
    assert [period_seconds(p) for p in ("3s", "1min", "5m", "60", "1h", "1d", "day", 15)] == [
        3,
        60,
        300,
        60,
        3600,
        86400,
        86400,
        15,
    ]
    for bad in ("1 fortnight", "0s", -5):
        with pytest.raises(ValueError):
            period_seconds(bad)


def test_account_trades_and_equity_curve(tmp_path: Path) -> None:
    ts = DAY0 + np.array([10, 20, 70, 80, 130]) * SECOND
    trades = {
        "ts_event": ts,
        "seq": np.arange(1, 6),
        "instrument_id": np.array([1, 1, 1, 2, 1], np.int32),
        "trade_id": np.arange(1, 6),
        "price": np.array([100, 102, 105, 50, 101]),
        "qty": np.array([2, 3, 1, 4, 5]),
        "aggressor_side": np.full(5, int(Side.BUY), np.int8),
        "buy_order_id": np.array([11, 12, 13, 14, 15]),
        "sell_order_id": np.array([21, 22, 23, 24, 25]),
        "buy_account_id": np.array([1, 2, 2, 1, 3]),
        "sell_account_id": np.array([2, 1, 3, 3, 1]),
    }
    write_in_batches(tmp_path, trades, 5, HistoryConfig())
    query = HistoryQuery(tmp_path)
    mine = query.account_trades(1)
    assert mine["trade_id"].to_list() == [1, 2, 4, 5]
    assert mine["side"].to_list() == [Side.BUY, Side.SELL, Side.BUY, Side.SELL]
    assert mine["signed_qty"].to_list() == [2, -3, 4, -5]
    assert mine["order_id"].to_list() == [11, 22, 14, 25]
    curve = query.equity_curve(1, "1min", tick_values={1: 10})
    # minute 0: bought 2@100, sold 3@102, position -1 in inst 1 marked at 102:
    #   cash = (-200 + 306) * 10 = 1060, value = -1 * 102 * 10 = -1020
    # minute 1: inst 1 marked 105; bought 4@50 in inst 2 (tick value 1), marked 50
    # minute 2: sold 5@101 in inst 1: position -6 marked at 101
    assert curve.rows() == [
        (DAY0, 1060, -1020, 40),
        (DAY0 + 60 * SECOND, 1060 - 200, -1050 + 200, 10),
        (DAY0 + 120 * SECOND, 1060 + 5050 - 200, -6060 + 200, 50),
    ]
    assert query.equity_curve(99).is_empty()


def test_empty_history(tmp_path: Path) -> None:
    query = HistoryQuery(tmp_path)
    assert query.sql("SELECT COUNT(*) AS n FROM trades").item() == 0
    assert query.klines(1, "1min").is_empty()
    assert query.account_trades(1).is_empty()


SQL_COUNTS = "SELECT instrument_id, COUNT(*) AS n FROM trades GROUP BY instrument_id ORDER BY 1"


def test_bin_query_prints_a_table(tmp_path: Path) -> None:
    """The real wrapper script, in a subprocess, finding the history under --home."""
    home = tmp_path / "home"
    write_in_batches(home / "history", make_trades(300), 300, HistoryConfig())
    table = subprocess.run(
        [str(ROOT / "bin" / "query"), "--home", str(home), SQL_COUNTS],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "instrument_id" in table.stdout
    expected = stats(make_trades(300))
    numbers = [re.findall(r"\d+", line) for line in table.stdout.splitlines()]
    for inst in sorted(expected):
        assert [str(inst), str(expected[inst][0])] in numbers


def test_query_cli_json_csv_errors_and_home_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "var" / "shmex_q"
    write_in_batches(home / "history", make_trades(300), 300, HistoryConfig())
    expected = stats(make_trades(300))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SHMEX_HOME", raising=False)
    assert query_cli.main(["--prefix", "shmex_q", "--json", SQL_COUNTS]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"instrument_id": i, "n": expected[i][0]} for i in sorted(expected)
    ]
    monkeypatch.setenv("SHMEX_HOME", str(home))
    assert query_cli.main(["--csv", SQL_COUNTS]) == 0
    assert capsys.readouterr().out.splitlines() == ["instrument_id,n"] + [
        f"{i},{expected[i][0]}" for i in sorted(expected)
    ]
    assert query_cli.main(["SELECT nope FROM trades"]) == 1
    assert "nope" in capsys.readouterr().err
