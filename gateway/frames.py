"""WebSocket text frames written straight to the connection's transport, many per write.

aiohttp's `send_str` makes one frame and one `transport.write` (one `send` system call) per
message, and encodes per call. The edge encodes a push once and shares its bytes with every
connection that gets it, then writes everything a connection has queued in one call here. Server
frames are unmasked (RFC 6455 §5.1) and the endpoints do not negotiate compression, so a frame is
a 2-, 4- or 10-byte header and the payload. Writes are atomic per call, so aiohttp's own ping,
pong and close frames never split one of ours.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Sequence

from aiohttp import web

_TEXT_FIN = 0x81
_SHORT = struct.Struct("!BB")
_MEDIUM = struct.Struct("!BBH")
_LONG = struct.Struct("!BBQ")


def frame_header(length: int) -> bytes:
    """The header of one unmasked, final text frame carrying `length` payload bytes."""
    if length < 126:
        return _SHORT.pack(_TEXT_FIN, length)
    if length < 65536:
        return _MEDIUM.pack(_TEXT_FIN, 126, length)
    return _LONG.pack(_TEXT_FIN, 127, length)


class FrameWriter:
    """One connection's transport: `write` queues frames now; `drained` waits out a full buffer."""

    def __init__(self, request: web.Request) -> None:
        self._transport: asyncio.Transport | None = request.transport
        self._protocol = request.protocol

    @property
    def closing(self) -> bool:
        return self._transport is None or self._transport.is_closing()

    @property
    def paused(self) -> bool:
        """The kernel buffer is full and asyncio's is above its high-water mark."""
        return self._protocol.writing_paused

    def write(self, payloads: Sequence[bytes]) -> bool:
        """Every payload as its own text frame, in one transport write; False once closing."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return False
        parts: list[bytes] = []
        for payload in payloads:
            parts.append(frame_header(len(payload)))
            parts.append(payload)
        transport.write(b"".join(parts))
        return True

    def write_framed(self, frames: bytes) -> bool:
        """Bytes that are already whole frames (built once, shared), in one transport write."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return False
        transport.write(frames)
        return True

    async def drained(self) -> None:
        """Return once the transport takes writes again (at once when it is not paused)."""
        if self._protocol.writing_paused and not self.closing:
            await self._protocol._drain_helper()  # aiohttp's flow control; no public wrapper
