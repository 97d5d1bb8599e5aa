"""What one look at an instance found: processes, rings, disk and alerts, as plain dataclasses.

A `Sample` is what every view renders (terminal, web, Prometheus); `as_dict()` makes it JSON for
the dashboard's WebSocket. Rates are per second since the previous sample (0 on the first).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ProcessSample:
    name: str
    pid: int | None
    state: str  # the supervisor's state (running, starting, backoff, ...) or "down"
    up: bool
    restarts: int = 0
    restarted_age_s: float | None = None  # seconds since a restart was last seen
    last_exit: int | None = None
    uptime_s: float | None = None
    cpu_percent: float | None = None
    cpu_seconds: float | None = None
    rss_bytes: int | None = None
    threads: int | None = None
    ctx_voluntary: int | None = None
    ctx_involuntary: int | None = None
    open_files: int | None = None
    connections: int | None = None
    fds: int | None = None
    records_in: int | None = None
    records_in_rate: float = 0.0
    control_rtt_us: float | None = None  # round trip of the `status` request
    status: dict[str, Any] | None = None  # the process's own `status` answer


@dataclass
class ReaderSample:
    name: str
    pid: int
    cursor: int
    lag: int
    alive: bool
    asleep: bool
    stalls: int
    rate: float = 0.0  # records released per second
    stuck_s: float = 0.0  # seconds the cursor has not moved while records were waiting


@dataclass
class RingSample:
    name: str  # without the instance prefix
    capacity: int
    published: int
    occupancy: int  # records the slowest reader has not released
    stalls: int
    wakeups: int
    writer_pid: int
    writer_alive: bool
    rate: float = 0.0  # records published per second
    readers: list[ReaderSample] = field(default_factory=list)


@dataclass
class DiskSample:
    journal_bytes: int
    history_bytes: int
    free_bytes: int
    total_bytes: int

    @property
    def free_fraction(self) -> float:
        return self.free_bytes / self.total_bytes if self.total_bytes else 1.0


@dataclass
class Alert:
    rule: str
    severity: str  # "warning" or "critical"
    subject: str  # the process, ring/reader or account it is about
    message: str


@dataclass
class Sample:
    prefix: str
    home: str
    wall_ns: int
    monotonic_s: float
    supervisor_up: bool
    processes: list[ProcessSample]
    rings: list[RingSample]
    disk: DiskSample
    latencies: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Merged histogram snapshots by metric name, from every process's `status` metrics."""
    alerts: list[Alert] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        """Records published per second over every ring."""
        return sum(ring.rate for ring in self.rings)

    def process(self, name: str) -> ProcessSample | None:
        return next((p for p in self.processes if p.name == name), None)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able, with the derived totals the views show."""
        out = asdict(self)
        out["throughput"] = self.throughput
        out["disk"]["free_fraction"] = self.disk.free_fraction
        return out
