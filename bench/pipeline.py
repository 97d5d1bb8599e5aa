"""`bin/bench pipeline`: orders through accounts → matching → accounts with real processes.

Starts an instance (unique prefix, temporary home, only accounts and matching so nothing else
competes for the two cores), drives it with bin/loadgen's direct client in this process, and
always tears it down. Rows: sustained orders/s flat out (sync and async journal), then order →
answer and order → matched latency p50/p99/p99.9 at offered loads of 1k, 5k, 10k and 50k
orders/s (sync); for each, the CPU time per order of accounts, matching and the load generator
itself, the accounts journal's fdatasyncs per 1,000 orders (group commit at work), and where
the time goes, stage by stage (p50/p99 over the run, from the processes' `status` histograms):
each ring hop (`ring_wait`: the writer stamped the record, the reader took it), each batch's
handling (`stage_latency`), the wait of held outputs for their fsync (`commit_wait`) and the
fdatasync itself (`fsync`), plus the answer's last hop into the load generator.
QAExchange-RS's documented claims are added as labelled reference rows (not measured here).
SHMEX_BENCH_SCALE multiplies the order counts (default 1).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from bench.common import Results
from ipc.control import call
from ipc.metrics import Histogram
from ipc.shm import unlink_prefix
from services import config as configuration
from services.loadgen import DirectClient, LoadConfig, LoadGenerator

ROOT = Path(__file__).resolve().parents[1]
EXCHANGE = ROOT / "bin" / "exchange"
SCALE = float(os.environ.get("SHMEX_BENCH_SCALE", "1"))
FLAT_ORDERS = int(30_000 * SCALE)
RATE_SECONDS = 4.0 * SCALE
RATES = (1_000, 5_000, 10_000, 50_000)
MEASURED = ("accounts", "matching.0")
"""The processes whose CPU time per order each run reports."""
STAGES = (
    ("accounts", "ring_wait", "cmd", "cmd -> accounts"),
    ("accounts", "stage_latency", "", "accounts batch"),
    ("accounts", "fsync", "", "accounts fsync"),
    ("accounts", "commit_wait", "", "accounts held for fsync"),
    ("matching.0", "ring_wait", "orders.0", "orders -> matching"),
    ("matching.0", "stage_latency", "", "matching batch"),
    ("matching.0", "commit_wait", "", "matching held for fsync"),
    ("accounts", "ring_wait", "execs.0", "execs -> accounts"),
)
"""(process, histogram, ring label, row name) of the stage timings each run reports."""


class Instance:
    """One exchange instance for the benchmark, started and stopped through bin/exchange."""

    def __init__(self, home: Path, mode: str) -> None:
        self.prefix = f"shmex_bench{os.getpid()}{mode}"
        self.home = home / mode
        self.home.mkdir(parents=True)
        self.config_file = self.home / "bench.toml"
        self.config_file.write_text(
            f'[processes]\nenabled = ["accounts", "matching"]\n[durability]\nmode = "{mode}"\n'
        )
        self.flags = [
            "--prefix",
            self.prefix,
            "--home",
            str(self.home),
            "--config",
            str(self.config_file),
        ]

    def config(self) -> configuration.Config:
        return configuration.load(
            self.config_file,
            env={},
            overrides={"instance.prefix": self.prefix, "instance.home": str(self.home)},
        )

    def exchange(self, *args: str) -> None:
        subprocess.run(
            [str(EXCHANGE), *self.flags, *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=180,
            cwd=ROOT,
        )

    def __enter__(self) -> Instance:
        self.exchange("up")
        return self

    def __exit__(self, *_exc: object) -> None:
        try:
            self.exchange("down")
        finally:
            unlink_prefix(self.prefix + ".")


def settle(instance: Instance, timeout: float = 300.0) -> None:
    """Wait until the previous run's backlog is gone: matching has taken every order and
    accounts has read every exec (twice in a row), so runs do not measure each other."""
    endpoint = instance.config().control_endpoint("accounts")
    quiet = 0
    deadline = time.monotonic() + timeout
    while quiet < 2 and time.monotonic() < deadline:
        rings = call(endpoint, "status", timeout=10.0)["rings"]
        lags = [r["lag"] for name in ("orders.0", "execs.0") for r in rings[name]["readers"]]
        quiet = quiet + 1 if not any(lags) else 0
        time.sleep(0.2)


def cpu_seconds(instance: Instance) -> dict[str, float]:
    """User + system CPU seconds each measured process has used so far (from its pid), and
    this process's own (the load generator), under "loadgen"."""
    config = instance.config()
    out = {"loadgen": time.process_time()}
    for name in MEASURED:
        pid = call(config.control_endpoint(name), "status", timeout=10.0)["pid"]
        times = psutil.Process(pid).cpu_times()
        out[name] = times.user + times.system
    return out


