"""`bin/loadgen --direct`: order entry without the web edge, the pipeline's benchmark driver.

`DirectClient` registers as a gateway of its own (one of the spare `cmd` ring ids of
`[gateways] direct`), writes commands into its `cmd.<id>` ring and reads `events` with its own
reader, keeping the records whose `source` is its id; tests use it as a library. `LoadGenerator`
opens accounts, deposits, then sends a seeded stream of crossing limit orders at a chosen rate
or flat out, and measures order → answer latency (injection to the COMMAND_ACCEPTED/REJECTED
record) and order → matched latency (injection to the first ORDER_UPDATED after matching) in
HDR histograms.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from hdrh.histogram import HdrHistogram

from engine.accounts.commands import AccountsCommand, Deposit, OpenAccount, SubmitOrder
from engine.codes import ResultCode
from engine.enums import (
    InstrumentKind,
    Offset,
    OrderStatus,
    OrderType,
    Side,
    TimeCondition,
    VolumeCondition,
)
from engine.instruments import InstrumentRegistry
from ipc.records import CMD, EVENT, EVENT_ANSWER, Kind
from ipc.ring import Ring, RingReader, RingWriter
from services import config as configuration
from services.accounts_codec import commands_to_cmd
from services.process import wait_config
from services.recovery import write_blocking
from services.topology import direct_ids

log = logging.getLogger(__name__)

DEPOSIT = 10**15
"""Cash per generated account, fixed point (enough that risk never refuses the stream)."""
_MATCHED = np.array(
    [
        OrderStatus.ACCEPTED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.FILLED,
        OrderStatus.CANCELLED,
        OrderStatus.REJECTED,
    ],
    dtype=np.uint8,
)


class DirectClient:
    """One direct gateway: `send` commands, `poll` the events addressed to it."""

    def __init__(
        self, config: configuration.Config, gateway_id: int | None = None, reader: str = ""
    ) -> None:
        ids = direct_ids(config)
        self.gateway_id = ids.start if gateway_id is None else gateway_id
        if self.gateway_id not in ids:
            raise ValueError(f"gateway id {self.gateway_id} is not a direct id ({list(ids)})")
        self.config = config
        self.reader_name = reader or f"loadgen.{self.gateway_id}.{os.getpid()}"
        self.registry: InstrumentRegistry | None = None
        self._cmd: Ring | None = None
        self._events: Ring | None = None
        self._writer: RingWriter | None = None
        self._reader: RingReader | None = None
        self.next_request = 1
        self._unread: list[np.ndarray[Any, Any]] = []
        """Events `collect` read but did not claim; `poll` and the next `collect` get them."""

    def open(self) -> DirectClient:
        waits = wait_config(self.config)
        self.registry = configuration.load_instruments(self.config)
        self._cmd = Ring.attach(self.config.ring_name(f"cmd.{self.gateway_id}"), CMD)
        self._writer = self._cmd.writer(waits)
        self._events = Ring.attach(self.config.ring_name("events"), EVENT)
        self._reader = self._events.reader(self.reader_name, waits)
        return self

    def close(self) -> None:
        """Give up the writer role and unregister the reader (it would hold `events` full)."""
        if self._writer is not None:
            self._writer.close()
        if self._events is not None:
            self._events.unregister_reader(self.reader_name, force=True)
            self._events.close()
        if self._cmd is not None:
            self._cmd.close()
        self._writer = self._reader = self._cmd = self._events = None

    def __enter__(self) -> DirectClient:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request_ids(self, count: int) -> range:
        """Reserve `count` request ids for commands about to be built."""
        first = self.next_request
        self.next_request += count
        return range(first, first + count)

    def send(self, commands: Sequence[AccountsCommand]) -> np.ndarray[Any, Any]:
        """Write the commands (stamped with `ts_init` now); returns the records written."""
        assert self._writer is not None and self._cmd is not None and self.registry is not None
        registry = self.registry
        batch = commands_to_cmd(
            commands,
            lambda name: registry.get(name).index,  # type: ignore[union-attr]
            source=self.gateway_id,
            first_seq=self._writer.published + 1,
            ts_init=time.time_ns(),
        )
        write_blocking(self._cmd, self._writer, batch)
        return batch

    def poll(self, timeout: float = 0.0, max_n: int = 4096) -> np.ndarray[Any, Any]:
        """The next events addressed to this gateway (a copy; may be empty): first those a
        `collect` read without claiming, then the ring's."""
        if self._unread:
            return self._unread.pop(0)
        return self._read(timeout, max_n)

    def collect(self, request_ids: Sequence[int], timeout: float = 10.0) -> dict[int, Any]:
        """Wait for the answers to `request_ids`; returns request id → EVENT_ANSWER record.

        Raises TimeoutError naming the missing ones. Every other event it reads stays for
        `poll` (a fill can arrive in the same read as its order's answer)."""
        wanted = set(request_ids)
        answers: dict[int, Any] = {}
        deadline = time.monotonic() + timeout
        batches, self._unread = self._unread, []
        while True:
            for batch in batches:
                rest = _claim(batch, wanted, answers)
                if len(rest):
                    self._unread.append(rest)
            if not wanted - answers.keys():
                return answers
            if time.monotonic() > deadline:
                missing = sorted(wanted - answers.keys())
                raise TimeoutError(f"no answer to requests {missing[:10]} in {timeout}s")
            batches = [self._read(0.05, 4096)]

    def _read(self, timeout: float, max_n: int) -> np.ndarray[Any, Any]:
        assert self._reader is not None
        view = self._reader.read(max_n=max_n, timeout=timeout)
        if view is None or not len(view):
            return np.zeros(0, EVENT)
        mine = view[view["source"] == self.gateway_id].copy()
        self._reader.release(len(view))
        return mine


