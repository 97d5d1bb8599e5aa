"""`bin/bench budget`: where the exchange's CPU goes per order, process by process.

Starts a whole instance (every process, through `bin/exchange up`), measures each process's idle
CPU (ms of CPU per second of wall time, no load, `SHMEX_BENCH_BUDGET_IDLE_S`, default 30 s), then
drives it at fixed offered rates (`SHMEX_BENCH_BUDGET_RATES`, default 500,1000 orders/s) through
`--direct` (the cmd ring) and `--ws` (10 native WebSocket clients through the gateway;
`SHMEX_BENCH_BUDGET_MODES`, default direct,ws) for `SHMEX_BENCH_BUDGET_SECONDS` (default 5 s)
each, and reports every process's CPU per order: user + system CPU seconds from psutil on the
pids in the run directory's pid files, read before and after the orders (WebSocket sign-ups
excluded), over the orders answered. The load generator runs in this process; its row is
this process's CPU over the same window. CPU per order includes the idle background over the run
(idle ms/s ÷ rate); the "net of idle" rows subtract it. Numbers are CPU time, so they are far
steadier than wall-clock throughput on a machine other engineers load, but still disturbed by
cache and scheduler contention (noted in the results).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench.common import Results
from bench.edge import exchange
from gateway.loadgen import Plan
from gateway.loadgen import run_load as run_ws_load
from ipc.control import call
from services import config as configuration
from services.loadgen import DirectClient, LoadConfig, LoadGenerator

QUICK = "--quick" in sys.argv[1:]
"""A smoke run: 5 s idle, 2 s per load (the environment still wins)."""
IDLE_S = float(os.environ.get("SHMEX_BENCH_BUDGET_IDLE_S", "5" if QUICK else "30"))
RUN_S = float(os.environ.get("SHMEX_BENCH_BUDGET_SECONDS", "2" if QUICK else "5"))
RATES = tuple(int(r) for r in os.environ.get("SHMEX_BENCH_BUDGET_RATES", "500,1000").split(","))
MODES = os.environ.get("SHMEX_BENCH_BUDGET_MODES", "direct,ws").split(",")
WS_CLIENTS = 10
SETTLE_S = 0.5
"""Pause after the last answer so market data and the recorder finish the run's tail."""
LOADGEN = "loadgen"


@dataclass(frozen=True)
class Instance:
    prefix: str
    home: Path
    gateway_url: str

    def config(self) -> configuration.Config:
        return configuration.load(
            None,
            env={},
            overrides={"instance.prefix": self.prefix, "instance.home": str(self.home)},
        )

    def pids(self) -> dict[str, int]:
        """Every live process of the instance, by its pid file's name."""
        out = {}
        for path in sorted(self.home.glob("*.pid")):
            try:
                pid = int(path.read_text().split()[0])
            except (ValueError, IndexError):
                continue
            if psutil.pid_exists(pid):
                out[path.stem] = pid
        return out


@contextmanager
def instance() -> Iterator[Instance]:
    """The whole instance `bin/bench edge` starts; its run directory and prefix are asked of
    the supervisor, for the pid files and the direct client."""
    with exchange() as gateway:
        home = Path(gateway.control.removeprefix("ipc://")).parent
        status = call(f"ipc://{home}/supervisor.ctl", "status", timeout=5.0)
        yield Instance(str(status["prefix"]), Path(status["home"]), gateway.url)


def cpu_snapshot(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user + system) of each process so far, this process as `loadgen`."""
    out = {}
    for name, pid in pids.items():
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        out[name] = times.user + times.system
    out[LOADGEN] = time.process_time()
    return out


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before[name] for name in before if name in after}


def measure_idle(inst: Instance, seconds: float) -> dict[str, float]:
    """ms of CPU per wall second of each process with no load."""
    pids = inst.pids()
    before, started = cpu_snapshot(pids), time.monotonic()
    time.sleep(seconds)
    used, wall = delta(before, cpu_snapshot(pids)), time.monotonic() - started
    used.pop(LOADGEN)
    return {name: 1e3 * cpu / wall for name, cpu in used.items()}


def run_direct(inst: Instance, rate: int) -> tuple[int, dict[str, float]]:
    """Orders answered and CPU seconds used per process while `--direct` sends at `rate`."""
    pids = inst.pids()
    load = LoadConfig(orders=0, seconds=RUN_S, rate=rate, seed=rate, account_base=rate * 10)
    with DirectClient(inst.config()) as client:
        before = cpu_snapshot(pids)
        summary = LoadGenerator(client, load).run().summary()
        time.sleep(SETTLE_S)
        after = cpu_snapshot(pids)
    return int(summary["answered"]), delta(before, after)


def run_ws(inst: Instance, rate: int) -> tuple[int, dict[str, float]]:
    """As `run_direct` through 10 `/ws` clients; the snapshots bracket the orders only."""
    pids = inst.pids()
    snapshots: list[dict[str, float]] = []

    def probe() -> float:
        if snapshots:
            time.sleep(SETTLE_S)
        snapshots.append(cpu_snapshot(pids))
        return snapshots[-1].get("gateway.1", 0.0)

    plan = Plan(
        url=inst.gateway_url,
        mode="ws",
        clients=WS_CLIENTS,
        users=WS_CLIENTS,
        orders=0,
        seconds=RUN_S,
        rate=rate,
        instrument="CFFEX.IF2501",
        tag=f"b{rate}",
    )
    result = asyncio.run(run_ws_load(plan, cpu_probe=probe))
    return result.orders, delta(snapshots[0], snapshots[1])


def add_run(
    results: Results,
    workload: str,
    rate: int,
    run: Callable[[Instance, int], tuple[int, dict[str, float]]],
    inst: Instance,
    idle: dict[str, float],
) -> None:
    orders, used = run(inst, rate)
    results.add("shmex", workload, "orders answered", orders, "orders")
    total = net_total = 0.0
    for name, seconds in sorted(used.items()):
        per_order = 1e6 * seconds / max(1, orders)
        net = per_order - idle.get(name, 0.0) * 1e3 / rate
        total, net_total = total + per_order, net_total + net
        results.add("shmex", workload, f"{name} CPU per order", per_order, "µs")
        results.add("shmex", workload, f"{name} net of idle", net, "µs")
    results.add("shmex", workload, "all processes CPU per order", total, "µs")
    results.add("shmex", workload, "all processes net of idle", net_total, "µs")


def main() -> int:
    results = Results("budget")
    notes = [
        f"idle over {IDLE_S:g} s; each load {RUN_S:g} s at the offered rate, + {SETTLE_S} s tail",
        "CPU per order = process CPU over the run / orders answered (includes its idle background);"
        " net of idle subtracts idle ms/s ÷ rate",
        f"loadgen = this process (direct client, or {WS_CLIENTS} aiohttp /ws clients)",
    ]
    with instance() as inst:
        time.sleep(2.0)
        idle = measure_idle(inst, IDLE_S)
        for name, value in sorted(idle.items()):
            results.add("shmex", "idle", f"{name} CPU", value, "ms/s")
        results.add("shmex", "idle", "all processes CPU", sum(idle.values()), "ms/s")
        for mode in MODES:
            run = {"direct": run_direct, "ws": run_ws}[mode]
            for rate in RATES:
                add_run(results, f"--{mode} {rate:,} orders/s", rate, run, inst, idle)
    results.finish(notes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
