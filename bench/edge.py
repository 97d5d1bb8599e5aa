"""`bin/bench edge`: the client edge on the real exchange (every process up, loopback clients).

- orders/s and order → answer latency through `/ws` and REST with 10 and 100 clients, flat out
  (`gateway.loadgen`), one order at a time per client and, for `/ws`, pipelined (16 in flight
  per client); through `/ws` at an offered 5,000 orders/s; and for every load the gateway's CPU
  per order (its `status` `cpu_s` before and after the orders, sign-ups excluded);
- DIFF quote fan-out: 1,000 `/ws/diff` clients subscribed to one instrument while orders move
  its book; latency = client receive time − the quote's `datetime` (the match's timestamp,
  microseconds), so it covers matching → marketdata → ZeroMQ → gateway → DIFF → client. The
  DIFF clients run in `SHMEX_BENCH_EDGE_DIFF_PROCESSES` worker processes (default 2, one per
  core) so that the clients' own Python work does not queue behind one core.

The order clients run in this process on the same two cores as the exchange, so every number
includes the client's own cost; the results note the machine's load average.
`SHMEX_BENCH_EDGE_SCALE` multiplies the order counts; `SHMEX_BENCH_EDGE_DIFF_CLIENTS` sets the
fan-out width.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import functools
import multiprocessing
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from hdrh.histogram import HdrHistogram

from bench.common import Results
from bench.diff_client import ClientLoop, DiffClient
from gateway.client import EdgeClient, order_body
from gateway.diff.messages import EXCHANGE_UTC_OFFSET_S
from gateway.loadgen import LoadResult, Plan, run_load
from ipc.control import call
from ipc.shm import unlink_prefix

ROOT = Path(__file__).resolve().parents[1]
SCALE = float(os.environ.get("SHMEX_BENCH_EDGE_SCALE", "1"))
DIFF_CLIENTS = int(os.environ.get("SHMEX_BENCH_EDGE_DIFF_CLIENTS", "1000"))
QUICK_SCALE = 0.1
QUICK_DIFF_CLIENTS = 100
DIFF_PROCESSES = int(os.environ.get("SHMEX_BENCH_EDGE_DIFF_PROCESSES", "2"))
PIPELINE_WINDOW = 16
PACED_WINDOW = 8
FANOUT_UPDATES = 30
INSTRUMENT = "CFFEX.IF2501"
FANOUT_INSTRUMENT = "CFFEX.IH2501"
ENV = {
    "SHMEX_GATEWAY_RATE_PER_SECOND": "10000000",
    "SHMEX_GATEWAY_RATE_BURST": "10000000",
    "SHMEX_GATEWAY_ADMIN_PASSWORD": "bench-admin-password",
}
ZONE = dt.timezone(dt.timedelta(seconds=EXCHANGE_UTC_OFFSET_S))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclasses.dataclass(frozen=True)
class Gateway:
    url: str
    control: str

    def cpu_s(self) -> float:
        """The gateway process's CPU seconds so far (its `status`)."""
        return float(call(self.control, "status", timeout=5.0)["cpu_s"])


