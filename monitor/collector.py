"""Samples a running instance from the outside: supervisor, processes, rings, disk.

Where the data comes from (nothing here needs the processes' cooperation beyond `status`):
- the supervisor's `status` on `<home>/supervisor.ctl` names every process with its pid, state
  and restart count; when the supervisor does not answer, the `<home>/*.pid` files do;
- psutil gives each live pid's CPU, memory, threads and context switches (in one `oneshot()`
  on a kept handle); one pass over `/proc/<pid>/fd` counts its fds, regular files and sockets
  (psutil's `net_connections` would parse the whole host's /proc/net tables for every process:
  ~5 ms each on a busy host, most of an idle gateway's CPU);
- each process's own `status` (control socket) adds its counters and metrics snapshot;
- ring headers are read directly from `/dev/shm/<prefix>.*` through `ipc.ring` (attached
  read-only in spirit: the collector never registers a reader or a writer);
- the journal and history directories under the run directory, and the disk they live on.

The collector keeps the previous sample to derive rates, restart ages and stuck readers.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from ipc import records
from ipc.control import ControlClient, ControlError, control_endpoint
from ipc.errors import IpcError
from ipc.liveness import pid_alive
from ipc.metrics import Histogram
from ipc.ring import Ring
from ipc.shm import SHM_DIR
from monitor import alerts as alert_rules
from monitor.sample import DiskSample, ProcessSample, ReaderSample, RingSample, Sample

log = logging.getLogger(__name__)

SUPERVISOR = "supervisor"
JOURNAL_DIR = "journal"
HISTORY_DIR = "history"
PROC_DIR = "/proc"


@dataclass(frozen=True)
class CollectorConfig:
    control_timeout_s: float = 0.3
    disk_every_s: float = 5.0  # directory sizes are walked at most this often


class Collector:
    """One instance's sampler: call `sample()` periodically from one thread, then `close()`."""

    def __init__(
        self,
        prefix: str,
        home: str | Path,
        config: CollectorConfig | None = None,
        thresholds: alert_rules.Thresholds | None = None,
    ) -> None:
        self.prefix = prefix
        self.home = Path(home)
        self.config = config or CollectorConfig()
        self.thresholds = thresholds or alert_rules.Thresholds()
        self._rings: dict[str, Ring] = {}
        self._clients: dict[str, ControlClient] = {}
        self._inodes: dict[str, int] = {}
        self._psutil: dict[int, psutil.Process] = {}
        self._previous: Sample | None = None
        self._restart_seen: dict[str, tuple[int, float]] = {}
        self._cursor_moved: dict[tuple[str, str], tuple[int, float]] = {}
        self._disk: DiskSample | None = None
        self._disk_at = 0.0

    @property
    def last(self) -> Sample | None:
        """The most recent sample (None before the first)."""
        return self._previous

    def sample(self) -> Sample:
        """Look at the instance once; alerts are evaluated on the result."""
        now = time.monotonic()
        supervisor, rtt_us = self._timed_status(SUPERVISOR)
        rows = self._process_rows(supervisor, rtt_us)
        processes = [self._process(row, now) for row in rows]
        live = {p.pid for p in processes}
        for pid in set(self._psutil) - live:
            del self._psutil[pid]
        sample = Sample(
            prefix=self.prefix,
            home=str(self.home),
            wall_ns=time.time_ns(),
            monotonic_s=now,
            supervisor_up=supervisor is not None,
            processes=processes,
            rings=[self._ring(name, ring, now) for name, ring in self._attached_rings()],
            disk=self._disk_sample(now),
            latencies=_merged_histograms(processes),
        )
        self._derive_rates(sample)
        sample.alerts = alert_rules.evaluate(sample, self.thresholds)
        self._previous = sample
        return sample

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        for ring in self._rings.values():
            ring.close()
        self._rings.clear()

    def __enter__(self) -> Collector:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- processes --------------------------------------------------------------------------

    def _call(self, process: str, command: str) -> dict[str, Any] | None:
        """One request on a kept client (a fresh connection per sample would cost a handshake;
        a restarted process is reconnected to by ZeroMQ itself)."""
        client = self._clients.get(process)
        try:
            if client is None:
                endpoint = control_endpoint(self.home, process)
                client = self._clients[process] = ControlClient(
                    endpoint, timeout=self.config.control_timeout_s
                )
            answer = client.request(command)
        except ControlError:
            return None
        return answer if isinstance(answer, dict) else None

    def _timed_status(self, process: str) -> tuple[dict[str, Any] | None, float | None]:
        """A process's `status` answer and its round trip in µs (None, None: no answer)."""
        started = time.perf_counter()
        answer = self._call(process, "status")
        if answer is None:
            return None, None
        return answer, (time.perf_counter() - started) * 1e6

    def _process_rows(
        self, supervisor: dict[str, Any] | None, rtt_us: float | None
    ) -> list[dict[str, Any]]:
        """The supervisor's view of its children (and itself), else the pid files."""
        if supervisor is not None:
            own = {
                "process": SUPERVISOR,
                "pid": supervisor["supervisor_pid"],
                "state": "running",
                "control_rtt_us": rtt_us,
            }
            return [own, *supervisor["processes"]]
        rows = [{"process": SUPERVISOR, "pid": None, "state": "down"}]
        for path in sorted(self.home.glob("*.pid")):
            if path.stem == SUPERVISOR:
                continue
            try:
                pid = int(path.read_text().strip())
            except (OSError, ValueError):
                continue
            rows.append({"process": path.stem, "pid": pid, "state": "unsupervised"})
        return rows

    def _process(self, row: dict[str, Any], now: float) -> ProcessSample:
        name = row["process"]
        pid = row.get("pid")
        restarts = int(row.get("restarts") or 0)
        alive = pid is not None and pid_alive(pid)
        state = row.get("state", "down")
        if not alive and state in ("running", "unsupervised"):
            state = "down"
        sample = ProcessSample(
            name=name,
            pid=pid if alive else None,
            state=state,
            up=alive and state in ("running", "unsupervised"),
            restarts=restarts,
            last_exit=row.get("last_exit"),
            restarted_age_s=self._restart_age(name, restarts, now),
            control_rtt_us=row.get("control_rtt_us"),
        )
        if alive:
            self._fill_os(sample, pid)
            if name != SUPERVISOR:
                sample.status, sample.control_rtt_us = self._timed_status(name)
                if sample.status is not None:
                    sample.records_in = sample.status.get("records_in")
        return sample

    def _restart_age(self, name: str, restarts: int, now: float) -> float | None:
        """Seconds since this process's restart count last went up (None: not seen to)."""
        seen = self._restart_seen.get(name)
        if seen is None:
            self._restart_seen[name] = (restarts, -1.0)
            return None
        count, at = seen
        if restarts > count:
            self._restart_seen[name] = (restarts, now)
            return 0.0
        return None if at < 0 else now - at

    def _fill_os(self, sample: ProcessSample, pid: int) -> None:
        """psutil figures for one pid; the Process object is kept so CPU % has a baseline."""
        proc = self._psutil.get(pid)
        if proc is None:
            try:
                proc = self._psutil[pid] = psutil.Process(pid)
            except psutil.Error:
                return
        try:
            with proc.oneshot():
                sample.cpu_percent = proc.cpu_percent(None)
                times = proc.cpu_times()
                sample.cpu_seconds = times.user + times.system
                sample.rss_bytes = proc.memory_info().rss
                sample.threads = proc.num_threads()
                switches = proc.num_ctx_switches()
                sample.ctx_voluntary = switches.voluntary
                sample.ctx_involuntary = switches.involuntary
                sample.uptime_s = max(0.0, time.time() - proc.create_time())
        except psutil.Error:
            self._psutil.pop(pid, None)
            return
        counts = fd_counts(pid)
        if counts is not None:
            sample.fds, sample.open_files, sample.connections = counts

    # -- rings ------------------------------------------------------------------------------

    def _attached_rings(self) -> Iterator[tuple[str, Ring]]:
        """Every ring segment of the instance in /dev/shm, attached once and kept (attached
        again when the segment was replaced, e.g. by `down` then `up`)."""
        lead = self.prefix + "."
        present = {
            entry.name[len(lead) :]: entry.inode()
            for entry in os.scandir(SHM_DIR)
            if entry.name.startswith(lead)
        }
        for name in list(self._rings):
            if self._inodes.get(name) != present.get(name):
                self._rings.pop(name).close()
        for name in sorted(present):
            ring = self._rings.get(name)
            if ring is None:
                try:
                    ring = Ring.attach(lead + name, records.ring_dtype(name))
                except (ValueError, IpcError) as exc:
                    log.debug("not a ring we can read: %s (%s)", name, exc)
                    continue
                self._rings[name] = ring
                self._inodes[name] = present[name]
            yield name, ring

    def _ring(self, name: str, ring: Ring, now: float) -> RingSample:
        stats = ring.stats()
        readers = [
            ReaderSample(
                name=r["name"],
                pid=r["pid"],
                cursor=r["cursor"],
                lag=r["lag"],
                alive=r["alive"],
                asleep=r["asleep"],
                stalls=r["stalls"],
                stuck_s=self._stuck_for(name, r["name"], r["cursor"], r["lag"], now),
            )
            for r in stats["readers"]
        ]
        return RingSample(
            name=name,
            capacity=stats["capacity"],
            published=stats["published"],
            occupancy=max((r.lag for r in readers), default=0),
            stalls=stats["stalls"],
            wakeups=stats["wakeups"],
            writer_pid=stats["writer_pid"],
            writer_alive=stats["writer_alive"],
            readers=readers,
        )

    def _stuck_for(self, ring: str, reader: str, cursor: int, lag: int, now: float) -> float:
        """Seconds since the reader's cursor last moved, counted only while records wait."""
        key = (ring, reader)
        seen = self._cursor_moved.get(key)
        if seen is None or seen[0] != cursor or lag <= 0:
            self._cursor_moved[key] = (cursor, now)
            return 0.0
        return now - seen[1]

    # -- disk and rates ---------------------------------------------------------------------

    def _disk_sample(self, now: float) -> DiskSample:
        if self._disk is None or now - self._disk_at >= self.config.disk_every_s:
            existing = next(p for p in (self.home, *self.home.parents) if p.exists())
            usage = shutil.disk_usage(existing)
            self._disk = DiskSample(
                journal_bytes=directory_bytes(self.home / JOURNAL_DIR),
                history_bytes=directory_bytes(self.home / HISTORY_DIR),
                free_bytes=usage.free,
                total_bytes=usage.total,
            )
            self._disk_at = now
        return self._disk

    def _derive_rates(self, sample: Sample) -> None:
        previous = self._previous
        if previous is None:
            return
        elapsed = sample.monotonic_s - previous.monotonic_s
        if elapsed <= 0:
            return
        before_rings = {ring.name: ring for ring in previous.rings}
        for ring in sample.rings:
            old = before_rings.get(ring.name)
            if old is None:
                continue
            ring.rate = max(0, ring.published - old.published) / elapsed
            old_readers = {r.name: r for r in old.readers}
            for reader in ring.readers:
                was = old_readers.get(reader.name)
                if was is not None:
                    reader.rate = max(0, reader.cursor - was.cursor) / elapsed
        for process in sample.processes:
            old_process = previous.process(process.name)
            if (
                old_process is not None
                and old_process.pid == process.pid
                and process.records_in is not None
                and old_process.records_in is not None
            ):
                process.records_in_rate = (
                    max(0, process.records_in - old_process.records_in) / elapsed
                )


