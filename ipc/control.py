"""Control sockets: every process answers JSON requests at `ipc://<run_dir>/<name>.ctl`.

The server is a ROUTER socket polled from the process's own main loop (`poll(0)` never blocks),
so control never needs a thread and a slow client never stalls the loop. The client is a DEALER
with a per-request id and a deadline: a dead or wedged server raises `ControlTimeout` instead of
hanging, and a late answer to an abandoned request is recognised by its id and dropped.

Wire format (orjson): request `{"id": int, "cmd": str, "args": {...}}`, reply
`{"id": int, "ok": true, "data": ...}` or `{"id": int, "ok": false, "error": str}`.

A process that sleeps on a doorbell (ipc/doorbell.py) between batches would answer a request
only when its sleep slice ends (`wait.sleep_ms`). Its server therefore names the doorbell in
`<name>.bell` beside the socket, and a client rings it after each request (`Knock`), so the
process wakes, polls its control socket and answers at once.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import posix_ipc
import zmq

from ipc.doorbell import Doorbell
from ipc.errors import IpcError

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Any]
"""A command handler: gets the request's args, returns JSON-able data or raises ControlError."""

MAX_IPC_PATH = 107
"""Unix socket paths are limited to 108 bytes including the NUL (sun_path)."""


class ControlError(IpcError):
    """A control request failed: the server refused it, or answered with an error."""


class ControlTimeout(ControlError, TimeoutError):
    """No answer within the deadline (the process is dead, busy or not started yet)."""


def control_endpoint(run_dir: str | Path, name: str) -> str:
    """The endpoint of process `name`'s control socket; refuses paths a Unix socket cannot bind."""
    path = os.path.abspath(os.path.join(run_dir, f"{name}.ctl"))
    if len(path.encode()) > MAX_IPC_PATH:
        raise ControlError(f"control socket path too long ({len(path)} > {MAX_IPC_PATH}): {path}")
    return f"ipc://{path}"


def doorbell_file(endpoint: str) -> Path | None:
    """Where the server at `endpoint` names its process's doorbell (ipc:// endpoints only)."""
    if not endpoint.startswith("ipc://"):
        return None
    return Path(endpoint[len("ipc://") :]).with_suffix(".bell")


class Knock:
    """Rings the doorbell of the process behind a control endpoint, if it has one.

    The doorbell file is re-read when it changes (a restarted process writes it anew and may
    have a new semaphore); a missing file or semaphore means there is nobody to wake.
    """

    def __init__(self, endpoint: str) -> None:
        self._path = doorbell_file(endpoint)
        self._stamp: tuple[int, int] | None = None
        self._doorbell: Doorbell | None = None

    def ring(self) -> None:
        if self._path is None:
            return
        try:
            stat = self._path.stat()
        except OSError:
            self.close()
            return
        if (stat.st_ino, stat.st_mtime_ns) != self._stamp:
            self.close()
            try:
                self._doorbell = Doorbell.attach(self._path.read_text().strip())
            except (OSError, ValueError, posix_ipc.Error):
                return
            self._stamp = (stat.st_ino, stat.st_mtime_ns)
        if self._doorbell is not None:
            self._doorbell.ring()

    def close(self) -> None:
        if self._doorbell is not None:
            self._doorbell.close()
        self._doorbell, self._stamp = None, None


