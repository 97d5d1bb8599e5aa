"""Minimal DIFF clients for the fan-out benchmark: just enough WebSocket to time quotes.

A thousand aiohttp clients on the exchange's two cores would measure the clients: aiohttp's
client costs tens of microseconds of Python per message, asyncio's transports a few more, and
the JSON parse of a quote as much again. Here one worker process drives its clients from one
`epoll` loop over plain non-blocking sockets: a client (`DiffClient`, no I/O of its own) reads
the server's unmasked frames, finds each quote's `datetime` by a byte search instead of parsing
the JSON, and answers every `rtn_data` with a `peek_message` masked once per connection. Each
quote gets two times: the client's clock right after the socket read that brought it (what a
client sees), and the kernel's receive timestamp of that read (`SO_TIMESTAMPNS`: when the
gateway's write reached the socket, whatever the client's own scheduling did afterwards).
"""

from __future__ import annotations

import base64
import os
import select
import socket
import struct
import time
from collections.abc import Callable
from multiprocessing.connection import Connection

HANDSHAKE_END = b"\r\n\r\n"
DATETIME = b'"datetime":"'
DATETIME_LENGTH = len("2025-01-01 00:00:00.000000")
INS_LIST = b'"ins_list":"'
TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA
READ_SIZE = 1 << 16
SO_TIMESTAMPNS = 35
"""Linux's SO_TIMESTAMPNS (and its control message type): the socket module lacks the name."""
TIMESPEC = struct.Struct("@qq")
ANCILLARY_SPACE = socket.CMSG_SPACE(TIMESPEC.size)

Stamp = Callable[[bytes], int]
"""A quote `datetime` (bytes) → ns UTC; 0 for the placeholder of a quote with no market yet."""
Record = Callable[[int, int], None]
"""Takes one quote's latency in ns to the client, and to its socket."""


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """A client frame (final, masked with a fresh key), as RFC 6455 §5.3 requires of clients."""
    key = os.urandom(4)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    length = len(payload)
    if length < 126:
        head = bytes((0x80 | opcode, 0x80 | length))
    elif length < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + length.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + length.to_bytes(8, "big")
    return head + key + body


class DiffClient:
    """One `/ws/diff` connection subscribed to `symbol`, without I/O: `feed` takes what the
    socket read and returns what to send back. Once the subscription is echoed (`on_ready`)
    it records receive − quote time for every quote (read and arrival)."""

    def __init__(
        self, host: str, symbol: str, on_ready: Callable[[], None], stamp: Stamp, record: Record
    ) -> None:
        self.handshake = (
            b"GET /ws/diff HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16)) + b"\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        self._subscribe = masked_frame(
            TEXT, b'{"aid":"subscribe_quote","ins_list":"' + symbol.encode() + b'"}'
        )
        self._peek = masked_frame(TEXT, b'{"aid":"peek_message"}')
        self._on_ready = on_ready
        self._stamp = stamp
        self._record = record
        self._buffer = b""
        self._upgraded = False
        self.ready = False
        self.closed = False
        self.quotes = 0

    def feed(self, data: bytes, now: int, arrived: int) -> bytes:
        """Bytes read at `now` that reached the socket at `arrived` (ns) → the bytes to send
        back (possibly none)."""
        buffer = self._buffer + data if self._buffer else data
        out = b""
        if not self._upgraded:
            end = buffer.find(HANDSHAKE_END)
            if end < 0:
                self._buffer = buffer
                return out
            if b" 101 " not in buffer[:end]:
                raise ConnectionError(buffer[:end].decode(errors="replace"))
            self._upgraded = True
            buffer = buffer[end + len(HANDSHAKE_END) :]
            out = self._subscribe + self._peek
        start, size = 0, len(buffer)
        while size - start >= 2:
            opcode, length = buffer[start] & 0x0F, buffer[start + 1] & 0x7F
            head = 2
            if length == 126:
                head, length = 4, int.from_bytes(buffer[start + 2 : start + 4], "big")
            elif length == 127:
                head, length = 10, int.from_bytes(buffer[start + 2 : start + 10], "big")
            end = start + head + length
            if end > size:
                break
            payload = buffer[start + head : end]
            start = end
            if opcode == TEXT:
                self._on_text(payload, now, arrived)
                out += self._peek
            elif opcode == PING:
                out += masked_frame(PONG, payload)
            elif opcode == CLOSE:
                self.closed = True
                return out
        self._buffer = buffer[start:]
        return out

    def _on_text(self, payload: bytes, now: int, arrived: int) -> None:
        if not self.ready and INS_LIST in payload:
            self.ready = True
            self._on_ready()
        if self.ready:
            at = payload.find(DATETIME)
            while at >= 0:
                at += len(DATETIME)
                stamp = self._stamp(payload[at : at + DATETIME_LENGTH])
                if stamp > 0:
                    self.quotes += 1
                    self._record(now - stamp, arrived - stamp)
                at = payload.find(DATETIME, at)


class ClientLoop:
    """Many `DiffClient`s on non-blocking sockets under one epoll, plus a control pipe."""

    def __init__(self, host: str, port: int, control: Connection) -> None:
        self._address = (host, port)
        self._control = control
        self._poll = select.epoll()
        self._poll.register(control.fileno(), select.EPOLLIN)
        self._clients: dict[int, tuple[socket.socket, DiffClient]] = {}

    @property
    def clients(self) -> list[DiffClient]:
        return [client for _, client in self._clients.values()]

    def connect(self, client: DiffClient) -> None:
        sock = socket.create_connection(self._address, timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.sendall(client.handshake)
        sock.setblocking(False)
        self._clients[sock.fileno()] = (sock, client)
        self._poll.register(sock.fileno(), select.EPOLLIN)

    def run(self, timeout_s: float, until: Callable[[], bool] | None = None) -> object:
        """Serve the clients until the control pipe has a message (returned) or `until()`."""
        deadline = time.monotonic() + timeout_s
        control = self._control.fileno()
        while time.monotonic() < deadline:
            if until is not None and until():
                return None
            for fd, _ in self._poll.poll(1.0):
                if fd == control:
                    return self._control.recv()
                self._serve(fd)
        raise TimeoutError("the fan-out benchmark stopped talking to its clients")

    def close(self) -> None:
        for sock, _ in self._clients.values():
            sock.close()
        self._clients.clear()
        self._poll.close()

    def _serve(self, fd: int) -> None:
        sock, client = self._clients[fd]
        try:
            data, ancillary, _, _ = sock.recvmsg(READ_SIZE, ANCILLARY_SPACE)
        except BlockingIOError:
            return
        now = time.time_ns()
        if not data:
            self._drop(fd)
            return
        arrived = now
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                seconds, nanoseconds = TIMESPEC.unpack(value[: TIMESPEC.size])
                arrived = seconds * 1_000_000_000 + nanoseconds
        out = client.feed(data, now, arrived)
        if out:
            sock.sendall(out)
        if client.closed:
            self._drop(fd)

    def _drop(self, fd: int) -> None:
        sock, _ = self._clients.pop(fd)
        self._poll.unregister(fd)
        sock.close()
