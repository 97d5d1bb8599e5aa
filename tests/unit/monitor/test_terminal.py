"""monitor/terminal: sparklines and tables render every state, including missing numbers."""

from __future__ import annotations

import io

from rich.console import Console

from monitor.alerts import Thresholds, evaluate
from monitor.sample import DiskSample, ProcessSample, ReaderSample, RingSample, Sample
from monitor.series import History
from monitor.terminal import BARS, dashboard, sparkline


def test_sparkline_scales_to_its_maximum_and_keeps_the_tail() -> None:
    assert sparkline([]) == ""
    assert sparkline([0, 0, 0]) == BARS[0] * 3
    assert sparkline([0, 5, 10]) == BARS[0] + BARS[4] + BARS[7]
    assert sparkline(list(range(100)), width=10) == sparkline(list(range(90, 100)), width=10)


def _sample(wall_ns: int, published: int) -> Sample:
    running = ProcessSample(
        "recorder",
        42,
        "running",
        True,
        cpu_percent=3.5,
        rss_bytes=40 * 2**20,
        threads=4,
        ctx_voluntary=10,
        ctx_involuntary=2,
        fds=12,
        connections=2,
        records_in=published,
        records_in_rate=published / 2,
        control_rtt_us=900.0,
        uptime_s=12.0,
    )
    down = ProcessSample("matching.0", None, "backoff", False, restarts=3, last_exit=-9)
    reader = ReaderSample("recorder", 42, published, 0, True, True, 0)
    ring = RingSample("execs.0", 1024, published, 0, 0, 5, 7, False, rate=500.0, readers=[reader])
    sample = Sample(
        prefix="shmex_x",
        home="/tmp/x",
        wall_ns=wall_ns,
        monotonic_s=wall_ns / 1e9,
        supervisor_up=False,
        processes=[running, down],
        rings=[ring],
        disk=DiskSample(
            journal_bytes=3 * 2**20, history_bytes=0, free_bytes=2**30, total_bytes=2**31
        ),
    )
    sample.alerts = evaluate(sample, Thresholds())
    return sample


def test_dashboard_frame_shows_numbers_states_and_alerts() -> None:
    history = History()
    for n in range(1, 4):
        sample = _sample(n * 10**9, 1000 * n)
        history.add(sample)
    console = Console(record=True, width=170, file=io.StringIO())
    console.print(dashboard(sample, history))
    text = console.export_text()
    assert "supervisor not answering" in text
    assert "recorder" in text and "40.0 MB" in text and "3000" in text and "1.5k/s" in text
    assert "matching.0" in text and "backoff" in text
    assert "CRITICAL" in text and "process_down" in text and "matching.0 is backoff" in text
    assert "journal 3.0 MB" in text
    assert "control_rtt p50" in text and "900 µs" in text
