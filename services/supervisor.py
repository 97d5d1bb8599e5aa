"""`bin/exchange up | down | status`: start, heal and stop one shmex instance.

`up` starts a supervisor daemon (`run`) and waits until it reports every process ready. The
daemon creates the rings, starts the processes of services/topology.py one at a time in start
order (each must answer `status` before the next starts), restarts a dead one with exponential
backoff (it resumes from its ring cursor), and answers `status` and `shutdown` on its own
control socket. `down` asks it to stop the processes in reverse order (producers first, so
each consumer drains what they wrote) and unlink the rings; if the daemon is gone, `down` does
that itself from the pid files. The rings are unlinked only when the stop was complete: every
process exited cleanly (drained, checkpointed) and every record of a `cmd`, `orders` or `execs`
ring was consumed by its readers. Otherwise (a backlog larger than the stop timeout drains, a
process killed) they are kept, with the reasons in `<home>/rings.kept`, and the next `up`
resumes them like after a crash: a record removed unconsumed would be lost, and one consumer's
state would no longer match another's (docs/durability.md).

`up` after a crash (the supervisor killed, pid files and rings left behind) refuses while any
process of that run is still alive; otherwise it tidies what the dead run left and says so:
stale pid files go, dead readers that no process of this instance will reattach (a killed
loadgen, a process no longer configured) are unregistered so they stop holding writers back,
and every object under the prefix that is not a ring of this configuration with the expected
layout is removed. The instance's own rings are kept: what was written and not yet consumed
resumes, which keeps recovery exactly-once (docs/durability.md).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import orjson
import psutil
import zmq

from ipc import shm
from ipc.control import ControlClient, ControlError, ControlServer, call
from ipc.errors import IpcError, RingExists, RingMissing
from ipc.liveness import pid_alive
from ipc.ring import Ring, unlink_prefix
from services import config as configuration
from services import logs, topology, verify
from services.accounts import CHECKPOINT
from services.children import Backoff, Child, State
from services.matching import checkpoint_name
from services.recovery import checkpoint_dir, journal_dir
from services.status_table import render_status
from storage.checkpoint import list_checkpoints
from storage.recovery import journal_last_seq

log = logging.getLogger(__name__)

NAME = "supervisor"
EXIT_NOT_RUNNING = 3
KEPT_FILE = "rings.kept"
"""Why the last stop kept the rings (written by the stop, removed by the next `up`)."""
STATEFUL_RINGS = ("cmd.", "orders.", "execs.")
"""Rings whose records change a process's state when consumed; `events` and `md` only feed
clients, whose sessions do not survive a stop."""


class Supervisor:
    """The daemon: owns the rings and the children of one instance."""

    def __init__(
        self,
        config: configuration.Config,
        child_argv: Sequence[str],
        on_ready: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.config = config
        self._on_ready = on_ready
        self._announced = False
        section = config["supervisor"]
        backoff = Backoff(
            section["backoff_initial_s"], section["backoff_max_s"], section["backoff_reset_s"]
        )
        self.children = [
            Child(spec, child_argv, config.home, config.control_endpoint(spec.name), backoff)
            for spec in topology.processes(config)
        ]
        self.rings: dict[str, Ring] = {}
        self.started_ns = time.time_ns()
        self._stop_reason: str | None = None

    def request_stop(self, reason: str) -> None:
        if self._stop_reason is None:
            self._stop_reason = reason
            log.info("stopping", extra={"fields": {"reason": reason}})

    def run(self) -> int:
        pid_file = self.config.home / f"{NAME}.pid"
        context = zmq.Context()
        server = ControlServer(context, self.config.control_endpoint(NAME))
        server.register("status", lambda _args: self.status())
        server.register("shutdown", self._on_shutdown)
        pid_file.write_text(f"{os.getpid()}\n")
        interval = float(self.config["supervisor"]["check_interval_s"])
        try:
            self._create_rings()
            while self._stop_reason is None:
                server.poll(int(interval * 1000))
                self._step()
            self._stop_children()
            return 0
        except Exception:
            log.critical("supervisor crashed", exc_info=True)
            self._stop_children()
            return 1
        finally:
            server.close()
            context.term()
            self._close_rings()
            pid_file.unlink(missing_ok=True)
            log.info("supervisor exited")

    def _on_shutdown(self, _args: dict[str, Any]) -> str:
        self.request_stop("control")
        return "stopping"

    def _create_rings(self) -> None:
        max_readers = int(self.config["rings"]["max_readers"])
        for spec in topology.rings(self.config):
            name = self.config.ring_name(spec.name)
            try:
                ring = Ring.create(name, spec.dtype, spec.capacity, max_readers=max_readers)
            except RingExists:
                ring = Ring.attach(name, spec.dtype)
                log.info("resuming existing ring", extra={"fields": {"ring": name}})
            self.rings[spec.name] = ring
        log.info("rings ready", extra={"fields": {"rings": ",".join(self.rings)}})

    def _step(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.state is State.PENDING:
                child.spawn()
                break
            child.step(now, stopping=False)
            if not child.ready_once:
                break  # start order: the next process waits until this one first answers
        if not self._announced and all(c.state is State.RUNNING for c in self.children):
            self._announced = True
            log.info("ready", extra={"fields": {"processes": len(self.children)}})
            if self._on_ready is not None:
                self._on_ready(self.status())

    def _stop_children(self) -> None:
        timeout = float(self.config["supervisor"]["stop_timeout_s"])
        for child in reversed(self.children):
            try:
                child.stop(timeout)
            except Exception:
                log.exception("could not stop %s", child.spec.name)

    def _close_rings(self) -> None:
        """Unlink the rings after a complete stop, else keep them and say why."""
        reasons = [
            f"{child.spec.name} exited with {child.last_exit}"
            for child in self.children
            if child.last_exit not in (0, None)
        ]
        reasons += unconsumed(self.config, self.rings) + journals_ahead(self.config)
        for ring in self.rings.values():
            ring.close()
        self.rings.clear()
        if reasons:
            keep_rings(self.config, reasons)
        else:
            unlink_prefix(self.config.prefix + ".")

    def status(self) -> dict[str, Any]:
        return {
            "prefix": self.config.prefix,
            "home": str(self.config.home),
            "supervisor_pid": os.getpid(),
            "uptime_s": round((time.time_ns() - self.started_ns) / 1e9, 1),
            "ready": all(child.state is State.RUNNING for child in self.children),
            "processes": [child.describe() for child in self.children],
            "rings": {name: ring.stats() for name, ring in self.rings.items()},
            "endpoints": endpoints(self.config, {c.spec.name: c.reported for c in self.children}),
        }


def unconsumed(config: configuration.Config, rings: dict[str, Ring]) -> list[str]:
    """The stateful rings (by name without the prefix) that a reader of the instance has not
    read to the end, as reasons to keep them."""
    owners = [spec.name for spec in topology.processes(config)]
    return [
        f"ring {name}: {info.name} has {info.lag} records to read"
        for name, ring in rings.items()
        if name.startswith(STATEFUL_RINGS)
        for info in ring.readers()
        if info.lag and _reattached(info.name, owners)
    ]


def journals_ahead(config: configuration.Config) -> list[str]:
    """The journals that go past their process's newest checkpoint, as reasons to keep the
    rings: that process's restart replays records numbered in the rings' current epoch and
    writes what its stop had not (outputs held for an fsync), so the epoch must go on."""
    journals = [("accounts", CHECKPOINT)]
    journals += [(f"matching-{s}", checkpoint_name(s)) for s in topology.matching_shards(config)]
    reasons = []
    for journal, name in journals:
        last = journal_last_seq(journal_dir(config, journal))
        newest = max(
            (seq for seq, _path in list_checkpoints(checkpoint_dir(config), name)), default=0
        )
        if last > newest:
            reasons.append(f"journal {journal} is at {last}, its newest checkpoint at {newest}")
    return reasons


def attach_rings(config: configuration.Config) -> dict[str, Ring]:
    """The instance's rings that exist now, attached (the caller closes them)."""
    attached = {}
    for spec in topology.rings(config):
        with contextlib.suppress(IpcError):
            attached[spec.name] = Ring.attach(config.ring_name(spec.name), spec.dtype)
    return attached


