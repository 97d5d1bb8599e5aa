"""`bin/bench edge`: the client edge on the real exchange (every process up, loopback clients).

- orders/s and order → answer latency through `/ws` and REST with 10 and 100 clients, flat out
  (`gateway.loadgen`), and through `/ws` at an offered 5,000 orders/s;
- DIFF quote fan-out: 1,000 `/ws/diff` clients subscribed to one instrument while orders move
  its book; latency = client receive time − the quote's `datetime` (the match's timestamp,
  microseconds), so it covers matching → marketdata → ZeroMQ → gateway → DIFF → client.

The clients run in this process on the same two cores as the exchange, so every number includes
the client's own cost; other engineers' tests share the machine too (noted in the results).
`SHMEX_BENCH_EDGE_SCALE` multiplies the order counts; `SHMEX_BENCH_EDGE_DIFF_CLIENTS` sets the
fan-out width.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import orjson
from hdrh.histogram import HdrHistogram

from bench.common import Results
from gateway.client import EdgeClient, order_body
from gateway.diff.messages import EXCHANGE_UTC_OFFSET_S
from gateway.loadgen import LoadResult, Plan, run_load
from ipc.control import call
from ipc.shm import unlink_prefix

ROOT = Path(__file__).resolve().parents[1]
SCALE = float(os.environ.get("SHMEX_BENCH_EDGE_SCALE", "1"))
DIFF_CLIENTS = int(os.environ.get("SHMEX_BENCH_EDGE_DIFF_CLIENTS", "1000"))
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


@contextmanager
def exchange() -> Iterator[str]:
    """A whole instance for the run; yields the gateway URL."""
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
        status = call(f"ipc://{home}/gateway.1.ctl", "status", timeout=5.0)
        yield str(status["http"]).rstrip("/")
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
    rejected = sum(load.rejected.values())
    if rejected:
        results.add("shmex", workload, "rejected", rejected, "orders")


def _plan(
    url: str, mode: str, clients: int, orders: int, rate: float = 0.0, seconds: float = 0.0
) -> Plan:
    return Plan(
        url=url,
        mode=mode,
        clients=clients,
        users=clients,
        orders=int(orders * SCALE),
        seconds=seconds * SCALE,
        rate=rate,
        instrument=INSTRUMENT,
        tag=f"c{clients}",
    )


def _parse_datetime(text: str) -> int:
    """A DIFF quote `datetime` (exchange local time, microseconds) → ns UTC."""
    moment = dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=ZONE)
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


async def _diff_client(
    session: aiohttp.ClientSession,
    url: str,
    ready: asyncio.Event,
    stop: asyncio.Event,
    latency: HdrHistogram,
    counts: list[int],
) -> None:
    async with session.ws_connect(url + "/ws/diff", heartbeat=None, max_msg_size=0) as ws:
        await ws.send_str('{"aid":"subscribe_quote","ins_list":"' + FANOUT_INSTRUMENT + '"}')
        await ws.send_str('{"aid":"peek_message"}')
        subscribed = False
        while not stop.is_set():
            try:
                frame = await ws.receive(timeout=1.0)
            except TimeoutError:
                continue
            if frame.type is not aiohttp.WSMsgType.TEXT:
                return
            now = time.time_ns()
            message = orjson.loads(frame.data)
            for patch in message.get("data", ()):
                if patch.get("ins_list") == FANOUT_INSTRUMENT and not subscribed:
                    subscribed = True
                    counts[0] += 1
                    if counts[0] >= counts[1]:
                        ready.set()
                quote = patch.get("quotes", {}).get(FANOUT_INSTRUMENT)
                if subscribed and quote and isinstance(quote.get("datetime"), str):
                    stamp = _parse_datetime(quote["datetime"])
                    if stamp > 0 and quote.get("bid_volume1") not in (None, "NAN"):
                        latency.record_value(max(1, (now - stamp) // 1000))
            await ws.send_str('{"aid":"peek_message"}')


async def fanout(url: str, clients: int) -> tuple[HdrHistogram, float]:
    """1,000 DIFF clients on one quote while one trader moves the book; (latency, connect s)."""
    latency = HdrHistogram(1, 60_000_000, 3)
    ready, stop = asyncio.Event(), asyncio.Event()
    counts = [0, clients]
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        trader = EdgeClient(session, url)
        await trader.sign_up("fanout", "fanout-password-1")
        account = await trader.open_funded_account(10**9)
        started = time.perf_counter()
        tasks = []
        for _ in range(clients):
            tasks.append(
                asyncio.create_task(_diff_client(session, url, ready, stop, latency, counts))
            )
            await asyncio.sleep(0)
        await asyncio.wait_for(ready.wait(), 300)
        connected = time.perf_counter() - started
        latency.reset()
        for n in range(FANOUT_UPDATES):
            body = order_body(account, FANOUT_INSTRUMENT, "BUY", 2700.0 + 0.2 * (n % 50), 1)
            await trader.expect("POST", "/api/order/submit", body)
            await asyncio.sleep(0.25)
        await asyncio.sleep(2.0)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    return latency, connected


async def measure(url: str, results: Results) -> None:
    for mode in ("ws", "http"):
        for clients, orders in ((10, 2000), (100, 3000)):
            load = await run_load(_plan(url, mode, clients, orders))
            _add_load(results, f"{mode} {clients} clients, flat out", load)
    paced = await run_load(_plan(url, "ws", 100, 0, rate=5000.0, seconds=5.0))
    _add_load(results, "ws 100 clients, offered 5,000 orders/s", paced)
    latency, connected = await fanout(url, DIFF_CLIENTS)
    workload = f"DIFF quote fan-out, {DIFF_CLIENTS} clients"
    results.add("shmex", workload, "connect + subscribe all", connected, "s")
    results.add("shmex", workload, "quotes received", latency.get_total_count(), "quotes")
    for name, q in (("p50", 50), ("p99", 99), ("p99.9", 99.9)):
        value = latency.get_value_at_percentile(q) / 1000
        results.add("shmex", workload, f"update→client {name}", value, "ms")


def main() -> None:
    results = Results("edge")
    with exchange() as url:
        asyncio.run(measure(url, results))
    results.add(
        "QAExchange-RS (claimed, seed 004)",
        "http ab, concurrency 100",
        "orders/s",
        48000,
        "orders/s",
    )
    results.finish(
        [
            "Clients run in the benchmark process on the same 2 cores as every exchange process;",
            "numbers measured while ~7 other engineers ran tests (disturbed).",
            "durability.mode = sync (fsync per accounts batch) as in the defaults.",
            "/ws answers one message at a time per connection: throughput = clients / latency.",
            "QAExchange-RS row is the seed's claim (Rust, ab), not measured here.",
        ]
    )


if __name__ == "__main__":
    main()
