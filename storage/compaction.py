"""Compaction: merge a partition's small Parquet files into larger ones without losing a row,
and without a reader ever counting one twice.

Many small files (one per flush) make scans slow. Within one `date=/instrument=` partition,
files under `small_bytes` are merged, in groups of up to `target_bytes`, into one file sorted
by the table's sort key.

**What readers see.** A merged file names the files it supersedes (its sources) in its Parquet
key-value metadata (`shmex.supersedes`), and `list_partition` — the listing the query layer
and compaction itself use — drops a source whenever a merged file naming it is present. So the
link of the output into place is the one instant at which the rows move from the sources to
the output. The sources are deleted only by the *next* `compact` (`sweep`), so a query that
listed them just before that instant can still read them. Footers are read only where needed:
a merge is named `<stem of its first source>-c<n>.parquet` and that first source, its
*anchor*, is deleted last, so only a merged file whose anchor is still listed can hide anything.

**Crash safety.** One merge is a sequence of `Step`s, each durable before the next: the intent
(`.compaction.json`, naming output and inputs) fsynced; the merged rows fsynced under a hidden
temp name (never listed); the output linked into place; the temp name and the intent removed.
The next `compact` deletes a left temp file and the intent: a merge interrupted before the
link is thereby undone (its sources are still what readers see); one interrupted after it is
finished by the sweep, which deletes sources by what the merged file names.
One compactor per history root: the recorder, which runs it between its flushes.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from storage.history import HistoryConfig, link_into_place, write_temp_parquet
from storage.schemas import SORT_KEYS, TABLES

log = logging.getLogger(__name__)

INTENT = ".compaction.json"
SUPERSEDES = b"shmex.supersedes"
"""Key of a merged file's Parquet metadata: a JSON list of its sources' names, anchor first."""
_MERGED = re.compile(r"^(?P<anchor>.+)-c\d+(?:-\d+)?\.parquet$")


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


@dataclass(frozen=True)
class PartitionFiles:
    """One partition's Parquet files as a reader must see them."""

    visible: list[Path]  # together they hold every row exactly once
    superseded: dict[Path, list[Path]]  # merged file -> its sources still on disk, anchor first


class Step(Enum):
    """Where compaction stands; `Merge.steps` and `sweep` yield each once it is durable."""

    INTENT = "intent"  # the plan is on disk
    WRITTEN = "written"  # merged rows fsynced under a hidden temp name
    PLACED = "placed"  # output visible; from now on its sources are not
    DONE = "done"  # temp name and intent removed: the merge is complete
    DELETED = "deleted"  # the sweep deleted one more superseded source


def partitions(table_dir: Path) -> list[Path]:
    """The `date=…/instrument=…` directories of one table, in name order."""
    return [
        partition
        for day in _subdirectories(table_dir, "date=")
        for partition in _subdirectories(day, "instrument=")
    ]


def _subdirectories(directory: Path, prefix: str) -> list[Path]:
    try:
        with os.scandir(directory) as entries:
            paths = [
                entry.path for entry in entries if entry.name.startswith(prefix) and entry.is_dir()
            ]
    except FileNotFoundError:
        return []
    return [Path(path) for path in sorted(paths)]


def visible_files(table_dir: Path) -> list[Path]:
    """Every Parquet file of one table a reader should scan: each row appears exactly once."""
    return [
        path for directory in partitions(table_dir) for path in list_partition(directory).visible
    ]


def list_partition(directory: Path) -> PartitionFiles:
    """The partition's files, sources superseded by a present merged file set apart.

    Exact when the directory is listed in one `getdents` call (Linux lists a few hundred
    entries per call under the directory lock), which compaction keeps partitions well under.
    """
    names = {name for name in os.listdir(directory) if name.endswith(".parquet")}
    superseded: dict[Path, list[Path]] = {}
    for name in sorted(names):
        match = _MERGED.match(name)
        if match is not None and f"{match['anchor']}.parquet" in names:
            present = [
                directory / source for source in _sources(directory / name) if source in names
            ]
            if present:
                superseded[directory / name] = present
    hidden = {path.name for sources in superseded.values() for path in sources}
    return PartitionFiles([directory / name for name in sorted(names - hidden)], superseded)


