"""The base every shmex process runs on: flags, config, logging, control, and the ring loop.

A process is a thin shell around a pure core. `Service` subclasses say which rings they read
and what to do with a batch; `Runner` owns everything else: it attaches the rings, answers the
control socket between batches (never blocking on it), and when every input is empty waits once
for all of them: a bounded spin over every input ring, then one sleep on the process's doorbell
(ipc/doorbell.py), which any input's writer posts; the sleep is bounded by `wait.sleep_ms` so
control and heartbeats still run. After each pass that moved records it tells the service
whether many more are already waiting (`end_pass`: the accounts journal syncs in the
background when busy, in the loop when not), and after a batch that leaves a backlog, at once.
A thread of the service (the journal's sync thread) wakes the loop the same way through
`Service.wake`, and `Service.due`/`run_due` do what it announced, between batches. Every batch
read records `ring_wait` (now minus the first record's `ts_init`: the hop from the writer),
so each process's `status` says where an order's time goes (docs/durability.md). Python's
automatic full garbage collections are off (on a large heap one stalls the loop for hundreds of
milliseconds: a latency tail every few thousand orders); the Runner runs them when the process
has been quiet for a while. It stops gracefully on SIGTERM
or a `shutdown` request after draining its inputs, and turns any exception into one log line naming
the record it died on plus a non-zero exit for the supervisor to restart it. A batch is released
only after its handler returns, so a restarted process resumes at the batch that killed it.
"""

from __future__ import annotations

import argparse
import cProfile
import ctypes
import gc
import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar

import numpy as np
import zmq

from ipc import records
from ipc.control import ControlServer
from ipc.doorbell import Doorbell, Inbox, Nudge, doorbell_name
from ipc.metrics import Counter, Histogram, Metrics
from ipc.ring import Ring, RingReader, RingWriter
from ipc.wait import WaitConfig
from services import config as configuration
from services import logs
from services.recovery import CommitGate

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
HANDLE_SAMPLES = 4096
"""How many recent batch handling times `status` computes its percentiles from."""
EXIT_CRASHED = 70
"""Exit status after an unhandled exception (EX_SOFTWARE); the supervisor restarts the process."""
BUSY_BACKLOG = 16
"""Records waiting in the inputs after a pass (or a batch) that make it `busy` for
`Service.end_pass`: with fewer, the accounts loop fsyncs itself (handing the fsync to a thread
and being woken back costs two context switches, more CPU than the few records gain by
overlapping it)."""
GC_QUIET_S = 1.0
"""A full garbage collection waits until no input record has arrived for this long..."""
GC_FULL_EVERY_S = 60.0
"""...and runs at most this often..."""
GC_FULL_MAX_S = 600.0
"""...or after this long anyway, so a process that is never quiet still frees cyclic garbage."""
GC_OLDEST_THRESHOLD = 1 << 30
"""The oldest generation's threshold: never reached, so Python never starts a full collection."""
PROFILE_ENV = "SHMEX_PROFILE"
"""Set (to anything but "" or "0"), every Runner profiles its loop with cProfile and writes
`<home>/<instance>.prof` when it stops: where a process's CPU goes, for `pstats`."""


class Service:
    """What one process does. Subclasses override the hooks; constructors do no I/O."""

    name: ClassVar[str] = "service"
    gate: CommitGate | None = None
    """A journaling service's outputs wait here for their fsync (`CommitGate.under_runner`);
    the default `end_pass`/`due`/`run_due` drive it."""

    def __init__(self, config: configuration.Config, instance_name: str, shard: int = 0) -> None:
        self.config = config
        self.instance_name = instance_name
        self.shard = shard
        self.metrics = Metrics()
        """Counters, gauges and histograms of this process; `status` returns their snapshot."""
        self.writers: dict[str, RingWriter] = {}
        """The writers of `outputs()`, by ring name, set up by the Runner before `start()`."""
        self.rings: dict[str, Ring] = {}
        """Every attached input and output ring, by ring name (for `created_ns`, readers)."""
        self.wake: Callable[[], None] | None = None
        """Set by the Runner before `start()`: a thread of the service calls it after making
        `due()` true, to wake the loop (None without a Runner: tests call `handle` directly)."""

    def inputs(self) -> Sequence[str]:
        """Rings this process reads, without the instance prefix (`execs.0`, `cmd.1`)."""
        return ()

    def outputs(self) -> Sequence[str]:
        """Rings this process writes (it becomes their single writer), without the prefix."""
        return ()

    def start(self) -> None:
        """Open outputs, load the checkpoint: everything a (re)start needs before the loop."""

    def handle(self, ring: str, batch: np.ndarray[Any, Any]) -> None:
        """Process one batch read from `ring`; raise only on a bug (the process then crashes)."""
        raise NotImplementedError

    def end_pass(self, busy: bool) -> None:
        """Called after a pass over the inputs that handled records; `busy`: more records are
        already waiting (work that can overlap the next pass should start now: the fsync)."""
        if self.gate is not None:
            self.gate.commit(busy)

    def due(self) -> bool:
        """True when work that did not come from an input ring is ready for `run_due` (outputs
        whose journal sync completed). Polled while the loop waits: keep it cheap."""
        gate = self.gate
        return gate is not None and gate.due()

    def run_due(self) -> None:
        """Do what `due()` announced."""
        if self.gate is not None:
            self.gate.release()

    def tick(self, now_ns: int) -> None:
        """Called about every `processes.heartbeat_s`: time-based flushes, summaries."""

    def status(self) -> dict[str, Any]:
        """Counters for the `status` control command."""
        return {}

    def drained(self) -> bool:
        """True when a graceful stop may end the drain (a process that waits for answers to
        what it sent says False until they are in)."""
        return True

    def stop(self) -> None:
        """Flush and checkpoint after the inputs are drained."""

    def register_commands(self, server: ControlServer) -> None:
        """Add control commands beyond status/shutdown/checkpoint."""

    def checkpoint(self) -> Any:
        """Answer the `checkpoint` control command (stateless services have nothing to write)."""
        return None


