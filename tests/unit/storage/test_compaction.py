"""Compaction keeps every row, a query counts each row exactly once between any two steps of a
merge and of the sweep that deletes its sources, and a crash after any step is finished or
undone by the next `compact`."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
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
    sweep,
    visible_files,
)
from storage.history import HistoryConfig
from storage.query import HistoryQuery
from tests.unit.storage.test_history import DAY0, make_trades, write_in_batches

FILES = 6
ROWS = 50
STEPS = [Step.INTENT, Step.WRITTEN, Step.PLACED, Step.DONE] + [Step.DELETED] * FILES
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
    assert scanned_rows(query) == len(order)


def scanned_rows(query: HistoryQuery, attempts: int = 5) -> int:
    """Rows of a raw `scan`, listed again when a compaction deleted a listed file before
    polars read it (scan's documented contract; the other query methods replan themselves)."""
    for _attempt in range(attempts - 1):
        try:
            return query.scan("trades").select(pl.len()).collect().item()
        except FileNotFoundError:
            continue
    return query.scan("trades").select(pl.len()).collect().item()


def hidden_files(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir() if path.name.startswith("."))


def test_compaction_keeps_every_row(tmp_path: Path) -> None:
    trades = make_trades(2000)
    write_in_batches(tmp_path, trades, 100, HistoryConfig(max_rows=100))
    before = len(list(tmp_path.rglob("*.parquet")))
    result = compact(tmp_path, "trades", CompactionConfig(min_files=4))
    assert result.files_in > result.files_out
    assert result.rows == 2000
    after = visible_files(tmp_path / "trades")
    assert len(after) == before - result.files_in + result.files_out
    assert len(after) == 6  # one file per (date, instrument)
    assert len(list(tmp_path.rglob("*.parquet"))) == before + result.files_out  # swept later
    frame = HistoryQuery(tmp_path).scan("trades").sort("trade_id").collect()
    assert frame["trade_id"].to_list() == trades["trade_id"].tolist()
    assert frame["qty"].to_list() == trades["qty"].tolist()
    for path in after:
        ts = pq.read_table(path).column("ts_event").to_numpy()
        assert (np.diff(ts) >= 0).all()  # compacted files are sorted by time
    assert compact(tmp_path, "trades").files_in == 0  # nothing small left to merge
    assert sorted(tmp_path.rglob("*.parquet")) == after  # the sources are swept


def merge_then_sweep(table: str, sources: list[Path]) -> Iterator[Step]:
    """Every step of one merge, then of the sweep that deletes its sources."""
    return itertools.chain(Merge(table, sources, HistoryConfig()).steps(), sweep(sources[0].parent))


def test_a_query_between_any_two_steps_counts_every_row_once(tmp_path: Path) -> None:
    directory, trades = one_partition(tmp_path)
    sources = list_partition(directory).visible
    assert len(sources) == FILES
    output = directory / f"{sources[0].stem}-c{FILES}.parquet"
    taken = []
    for step in merge_then_sweep("trades", sources):
        taken.append(step)
        assert_each_row_once(tmp_path, trades)
        if step is Step.PLACED:  # the instant that used to count the merged rows twice
            assert output.exists() and all(path.exists() for path in sources)
            assert list_partition(directory).superseded == {output: sources}
    assert taken == STEPS
    assert sorted(directory.iterdir()) == [output]


def test_merging_a_merged_file_before_its_sources_are_swept(tmp_path: Path) -> None:
    directory, first = one_partition(tmp_path)
    first_sources = list_partition(directory).visible
    Merge("trades", first_sources, HistoryConfig()).run()
    _, second = one_partition(tmp_path, seed=8, first_trade=10_000)
    trades = {name: np.concatenate([first[name], second[name]]) for name in first}
    sources = list_partition(directory).visible
    assert len(sources) == FILES + 1 and "-c" in sources[0].name
    output = directory / f"{sources[0].stem}-c{FILES + 1}.parquet"
    for step in merge_then_sweep("trades", sources):
        assert_each_row_once(tmp_path, trades)
        if step is Step.PLACED:  # output hides the first merge, which hides its own sources
            assert list_partition(directory).superseded == {
                sources[0]: first_sources,
                output: sources,
            }
    assert sorted(directory.iterdir()) == [output]


@pytest.mark.parametrize("crash_after", range(len(STEPS)), ids=[s.value for s in STEPS])
def test_a_crash_after_any_step_is_recovered(tmp_path: Path, crash_after: int) -> None:
    directory, trades = one_partition(tmp_path)
    sources = list_partition(directory).visible
    output = directory / f"{sources[0].stem}-c{FILES}.parquet"
    steps = merge_then_sweep("trades", sources)
    for _ in range(crash_after + 1):
        next(steps)
    # a SIGKILL: whatever comes after this step never runs
    assert_each_row_once(tmp_path, trades)
    placed = crash_after >= STEPS.index(Step.PLACED)
    expected_hidden = [INTENT] if crash_after < STEPS.index(Step.DONE) else []
    if STEPS[crash_after] in (Step.WRITTEN, Step.PLACED):
        expected_hidden += _temps(directory)
        assert _temps(directory)
    assert hidden_files(directory) == sorted(expected_hidden)

    assert compact(tmp_path, "trades", RECOVER_ONLY).files_in == 0
    assert hidden_files(directory) == []
    assert list_partition(directory).superseded == {}
    assert list_partition(directory).visible == ([output] if placed else sources)
    assert sorted(directory.iterdir()) == list_partition(directory).visible
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
    """Merges and sweeps just after the first listing of `trades`, before polars reads it."""

    def __init__(self, root: Path, sources: list[Path]) -> None:
        super().__init__(root)
        self.sources = sources
        self.listings = 0

    def scan(self, table: str) -> pl.LazyFrame:
        frame = super().scan(table)
        if table == "trades":
            self.listings += 1
            if self.listings == 1:
                for _ in merge_then_sweep(table, self.sources):
                    pass
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
    query = MergingQuery(tmp_path, list_partition(directory).visible)
    assert QUERIES[name](query) == expected
    assert query.listings == 2
    assert len(list_partition(directory).visible) == 1


def test_a_scan_listed_before_a_merge_reads_its_sources_until_the_sweep(tmp_path: Path) -> None:
    directory, trades = one_partition(tmp_path)
    query = HistoryQuery(tmp_path)
    before_merge = query.scan("trades")
    Merge("trades", list_partition(directory).visible, HistoryConfig()).run()
    assert before_merge.collect().height == len(trades["trade_id"])
    before_sweep = query.scan("trades")
    for _ in sweep(directory):
        pass
    assert before_sweep.collect().height == len(trades["trade_id"])
    with pytest.raises(FileNotFoundError):  # listed a source the sweep deleted: never a miscount
        before_merge.collect()


def test_queries_during_live_compaction_count_every_row_once(tmp_path: Path) -> None:
    """A thread compacts round after round (pairs, then pairs of pairs...) while queries run."""
    trades = make_trades(16 * 3 * ROWS, seed=3)
    write_in_batches(tmp_path, trades, 3 * ROWS, HistoryConfig(max_rows=3 * ROWS))
    size = max(path.stat().st_size for path in tmp_path.rglob("*.parquet"))
    rounds = [CompactionConfig(2**40, int(size * 2.5 * 2**r), min_files=2) for r in range(5)]
    done = threading.Event()
    failures: list[BaseException] = []

    def compact_rounds() -> None:
        try:
            for config in rounds:
                compact(tmp_path, "trades", config)
        except BaseException as exc:
            failures.append(exc)
        finally:
            done.set()

    worker = threading.Thread(target=compact_rounds)
    worker.start()
    queries = 0
    try:
        while not done.is_set() or queries == 0:
            assert_each_row_once(tmp_path, trades)
            queries += 1
    finally:
        worker.join(timeout=60)
    assert not worker.is_alive() and failures == []
    assert len(visible_files(tmp_path / "trades")) == 6  # one file per partition in the end
    assert_each_row_once(tmp_path, trades)