def sweep(directory: Path) -> Iterator[Step]:
    """Delete the sources that present merged files supersede, one at a time (anchors last).

    Each merge's anchor (its first source) goes last, as the reader's footer rule needs; a
    merged file that is itself superseded has its own sources deleted first, so no source is
    ever left on disk without the file that hides it.
    """
    superseded = list_partition(directory).superseded
    hidden = {path for sources in superseded.values() for path in sources}
    for merged in sorted(superseded, key=lambda path: path not in hidden):
        for path in reversed(superseded[merged]):
            path.unlink(missing_ok=True)
            yield Step.DELETED


def _sources(merged: Path) -> list[str]:
    """The names a merged file supersedes; none for files merged before they were recorded."""
    metadata = pq.read_schema(merged).metadata or {}
    names: list[str] = orjson.loads(metadata.get(SUPERSEDES, b"[]"))
    return names


def compact(
    root: Path | str,
    table: str,
    config: CompactionConfig | None = None,
    history: HistoryConfig | None = None,
) -> CompactionResult:
    """Merge the small files of every partition of `table` under `root`."""
    config = config or CompactionConfig()
    history = history or HistoryConfig()
    merged_partitions = files_in = files_out = rows = 0
    for directory in partitions(Path(root) / table):
        _finish_interrupted(directory)
        for _ in sweep(directory):
            pass
        merged = False
        for group in _groups(list_partition(directory).visible, config):
            rows += Merge(table, group, history).run()
            files_in += len(group)
            files_out += 1
            merged = True
        merged_partitions += merged
    return CompactionResult(merged_partitions, files_in, files_out, rows)


class Merge:
    """One merge of a partition's files (in name order) into `<first stem>-c<n>.parquet`."""

    def __init__(self, table: str, inputs: list[Path], history: HistoryConfig) -> None:
        self.table = table
        self.inputs = inputs
        self.history = history
        self.directory = inputs[0].parent
        self.stem = f"{inputs[0].stem}-c{len(inputs)}"
        self.rows = 0

    def run(self) -> int:
        """Take every step; the number of rows merged."""
        for _ in self.steps():
            pass
        return self.rows

    def steps(self) -> Iterator[Step]:
        """Take the steps one by one: a caller that stops iterating leaves what a crash would."""
        names = [path.name for path in self.inputs]
        if (self.directory / f"{self.stem}.parquet").exists():
            raise FileExistsError(
                f"compaction output {self.stem}.parquet exists in {self.directory}"
            )
        intent = self.directory / INTENT
        _write_synced(intent, orjson.dumps({"output": f"{self.stem}.parquet", "inputs": names}))
        yield Step.INTENT
        data = pa.concat_tables([pq.read_table(p, schema=TABLES[self.table]) for p in self.inputs])
        data = data.replace_schema_metadata({SUPERSEDES: orjson.dumps(names)})
        temp = write_temp_parquet(
            data, self.directory, self.stem, self.history, sort_by=SORT_KEYS[self.table]
        )
        self.rows = data.num_rows
        yield Step.WRITTEN
        output = link_into_place(temp, self.directory, self.stem)
        yield Step.PLACED
        temp.unlink()
        intent.unlink()
        log.info("compacted %d files (%d rows) into %s", len(self.inputs), self.rows, output)
        yield Step.DONE


def _groups(files: list[Path], config: CompactionConfig) -> list[list[Path]]:
    small = [path for path in files if path.stat().st_size < config.small_bytes]
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


def _finish_interrupted(directory: Path) -> None:
    """Clear what a crash left of a merge in this partition: its temp file and its intent.

    Interrupted before the link, the merge is undone (its sources are still the visible
    files); after it, the output already supersedes its sources and `sweep` deletes them.
    """
    intent = directory / INTENT
    if not intent.exists():
        return
    try:
        output = orjson.loads(intent.read_bytes())["output"]
    except orjson.JSONDecodeError:
        # written and fsynced before the merge touched anything else: nothing to undo
        log.warning("unreadable compaction intent in %s; discarded", directory)
    else:
        for temp in directory.glob(f".{output}.tmp-*"):
            temp.unlink()
        placed = (directory / output).exists()
        log.warning("%s an interrupted merge in %s", "finished" if placed else "undid", directory)
    intent.unlink()


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
