"""The feeds process: other venues' markets into shmex's market-data path, and mirror mode.

Enabled when `[feeds.venues.<name>]` tables exist (docs/feeds.md). The connectors are asyncio
code (aiohttp), so they run on one event-loop thread of this process; the main thread is the
ordinary `Runner` loop (control socket, heartbeats) and reads only a copy of the figures the
loop thread refreshes. Every `drain_ms` the loop takes each connector's buffered records and

- publishes them on its own ZeroMQ PUB socket (`ports.feeds_pub`; an ephemeral port if taken,
  reported by `endpoint` and `status`) with the topics and JSON of the marketdata process
  (gateway.feeds.publish); K-lines are built from the external trades;
- in mirror mode, writes the house account's IOC orders (gateway.feeds.mirror) into its own
  direct `cmd` ring, and reads `events` for the answers (counted by result code).

The `replay` control command plays a recording (gateway.feeds.recording) through the same path,
which is what `bin/feed replay FILE --prefix P` asks for.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import itertools
import logging
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import zmq

from engine.accounts.commands import AccountsCommand, Deposit, OpenAccount
from engine.codes import ResultCode
from engine.instruments import InstrumentRegistry
from gateway.feeds.backoff import GaveUp
from gateway.feeds.config import FeedConfig
from gateway.feeds.connector import Connector
from gateway.feeds.instruments import InstrumentSpec, InstrumentTable
from gateway.feeds.mirror import Mirror, MirrorTarget
from gateway.feeds.pipeline import Normalizer
from gateway.feeds.publish import MarketPublisher
from gateway.feeds.recording import read_recording, replay
from gateway.feeds.records import Record, Trade
from gateway.feeds.venues import VENUES
from ipc.control import ControlError, ControlServer
from ipc.pubsub import Publisher
from ipc.records import EVENT_ANSWER, Kind
from services import config as configuration
from services.loadgen import DirectClient
from services.process import Service, main
from services.topology import direct_ids

log = logging.getLogger(__name__)

SETUP_TIMEOUT_S = 30.0
"""How long the house account's opening and deposits may take before the process fails."""
STOP_TIMEOUT_S = 5.0
QUERY_TIMEOUT_S = 2.0
"""How long a market query (snapshot, klines, recent_trades) may wait for the loop thread."""
REFRESH_S = 0.1
"""How often the loop thread copies its figures for `status` (a deep copy; not every drain)."""
_PROCESS_KEYS = ("mirror", "live")
"""Keys of a `[feeds.venues.<name>]` table that are the process's, not FeedConfig's."""


class VenueSettings:
    """One `[feeds.venues.<name>]` table: the connector's config and the process's extras."""

    def __init__(self, name: str, table: Mapping[str, Any], environ: Mapping[str, str]) -> None:
        self.name = name
        rest = {k: v for k, v in table.items() if k not in _PROCESS_KEYS}
        try:
            self.feed = FeedConfig.from_mapping(rest, environ)
        except (TypeError, ValueError) as exc:
            raise configuration.ConfigError(f"feeds.venues.{name}: {exc}") from None
        if self.feed.venue not in VENUES:
            raise configuration.ConfigError(
                f"feeds.venues.{name}: unknown venue {self.feed.venue!r} ({sorted(VENUES)})"
            )
        self.mirror: dict[str, str] = dict(table.get("mirror", {}))
        self.live = bool(table.get("live", True))
        venue = VENUES[self.feed.venue]
        self.instruments = InstrumentTable.from_mapping(
            venue.venue, {**venue.default_instruments, **self.feed.instruments}
        )
        """The table the venue's connector builds (no connector needed to read it)."""

    def specs(self) -> list[InstrumentSpec]:
        """The table rows of the configured and mirrored symbols (not every default row)."""
        wanted = dict.fromkeys([*self.feed.symbols, *self.mirror.values()])
        return [spec for spec in map(self.instruments.get, wanted) if spec is not None]


def venue_settings(
    config: configuration.Config, environ: Mapping[str, str] | None = None
) -> list[VenueSettings]:
    env = os.environ if environ is None else environ
    return [VenueSettings(n, t, env) for n, t in config["feeds"]["venues"].items()]


