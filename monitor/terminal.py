"""The terminal dashboard (rich): process table, ring table, sparklines and alerts.

`dashboard()` builds one frame from a sample and its history; `bin/monitor` redraws it live.
`status_text()` renders the process and ring tables once, for `bin/exchange status`.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from monitor.collector import Collector
from monitor.sample import Sample
from monitor.series import History, latency_of

BARS = "▁▂▃▄▅▆▇█"
SEVERITY_STYLE = {"critical": "bold red", "warning": "yellow"}
STATE_STYLE = {"running": "green", "down": "bold red", "backoff": "red", "starting": "yellow"}


def sparkline(values: Sequence[float], width: int = 40) -> str:
    """The last `width` values as block characters scaled to their own maximum."""
    tail = list(values)[-width:]
    top = max(tail, default=0.0)
    if top <= 0:
        return BARS[0] * len(tail)
    return "".join(BARS[min(len(BARS) - 1, int(v / top * (len(BARS) - 1) + 0.5))] for v in tail)


def _size(value: float | None) -> str:
    if value is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def _maybe(value: float | None, digits: int = 1, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def _rate(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:.2f}M/s"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k/s"
    return f"{value:.0f}/s"


def process_table(sample: Sample) -> Table:
    """One row per process: state, pid, CPU, memory, threads, switches, files, rates."""
    table = Table(title=f"processes of {sample.prefix}", expand=True, title_justify="left")
    for header in ("process", "state", "pid", "uptime", "restarts", "cpu %", "rss", "threads"):
        table.add_column(header, justify="left" if header in ("process", "state") else "right")
    for header in ("ctx sw", "fds", "sockets", "records in", "in rate", "status rtt"):
        table.add_column(header, justify="right")
    for p in sample.processes:
        switches = None
        if p.ctx_voluntary is not None and p.ctx_involuntary is not None:
            switches = p.ctx_voluntary + p.ctx_involuntary
        table.add_row(
            p.name,
            Text(p.state, style=STATE_STYLE.get(p.state, "")),
            str(p.pid or "-"),
            _maybe(p.uptime_s, 0, "s"),
            str(p.restarts),
            _maybe(p.cpu_percent),
            _size(p.rss_bytes),
            str(p.threads if p.threads is not None else "-"),
            str(switches if switches is not None else "-"),
            str(p.fds if p.fds is not None else "-"),
            str(p.connections if p.connections is not None else "-"),
            str(p.records_in if p.records_in is not None else "-"),
            _rate(p.records_in_rate) if p.records_in is not None else "-",
            _maybe(p.control_rtt_us, 0, " µs"),
        )
    return table


def ring_table(sample: Sample, history: History | None = None) -> Table:
    """One row per ring reader (or per ring without readers): positions, lag, rates."""
    table = Table(title="rings", expand=True, title_justify="left")
    for header in ("ring", "published", "rate", "fill", "stalls", "reader", "cursor", "lag"):
        table.add_column(header, justify="left" if header in ("ring", "reader") else "right")
    table.add_column("reader state")
    if history is not None:
        table.add_column("publish rate", no_wrap=True)
    for ring in sample.rings:
        fill = f"{ring.occupancy / ring.capacity:.1%}" if ring.capacity else "-"
        spark = [sparkline(history.ring_values(ring.name), 24)] if history is not None else []
        readers = ring.readers or [None]
        for n, reader in enumerate(readers):
            first = n == 0
            state = "-"
            if reader is not None:
                state = "alive" if reader.alive else "dead"
                if reader.stuck_s:
                    state += f", stuck {reader.stuck_s:.0f}s"
            table.add_row(
                ring.name if first else "",
                str(ring.published) if first else "",
                _rate(ring.rate) if first else "",
                fill if first else "",
                str(ring.stalls) if first else "",
                reader.name if reader else "-",
                str(reader.cursor) if reader else "-",
                str(reader.lag) if reader else "-",
                Text(state, style="" if reader is None or reader.alive else "bold red"),
                *(spark if first else [""] * len(spark)),
            )
    return table


def alerts_panel(sample: Sample) -> Panel:
    if not sample.alerts:
        return Panel(Text("no alerts", style="green"), title="alerts", title_align="left")
    lines = Text()
    for alert in sample.alerts:
        lines.append(f"{alert.severity.upper():<9}", style=SEVERITY_STYLE.get(alert.severity, ""))
        lines.append(f"{alert.rule:<19}{alert.message}\n")
    return Panel(lines, title=f"alerts ({len(sample.alerts)})", title_align="left")


def trends_panel(sample: Sample, history: History) -> Panel:
    label, p50, p99 = latency_of(sample)
    text = Text()
    rows = (
        ("throughput", _rate(sample.throughput), "throughput", "cyan"),
        (f"{label} p50", f"{p50:.0f} µs", "latency_p50_us", "magenta"),
        (f"{label} p99", f"{p99:.0f} µs", "latency_p99_us", "magenta"),
    )
    for name, now, field, style in rows:
        text.append(f"{name:<22}{now:>12}  ")
        text.append(sparkline(history.values(field), 60) + "\n", style=style)
    disk = sample.disk
    text.append(
        f"journal {_size(disk.journal_bytes)}  history {_size(disk.history_bytes)}  "
        f"disk free {_size(disk.free_bytes)} ({disk.free_fraction:.0%})"
    )
    return Panel(text, title="throughput and latency", title_align="left")


def dashboard(sample: Sample, history: History) -> RenderableType:
    """One full frame of `bin/monitor`."""
    stamp = time.strftime("%H:%M:%S", time.localtime(sample.wall_ns / 1e9))
    head = Text(f"shmex monitor  {sample.prefix}  {sample.home}  {stamp}", style="bold")
    if not sample.supervisor_up:
        head.append("  supervisor not answering", style="bold red")
    return Group(
        head,
        process_table(sample),
        ring_table(sample, history),
        trends_panel(sample, history),
        alerts_panel(sample),
    )


def status_text(prefix: str, home: str | Path, width: int = 120, cpu_window_s: float = 0.2) -> str:
    """The process and ring tables once, as plain text (`bin/exchange status`); CPU % is
    measured over `cpu_window_s`."""
    with Collector(prefix, home) as collector:
        collector.sample()
        time.sleep(cpu_window_s)
        sample = collector.sample()
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(process_table(sample))
    console.print(ring_table(sample))
    if sample.alerts:
        console.print(alerts_panel(sample))
    return console.export_text()
