"""Alert rules as data: a table of (name, severity, finder) evaluated on every sample.

A finder yields `(subject, message)` for each thing breaking its rule; thresholds live in one
`Thresholds` record so a deployment can tune them without touching the rules. When a rule has
a critical and a warning row for the same subject, only the first (critical) row is reported.

Risk comes from a process that reports it: any `status` whose `service` holds
`"risk": [{"account_id": int, "risk_ratio": float}, ...]` (the accounts process lists the
accounts near or over their limit; ratio = margin / balance).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from monitor.sample import Alert, Sample

WARNING = "warning"
CRITICAL = "critical"
DOWN_STATES = frozenset({"down", "backoff"})
RESTART_STATES = frozenset({"starting"})


@dataclass(frozen=True)
class Thresholds:
    lag_warning: float = 0.5  # reader lag as a fraction of the ring's capacity
    lag_critical: float = 0.9
    stuck_s: float = 5.0  # a reader whose cursor has not moved this long while records wait
    restart_window_s: float = 60.0  # a seen restart stays an alert this long
    disk_warning: float = 0.10  # free fraction of the run directory's disk
    disk_critical: float = 0.05
    risk_warning: float = 0.8  # account margin / balance
    risk_critical: float = 1.0


Finding = tuple[str, str]
Finder = Callable[[Sample, Thresholds], Iterator[Finding]]


@dataclass(frozen=True)
class Rule:
    name: str
    severity: str
    find: Finder


def _down(sample: Sample, _t: Thresholds) -> Iterator[Finding]:
    for process in sample.processes:
        if process.state in DOWN_STATES:
            exit_text = f", last exit {process.last_exit}" if process.last_exit is not None else ""
            yield process.name, f"{process.name} is {process.state}{exit_text}"


def _restarting(sample: Sample, t: Thresholds) -> Iterator[Finding]:
    for process in sample.processes:
        if process.state in RESTART_STATES:
            yield process.name, f"{process.name} is restarting (restart {process.restarts})"
        elif process.restarted_age_s is not None and process.restarted_age_s < t.restart_window_s:
            yield (
                process.name,
                f"{process.name} restarted {process.restarted_age_s:.0f}s ago "
                f"({process.restarts} restarts, last exit {process.last_exit})",
            )


def _lag_above(field: str) -> Finder:
    def find(sample: Sample, t: Thresholds) -> Iterator[Finding]:
        limit = getattr(t, field)
        for ring in sample.rings:
            for reader in ring.readers:
                if reader.lag >= limit * ring.capacity:
                    yield (
                        f"{ring.name}/{reader.name}",
                        f"{reader.name} lags {reader.lag} of {ring.capacity} records on "
                        f"{ring.name} ({reader.lag / ring.capacity:.0%})",
                    )

    return find


def _stuck(sample: Sample, t: Thresholds) -> Iterator[Finding]:
    for ring in sample.rings:
        for reader in ring.readers:
            if reader.stuck_s >= t.stuck_s:
                yield (
                    f"{ring.name}/{reader.name}",
                    f"{reader.name} has not advanced on {ring.name} for {reader.stuck_s:.0f}s "
                    f"({reader.lag} records waiting)",
                )


def _dead_reader(sample: Sample, _t: Thresholds) -> Iterator[Finding]:
    for ring in sample.rings:
        for reader in ring.readers:
            if not reader.alive:
                yield (
                    f"{ring.name}/{reader.name}",
                    f"reader {reader.name} of {ring.name} is dead (pid {reader.pid}); "
                    "it holds the writer back until it returns",
                )


def _disk_below(field: str) -> Finder:
    def find(sample: Sample, t: Thresholds) -> Iterator[Finding]:
        free = sample.disk.free_fraction
        if free < getattr(t, field):
            yield "disk", f"disk of {sample.home} is {1 - free:.0%} full"

    return find


def _risk_at_least(field: str) -> Finder:
    def find(sample: Sample, t: Thresholds) -> Iterator[Finding]:
        limit = getattr(t, field)
        for process in sample.processes:
            service = (process.status or {}).get("service") or {}
            for entry in service.get("risk") or ():
                ratio = float(entry["risk_ratio"])
                if ratio >= limit:
                    account = entry["account_id"]
                    yield f"account {account}", f"account {account} risk ratio {ratio:.0%}"

    return find


RULES: tuple[Rule, ...] = (
    Rule("process_down", CRITICAL, _down),
    Rule("process_restarting", WARNING, _restarting),
    Rule("ring_lag", CRITICAL, _lag_above("lag_critical")),
    Rule("ring_lag", WARNING, _lag_above("lag_warning")),
    Rule("reader_dead", CRITICAL, _dead_reader),
    Rule("reader_stuck", WARNING, _stuck),
    Rule("disk_full", CRITICAL, _disk_below("disk_critical")),
    Rule("disk_full", WARNING, _disk_below("disk_warning")),
    Rule("account_risk", CRITICAL, _risk_at_least("risk_critical")),
    Rule("account_risk", WARNING, _risk_at_least("risk_warning")),
)


def evaluate(
    sample: Sample, thresholds: Thresholds, rules: tuple[Rule, ...] = RULES
) -> list[Alert]:
    """The alerts a sample raises, critical rows first within a rule, one per subject."""
    seen: set[tuple[str, str]] = set()
    out: list[Alert] = []
    for rule in rules:
        for subject, message in rule.find(sample, thresholds):
            if (rule.name, subject) in seen:
                continue
            seen.add((rule.name, subject))
            out.append(Alert(rule.name, rule.severity, subject, message))
    return out
