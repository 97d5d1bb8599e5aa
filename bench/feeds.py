"""`bin/bench feeds`: normalization throughput per venue from a recorded file.

For each venue a recording of trade frames in the venue's format (tests/feeds/fixtures.py, the
same frames the tests check) is written to a temporary file, read back with `read_recording`,
and pushed through parse → normalize (exact ticks/lots, quality score) → dedup →
bounded buffer, drained in blocks of 1,000 as a consumer would. Also: Binance depth diffs
through the U/u book keeper, and a seed-002-style peer (json + float, no validation, no dedup)
on the same Binance frames, and the feeds process's publish step (records → market-data JSON
bodies, K-lines, orjson) on the normalized Binance trades. The seeds' own figures are reference
rows. Scale with SHMEX_BENCH_FEEDS_N (frames per workload, default 50,000) and
SHMEX_BENCH_REPEAT (runs per workload, default 5): each row is the median of the runs, and the
trade rows also give the slowest run, by wall clock and by this process's CPU time.

`bin/bench feeds --instructions [VENUE...]` counts instructions per trade message instead
(valgrind's callgrind, stable under load): it runs this module with `--marked` under
callgrind, where each venue's timed loop sits between two marker calls (`os.getppid` zeroes
the counters, `os.getpgrp` dumps them), and writes bench/results/feeds_instructions.json.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from bench.common import Results, median
from gateway.feeds.config import FeedConfig
from gateway.feeds.publish import MarketPublisher
from gateway.feeds.recording import Frame, Recorder, read_recording
from gateway.feeds.venues import VENUES
from tests.feeds import fixtures

N = int(os.environ.get("SHMEX_BENCH_FEEDS_N", "50000"))
REPEAT = int(os.environ.get("SHMEX_BENCH_REPEAT", "5"))
T0_NS = fixtures.T0_MS * 1_000_000


def _record(path: Path, venue: str, streams: list[str], make: Callable[[int], str]) -> list[Frame]:
    with Recorder(path, venue, [fixtures.SYMBOL[venue]], streams) as recorder:
        for i in range(N):
            recorder("ws", "", make(i), T0_NS + i * 1_000_000)
    _, frames = read_recording(path)
    return list(frames)


def _normalize(
    venue: str, frames: list[Frame], streams: list[str], marked: bool = False
) -> tuple[float, float, int]:
    """Wall and CPU seconds to push all frames through a fresh connector; records produced.

    The connector is built and the frames are cut into drain blocks before the clocks start
    (and, with `marked`, outside the callgrind markers): what is measured is the per-frame
    work — `feed` (or `feed_snapshot` for REST bodies) of each frame, then one `take` per
    1,000 frames, as the feeds process's drain loop takes them. A full GC collection before
    the clocks start keeps one left pending by earlier runs (a whole-heap traversal, several
    thousand instructions a message when it lands in a 5,000-frame window) out of the count."""
    config = FeedConfig(
        venue,
        [fixtures.SYMBOL[venue]],
        streams,
        buffer_capacity=10_000,
        buffer_rate=0,
        dedup_size=10_000,
    )
    feed = VENUES[venue](config)
    ws, rest = feed.feed, feed.feed_snapshot
    blocks = [
        [
            (rest, (f.symbol, f.data, f.ts_recv))
            if f.source == "rest"
            else (ws, (f.data, f.ts_recv))
            for f in frames[i : i + 1000]
        ]
        for i in range(0, len(frames), 1000)
    ]
    take = feed.take
    produced = 0
    gc.collect()  # every run starts from the same heap: no full collection left pending
    if marked:
        os.getppid()  # callgrind --zero-before
    cpu = time.process_time()
    start = time.perf_counter()
    for block in blocks:
        for call, args in block:
            call(*args)
        produced += len(take())
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    if marked:
        os.getpgrp()  # callgrind --dump-before
    stats = feed.stats()
    if stats["malformed"] or stats["dropped_full"]:
        raise RuntimeError(f"{venue}: benchmark frames were rejected: {stats}")
    return elapsed, cpu, produced


def _add(
    results: Results, workload: str, runs: list[tuple[float, float, int]], slowest: bool = False
) -> None:
    """Median throughput by wall clock and by CPU time (and, with `slowest`, the slowest run)."""
    for clock, name in ((0, "wall"), (1, "CPU time")):
        seconds = [run[clock] for run in runs]
        results.add("shmex", workload, f"throughput ({name})", N / median(seconds), "msg/s")
        if slowest:
            results.add(
                "shmex", workload, f"throughput ({name}, slowest run)", N / max(seconds), "msg/s"
            )


def _publish(frames: list[Frame]) -> tuple[float, float, int]:
    """Wall and CPU seconds of the feeds process's publish step for normalized trades, in
    blocks of 1,000 (one drain each): bodies, K-lines and orjson, no socket."""
    venue = "BINANCE"
    feed = VENUES[venue](FeedConfig(venue, ["BTCUSDT"], ["trade"], buffer_rate=0))
    blocks = []
    for n, frame in enumerate(frames, 1):
        feed.feed(frame.data, frame.ts_recv)
        if n % 1000 == 0:
            blocks.append(feed.take())
    table = feed.instruments
    specs = {spec.instrument_id: spec for spec in map(table.get, table.symbols()) if spec}
    publisher = MarketPublisher()
    dumps = orjson.dumps
    cpu = time.process_time()
    start = time.perf_counter()
    for block in blocks:
        for topic, body in publisher.publish(block, specs.get):
            topic.encode()
            dumps(body)
    elapsed = time.perf_counter() - start
    return elapsed, time.process_time() - cpu, sum(map(len, blocks))


def _seed002_peer(frames: list[Frame]) -> float:
    """Seed 002's parser: json.loads and float(), no tick check, no dedup, no buffer bound."""
    out = []
    start = time.perf_counter()
    for frame in frames:
        data = json.loads(frame.data)["data"]
        out.append(
            (
                data["s"],
                data["T"] / 1000,
                float(data["p"]),
                float(data["q"]),
                "sell" if data["m"] else "buy",
            )
        )
    return time.perf_counter() - start


