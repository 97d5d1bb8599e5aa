"""`bin/bench engine`: shmex matching (with every event) against a plain SortedDict book and
liquibook (C++ via SWIG, Python listeners for every event), plus matching + risk + accounts.

Workloads are generated once per run from a seed and replayed identically on every system:
- `cross30`: ~30% of operations cross the spread, cancels hold the book near 2,000 resting
  orders, the rest are passive limit orders.
- `xcore-mix`: exchange-core's style of load on a 2,000-order book: mostly amends (price moves
  and size reductions) and cancels, with some new passive orders and IOC takers.
Each system runs each workload twice on a fresh book: once for throughput (no timers in the
loop) and once with a timer around every operation for the p50/p99 latency.
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sortedcontainers import SortedDict

from bench.common import Results, percentile
from engine.enums import Offset, Side, TimeCondition
from engine.instruments import InstrumentRegistry
from engine.matching.commands import AmendOrder, CancelOrder, PlaceOrder
from engine.matching.engine import MatchingEngine
from engine.matching.events import OrderCanceled, TradeExecuted, new_trade_executed

INSTRUMENTS = Path(__file__).resolve().parents[1] / "services" / "instruments.toml"
INDEX = 0  # CFFEX.IF2501: band 17,100..20,900 ticks around 19,000
MID = 19_000
RESTING = 2_000
ACCOUNTS = 200  # accounts 1..100 only buy, 101..200 only sell: no self-trades anywhere
SNAPSHOT_BATCH = 64  # commands per account-snapshot batch in the batched accounts variant

PLACE, CANCEL, AMEND = 0, 1, 2
_PRICE_UNCHANGED = 0  # liquibook's "keep the price" value for replace()
Op = tuple[int, ...]
"""(PLACE, order_id, account, side, price, qty, ioc) | (CANCEL, order_id) |
(AMEND, order_id, price, qty)"""


# -- workload generation ----------------------------------------------------------------------


class _Resting:
    """The ids resting in the simulated book, with O(1) random choice and removal."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.where: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, order_id: int) -> None:
        if order_id not in self.where:
            self.where[order_id] = len(self.ids)
            self.ids.append(order_id)

    def discard(self, order_id: int) -> None:
        at = self.where.pop(order_id, None)
        if at is None:
            return
        last = self.ids.pop()
        if last != order_id:
            self.ids[at] = last
            self.where[last] = at


