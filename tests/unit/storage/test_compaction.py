"""Compaction keeps every row, a query counts each row exactly once between any two steps of a
merge, and a crash after any step is finished or undone by the next `compact`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from storage.compaction import (
    INTENT,
    CompactionConfig,
    Merge,
    Step,
    compact,
    list_partition,
    partitions,
)
from storage.history import HistoryConfig
from storage.query import HistoryQuery
from tests.unit.storage.test_history import DAY0, make_trades, write_in_batches

FILES = 6
ROWS = 50
STEPS = [Step.INTENT, Step.WRITTEN, Step.PLACED] + [Step.DELETED] * FILES + [Step.DONE]
RECOVER_ONLY = CompactionConfig(min_files=10**6)


def one_partition(root: Path, seed: int = 7, first_trade: int = 1) -> tuple[Path, dict]:
    """FILES files of ROWS trades each, all in one (date, instrument) partition."""
    trades = make_trades(FILES * ROWS, seed=seed, start_ns=DAY0 + (seed - 7) * 10**13)
    trades["instrument_id"][:] = 1
    trades["trade_id"] += first_trade - 1
    write_in_batches(root, trades, ROWS, HistoryConfig(max_rows=ROWS))
    (directory,) = partitions(root / "trades")
    return directory, trades


def assert_each_row_once(root: Path, trades: dict) -> None:
    query = HistoryQuery(root)
    stored = query.sql("SELECT trade_id, qty FROM trades ORDER BY trade_id")
    order = np.argsort(trades["trade_id"])
    assert stored["trade_id"].to_list() == trades["trade_id"][order].tolist()
    assert stored["qty"].to_list() == trades["qty"][order].tolist()
    assert query.scan("trades").select(pl.len()).collect().item() == len(order)


def hidden_files(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir() if path.name.startswith("."))


def test_compaction_keeps_every_row(tmp_path: Path) -> None:
    trades = make_trades(2000)
    write_in_batches(tmp_path, trades, 100, HistoryConfig(max_rows=100))
    before = len(list(tmp_path.rglob("*.parquet")))
    result = compact(tmp_path, "trades", CompactionConfig(min_files=4))
    after = sorted(tmp_path.rglob("*.parquet"))
    assert result.files_in > result.files_out
    assert len(after) == before - result.files_in + result.files_out
    assert len(after) == 6  # one file per (date, instrument)
    assert result.rows == 2000
    frame = HistoryQuery(tmp_path).scan("trades").sort("trade_id").collect()
    assert frame["trade_id"].to_list() == trades["trade_id"].tolist()
    assert frame["qty"].to_list() == trades["qty"].tolist()
    for path in after:
        ts = pq.read_table(path).column("ts_event").to_numpy()
        assert (np.diff(ts) >= 0).all()  # compacted files are sorted by time
    assert compact(tmp_path, "trades").files_in == 0  # nothing small left to merge


def test_a_query_between_any_two_steps_counts_every_row_once(tmp_path: Path) -> None:
    directory, trades = one_partition(tmp_path)
    sources = list_partition(directory).visible
    assert len(sources) == FILES
    output = directory / f"{sources[0].stem}-c{FILES}.parquet"
    taken = []
    for step in Merge("trades", sources, HistoryConfig()).steps():
        taken.append(step)
        assert_each_row_once(tmp_path, trades)
        if step is Step.PLACED:  # the instant that used to count the merged rows twice
            assert output.exists() and all(path.exists() for path in sources)
            assert list_partition(directory).superseded == sources
    assert taken == STEPS
    assert list_partition(directory).visible == [output]
    assert hidden_files(directory) == []


def test_merging_a_merged_file_again_counts_every_row_once(tmp_path: Path) -> None:
    directory, first = one_partition(tmp_path)
    compact(tmp_path, "trades", CompactionConfig(min_files=2))
    _, second = one_partition(tmp_path, seed=8, first_trade=10_000)
    trades = {name: np.concatenate([first[name], second[name]]) for name in first}
    sources = list_partition(directory).visible
    assert len(sources) == FILES + 1 and "-c" in sources[0].name
    for step in Merge("trades", sources, HistoryConfig()).steps():
        assert_each_row_once(tmp_path, trades)
        if step is Step.PLACED:
            assert list_partition(directory).superseded == sources
    (merged,) = list_partition(directory).visible
    assert merged.name == f"{sources[0].stem}-c{FILES + 1}.parquet"


@pytest.mark.parametrize("crash_after", range(len(STEPS)), ids=[s.value for s in STEPS])
def test_a_crash_after_any_step_is_recovered(tmp_path: Path, crash_after: int) -> None:
    directory, trades = one_partition(tmp_path)
    sources = list_partition(directory).visible
    output = directory / f"{sources[0].stem}-c{FILES}.parquet"
    steps = Merge("trades", sources, HistoryConfig()).steps()
    for _ in range(crash_after + 1):
        next(steps)
    steps.close()  # stops at the yield: no cleanup runs, as after a SIGKILL
    assert_each_row_once(tmp_path, trades)
    assert (directory / INTENT).exists() == (crash_after < len(STEPS) - 1)
    placed = crash_after >= STEPS.index(Step.PLACED)
    if STEPS[crash_after] in (Step.WRITTEN, Step.PLACED):
        assert hidden_files(directory) == sorted([INTENT, *_temps(directory)])
        assert _temps(directory)

    assert compact(tmp_path, "trades", RECOVER_ONLY).files_in == 0
    assert hidden_files(directory) == []
    assert list_partition(directory).superseded == []
    assert list_partition(directory).visible == ([output] if placed else sources)
    assert_each_row_once(tmp_path, trades)

    compact(tmp_path, "trades", CompactionConfig(min_files=2))
    assert len(list_partition(directory).visible) == 1
    assert_each_row_once(tmp_path, trades)


def _temps(directory: Path) -> list[str]:
    return [path.name for path in directory.glob(".*.parquet.tmp-*")]


def test_an_unreadable_intent_is_discarded(tmp_path: Path) -> None:
    directory, trades = one_partition(tmp_path)
    (directory / INTENT).write_bytes(b'{"output": "part-')  # torn while being written
    assert compact(tmp_path, "trades", CompactionConfig(min_files=2)).files_in == FILES
    assert hidden_files(directory) == []
    assert_each_row_once(tmp_path, trades)


class MergingQuery(HistoryQuery):
    """Finishes a merge just after the first listing of `trades`, before polars reads it."""

    def __init__(self, root: Path, merge: Merge) -> None:
        super().__init__(root)
        self.merge = merge
        self.listings = 0

    def scan(self, table: str) -> pl.LazyFrame:
        frame = super().scan(table)
        if table == "trades":
            self.listings += 1
            if self.listings == 1:
                self.merge.run()
        return frame


QUERIES: dict[str, Callable[[HistoryQuery], object]] = {
    "sql": lambda query: query.sql("SELECT COUNT(*) AS n, SUM(qty) AS volume FROM trades").row(0),
    "last_seq": lambda query: query.last_seq("trades"),
    "klines": lambda query: query.klines(1, "1min").rows(),
    "account_trades": lambda query: query.account_trades(3).rows(),
}


@pytest.mark.parametrize("name", QUERIES)
def test_a_query_whose_files_vanish_is_listed_and_planned_again(tmp_path: Path, name: str) -> None:
    directory, _ = one_partition(tmp_path)
    expected = QUERIES[name](HistoryQuery(tmp_path))
    query = MergingQuery(
        tmp_path, Merge("trades", list_partition(directory).visible, HistoryConfig())
    )
    assert QUERIES[name](query) == expected
    assert query.listings == 2
    assert len(list_partition(directory).visible) == 1


def test_a_scan_listed_before_a_merge_finished_fails_rather_than_miscounts(
    tmp_path: Path,
) -> None:
    directory, _ = one_partition(tmp_path)
    frame = HistoryQuery(tmp_path).scan("trades")
    Merge("trades", list_partition(directory).visible, HistoryConfig()).run()
    with pytest.raises(FileNotFoundError):
        frame.collect()