def stage_histograms(instance: Instance) -> dict[tuple[str, str, str], Histogram]:
    """The STAGES histograms of the measured processes as they are now (since they started)."""
    config = instance.config()
    out = {}
    for name in MEASURED:
        status = call(config.control_endpoint(name), "status", timeout=10.0)
        for entry in status["metrics"]["histograms"]:
            ring = dict(entry["labels"]).get("ring", "")
            key = (name, entry["name"], "cmd" if ring.startswith("cmd.") else ring)
            histogram = Histogram.from_snapshot(entry["histogram"])
            if key in out:  # every cmd ring together
                histogram.merge(out[key])
            out[key] = histogram
    return out


def stage_percentiles(
    before: dict[tuple[str, str, str], Histogram], after: dict[tuple[str, str, str], Histogram]
) -> dict[str, dict[str, float]]:
    """p50/p99 in µs of what each stage recorded between two `stage_histograms`."""
    out = {}
    for process, metric, ring, label in STAGES:
        now = after.get((process, metric, ring))
        if now is None:
            continue
        delta = Histogram(now.unit)
        delta.counts = now.counts.copy()
        earlier = before.get((process, metric, ring))
        if earlier is not None:
            delta.counts -= earlier.counts
        delta.count = int(delta.counts.sum())
        delta.maximum = now.maximum
        if delta.count:
            out[label] = {q: delta.percentile(p) / 1000 for q, p in (("p50", 50), ("p99", 99))}
    return out


def journal_syncs(instance: Instance) -> int:
    """fdatasyncs of the accounts journal so far."""
    status = call(instance.config().control_endpoint("accounts"), "status", timeout=10.0)
    return int(status["service"]["journal_syncs"])


def run_load(instance: Instance, load: LoadConfig) -> dict[str, Any]:
    """Run one load; the summary gains `cpu_us_per_order` per process (CPU time the process
    used during the run over the orders sent: stable under other load, unlike wall time)."""
    settle(instance)
    before, syncs = cpu_seconds(instance), journal_syncs(instance)
    stages = stage_histograms(instance)
    with DirectClient(instance.config()) as client:
        summary = LoadGenerator(client, load).run().summary()
    settle(instance)
    after = cpu_seconds(instance)
    summary["stages_us"] = stage_percentiles(stages, stage_histograms(instance))
    summary["stages_us"]["events -> loadgen (answer)"] = {
        q: summary["answer_hop_us"][q] for q in ("p50", "p99")
    }
    orders = max(1, int(summary["answered"]))
    summary["cpu_us_per_order"] = {
        name: round((after[name] - before[name]) * 1e6 / orders, 1) for name in after
    }
    summary["fsyncs_per_1k_orders"] = round((journal_syncs(instance) - syncs) * 1000 / orders, 1)
    return summary


def add_latency(results: Results, workload: str, summary: dict[str, Any]) -> None:
    for name, value in summary["cpu_us_per_order"].items():
        results.add("shmex", workload, f"{name.split('.')[0]} CPU per order", value, "us")
    results.add(
        "shmex", workload, "accounts fsyncs per 1k orders", summary["fsyncs_per_1k_orders"], ""
    )
    for kind in ("answer", "matched"):
        percentiles = summary[f"{kind}_latency_us"]
        for q in ("p50", "p99", "p99.9"):
            results.add("shmex", workload, f"order->{kind} {q}", percentiles[q], "us")
    for stage, percentiles in summary["stages_us"].items():
        for q, value in percentiles.items():
            results.add("shmex", workload, f"stage {stage} {q}", round(value, 1), "us")


def main() -> int:
    results = Results("pipeline")
    notes = [
        "only accounts and matching run; the load generator is a third Python process",
        "order->answer: injection to COMMAND_ACCEPTED/REJECTED on events (after the journal);"
        " order->matched: injection to the first ORDER_UPDATED after matching's exec came back",
    ]
    with tempfile.TemporaryDirectory(prefix="shmex-bench-") as home:
        for mode in ("sync", "async"):
            with Instance(Path(home), mode) as instance:
                summary = run_load(
                    instance, LoadConfig(orders=FLAT_ORDERS, seed=11, account_base=1)
                )
                workload = f"flat out, {mode} journal"
                results.add("shmex", workload, "orders/s", summary["orders_per_s"], "orders/s")
                add_latency(results, workload, summary)
                if mode != "sync":
                    continue
                for rate in RATES:
                    load = LoadConfig(
                        orders=0, seconds=RATE_SECONDS, rate=rate, seed=rate, account_base=rate
                    )
                    summary = run_load(instance, load)
                    workload = f"{rate:,} orders/s offered, sync"
                    results.add("shmex", workload, "orders/s", summary["orders_per_s"], "orders/s")
                    add_latency(results, workload, summary)
                    print(f"{workload}: {summary}", file=sys.stderr)
                    time.sleep(0.5)
    results.add("QAExchange-RS (claimed)", "documentation", "orders/s", 150_000, "orders/s")
    results.add("QAExchange-RS (claimed)", "documentation", "end-to-end p99", 950, "us")
    results.finish(notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