def keep_rings(config: configuration.Config, reasons: list[str]) -> None:
    """Leave the rings for the next `up` and record why (`down` prints it)."""
    with (config.home / KEPT_FILE).open("a") as kept:
        kept.write("".join(f"{reason}\n" for reason in reasons))
    log.warning("rings kept for the next up", extra={"fields": {"reasons": "; ".join(reasons)}})


def endpoints(config: configuration.Config, reports: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Where clients connect: the ports the gateway and marketdata report they bound (either
    falls back to a free port when its configured one is busy), else the configured ones."""
    ports = config["ports"]
    host = ports["host"]
    gateways = [reports.get(f"gateway.{g}", {}) for g in topology.gateway_ids(config)]
    gateway = gateways[0] if gateways else {}
    http = int(gateway.get("http_port") or ports["http"])
    market_data = reports.get("marketdata", {}).get("service", {}).get("endpoint")
    urls = {
        "http": f"http://{host}:{http}/",
        "websocket": f"ws://{host}:{http}/ws",
        "diff": f"ws://{host}:{http}/ws/diff",
        "market_data": market_data or f"tcp://{host}:{ports['md_pub']}",
        "control": f"{config.home}/*.ctl",
        "logs": f"{config.home}/logs/",
    }
    if http != ports["http"]:
        urls["note"] = (
            f"the configured HTTP port {ports['http']} was busy; the gateway bound {http}"
        )
    return urls


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _instance_pid(path: Path, prefix: str) -> int | None:
    """The pid in a pid file if that process lives and is of this instance (not a reused pid)."""
    pid = _read_pid(path)
    if pid is None or not pid_alive(pid):
        return None
    try:
        cmdline = psutil.Process(pid).cmdline()
    except psutil.Error:
        return None
    ours = prefix in cmdline or any(arg.startswith("services.") for arg in cmdline)
    return pid if ours else None  # a foreground `up` may have its prefix from the environment


def _supervisor_pid(config: configuration.Config) -> int | None:
    return _instance_pid(config.home / f"{NAME}.pid", config.prefix)


class PreviousRunAlive(RuntimeError):
    """Processes of an earlier run of this instance still live; `up` must not start over them."""


def tidy_previous_run(config: configuration.Config) -> list[str]:
    """Clear what a run that did not stop cleanly left behind; returns lines saying what was
    done (none after a clean `down`). Raises PreviousRunAlive if any of its processes lives."""
    live, dead = [], []
    for path in sorted(config.home.glob("*.pid")):
        pid = _instance_pid(path, config.prefix)
        if pid is not None:
            live.append(f"{path.stem} (pid {pid})")
        else:
            dead.append(path.stem)
    if live:
        raise PreviousRunAlive(
            f"shmex {config.prefix}: processes of a previous run are still alive: "
            f"{', '.join(live)}; stop them with `bin/exchange down` first"
        )
    objects = shm.prefix_objects(config.prefix + ".")
    kept_file = config.home / KEPT_FILE
    kept = kept_file.read_text().splitlines() if kept_file.exists() else []
    kept_file.unlink(missing_ok=True)
    if not objects and not dead:
        return []
    notes = [
        f"shmex {config.prefix}: the previous run did not stop cleanly"
        + (f" (dead: {', '.join(dead)})" if dead else "")
    ]
    notes += [f"  the stop kept the rings: {reason}" for reason in kept]
    for name in dead:
        (config.home / f"{name}.pid").unlink(missing_ok=True)
    _remove_doorbell_files(config)
    owners = [spec.name for spec in topology.processes(config)]
    keep: set[str] = set()
    kept = []
    for spec in topology.rings(config):
        try:
            ring = Ring.attach(config.ring_name(spec.name), spec.dtype)
        except RingMissing:
            continue
        except IpcError as exc:
            notes.append(f"  ring {spec.name} cannot be resumed ({exc}): recreated empty")
            continue
        with ring:
            dropped = ring.unregister_dead_readers(lambda name: _reattached(name, owners))
            keep.update(ring.objects())
        kept.append(spec.name)
        for info in dropped:
            notes.append(
                f"  ring {spec.name}: unregistered dead reader {info.name} (pid {info.pid})"
            )
    if kept:
        notes.append(f"  kept rings {', '.join(kept)}: their unconsumed records resume")
    removed = [entry for entry in objects if entry not in keep and shm.unlink_object(entry)]
    if removed:
        notes.append(f"  removed {len(removed)} stale shared-memory objects: {', '.join(removed)}")
    return notes


def _reattached(reader: str, owners: list[str]) -> bool:
    """True if a process of the instance registers this reader name (`<process>[.<suffix>]`)."""
    return any(reader == owner or reader.startswith(owner + ".") for owner in owners)


def cmd_up(config: configuration.Config, args: argparse.Namespace) -> int:
    if _supervisor_pid(config) is not None:
        print(f"shmex instance {config.prefix!r} is already running (home {config.home})")
        return 1
    config.home.mkdir(parents=True, exist_ok=True)
    try:
        notes = tidy_previous_run(config)
    except PreviousRunAlive as exc:
        print(exc, file=sys.stderr)
        return 1
    for line in notes:
        print(line)
    argv = [sys.executable, "-m", "services.supervisor", *configuration.argument_list(config, args)]
    if args.foreground:
        return _foreground(config, args)
    log_path = config.home / "logs" / f"{NAME}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as output:
        daemon = subprocess.Popen(
            [*argv, "run"],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            start_new_session=True,
        )
    status = _wait_ready(config, daemon)
    if status is None:
        print(f"shmex {config.prefix}: did not become ready; stopping it", file=sys.stderr)
        for path in sorted((config.home / "logs").glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-5:]
            print(f"--- {path}\n" + "\n".join(tail), file=sys.stderr)
        cmd_down(config, args)
        daemon.wait(timeout=10)
        return 1
    print(render_status(status))
    verify.print_state_hashes(config)
    _print_endpoints(status["endpoints"])
    return 0


def _wait_ready(
    config: configuration.Config, daemon: subprocess.Popen[bytes]
) -> dict[str, Any] | None:
    """Poll the daemon's status until every process is ready; None if it died or timed out."""
    section = config["supervisor"]
    budget = float(section["start_timeout_s"]) * max(1, len(topology.processes(config))) + 5
    deadline = time.monotonic() + budget
    with ControlClient(config.control_endpoint(NAME), timeout=0.5) as client:
        while time.monotonic() < deadline:
            if daemon.poll() is not None:
                return None
            try:
                status = client.request("status")
            except ControlError:
                time.sleep(0.05)
                continue
            if status["ready"]:
                return dict(status)
            time.sleep(0.05)
    return None


def _print_endpoints(urls: dict[str, str]) -> None:
    print("clients connect to:")
    for label, url in urls.items():
        print(f"  {label:<12} {url}")


def _foreground(config: configuration.Config, args: argparse.Namespace) -> int:
    """Run the daemon in this terminal; Ctrl-C stops everything like `down`."""
    logs.setup(NAME, config.home, to_stderr=True)

    def announce(status: dict[str, Any]) -> None:
        print(render_status(status))
        _print_endpoints(status["endpoints"])
        sys.stdout.flush()

    supervisor = Supervisor(config, configuration.argument_list(config, args), announce)
    _install_signals(supervisor)
    return supervisor.run()


def _install_signals(supervisor: Supervisor) -> None:
    def on_signal(signum: int, _frame: FrameType | None) -> None:
        supervisor.request_stop(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def cmd_run(config: configuration.Config, args: argparse.Namespace) -> int:
    logs.setup(NAME, config.home)
    supervisor = Supervisor(config, configuration.argument_list(config, args))
    _install_signals(supervisor)
    return supervisor.run()


def cmd_down(config: configuration.Config, _args: argparse.Namespace) -> int:
    """Stop the instance: through the daemon if it lives, else from the pid files. The rings are
    unlinked only after a complete stop (`keep_rings` otherwise; the daemon decides when it
    ran the stop)."""
    stop_timeout = float(config["supervisor"]["stop_timeout_s"])
    kept_file = config.home / KEPT_FILE
    pid = _supervisor_pid(config)
    if pid is not None:
        kept_file.unlink(missing_ok=True)
        try:
            call(config.control_endpoint(NAME), "shutdown", timeout=2.0)
        except ControlError:
            os.kill(pid, signal.SIGTERM)
        budget = stop_timeout * (len(topology.processes(config)) + 1) + 5
        if not _wait_gone(pid, budget):
            print(f"supervisor pid {pid} did not stop; killing it", file=sys.stderr)
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 5)
    leftovers, unclean = _kill_leftovers(config, stop_timeout)
    if unclean or pid is None:
        rings = attach_rings(config)
        reasons = unclean + unconsumed(config, rings) + journals_ahead(config)
        for ring in rings.values():
            ring.close()
        if rings and reasons:
            keep_rings(config, reasons)
    kept = kept_file.read_text().splitlines() if kept_file.exists() else []
    removed = [] if kept else unlink_prefix(config.prefix + ".")
    print(
        f"shmex {config.prefix}: stopped"
        + (f"; killed leftover pids {leftovers}" if leftovers else "")
        + (f"; removed {len(removed)} shared-memory objects" if removed else "")
    )
    if kept:
        print("rings kept for the next `up`, which resumes them:\n  " + "\n  ".join(kept))
    return 0


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)