def house_funding(
    registry: InstrumentRegistry, locals_: list[str], whole_units: str
) -> dict[str, int]:
    """Currency → fixed-point amount the house deposits: each mirrored instrument's currency
    and, for spot, its base asset (a house SELL delivers it)."""
    out: dict[str, int] = {}
    for name in locals_:
        instrument = registry.get(name)
        if instrument is None:
            raise configuration.ConfigError(f"feeds mirror: unknown local instrument {name!r}")
        codes = [instrument.currency.code]
        if instrument.base_asset:
            codes.append(instrument.base_asset)
        for code in codes:
            currency = registry.currencies[code]
            out[code] = int(Decimal(whole_units) * currency.scale)
    return out


class FeedsService(Service):
    name: ClassVar[str] = "feeds"

    def start(self) -> None:
        section = self.config["feeds"]
        self.registry = configuration.load_instruments(self.config)
        self.venues = venue_settings(self.config)
        self.connectors: dict[str, Connector] = {
            v.name: VENUES[v.feed.venue](v.feed, rng=random.Random()) for v in self.venues if v.live
        }
        self.specs = {s.instrument_id: s for venue in self.venues for s in venue.specs()}
        clashes = sorted(i for i in self.specs if self.registry.get(i) is not None)
        if clashes:
            raise configuration.ConfigError(
                f"feeds: external instruments {clashes} have the ids of local instruments; give "
                "them their own with instruments.<SYMBOL>.instrument_id in the venue's table"
            )
        self.house_account = int(section["house_account"])
        self.mirror = Mirror(self.house_account, self._mirror_targets())
        self.cmd_ring = int(section["cmd_ring"]) or direct_ids(self.config)[-1]
        self.drain_s = int(section["drain_ms"]) / 1000
        self.publisher = MarketPublisher(int(self.config["marketdata"]["depth_levels"]))
        self.answers: Counter[str] = Counter()
        self.replays: dict[int, dict[str, Any]] = {}
        self._replay_ids = itertools.count(1)
        self._issued = 0
        self._tasks: set[asyncio.Future[None]] = set()
        self._request_ids = itertools.count(1)
        self._figures: dict[str, Any] = {"state": "starting"}
        self._endpoint = ""
        self._next_refresh = 0.0
        self._stopping = False
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._socket: Publisher | None = None
        self._client: DirectClient | None = None
        """The PUB socket and the direct client: touched by the loop thread only."""
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._thread_main, name="feeds-loop", daemon=True)
        self._thread.start()
        if not self._ready.wait(SETUP_TIMEOUT_S):
            raise RuntimeError("feeds loop did not start")
        if self._failure is not None:
            raise RuntimeError("feeds loop failed to start") from self._failure

    def _mirror_targets(self) -> list[MirrorTarget]:
        targets = []
        for venue in self.venues:
            for local_id, symbol in venue.mirror.items():
                local = self.registry.get(local_id)
                spec = venue.instruments.get(symbol)
                if local is None or spec is None:
                    raise configuration.ConfigError(
                        f"feeds.venues.{venue.name}.mirror: {local_id!r} = {symbol!r} names an "
                        "unknown local instrument or a symbol without an instrument table row"
                    )
                targets.append(MirrorTarget(local, spec))
        return targets

    # -- the event-loop thread ------------------------------------------------------------------

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # reported to the main thread, which crashes the process
            log.critical("feeds loop died", exc_info=True)
            self._failure = exc
            self._ready.set()

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        context: zmq.Context[Any] = zmq.Context()
        self._socket = self._bind(context)
        self._endpoint = self._socket.endpoint
        if self.mirror.targets:
            self._client = DirectClient(self.config, self.cmd_ring, reader="feeds")
        try:
            if self._client is not None:
                self._client.open()
            self._ready.set()
            if self._client is not None:
                await self._open_house(self._client)
            tasks = [asyncio.create_task(self._connect(n, c)) for n, c in self.connectors.items()]
            while not self._stopping:
                self._drain()
                await asyncio.sleep(self.drain_s)
            for connector in self.connectors.values():
                connector.stop()
            if tasks:
                await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)
            self._drain()
        finally:
            if self._client is not None:
                self._client.close()
            self._socket.close()
            context.term()

    def _drain(self) -> None:
        for connector in self.connectors.values():
            self._consume(connector.take())
        if self._client is not None:
            self._count_answers(self._client.poll(0.0))
        now = time.monotonic()
        if now >= self._next_refresh:
            self._next_refresh = now + REFRESH_S
            self._refresh()

    def _bind(self, context: zmq.Context[Any]) -> Publisher:
        ports = self.config["ports"]
        hwm = int(self.config["marketdata"]["send_hwm"])
        try:
            return Publisher(context, f"tcp://{ports['host']}:{ports['feeds_pub']}", hwm)
        except zmq.ZMQError as exc:
            log.warning(
                "feeds_pub port %s unavailable (%s); binding a free port", ports["feeds_pub"], exc
            )
            return Publisher(context, f"tcp://{ports['host']}:*", hwm)

    async def _open_house(self, client: DirectClient) -> None:
        """Open and fund the house account; idempotent (txn ids derive from the account id)."""
        locals_ = sorted({t.local.id for ts in self.mirror.targets.values() for t in ts})
        funding = house_funding(self.registry, locals_, self.config["feeds"]["house_deposit"])
        now = time.time_ns()
        commands: list[AccountsCommand] = [
            OpenAccount(next(self._request_ids), self.house_account, now)
        ]
        for n, (currency, amount) in enumerate(sorted(funding.items())):
            txn = self.house_account * 100 + n
            commands.append(
                Deposit(next(self._request_ids), self.house_account, amount, txn, currency, now)
            )
        client.send(commands)
        wanted = {c.request_id for c in commands}
        deadline = time.monotonic() + SETUP_TIMEOUT_S
        while wanted:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no answer from accounts to the house set-up {sorted(wanted)}")
            batch = client.poll(0.0)
            for record in self._answers(batch):
                request = int(record["request_id"])
                code = int(record["code"])
                if request in wanted and code not in (ResultCode.OK, ResultCode.ACCOUNT_EXISTS):
                    raise RuntimeError(f"house set-up refused: {code} {record['message']!r}")
                wanted.discard(request)
            await asyncio.sleep(0.01)
        log.info("house account %d ready: %s", self.house_account, funding)

    async def _connect(self, name: str, connector: Connector) -> None:
        try:
            await connector.run()
        except GaveUp as error:
            log.error("%s: %s", name, error)

    def _consume(self, records: list[Record]) -> None:
        """Publish a batch and, in mirror mode, send the house orders it implies."""
        if not records:
            return
        assert self._socket is not None
        send = self._socket.publish
        for topic, body in self.publisher.publish(records, self.specs.get):
            send(topic, body)
        client = self._client
        if client is not None:
            trades = [r for r in records if r.__class__ is Trade]
            orders = self.mirror.orders(trades, self._request_ids, time.time_ns())
            if orders:
                client.send(orders)
                self._count_answers(client.poll(0.0))  # keep `events` moving for accounts

    @staticmethod
    def _answers(batch: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        mask = np.isin(batch["kind"], (Kind.COMMAND_ACCEPTED, Kind.COMMAND_REJECTED))
        return batch[mask].view(EVENT_ANSWER)

    def _count_answers(self, batch: np.ndarray[Any, Any]) -> None:
        if not len(batch):
            return
        for code in self._answers(batch)["code"].tolist():
            self.answers[ResultCode(code).name] += 1
        traded = batch[batch["kind"] == Kind.TRADE_BOOKED]
        self.answers["house_fills"] += len(traded)
        self.answers["house_filled_qty"] += int(traded["qty"].sum())

    def _refresh(self) -> None:
        """Copy the figures `status` shows (the main thread never touches loop objects)."""
        self._figures = copy.deepcopy(
            {
                "state": "stopping" if self._stopping else "running",
                "endpoint": self._endpoint,
                "published": self.publisher.published,
                "seq": self.publisher.seq,
                "venues": {n: c.stats() for n, c in self.connectors.items()},
                "health": {n: c.health_line() for n, c in self.connectors.items()},
                "instruments": sorted(self.publisher.markets),
                "catalogue": {
                    name: {
                        "venue": spec.venue,
                        "symbol": spec.symbol,
                        "price_tick": str(spec.tick.step),
                        "lot_size": str(spec.lot.step),
                    }
                    for name, spec in self.specs.items()
                },
                "mirror": {
                    "house_account": self.house_account if self.mirror.targets else None,
                    "cmd_ring": self.cmd_ring if self.mirror.targets else None,
                    **self.mirror.stats(),
                    "answers": dict(self.answers),
                },
                "replays": self.replays,
            }
        )

    # -- replay (the `replay` control command) ---------------------------------------------------

    def _replay_normalizer(self, header: Mapping[str, Any]) -> Normalizer:
        venue = header["venue"]
        if venue not in VENUES:
            raise ControlError(f"recording of unknown venue {venue!r}")
        base = next((v.feed for v in self.venues if v.feed.venue == venue), None)
        settings = FeedConfig(venue, list(header["symbols"]), list(header["streams"]))
        if base is not None:
            settings.instruments = dict(base.instruments)
            settings.ticker_fields = base.ticker_fields
        settings.buffer_rate = 0
        settings.buffer_capacity = 1_000_000
        normalizer = VENUES[venue](settings)
        for spec in map(normalizer.instruments.get, settings.symbols):
            if spec is None:
                continue  # not in the table: the normalizer counts its frames `unknown_symbol`
            if self.registry.get(spec.instrument_id) is not None:
                raise ControlError(
                    f"{spec.instrument_id} is a local instrument; configure a [feeds.venues] "
                    f"table for {venue} that renames it"
                )
            self.specs.setdefault(spec.instrument_id, spec)
        return normalizer

    async def _replay(self, replay_id: int, path: Path, speed: float) -> None:
        state: dict[str, Any] = {"path": str(path), "speed": speed, "state": "running"}
        self.replays[replay_id] = state
        try:
            header, frames = read_recording(path)
            normalizer = self._replay_normalizer(header)
            state["venue"] = header["venue"]
            state["frames"] = await replay(normalizer, frames, speed, on_records=self._consume)
            state["stats"] = normalizer.stats()
            state["state"] = "done"
        except (OSError, ValueError, KeyError, ControlError) as exc:
            state["state"] = "failed"
            state["error"] = str(exc)
        except Exception as exc:  # a bug: fail the replay and crash the process
            state["state"] = "failed"
            state["error"] = repr(exc)
            self._failure = exc
            raise
        self._drain()
        log.info("replay %d of %s: %s", replay_id, path, state["state"])

    # -- the main thread -------------------------------------------------------------------------

    def register_commands(self, server: ControlServer) -> None:
        server.register("endpoint", lambda _args: self._figures.get("endpoint", ""))
        server.register("replay", self._on_replay)
        server.register("replay_status", self._on_replay_status)
        server.register("instruments", lambda _args: self._figures.get("catalogue", {}))
        server.register("snapshot", self._on_snapshot)
        server.register("klines", self._on_klines)
        server.register("recent_trades", self._on_recent_trades)

    # The market queries read the publisher, which the loop thread owns: they run there.

    def _on_loop(self, query: Callable[[], Any]) -> Any:
        loop = self._loop
        if loop is None or self._stopping:
            raise ControlError("feeds loop not running")
        answer: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            try:
                answer.set_result(query())
            except Exception as exc:  # handed to the control caller, not the loop
                answer.set_exception(exc)

        loop.call_soon_threadsafe(run)
        try:
            return answer.result(QUERY_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            raise ControlError("feeds loop did not answer in time") from None

    def _market_answer(self, args: dict[str, Any], found: Any) -> Any:
        if found is None:
            raise ControlError(f"no external market data for {args.get('instrument')!r} yet")
        return found

    def _on_snapshot(self, args: dict[str, Any]) -> dict[str, Any]:
        """marketdata's `snapshot` for an external instrument: book, quote, open bars."""
        name = str(args.get("instrument", ""))
        return self._market_answer(args, self._on_loop(lambda: self.publisher.snapshot(name)))

    def _on_klines(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        """marketdata's `klines` for an external instrument (bars built from its trades)."""
        name = str(args.get("instrument", ""))
        try:
            period, count = int(args["period"]), int(args.get("count", 1000))
        except (KeyError, TypeError, ValueError) as exc:
            raise ControlError(f"klines: {exc!r}") from None

        def query() -> list[dict[str, Any]] | None:
            try:
                return self.publisher.klines(name, period, count)
            except ValueError as exc:
                raise ControlError(f"klines: {exc}") from None

        return self._market_answer(args, self._on_loop(query))

    def _on_recent_trades(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        """marketdata's `recent_trades` for an external instrument."""
        name = str(args.get("instrument", ""))
        try:
            count = int(args.get("count", 50))
        except (TypeError, ValueError) as exc:
            raise ControlError(f"recent_trades: {exc!r}") from None
        found = self._on_loop(lambda: self.publisher.recent_trades(name, count))
        return self._market_answer(args, found)

    def _on_replay(self, args: dict[str, Any]) -> int:
        path = Path(str(args.get("path", ""))).resolve()
        if not path.is_file():
            raise ControlError(f"no recording at {path}")
        speed = float(args.get("speed", 0.0))
        replay_id = next(self._replay_ids)
        self._issued = replay_id
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._start_replay, replay_id, path, speed)
        return replay_id

    def _start_replay(self, replay_id: int, path: Path, speed: float) -> None:
        task = asyncio.ensure_future(self._replay(replay_id, path, speed))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_replay_status(self, args: dict[str, Any]) -> dict[str, Any]:
        replay_id = args.get("id")
        if not isinstance(replay_id, int) or not 0 < replay_id <= self._issued:
            raise ControlError(f"no replay {replay_id!r}")
        found = self._figures.get("replays", {}).get(replay_id)
        return {"state": "starting"} if found is None else dict(found)

    def tick(self, now_ns: int) -> None:
        if self._failure is not None:
            raise RuntimeError("feeds loop died") from self._failure
        self._report(self._figures.get("venues", {}))

    def _report(self, venues: Mapping[str, Mapping[str, Any]]) -> None:
        """The health line's figures as `self.metrics` (main thread, from the loop's copy):
        gauges `feed_connected`, `feed_buffer_fill`, `feed_dedup_ratio`; counters
        `feed_written`, `feed_frames`, `feed_dropped` (label reason) per venue."""
        metrics = self.metrics
        for name, stats in venues.items():
            metrics.gauge("feed_connected", venue=name).set(int(bool(stats["connected"])))
            metrics.gauge("feed_buffer_fill", venue=name).set(float(stats["buffer_fill"]))
            metrics.gauge("feed_dedup_ratio", venue=name).set(float(stats["dedup_ratio"]))
            totals = {
                ("feed_written", ""): stats["written"],
                ("feed_frames", ""): stats["frames"],
                ("feed_dropped", "full"): stats["dropped_full"],
                ("feed_dropped", "rate"): stats["dropped_rate"],
                ("feed_dropped", "malformed"): stats["malformed"],
                ("feed_dropped", "undecodable"): stats["undecodable"],
                ("feed_dropped", "off_tick"): stats["off_tick"],
            }
            for (metric, reason), total in totals.items():
                labels = {"venue": name, **({"reason": reason} if reason else {})}
                counter = metrics.counter(metric, **labels)
                counter.inc(int(total) - counter.value)  # the connector's own running totals

    def status(self) -> dict[str, Any]:
        return self._figures

    def stop(self) -> None:
        self._stopping = True
        self._thread.join(STOP_TIMEOUT_S * 2)
        if self._failure is not None:
            raise RuntimeError("feeds loop failed") from self._failure


if __name__ == "__main__":
    raise SystemExit(main(FeedsService))
