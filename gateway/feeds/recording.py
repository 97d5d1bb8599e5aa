"""Recordings of raw venue frames with their receive times, and their replay.

A recording is JSON lines: a header `{"format": "shmex-feed/1", "venue", "symbols", "streams"}`
then one line per frame `{"t": ts_recv_ns, "src": "ws" | "rest", "sym": symbol, "data": text}`
(`"b64": true` marks a frame that was not UTF-8, kept byte for byte). REST snapshot bodies are
recorded too, so a replay rebuilds the same books. Replay feeds the frames through a
connector's normalizer with their recorded receive times: the records are the live ones.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from gateway.feeds.pipeline import Normalizer

FORMAT = "shmex-feed/1"
YIELD_EVERY = 1000
"""A flat-out replay gives the event loop a turn every this many frames."""


class Frame:
    __slots__ = ("data", "source", "symbol", "ts_recv")

    def __init__(self, ts_recv: int, source: str, symbol: str, data: bytes | str) -> None:
        self.ts_recv = ts_recv
        self.source = source
        self.symbol = symbol
        self.data = data


class Recorder:
    """Appends frames to a recording; use as the connector's `on_frame` hook."""

    def __init__(self, path: Path, venue: str, symbols: list[str], streams: list[str]) -> None:
        self.path = path
        self.written = 0
        self._file: IO[bytes] | None = None
        self._header = {"format": FORMAT, "venue": venue, "symbols": symbols, "streams": streams}

    def __enter__(self) -> Recorder:
        self._file = self.path.open("wb")
        self._file.write(orjson.dumps(self._header) + b"\n")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()

    def __call__(self, source: str, symbol: str, data: bytes | str, ts_recv: int) -> None:
        assert self._file is not None, "Recorder used outside its with-block"
        line: dict[str, Any] = {"t": ts_recv, "src": source, "sym": symbol}
        if isinstance(data, bytes):
            try:
                line["data"] = data.decode()
            except UnicodeDecodeError:
                line["data"] = base64.b64encode(data).decode()
                line["b64"] = True
        else:
            line["data"] = data
        self._file.write(orjson.dumps(line) + b"\n")
        self.written += 1


def read_recording(path: Path) -> tuple[dict[str, Any], Iterator[Frame]]:
    """The header and a lazy iterator over the frames."""
    handle = path.open("rb")
    header = orjson.loads(handle.readline())
    if header.get("format") != FORMAT:
        handle.close()
        raise ValueError(f"{path} is not a {FORMAT} recording")

    def frames() -> Iterator[Frame]:
        with handle:
            for raw in handle:
                line = orjson.loads(raw)
                data = base64.b64decode(line["data"]) if line.get("b64") else line["data"]
                yield Frame(line["t"], line["src"], line["sym"], data)

    return header, frames()


async def replay(
    normalizer: Normalizer,
    frames: Iterator[Frame],
    speed: float = 0.0,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    on_records: Callable[[list[Any]], None] | None = None,
) -> int:
    """Feed frames at `speed`× their recorded pace (0 = as fast as possible); returns frames fed.

    `on_records` gets what each frame buffered (the consumer side); without it the records stay
    in the normalizer's buffer.
    """
    first: int | None = None
    started = asyncio.get_running_loop().time()
    count = 0
    for frame in frames:
        if speed > 0:
            if first is None:
                first = frame.ts_recv
            due = started + (frame.ts_recv - first) / 1e9 / speed
            wait = due - asyncio.get_running_loop().time()
            if wait > 0:
                await sleep(wait)
        elif count % YIELD_EVERY == 0:
            await sleep(0)  # flat out, yet the event loop's other tasks still run
        if frame.source == "rest":
            normalizer.feed_snapshot(frame.symbol, frame.data, frame.ts_recv)
        else:
            normalizer.feed(frame.data, frame.ts_recv)
        if on_records is not None:
            on_records(normalizer.take())
        count += 1
    return count
