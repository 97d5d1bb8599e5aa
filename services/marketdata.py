"""The marketdata process: execs in, ZeroMQ market data out (docs/marketdata.md has the schema).

It reads every `execs.<shard>` ring with its own cursor, feeds trades and book changes to the
pure `engine.marketdata.MarketData`, and publishes on a PUB socket: one `tick` per trade, each
finished K-line, and — conflated, once per batch per touched instrument — the open bar of
every period, `book` and `quote` (last: a batch's messages for an instrument end with it). Its
control socket answers `snapshot`, `klines`, `recent_trades` and `endpoint`, so a late
subscriber (or the gateway) starts from the current state.

Instruments created or changed at run time arrive as INSTRUMENT_STATUS_CHANGED execs ahead of
their trades: a new index is learned from accounts (services/instrument_sync.py) before the
batch is handled, and a changed one gets its status, reference prices and band; either way its
book and quote go out. At start the process asks accounts once, so a restart knows every
instrument (and its status) accounts has, not only the configured ones.

Crash-only: the state is checkpointed (storage.checkpoint) with the last exec sequence of each
ring it reflects. A second reader per ring, `<name>.held`, is released only up to the newest
checkpoint, so the records after it stay in the ring (the writer cannot overwrite them). After a
SIGKILL the process loads the checkpoint and re-applies, without publishing, the records between
the held cursor and its main cursor, skipping any at or below the checkpointed sequence: no bar
or volume is lost or counted twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np
import orjson
import zmq

from engine.enums import InstrumentKind, InstrumentStatus
from engine.instruments import Instrument, InstrumentRegistry
from engine.marketdata.aggregator import BatchUpdate, MarketData, Tick
from engine.marketdata.kline import Bar
from ipc import records
from ipc.control import ControlError, ControlServer
from ipc.pubsub import Publisher, topic
from ipc.records import Kind
from ipc.ring import Ring, RingReader
from services import config as configuration
from services.instrument_sync import InstrumentSync
from services.matching_codec import execs_to_events, oi_deltas
from services.process import Service, main, wait_config
from services.recovery import Streams, epoch_of
from services.topology import execs_rings
from storage.checkpoint import latest_checkpoint, write_checkpoint

log = logging.getLogger(__name__)

MARKET_KINDS = np.array([Kind.TRADE, Kind.BOOK_LEVEL], dtype=np.uint16)
"""The exec kinds that move market data; the rest (accepts, cancels, rejects) do not."""
_SIDE_NAMES = {1: "BUY", 2: "SELL"}
ASK_ACCOUNTS_S = 0.5
"""How long start-up (then each heartbeat, until it answers once) waits for accounts'
instruments: it answers at once when only this process restarted."""


class HeldCursor:
    """A reader of one ring that lags behind the main reader until state is durable.

    Records between its cursor and the main reader's cursor were handled but are not yet in a
    checkpoint; the ring writer cannot overwrite them, so a restarted process re-reads them.
    """

    def __init__(self, ring: Ring, main_reader: str, reader: RingReader) -> None:
        self.ring = ring
        self._main = main_reader
        self._reader = reader

    @classmethod
    def attach(cls, config: configuration.Config, ring: str, main_reader: str) -> HeldCursor:
        attached = Ring.attach(config.ring_name(ring), records.ring_dtype(ring))
        reader = attached.reader(f"{main_reader}.held", wait=wait_config(config))
        return cls(attached, main_reader, reader)

    def pending(self) -> np.ndarray[Any, Any]:
        """Copies of the records the main reader released past this cursor, in ring order."""
        main = next((r.cursor for r in self.ring.readers() if r.name == self._main), None)
        start = self._reader.cursor
        if main is None or main <= start:
            return self.ring.slots[:0].copy()
        positions = np.arange(start, main, dtype=np.int64) & (self.ring.capacity - 1)
        return self.ring.slots[positions]

    def advance(self, seq: int) -> None:
        """Release every record whose header sequence is at or below `seq`."""
        while True:
            view = self._reader.read(max_n=65536, timeout=0)
            done = int(np.searchsorted(view["seq"], seq, side="right"))
            self._reader.release(done)
            if done == 0 or done < len(view):
                return

    def close(self) -> None:
        self._reader.close()
        self.ring.close()


def held_cursors(
    config: configuration.Config, rings: Iterable[str], name: str
) -> dict[str, HeldCursor]:
    return {ring: HeldCursor.attach(config, ring, name) for ring in rings}


def adopt_streams(
    exported: dict[str, list[int]] | None, held: dict[str, HeldCursor]
) -> tuple[Streams, bool]:
    """The checkpointed per-ring sequences, restarted from 0 for a ring that is a new epoch
    (`bin/exchange down` + `up` recreates rings, whose sequences start at 1 again); also
    whether every ring is still the checkpoint's epoch."""
    streams = Streams.load(exported or {})
    same = exported is not None
    for ring, cursor in held.items():
        epoch = epoch_of(cursor.ring)
        same = same and streams.get(ring).epoch == epoch
        streams.adopt(ring, epoch)
    return streams, same