def wait_config(config: configuration.Config) -> WaitConfig:
    """The ring wait strategy from the `[wait]` section."""
    section = config["wait"]
    return WaitConfig(
        spin_us=float(section["spin_us"]),
        yield_count=int(section["yield_count"]),
        sleep_timeout=section["sleep_ms"] / 1000,
        timeout=section["timeout_ms"] / 1000,
        sleep=not section["busy_poll"],
    )


class Runner:
    """Runs one `Service`: the main loop, the control socket, signals and the crash handler."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.config = service.config
        self.started_ns = time.time_ns()
        self._stop_reason: str | None = None
        self._rings: list[tuple[str, Ring, RingReader]] = []
        self._outputs: list[tuple[Ring, RingWriter]] = []
        self._context: zmq.Context[Any] | None = None
        self._control: ControlServer | None = None
        self._doorbell: Doorbell | None = None
        self._inbox: Inbox | None = None
        self._batch = int(self.config["wait"]["batch"])
        self._idle_s = self.config["wait"]["sleep_ms"] / 1000
        self._heartbeat_s = float(self.config["processes"]["heartbeat_s"])
        self._next_heartbeat = 0.0
        self._next_control = 0.0
        self._current: tuple[str, np.ndarray[Any, Any]] | None = None
        self.records_in = 0
        self.batches_in = 0
        self.heartbeat_ns = 0
        self._handle_ns = np.zeros(HANDLE_SAMPLES, dtype=np.int64)
        self._stage_latency = service.metrics.histogram("stage_latency")
        self._gc_full = service.metrics.histogram("gc_full")
        self._last_record = 0.0
        self._full_gc_at = 0.0
        self._batch_size = service.metrics.histogram("batch_size", unit="records")
        self._records_in: dict[str, Counter] = {}
        self._ring_wait: dict[str, Histogram] = {}

    @property
    def pid_file(self) -> Path:
        return self.config.home / f"{self.service.instance_name}.pid"

    def request_stop(self, reason: str) -> None:
        if self._stop_reason is None:
            self._stop_reason = reason
            log.info("stopping", extra={"fields": {"reason": reason}})

    def run(self) -> int:
        """The process's whole life; returns its exit status."""
        profile = cProfile.Profile() if os.environ.get(PROFILE_ENV, "0") not in ("", "0") else None
        try:
            self._open()
            self.service.start()
            self._observe_gate()
            self._tune_gc()
            log.info(
                "started",
                extra={"fields": {"inputs": ",".join(self.service.inputs()), "pid": os.getpid()}},
            )
            if profile is not None:
                profile.enable()
            while self._stop_reason is None:
                self._turn(idle_wait=True)
            if profile is not None:
                profile.disable()
                profile.dump_stats(self.config.home / f"{self.service.instance_name}.prof")
            self._drain()
            self.service.stop()
            log.info("stopped", extra={"fields": {"records": self.records_in}})
            return 0
        except Exception:
            log.critical("crashed", exc_info=True, extra={"fields": self._crash_fields()})
            return EXIT_CRASHED
        finally:
            self._close()

    def _open(self) -> None:
        self.config.home.mkdir(parents=True, exist_ok=True)
        self.pid_file.write_text(f"{os.getpid()}\n")
        if self.service.inputs():
            self._doorbell = Doorbell.open(
                doorbell_name(self.config.prefix, self.service.instance_name)
            )
        self._context = zmq.Context()
        self._control = ControlServer(
            self._context,
            self.config.control_endpoint(self.service.instance_name),
            None if self._doorbell is None else self._doorbell.name,
        )
        self._control.register("status", lambda _args: self.status())
        self._control.register("shutdown", self._on_shutdown)
        self._control.register("checkpoint", lambda _args: self.service.checkpoint())
        self.service.register_commands(self._control)
        waits = wait_config(self.config)
        for ring in self.service.inputs():
            name = self.config.ring_name(ring)
            attached = Ring.attach(name, records.ring_dtype(ring))
            self.service.rings[ring] = attached
            reader = attached.reader(self.service.instance_name, waits, self._doorbell)
            self._records_in[ring] = self.service.metrics.counter("records_in", ring=ring)
            self._ring_wait[ring] = self.service.metrics.histogram("ring_wait", ring=ring)
            self._rings.append((ring, attached, reader))
        if self._doorbell is not None:
            readers = [reader for _ring, _attached, reader in self._rings]
            nudge = Nudge(self._doorbell, self.service.due)
            self._inbox = Inbox(readers, self._doorbell, waits, nudge)
            self.service.wake = nudge.nudge
        for ring in self.service.outputs():
            attached = Ring.attach(self.config.ring_name(ring), records.ring_dtype(ring))
            writer = attached.writer(wait=waits)
            self._outputs.append((attached, writer))
            self.service.writers[ring] = writer
            self.service.rings[ring] = attached

    def _observe_gate(self) -> None:
        """Time the journaling service's commits in its metrics: `commit_wait` (an output
        batch held until its fsync) and `fsync` (each fdatasync)."""
        gate = self.service.gate
        if gate is not None:
            gate.waits = self.service.metrics.histogram("commit_wait")
            gate.journal.sync_times = self.service.metrics.histogram("fsync")

    def _on_shutdown(self, _args: dict[str, Any]) -> str:
        self.request_stop("control")
        return "stopping"

    def _turn(self, idle_wait: bool) -> int:
        """Read and handle one batch from each input; when all were empty, wait (bounded) for
        any of them at once, then read them all again."""
        moved = self._consume_all()
        if moved == 0 and idle_wait:
            if self._inbox is not None:
                if self._inbox.wait(self._idle_s):  # also ends when a control client knocks
                    moved = self._consume_all()
            else:
                assert self._control is not None
                self._control.poll(int(self._idle_s * 1000))
        if moved:
            self.service.end_pass(self._inbox is not None and self._inbox.backlog() >= BUSY_BACKLOG)
        if self.service.due():
            self.service.run_due()
        self._housekeeping(moved == 0)
        return moved

    def _consume_all(self) -> int:
        """One batch from each input. After a batch that leaves a backlog, its fsync starts at
        once (`end_pass(busy=True)`: in the sync thread, while the next batch is handled), and
        whatever became durable leaves between batches, not only after the pass."""
        moved = 0
        service = self.service
        inbox = self._inbox
        for ring, _attached, reader in self._rings:
            count = self._consume(ring, reader)
            if count:
                moved += count
                if inbox is not None and inbox.backlog() >= BUSY_BACKLOG:
                    service.end_pass(busy=True)
            if service.due():
                service.run_due()
        return moved

    def _consume(self, ring: str, reader: RingReader) -> int:
        view = reader.read(max_n=self._batch, timeout=0)
        count = 0 if view is None else len(view)
        if count:
            self._current = (ring, view)
            self._ring_wait[ring].record(time.time_ns() - int(view["ts_init"][0]))
            started = time.perf_counter_ns()
            self.service.handle(ring, view)
            elapsed = time.perf_counter_ns() - started
            self._handle_ns[self.batches_in % HANDLE_SAMPLES] = elapsed
            self._stage_latency.record(elapsed)
            self._batch_size.record(count)
            self._records_in[ring].inc(count)
            self._current = None
            reader.release(count)
            self.records_in += count
            self.batches_in += 1
        return count

    def _housekeeping(self, idle: bool) -> None:
        now = time.monotonic()
        if not idle:
            self._last_record = now
        if self._control is not None and (idle or now >= self._next_control):
            self._control.poll(0)
            self._next_control = now + 0.01
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + self._heartbeat_s
            self.heartbeat_ns = time.time_ns()
            self.service.tick(self.heartbeat_ns)
            self._collect_garbage(now)

    def _tune_gc(self) -> None:
        """After start-up: collect once, freeze what survived (modules, the recovered state:
        never scanned again) and leave full collections to `_collect_garbage`."""
        gc.collect()
        gc.freeze()
        young, middle, _oldest = gc.get_threshold()
        gc.set_threshold(young, middle, GC_OLDEST_THRESHOLD)
        self._full_gc_at = time.monotonic()

    def _collect_garbage(self, now: float) -> None:
        """A full collection once the inputs have been quiet for GC_QUIET_S (at most every
        GC_FULL_EVERY_S), or after GC_FULL_MAX_S whatever the load."""
        since = now - self._full_gc_at
        quiet = now - self._last_record >= GC_QUIET_S
        if since < GC_FULL_EVERY_S or (not quiet and since < GC_FULL_MAX_S):
            return
        started = time.perf_counter_ns()
        found = gc.collect()
        elapsed = time.perf_counter_ns() - started
        self._full_gc_at = time.monotonic()
        self._gc_full.record(elapsed)
        fields = {"ms": round(elapsed / 1e6, 1), "found": found}
        log.debug("full garbage collection", extra={"fields": fields})

    def _drain(self) -> None:
        """Handle what is already in the inputs (bounded by half the stop timeout), then stop."""
        deadline = time.monotonic() + float(self.config["supervisor"]["stop_timeout_s"]) / 2
        while time.monotonic() < deadline:
            if self._turn(idle_wait=False):
                continue
            if self.service.drained():
                break
            self._turn(idle_wait=True)

    def status(self) -> dict[str, Any]:
        rings = {}
        for ring, attached, _reader in self._rings:
            rings[ring] = attached.stats()
        for attached, _writer in self._outputs:
            rings[attached.name.removeprefix(self.config.prefix + ".")] = attached.stats()
        return {
            "name": self.service.instance_name,
            "pid": os.getpid(),
            "state": "running" if self._stop_reason is None else "stopping",
            "started_ns": self.started_ns,
            "uptime_s": round((time.time_ns() - self.started_ns) / 1e9, 3),
            "heartbeat_ns": self.heartbeat_ns,
            "records_in": self.records_in,
            "batches_in": self.batches_in,
            "handle_us": self._handle_percentiles(),
            "waits": {} if self._inbox is None else self._inbox.stats(),
            "rings": rings,
            "service": self.service.status(),
            "metrics": self.service.metrics.snapshot(),
        }

    def _handle_percentiles(self) -> dict[str, float]:
        """p50/p99/p99.9/max of the recent batches' handling time, in microseconds."""
        samples = self._handle_ns[: min(self.batches_in, HANDLE_SAMPLES)]
        if not len(samples):
            return {}
        p50, p99, p999 = np.percentile(samples, [50, 99, 99.9]) / 1000
        return {
            "p50": round(float(p50), 1),
            "p99": round(float(p99), 1),
            "p99.9": round(float(p999), 1),
            "max": round(float(samples.max()) / 1000, 1),
        }

    def _crash_fields(self) -> dict[str, Any]:
        if self._current is None:
            return {}
        ring, view = self._current
        return {
            "ring": ring,
            "batch": len(view),
            "first_seq": int(view["seq"][0]),
            "last_seq": int(view["seq"][-1]),
            "record": records.describe(view[0]),
        }

    def _close(self) -> None:
        for attached, writer in self._outputs:
            writer.close()
            attached.close()
        self._outputs.clear()
        self.service.writers.clear()
        self.service.rings.clear()
        for _ring, attached, _reader in self._rings:
            attached.close()
        self._rings.clear()
        self._inbox = None
        if self._doorbell is not None:
            self._doorbell.close()
            self._doorbell.unlink()  # writers reopen a restarted reader's doorbell by name
            self._doorbell = None
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._context is not None:
            self._context.term()
            self._context = None
        self.pid_file.unlink(missing_ok=True)


def _die_with_parent() -> None:
    """SIGTERM this process when the supervisor dies, so a killed supervisor orphans nothing."""
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


def parse_arguments(name: str, argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m services.{name}")
    configuration.add_arguments(parser)
    parser.add_argument("--name", default=name, help="instance name (control socket, log file)")
    parser.add_argument("--shard", type=int, default=0, help="matching shard / gateway id")
    parser.add_argument("--stderr", action="store_true", help="log to stderr too")
    parser.add_argument(
        "--supervised", action="store_true", help="started by the supervisor: exit when it dies"
    )
    return parser.parse_args(argv)


def main(service_class: type[Service], argv: Sequence[str] | None = None) -> int:
    """Entry point of a process module: `raise SystemExit(main(Recorder))`."""
    args = parse_arguments(service_class.name, argv)
    if args.supervised:
        _die_with_parent()
    config = configuration.from_arguments(args)
    logs.setup(args.name, config.home, to_stderr=args.stderr)
    service = service_class(config, args.name, args.shard)
    runner = Runner(service)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        runner.request_stop(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return runner.run()