class ControlServer:
    """Answers control requests; register handlers, then call `poll()` from the main loop."""

    def __init__(
        self, context: zmq.Context[Any], endpoint: str, doorbell: str | None = None
    ) -> None:
        """`doorbell`: the semaphore the process sleeps on, for clients to ring (`Knock`)."""
        self.endpoint = endpoint
        self._doorbell_file = doorbell_file(endpoint) if doorbell else None
        self._handlers: dict[str, Handler] = {}
        self._socket: zmq.Socket[Any] = context.socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.ROUTER_MANDATORY, 0)
        if endpoint.startswith("ipc://"):
            Path(endpoint[len("ipc://") :]).unlink(missing_ok=True)
        self._socket.bind(endpoint)
        if self._doorbell_file is not None and doorbell:
            written = self._doorbell_file.with_suffix(".bell.tmp")
            written.write_text(f"{doorbell}\n")
            written.replace(self._doorbell_file)  # a client never reads half a name
        self.register("ping", lambda _args: "pong")
        self.register("help", lambda _args: sorted(self._handlers))

    @property
    def socket(self) -> zmq.Socket[Any]:
        """For a zmq.Poller that waits on this socket and others at once."""
        return self._socket

    def register(self, command: str, handler: Handler) -> None:
        self._handlers[command] = handler

    def poll(self, timeout_ms: int = 0, max_requests: int = 64) -> int:
        """Answer the waiting requests (at most `max_requests`); returns how many were answered.

        With the default timeout of 0 it returns at once when nothing is waiting.
        """
        answered = 0
        if not self._socket.poll(timeout_ms, zmq.POLLIN):
            return 0
        while answered < max_requests:
            try:
                frames = self._socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            self._answer(frames)
            answered += 1
        return answered

    def _answer(self, frames: list[bytes]) -> None:
        if len(frames) < 2:
            log.warning("control: dropped a malformed message of %d frames", len(frames))
            return
        envelope, body = frames[:-1], frames[-1]
        request_id: Any = None
        try:
            request = orjson.loads(body)
            if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
                raise ControlError("a request is a JSON object with a string 'cmd'")
            request_id = request.get("id")
            args = request.get("args") or {}
            if not isinstance(args, dict):
                raise ControlError("'args' must be a JSON object")
            handler = self._handlers.get(request["cmd"])
            if handler is None:
                raise ControlError(
                    f"unknown command {request['cmd']!r}; known: {sorted(self._handlers)}"
                )
            reply = {"id": request_id, "ok": True, "data": handler(args)}
        except (ControlError, orjson.JSONDecodeError) as exc:
            reply = {"id": request_id, "ok": False, "error": str(exc)}
        except Exception as exc:
            log.exception("control: handler failed on %r", body[:200])
            reply = {"id": request_id, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
        try:
            payload = orjson.dumps(reply, option=orjson.OPT_NON_STR_KEYS)
        except TypeError as exc:
            payload = orjson.dumps(
                {"id": request_id, "ok": False, "error": f"unserializable: {exc}"}
            )
        self._socket.send_multipart([*envelope, payload], zmq.NOBLOCK)

    def close(self) -> None:
        self._socket.close(linger=0)
        if self.endpoint.startswith("ipc://"):
            Path(self.endpoint[len("ipc://") :]).unlink(missing_ok=True)
        if self._doorbell_file is not None:
            self._doorbell_file.unlink(missing_ok=True)


class ControlClient:
    """Sends control requests to one process; every call has a deadline and never hangs."""

    def __init__(
        self, endpoint: str, timeout: float = 2.0, context: zmq.Context[Any] | None = None
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._context = context or zmq.Context.instance()
        self._ids = itertools.count(1)
        self._socket: zmq.Socket[Any] = self._context.socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.connect(endpoint)
        self._knock = Knock(endpoint)

    def request(self, command: str, timeout: float | None = None, **args: Any) -> Any:
        """Send `command` with `args`; return the reply's data.

        Raises ControlTimeout when no answer arrives in time, ControlError when the server
        answers with an error (unknown command, bad arguments, a failing handler).
        """
        request_id = next(self._ids)
        body = orjson.dumps({"id": request_id, "cmd": command, "args": args})
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        try:
            self._socket.send_multipart([b"", body], zmq.NOBLOCK)
        except zmq.Again:
            raise ControlTimeout(f"{self.endpoint}: cannot send {command!r}") from None
        self._knock.ring()
        while True:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0 or not self._socket.poll(remaining_ms, zmq.POLLIN):
                raise ControlTimeout(f"{self.endpoint}: no answer to {command!r} in time")
            reply = orjson.loads(self._socket.recv_multipart()[-1])
            if reply.get("id") != request_id:
                continue
            if not reply.get("ok"):
                raise ControlError(f"{command!r}: {reply.get('error')}")
            return reply.get("data")

    def close(self) -> None:
        self._socket.close(linger=0)
        self._knock.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def call(endpoint: str, command: str, timeout: float = 2.0, **args: Any) -> Any:
    """One request on a short-lived client (for tools and the supervisor's probes)."""
    with ControlClient(endpoint, timeout=timeout) as client:
        return client.request(command, **args)