def sequences(streams: Streams, rings: Iterable[str]) -> dict[str, int]:
    return {ring: streams.get(ring).seq for ring in rings}


def market_events(
    batch: np.ndarray[Any, Any], instruments: int
) -> tuple[list[Any], np.ndarray[Any, Any]]:
    """The TRADE / BOOK_LEVEL events of known instruments in an execs batch, and the
    sequences of its TRADE records (one per TradeExecuted, in order)."""
    wanted = np.isin(batch["kind"], MARKET_KINDS)
    index = batch["instrument"]
    wanted &= (index >= 0) & (index < instruments)
    chosen = batch[wanted]
    trade_seqs = chosen["seq"][chosen["kind"] == Kind.TRADE]
    return execs_to_events(chosen), trade_seqs


class Renderer:
    """Market data as client JSON: decimal prices (from the tick) next to the integer ticks."""

    def __init__(self, instruments: InstrumentRegistry) -> None:
        self._instruments = instruments
        self._ticks: dict[str, tuple[int, int]] = {}

    def _scale(self, instrument: Instrument) -> tuple[int, int]:
        """The tick size as (integer, power of ten), computed once per instrument."""
        tick = self._ticks.get(instrument.id)
        if tick is None:
            scale = 10 ** max(0, -int(instrument.price_tick.as_tuple().exponent))
            tick = self._ticks[instrument.id] = (int(instrument.price_tick * scale), scale)
        return tick

    def _price(self, instrument: Instrument, ticks: int) -> float:
        """ticks × tick size as the float nearest the exact decimal (int true division
        rounds correctly, so 19003 × 0.2 renders 3800.6, not 3800.6000000000004)."""
        tick, scale = self._scale(instrument)
        return ticks * tick / scale

    def _money(self, instrument: Instrument, units: int) -> float:
        return units / instrument.currency.scale

    def tick(self, tick: Tick, seq: int | None) -> dict[str, Any]:
        """A trade print; `seq` (its exec record's) is None for the `recent_trades` tape."""
        instrument = self._instruments.by_index(tick.instrument_index)
        body: dict[str, Any] = {"instrument": instrument.id}
        if seq is not None:
            body["seq"] = seq
        return body | {
            "ts": tick.ts,
            "trade_id": tick.trade_id,
            "price": self._price(instrument, tick.price),
            "price_ticks": tick.price,
            "qty": tick.qty,
            "side": _SIDE_NAMES.get(tick.taker_side, "NONE"),
            "volume": tick.volume,
            "turnover": self._money(instrument, tick.turnover),
            "open_interest": tick.open_interest,
        }

    def bar(self, index: int, bar: Bar, seq: int, finished: bool) -> dict[str, Any]:
        """Written out field by field: up to seven open bars go out per traded batch."""
        instrument = self._instruments.by_index(index)
        tick, scale = self._scale(instrument)
        return {
            "instrument": instrument.id,
            "seq": seq,
            "period": bar.period,
            "id": bar.bar_id,
            "datetime": bar.start_ns,
            "finished": finished,
            "open": bar.open * tick / scale,
            "open_ticks": bar.open,
            "high": bar.high * tick / scale,
            "high_ticks": bar.high,
            "low": bar.low * tick / scale,
            "low_ticks": bar.low,
            "close": bar.close * tick / scale,
            "close_ticks": bar.close,
            "volume": bar.volume,
            "turnover": bar.turnover / instrument.currency.scale,
            "open_oi": bar.open_oi,
            "close_oi": bar.close_oi,
        }

    def book(self, market: MarketData, index: int, seq: int, levels: int) -> dict[str, Any]:
        instrument = self._instruments.by_index(index)
        book: dict[str, Any] = market.book(index, levels)
        sides = {
            side: [[p, q, self._price(instrument, p)] for p, q in book[side]]
            for side in ("bids", "asks")
        }
        return {"instrument": instrument.id, "seq": seq, "ts": book["ts"], **sides}

    def quote(self, market: MarketData, index: int, seq: int) -> dict[str, Any]:
        instrument = self._instruments.by_index(index)
        raw: dict[str, Any] = market.quote(index)
        body: dict[str, Any] = {"instrument": instrument.id, "seq": seq}
        for name, value in raw.items():
            if name in _PRICE_FIELDS:
                body[name] = self._price(instrument, value) if value else None
                body[f"{name}_ticks"] = value
            elif name == "turnover":
                body[name] = self._money(instrument, value)
            elif name == "status":
                body[name] = InstrumentStatus(value).name
            else:
                body[name] = value
        return body


