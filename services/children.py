"""One supervised child process: spawn, readiness probe, crash backoff, graceful stop.

States move through a literal table (STYLE rule 7) so that an impossible move is a bug, not a
silent surprise. The supervisor's loop calls `step()`; nothing here blocks for longer than a
control probe's short deadline.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import psutil

from ipc.control import ControlClient, ControlError
from services.topology import ProcessSpec

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 0.1


class State(Enum):
    PENDING = "pending"  # not started yet (waits for the processes before it)
    STARTING = "starting"  # spawned, not yet answering status
    RUNNING = "running"
    BACKOFF = "backoff"  # died; restarts when its delay has passed
    STOPPING = "stopping"
    STOPPED = "stopped"


TRANSITIONS: dict[State, frozenset[State]] = {
    State.PENDING: frozenset({State.STARTING, State.STOPPED}),
    State.STARTING: frozenset({State.RUNNING, State.BACKOFF, State.STOPPING}),
    State.RUNNING: frozenset({State.BACKOFF, State.STOPPING}),
    State.BACKOFF: frozenset({State.STARTING, State.STOPPED}),
    State.STOPPING: frozenset({State.STOPPED}),
    State.STOPPED: frozenset(),
}


@dataclass(frozen=True)
class Backoff:
    initial_s: float
    max_s: float
    reset_s: float

    def delay(self, crashes: int) -> float:
        return float(min(self.max_s, self.initial_s * 2 ** max(0, crashes - 1)))


class Child:
    """A process the supervisor keeps alive."""

    def __init__(
        self, spec: ProcessSpec, argv: Sequence[str], home: Path, endpoint: str, backoff: Backoff
    ) -> None:
        self.spec = spec
        self.argv = [
            *(sys.executable, "-m", spec.module, "--supervised"),
            *("--name", spec.name, "--shard", str(spec.shard), *argv),
        ]
        self.home = home
        self.endpoint = endpoint
        self.backoff = backoff
        self.state = State.PENDING
        self.popen: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.restarts = 0
        self.crashes = 0
        self.last_exit: int | None = None
        self.next_start = 0.0
        self.ready_once = False
        self.reported: dict[str, Any] = {}
        """The `status` answer that made it RUNNING (after each start): where it really bound."""
        self._client: ControlClient | None = None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def _move(self, state: State) -> None:
        if state not in TRANSITIONS[self.state]:
            raise RuntimeError(
                f"{self.spec.name}: no transition {self.state.value} -> {state.value}"
            )
        self.state = state

    def spawn(self) -> None:
        self._move(State.STARTING)
        log_path = self.home / "logs" / f"{self.spec.name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as output:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                start_new_session=True,  # a terminal's Ctrl-C reaches the supervisor only
            )
        self.started_at = time.monotonic()
        if self._client is None:
            self._client = ControlClient(self.endpoint, timeout=PROBE_TIMEOUT_S)
        log.info("spawned", extra={"fields": {"process": self.spec.name, "pid": self.popen.pid}})

    def step(self, now: float, stopping: bool) -> None:
        """Advance: notice a death, restart after backoff, promote to RUNNING once it answers."""
        if self.state in (State.STARTING, State.RUNNING) and self._reap():
            self._crashed(now)
        elif self.state is State.BACKOFF and not stopping and now >= self.next_start:
            self.restarts += 1
            self.spawn()
        elif self.state is State.STARTING and self._answers():
            self._move(State.RUNNING)
            self.ready_once = True
            log.info("ready", extra={"fields": {"process": self.spec.name, "pid": self.pid}})

    def _reap(self) -> bool:
        """True if the child has exited (and records its status)."""
        if self.popen is None or self.popen.poll() is None:
            return False
        self.last_exit = self.popen.returncode
        return True

    def _crashed(self, now: float) -> None:
        lived = now - self.started_at
        self.crashes = 1 if lived >= self.backoff.reset_s else self.crashes + 1
        delay = self.backoff.delay(self.crashes)
        self.next_start = now + delay
        self._move(State.BACKOFF)
        log.warning(
            "process died; restarting after backoff",
            extra={
                "fields": {
                    "process": self.spec.name,
                    "exit": self.last_exit,
                    "lived_s": round(lived, 3),
                    "delay_s": delay,
                }
            },
        )

    def _answers(self) -> bool:
        assert self._client is not None
        try:
            self.reported = dict(self._client.request("status", timeout=PROBE_TIMEOUT_S))
        except ControlError:
            return False
        return True

    def stop(self, timeout: float) -> None:
        """Ask it to stop (control, then SIGTERM), wait up to `timeout`, then SIGKILL."""
        if self.state in (State.PENDING, State.BACKOFF):
            self._move(State.STOPPED)
            self._close_client()
            return
        if self.state is State.STOPPED:
            return
        self._move(State.STOPPING)
        assert self.popen is not None
        if self.popen.poll() is None:
            try:
                assert self._client is not None
                self._client.request("shutdown", timeout=0.5)
            except ControlError:
                self.popen.send_signal(signal.SIGTERM)
        try:
            self.last_exit = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("stop timed out; killing", extra={"fields": {"process": self.spec.name}})
            self.popen.kill()
            self.last_exit = self.popen.wait(5)
        self._move(State.STOPPED)
        self._close_client()
        log.info("stopped", extra={"fields": {"process": self.spec.name, "exit": self.last_exit}})

    def _close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def describe(self) -> dict[str, Any]:
        """A row of the status table: pid, state, uptime, restarts, CPU seconds, RSS."""
        row: dict[str, Any] = {
            "process": self.spec.name,
            "module": self.spec.module,
            "pid": self.pid
            if self.state in (State.STARTING, State.RUNNING, State.STOPPING)
            else None,
            "state": self.state.value,
            "uptime_s": None,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "cpu_s": None,
            "rss_bytes": None,
        }
        if row["pid"] is not None:
            row["uptime_s"] = round(time.monotonic() - self.started_at, 1)
            try:
                proc = psutil.Process(row["pid"])
                times = proc.cpu_times()
                row["cpu_s"] = round(times.user + times.system, 2)
                row["rss_bytes"] = proc.memory_info().rss
            except psutil.Error:
                pass
        return row
