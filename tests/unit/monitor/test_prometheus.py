"""monitor/prometheus and `/metrics`: the official parser reads it; values follow a real ring."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import numpy as np
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from gateway.dashboard import add_monitor_routes
from ipc import records
from ipc.metrics import Metrics
from ipc.records import Kind
from ipc.ring import Ring
from monitor.collector import Collector
from monitor.prometheus import render
from monitor.sample import DiskSample, ProcessSample, Sample


def _families(text: str) -> dict[str, object]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def _values(text: str, sample_name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == sample_name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def _sample_with_metrics(metrics: Metrics) -> Sample:
    process = ProcessSample("matching.0", 42, "running", True, cpu_percent=12.5, rss_bytes=1000)
    process.status = {"records_in": 7, "batches_in": 2, "metrics": metrics.snapshot()}
    return Sample(
        prefix="shmex_x",
        home="/tmp/x",
        wall_ns=0,
        monotonic_s=0.0,
        supervisor_up=True,
        processes=[process],
        rings=[],
        disk=DiskSample(journal_bytes=10, history_bytes=20, free_bytes=30, total_bytes=40),
    )


def test_process_metrics_render_as_counters_gauges_and_exact_histograms() -> None:
    metrics = Metrics()
    metrics.counter("trades").inc(5)
    metrics.counter("rejects", code=1001).inc(2)
    metrics.counter("rejects", code='we"ird\\').inc(1)
    metrics.gauge("open_sessions").set(4)
    latencies = np.random.default_rng(3).lognormal(9, 1.5, 2000).astype(np.int64)
    metrics.histogram("stage_latency").record_many(latencies)
    metrics.histogram("batch_size", unit="records").record_many(np.array([1, 64, 64, 1024]))
    text = render(_sample_with_metrics(metrics))
    families = _families(text)
    assert families["shmex_trades"].type == "counter"
    assert _values(text, "shmex_trades_total") == {(("process", "matching.0"),): 5.0}
    rejects = _values(text, "shmex_rejects_total")
    assert rejects[(("code", "1001"), ("process", "matching.0"))] == 2.0
    assert rejects[(("code", 'we"ird\\'), ("process", "matching.0"))] == 1.0
    assert _values(text, "shmex_open_sessions") == {(("process", "matching.0"),): 4.0}
    assert families["shmex_stage_latency_seconds"].type == "histogram"
    buckets = _values(text, "shmex_stage_latency_seconds_bucket")
    previous = 0.0
    for labels, count in sorted(buckets.items(), key=lambda kv: float(dict(kv[0])["le"])):
        le = float(dict(labels)["le"])
        if le != float("inf"):
            assert count == int(np.sum(latencies < round(le * 1e9)))  # exact at 2**k ns
        assert count >= previous
        previous = count
    assert previous == len(latencies)
    (total,) = _values(text, "shmex_stage_latency_seconds_sum").values()
    assert abs(total - latencies.sum() / 1e9) < 1e-6
    sizes = _values(text, "shmex_batch_size_bucket")
    assert sizes[(("le", "64.0"), ("process", "matching.0"))] == 1  # only the 1 is below 64
    assert _values(text, "shmex_process_records_in_total") == {(("process", "matching.0"),): 7}
    assert _values(text, "shmex_disk_free_bytes") == {(): 30.0}


async def _scrape(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return await response.text()


async def _serve_and_watch(prefix: str, home: Path) -> list[str]:
    """Serve /metrics for the instance; scrape, publish records, scrape until they show."""
    ring = Ring.attach(f"{prefix}.execs.0", records.EXEC)
    reader = ring.reader("recorder")
    writer = ring.writer()
    app = web.Application()
    add_monitor_routes(app, Collector(prefix, home), interval_s=0.05)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}/metrics"
    scrapes = []
    try:
        async with aiohttp.ClientSession() as session:
            scrapes.append(await _scrape(session, url))
            batch = records.new_batch(records.EXEC, 100)
            batch["kind"] = Kind.TRADE
            batch["seq"] = np.arange(1, 101)
            writer.write(batch, timeout=5)
            scrapes.append(await _until(session, url, "shmex_ring_published_total", 100))
            view = reader.read(max_n=100, timeout=1)
            assert view is not None and len(view) == 100
            reader.release(100)
            scrapes.append(await _until(session, url, "shmex_ring_reader_position_total", 100))
    finally:
        writer.close()
        await runner.cleanup()
        ring.close()
    return scrapes


async def _until(session: aiohttp.ClientSession, url: str, name: str, want: float) -> str:
    deadline = time.monotonic() + 10
    while True:
        text = await _scrape(session, url)
        values = [v for labels, v in _values(text, name).items() if ("ring", "execs.0") in labels]
        if values == [want] or time.monotonic() > deadline:
            return text
        await asyncio.sleep(0.05)


def test_metrics_endpoint_parses_and_follows_a_real_ring(prefix: str, tmp_path: Path) -> None:
    ring = Ring.create(f"{prefix}.execs.0", records.EXEC, 1024)
    try:
        first, published, released = asyncio.run(_serve_and_watch(prefix, tmp_path))
    finally:
        ring.close()
        ring.unlink()
    at = (("ring", "execs.0"),)
    reader_at = (("reader", "recorder"), ("ring", "execs.0"))
    assert _values(first, "shmex_ring_published_total")[at] == 0
    assert _values(first, "shmex_ring_capacity")[at] == 1024
    assert _values(first, "shmex_up") == {(): 0.0}  # no supervisor in this run dir
    assert _values(published, "shmex_ring_published_total")[at] == 100
    assert _values(published, "shmex_ring_reader_lag")[reader_at] == 100
    assert _values(published, "shmex_ring_occupancy")[at] == 100
    assert _values(released, "shmex_ring_reader_lag")[reader_at] == 0
    assert _values(released, "shmex_ring_reader_position_total")[reader_at] == 100
    assert _values(released, "shmex_ring_reader_alive")[reader_at] == 1