def _kill_leftovers(config: configuration.Config, timeout: float) -> tuple[list[int], list[str]]:
    """Processes whose pid files survived a dead supervisor: SIGTERM, then SIGKILL. Returns
    the pids stopped and, as reasons to keep the rings, the processes that did not stop
    cleanly (a pid file only outlives its process when it was killed)."""
    killed, unclean = [], []
    for path in sorted(config.home.glob("*.pid")):
        pid = _instance_pid(path, config.prefix)
        if pid is None:
            if path.stem != NAME:
                unclean.append(f"{path.stem} was killed")
        else:
            os.kill(pid, signal.SIGTERM)
            if not _wait_gone(pid, timeout):
                os.kill(pid, signal.SIGKILL)
                _wait_gone(pid, 5)
                unclean.append(f"{path.stem} was killed after {timeout} s")
            killed.append(pid)
        path.unlink(missing_ok=True)
    _remove_doorbell_files(config)
    return killed, unclean


def _remove_doorbell_files(config: configuration.Config) -> None:
    """The `<name>.bell` files of processes that are gone (ipc/control.py writes them)."""
    for path in config.home.glob("*.bell"):
        path.unlink(missing_ok=True)


def cmd_status(config: configuration.Config, args: argparse.Namespace) -> int:
    try:
        status = call(config.control_endpoint(NAME), "status", timeout=2.0)
    except ControlError:
        print(f"shmex {config.prefix}: not running (home {config.home})")
        return EXIT_NOT_RUNNING
    if args.json:
        sys.stdout.write(orjson.dumps(status, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(render_status(status))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bin/exchange", description=__doc__.split("\n")[0])
    configuration.add_arguments(parser)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the exchange and wait until it is ready")
    up.add_argument("--foreground", action="store_true", help="stay in this terminal")
    down = commands.add_parser("down", help="stop every process and remove the rings")
    status = commands.add_parser("status", help="processes, CPU, memory, ring positions and lag")
    status.add_argument("--json", action="store_true", help="the raw status as JSON")
    run = commands.add_parser("run", help="(internal) the supervisor daemon itself")
    recover = commands.add_parser("recover", help="replay the journals and compare state hashes")
    recover.add_argument("--verify", action="store_true", help="replay from empty and compare")
    for command in (up, down, status, run, recover):
        configuration.add_arguments(command, defaults=False)
    return parser


COMMANDS = {
    "up": cmd_up,
    "down": cmd_down,
    "status": cmd_status,
    "run": cmd_run,
    "recover": verify.cmd_recover,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = configuration.from_arguments(args)
    except configuration.ConfigError as exc:
        parser.error(str(exc))
    try:
        return COMMANDS[args.command](config, args)
    except BrokenPipeError:  # `bin/exchange status | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
