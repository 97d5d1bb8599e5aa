"""Compaction: merge a partition's small Parquet files into larger ones without losing a row.

Many small files (one per flush) make scans slow. Within one `date=/instrument=` partition,
files under `small_bytes` are merged, in groups of up to `target_bytes`, into one file sorted
by the table's sort key. Crash safety comes from an intent file written first: it names the
output and the inputs, so a compaction interrupted at any point is finished (inputs deleted, if
the output made it) or undone (temp output deleted) by the next `compact` call. Between the
rename of the output and the deletion of the inputs a concurrent query can briefly count those
rows twice; the recorder runs compaction at quiet moments for that reason.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from storage.history import HistoryConfig, write_parquet_file
from storage.schemas import SORT_KEYS, TABLES

log = logging.getLogger(__name__)

INTENT = ".compaction.json"


@dataclass(frozen=True)
class CompactionConfig:
    small_bytes: int = 8 << 20
    target_bytes: int = 256 << 20
    min_files: int = 4


@dataclass(frozen=True)
class CompactionResult:
    partitions: int  # partitions that were merged
    files_in: int
    files_out: int
    rows: int


def compact(
    root: Path | str,
    table: str,
    config: CompactionConfig | None = None,
    history: HistoryConfig | None = None,
) -> CompactionResult:
    """Merge the small files of every partition of `table` under `root`."""
    config = config or CompactionConfig()
    history = history or HistoryConfig()
    partitions = files_in = files_out = rows = 0
    table_dir = Path(root) / table
    for directory in sorted({p.parent for p in table_dir.glob("date=*/instrument=*/*")}):
        _finish_interrupted(directory)
        merged = False
        for group in _groups(directory, config):
            rows += _merge(directory, table, group, history)
            files_in += len(group)
            files_out += 1
            merged = True
        partitions += merged
    return CompactionResult(partitions, files_in, files_out, rows)


def _groups(directory: Path, config: CompactionConfig) -> list[list[Path]]:
    small = [
        path
        for path in sorted(directory.glob("*.parquet"))
        if path.stat().st_size < config.small_bytes
    ]
    if len(small) < config.min_files:
        return []
    groups: list[list[Path]] = [[]]
    size = 0
    for path in small:
        length = path.stat().st_size
        if groups[-1] and size + length > config.target_bytes:
            groups.append([])
            size = 0
        groups[-1].append(path)
        size += length
    return [group for group in groups if len(group) > 1]


def _merge(directory: Path, table: str, inputs: list[Path], history: HistoryConfig) -> int:
    stem = f"{inputs[0].stem}-c{len(inputs)}"
    intent = directory / INTENT
    _write_synced(
        intent, orjson.dumps({"output": f"{stem}.parquet", "inputs": [p.name for p in inputs]})
    )
    data = pa.concat_tables([pq.read_table(path, schema=TABLES[table]) for path in inputs])
    output = write_parquet_file(data, directory, stem, history, sort_by=SORT_KEYS[table])
    if output.name != f"{stem}.parquet":
        raise FileExistsError(f"compaction output {stem}.parquet already exists in {directory}")
    for path in inputs:
        path.unlink()
    intent.unlink()
    log.info("compacted %d files (%d rows) into %s", len(inputs), data.num_rows, output)
    return data.num_rows


def _finish_interrupted(directory: Path) -> None:
    """Complete or undo a compaction that a crash interrupted in this partition."""
    intent = directory / INTENT
    if not intent.exists():
        return
    try:
        plan = orjson.loads(intent.read_bytes())
    except orjson.JSONDecodeError:
        log.warning("unreadable compaction intent in %s; discarded", directory)
        intent.unlink()
        return
    if (directory / plan["output"]).exists():
        for name in plan["inputs"]:
            (directory / name).unlink(missing_ok=True)
        log.warning("finished an interrupted compaction in %s", directory)
    else:
        for temp in directory.glob(f".{plan['output']}.tmp-*"):
            temp.unlink()
    intent.unlink()


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
