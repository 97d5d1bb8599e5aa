"""Subscribing to shmex market data from your own code, and `bin/md-subscribe`.

    from services.mdclient import snapshot, subscribe

    start = snapshot("CFFEX.IF2501", home="var/shmex")          # the current state, with its seq
    for topic, body in subscribe(["CFFEX.IF2501"], ["tick", "kline.60"], port=5555):
        if body.get("seq", 0) > start["seq"]:                  # skip what the snapshot holds
            print(topic, body["price"] if "price" in body else body["close"])

`subscribe` connects a ZeroMQ SUB socket (any host) and yields `(topic, body)` pairs of the
schema in docs/marketdata.md. `snapshot`, `klines`, `recent_trades` and `publisher_endpoint` ask
the marketdata process's control socket, which lives in the instance's run directory (same host);
for an external instrument (another venue's, in the feeds process's `instruments` catalogue) the
first three ask the feeds process, which answers in the same shapes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import zmq
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from ipc.control import ControlError, call, control_endpoint
from ipc.pubsub import Subscriber, parse_topic
from services import config as configuration

ALL_TYPES = ("tick", "book", "quote", "kline")
PROCESS = "marketdata"
FEEDS = "feeds"
REDRAW_S = 0.1
"""The table view redraws at most this often, however fast messages arrive."""


def topic_filter(instruments: Sequence[str], types: Sequence[str]) -> list[str]:
    """The SUB prefixes for these instruments and types (`kline` = every period, `kline.60`
    = one period)."""
    out = []
    for instrument in instruments:
        for kind in types or ALL_TYPES:
            base, _dot, seconds = kind.partition(".")
            if base not in ALL_TYPES or (seconds and (base != "kline" or not seconds.isdigit())):
                raise ValueError(f"unknown market-data type {kind!r}; e.g. tick, book, kline.60")
            out.append(f"md.{instrument}.{kind}" + ("." if base == "kline" and not seconds else ""))
    return out


def subscribe(
    instruments: Sequence[str],
    types: Sequence[str] = ALL_TYPES,
    host: str = "127.0.0.1",
    port: int = 5555,
    *,
    endpoint: str | None = None,
    idle_timeout: float | None = None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield `(topic, body)` for the given instruments and types, forever or until nothing has
    arrived for `idle_timeout` seconds. Topics match exactly (`kline.6` is not `kline.60`)."""
    stream = Stream(instruments, types, endpoint or f"tcp://{host}:{port}")
    try:
        while True:
            item = stream.receive(1.0 if idle_timeout is None else idle_timeout)
            if item is not None:
                yield item
            elif idle_timeout is not None:
                return
    finally:
        stream.close()


