"""`bin/loadgen --ws | --http`: N concurrent clients placing orders through the web edge.

Each client has its own connection (a `/ws` socket, or one keep-alive HTTP connection) and
its own funded account; by default each client is its own user (a user's pushes go to every
one of its connections, so sharing users multiplies the pushes). A `/ws` client subscribes to
the `trade` channel only (its order statuses and fills), as an order-entry client would.
Clients alternate buying one tick above and selling one tick below the instrument's reference
price, so orders cross and the whole pipeline (risk, matching, fills, pushes) works. The latency
of each order is send → the gateway's answer (`order_response` or the HTTP reply), in an HDR
histogram. `--window N` lets each `/ws` client keep N orders in flight (the gateway pipelines
them and answers in order, so the answers are matched to the sends first in, first out).
`--rate` spreads the offered orders/s over the clients; 0 means flat out. The
gateway's rate limits apply: raise `SHMEX_GATEWAY_RATE_PER_SECOND`/`..._RATE_BURST` for a run.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
from hdrh.histogram import HdrHistogram

from gateway.client import EdgeClient, order_body
from ipc.control import ControlError, call
from services import config as configuration

log = logging.getLogger(__name__)

CASH = 10**12
"""CNY per client account: enough margin that risk never refuses the stream."""
PASSWORD = "loadgen-password-1"


@dataclass
class LoadResult:
    mode: str
    clients: int
    orders: int = 0
    accepted: int = 0
    rejected: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    gateway_cpu_s: float | None = None
    latency_us: HdrHistogram = field(default_factory=lambda: HdrHistogram(1, 60_000_000, 3))

    @property
    def rate(self) -> float:
        return self.orders / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, Any]:
        h = self.latency_us
        return {
            "mode": self.mode,
            "clients": self.clients,
            "orders": self.orders,
            "accepted": self.accepted,
            "rejected": {str(k): v for k, v in sorted(self.rejected.items())},
            "seconds": round(self.seconds, 3),
            "orders_per_s": round(self.rate, 1),
            "gateway_cpu_us_per_order": (
                round(1e6 * self.gateway_cpu_s / self.orders, 1)
                if self.gateway_cpu_s is not None and self.orders
                else None
            ),
            "latency_us": {
                "p50": h.get_value_at_percentile(50),
                "p99": h.get_value_at_percentile(99),
                "p99.9": h.get_value_at_percentile(99.9),
                "max": h.get_max_value(),
            },
        }

    def record(self, started_ns: int, code: int) -> None:
        self.latency_us.record_value(max(1, (time.perf_counter_ns() - started_ns) // 1000))
        self.orders += 1
        if code == 0:
            self.accepted += 1
        else:
            self.rejected[code] = self.rejected.get(code, 0) + 1


@dataclass(frozen=True)
class Plan:
    url: str
    mode: str
    clients: int
    users: int
    orders: int
    seconds: float
    rate: float
    instrument: str
    tag: str
    window: int = 1
    """Orders each `/ws` client keeps in flight."""


class _Budget:
    """Orders left to send (by count or by deadline), shared by every client."""

    def __init__(self, plan: Plan) -> None:
        self._left = plan.orders if plan.seconds <= 0 else -1
        self._deadline = time.monotonic() + plan.seconds if plan.seconds > 0 else 0.0

    def take(self) -> bool:
        if self._deadline:
            return time.monotonic() < self._deadline
        if self._left <= 0:
            return False
        self._left -= 1
        return True


async def _prices(client: EdgeClient, instrument: str) -> tuple[Decimal, Decimal]:
    rows = await client.expect("GET", "/api/market/instruments")
    spec = next((r for r in rows if r["id"] == instrument), None)
    if spec is None:
        raise SystemExit(f"no instrument {instrument} at the gateway")
    tick = Decimal(str(spec["price_tick"]))
    mid = Decimal(str(spec["pre_settlement"] or spec["pre_close"]))
    return (mid / tick).to_integral_value() * tick, tick


async def _prepare(session: aiohttp.ClientSession, plan: Plan) -> list[tuple[EdgeClient, int]]:
    """Sign up the users and open one funded account per client."""
    users = []
    for n in range(plan.users):
        client = EdgeClient(session, plan.url)
        await client.sign_up(f"lg{plan.tag}u{n}", PASSWORD)
        users.append(client)
    out = []
    for n in range(plan.clients):
        owner = users[n % len(users)]
        account = await owner.open_funded_account(CASH, transaction_id=n + 1)
        out.append((owner, account))
    return out


async def run_load(plan: Plan, cpu_probe: Callable[[], float] | None = None) -> LoadResult:
    """Run one load and return what was measured.

    `cpu_probe` reads the gateway's CPU seconds (its `status` `cpu_s`); read just before and
    after the orders (sign-ups excluded: scrypt would swamp them), it gives CPU per order.
    """
    result = LoadResult(plan.mode, plan.clients)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        accounts = await _prepare(session, plan)
        mid, tick = await _prices(accounts[0][0], plan.instrument)
        budget = _Budget(plan)
        per_client = plan.rate / plan.clients if plan.rate > 0 else 0.0
        worker = _ws_client if plan.mode == "ws" else _http_client
        cpu_before = cpu_probe() if cpu_probe is not None else 0.0
        started = time.perf_counter()
        await asyncio.gather(
            *(
                worker(session, plan, owner, account, n, mid, tick, budget, per_client, result)
                for n, (owner, account) in enumerate(accounts)
            )
        )
        result.seconds = time.perf_counter() - started
        if cpu_probe is not None:
            result.gateway_cpu_s = cpu_probe() - cpu_before
    return result


def _orders(account: int, plan: Plan, n: int, mid: Decimal, tick: Decimal) -> itertools.cycle:
    buy = order_body(account, plan.instrument, "BUY", float(mid + tick), 1)
    sell = order_body(account, plan.instrument, "SELL", float(mid - tick), 1)
    return itertools.cycle([buy, sell] if n % 2 == 0 else [sell, buy])


async def _pace(per_client: float, sent: int, started: float) -> None:
    if per_client > 0:
        delay = started + sent / per_client - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)


async def _ws_client(
    session: aiohttp.ClientSession,
    plan: Plan,
    owner: EdgeClient,
    account: int,
    n: int,
    mid: Decimal,
    tick: Decimal,
    budget: _Budget,
    per_client: float,
    result: LoadResult,
) -> None:
    async with session.ws_connect(plan.url + "/ws", heartbeat=None) as ws:
        await ws.send_str(orjson.dumps({"type": "auth", "token": owner.token}).decode())
        await _until(ws, "auth_response")
        await ws.send_str(orjson.dumps({"type": "subscribe", "channels": ["trade"]}).decode())
        await _until(ws, "subscribe_response")
        orders = _orders(account, plan, n, mid, tick)
        window = max(1, plan.window)
        room = asyncio.Semaphore(window)
        sent_at: deque[int] = deque()
        reader = asyncio.create_task(_read_answers(ws, sent_at, room, result))
        try:
            started, sent = time.perf_counter(), 0
            while budget.take():
                await _pace(per_client, sent, started)
                message = orjson.dumps({"type": "submit_order", **next(orders)}).decode()
                await _acquire(room, reader)
                sent_at.append(time.perf_counter_ns())
                await ws.send_str(message)
                sent += 1
            for _ in range(window):
                await _acquire(room, reader)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


async def _acquire(room: asyncio.Semaphore, reader: asyncio.Task[None]) -> None:
    """A free place in the window, or the reader's failure (a closed socket) raised."""
    acquire = asyncio.ensure_future(room.acquire())
    await asyncio.wait({acquire, reader}, return_when=asyncio.FIRST_COMPLETED)
    if not acquire.done():
        acquire.cancel()
        reader.result()
        raise ConnectionError("/ws answer reader stopped")


