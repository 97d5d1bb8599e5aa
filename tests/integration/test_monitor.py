"""The monitor against a real instance (`bin/exchange up`): alerts on a kill, terminal views."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import numpy as np
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from ipc import records
from ipc.records import Kind
from ipc.ring import Ring
from monitor.collector import Collector
from monitor.series import History
from monitor.terminal import dashboard, status_text
from tests.integration.conftest import ROOT, Exchange

KILL_ALERT_S = 2.0
RECORDER_ALERTS = {"process_down", "process_restarting"}


def publish_execs(instance: Exchange, count: int, first_seq: int) -> bool:
    """Write `count` records into the instance's execs.0 as matching would (the recorder reads
    them). Returns False without writing when a live matching process owns the ring."""
    ring = Ring.attach(f"{instance.prefix}.execs.0", records.EXEC)
    try:
        if ring.stats()["writer_alive"]:
            return False
        batch = records.new_batch(records.EXEC, count)
        batch["kind"] = np.where(np.arange(count) % 2, Kind.TRADE, Kind.ORDER_ACCEPTED)
        batch["seq"] = np.arange(first_seq, first_seq + count)
        writer = ring.writer()
        try:
            writer.write(batch, timeout=10)
        finally:
            writer.close()
        return True
    finally:
        ring.close()


def _recorder_alerts(collector: Collector) -> list[str]:
    sample = collector.sample()
    return [a.rule for a in sample.alerts if a.subject == "recorder" and a.rule in RECORDER_ALERTS]


def test_a_killed_process_raises_an_alert_within_two_seconds(exchange: Exchange) -> None:
    with Collector(exchange.prefix, exchange.home) as collector:
        first = collector.sample()
        assert first.supervisor_up and not first.alerts, first.alerts
        recorder = first.process("recorder")
        assert recorder is not None and recorder.up and recorder.status is not None
        os.kill(recorder.pid, signal.SIGKILL)  # type: ignore[arg-type]
        killed = time.monotonic()
        found: list[str] = []
        while not found and time.monotonic() - killed < KILL_ALERT_S:
            found = _recorder_alerts(collector)
        elapsed = time.monotonic() - killed
        assert found, f"no alert for the killed recorder within {KILL_ALERT_S}s"
        assert elapsed < KILL_ALERT_S
        # The supervisor restarts it; the restart stays visible as a warning for a while.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            sample = collector.sample()
            row = sample.process("recorder")
            if row is not None and row.up and row.pid != recorder.pid:
                break
            time.sleep(0.1)
        assert row is not None and row.up and row.restarts == 1
        rules = {(a.rule, a.subject) for a in sample.alerts}
        assert ("process_restarting", "recorder") in rules
        assert ("process_down", "recorder") not in rules


def test_terminal_dashboard_shows_live_numbers(exchange: Exchange) -> None:
    history = History()
    with Collector(exchange.prefix, exchange.home) as collector:
        history.add(collector.sample())
        wrote = publish_execs(exchange, 25, 1)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            time.sleep(0.2)
            sample = collector.sample()
            history.add(sample)
            recorder = sample.process("recorder")
            if not wrote or (recorder and recorder.records_in == 25):
                break
    console = Console(record=True, width=170, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(dashboard(sample, history))
    text = console.export_text()
    assert f"shmex monitor  {exchange.prefix}" in text
    assert re.search(r"recorder\s*│\s*running\s*│\s*\d+", text), text
    assert re.search(r"supervisor\s*│\s*running", text)
    rss = re.search(r"recorder\s*│.*?│\s*([\d.]+) MB", text)
    assert rss and float(rss.group(1)) > 1.0
    if wrote:
        assert re.search(r"execs\.0\s*│\s*25\s*│", text), text
        assert sample.process("recorder").records_in == 25  # type: ignore[union-attr]
        assert max(history.values("throughput")) > 0
    assert "no alerts" in text


def test_bin_monitor_once_and_prometheus(exchange: Exchange) -> None:
    flags = ["--prefix", exchange.prefix, "--home", str(exchange.home)]
    once = subprocess.run(
        [str(ROOT / "bin" / "monitor"), *flags, "--once", "--width", "160", "--interval", "0.2"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert once.returncode == 0, once.stderr
    assert "recorder" in once.stdout and "execs.0" in once.stdout
    scrape = subprocess.run(
        [str(ROOT / "bin" / "monitor"), *flags, "--prometheus", "--interval", "0.2"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert scrape.returncode == 0, scrape.stderr
    up = {
        s.labels["process"]: s.value
        for family in text_string_to_metric_families(scrape.stdout)
        for s in family.samples
        if s.name == "shmex_process_up"
    }
    assert up["supervisor"] == 1.0 and up["recorder"] == 1.0
    assert set(up.values()) == {1.0}, up


def test_status_text_renders_the_process_table_once(exchange: Exchange) -> None:
    text = status_text(exchange.prefix, exchange.home, width=160)
    assert re.search(r"recorder\s*│\s*running", text)
    assert "execs.0" in text


def test_status_text_of_a_stopped_instance(exchange: Exchange) -> None:
    assert exchange.run("down").returncode == 0
    text = status_text(exchange.prefix, exchange.home, width=160)
    assert re.search(r"supervisor\s*│\s*down", text)
    assert "process_down" in text
