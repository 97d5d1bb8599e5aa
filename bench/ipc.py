"""`bin/bench ipc`: this ring side by side with iceoryx2, pyzmq and multiprocessing.Queue.

One-way throughput (records/s) for 64- and 128-byte records sent one per message and 64 per
message, and the round-trip latency (p50/p99/p99.9) of one 64-byte record between two
processes. Every figure is the median of --repeat runs; peers run in the same invocation.

The multi-ring case measures what a process with several input rings (accounts) sees: the echoer
waits on 4 rings like services/process.py's Runner, with one doorbell for all of them (now) or
sleeping on each ring in turn for a 1 ms slice (the Runner before the doorbell), side by side:
the round trip of a record arriving on the rings in turn, and the CPU the echoer burns idle.

    bin/bench ipc            # full run (a few minutes)
    bin/bench ipc --quick    # smoke run: fewer records, one repeat
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import queue
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from bench import ipc_peers
from bench.common import Results, percentile
from bench.ipc_peers import MULTI_RING_SYSTEMS, MULTI_RINGS, RING_CAPACITY, Job
from ipc.ring import Ring, unlink_prefix

log = logging.getLogger("bench.ipc")
T = TypeVar("T")

SYSTEMS = {
    "ring-busy": "shmex ring busy-poll",
    "ring-sleep": "shmex ring sleep/wake",
    "iceoryx2": "iceoryx2 0.10 (python)",
    "zmq": "pyzmq ipc:// PUSH/PULL",
    "mpqueue": "multiprocessing.Queue",
}
MULTI_SYSTEMS = {
    "ring-inbox": "shmex Runner wait: one doorbell",
    "ring-slices": "shmex Runner wait: 1 ms slice per ring (before)",
}
RTT_LABELS = {**SYSTEMS, **MULTI_SYSTEMS, "zmq": "pyzmq ipc:// PAIR"}
MULTI_WORKLOAD = f"round trip 64B, {MULTI_RINGS} input rings"
IDLE_SECONDS = 2.0
# Records per run, sized for ~1 s each on a 2-core machine (divided by 10 with --quick).
COUNTS = {
    ("ring-busy", 1): 400_000,
    ("ring-sleep", 1): 300_000,
    ("iceoryx2", 1): 200_000,
    ("zmq", 1): 200_000,
    ("mpqueue", 1): 60_000,
    ("ring-busy", 64): 4_000_000,
    ("ring-sleep", 64): 4_000_000,
    ("iceoryx2", 64): 3_000_000,
    ("zmq", 64): 2_000_000,
    ("mpqueue", 64): 1_000_000,
}
SIZES = (64, 128)
BLOCKS = (1, 64)
ROUND_TRIPS = 20_000
WARMUP = 1_000
JOIN_TIMEOUT = 90.0
ATTEMPTS = 3


class Bench:
    """Runs every measurement under one instance prefix and cleans up after itself."""

    def __init__(self, quick: bool, repeat: int) -> None:
        self.scale = 10 if quick else 1
        self.repeat = repeat
        self.context = multiprocessing.get_context("spawn")
        self.prefix = f"shmex_bench{os.getpid()}"
        self.sockets = tempfile.mkdtemp(prefix="shmex_bench_")
        self.runs = 0
        self.remarks: list[str] = []
        self.foreign_before = _iceoryx2_files()

    def close(self) -> None:
        """Remove our rings, sockets, and the iceoryx2 files this run created (its global
        management segment outlives its nodes)."""
        unlink_prefix(self.prefix)
        shutil.rmtree(self.sockets, ignore_errors=True)
        for path in _iceoryx2_files() - self.foreign_before:
            path.unlink(missing_ok=True)

    def throughput(self, system: str, size: int, block: int) -> float:
        """Median records/s over `repeat` runs."""
        count = COUNTS[system, block] // self.scale // block * block
        label = f"{system} {size}B x{block}"
        rates = [
            self._attempt(
                label, lambda: self._one_way(Job(system, size, block, count, self._name(system)))
            )
            for _ in range(self.repeat)
        ]
        return statistics.median(rates)

    def round_trip(self, system: str) -> list[int]:
        """Sorted round-trip latencies (ns) of one 64-byte record, all repeats pooled."""
        latencies: list[int] = []
        trips, warmup = ROUND_TRIPS // self.scale, WARMUP // self.scale
        for _ in range(self.repeat):
            latencies.extend(
                self._attempt(
                    f"{system} round trip",
                    lambda: self._round_trip(Job(system, 64, 1, trips, self._name(system), warmup)),
                )
            )
        return sorted(latencies)

    def _attempt(self, label: str, measure: Callable[[], T]) -> T:
        """Run one measurement, retrying one that hangs or dies (each failure is noted)."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return measure()
            except RuntimeError as error:
                self.remarks.append(f"{label}, attempt {attempt} failed: {error}")
                log.warning("%s", self.remarks[-1])
        raise RuntimeError(f"{label}: all {ATTEMPTS} attempts failed")

    def _name(self, system: str) -> str:
        self.runs += 1
        if system.startswith("ring"):
            return f"{self.prefix}.run{self.runs}"
        if system == "iceoryx2":
            return f"{self.prefix}/run{self.runs}"
        return f"ipc://{self.sockets}/run{self.runs}.sock"

    def _one_way(self, job: Job) -> float:
        ready, sent, done = self.context.Event(), self.context.Event(), self.context.Event()
        results = self.context.Queue()
        queue = self.context.Queue(RING_CAPACITY // job.block) if job.system == "mpqueue" else None
        with self._rings(job, [job.name]):
            receiver = self.context.Process(
                target=ipc_peers.receive, args=(job, ready, sent, done, results, queue)
            )
            sender = self.context.Process(target=ipc_peers.send, args=(job, sent, done, queue))
            with _running(receiver):
                _wait_ready(ready, receiver)
                with _running(sender):
                    outcome = _result(results, receiver)
        if outcome["lost"]:
            self.remarks.append(
                f"{job.system} {job.size}B x{job.block}: {outcome['lost']} of {job.count} records "
                f"had not arrived {ipc_peers.GRACE:g} s after the sender finished (counted lost; "
                "the rate counts the delivered ones)"
            )
        return outcome["records"] / outcome["seconds"]

    def idle_cpu(self, system: str) -> float:
        """CPU share (%) of one core that a multi-ring echoer burns while nothing arrives."""
        job = Job(system, 64, 1, 0, self._name(system))
        results = self.context.Queue()
        with self._rings(job, ipc_peers.multi_ring_names(job.name)):
            idler = self.context.Process(
                target=ipc_peers.idle_cpu, args=(job, IDLE_SECONDS / self.scale**0.5, results)
            )
            with _running(idler):
                return 100.0 * _result(results, idler)

    def _round_trip(self, job: Job) -> list[int]:
        ready, results = self.context.Event(), self.context.Queue()
        queues = (self.context.Queue(), self.context.Queue()) if job.system == "mpqueue" else None
        names = [f"{job.name}.ping", f"{job.name}.pong"]
        if job.system in MULTI_RING_SYSTEMS:
            names = ipc_peers.multi_ring_names(job.name)
        with self._rings(job, names):
            echoer = self.context.Process(target=ipc_peers.echo, args=(job, ready, queues))
            pinger = self.context.Process(target=ipc_peers.ping, args=(job, results, queues))
            with _running(echoer):
                _wait_ready(ready, echoer)
                with _running(pinger):
                    return _result(results, pinger)

    @contextmanager
    def _rings(self, job: Job, names: list[str]) -> Iterator[None]:
        """Create the job's rings (with the reader registered up front) if it uses rings."""
        if not job.system.startswith("ring"):
            yield
            return
        rings = [
            Ring.create(name, ipc_peers.record_dtype(job.size), RING_CAPACITY) for name in names
        ]
        try:
            for ring in rings:
                ring.reader("bench").close()
            yield
        finally:
            for ring in rings:
                ring.unlink()
                ring.close()


@contextmanager
def _running(process: Any) -> Iterator[None]:
    """Start a peer; on the way out wait for it (bounded), kill it if it hangs, check its exit."""
    process.start()
    try:
        yield
        process.join(JOIN_TIMEOUT)
    finally:
        if process.is_alive():
            process.kill()
            process.join(10)
    if process.exitcode != 0:
        raise RuntimeError(f"bench peer {process.name} exited with {process.exitcode}")


def _iceoryx2_files() -> set[Path]:
    return set(Path("/dev/shm").glob("iox2_*"))


def _result(results: Any, process: Any) -> Any:
    """The measuring peer's result, failing fast if that peer dies first."""
    deadline = time.monotonic() + JOIN_TIMEOUT
    while time.monotonic() < deadline:
        try:
            return results.get(timeout=0.2)
        except queue.Empty:
            if not process.is_alive() and results.empty():
                raise RuntimeError(f"bench peer {process.name} died ({process.exitcode})") from None
    raise RuntimeError(f"bench peer {process.name} gave no result in {JOIN_TIMEOUT}s")


def _wait_ready(ready: Any, process: Any) -> None:
    if not ready.wait(JOIN_TIMEOUT) or not process.is_alive():
        raise RuntimeError(f"bench peer {process.name} did not start")


def run(bench: Bench, systems: list[str]) -> Results:
    results = Results("ipc")
    for size in SIZES:
        for block in BLOCKS:
            for system in (s for s in systems if s in SYSTEMS):
                rate = bench.throughput(system, size, block)
                workload = f"one-way {size}B x{block}/msg"
                results.add(SYSTEMS[system], workload, "throughput", rate, "rec/s")
                log.info("%s %s: %.0f rec/s", system, workload, rate)
    for system in systems:
        latencies = bench.round_trip(system)
        workload = MULTI_WORKLOAD if system in MULTI_SYSTEMS else "round trip 64B"
        for q in (50, 99, 99.9):
            micros = percentile(latencies, q) / 1000
            results.add(RTT_LABELS[system], workload, f"p{q:g}", micros, "us")
        log.info("%s %s p50 %.1f us", system, workload, percentile(latencies, 50) / 1000)
    for system in (s for s in systems if s in MULTI_SYSTEMS):
        share = bench.idle_cpu(system)
        results.add(MULTI_SYSTEMS[system], f"idle, {MULTI_RINGS} input rings", "cpu", share, "%")
        log.info("%s idle: %.2f%% of a core", system, share)
    return results


def notes(results: Results, quick: bool, repeat: int) -> list[str]:
    """Ratios against iceoryx2 and the issue's targets, plus the conditions of the run."""
    value = {(r.system, r.workload, r.metric): r.value for r in results.rows}
    lines = [f"each figure: median of {repeat} run(s){' (--quick)' if quick else ''}"]
    iceoryx2 = SYSTEMS["iceoryx2"]
    for mode in ("ring-busy", "ring-sleep"):
        for size in SIZES:
            for block, target in ((1, 4.0), (64, 1.0)):
                workload = f"one-way {size}B x{block}/msg"
                ours = value.get((SYSTEMS[mode], workload, "throughput"))
                theirs = value.get((iceoryx2, workload, "throughput"))
                if ours and theirs:
                    ratio = ours / theirs
                    verdict = "meets" if ratio >= target else "misses"
                    lines.append(
                        f"{SYSTEMS[mode]} / iceoryx2, {workload}: {ratio:.2f}x "
                        f"({verdict} target {target:g}x)"
                    )
    for mode, p50_target, p99_target in (("ring-busy", 4, 15), ("ring-sleep", 30, 150)):
        p50 = value.get((SYSTEMS[mode], "round trip 64B", "p50"))
        p99 = value.get((SYSTEMS[mode], "round trip 64B", "p99"))
        if p50 is not None and p99 is not None:
            lines.append(
                f"{SYSTEMS[mode]} round trip: p50 {p50:.1f} us (target <= {p50_target}), "
                f"p99 {p99:.1f} us (target <= {p99_target})"
            )
    after, before = (MULTI_SYSTEMS[s] for s in MULTI_RING_SYSTEMS)
    figures = {
        label: [value.get((label, MULTI_WORKLOAD, q)) for q in ("p50", "p99")]
        + [value.get((label, f"idle, {MULTI_RINGS} input rings", "cpu"))]
        for label in (after, before)
    }
    if all(v is not None for row in figures.values() for v in row):
        (p50, p99, idle), (p50_0, p99_0, idle_0) = figures[after], figures[before]
        lines.append(
            f"{MULTI_RINGS} input rings, doorbell vs per-ring slices (before): round trip p50 "
            f"{p50:.1f} vs {p50_0:.1f} us, p99 {p99:.1f} vs {p99_0:.1f} us; idle CPU "
            f"{idle:.2f}% vs {idle_0:.2f}% of a core"
        )
    return lines


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bin/bench ipc", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--repeat", type=int, help="runs per figure (default 3, --quick 1)")
    parser.add_argument("--systems", default=",".join(RTT_LABELS), help="comma-separated subset")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    repeat = args.repeat or (1 if args.quick else 3)
    systems = [s for s in args.systems.split(",") if s]
    unknown = set(systems) - set(RTT_LABELS)
    if unknown:
        parser.error(f"unknown systems {sorted(unknown)}; choose from {sorted(RTT_LABELS)}")
    bench = Bench(args.quick, repeat)
    try:
        results = run(bench, systems)
    finally:
        bench.close()
    results.finish(notes(results, args.quick, repeat) + bench.remarks)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