def _claim(
    batch: np.ndarray[Any, Any], wanted: set[int], answers: dict[int, Any]
) -> np.ndarray[Any, Any]:
    """Move the answers to `wanted` requests from `batch` into `answers`; returns the rest."""
    is_answer = np.isin(batch["kind"], (Kind.COMMAND_ACCEPTED, Kind.COMMAND_REJECTED))
    claimed = is_answer & np.isin(batch["request_id"], list(wanted))
    for record in batch[claimed].view(EVENT_ANSWER):
        answers[int(record["request_id"])] = record
    return batch[~claimed]


@dataclass
class LoadConfig:
    accounts: int = 20
    account_base: int = 0
    """First account id minus one; 0 = derived from the pid so runs never collide."""
    orders: int = 10_000
    seconds: float = 0.0
    rate: float = 0.0
    """Orders per second offered; 0 = flat out."""
    batch: int = 256
    tick_s: float = 0.0005
    """At a given rate, the shortest time between two writes: orders that fall due meanwhile
    leave together, as a gateway writes what one turn of its event loop collected. Between
    writes the client sleeps until the next one is due or events arrive (never polls)."""
    seed: int = 1
    instruments: int = 3
    drain_timeout_s: float = 30.0


HDR_DIGITS = 3
"""Significant digits of the latency histograms."""
FOLD_VALUES = 1 << 18
"""Latencies kept as numbers before they are folded into the histogram (bounds memory)."""


class Latencies:
    """An HdrHistogram (µs, 3 significant digits) fed a batch at a time.

    hdrh's `record_value` is ~5 µs of pure Python, as much as a quarter of the load
    generator's CPU per order. Values wait as numbers and are folded in as (value, count)
    pairs, each first rounded down to its histogram bucket's lowest value (what hdrh does
    anyway), so a fold costs one call per distinct bucket, at most a few thousand.
    """

    def __init__(self, fold: int = FOLD_VALUES) -> None:
        self._histogram = HdrHistogram(1, 60_000_000, HDR_DIGITS)
        self._pending: list[int] = []
        self._fold_at = fold
        self._bucket_bits = (2 * 10**HDR_DIGITS - 1).bit_length()  # sub-buckets per power of 2

    def add(self, values_us: list[int]) -> None:
        self._pending += values_us
        if len(self._pending) >= self._fold_at:
            self._fold()

    @property
    def histogram(self) -> HdrHistogram:
        self._fold()
        return self._histogram

    def _fold(self) -> None:
        if not self._pending:
            return
        values = np.maximum(np.array(self._pending, dtype=np.int64), 1)
        self._pending = []
        shift = np.maximum(np.frexp(values.astype(np.float64))[1] - self._bucket_bits, 0)
        lowest, counts = np.unique((values >> shift) << shift, return_counts=True)
        record = self._histogram.record_value
        for value, count in zip(lowest.tolist(), counts.tolist(), strict=True):
            record(value, count)


