"""Peeks answered where they are read: a DIFF client's `peek_message` skips aiohttp's machinery.

A DIFF client peeks after every `rtn_data`, so a quote fanned out to N clients comes back as N
peeks. Through aiohttp each one costs a parsed message, a queue entry, a future, a task step and
a heartbeat timer reset: more than sending the quote did. `PeekShortcut` stands in front of
aiohttp's WebSocket parser on one connection. A socket read that is nothing but whole masked
peek frames, read at a frame boundary while the connection has nothing unread or in progress,
is answered at once (`on_peek`) and never reaches aiohttp; every other read goes to aiohttp
unchanged and the shortcut only follows the frame boundaries in it, so messages are still
handled in the order they were sent. aiohttp's heartbeat is told of shortcut reads once per
half period: it pings a peer it has not heard from for a whole period, so a peeking client is
never pinged, and a silent one is pinged as before.

This leans on aiohttp 3.14 internals (`RequestHandler._payload_parser`, `_data_received_cb`,
`_message_tail`, the reader queue's `_buffer`, `WebSocketResponse._post_start`); where any is
missing the shortcut is not installed and every frame takes aiohttp's path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

PEEK = b'{"aid":"peek_message"}'
_PEEK_HEAD = bytes((0x81, 0x80 | len(PEEK)))
_PEEK_FRAME = 2 + 4 + len(PEEK)
_PEEK_BITS = int.from_bytes(PEEK, "big")


class DiffResponse(web.WebSocketResponse):
    """A WebSocketResponse that remembers what its parser was fed before anyone could see it
    (bytes the client sent right behind its handshake)."""

    handshake_tail: bytes | None = None

    def _post_start(self, request: web.BaseRequest, protocol: Any, writer: Any) -> None:
        self.handshake_tail = getattr(request.protocol, "_message_tail", None)
        super()._post_start(request, protocol, writer)


class FrameBoundary:
    """Follows client frames (masked, RFC 6455 §5.2) through reads: are we between frames?"""

    def __init__(self) -> None:
        self._skip = 0
        self._head = b""

    @property
    def at_boundary(self) -> bool:
        return self._skip == 0 and not self._head

    def feed(self, data: bytes) -> None:
        if self._skip >= len(data):
            self._skip -= len(data)
            return
        buffer = self._head + data[self._skip :] if self._head else data[self._skip :]
        position, size = 0, len(buffer)
        while position < size:
            if size - position < 2:
                break
            second = buffer[position + 1]
            length, head = second & 0x7F, 2 + (4 if second & 0x80 else 0)
            extra = 2 if length == 126 else 8 if length == 127 else 0
            if size - position < head + extra:
                break
            if extra:
                length = int.from_bytes(buffer[position + 2 : position + 2 + extra], "big")
            position += head + extra + length
        if position >= size:
            self._skip, self._head = position - size, b""
        else:
            self._skip, self._head = 0, buffer[position:]


def _masked_peek(mask: bytes) -> bytes:
    """The payload bytes of a peek frame masked with `mask` (RFC 6455 §5.3)."""
    key = int.from_bytes((mask * 6)[: len(PEEK)], "big")
    return (_PEEK_BITS ^ key).to_bytes(len(PEEK), "big")


class PeekShortcut:
    """aiohttp's parser for one connection, with peeks taken out in front of it."""

    def __init__(
        self,
        parser: Any,
        unread: Any,
        heard: Callable[[], None] | None,
        on_peek: Callable[[], None],
        busy: Callable[[], bool],
        heard_every_s: float,
    ) -> None:
        self._parser = parser
        self._unread = unread
        self._heard = heard
        self._heard_at = 0.0
        self._heard_every_s = heard_every_s
        self._on_peek = on_peek
        self._busy = busy
        self.boundary = FrameBoundary()
        self.taken = 0
        self._mask = b""
        self._masked = b""

    def _only_peeks(self, data: bytes) -> bool:
        """Whether `data` is whole masked peek frames and nothing else."""
        size = len(data)
        if size == 0 or size % _PEEK_FRAME:
            return False
        for start in range(0, size, _PEEK_FRAME):
            if data[start : start + 2] != _PEEK_HEAD:
                return False
            mask = data[start + 2 : start + 6]
            if mask != self._mask:
                self._mask, self._masked = mask, _masked_peek(mask)
            if data[start + 6 : start + _PEEK_FRAME] != self._masked:
                return False
        return True

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if (
            self.boundary.at_boundary
            and not self._unread._buffer
            and not self._busy()
            and self._only_peeks(data)
        ):
            self.taken += len(data) // _PEEK_FRAME
            if self._heard is not None:
                now = time.monotonic()
                if now - self._heard_at >= self._heard_every_s:
                    self._heard_at = now
                    self._heard()
            self._on_peek()
            return False, b""
        self.boundary.feed(data)
        if self._heard is not None:
            self._heard()
        result: tuple[bool, bytes] = self._parser.feed_data(data)
        return result

    def feed_eof(self) -> None:
        self._parser.feed_eof()


def install(
    ws: DiffResponse,
    request: web.Request,
    on_peek: Callable[[], None],
    busy: Callable[[], bool],
    heartbeat_s: float,
) -> PeekShortcut | None:
    """Put a `PeekShortcut` in front of a prepared response's parser; None if aiohttp's
    internals are not what this was written against."""
    protocol = request.protocol
    parser = getattr(protocol, "_payload_parser", None)
    unread = getattr(ws, "_reader", None)
    if (
        ws.handshake_tail is None
        or parser is None
        or not hasattr(protocol, "_data_received_cb")
        or not hasattr(unread, "_buffer")
    ):
        log.warning("aiohttp internals changed: DIFF peeks take aiohttp's path")
        return None
    heard = protocol._data_received_cb
    shortcut = PeekShortcut(parser, unread, heard, on_peek, busy, heartbeat_s / 2)
    shortcut.boundary.feed(ws.handshake_tail)
    protocol._payload_parser = shortcut
    protocol._data_received_cb = None
    return shortcut
