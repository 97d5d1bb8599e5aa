"""Market-data broadcast over ZeroMQ PUB/SUB: topics `md.<instrument>.<type>`, orjson bodies.

Each message is two frames, the topic and the JSON body, so subscribers filter by topic prefix
without parsing bodies. High-water marks bound every queue: when a subscriber falls behind,
ZeroMQ drops its messages at the publisher (PUB never blocks); a subscriber that wants state,
not history, conflates with `Subscriber.latest()`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import orjson
import zmq

_MORE = int(zmq.SNDMORE | zmq.NOBLOCK)
_LAST = int(zmq.NOBLOCK)
"""Plain int flags: pyzmq's send_multipart rebuilds the flag enums on every call (half its cost)."""

TOPIC_TYPES = ("tick", "book", "quote", "kline")
"""Message types; K-lines carry their period: `kline.60`."""


def topic(instrument: str, kind: str, seconds: int | None = None) -> str:
    """`md.<instrument>.<kind>`, or `md.<instrument>.kline.<seconds>` for K-lines."""
    if kind not in TOPIC_TYPES:
        raise ValueError(f"unknown market-data type {kind!r}; known: {TOPIC_TYPES}")
    if (kind == "kline") != (seconds is not None):
        raise ValueError("a K-line topic needs its period in seconds, and only a K-line has one")
    suffix = f"kline.{seconds}" if seconds is not None else kind
    return f"md.{instrument}.{suffix}"


def parse_topic(name: str) -> tuple[str, str, int | None]:
    """(instrument, type, seconds) from a topic; instrument ids contain one dot (`CFFEX.IF2501`)."""
    if not name.startswith("md."):
        raise ValueError(f"not a market-data topic: {name!r}")
    rest = name[3:]
    for kind in ("tick", "book", "quote"):
        if rest.endswith(f".{kind}"):
            return rest[: -len(kind) - 1], kind, None
    head, _sep, seconds = rest.rpartition(".kline.")
    if head and seconds.isdigit():
        return head, "kline", int(seconds)
    raise ValueError(f"not a market-data topic: {name!r}")


class Publisher:
    """Binds a PUB socket; `publish` never blocks: a full subscriber queue drops, never waits."""

    def __init__(self, context: zmq.Context[Any], endpoint: str, send_hwm: int = 10_000) -> None:
        self._socket: zmq.Socket[Any] = context.socket(zmq.PUB)
        self._socket.setsockopt(zmq.SNDHWM, send_hwm)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.bind(endpoint)
        self.dropped = 0

    @property
    def endpoint(self) -> str:
        """The bound address (with the real port when bound to port 0 / `*`)."""
        return str(self._socket.getsockopt_string(zmq.LAST_ENDPOINT))

    def publish(self, name: str, body: Any) -> None:
        """Send one message; counts (does not raise on) the rare case ZeroMQ refuses it.

        Two sends make one message: libzmq delivers or drops a multipart message whole."""
        send = self._socket.send
        try:
            send(name.encode(), _MORE)
            send(orjson.dumps(body), _LAST)
        except zmq.Again:
            self.dropped += 1

    def close(self) -> None:
        self._socket.close(linger=0)


class Subscriber:
    """Connects a SUB socket to one or more publishers and yields (topic, body) pairs.

    `recv_hwm` bounds the queue; ZeroMQ drops what does not fit. ZMQ_CONFLATE cannot carry
    two-frame messages, so conflation is done here instead: `latest()` drains the queue and keeps
    only the newest body per topic, which is what a state view (book, quote) wants.
    """

    def __init__(
        self,
        context: zmq.Context[Any],
        endpoints: Iterable[str],
        topics: Iterable[str] = ("md.",),
        recv_hwm: int = 10_000,
    ) -> None:
        self._socket: zmq.Socket[Any] = context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.RCVHWM, recv_hwm)
        for prefix in topics:
            self._socket.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        for endpoint in endpoints:
            self._socket.connect(endpoint)

    @property
    def socket(self) -> zmq.Socket[Any]:
        return self._socket

    def receive(self, timeout: float) -> tuple[str, Any] | None:
        """The next (topic, body), or None if nothing arrives within `timeout` seconds."""
        if not self._socket.poll(int(timeout * 1000), zmq.POLLIN):
            return None
        name, payload = self._socket.recv_multipart()
        return name.decode(), orjson.loads(payload)

    def receive_many(self, timeout: float, max_messages: int = 1000) -> list[tuple[str, Any]]:
        """Everything waiting (up to `max_messages`), waiting at most `timeout` for the first."""
        out: list[tuple[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(out) < max_messages:
            item = self.receive(max(0.0, deadline - time.monotonic()) if not out else 0.0)
            if item is None:
                break
            out.append(item)
        return out

    def latest(self, timeout: float, max_messages: int = 10_000) -> dict[str, Any]:
        """The newest body per topic among the waiting messages (conflation for state views)."""
        return dict(self.receive_many(timeout, max_messages))

    def close(self) -> None:
        self._socket.close(linger=0)