@dataclass
class LoadResult:
    sent: int = 0
    answered: int = 0
    accepted: int = 0
    rejected: dict[int, int] = field(default_factory=dict)
    matched: int = 0
    elapsed_s: float = 0.0
    answer_us: Latencies = field(default_factory=Latencies)
    matched_us: Latencies = field(default_factory=Latencies)
    answer_hop_us: Latencies = field(default_factory=Latencies)
    """The answer's last hop: accounts wrote it (its `ts_init`) → this client read it."""

    def summary(self) -> dict[str, Any]:
        def percentiles(latencies: Latencies) -> dict[str, float]:
            histogram = latencies.histogram
            return {
                f"p{q:g}": histogram.get_value_at_percentile(q) for q in (50, 90, 99, 99.9, 100)
            }

        return {
            "sent": self.sent,
            "answered": self.answered,
            "accepted": self.accepted,
            "rejected": {str(code): n for code, n in sorted(self.rejected.items())},
            "matched": self.matched,
            "elapsed_s": round(self.elapsed_s, 3),
            "orders_per_s": round(self.answered / self.elapsed_s, 1) if self.elapsed_s else 0.0,
            "answer_latency_us": percentiles(self.answer_us),
            "matched_latency_us": percentiles(self.matched_us),
            "answer_hop_us": percentiles(self.answer_hop_us),
        }


class OrderStream:
    """A seeded stream of limit orders that cross often: prices a few ticks around each
    instrument's pre-settlement, sides at random, OPEN only (deposits cover the margin). Built
    with one `random()` per choice and positional tuples: the generator's CPU per order is
    what the pipeline benchmark's two cores do not have for the exchange."""

    def __init__(
        self, registry: InstrumentRegistry, accounts: Sequence[int], load: LoadConfig
    ) -> None:
        futures = [i for i in registry if i.kind is InstrumentKind.FUTURE and i.trading]
        self.instruments = futures[: load.instruments]
        self.accounts = list(accounts)
        self.random = random.Random(load.seed)
        self._books = [(i.index, i.pre_settlement - 3) for i in self.instruments]

    def next(self, request_ids: range, ts: int) -> list[SubmitOrder]:
        draw = self.random.random
        books, accounts = self._books, self.accounts
        n_books, n_accounts = len(books), len(accounts)
        buy, sell, opening = Side.BUY, Side.SELL, Offset.OPEN
        limit, gfd, anyone = OrderType.LIMIT, TimeCondition.GFD, VolumeCondition.ANY
        out = []
        for request in request_ids:
            index, lowest = books[int(draw() * n_books)]
            out.append(
                SubmitOrder(
                    request,
                    accounts[int(draw() * n_accounts)],
                    index,
                    buy if draw() < 0.5 else sell,
                    opening,
                    lowest + int(draw() * 7),
                    1 + int(draw() * 3),
                    limit,
                    gfd,
                    anyone,
                    0,
                    ts,
                )
            )
        return out