class Stream:
    """A SUB socket for some instruments and types, with exact topic matching."""

    def __init__(
        self,
        instruments: Sequence[str],
        types: Sequence[str],
        endpoint: str,
        more_endpoints: Sequence[str] = (),
    ) -> None:
        self._prefixes = topic_filter(instruments, types)
        self._exact = {p for p in self._prefixes if not p.endswith(".")}
        self._periods = tuple(p for p in self._prefixes if p.endswith("."))
        endpoints = [endpoint, *more_endpoints]
        self._subscriber = Subscriber(zmq.Context.instance(), endpoints, self._prefixes)

    def receive(self, timeout: float) -> tuple[str, dict[str, Any]] | None:
        """The next matching message, or None when none arrives within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            item = self._subscriber.receive(max(0.0, deadline - time.monotonic()))
            if item is None:
                return None
            name = item[0]
            if name in self._exact or name.startswith(self._periods):
                return item

    def close(self) -> None:
        self._subscriber.close()


def _control(home: Path | str) -> str:
    return control_endpoint(home, PROCESS)


def _feeds_control(home: Path | str) -> str | None:
    """The feeds process's control socket, None when the instance runs none (no socket file:
    nothing to wait for)."""
    return control_endpoint(home, FEEDS) if (Path(home) / f"{FEEDS}.ctl").exists() else None


def _market_control(instrument: str, home: Path | str, timeout: float) -> str:
    """Who answers market queries for `instrument`: the feeds process for an id of its
    catalogue (as the gateway finds external instruments), marketdata otherwise."""
    feeds = _feeds_control(home)
    if feeds is not None:
        try:
            catalogue = call(feeds, "instruments", timeout)
        except ControlError:
            catalogue = {}
        if isinstance(catalogue, dict) and instrument in catalogue:
            return feeds
    return _control(home)


def snapshot(
    instrument: str, home: Path | str, levels: int | None = None, timeout: float = 2.0
) -> dict[str, Any]:
    """`{instrument, seq, book, quote, klines: {period: open bar}}` from the running process
    that publishes `instrument` (marketdata, or feeds for an external id)."""
    args: dict[str, Any] = {"instrument": instrument}
    if levels is not None:
        args["levels"] = levels
    endpoint = _market_control(instrument, home, timeout)
    return dict(call(endpoint, "snapshot", timeout, **args))


def klines(
    instrument: str, period: int, count: int, home: Path | str, timeout: float = 2.0
) -> list[dict[str, Any]]:
    """The newest `count` bars of `period` seconds, oldest first (the last may be open)."""
    endpoint = _market_control(instrument, home, timeout)
    answer = call(endpoint, "klines", timeout, instrument=instrument, period=period, count=count)
    return list(answer)


def recent_trades(
    instrument: str, count: int, home: Path | str, timeout: float = 2.0
) -> list[dict[str, Any]]:
    """The newest `count` trade prints, oldest first."""
    endpoint = _market_control(instrument, home, timeout)
    return list(call(endpoint, "recent_trades", timeout, instrument=instrument, count=count))


def publisher_endpoint(home: Path | str, timeout: float = 2.0) -> str:
    """The PUB endpoint the running process actually bound (it may differ from the config)."""
    return str(call(_control(home), "endpoint", timeout))


# -- bin/md-subscribe -------------------------------------------------------------------------


def _time(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%H:%M:%S.%f")[:-3]


def describe(topic: str, body: dict[str, Any]) -> str:
    """One readable line for a message (the scrolling log view)."""
    instrument, kind, seconds = parse_topic(topic)
    if kind == "tick":
        return (
            f"{_time(body['ts'])} {instrument} tick  {body['price']} x{body['qty']} "
            f"{body['side']} volume={body['volume']} oi={body['open_interest']}"
        )
    if kind == "book":
        bid = body["bids"][0] if body["bids"] else None
        ask = body["asks"][0] if body["asks"] else None
        return (
            f"{_time(body['ts'])} {instrument} book  "
            f"{f'{bid[1]}@{bid[2]}' if bid else '-'} / {f'{ask[1]}@{ask[2]}' if ask else '-'} "
            f"({len(body['bids'])}x{len(body['asks'])} levels)"
        )
    if kind == "quote":
        return (
            f"{_time(body['ts'])} {instrument} quote last={body['last']} "
            f"bid={body['bid_price']} ask={body['ask_price']} volume={body['volume']}"
        )
    state = "done" if body["finished"] else "open"
    return (
        f"{_time(body['datetime'])} {instrument} kline.{seconds} {state} "
        f"O={body['open']} H={body['high']} L={body['low']} C={body['close']} V={body['volume']}"
    )


class View:
    """The latest state per instrument, drawn as one small table each (the live view)."""

    def __init__(self, instruments: Sequence[str]) -> None:
        self.state: dict[str, dict[str, Any]] = {name: {} for name in instruments}

    def start_from(self, instrument: str, answer: dict[str, Any]) -> None:
        state = self.state[instrument]
        state["book"], state["quote"] = answer["book"], answer["quote"]
        for period, bar in answer["klines"].items():
            state[f"kline.{period}"] = bar

    def update(self, topic: str, body: dict[str, Any]) -> None:
        instrument, kind, seconds = parse_topic(topic)
        key = f"kline.{seconds}" if seconds is not None else kind
        self.state.setdefault(instrument, {})[key] = body

    def render(self) -> Group:
        return Group(*(self._table(name, state) for name, state in self.state.items()))

    def _table(self, name: str, state: dict[str, Any]) -> Table:
        quote = state.get("quote", {})
        title = (
            f"{name}  last {quote.get('last')}  volume {quote.get('volume', 0)}  "
            f"OI {quote.get('open_interest', 0)}"
        )
        table = Table(title=title, title_justify="left", min_width=64)
        for column in ("bid vol", "bid", "ask", "ask vol"):
            table.add_column(column, justify="right")
        book = state.get("book", {"bids": [], "asks": []})
        for level in range(5):
            bid = book["bids"][level] if level < len(book["bids"]) else None
            ask = book["asks"][level] if level < len(book["asks"]) else None
            table.add_row(
                str(bid[1]) if bid else "",
                str(bid[2]) if bid else "",
                str(ask[2]) if ask else "",
                str(ask[1]) if ask else "",
            )
        bars = sorted(
            (int(key.split(".")[1]), bar) for key, bar in state.items() if key.startswith("kline.")
        )
        caption = "  ".join(
            f"{period}s O{bar['open']} H{bar['high']} L{bar['low']} C{bar['close']} "
            f"V{bar['volume']}"
            for period, bar in bars[:3]
        )
        tick = state.get("tick")
        trade = f"last trade {tick['price']} x{tick['qty']} {tick['side']}\n" if tick else ""
        table.caption = trade + (caption or "no bars yet")
        return table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bin/md-subscribe", description="Live shmex market data (ZeroMQ SUB)."
    )
    configuration.add_arguments(parser)
    parser.add_argument("instruments", nargs="+", metavar="INSTRUMENT", help="e.g. CFFEX.IF2501")
    parser.add_argument("--host", help="publisher host (default: ports.host)")
    parser.add_argument("--port", type=int, help="publisher port (default: the running one)")
    parser.add_argument("--type", default="", help="comma list: tick,book,quote,kline,kline.60")
    parser.add_argument("--count", type=int, help="exit after this many live messages")
    parser.add_argument("--seconds", type=float, help="exit after this many seconds")
    parser.add_argument(
        "--view", choices=("table", "log"), help="default: table on a terminal, else log"
    )
    args = parser.parse_args(argv)
    config = configuration.from_arguments(args)
    types = [t.strip() for t in args.type.split(",") if t.strip()] or list(ALL_TYPES)
    endpoint = _endpoint(config, args)
    view_mode = args.view or ("table" if sys.stdout.isatty() else "log")
    view = View(args.instruments)
    feeds = [_feeds_endpoint(config, args)] if args.port is None else []
    stream = Stream(args.instruments, types, endpoint, feeds)
    starts = _snapshots(config, args.instruments) if args.port is None else {}
    for instrument, answer in starts.items():
        view.start_from(instrument, answer)
        if view_mode == "log":
            print(f"snapshot {instrument} seq={answer['seq']} {answer['quote']}", flush=True)
    deadline = math.inf if args.seconds is None else time.monotonic() + args.seconds
    wanted = math.inf if args.count is None else args.count
    received = 0
    next_draw = 0.0
    live = Live(view.render(), auto_refresh=False) if view_mode == "table" else None
    try:
        if live is not None:
            live.start()
        while received < wanted and time.monotonic() < deadline:
            item = stream.receive(min(REDRAW_S, max(0.0, deadline - time.monotonic())))
            if item is None:
                if live is not None:
                    live.update(view.render(), refresh=True)
                continue
            name, body = item
            if body.get("seq", 0) <= starts.get(parse_topic(name)[0], {}).get("seq", 0):
                continue  # already in the snapshot this view started from
            received += 1
            view.update(name, body)
            if live is None:
                print(describe(name, body), flush=True)
            elif time.monotonic() >= next_draw:
                next_draw = time.monotonic() + REDRAW_S
                live.update(view.render(), refresh=True)
    except KeyboardInterrupt:
        pass
    finally:
        if live is not None:
            live.stop()
        stream.close()
    return 0


def _endpoint(config: configuration.Config, args: argparse.Namespace) -> str:
    host = args.host or config["ports"]["host"]
    if args.port is not None:
        return f"tcp://{host}:{args.port}"
    try:
        bound = publisher_endpoint(config.home, timeout=1.0)
    except ControlError:
        return f"tcp://{host}:{config['ports']['md_pub']}"
    return f"tcp://{host}:{bound.rsplit(':', 1)[1]}"


def _feeds_endpoint(config: configuration.Config, args: argparse.Namespace) -> str:
    """The feeds process's PUB (external venues' instruments), where it really bound."""
    host = args.host or config["ports"]["host"]
    feeds = _feeds_control(config.home)
    if feeds is None:  # no feeds process: do not wait for one
        return f"tcp://{host}:{config['ports']['feeds_pub']}"
    try:
        bound = str(call(feeds, "endpoint", 1.0))
    except ControlError:
        return f"tcp://{host}:{config['ports']['feeds_pub']}"
    return f"tcp://{host}:{bound.rsplit(':', 1)[1]}"


def _snapshots(config: configuration.Config, instruments: Sequence[str]) -> dict[str, Any]:
    out = {}
    for instrument in instruments:
        try:
            out[instrument] = snapshot(instrument, config.home, timeout=1.0)
        except ControlError as exc:
            Console(stderr=True).print(f"no snapshot for {instrument}: {exc}")
    return out


if __name__ == "__main__":
    raise SystemExit(main())
