"""Prometheus text exposition (format 0.0.4) of a `Sample`: `/metrics`, `bin/monitor --prometheus`.

Names are `shmex_*`; counters end in `_total`; labels are `process`, `ring`, `reader`, `code`
and whatever a process put on its own metrics. Latency histograms are exposed in seconds with
`le` bounds at powers of two nanoseconds, which are bucket edges of `ipc.metrics.Histogram`, so
the cumulative counts are exact (only a value equal to a bound itself lands one bucket later).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from monitor.sample import Sample

NS_PER_SECOND = 1_000_000_000
LE_POWERS = range(8, 36, 2)  # 256 ns .. 17 s, as powers of two nanoseconds
_UNSAFE = re.compile(r"[^a-zA-Z0-9_]")

Labels = dict[str, Any]


@dataclass
class Family:
    name: str
    kind: str  # counter, gauge, histogram
    help: str
    lines: list[str] = field(default_factory=list)


class Exposition:
    """Families in first-use order; each sample line is added under its family."""

    def __init__(self) -> None:
        self._families: dict[str, Family] = {}

    def _family(self, name: str, kind: str, help_text: str) -> Family:
        family = self._families.get(name)
        if family is None:
            family = self._families[name] = Family(name, kind, help_text)
        elif family.kind != kind:
            raise ValueError(f"metric {name} is both a {family.kind} and a {kind}")
        return family

    def counter(self, name: str, help_text: str, labels: Labels, value: float | None) -> None:
        """`name` must already end in `_total`."""
        if value is not None:
            self._family(name, "counter", help_text).lines.append(_line(name, labels, value))

    def gauge(self, name: str, help_text: str, labels: Labels, value: float | None) -> None:
        if value is not None:
            self._family(name, "gauge", help_text).lines.append(_line(name, labels, value))

    def histogram(self, name: str, help_text: str, labels: Labels, snap: dict[str, Any]) -> None:
        """A histogram snapshot of `ipc.metrics`; ns become seconds, other units stay as is."""
        family = self._family(name, "histogram", help_text)
        seconds = snap.get("unit", "ns") == "ns"
        scale = NS_PER_SECOND if seconds else 1
        bounds = [2**p for p in LE_POWERS] if seconds else [2**p for p in range(0, 21)]
        buckets = sorted((int(upper), int(count)) for upper, count in snap["buckets"])
        index = cumulative = 0
        for bound in bounds:
            while index < len(buckets) and buckets[index][0] < bound:
                cumulative += buckets[index][1]
                index += 1
            le = {"le": _number(bound / scale)}
            family.lines.append(_line(f"{name}_bucket", {**labels, **le}, cumulative))
        family.lines.append(_line(f"{name}_bucket", {**labels, "le": "+Inf"}, snap["count"]))
        family.lines.append(_line(f"{name}_sum", labels, snap["sum"] / scale))
        family.lines.append(_line(f"{name}_count", labels, snap["count"]))

    def text(self) -> str:
        out: list[str] = []
        for family in self._families.values():
            out.append(f"# HELP {family.name} {_escape_help(family.help)}")
            out.append(f"# TYPE {family.name} {family.kind}")
            out.extend(family.lines)
        return "\n".join(out) + "\n"


def _number(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _escape_label(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _line(name: str, labels: Labels, value: float) -> str:
    if not labels:
        return f"{name} {_number(value)}"
    body = ",".join(f'{_UNSAFE.sub("_", k)}="{_escape_label(v)}"' for k, v in labels.items())
    return f"{name}{{{body}}} {_number(value)}"


def metric_name(name: str) -> str:
    """A process metric's name as a Prometheus name: `shmex_` + letters, digits and `_`."""
    return "shmex_" + _UNSAFE.sub("_", name).strip("_").lower()


def render(sample: Sample) -> str:
    """The whole sample as exposition text."""
    out = Exposition()
    out.gauge("shmex_up", "1 if the supervisor answered its status", {}, sample.supervisor_up)
    _processes(out, sample)
    _rings(out, sample)
    _disk(out, sample)
    severities: dict[str, int] = {"warning": 0, "critical": 0}
    for alert in sample.alerts:
        severities[alert.severity] = severities.get(alert.severity, 0) + 1
    for severity, count in severities.items():
        out.gauge("shmex_alerts", "active alerts", {"severity": severity}, count)
    return out.text()


