"""The control protocol of ipc/control.py from the event loop: many requests, none blocking.

`ipc.control.ControlClient` blocks its caller until the answer comes; the gateway cannot block
its event loop, so this client uses one zmq.asyncio DEALER socket, sends each request with its
own id and lets one receive task hand every reply to the future waiting for that id. A request
without an answer by its deadline raises `ControlTimeout` (the process is down or busy).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from typing import Any

import orjson
import zmq
import zmq.asyncio

from ipc.control import ControlError, ControlTimeout, Knock

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 4096
"""Requests waiting for an answer before new ones are refused (a wedged process)."""


class AsyncControlClient:
    """Requests to one process's control socket from coroutines."""

    def __init__(self, context: zmq.asyncio.Context, endpoint: str, timeout: float = 2.0) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._context = context
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._socket: zmq.asyncio.Socket | None = None
        self._receiver: asyncio.Task[None] | None = None
        self._knock = Knock(endpoint)  # wakes the process if it sleeps on its doorbell

    async def request(self, command: str, timeout: float | None = None, **args: Any) -> Any:
        """The reply's data; ControlError if the process refused, ControlTimeout if silent."""
        socket = self._open()
        if len(self._waiting) >= MAX_IN_FLIGHT:
            raise ControlTimeout(f"{self.endpoint}: {len(self._waiting)} requests unanswered")
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        body = orjson.dumps({"id": request_id, "cmd": command, "args": args})
        try:
            await socket.send_multipart([b"", body], flags=zmq.NOBLOCK)
            self._knock.ring()
            async with asyncio.timeout(self.timeout if timeout is None else timeout):
                reply = await future
        except (TimeoutError, zmq.Again):
            raise ControlTimeout(f"{self.endpoint}: no answer to {command!r} in time") from None
        finally:
            self._waiting.pop(request_id, None)
        if not reply.get("ok"):
            raise ControlError(f"{command!r}: {reply.get('error')}")
        return reply.get("data")

    def _open(self) -> zmq.asyncio.Socket:
        if self._socket is None:
            self._socket = self._context.socket(zmq.DEALER)
            self._socket.setsockopt(zmq.LINGER, 0)
            self._socket.connect(self.endpoint)
            self._receiver = asyncio.create_task(self._receive(self._socket))
        return self._socket

    async def _receive(self, socket: zmq.asyncio.Socket) -> None:
        while True:
            frames = await socket.recv_multipart()
            try:
                reply = orjson.loads(frames[-1])
            except orjson.JSONDecodeError:
                log.warning("%s: dropped a reply that is not JSON", self.endpoint)
                continue
            future = self._waiting.get(reply.get("id")) if isinstance(reply, dict) else None
            if future is not None and not future.done():
                future.set_result(reply)

    async def close(self) -> None:
        self._knock.close()
        if self._receiver is not None:
            self._receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._receiver
            self._receiver = None
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None
