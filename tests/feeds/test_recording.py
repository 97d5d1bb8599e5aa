"""Record from a local venue, then replay: same records; and the bin/feed tools end to end."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import orjson

from gateway.feeds.config import FeedConfig
from gateway.feeds.recording import Recorder, read_recording, replay
from gateway.feeds.venues import VENUES
from tests.feeds import fixtures
from tests.feeds.harness import make_connector, run, run_until
from tests.feeds.server import VenueServer

ROOT = Path(__file__).resolve().parents[2]

SCRIPT: list[str | bytes] = [
    fixtures.trade("BINANCE", 0),
    fixtures.binance_depth(157, 160),
    fixtures.trade("BINANCE", 1),
    b"\xff\xfe\xfa\x80\x81\x00\x9f",
    fixtures.binance_depth(161, 163),
    fixtures.trade("BINANCE", 2),
    fixtures.trade("BINANCE", 1),  # a duplicate
]
REST = {"/api/v3/depth": fixtures.binance_snapshot(158)}


def test_replay_reproduces_the_live_records(tmp_path: Path) -> None:
    path = tmp_path / "binance.jsonl"

    async def main() -> None:
        async with VenueServer([SCRIPT], rest=dict(REST)) as server:
            with Recorder(path, "BINANCE", ["BTCUSDT"], ["trade", "depth"]) as recorder:
                live = make_connector(
                    "BINANCE", server, streams=["trade", "depth"], min_decode_confidence=0.9
                )
                live.on_frame = recorder
                live_records = await run_until(live, lambda r: len(r) >= 6)
        header, frames = read_recording(path)
        assert header["venue"] == "BINANCE" and header["streams"] == ["trade", "depth"]
        config = FeedConfig(
            "BINANCE", ["BTCUSDT"], ["trade", "depth"], buffer_rate=0, min_decode_confidence=0.9
        )
        again = VENUES["BINANCE"](config)
        replayed: list = []
        assert await replay(again, frames, on_records=replayed.extend) == len(SCRIPT) + 1
        assert [repr(r) for r in replayed] == [repr(r) for r in live_records]
        assert [r.ts_recv for r in replayed] == [r.ts_recv for r in live_records]
        for key in ("duplicates", "undecodable", "rest_snapshots", "book_gaps"):
            assert again.stats()[key] == live.stats()[key], key

    run(main())


def test_replay_at_recorded_pace_waits_between_frames(tmp_path: Path) -> None:
    path = tmp_path / "paced.jsonl"
    with Recorder(path, "BINANCE", ["BTCUSDT"], ["trade"]) as recorder:
        for i in range(3):
            recorder("ws", "", fixtures.trade("BINANCE", i), 1_000_000_000 * i)
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    async def main() -> None:
        _, frames = read_recording(path)
        feed = VENUES["BINANCE"](FeedConfig("BINANCE", ["BTCUSDT"], buffer_rate=0))
        await replay(feed, frames, speed=10.0, sleep=fake_sleep)
        assert len(feed.take()) == 3

    run(main())
    assert len(waits) == 2 and all(0.0 < w <= 0.2 for w in waits)


def test_bin_feed_record_then_replay(tmp_path: Path) -> None:
    out = tmp_path / "rec.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    async def main() -> tuple[bytes, bytes]:
        async with VenueServer([SCRIPT], rest=dict(REST)) as server:
            record = await asyncio.create_subprocess_exec(
                str(ROOT / "bin" / "feed"),
                "record",
                "BINANCE",
                "BTCUSDT",
                "--out",
                str(out),
                "--streams",
                "trade,depth",
                "--ws-url",
                server.ws_url,
                "--rest-url",
                server.rest_url,
                "--max-frames",
                str(len(SCRIPT) + 1),
                "--duration",
                "20",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
            try:
                recorded, _ = await asyncio.wait_for(record.communicate(), 60)
            finally:
                if record.returncode is None:
                    record.kill()
                    await record.wait()
            assert record.returncode == 0
        play = await asyncio.create_subprocess_exec(
            str(ROOT / "bin" / "feed"),
            "replay",
            str(out),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        try:
            played, _ = await asyncio.wait_for(play.communicate(), 60)
        finally:
            if play.returncode is None:
                play.kill()
                await play.wait()
        assert play.returncode == 0
        return recorded, played

    recorded, played = run(main(), timeout=100)
    assert orjson.loads(recorded.splitlines()[-1])["recorded"] >= len(SCRIPT)
    lines = played.decode().splitlines()
    stats = orjson.loads(lines[-1])
    assert sum(line.startswith("Trade(BINANCE.BTCUSDT") for line in lines) == 3
    assert stats["duplicates"] == 1 and stats["undecodable"] == 1 and stats["rest_snapshots"] == 1
