"""Plain-text rendering of the supervisor's status for `bin/exchange status` and `up`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [
        max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)
    ]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (headers, *rows)
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return lines


def _number(value: Any, unit: str = "", scale: float = 1.0, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value / scale:.{digits}f}{unit}"


def render_status(status: dict[str, Any]) -> str:
    """The process table, then one line per ring reader with its position and lag."""
    lines = [
        f"shmex {status['prefix']}  home {status['home']}"
        f"  supervisor pid {status['supervisor_pid']}  up {_number(status['uptime_s'], 's')}",
        "",
    ]
    process_rows = [
        [
            row["process"],
            str(row["pid"] or "-"),
            row["state"],
            _number(row["uptime_s"], "s"),
            str(row["restarts"]),
            _number(row["cpu_s"], "s", digits=2),
            _number(row["rss_bytes"], " MB", 2**20),
        ]
        for row in status["processes"]
    ]
    if process_rows:
        lines += _table(
            ["process", "pid", "state", "uptime", "restarts", "cpu", "rss"], process_rows
        )
    else:
        lines.append("(no processes enabled whose modules exist)")
    ring_rows = []
    for name, ring in status["rings"].items():
        readers = ring["readers"] or [None]
        for reader in readers:
            ring_rows.append(
                [
                    name,
                    str(ring["capacity"]),
                    str(ring["published"]),
                    str(ring["stalls"]),
                    reader["name"] if reader else "-",
                    str(reader["cursor"]) if reader else "-",
                    str(reader["lag"]) if reader else "-",
                    ("alive" if reader["alive"] else "dead") if reader else "-",
                ]
            )
    lines += [
        "",
        *_table(
            ["ring", "capacity", "published", "stalls", "reader", "cursor", "lag", "reader state"],
            ring_rows,
        ),
    ]
    return "\n".join(lines)
