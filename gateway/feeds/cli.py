"""`bin/feed`: record a venue's raw frames, or replay a recording through the normalizer.

    bin/feed record VENUE SYMBOL... --out FILE [--streams trade,depth] [--duration S]
    bin/feed replay FILE [--speed X] [--quiet]
    bin/feed replay FILE --prefix P | --home DIR [--speed X] [--timeout S]

With `--prefix`/`--home` the recording is played into that running exchange: its feeds process
(services/feeds.py) replays the file through its own publish and mirror path (the `replay`
control command) and this command waits for the end.

Both log the health line every `--health-interval` seconds (30 by default) and print the
`stats()` figures as JSON at the end. `--ws-url`/`--rest-url` point a recording at another
endpoint (the local test venues; there is no internet on the build machines).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from gateway.feeds.backoff import GaveUp
from gateway.feeds.config import FeedConfig
from gateway.feeds.connector import Connector
from gateway.feeds.recording import Recorder, read_recording, replay
from gateway.feeds.venues import VENUES
from ipc.control import ControlError, call, control_endpoint

log = logging.getLogger("gateway.feeds.cli")
FEEDS_PROCESS = "feeds"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bin/feed", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    record = commands.add_parser("record", help="write raw frames with receive times to a file")
    record.add_argument("venue", choices=sorted(VENUES))
    record.add_argument("symbols", nargs="+")
    record.add_argument("--out", type=Path, required=True)
    record.add_argument("--streams", default="trade", help="comma-separated venue stream names")
    record.add_argument("--ws-url", default="")
    record.add_argument("--rest-url", default="")
    record.add_argument("--duration", type=float, default=0.0, help="seconds; 0 = until a signal")
    record.add_argument("--max-frames", type=int, default=0)
    record.add_argument("--max-attempts", type=int, default=100, help="-1 = unlimited")
    record.add_argument("--health-interval", type=float, default=30.0)
    play = commands.add_parser("replay", help="play a recording through the normalizer")
    play.add_argument("file", type=Path)
    play.add_argument("--speed", type=float, default=0.0, help="× recorded pace; 0 = flat out")
    play.add_argument("--quiet", action="store_true", help="print only the final stats")
    play.add_argument("--health-interval", type=float, default=30.0)
    play.add_argument("--prefix", help="play into this running instance (./var/<prefix>/)")
    play.add_argument("--home", type=Path, help="play into the instance with this run dir")
    play.add_argument("--timeout", type=float, default=3600.0, help="longest wait, seconds")
    return parser


def _replay_into(args: argparse.Namespace) -> dict[str, Any]:
    """Ask the instance's feeds process to replay the file; wait (bounded) for the end."""
    home = args.home or Path("var") / args.prefix
    endpoint = control_endpoint(home.resolve(), FEEDS_PROCESS)
    replay_id = call(endpoint, "replay", 5.0, path=str(args.file.resolve()), speed=args.speed)
    deadline = time.monotonic() + args.timeout
    while True:
        state = call(endpoint, "replay_status", 5.0, id=replay_id)
        if state["state"] in ("done", "failed"):
            return dict(state)
        if time.monotonic() > deadline:
            raise TimeoutError(f"replay {replay_id} still {state['state']} after {args.timeout}s")
        time.sleep(0.1)


async def _record(args: argparse.Namespace) -> dict[str, Any]:
    streams = [s for s in args.streams.split(",") if s]
    config = FeedConfig(
        args.venue,
        args.symbols,
        streams,
        ws_url=args.ws_url,
        rest_url=args.rest_url,
        max_attempts=args.max_attempts,
        health_interval=args.health_interval,
        buffer_rate=0,
    )
    with Recorder(args.out, args.venue, args.symbols, streams) as recorder:
        connector = VENUES[args.venue](config, on_frame=recorder)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, connector.stop)
        task = asyncio.create_task(connector.run())
        started = loop.time()
        try:
            while not task.done():
                connector.take()  # the consumer: here only counted as written
                if args.max_frames and recorder.written >= args.max_frames:
                    break
                if args.duration and loop.time() - started >= args.duration:
                    break
                await asyncio.sleep(0.05)
        finally:
            connector.stop()
            try:
                await asyncio.wait_for(task, 10.0)
            except TimeoutError:
                log.warning("%s: did not stop within 10 s; cancelled", args.venue)
        log.info(connector.health_line())
        return {**connector.stats(), "recorded": recorder.written}


async def _replay(args: argparse.Namespace) -> dict[str, Any]:
    header, frames = read_recording(args.file)
    venue = header["venue"]
    config = FeedConfig(
        venue,
        header["symbols"],
        header["streams"],
        buffer_rate=0,
        health_interval=args.health_interval,
    )
    connector: Connector = VENUES[venue](config)

    def show(records: list[Any]) -> None:
        if not args.quiet:
            for record in records:
                sys.stdout.write(f"{record!r}\n")

    async def health() -> None:
        while True:
            await asyncio.sleep(args.health_interval)
            log.info(connector.health_line())

    reporter = asyncio.create_task(health())
    try:
        await replay(connector, frames, args.speed, on_records=show)
    finally:
        reporter.cancel()
    log.info(connector.health_line())
    return connector.stats()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.command == "replay" and (args.prefix or args.home):
            stats = _replay_into(args)
        else:
            stats = asyncio.run(_record(args) if args.command == "record" else _replay(args))
    except (GaveUp, ControlError, TimeoutError) as error:
        log.error("%s", error)
        return 1
    if stats.get("state") == "failed":
        log.error("replay failed: %s", stats.get("error"))
        sys.stdout.write(orjson.dumps(stats, option=orjson.OPT_SORT_KEYS).decode() + "\n")
        return 1
    sys.stdout.write(orjson.dumps(stats, option=orjson.OPT_SORT_KEYS).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