_PRICE_FIELDS = frozenset(
    {"bid_price", "ask_price", "open", "high", "low", "last", "pre_close", "pre_settlement"}
    | {"upper_limit", "lower_limit"}
)


class MarketDataService(Service):
    name: ClassVar[str] = "marketdata"

    def inputs(self) -> list[str]:
        return execs_rings(self.config)

    def start(self) -> None:
        section = self.config["marketdata"]
        self._levels = int(section["depth_levels"])
        self._checkpoint_records = int(section["checkpoint_records"])
        self._checkpoint_interval = float(section["checkpoint_interval_s"])
        self.instruments = configuration.load_instruments(self.config)
        self._sync = instrument_sync(self.config, self.instruments)
        self._sync.catch_up(ASK_ACCOUNTS_S)
        self._instruments_changed()
        self._topics: dict[tuple[int, str, int | None], str] = {}
        self._directory = self.config.home / "checkpoints"
        self._checkpoint_name = self.instance_name.replace(".", "_")
        self._held = held_cursors(self.config, self.inputs(), self.instance_name)
        self.market = MarketData(self.instruments)
        found = latest_checkpoint(self._directory, self._checkpoint_name)
        state = None if found is None else orjson.loads(found[1])
        self._generation = 0 if found is None else found[0]
        if state is not None:
            self.market = MarketData.from_state(self.instruments, state["market"])
        self._streams, _same = adopt_streams(state and state["streams"], self._held)
        self._since_checkpoint = 0
        self._changed_at = 0.0
        self.published = 0
        self.replayed = 0
        self._context: zmq.Context[Any] = zmq.Context()
        self._publisher = self._bind()
        for ring, held in self._held.items():
            pending = held.pending()
            self.replayed += len(pending)
            self._apply(ring, pending, publish=False)
        if self._since_checkpoint:
            self.checkpoint()
        log.info(
            "market data ready",
            extra={
                "fields": {
                    "endpoint": self._publisher.endpoint,
                    "replayed": self.replayed,
                    "seqs": ",".join(f"{r}={s}" for r, s in self._seqs().items()),
                }
            },
        )

    def _bind(self) -> Publisher:
        """Bind the configured port; if another instance holds it, an ephemeral one (logged,
        and reported by `endpoint` and `status`, where clients with --prefix look it up)."""
        ports = self.config["ports"]
        hwm = int(self.config["marketdata"]["send_hwm"])
        try:
            return Publisher(self._context, f"tcp://{ports['host']}:{ports['md_pub']}", hwm)
        except zmq.ZMQError as exc:
            log.warning(
                "md_pub port %s unavailable (%s); binding a free port", ports["md_pub"], exc
            )
            return Publisher(self._context, f"tcp://{ports['host']}:*", hwm)

    def _instruments_changed(self) -> None:
        """After the registry changed: the futures mask and the renderer's tick cache."""
        self._is_future = np.array(
            [i.kind is InstrumentKind.FUTURE for i in self.instruments], dtype=bool
        )
        self._render = Renderer(self.instruments)

    def handle(self, ring: str, batch: np.ndarray[Any, Any]) -> None:
        self._apply(ring, batch, publish=True)
        if self._since_checkpoint >= self._checkpoint_records:
            self.checkpoint()

    def _futures_only(self, batch: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """The records of futures: open interest counts positions, which spot does not have."""
        futures = self._is_future
        index = batch["instrument"]
        known = (index >= 0) & (index < len(futures))
        known[known] = futures[index[known]]
        return batch[known]

    def _apply(self, ring: str, batch: np.ndarray[Any, Any], publish: bool) -> None:
        fresh = self._streams.fresh(ring, batch)
        if not len(fresh):
            return
        known = len(self.instruments)
        changed = self._sync.apply(fresh)
        if changed or len(self.instruments) != known:
            self._instruments_changed()
        events, trade_seqs = market_events(fresh, len(self.instruments))
        update = self.market.apply(events, oi_deltas(self._futures_only(fresh)))
        update.touched.update(changed)
        last_seq = int(fresh["seq"][-1])
        self._since_checkpoint += len(fresh)
        self._changed_at = self._changed_at or time.monotonic()
        if publish:
            self._publish(update, trade_seqs.tolist(), last_seq)

    def _publish(self, update: BatchUpdate, trade_seqs: list[int], seq: int) -> None:
        send = self._publisher.publish
        render = self._render
        traded: set[int] = set()
        name = self._topic
        for tick, tick_seq in zip(update.ticks, trade_seqs, strict=True):
            send(name(tick.instrument_index, "tick"), render.tick(tick, tick_seq))
            traded.add(tick.instrument_index)
        for index, bar in update.finished_bars:
            send(name(index, "kline", bar.period), render.bar(index, bar, seq, finished=True))
        for index in sorted(update.touched):
            if index in traded:
                for bar in self.market.open_bars(index):
                    body = render.bar(index, bar, seq, finished=False)
                    send(name(index, "kline", bar.period), body)
            send(name(index, "book"), render.book(self.market, index, seq, self._levels))
            send(name(index, "quote"), render.quote(self.market, index, seq))
        self.published += len(update.ticks) + len(update.finished_bars) + 2 * len(update.touched)

    def _topic(self, index: int, kind: str, seconds: int | None = None) -> str:
        """Topic names are built (and checked) once per instrument, type and period."""
        key = (index, kind, seconds)
        found = self._topics.get(key)
        if found is None:
            found = self._topics[key] = topic(self.instruments.by_index(index).id, kind, seconds)
        return found

    def tick(self, now_ns: int) -> None:
        if not self._sync.answered and self._sync.catch_up(ASK_ACCOUNTS_S):
            self._instruments_changed()
        if self._changed_at and time.monotonic() - self._changed_at >= self._checkpoint_interval:
            self.checkpoint()

    def checkpoint(self) -> dict[str, int]:
        """Write the state with the sequences it reflects, then let the held cursors catch up."""
        state = {"streams": self._streams.export(), "market": self.market.export_state()}
        seqs = self._seqs()
        self._generation += 1
        write_checkpoint(
            self._directory, self._checkpoint_name, self._generation, orjson.dumps(state)
        )
        for ring, held in self._held.items():
            held.advance(seqs[ring])
        self._since_checkpoint = 0
        self._changed_at = 0.0
        return seqs

    def _seqs(self) -> dict[str, int]:
        return sequences(self._streams, self.inputs())

    def stop(self) -> None:
        self.checkpoint()
        self._publisher.close()
        self._context.term()
        for held in self._held.values():
            held.close()

    def status(self) -> dict[str, Any]:
        return {
            "endpoint": self._publisher.endpoint,
            "published": self.published,
            "dropped": self._publisher.dropped,
            "replayed": self.replayed,
            "seqs": self._seqs(),
            "instruments": [
                found.id
                for i in self.market.instruments_seen()
                if (found := self.instruments.find(i)) is not None
            ],
        }

    # -- control commands ---------------------------------------------------------------------

    def register_commands(self, server: ControlServer) -> None:
        server.register("snapshot", self._on_snapshot)
        server.register("klines", self._on_klines)
        server.register("recent_trades", self._on_recent_trades)
        server.register("endpoint", lambda _args: self._publisher.endpoint)

    def _index(self, args: dict[str, Any]) -> int:
        name = args.get("instrument")
        found = (
            self.instruments.find(name)
            if isinstance(name, int)
            else self.instruments.get(str(name))
        )
        if found is None:
            raise ControlError(f"unknown instrument {name!r}")
        return found.index

    def _seq_of(self, index: int) -> int:
        ring = f"execs.{self.config.shard_of(self.instruments.by_index(index).id)}"
        return self._streams.get(ring).seq

    def _on_snapshot(self, args: dict[str, Any]) -> dict[str, Any]:
        index = self._index(args)
        seq = self._seq_of(index)
        levels = int(args.get("levels", self._levels))
        return {
            "instrument": self.instruments.by_index(index).id,
            "seq": seq,
            "book": self._render.book(self.market, index, seq, levels),
            "quote": self._render.quote(self.market, index, seq),
            "klines": {
                bar.period: self._render.bar(index, bar, seq, finished=False)
                for bar in self.market.open_bars(index)
            },
        }

    def _on_klines(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        index = self._index(args)
        seq = self._seq_of(index)
        try:
            bars = self.market.klines(index, int(args["period"]), int(args.get("count", 1000)))
        except (KeyError, ValueError) as exc:
            raise ControlError(f"klines: {exc}") from None
        last = len(bars) - 1
        current = self.market.market(index).klines[int(args["period"])].current
        return [
            self._render.bar(index, bar, seq, finished=not (n == last and bar is current))
            for n, bar in enumerate(bars)
        ]

    def _on_recent_trades(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        index = self._index(args)
        trades = self.market.recent_trades(index, int(args.get("count", 50)))
        return [self._render.tick(tick, None) for tick in trades]


def instrument_sync(config: configuration.Config, registry: InstrumentRegistry) -> InstrumentSync:
    """The sync of a reader of `execs`: asks this instance's accounts process, if it runs one."""
    accounts = config.control_endpoint("accounts") if config.enabled("accounts") else None
    return InstrumentSync(registry, accounts)


if __name__ == "__main__":
    raise SystemExit(main(MarketDataService))
