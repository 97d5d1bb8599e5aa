"""monitor/alerts: each rule fires on the sample that breaks it, and only then."""

from __future__ import annotations

from monitor.alerts import RULES, Thresholds, evaluate
from monitor.sample import DiskSample, ProcessSample, ReaderSample, RingSample, Sample

GB = 2**30


def _sample(
    processes: list[ProcessSample] | None = None,
    rings: list[RingSample] | None = None,
    free: int = 50 * GB,
) -> Sample:
    return Sample(
        prefix="shmex_x",
        home="/tmp/x",
        wall_ns=0,
        monotonic_s=0.0,
        supervisor_up=True,
        processes=processes or [ProcessSample("recorder", 10, "running", True)],
        rings=rings or [],
        disk=DiskSample(journal_bytes=0, history_bytes=0, free_bytes=free, total_bytes=100 * GB),
    )


def _ring(lag: int, alive: bool = True, stuck_s: float = 0.0, capacity: int = 1024) -> RingSample:
    reader = ReaderSample("recorder", 10, 100, lag, alive, False, 0, stuck_s=stuck_s)
    return RingSample("execs.0", capacity, 100 + lag, lag, 0, 0, 11, True, readers=[reader])


def _rules(sample: Sample) -> set[tuple[str, str, str]]:
    return {(a.rule, a.severity, a.subject) for a in evaluate(sample, Thresholds())}


def test_a_healthy_sample_raises_nothing() -> None:
    assert _rules(_sample(rings=[_ring(lag=3)])) == set()


def test_down_and_backoff_are_critical_starting_and_recent_restarts_warn() -> None:
    processes = [
        ProcessSample("recorder", None, "down", False),
        ProcessSample("matching.0", None, "backoff", False, restarts=1, last_exit=-9),
        ProcessSample("accounts", 12, "starting", False, restarts=2),
        ProcessSample("marketdata", 13, "running", True, restarts=1, restarted_age_s=3.0),
        ProcessSample("gateway.1", 14, "running", True, restarts=1, restarted_age_s=600.0),
    ]
    assert _rules(_sample(processes)) == {
        ("process_down", "critical", "recorder"),
        ("process_down", "critical", "matching.0"),
        ("process_restarting", "warning", "accounts"),
        ("process_restarting", "warning", "marketdata"),
    }
    message = next(a.message for a in evaluate(_sample(processes), Thresholds()))
    assert "recorder is down" in message


def test_lag_warns_at_half_and_is_critical_at_ninety_percent_once_per_reader() -> None:
    assert _rules(_sample(rings=[_ring(lag=600)])) == {("ring_lag", "warning", "execs.0/recorder")}
    assert _rules(_sample(rings=[_ring(lag=1000)])) == {
        ("ring_lag", "critical", "execs.0/recorder")
    }


def test_stuck_and_dead_readers() -> None:
    assert _rules(_sample(rings=[_ring(lag=5, stuck_s=6.0)])) == {
        ("reader_stuck", "warning", "execs.0/recorder")
    }
    assert _rules(_sample(rings=[_ring(lag=0, alive=False)])) == {
        ("reader_dead", "critical", "execs.0/recorder")
    }


def test_disk_nearly_full() -> None:
    assert _rules(_sample(free=8 * GB)) == {("disk_full", "warning", "disk")}
    assert _rules(_sample(free=1 * GB)) == {("disk_full", "critical", "disk")}


def test_accounts_at_risk_from_the_accounts_status() -> None:
    accounts = ProcessSample("accounts", 20, "running", True)
    accounts.status = {
        "service": {
            "risk": [
                {"account_id": 1, "risk_ratio": 0.5},
                {"account_id": 2, "risk_ratio": 0.85},
                {"account_id": 3, "risk_ratio": 1.02},
            ]
        }
    }
    assert _rules(_sample([accounts])) == {
        ("account_risk", "warning", "account 2"),
        ("account_risk", "critical", "account 3"),
    }


def test_every_rule_has_a_known_severity() -> None:
    assert {rule.severity for rule in RULES} == {"warning", "critical"}