def fd_counts(pid: int) -> tuple[int, int, int] | None:
    """(open fds, regular files, sockets) of `pid` from one pass over `/proc/<pid>/fd`; None when
    the process is gone or not ours to look at. An fd closed during the pass is not counted."""
    fds = files = sockets = 0
    try:
        entries = list(os.scandir(f"{PROC_DIR}/{pid}/fd"))
    except OSError:
        return None
    for entry in entries:
        try:
            mode = os.stat(entry.path).st_mode
        except OSError:
            continue
        fds += 1
        if stat.S_ISREG(mode):
            files += 1
        elif stat.S_ISSOCK(mode):
            sockets += 1
    return fds, files, sockets


def directory_bytes(path: Path) -> int:
    """Total size of the files under `path` (0 when it does not exist)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def _merged_histograms(processes: list[ProcessSample]) -> dict[str, dict[str, Any]]:
    """Every process's histogram snapshots merged by metric name (label sets summed)."""
    merged: dict[str, Histogram] = {}
    for process in processes:
        metrics = (process.status or {}).get("metrics") or {}
        for entry in metrics.get("histograms", []):
            histogram = Histogram.from_snapshot(entry["histogram"])
            into = merged.get(entry["name"])
            if into is None:
                merged[entry["name"]] = histogram
            else:
                into.merge(histogram)
    return {name: histogram.snapshot() for name, histogram in merged.items()}
