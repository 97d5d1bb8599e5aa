"""The gateway process (`python -m services.gateway`): HTTP REST, `/ws` and `/ws/diff` on one port.

Unlike the ring-driven processes (services/process.py `Runner`), the gateway is an asyncio
server: aiohttp serves the clients, `gateway.ring_backend.RingBackend` writes `cmd.<id>` and
reads `events` in a thread, and the loop wakes on the control socket's descriptor (no
polling). It answers `status` (connections, requests, rejects by code, answer latency),
`shutdown` and `checkpoint` like every other process, so the supervisor starts, probes and stops
it the same way. If the configured HTTP port is taken, it binds a free one and says so in the log
and in `status` (`http`), rather than failing the whole instance.

Edge limits (gateway/config.py `EdgeConfig`) come from an optional `[gateway]` config section
and from `SHMEX_GATEWAY_<FIELD>` environment variables; `SHMEX_GATEWAY_ADMIN_PASSWORD` (and
`..._ADMIN_USER`, default `admin`) creates the operator's administrator on first start.
`SHMEX_GATEWAY_PROFILE=<file>` runs the event loop under cProfile and writes its stats there on
exit (how the edge's CPU per order is found; `status` reports `cpu_s` for the coarse figure);
`SHMEX_GATEWAY_PROFILE_CLOCK=cpu` makes it count the loop thread's CPU time instead of wall time.
"""

from __future__ import annotations

import asyncio
import cProfile
import dataclasses
import errno
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import zmq
import zmq.asyncio
from aiohttp import web

from gateway.app import create_app
from gateway.config import EdgeConfig
from gateway.directory import DIRECTORY_FILE, AccountDirectory
from gateway.edge import Edge
from gateway.ring_backend import RingBackend
from ipc import records
from ipc.control import ControlServer
from ipc.ring import Ring
from ipc.wait import WaitConfig
from services import config as configuration
from services import logs
from services.process import EXIT_CRASHED, _die_with_parent, parse_arguments, wait_config

log = logging.getLogger(__name__)

NAME = "gateway"
WEBSOCKET_PATHS = frozenset({"/ws", "/ws/diff"})
ENV_PREFIX = "SHMEX_GATEWAY_"


def edge_config(config: configuration.Config, env: Mapping[str, str]) -> EdgeConfig:
    """EdgeConfig from the `[gateway]` section (if the instance has one) and the environment."""
    section = config.as_dict().get("gateway", {})
    values: dict[str, Any] = {}
    for spec in dataclasses.fields(EdgeConfig):
        default = getattr(EdgeConfig(), spec.name)
        raw = env.get(ENV_PREFIX + spec.name.upper(), section.get(spec.name))
        if raw is not None:
            values[spec.name] = type(default)(raw)
    return EdgeConfig(**values)


def events_wait(waits: WaitConfig) -> WaitConfig:
    """The events thread sleeps on the ring's semaphore at once instead of spinning and
    yielding: every spin or `sched_yield` of a Python thread takes the GIL from the event loop
    (a contended GIL hand-over per poll), which cost the loop more than a wake-up does."""
    return dataclasses.replace(waits, spin_us=0.0, yield_count=0, sleep=True)


def admin_credentials(env: Mapping[str, str]) -> tuple[str, str] | None:
    password = env.get(ENV_PREFIX + "ADMIN_PASSWORD")
    if not password:
        return None
    return env.get(ENV_PREFIX + "ADMIN_USER", "admin"), password