async def _read_answers(
    ws: aiohttp.ClientWebSocketResponse,
    sent_at: deque[int],
    room: asyncio.Semaphore,
    result: LoadResult,
) -> None:
    """Answers come in request order: each `order_response` closes the oldest send."""
    while True:
        answer = await _until(ws, "order_response")
        result.record(sent_at.popleft(), 0 if answer["success"] else int(answer["error_code"]))
        room.release()


async def _until(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    """The next message of `kind` (pushes in between are read and dropped)."""
    while True:
        frame = await ws.receive(timeout=30)
        if frame.type is not aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"/ws closed: {frame.type.name} {frame.extra}")
        message = orjson.loads(frame.data)
        if message.get("type") == kind:
            return dict(message)


async def _http_client(
    session: aiohttp.ClientSession,
    plan: Plan,
    owner: EdgeClient,
    account: int,
    n: int,
    mid: Decimal,
    tick: Decimal,
    budget: _Budget,
    per_client: float,
    result: LoadResult,
) -> None:
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as own:
        client = EdgeClient(own, plan.url)
        client.token = owner.token
        orders = _orders(account, plan, n, mid, tick)
        started, sent = time.perf_counter(), 0
        while budget.take():
            await _pace(per_client, sent, started)
            begun = time.perf_counter_ns()
            reply = await client.call("POST", "/api/order/submit", next(orders))
            result.record(begun, reply.code)
            sent += 1


def gateway_url(config: configuration.Config) -> str:
    """The running gateway's URL (it may have bound another port), else the configured one."""
    try:
        status = call(config.control_endpoint("gateway.1"), "status", timeout=2.0)
        return str(status["http"]).rstrip("/")
    except ControlError:
        ports = config["ports"]
        return f"http://{ports['host']}:{ports['http']}"


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bin/loadgen", description=__doc__)
    configuration.add_arguments(parser)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--ws", action="store_true", help="native /ws clients")
    mode.add_argument("--http", action="store_true", help="REST clients")
    parser.add_argument("--url", default=None, help="gateway URL (default: the instance's)")
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument(
        "--users", type=int, default=0, help="users the clients share (0: one each)"
    )
    parser.add_argument("--orders", type=int, default=10_000, help="orders to send in all")
    parser.add_argument("--seconds", type=float, default=0.0, help="send for this long instead")
    parser.add_argument("--rate", type=float, default=0.0, help="orders/s offered; 0 = flat out")
    parser.add_argument("--window", type=int, default=1, help="orders in flight per /ws client")
    parser.add_argument("--instrument", default="CFFEX.IF2501")
    parser.add_argument("--tag", default=str(int(time.time()) % 100_000), help="user name tag")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    logging.basicConfig(level=logging.WARNING)
    url = args.url or gateway_url(configuration.from_arguments(args))
    plan = Plan(
        url=url.rstrip("/"),
        mode="ws" if args.ws else "http",
        clients=args.clients,
        users=args.users or args.clients,
        orders=args.orders,
        seconds=args.seconds,
        rate=args.rate,
        instrument=args.instrument,
        tag=args.tag,
        window=args.window,
    )
    summary = asyncio.run(run_load(plan)).summary()
    if args.json:
        sys.stdout.write(orjson.dumps(summary).decode() + "\n")
    else:
        for key, value in summary.items():
            sys.stdout.write(f"{key:>14}: {value}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
