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

The clients share the exchange's cores, so they are kept cheap: each client's two order frames
(or bodies) are encoded once; a `/ws` reader parses only `order_response` frames (pushes are
recognised by their first bytes) and still checks each answer's code and order id. The summary
reports the client's own CPU per order and, for a local instance, the gateway's.
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

from gateway.client import EdgeClient, Reply, order_body
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
    client_cpu_s: float = 0.0
    """This process's CPU seconds over the orders (the clients share the exchange's cores)."""
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
            "client_cpu_us_per_order": (
                round(1e6 * self.client_cpu_s / self.orders, 1) if self.orders else None
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
        started, own_before = time.perf_counter(), time.process_time()
        await asyncio.gather(
            *(
                worker(session, plan, owner, account, n, mid, tick, budget, per_client, result)
                for n, (owner, account) in enumerate(accounts)
            )
        )
        result.seconds = time.perf_counter() - started
        result.client_cpu_s = time.process_time() - own_before
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


ORDER_RESPONSE = '{"type":"order_response",'
"""How every `order_response` frame starts (the gateway's encoder keeps the key order): pushes
are recognised by their first bytes and dropped without parsing."""
SILENCE_S = 30.0
"""A `/ws` client that hears nothing for this long while it waits gives up (closes)."""


class _WsClient:
    """One `/ws` order client: the requests are encoded once (two alternating frames); the
    reader parses only `order_response` frames, checks each one's code and order id and matches
    it to the oldest send; a watchdog closes a silent socket (no timeout per receive, which
    costs aiohttp a timer context per frame)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, window: int, result: LoadResult):
        self.ws = ws
        self.window = window
        self.result = result
        self.sent_at: deque[int] = deque()
        self.room = asyncio.Event()
        self.failed: BaseException | None = None
        self.heard = time.monotonic()
        self.closing: asyncio.Future[bool] | None = None

    async def read_answers(self) -> None:
        """Answers come in request order: each `order_response` closes the oldest send."""
        ws, sent_at, record = self.ws, self.sent_at, self.result.record
        try:
            while True:
                frame = await ws.receive()
                self.heard = time.monotonic()
                if frame.type is not aiohttp.WSMsgType.TEXT:
                    raise ConnectionError(f"/ws closed: {frame.type.name} {frame.extra}")
                if not frame.data.startswith(ORDER_RESPONSE):
                    continue
                answer = orjson.loads(frame.data)
                if answer["success"]:
                    if not isinstance(answer["order_id"], int):
                        raise ConnectionError(f"an accepted order without an id: {answer}")
                    record(sent_at.popleft(), 0)
                else:
                    record(sent_at.popleft(), int(answer["error_code"]))
                self.room.set()
        except BaseException as exc:
            self.failed = exc
            self.room.set()
            raise

    async def wait_room(self, in_flight: int) -> None:
        """Until fewer than `in_flight` orders are unanswered; the reader's failure raised."""
        while len(self.sent_at) >= in_flight:
            if self.failed is not None:
                raise ConnectionError("/ws answer reader stopped") from self.failed
            self.room.clear()
            await self.room.wait()
        if self.failed is not None:
            raise ConnectionError("/ws answer reader stopped") from self.failed

    def watch(self) -> None:
        """Close the socket after SILENCE_S without a frame while answers are awaited."""
        if self.ws.closed:
            return
        if self.sent_at and time.monotonic() - self.heard > SILENCE_S:
            self.closing = asyncio.ensure_future(self.ws.close())
            return
        asyncio.get_running_loop().call_later(1.0, self.watch)


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
        frames = itertools.cycle(
            orjson.dumps({"type": "submit_order", **body}).decode()
            for body in itertools.islice(_orders(account, plan, n, mid, tick), 2)
        )
        client = _WsClient(ws, max(1, plan.window), result)
        reader = asyncio.create_task(client.read_answers())
        client.watch()
        try:
            started, sent = time.perf_counter(), 0
            while budget.take():
                await _pace(per_client, sent, started)
                await client.wait_room(client.window)
                client.sent_at.append(time.perf_counter_ns())
                await ws.send_str(next(frames))
                sent += 1
            await client.wait_room(1)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)


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
    headers = {"Authorization": f"Bearer {owner.token}", "Content-Type": "application/json"}
    bodies = itertools.cycle(
        orjson.dumps(body) for body in itertools.islice(_orders(account, plan, n, mid, tick), 2)
    )
    url = plan.url + "/api/order/submit"
    timeout = aiohttp.ClientTimeout(total=SILENCE_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as own:
        started, sent = time.perf_counter(), 0
        while budget.take():
            await _pace(per_client, sent, started)
            begun = time.perf_counter_ns()
            async with own.post(url, data=next(bodies), headers=headers) as response:
                reply = Reply(response.status, orjson.loads(await response.read()))
            if reply.ok and not isinstance(reply.data.get("order_id"), int):
                raise ConnectionError(f"an accepted order without an id: {reply.body}")
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


def gateway_cpu_probe(config: configuration.Config) -> Callable[[], float] | None:
    """Reads the instance's gateway CPU seconds (its `status`), if the gateway answers."""
    endpoint = config.control_endpoint("gateway.1")

    def cpu_s() -> float:
        return float(call(endpoint, "status", timeout=5.0)["cpu_s"])

    try:
        cpu_s()
    except ControlError:
        return None
    return cpu_s


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
    config = configuration.from_arguments(args)
    url = args.url or gateway_url(config)
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
    probe = gateway_cpu_probe(config) if args.url is None else None
    summary = asyncio.run(run_load(plan, probe)).summary()
    if args.json:
        sys.stdout.write(orjson.dumps(summary).decode() + "\n")
    else:
        for key, value in summary.items():
            sys.stdout.write(f"{key:>14}: {value}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