class LoadGenerator:
    """Drives one `DirectClient` with an `OrderStream` and measures what comes back."""

    def __init__(self, client: DirectClient, load: LoadConfig) -> None:
        self.client = client
        self.load = load
        self.result = LoadResult()
        self._sent_ns: dict[int, int] = {}
        self._order_sent: dict[int, int] = {}

    def open_accounts(self) -> list[int]:
        """Open and fund the accounts (again: an existing account and a repeated deposit of
        the same txn id are fine, so a rerun against the same instance works)."""
        base = self.load.account_base or (os.getpid() % 100_000) * 1000
        ids = list(range(base + 1, base + self.load.accounts + 1))
        now = time.time_ns()
        opens = [
            OpenAccount(r, a, now)
            for r, a in zip(self.client.request_ids(len(ids)), ids, strict=True)
        ]
        deposits = [
            Deposit(r, a, DEPOSIT, a, "CNY", now)
            for r, a in zip(self.client.request_ids(len(ids)), ids, strict=True)
        ]
        self.client.send(opens)
        self.client.send(deposits)
        answers = self.client.collect([c.request_id for c in opens + deposits])
        refused = {
            r: code
            for r, a in answers.items()
            if (code := int(a["code"])) and code != ResultCode.ACCOUNT_EXISTS
        }
        if refused:
            raise RuntimeError(f"setting up accounts was refused: {refused}")
        return ids

    def run(self) -> LoadResult:
        accounts = self.open_accounts()
        assert self.client.registry is not None
        stream = OrderStream(self.client.registry, accounts, self.load)
        load = self.load
        total = load.orders if not load.seconds else sys.maxsize
        started = time.perf_counter()
        stop_at = started + load.seconds if load.seconds else float("inf")
        result = self.result
        last_send = -math.inf
        while result.sent < total and (now := time.perf_counter()) < stop_at:
            due = min(total - result.sent, load.batch)
            wait = 0.0
            if load.rate:
                due = min(due, int((now - started) * load.rate + 1e-6) - result.sent)
                next_send = max(started + (result.sent + 1) / load.rate, last_send + load.tick_s)
                if now < next_send:  # sleep until then, unless events come first
                    due, wait = 0, min(next_send, stop_at) - now
            if due > 0:
                sent_ns = time.time_ns()
                ids = self.client.request_ids(due)
                self.client.send(stream.next(ids, sent_ns))
                self._sent_ns.update(zip(ids, [sent_ns] * due, strict=True))
                result.sent += due
                last_send = now
            self._absorb(self.client.poll(timeout=wait))
        deadline = time.perf_counter() + load.drain_timeout_s
        while result.answered < result.sent and time.perf_counter() < deadline:
            self._absorb(self.client.poll(timeout=0.01))
        result.elapsed_s = time.perf_counter() - started
        settle = time.perf_counter() + 1.0
        while self._order_sent and time.perf_counter() < settle:
            self._absorb(self.client.poll(timeout=0.01))
        return result

    def _absorb(self, batch: np.ndarray[Any, Any]) -> None:
        """Account for a batch of events: answers and first post-matching updates."""
        if not len(batch):
            return
        now = time.time_ns()
        kinds = batch["kind"]
        result = self.result
        answers = batch[np.isin(kinds, (Kind.COMMAND_ACCEPTED, Kind.COMMAND_REJECTED))].view(
            EVENT_ANSWER
        )
        sent = self._sent_ns
        answer_us: list[int] = []
        hop_us: list[int] = []
        for request, code, order, written in zip(
            answers["request_id"].tolist(),
            answers["code"].tolist(),
            answers["order_id"].tolist(),
            answers["ts_init"].tolist(),
            strict=True,
        ):
            ts = sent.pop(request, None)
            if ts is None:
                continue
            answer_us.append((now - ts) // 1000)
            hop_us.append((now - written) // 1000)
            if code:
                result.rejected[code] = result.rejected.get(code, 0) + 1
            else:
                result.accepted += 1
                self._order_sent[order] = ts
        result.answered += len(answer_us)
        result.answer_us.add(answer_us)
        result.answer_hop_us.add(hop_us)
        updates = batch[(kinds == Kind.ORDER_UPDATED) & np.isin(batch["status"], _MATCHED)]
        waiting = self._order_sent
        matched_us: list[int] = []
        for order in updates["order_id"].tolist():
            ts = waiting.pop(order, None)
            if ts is not None:
                matched_us.append((now - ts) // 1000)
        result.matched += len(matched_us)
        result.matched_us.add(matched_us)


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bin/loadgen", description=__doc__)
    configuration.add_arguments(parser)
    parser.add_argument("--direct", action="store_true", help="write cmd rings (the only mode)")
    parser.add_argument("--gateway", type=int, default=None, help="direct cmd ring id")
    parser.add_argument("--rate", type=float, default=0.0, help="orders/s offered; 0 = flat out")
    parser.add_argument("--orders", type=int, default=10_000, help="orders to send")
    parser.add_argument("--seconds", type=float, default=0.0, help="send for this long instead")
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--account-base", type=int, default=0)
    parser.add_argument("--instruments", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256, help="most orders per ring write")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    if not args.direct:
        print("bin/loadgen: only --direct exists (it writes the cmd ring itself)", file=sys.stderr)
        return 2
    config = configuration.from_arguments(args)
    load = LoadConfig(
        accounts=args.accounts,
        account_base=args.account_base,
        orders=args.orders,
        seconds=args.seconds,
        rate=args.rate,
        batch=args.batch,
        seed=args.seed,
        instruments=args.instruments,
    )
    with DirectClient(config, args.gateway) as client:
        summary = LoadGenerator(client, load).run().summary()
    if args.json:
        sys.stdout.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        answer, matched = summary["answer_latency_us"], summary["matched_latency_us"]
        print(
            f"sent {summary['sent']} answered {summary['answered']} in {summary['elapsed_s']} s "
            f"= {summary['orders_per_s']:,.0f} orders/s; accepted {summary['accepted']}, "
            f"rejected {summary['rejected']}, matched {summary['matched']}\n"
            f"order -> answer  us: {answer}\norder -> matched us: {matched}"
        )
    return 0 if summary["answered"] == summary["sent"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
