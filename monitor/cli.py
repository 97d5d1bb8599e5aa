"""`bin/monitor`: the live terminal dashboard of one instance (or one frame, or Prometheus text)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence

from rich.console import Console
from rich.live import Live

from monitor.collector import Collector
from monitor.prometheus import render
from monitor.series import History
from monitor.terminal import dashboard
from services import config as configuration

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bin/monitor", description=__doc__.split("\n")[0])
    configuration.add_arguments(parser)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    parser.add_argument("--once", action="store_true", help="print one frame and exit")
    parser.add_argument(
        "--prometheus", action="store_true", help="print Prometheus text once and exit"
    )
    parser.add_argument("--width", type=int, default=None, help="console width (default: auto)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.interval <= 0:
        parser.error("--interval must be positive")
    try:
        config = configuration.from_arguments(args)
    except configuration.ConfigError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.WARNING)
    console = Console(width=args.width)
    history = History()
    with Collector(config.prefix, config.home) as collector:
        if args.once or args.prometheus:
            collector.sample()
            time.sleep(min(args.interval, 0.5))  # a second sample gives CPU % and rates
            sample = collector.sample()
            history.add(sample)
            if args.prometheus:
                sys.stdout.write(render(sample))
            else:
                console.print(dashboard(sample, history))
            return 0
        return _live(console, collector, history, args.interval)


def _live(console: Console, collector: Collector, history: History, interval: float) -> int:
    sample = collector.sample()
    history.add(sample)
    with Live(
        dashboard(sample, history), console=console, auto_refresh=False, screen=False
    ) as live:
        try:
            while True:
                time.sleep(interval)
                sample = collector.sample()
                history.add(sample)
                live.update(dashboard(sample, history), refresh=True)
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    raise SystemExit(main())
