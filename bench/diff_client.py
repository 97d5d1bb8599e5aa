"""A minimal DIFF client for the fan-out benchmark: just enough WebSocket to time quotes.

A thousand aiohttp clients on the exchange's two cores would measure the clients: aiohttp's
client costs tens of microseconds of Python per message and the JSON parse of a quote as much
again. This one is an `asyncio.Protocol` that reads the server's (unmasked) frames itself,
finds each quote's `datetime` by a byte search instead of parsing the JSON, and answers every
`rtn_data` with a `peek_message` masked once per connection. The receive time is read once per
socket read, before any of the read's frames are looked at.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import Callable

HANDSHAKE_END = b"\r\n\r\n"
DATETIME = b'"datetime":"'
DATETIME_LENGTH = len("2025-01-01 00:00:00.000000")
INS_LIST = b'"ins_list":"'
TEXT, CLOSE, PING = 0x1, 0x8, 0x9

Stamp = Callable[[bytes], int]
"""A quote `datetime` (bytes) → ns UTC; 0 for the placeholder of a quote with no market yet."""
Record = Callable[[int], None]
"""Takes one latency in ns."""


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


class DiffClient(asyncio.Protocol):
    """One `/ws/diff` connection subscribed to `symbol`: records receive − quote time per quote
    once the subscription is echoed (`on_ready`), peeks after every `rtn_data`."""

    def __init__(
        self, host: str, symbol: str, on_ready: Callable[[], None], stamp: Stamp, record: Record
    ) -> None:
        self._host = host
        self._subscribe = masked_frame(
            TEXT, b'{"aid":"subscribe_quote","ins_list":"' + symbol.encode() + b'"}'
        )
        self._peek = masked_frame(TEXT, b'{"aid":"peek_message"}')
        self._on_ready = on_ready
        self._stamp = stamp
        self._record = record
        self._transport: asyncio.Transport | None = None
        self._buffer = b""
        self._upgraded = False
        self.ready = False
        self.closed = asyncio.get_running_loop().create_future()
        self.quotes = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        key = base64.b64encode(os.urandom(16))
        transport.write(
            b"GET /ws/diff HTTP/1.1\r\nHost: " + self._host.encode() + b"\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        buffer = self._buffer + data if self._buffer else data
        if not self._upgraded:
            end = buffer.find(HANDSHAKE_END)
            if end < 0:
                self._buffer = buffer
                return
            if b" 101 " not in buffer[:end]:
                raise ConnectionError(buffer[:end].decode(errors="replace"))
            self._upgraded = True
            buffer = buffer[end + len(HANDSHAKE_END) :]
            self._write(self._subscribe + self._peek)
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
                self._on_text(payload, now)
            elif opcode == PING:
                self._write(masked_frame(0xA, payload))
            elif opcode == CLOSE:
                self.close()
                return
        self._buffer = buffer[start:]

    def _on_text(self, payload: bytes, now: int) -> None:
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
                    self._record(now - stamp)
                at = payload.find(DATETIME, at)
        self._write(self._peek)

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)