class _Generator:
    """Builds an operation list by running it through a MatchingEngine as it goes."""

    def __init__(self, registry: InstrumentRegistry, seed: int) -> None:
        import random

        self.rng = random.Random(seed)
        self.engine = MatchingEngine(registry)
        self.book = self.engine.book(INDEX)
        self.resting = _Resting()
        self.ops: list[Op] = []
        self.next_id = 1

    def _apply(self, op: Op) -> None:
        if op[0] == PLACE:
            _, order_id, account, side, price, qty, ioc = op
            tc = TimeCondition.IOC if ioc else TimeCondition.GFD
            command: Any = PlaceOrder(
                order_id, account, INDEX, Side(side), price, qty, time_condition=tc
            )
        elif op[0] == CANCEL:
            order_id = op[1]
            command = CancelOrder(order_id, INDEX)
        else:
            _, order_id, price, qty = op
            command = AmendOrder(order_id, INDEX, price, qty)
        for event in self.engine.apply(command):
            if isinstance(event, TradeExecuted) and not event.maker_remaining:
                self.resting.discard(event.maker_order_id)
            elif isinstance(event, OrderCanceled):
                self.resting.discard(event.order_id)
        if order_id in self.book.orders:
            self.resting.add(order_id)
        else:
            self.resting.discard(order_id)
        self.ops.append(op)

    def passive(self) -> None:
        rng = self.rng
        side = rng.choice((1, 2))
        best_bid = self.book.best_bid or MID - 1
        best_ask = self.book.best_ask or MID + 1
        if side == 1:
            price = min(best_ask - 1, best_bid + 2) - rng.randint(0, 40)
            account = rng.randint(1, ACCOUNTS // 2)
        else:
            price = max(best_bid + 1, best_ask - 2) + rng.randint(0, 40)
            account = rng.randint(ACCOUNTS // 2 + 1, ACCOUNTS)
        self._apply((PLACE, self._id(), account, side, price, rng.randint(1, 5), 0))

    def crossing(self, ioc: bool) -> None:
        rng = self.rng
        side = rng.choice((1, 2))
        if side == 1 and self.book.best_ask is not None:
            price, account = self.book.best_ask + rng.randint(0, 3), rng.randint(1, ACCOUNTS // 2)
        elif side == 2 and self.book.best_bid is not None:
            price = self.book.best_bid - rng.randint(0, 3)
            account = rng.randint(ACCOUNTS // 2 + 1, ACCOUNTS)
        else:
            self.passive()
            return
        self._apply((PLACE, self._id(), account, side, price, rng.randint(1, 5), int(ioc)))

    def cancel(self) -> None:
        self._apply((CANCEL, self.rng.choice(self.resting.ids)))

    def amend(self, move: bool) -> None:
        order_id = self.rng.choice(self.resting.ids)
        order = self.book.resting(order_id)
        assert order is not None
        if move:
            self._apply((AMEND, order_id, order.price + self.rng.randint(-5, 5), order.qty))
        elif order.qty > 1:
            self._apply((AMEND, order_id, order.price, order.qty - 1))
        else:
            self._apply((CANCEL, order_id))

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


def generate(registry: InstrumentRegistry, workload: str, count: int, seed: int = 7) -> list[Op]:
    gen = _Generator(registry, seed)
    while len(gen.resting) < RESTING:
        gen.passive()
    prefix = list(gen.ops)
    gen.ops.clear()
    weights: list[tuple[float, Callable[[], None]]]
    if workload == "cross30":
        weights = [(0.15, lambda: gen.crossing(False)), (0.30, lambda: gen.crossing(True))]
    else:
        weights = [
            (0.40, lambda: gen.amend(True)),
            (0.60, lambda: gen.amend(False)),
            (0.82, gen.cancel),
            (0.95, gen.passive),
            (1.00, lambda: gen.crossing(True)),
        ]
    while len(gen.ops) < count:
        roll = gen.rng.random()
        if workload == "cross30" and roll >= 0.30:
            if len(gen.resting) > RESTING:
                gen.cancel()
            else:
                gen.passive()
            continue
        if workload != "cross30" and len(gen.resting) < RESTING - 50:
            gen.passive()
            continue
        next(action for limit, action in weights if roll < limit)()
    return prefix + gen.ops


# -- systems ----------------------------------------------------------------------------------


class PlainBook:
    """A plain-Python SortedDict + deque book: price-time matching, no events, lazy cancels."""

    def __init__(self) -> None:
        self.bids: SortedDict = SortedDict()  # key -price
        self.asks: SortedDict = SortedDict()  # key price
        self.orders: dict[int, tuple[SortedDict, int, list[int]]] = {}

    def place(self, order_id: int, side: int, price: int, qty: int, ioc: int) -> None:
        if side == 1:
            opposite, own, key, limit = self.asks, self.bids, -price, price
        else:
            opposite, own, key, limit = self.bids, self.asks, price, -price
        orders = self.orders
        while qty and opposite:
            best, queue = opposite.peekitem(0)
            if best > limit:
                break
            while qty and queue:
                entry = queue[0]
                if not entry[1]:
                    queue.popleft()
                    continue
                fill = min(qty, entry[1])
                qty -= fill
                entry[1] -= fill
                if not entry[1]:
                    queue.popleft()
                    del orders[entry[0]]
            if not queue:
                del opposite[best]
        if qty and not ioc:
            entry = [order_id, qty]
            queue = own.get(key)
            if queue is None:
                queue = own[key] = deque()
            queue.append(entry)
            orders[order_id] = (own, key, entry)

    def cancel(self, order_id: int) -> None:
        found = self.orders.pop(order_id, None)
        if found is not None:
            found[2][1] = 0

    def amend(self, order_id: int, price: int, qty: int) -> None:
        found = self.orders.get(order_id)
        if found is None:
            return
        own, key, entry = found
        if abs(key) == price and qty <= entry[1]:
            entry[1] = qty
            return
        self.cancel(order_id)
        self.place(order_id, 1 if own is self.bids else 2, price, qty, 0)


def run_plain(ops: list[Op]) -> Callable[[Op], None]:
    book = PlainBook()
    place, cancel, amend = book.place, book.cancel, book.amend

    def step(op: Op) -> None:
        kind = op[0]
        if kind == PLACE:
            place(op[1], op[3], op[4], op[5], op[6])
        elif kind == CANCEL:
            cancel(op[1])
        else:
            amend(op[1], op[2], op[3])

    return step


def _matching_commands(ops: list[Op]) -> list[Any]:
    commands: list[Any] = []
    for op in ops:
        if op[0] == PLACE:
            _, order_id, account, side, price, qty, ioc = op
            tc = TimeCondition.IOC if ioc else TimeCondition.GFD
            commands.append(
                PlaceOrder(order_id, account, INDEX, Side(side), price, qty, time_condition=tc)
            )
        elif op[0] == CANCEL:
            commands.append(CancelOrder(op[1], INDEX))
        else:
            commands.append(AmendOrder(op[1], INDEX, op[2], op[3]))
    return commands


class LiquibookRunner:
    """liquibook's DepthOrderBook with Python listeners that record every callback.

    Each call returns that operation's events in a fresh list, as `MatchingEngine.apply`
    does, so both systems build, deliver and (when the harness drops the list) free every
    event inside the timed loop. Until 2026-11-22 the listeners appended to one list kept for
    the whole run, so only shmex paid for freeing its events (docs/matching.md).
    """

    def __init__(self) -> None:
        import liquibook

        self.lb = liquibook
        self.events: list[tuple[Any, ...]] = []
        runner = self

        class Orders(liquibook.OrderListener):  # type: ignore[misc, name-defined]
            def on_accept(self, order: Any) -> None:
                runner.events.append((1, order.order_id_))

            def on_reject(self, order: Any, reason: str) -> None:
                runner.events.append((2, order.order_id_, reason))

            def on_fill(self, order: Any, matched: Any, qty: int, cost: int) -> None:
                order.fill(qty, cost, 0)
                matched.fill(qty, cost, 0)
                runner.events.append((3, order.order_id_, matched.order_id_, qty, cost))

            def on_cancel(self, order: Any) -> None:
                runner.events.append((4, order.order_id_))

            def on_cancel_reject(self, order: Any, reason: str) -> None:
                runner.events.append((5, order.order_id_, reason))

            def on_replace(self, order: Any, size_delta: int, new_price: int) -> None:
                order.replace(size_delta, new_price)
                runner.events.append((6, order.order_id_, size_delta, new_price))

            def on_replace_reject(self, order: Any, reason: str) -> None:
                runner.events.append((7, order.order_id_, reason))

        class Depth(liquibook.DepthListener):  # type: ignore[misc, name-defined]
            def on_depth_change(self, book: Any, depth: Any) -> None:
                runner.events.append((8,))

        self.listeners = (Orders(), Depth())
        self.book = liquibook.DepthOrderBook()
        self.book.set_order_listener(self.listeners[0])
        self.book.set_depth_listener(self.listeners[1])
        self.book.set_symbol("IF2501")
        self.orders: dict[int, Any] = {}
        self.new_order = liquibook.SimpleOrder
        self.ioc = liquibook.oc_immediate_or_cancel

    def __call__(self, op: Op) -> list[tuple[Any, ...]]:
        """Apply one operation and return its events; the runner keeps the listeners alive."""
        self.events = events = []
        kind = op[0]
        if kind == PLACE:
            if op[6]:
                order = self.new_order(op[3] == 1, op[4], op[5], 0, self.ioc)
                self.orders[op[1]] = order
                self.book.add(order, self.ioc)
            else:
                order = self.new_order(op[3] == 1, op[4], op[5])
                self.orders[op[1]] = order
                self.book.add(order)
        elif kind == CANCEL:
            self.book.cancel(self.orders[op[1]])
        else:
            order = self.orders[op[1]]
            if op[2] == order.price() and op[3] <= order.open_qty():
                self.book.replace(order, op[3] - order.open_qty(), _PRICE_UNCHANGED)
            else:
                # liquibook's depth tracking breaks on a replace that moves an order across the
                # spread, so a move is a cancel plus a new order (which loses priority, as ours).
                self.book.cancel(order)
                moved = self.new_order(order.is_buy(), op[2], op[3])
                self.orders[op[1]] = moved
                self.book.add(moved)
        return events


def run_shmex(ops: list[Op]) -> tuple[Callable[[Any], list[Any]], list[Any]]:
    engine = MatchingEngine(InstrumentRegistry.from_toml(INSTRUMENTS.read_text()))
    return engine.apply, _matching_commands(ops)


# -- matching + risk + accounts ---------------------------------------------------------------


def exchange_slot(exchange: Any, ops: list[Op]) -> tuple[Callable[[Any], list[Any]], list[Any]]:
    """MATCHING + RISK + ACCOUNTS: the `engine.exchange.Exchange` facade, one command per op.

    Opens the accounts with ample money (untimed), then maps every op to a client command.
    Order ids are assigned by the accounts core in submission order, which is the order ids
    of the generated workload as long as risk accepts every order (checked after the run).
    """
    from engine.accounts import commands as ac

    request = iter(range(1, 10**9))
    owner: dict[int, int] = {}
    for account in range(1, ACCOUNTS + 1):
        exchange.apply(ac.OpenAccount(next(request), account))
        exchange.apply(ac.Deposit(next(request), account, 10**13, account))
    commands: list[Any] = []
    for op in ops:
        if op[0] == PLACE:
            _, order_id, account, side, price, qty, ioc = op
            owner[order_id] = account
            tc = TimeCondition.IOC if ioc else TimeCondition.GFD
            commands.append(
                ac.SubmitOrder(
                    next(request),
                    account,
                    INDEX,
                    Side(side),
                    Offset.OPEN,
                    price,
                    qty,
                    time_condition=tc,
                )
            )
        elif op[0] == CANCEL:
            commands.append(ac.CancelOrder(next(request), owner[op[1]], op[1]))
        else:
            commands.append(ac.AmendOrder(next(request), owner[op[1]], op[1], op[2], op[3]))
    return exchange.apply, commands


def run_exchange(
    ops: list[Op], snapshot_batch: int = 0
) -> tuple[Callable[[Any], list[Any]], list[Any]] | None:
    """The Exchange facade; `snapshot_batch` > 0: account snapshots once per that many commands.

    With 0 the core builds AccountUpdated/PositionUpdated after every booking (its default);
    otherwise it only marks changed accounts and `snapshot_events` builds their snapshots once
    per batch, as the accounts process does once per ring batch.
    """
    try:
        from engine.exchange import Exchange
    except ImportError:
        return None
    registry = InstrumentRegistry.from_toml(INSTRUMENTS.read_text())
    exchange = Exchange(registry, snapshots=not snapshot_batch)
    apply, commands = exchange_slot(exchange, ops)
    if not snapshot_batch:
        return apply, commands
    snapshot_events = exchange.accounts.snapshot_events
    counter = iter(range(1, 10**12))

    def batched(command: Any) -> list[Any]:
        events = apply(command)
        if next(counter) % snapshot_batch == 0:
            events.extend(snapshot_events(command.ts))
        return events

    return batched, commands


# -- measurement ------------------------------------------------------------------------------


Build = Callable[[], tuple[Callable[[Any], Any], list[Any], int]]
"""Makes a fresh system: (apply one input, the inputs, how many leading inputs are warm-up)."""


def _warmed(build: Build) -> tuple[Callable[[Any], Any], list[Any]]:
    apply, inputs, warm = build()
    for item in inputs[:warm]:
        apply(item)
    gc.collect()
    return apply, inputs[warm:]


def throughput(build: Build) -> tuple[float, float]:
    """Operations per second over the timed inputs (wall clock, CPU time), GC paused.

    CPU time leaves out the time other processes held the core, which on a shared 2-core
    machine is most of the noise; both are reported.
    """
    apply, timed = _warmed(build)
    gc.disable()
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        for item in timed:
            apply(item)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        gc.enable()
    return len(timed) / wall, len(timed) / max(cpu, 1e-9)


def latencies(build: Build) -> list[int]:
    """Sorted nanoseconds per operation (the two clock reads included), GC paused."""
    apply, timed = _warmed(build)
    samples = []
    clock = time.perf_counter_ns
    gc.disable()
    try:
        for item in timed:
            before = clock()
            apply(item)
            samples.append(clock() - before)
    finally:
        gc.enable()
    samples.sort()
    return samples


def _step(apply: Callable[[Any], Any], item: Any) -> Callable[[Any], Any]:
    apply(item)
    return apply


def counted_run(build: Build) -> None:
    """Run the timed inputs inside `functools.reduce`, the C function callgrind toggles on.

    `valgrind --toggle-collect=functools_reduce` then counts exactly the instructions of the
    timed loop (inclusive), not the imports, the workload generation or the warm-up.
    """
    apply, timed = _warmed(build)
    gc.disable()
    functools.reduce(_step, timed, apply)


def instructions(system: str, workload: str, count: int) -> float | None:
    """Instructions per operation of one system on one workload, counted by callgrind.

    Runs this module under valgrind in a child process (`--count`); None without valgrind.
    Counts do not move with the machine's load, so before/after comparisons are exact.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        command = [
            "valgrind", "--tool=callgrind", "--toggle-collect=functools_reduce",
            f"--callgrind-out-file={out}", sys.executable, "-m", "bench.engine",
            "--count", system, "--workload", workload, "--ops", str(count),
        ]  # fmt: skip
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=1800)
        except FileNotFoundError:
            return None
        for line in Path(out).read_text().splitlines():
            if line.startswith("totals:") or line.startswith("summary:"):
                return int(line.split()[1]) / count
    raise RuntimeError("callgrind wrote no totals")


# -- event constructors -----------------------------------------------------------------------

_tuple_new = tuple.__new__
_partial_new = functools.partial(tuple.__new__, TradeExecuted)
_make = TradeExecuted._make
_B = Side.BUY
CONSTRUCTORS: dict[str, Callable[[int], Any]] = {
    "loop only": lambda i: i,
    "plain tuple": lambda i: (i, 0, 19_000, 1, 2, 5, _B, 3, 105, 0, 0, i),
    "TradeExecuted(...)": lambda i: TradeExecuted(i, 0, 19_000, 1, 2, 5, _B, 3, 105, 0, 0, i),
    "TradeExecuted._make": lambda i: _make((i, 0, 19_000, 1, 2, 5, _B, 3, 105, 0, 0, i)),
    "partial(tuple.__new__, cls)": lambda i: _partial_new(
        (i, 0, 19_000, 1, 2, 5, _B, 3, 105, 0, 0, i)
    ),
    "tuple.__new__(cls, fields)": lambda i: _tuple_new(
        TradeExecuted, (i, 0, 19_000, 1, 2, 5, _B, 3, 105, 0, 0, i)
    ),
    "new_trade_executed (positional)": lambda i: new_trade_executed(
        (i, 0, 19_000, 1, 2, 5, _B, 3, 105, 0, 0, i)
    ),
}
"""Ways to build one TradeExecuted (12 fields); each is called and its result dropped, so a
count includes the event's deallocation, as when a consumer drops a command's events."""


def constructor_costs(count: int) -> dict[str, float]:
    """Instructions per event of each CONSTRUCTORS entry (callgrind, the loop's own cost taken
    off); empty without valgrind."""
    per_call: dict[str, float] = {}
    for name in CONSTRUCTORS:
        per_op = instructions(name, "constructors", count)
        if per_op is None:
            return {}
        per_call[name] = per_op
    loop = per_call.pop("loop only")
    return {name: value - loop for name, value in per_call.items()}


def systems(ops: list[Op], warm: int) -> Iterator[tuple[str, Callable[[], Any]]]:
    yield "plain SortedDict+deque (no events)", lambda: (run_plain(ops), ops, warm)

    def shmex() -> tuple[Callable[[Any], Any], list[Any], int]:
        apply, commands = run_shmex(ops)
        return apply, commands, warm

    yield "shmex matching (all events)", shmex
    try:
        import liquibook  # noqa: F401
    except ImportError:
        pass
    else:

        def liquibook_build() -> tuple[Callable[[Any], Any], list[Any], int]:
            return LiquibookRunner(), ops, warm

        yield "liquibook + Python listeners", liquibook_build
    if run_exchange([]) is not None:
        for label, batch in (("", 0), (f" (snapshots per {SNAPSHOT_BATCH})", SNAPSHOT_BATCH)):

            def exchange(batch: int = batch) -> tuple[Callable[[Any], Any], list[Any], int]:
                built = run_exchange(ops, batch)
                assert built is not None
                return built[0], built[1], warm

            yield f"shmex matching + risk + accounts{label}", exchange


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20k operations instead of 200k")
    parser.add_argument("--ops", type=int, default=0, help="operations per workload")
    parser.add_argument("--repeats", type=int, default=3, help="throughput runs; best is kept")
    parser.add_argument(
        "--instructions",
        type=int,
        default=0,
        metavar="OPS",
        help="also count instructions per op with callgrind over this many operations",
    )
    parser.add_argument(
        "--constructors",
        type=int,
        default=0,
        metavar="N",
        help="also count instructions per event of each way to build one (callgrind, N events)",
    )
    parser.add_argument("--count", metavar="SYSTEM", help=argparse.SUPPRESS)
    parser.add_argument("--workload", default="cross30", help=argparse.SUPPRESS)
    args = parser.parse_args()
    count = args.ops or (20_000 if args.quick else 200_000)
    registry = InstrumentRegistry.from_toml(INSTRUMENTS.read_text())
    if args.count and args.workload == "constructors":  # a child of `constructor_costs`
        build = CONSTRUCTORS[args.count]
        gc.disable()
        functools.reduce(_step, range(count), build)
        return
    if args.count:  # the child `instructions` runs under valgrind
        ops = generate(registry, args.workload, count)
        counted_run(dict(systems(ops, len(ops) - count))[args.count])
        return
    results = Results("engine")
    notes = [
        f"{count:,} timed operations per workload after a {RESTING:,}-order starting book;",
        f"throughput: best of {args.repeats} interleaved runs; latency: one run, timer per op;",
        "liquibook amend = replace() for a size cut, cancel + add for a move (its replace()",
        "corrupts its depth when a moved order crosses); inputs are prebuilt command tuples.",
        "every system returns each operation's events in a fresh list that the harness drops",
        "(liquibook's listeners kept all events in one list until 2026-11-22: see docs).",
    ]
    if args.instructions:
        notes.append(
            f"instructions per op: callgrind over {args.instructions:,} operations after the "
            "starting book (toggled on the timed loop; independent of the machine's load)"
        )
    for workload in ("cross30", "xcore-mix"):
        ops = generate(registry, workload, count)
        warm = len(ops) - count
        kinds = [op[0] for op in ops[warm:]]
        notes.append(
            f"{workload}: {kinds.count(PLACE):,} places, {kinds.count(CANCEL):,} cancels, "
            f"{kinds.count(AMEND):,} amends"
        )
        candidates = list(systems(ops, warm))
        best: dict[str, tuple[float, float]] = {}
        for _ in range(args.repeats):  # interleaved, so load from others hits every system
            for system, build in candidates:
                wall, cpu = throughput(build)
                previous = best.get(system, (0.0, 0.0))
                best[system] = (max(previous[0], wall), max(previous[1], cpu))
        for system, build in candidates:
            samples = latencies(build)
            results.add(system, workload, "throughput", best[system][0], "ops/s")
            results.add(system, workload, "throughput (CPU time)", best[system][1], "ops/s")
            results.add(system, workload, "latency p50", percentile(samples, 50) / 1000, "µs")
            results.add(system, workload, "latency p99", percentile(samples, 99) / 1000, "µs")
            if args.instructions:
                per_op = instructions(system, workload, args.instructions)
                if per_op is not None:
                    results.add(system, workload, "instructions per op", per_op, "instr")
    if args.constructors:
        for name, per_event in constructor_costs(args.constructors).items():
            results.add(name, "build one event", "instructions per event", per_event, "instr")
        notes.append(
            f"event constructors: callgrind over {args.constructors:,} TradeExecuted (12 fields), "
            "build + drop, the loop's own instructions taken off"
        )
    by_key = {(r.system, r.workload, r.metric): r.value for r in results.rows}
    for workload in ("cross30", "xcore-mix"):
        for metric in ("throughput", "throughput (CPU time)"):
            ours = by_key.get(("shmex matching (all events)", workload, metric))
            peer = by_key.get(("liquibook + Python listeners", workload, metric))
            if ours and peer:
                results.add("shmex / liquibook", workload, f"{metric} ratio", ours / peer, "x")
    results.finish(notes)


if __name__ == "__main__":
    main()