class Counters:
    """What `status` reports about the clients: open sockets, requests, answers by status."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests = 0
        self.statuses: dict[int, int] = {}

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.requests += 1
        socket = request.path in WEBSOCKET_PATHS
        if socket:
            self.connections += 1
        try:
            response = await handler(request)
        finally:
            if socket:
                self.connections -= 1
        self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
        return response


class GatewayProcess:
    """One gateway: its rings, backend, web server and control socket."""

    def __init__(self, config: configuration.Config, name: str, gateway_id: int) -> None:
        self.config = config
        self.name = name
        self.gateway_id = gateway_id
        self.started_ns = time.time_ns()
        self.counters = Counters()
        self.http_url = ""
        self.http_port = 0
        self._stop = asyncio.Event()
        self._heartbeat_ns = 0

    async def run(self) -> int:
        config = self.config
        home = config.home
        home.mkdir(parents=True, exist_ok=True)
        pid_file = home / f"{self.name}.pid"
        pid_file.write_text(f"{os.getpid()}\n")
        waits = wait_config(config)
        cmd_ring = Ring.attach(config.ring_name(f"cmd.{self.gateway_id}"), records.CMD)
        events_ring = Ring.attach(config.ring_name("events"), records.EVENT)
        context = zmq.asyncio.Context()
        sync_context: zmq.Context[Any] = zmq.Context()
        control = ControlServer(sync_context, config.control_endpoint(self.name))
        ports = config["ports"]
        backend = RingBackend(
            self.gateway_id,
            configuration.load_instruments(config),
            cmd_ring.writer(wait=waits),
            events_ring.reader(self.name, wait=events_wait(waits)),
            AccountDirectory(home / DIRECTORY_FILE),
            context,
            config.control_endpoint("accounts"),
            config.control_endpoint("marketdata"),
            [
                f"tcp://{ports['host']}:{ports['md_pub']}",
                f"tcp://{ports['host']}:{ports['feeds_pub']}",  # external venues (feeds)
            ],
            feeds_control=config.control_endpoint("feeds") if config.enabled("feeds") else None,
        )
        runner: web.AppRunner | None = None
        try:
            edge = Edge.open(
                backend, home, edge_config(config, os.environ), admin_credentials(os.environ)
            )
            app = create_app(edge)
            app.middlewares.append(self.counters.middleware)
            self._add_monitor(app)
            control.register("status", lambda _args: self.status(backend))
            control.register("shutdown", self._on_shutdown)
            control.register("checkpoint", lambda _args: None)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await self._listen(runner, ports["host"], int(ports["http"]))
            backend.start()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self._stop.set)
            log.info("started", extra={"fields": {"http": self.http_url, "pid": os.getpid()}})
            await self._serve_control(control)
            log.info("stopping", extra={"fields": {"requests": self.counters.requests}})
            return 0
        finally:
            if runner is not None:
                await runner.cleanup()
            await backend.close()
            control.close()
            sync_context.term()
            context.term()
            cmd_ring.close()
            events_ring.close()
            pid_file.unlink(missing_ok=True)

    async def _listen(self, runner: web.AppRunner, host: str, port: int) -> None:
        site = web.TCPSite(runner, host, port, backlog=1024)
        try:
            await site.start()
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            log.warning("http port %d is taken; binding a free port", port)
            site = web.TCPSite(runner, host, 0, backlog=1024)
            await site.start()
        self.http_port = int(runner.addresses[-1][1])
        self.http_url = f"http://{host}:{self.http_port}/"

    def _add_monitor(self, app: web.Application) -> None:
        """The web dashboard and `/metrics`, when the monitor package is installed."""
        try:
            from gateway.dashboard import add_monitor_routes
            from monitor.collector import Collector
        except ImportError:
            return
        add_monitor_routes(app, Collector(self.config.prefix, self.config.home))

    async def _serve_control(self, control: ControlServer) -> None:
        """Answer control requests when they arrive: the loop watches the control socket's
        file descriptor (no periodic poll; the loop sleeps until a request, a stop or the next
        heartbeat). ZeroMQ's descriptor is edge-triggered, so the socket is drained and its
        `EVENTS` re-checked after the wake flag is cleared, before sleeping again."""
        heartbeat_s = float(self.config["processes"]["heartbeat_s"])
        socket = control.socket
        descriptor = socket.getsockopt(zmq.FD)
        ring = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_reader(descriptor, ring.set)
        stopping = asyncio.ensure_future(self._stop.wait())
        next_beat = 0.0
        try:
            while not self._stop.is_set():
                control.poll(0)
                ring.clear()
                if socket.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                    continue
                now = time.monotonic()
                if now >= next_beat:
                    next_beat = now + heartbeat_s
                    self._heartbeat_ns = time.time_ns()
                woken = asyncio.ensure_future(ring.wait())
                await asyncio.wait(
                    (woken, stopping),
                    timeout=max(0.0, next_beat - now),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                woken.cancel()
        finally:
            loop.remove_reader(descriptor)
            stopping.cancel()

    def _on_shutdown(self, _args: dict[str, Any]) -> str:
        self._stop.set()
        return "stopping"

    def status(self, backend: RingBackend) -> dict[str, Any]:
        service = backend.status()
        return {
            "name": self.name,
            "pid": os.getpid(),
            "state": "stopping" if self._stop.is_set() else "running",
            "started_ns": self.started_ns,
            "uptime_s": round((time.time_ns() - self.started_ns) / 1e9, 3),
            "cpu_s": round(time.process_time(), 3),
            "heartbeat_ns": self._heartbeat_ns,
            "http": self.http_url,
            "http_port": self.http_port,
            "websocket": self.http_url.replace("http://", "ws://") + "ws",
            "diff": self.http_url.replace("http://", "ws://") + "ws/diff",
            "connections": self.counters.connections,
            "requests": self.counters.requests,
            "http_statuses": {str(k): v for k, v in sorted(self.counters.statuses.items())},
            "rejects": {k: v for k, v in service["answer_codes"].items() if k != "0"},
            "latency_us": service["answer_latency_us"],
            "handle_us": service["answer_latency_us"],
            "records_in": service["events_read"],
            "service": service,
        }


def _profiler() -> cProfile.Profile:
    """Wall-clock by default; `SHMEX_GATEWAY_PROFILE_CLOCK=cpu` times the loop thread's CPU
    instead, so time spent preempted on a loaded machine (inside `send`, a semaphore post)
    is not charged to the function that happened to be running."""
    if os.environ.get(ENV_PREFIX + "PROFILE_CLOCK") == "cpu":
        return cProfile.Profile(time.thread_time)
    return cProfile.Profile()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(NAME, argv)
    if args.supervised:
        _die_with_parent()
    config = configuration.from_arguments(args)
    logs.setup(args.name, config.home, to_stderr=args.stderr)
    gateway_id = args.shard or 1
    profile_file = os.environ.get(ENV_PREFIX + "PROFILE")
    profiler = _profiler() if profile_file else None
    try:
        if profiler is not None:
            profiler.enable()
        return asyncio.run(GatewayProcess(config, args.name, gateway_id).run())
    except Exception:
        log.critical("crashed", exc_info=True)
        return EXIT_CRASHED
    finally:
        if profiler is not None and profile_file:
            profiler.disable()
            profiler.dump_stats(profile_file)


if __name__ == "__main__":
    raise SystemExit(main())