def _depth_diff(i: int) -> str:
    first = 200 + 3 * i
    return fixtures.binance_depth(
        first, first + 2, bid=f"{16000 + i % 500}.00", qty=f"{1 + i % 7}.00000"
    )


def _trades(workdir: Path, venue: str) -> list[Frame]:
    return _record(workdir / f"{venue}.jsonl", venue, ["trade"], lambda i: fixtures.trade(venue, i))


def _marked(venues: list[str]) -> None:
    """The callgrind target of `--instructions`: one timed loop per venue between the markers."""
    with tempfile.TemporaryDirectory() as tmp:
        recordings = {venue: _trades(Path(tmp), venue) for venue in venues}
    for venue in venues:
        _normalize(venue, recordings[venue][:500], ["trade"])  # imports and caches warm
        _normalize(venue, recordings[venue], ["trade"], marked=True)


def _instructions(venues: list[str]) -> None:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    results = Results("feeds_instructions")
    frames = os.environ.get("SHMEX_BENCH_FEEDS_N", "5000")  # callgrind runs ~50x slower
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        command = [
            valgrind,
            "--tool=callgrind",
            "--zero-before=os_getppid",
            "--dump-before=os_getpgrp",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "bench.feeds",
            "--marked",
            *venues,
        ]
        environment = {**os.environ, "SHMEX_BENCH_FEEDS_N": frames}
        subprocess.run(
            command,
            check=True,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n, venue in enumerate(venues, 1):
            text = Path(f"{out}.{n}").read_text()
            total = next(
                int(line.split()[1]) for line in text.splitlines() if line.startswith("totals:")
            )
            per_message = total / int(frames)
            results.add(
                "shmex", f"{venue} trades", "instructions per message", per_message, "instr"
            )
    results.finish(
        [
            f"valgrind callgrind, {frames} frames per venue, one run each: parse → normalize → "
            "dedup → buffer, drained in blocks of 1,000, as the throughput rows.",
            "Instruction counts do not depend on the machine's load (unlike the throughput rows).",
        ]
    )


def main() -> None:
    if sys.argv[1:2] in (["--marked"], ["--instructions"]):
        venues = sys.argv[2:] or list(fixtures.SYMBOL)
        (_marked if sys.argv[1] == "--marked" else _instructions)(venues)
        return
    results = Results("feeds")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for venue in fixtures.SYMBOL:
            _trades(workdir, venue)
        # round robin: every venue's k-th run meets the machine in about the same state, so
        # that other work on the machine disturbs all venues' medians alike
        venue_runs: dict[str, list[tuple[float, float, int]]] = {v: [] for v in fixtures.SYMBOL}
        for _ in range(REPEAT):
            for venue, runs in venue_runs.items():
                frames = list(read_recording(workdir / f"{venue}.jsonl")[1])
                runs.append(_normalize(venue, frames, ["trade"]))
                del frames
        for venue, runs in venue_runs.items():
            assert all(r[2] == N for r in runs), f"{venue}: expected {N} trades"
            _add(results, f"{venue} trades", runs, slowest=True)
        frames = _record(workdir / "depth.jsonl", "BINANCE", ["depth"], _depth_diff)
        snapshot = Frame(T0_NS, "rest", "BTCUSDT", json.dumps(fixtures.binance_snapshot(199)))
        runs = [_normalize("BINANCE", [snapshot, *frames], ["depth"]) for _ in range(REPEAT)]
        assert all(r[2] == N + 1 for r in runs), "every diff must chain onto the snapshot"
        _add(results, "BINANCE depth diffs (U/u book)", runs)
        trades = _record(
            workdir / "peer.jsonl", "BINANCE", ["trade"], lambda i: fixtures.trade("BINANCE", i)
        )
        runs = [_publish(trades) for _ in range(REPEAT)]
        assert all(r[2] == N for r in runs), "every trade must be published"
        _add(results, "BINANCE trades → md JSON (feeds publish step)", runs)
        peer = median([_seed002_peer(trades) for _ in range(REPEAT)])
        results.add(
            "seed 002 parser (json+float)", "BINANCE trades", "throughput", N / peer, "msg/s"
        )
    results.add(
        "seed 000 (reference)", "Coinbase trades → QuestDB ILP/TCP", "throughput", 500, "trades/s"
    )
    results.add(
        "seed 000 (reference)", "Coinbase trades → QuestDB HTTP", "throughput", 100, "trades/s"
    )
    results.add(
        "seed 003 (reference)", "Binance futures ingestion rate cap", "throughput", 1000, "msg/s"
    )
    results.finish(
        [
            f"{N} frames per workload, median of {REPEAT} runs (trade rows also: the slowest "
            "run; the venues' runs taken in turn); one process, single thread.",
            "shmex rows: parse (orjson; for Kraken/Upbit/Bithumb orjson with exact float→units, "
            "Decimal only for frames with 16+-digit literals) → exact ticks/lots → quality → "
            "dedup LRU → bounded buffer, drained in blocks of 1,000.",
            "'CPU time' divides by this process's CPU seconds, which discounts the time it spent "
            "waiting for a core when other work shares the machine.",
            "Seed rows are the seeds' own reported figures (end to end into their sinks), "
            "not re-measured.",
        ]
    )


if __name__ == "__main__":
    main()