@contextmanager
def exchange() -> Iterator[Gateway]:
    """A whole instance for the run; yields the gateway's URL and control endpoint."""
    prefix = f"shmex_benchedge{os.getpid()}"
    home = Path(tempfile.mkdtemp(prefix="shmex-bench-edge-"))
    flags = ["--prefix", prefix, "--home", str(home)]
    ports = ["--set", f"ports.http={_free_port()}", "--set", f"ports.md_pub={_free_port()}"]
    env = {**os.environ, **ENV}
    up = subprocess.run(
        [str(ROOT / "bin" / "exchange"), *flags, *ports, "up"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    try:
        if up.returncode:
            raise SystemExit(f"exchange up failed:\n{up.stdout}\n{up.stderr}")
        control = f"ipc://{home}/gateway.1.ctl"
        status = call(control, "status", timeout=5.0)
        yield Gateway(str(status["http"]).rstrip("/"), control)
    finally:
        subprocess.run(
            [str(ROOT / "bin" / "exchange"), *flags, "down"], capture_output=True, timeout=180
        )
        unlink_prefix(prefix + ".")


def _add_load(results: Results, workload: str, load: LoadResult) -> None:
    summary = load.summary()
    results.add("shmex", workload, "orders/s", summary["orders_per_s"], "orders/s")
    for name in ("p50", "p99", "p99.9"):
        value = summary["latency_us"][name] / 1000
        results.add("shmex", workload, f"order→answer {name}", value, "ms")
    cpu = summary["gateway_cpu_us_per_order"]
    if cpu is not None:
        results.add("shmex", workload, "gateway CPU per order", cpu, "µs")
    client = summary["client_cpu_us_per_order"]
    if client is not None:
        results.add("shmex", workload, "client (load generator) CPU per order", client, "µs")
    rejected = sum(load.rejected.values())
    if rejected:
        results.add("shmex", workload, "rejected", rejected, "orders")


def _plan(
    url: str,
    mode: str,
    clients: int,
    orders: int,
    rate: float = 0.0,
    seconds: float = 0.0,
    window: int = 1,
    scale: float = SCALE,
) -> Plan:
    return Plan(
        url=url,
        mode=mode,
        clients=clients,
        users=clients,
        orders=int(orders * scale),
        seconds=seconds * scale,
        rate=rate,
        instrument=INSTRUMENT,
        tag=f"c{clients}",
        window=window,
    )


@functools.lru_cache(maxsize=64)
def _parse_datetime(text: bytes) -> int:
    """A DIFF quote `datetime` (exchange local time, microseconds) → ns UTC; 0 for the
    placeholder of a quote without market data (every client sees the same few strings:
    parsed once per process)."""
    moment = dt.datetime.strptime(text.decode(), "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=ZONE)
    return max(0, int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000)


def _fanout_worker(url: str, clients: int, conn: Connection) -> None:
    """One worker's DIFF clients: says `ready` once all are subscribed, measures between
    `reset` and `stop`, then sends back its latency histogram (encoded), its CPU seconds and
    the quotes its clients received meanwhile."""
    if os.environ.get("SHMEX_BENCH_EDGE_DIFF_BATCH", "1") == "1":
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    latency, arrival = HdrHistogram(1, 60_000_000, 3), HdrHistogram(1, 60_000_000, 3)
    subscribed = [0]

    def ready() -> None:
        subscribed[0] += 1

    def record(read_ns: int, arrived_ns: int) -> None:
        latency.record_value(max(1, read_ns // 1000))
        arrival.record_value(max(1, arrived_ns // 1000))

    loop = ClientLoop(host, port, conn)
    try:
        started = time.perf_counter()
        for _ in range(clients):
            loop.connect(
                DiffClient(f"{host}:{port}", FANOUT_INSTRUMENT, ready, _parse_datetime, record)
            )
        loop.run(300.0, until=lambda: subscribed[0] == clients)
        conn.send(("ready", time.perf_counter() - started))
        assert loop.run(300.0) == "reset"
        latency.reset()
        arrival.reset()
        quotes_before = sum(c.quotes for c in loop.clients)
        cpu_before = time.process_time()
        conn.send("measuring")
        assert loop.run(300.0) == "stop"
        cpu_s = time.process_time() - cpu_before
        quotes = sum(c.quotes for c in loop.clients) - quotes_before
    finally:
        loop.close()
    conn.send((latency.encode(), arrival.encode(), cpu_s, quotes))


@dataclasses.dataclass
class Fanout:
    latency: HdrHistogram
    """Quote time → the client's read, µs."""
    arrival: HdrHistogram
    """Quote time → the kernel's receive timestamp on the client's socket, µs."""
    connect_s: float
    """From a worker's first connect to its last client's subscription echo (slowest worker;
    the workers connect at the same time)."""
    gateway_cpu_s: float
    """The gateway's CPU seconds over the updates (connects excluded)."""
    clients_cpu_s: float
    """The client workers' CPU seconds over the same time, all workers together."""
    quotes: int
    """Quotes the clients received while measuring."""


async def fanout(url: str, clients: int, processes: int, cpu_probe: Callable[[], float]) -> Fanout:
    """DIFF clients (in `processes` workers) on one quote while one trader moves the book."""
    context = multiprocessing.get_context("spawn")
    loop = asyncio.get_running_loop()
    pipes, workers = [], []
    latency, arrival = HdrHistogram(1, 60_000_000, 3), HdrHistogram(1, 60_000_000, 3)
    clients_cpu_s, quotes = 0.0, 0
    try:
        async with aiohttp.ClientSession() as session:
            trader = EdgeClient(session, url)
            await trader.sign_up("fanout", "fanout-password-1")
            account = await trader.open_funded_account(10**9)
            for n in range(processes):
                share = clients // processes + (1 if n < clients % processes else 0)
                mine, theirs = context.Pipe()
                worker = context.Process(target=_fanout_worker, args=(url, share, theirs))
                worker.start()
                pipes.append(mine)
                workers.append(worker)
            connected = 0.0
            for pipe in pipes:
                word, seconds = await loop.run_in_executor(None, _receive, pipe, 300.0)
                assert word == "ready"
                connected = max(connected, seconds)
            for pipe in pipes:
                pipe.send("reset")
            for pipe in pipes:
                assert await loop.run_in_executor(None, _receive, pipe, 30.0) == "measuring"
            cpu_before = cpu_probe()
            for n in range(FANOUT_UPDATES):
                body = order_body(account, FANOUT_INSTRUMENT, "BUY", 2700.0 + 0.2 * (n % 50), 1)
                await trader.expect("POST", "/api/order/submit", body)
                await asyncio.sleep(0.25)
            await asyncio.sleep(2.0)
            cpu_s = cpu_probe() - cpu_before
        for pipe in pipes:
            pipe.send("stop")
        for pipe in pipes:
            read, arrived, worker_cpu_s, worker_quotes = await loop.run_in_executor(
                None, _receive, pipe, 60.0
            )
            latency.add(HdrHistogram.decode(read))
            arrival.add(HdrHistogram.decode(arrived))
            clients_cpu_s += worker_cpu_s
            quotes += worker_quotes
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
                worker.join()
    return Fanout(latency, arrival, connected, cpu_s, clients_cpu_s, quotes)


def _receive(pipe: Connection, timeout: float) -> object:
    if not pipe.poll(timeout):
        raise TimeoutError("a fan-out worker did not answer")
    return pipe.recv()


async def measure(
    gateway: Gateway, results: Results, scale: float = SCALE, diff_clients: int = DIFF_CLIENTS
) -> None:
    url, probe = gateway.url, gateway.cpu_s

    async def load(workload: str, clients: int, orders: int, mode: str = "ws", **how: Any) -> None:
        plan = _plan(url, mode, clients, orders, scale=scale, **how)
        _add_load(results, workload, await run_load(plan, probe))

    for mode in ("ws", "http"):
        for clients, orders in ((10, 2000), (100, 3000)):
            await load(f"{mode} {clients} clients, flat out", clients, orders, mode)
    for clients in (10, 100):
        workload = f"ws {clients} clients × {PIPELINE_WINDOW} in flight, flat out"
        await load(workload, clients, 20000, window=PIPELINE_WINDOW)
    workload = f"ws 100 clients (≤{PACED_WINDOW} in flight), offered 5,000 orders/s"
    await load(workload, 100, 0, rate=5000.0, seconds=5.0, window=PACED_WINDOW)
    await measure_fanout(gateway, results, diff_clients)


async def measure_fanout(gateway: Gateway, results: Results, diff_clients: int) -> None:
    """The DIFF rows: latency percentiles, connect time, CPU per quote (gateway and clients)."""
    fan = await fanout(gateway.url, diff_clients, DIFF_PROCESSES, gateway.cpu_s)
    workload = f"DIFF quote fan-out, {diff_clients} clients in {DIFF_PROCESSES} processes"
    results.add("shmex", workload, "connect + subscribe all", fan.connect_s, "s")
    results.add("shmex", workload, "quotes received", fan.quotes, "quotes")
    for name, q in (("p50", 50), ("p99", 99), ("p99.9", 99.9)):
        value = fan.latency.get_value_at_percentile(q) / 1000
        results.add("shmex", workload, f"update→client {name}", value, "ms")
    for name, q in (("p50", 50), ("p99", 99), ("p99.9", 99.9)):
        value = fan.arrival.get_value_at_percentile(q) / 1000
        results.add("shmex", workload, f"update→client socket {name}", value, "ms")
    quotes = max(1, fan.quotes)
    per_quote = 1e6 * fan.gateway_cpu_s / quotes
    results.add("shmex", workload, "gateway CPU per quote delivered", per_quote, "µs")
    per_quote = 1e6 * fan.clients_cpu_s / quotes
    results.add("shmex", workload, "bench clients' CPU per quote received", per_quote, "µs")


FANOUT_NOTES = (
    "DIFF latency = client receive time (read right after each socket read) − the",
    "quote's datetime (the match time, µs), so it covers matching → marketdata →",
    "ZeroMQ → gateway → socket → client; 'client socket' rows take the kernel's receive",
    "timestamp of that read (SO_TIMESTAMPNS) instead: the exchange's part without the",
    "clients' own scheduling. 30 book updates 0.25 s apart. The clients are",
    "bench/diff_client.py: one epoll loop per worker process, no JSON parse (byte search",
    "for datetime), SCHED_BATCH so that they do not preempt the exchange on wake-up",
    "(SHMEX_BENCH_EDGE_DIFF_BATCH=0 turns that off); their CPU per quote is a row.",
    "Connect + subscribe is timed in the workers (process start excluded). The",
    "exchange is otherwise idle during the fan-out.",
)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bin/bench edge", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="a tenth of the orders, 100 DIFF clients"
    )
    parser.add_argument("--diff-only", action="store_true", help="only the DIFF fan-out")
    args = parser.parse_args(argv)
    results = Results("edge-diff" if args.diff_only else "edge")
    with exchange() as gateway:
        if args.diff_only:
            clients = QUICK_DIFF_CLIENTS if args.quick else DIFF_CLIENTS
            asyncio.run(measure_fanout(gateway, results, clients))
        elif args.quick:
            asyncio.run(measure(gateway, results, QUICK_SCALE, QUICK_DIFF_CLIENTS))
        else:
            asyncio.run(measure(gateway, results))
    if args.diff_only:
        results.finish(FANOUT_NOTES)
        return
    results.add(
        "QAExchange-RS (claimed, seed 004)",
        "http ab, concurrency 100",
        "orders/s",
        48000,
        "orders/s",
    )
    results.finish(
        [
            "Clients run in the benchmark process on the same 2 cores as every exchange process.",
            "durability.mode = sync (fsync per accounts batch) as in the defaults.",
            "/ws pipelines up to 64 requests per connection and answers in order; the 'flat out'",
            "rows send one order at a time per client (throughput = clients / latency), the",
            "'in flight' rows keep that many orders outstanding per client.",
            "gateway CPU per order = the gateway process's CPU seconds over the orders (loop and",
            "events thread) / orders; it includes pushes (order status, trades) to the client",
            "and the process's background (~10 ms/s idle since the dashboard sampler idles at",
            "one sample per 5 s), which weighs most at low rates and in a small fan-out.",
            *FANOUT_NOTES,
            "QAExchange-RS row is the seed's claim (Rust, ab), not measured here.",
        ]
    )


if __name__ == "__main__":
    main()