def _processes(out: Exposition, sample: Sample) -> None:
    for p in sample.processes:
        who = {"process": p.name}
        out.gauge("shmex_process_up", "1 if the process is alive and running", who, p.up)
        out.counter("shmex_process_restarts_total", "restarts by the supervisor", who, p.restarts)
        out.gauge("shmex_process_cpu_percent", "CPU % since the last sample", who, p.cpu_percent)
        out.counter("shmex_process_cpu_seconds_total", "user+system CPU", who, p.cpu_seconds)
        out.gauge("shmex_process_resident_memory_bytes", "RSS", who, p.rss_bytes)
        out.gauge("shmex_process_threads", "OS threads", who, p.threads)
        out.gauge("shmex_process_open_fds", "open file descriptors", who, p.fds)
        out.gauge("shmex_process_open_files", "open regular files", who, p.open_files)
        out.gauge("shmex_process_sockets", "open sockets", who, p.connections)
        out.gauge(
            "shmex_process_uptime_seconds", "seconds since the process started", who, p.uptime_s
        )
        for kind, value in (("voluntary", p.ctx_voluntary), ("involuntary", p.ctx_involuntary)):
            out.counter(
                "shmex_process_context_switches_total",
                "context switches",
                {**who, "kind": kind},
                value,
            )
        if p.control_rtt_us is not None:
            out.gauge(
                "shmex_process_control_rtt_seconds",
                "round trip of the monitor's status request",
                who,
                p.control_rtt_us / 1e6,
            )
        status = p.status or {}
        out.counter(
            "shmex_process_records_in_total",
            "records read from rings",
            who,
            status.get("records_in"),
        )
        out.counter(
            "shmex_process_batches_in_total",
            "batches read from rings",
            who,
            status.get("batches_in"),
        )
        _process_metrics(out, who, status.get("metrics") or {})


def _process_metrics(out: Exposition, who: Labels, metrics: dict[str, Any]) -> None:
    """A process's own `ipc.metrics` snapshot, labelled with the process."""
    for entry in metrics.get("counters", ()):
        name = metric_name(entry["name"]) + "_total"
        out.counter(
            name, f"{entry['name']} (process counter)", {**who, **entry["labels"]}, entry["value"]
        )
    for entry in metrics.get("gauges", ()):
        name = metric_name(entry["name"])
        out.gauge(
            name, f"{entry['name']} (process gauge)", {**who, **entry["labels"]}, entry["value"]
        )
    for entry in metrics.get("histograms", ()):
        snap = entry["histogram"]
        name = metric_name(entry["name"]) + ("_seconds" if snap.get("unit", "ns") == "ns" else "")
        out.histogram(
            name, f"{entry['name']} (process histogram)", {**who, **entry["labels"]}, snap
        )


def _rings(out: Exposition, sample: Sample) -> None:
    for ring in sample.rings:
        at = {"ring": ring.name}
        out.counter("shmex_ring_published_total", "records published", at, ring.published)
        out.gauge("shmex_ring_capacity", "slots in the ring", at, ring.capacity)
        out.gauge("shmex_ring_occupancy", "records the slowest reader holds", at, ring.occupancy)
        out.counter("shmex_ring_stalls_total", "writer found the ring full", at, ring.stalls)
        out.counter("shmex_ring_wakeups_total", "writer woke a sleeping reader", at, ring.wakeups)
        out.gauge("shmex_ring_writer_alive", "1 if the writer process lives", at, ring.writer_alive)
        out.gauge("shmex_ring_publish_rate", "records published per second", at, ring.rate)
        for reader in ring.readers:
            who = {**at, "reader": reader.name}
            out.gauge(
                "shmex_ring_reader_lag", "records published but not released", who, reader.lag
            )
            out.counter("shmex_ring_reader_position_total", "records released", who, reader.cursor)
            out.gauge("shmex_ring_reader_alive", "1 if the reader process lives", who, reader.alive)
            out.counter(
                "shmex_ring_reader_stalls_total",
                "writer stalls caused by this reader",
                who,
                reader.stalls,
            )
            out.gauge(
                "shmex_ring_reader_stuck_seconds",
                "seconds without progress while records wait",
                who,
                reader.stuck_s,
            )


def _disk(out: Exposition, sample: Sample) -> None:
    disk = sample.disk
    out.gauge("shmex_journal_bytes", "size of the journal directory", {}, disk.journal_bytes)
    out.gauge("shmex_history_bytes", "size of the history directory", {}, disk.history_bytes)
    out.gauge(
        "shmex_disk_free_bytes", "free bytes on the run directory's disk", {}, disk.free_bytes
    )
    out.gauge("shmex_disk_total_bytes", "size of the run directory's disk", {}, disk.total_bytes)
