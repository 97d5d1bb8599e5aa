"""A running instance for the gateway tests (one per test module: `up` costs seconds), and the
real clients the tests drive it with: REST (gateway.client), `/ws` and `/ws/diff` over aiohttp.

This module holds no tests; the test modules import `edge_instance` and the helpers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from gateway.client import EdgeClient
from gateway.diff.merge_patch import apply_merge_patch
from ipc.control import call
from tests.integration.conftest import Exchange, _tear_down, private_ports

ADMIN = ("admin", "admin-password-123")
WAIT_S = 15.0
TEST_DEADLINE_S = 90.0


@dataclass
class RunningEdge:
    exchange: Exchange
    url: str

    def status(self) -> dict[str, Any]:
        return dict(call(self.exchange.endpoint("gateway.1"), "status", timeout=5.0))


@contextlib.contextmanager
def edge_instance(tag: str, **env: str) -> Iterator[RunningEdge]:
    """`bin/exchange up` with free ports and an administrator; always torn down."""
    prefix = f"shmex_gw{tag}{os.getpid()}"
    home = Path(tempfile.mkdtemp(prefix="shmex-gw-"))
    ports = private_ports()
    instance = Exchange(prefix, home / "run", ports)
    settings = {
        "SHMEX_GATEWAY_ADMIN_USER": ADMIN[0],
        "SHMEX_GATEWAY_ADMIN_PASSWORD": ADMIN[1],
        **env,
    }
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        result = instance.run("up", timeout=120)
        assert result.returncode == 0, f"up failed:\n{result.stdout}\n{result.stderr}"
        url = call(instance.endpoint("gateway.1"), "status", timeout=5.0)["http"]
        yield RunningEdge(instance, url.rstrip("/"))
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        try:
            _tear_down(instance)
        finally:
            shutil.rmtree(home, ignore_errors=True)


def run(coroutine: Callable[..., Coroutine[Any, Any, None]], *args: Any) -> None:
    """Run a coroutine test with a deadline, on a fresh loop."""
    asyncio.run(asyncio.wait_for(coroutine(*args), TEST_DEADLINE_S))


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def user(session: aiohttp.ClientSession, edge: RunningEdge, name: str) -> EdgeClient:
    client = EdgeClient(session, edge.url)
    await client.sign_up(name, f"{name}-password-1")
    return client


async def admin(session: aiohttp.ClientSession, edge: RunningEdge) -> EdgeClient:
    client = EdgeClient(session, edge.url)
    await client.sign_up(*ADMIN)
    return client


@dataclass
class NativeSocket:
    """A `/ws` connection that collects every message it receives."""

    ws: aiohttp.ClientWebSocketResponse
    messages: list[dict[str, Any]] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, session: aiohttp.ClientSession, edge: RunningEdge) -> NativeSocket:
        ws = await session.ws_connect(edge.url + "/ws", heartbeat=None)
        sock = cls(ws)
        sock._reader = asyncio.create_task(sock._read())
        return sock

    async def _read(self) -> None:
        async for frame in self.ws:
            if frame.type is aiohttp.WSMsgType.TEXT:
                self.messages.append(orjson.loads(frame.data))

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_str(orjson.dumps(message).decode())

    async def next(
        self, kind: str, start: int = 0, timeout: float = WAIT_S, **match: Any
    ) -> dict[str, Any]:
        """The first message of `kind` at or after index `start` whose fields match."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.messages[start:]:
                if message.get("type") == kind and all(
                    message.get(k) == v for k, v in match.items()
                ):
                    return message
            await asyncio.sleep(0.02)
        raise AssertionError(f"no {kind} {match} in {self.messages[start:][-10:]}")

    async def request(self, message: dict[str, Any], answer: str) -> dict[str, Any]:
        start = len(self.messages)
        await self.send(message)
        return await self.next(answer, start)

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


@dataclass
class DiffSocket:
    """A `/ws/diff` client: peeks, merges every `rtn_data` into `state`, keeps each one."""

    ws: aiohttp.ClientWebSocketResponse
    state: dict[str, Any] = field(default_factory=dict)
    packets: list[list[dict[str, Any]]] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, session: aiohttp.ClientSession, edge: RunningEdge) -> DiffSocket:
        ws = await session.ws_connect(edge.url + "/ws/diff", heartbeat=None)
        sock = cls(ws)
        sock._reader = asyncio.create_task(sock._read())
        return sock

    async def _read(self) -> None:
        await self.send({"aid": "peek_message"})
        async for frame in self.ws:
            if frame.type is not aiohttp.WSMsgType.TEXT:
                continue
            message = orjson.loads(frame.data)
            if message.get("aid") == "rtn_data":
                self.packets.append(message["data"])
                for patch in message["data"]:
                    self.state = apply_merge_patch(self.state, patch)
                await self.send({"aid": "peek_message"})

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_str(orjson.dumps(message).decode())

    async def until(self, check: Callable[[dict[str, Any]], bool], timeout: float = WAIT_S) -> None:
        deadline = time.monotonic() + timeout
        while not check(self.state):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"DIFF state never matched; notify: {self.state.get('notify')}"
                )
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
