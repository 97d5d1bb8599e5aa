"""Shared plumbing for `bin/bench NAME`: one result table per run, printed and written as JSON.

Every benchmark builds a `Results`, adds rows for shmex and for each peer measured in the same
run, then calls `finish()`, which prints the table and writes `bench/results/NAME.json` with the
machine (CPU model, cores) and the date, so that a later run can be compared with this one.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Row:
    system: str
    workload: str
    metric: str
    value: float
    unit: str


@dataclass
class Results:
    """`load_at_start` is the 1-minute load average when the run began: with `finish`'s, it
    says in the results how busy the 2-core machine was (other runs disturb every number)."""

    name: str
    rows: list[Row] = field(default_factory=list)
    load_at_start: float = field(default_factory=lambda: os.getloadavg()[0])

    def add(self, system: str, workload: str, metric: str, value: float, unit: str) -> None:
        self.rows.append(Row(system, workload, metric, float(value), unit))

    def table(self) -> str:
        headers = ("system", "workload", "metric", "value", "unit")
        cells = [headers] + [
            (r.system, r.workload, r.metric, _format_value(r.value), r.unit) for r in self.rows
        ]
        widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
        lines = []
        for n, row in enumerate(cells):
            lines.append(
                "  ".join(
                    c.rjust(w) if i == 3 else c.ljust(w)
                    for i, (c, w) in enumerate(zip(row, widths, strict=True))
                )
            )
            if n == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def finish(self, notes: Sequence[str] = ()) -> Path:
        """Print the table (and notes, the machine's load last) and write the JSON file."""
        notes = [*notes, load_note(self.load_at_start)]
        print(self.table())
        for note in notes:
            print(note)
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / f"{self.name}.json"
        document = {
            "name": self.name,
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "notes": list(notes),
            "rows": [asdict(r) for r in self.rows],
        }
        path.write_text(json.dumps(document, indent=2) + "\n")
        print(f"results written to {path}")
        return path


def load_note(load_at_start: float) -> str:
    return (
        f"Load average (1 min) {load_at_start:.2f} at the start, {os.getloadavg()[0]:.2f} at "
        f"the end, on {os.cpu_count()} cores (above ~0.5, other work shared the cores)."
    )


def machine() -> dict[str, object]:
    """The CPU model, core count and Python version, so results can be compared across runs."""
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "system": platform.platform(),
    }


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def _format_value(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.3f}" if abs(value) < 1000 else f"{value:,.0f}"
