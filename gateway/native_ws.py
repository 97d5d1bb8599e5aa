"""`/ws`: the native JSON protocol (reference part 2 §6), one `NativeConnection` per socket.

A connection's requests are pipelined: orders, cancels and queries run concurrently, up to
`ws_max_in_flight` at once (the reader stops reading beyond that, which is TCP back-pressure),
while their answers leave in request order (`InOrder`), as the protocol's answers carry no
request id. `auth`, `ping` and (un)subscribe take effect at once, in order with the rest.
Pushes are encoded once per event or market update and the same bytes go to every connection
that gets them; everything a connection has queued goes out in one write (`FrameWriter`) from
its `Outbox`, drained by its own sender task, so a slow reader fills only its own queue. The
server pings every `ws_heartbeat_s` and closes a connection silent for `ws_idle_timeout_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Collection, Hashable, Sequence
from typing import Any

from aiohttp import WSMsgType, web

from engine.codes import ResultCode
from gateway.auth import Principal, authorize
from gateway.backend import (
    AccountEvent,
    Answer,
    CancelOrder,
    EventKind,
    MarketUpdate,
    Unsubscribe,
)
from gateway.commands import place_order, place_order_fast
from gateway.decoding import decode_frame
from gateway.edge import Edge
from gateway.encoding import to_json
from gateway.errors import Rejected, ws_error
from gateway.frames import FrameWriter
from gateway.in_order import InOrder
from gateway.once import OncePer
from gateway.outbox import Outbox, Priority
from gateway.requests import (
    CANCEL_ORDER,
    SUBMIT_ORDER,
    WS_AUTH,
    WS_QUERY_ACCOUNT,
    WS_QUERY_ORDER,
    WS_QUERY_POSITION,
    WS_SUBSCRIBE,
)
from gateway.views import CHANNELS, EVENT_CHANNELS, MARKET_CHANNELS, event_message, market_message

log = logging.getLogger(__name__)

ENVELOPE_KEYS = frozenset({"type", "user_id"})
"""Keys every message may carry besides its schema's (the user comes from the token)."""

OPEN_TYPES = frozenset({"auth", "ping"})
"""Message types allowed before `auth`."""

SLOW_READER_CLOSE = 1013
"""WebSocket close code when the outbox overflows ("try again later")."""

ORDER_ACCEPTED = (
    b'{"type":"order_response","success":true,"order_id":%d,"error_code":null,"error_message":null}'
)
"""An accepted order's answer, as `_order_response` encodes it, from a template."""

Message = dict[str, Any]
Prepared = tuple[bytes, Priority, Hashable | None]


def native_endpoint(edge: Edge) -> Callable[[web.Request], Awaitable[web.WebSocketResponse]]:
    async def endpoint(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(
            heartbeat=edge.config.ws_heartbeat_s,
            max_msg_size=2 * edge.config.ws_frame_limit,
            compress=False,
        )
        await ws.prepare(request)
        await NativeConnection(edge, ws, FrameWriter(request)).run()
        return ws

    return endpoint


class _Push:
    """One account event for a user's sockets: its channel now, its bytes when first wanted."""

    __slots__ = ("_prepared", "channel", "event")

    def __init__(self, event: AccountEvent) -> None:
        self.channel = EVENT_CHANNELS[event.kind]
        self.event = event
        self._prepared: Prepared | None = None

    def prepared(self) -> Prepared:
        if self._prepared is None:
            message, priority, key = event_message(self.event)
            self._prepared = (to_json(message), priority, key)
        return self._prepared


def _prepare_events(events: Sequence[AccountEvent]) -> list[_Push]:
    """A user's events, encoded at most once for all the user's sockets (and only if wanted)."""
    return [_Push(event) for event in events]


def _prepare_market(update: MarketUpdate) -> tuple[bytes, Hashable | None]:
    message, key = market_message(update)
    return to_json(message), key


_shared_events = OncePer(_prepare_events)
_shared_market = OncePer(_prepare_market)


class NativeConnection:
    def __init__(self, edge: Edge, ws: web.WebSocketResponse, writer: FrameWriter) -> None:
        self.edge = edge
        self.ws = ws
        self.writer = writer
        self.key: Hashable = id(self)
        self.principal: Principal | None = None
        self.outbox = Outbox(
            edge.config.outbox_max_messages, edge.config.outbox_max_bytes, self._on_outbox
        )
        self._flushing = False
        self._stalled = False
        """The sender task writes (the transport was paused, or the outbox closed)."""
        self._stall = asyncio.Event()
        self.channels: set[str] = set()
        self._event_feed: Unsubscribe | None = None
        self._market_feeds: dict[str, Unsubscribe] = {}
        self._answers = InOrder(self._release)
        self._window = edge.config.ws_max_in_flight
        self._open = 0
        """Requests read and not yet answered (orders and queries), at most `_window`."""
        self._room = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._heard = 0.0
        self._idle: asyncio.TimerHandle | None = None
        self._closing: asyncio.Task[bool] | None = None
        self._immediate: dict[str, Callable[[Message], Message | Awaitable[Message]]] = {
            "auth": self._auth,
            "ping": self._ping,
            "subscribe": self._subscribe,
            "unsubscribe": self._unsubscribe,
        }
        self._orders: dict[str, Callable[[Message, Principal, int], None]] = {
            "submit_order": self._submit_order,
        }
        self._concurrent: dict[str, Callable[[Message, Principal], Awaitable[Message]]] = {
            "cancel_order": self._cancel_order,
            "query_order": self._query_order,
            "query_account": self._query_account,
            "query_position": self._query_position,
        }

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        sender = asyncio.create_task(self._send_loop())
        self._heard = loop.time()
        self._watch_idle()
        try:
            while not self.ws.closed and not self.outbox.closed:
                while self._open >= self._window:  # a full window: stop reading
                    self._room.clear()
                    await self._room.wait()
                frame = await self.ws.receive()
                self._heard = loop.time()
                if frame.type is WSMsgType.TEXT:
                    self._on_text(frame.data)
                elif frame.type is WSMsgType.BINARY:
                    self._error(ResultCode.BAD_MESSAGE, "binary frames are not accepted")
                elif frame.type is WSMsgType.ERROR:
                    self._error(ResultCode.PAYLOAD_TOO_LARGE, "frame refused")
                    break
                else:
                    break
        finally:
            if self._idle is not None:
                self._idle.cancel()
            self._stop_feeds()
            for task in self._in_flight:
                task.cancel()
            await asyncio.gather(*self._in_flight, return_exceptions=True)
            self.outbox.close()
            try:
                await asyncio.wait_for(sender, self.edge.config.ws_heartbeat_s)
            except TimeoutError:
                log.info("a /ws sender did not finish in time; dropped")
            self.edge.limiter.forget_connection(self.key)

    def _watch_idle(self) -> None:
        """Close a connection silent for `ws_idle_timeout_s`: one timer per silence period,
        re-armed from the last frame heard, rather than a timeout around every receive."""
        self._idle = None
        if self.ws.closed:
            return
        loop = asyncio.get_running_loop()
        deadline = self._heard + self.edge.config.ws_idle_timeout_s
        if loop.time() >= deadline:
            self._closing = loop.create_task(self.ws.close(code=1001, message=b"idle"))
            return
        self._idle = loop.call_at(deadline, self._watch_idle)

    def _on_outbox(self) -> None:
        """Something to send (or the outbox closed): written at the end of this loop turn,
        everything queued by then in one write, unless the sender task has taken over."""
        if not self._flushing and not self._stalled:
            self._flushing = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Write what is queued; a paused transport (a slow reader) or a closed outbox is left
        to the sender task, and the outbox fills meanwhile (then drops, then closes)."""
        self._flushing = False
        if self._stalled:
            return
        if self.outbox.closed or self.writer.paused:
            self._stalled = True
            self._stall.set()
            return
        batch = self.outbox.take()
        if batch and not self.writer.write(batch):
            self._stalled = True
            self._stall.set()

    async def _send_loop(self) -> None:
        """Takes over from `_flush` while the transport is paused: waits for it to drain,
        writes what queued meanwhile, hands back once it takes writes again; once the outbox
        closes, writes the rest and closes the socket (1013 after an overflow)."""
        writer, outbox = self.writer, self.outbox
        with contextlib.suppress(ConnectionError):
            while True:
                await self._stall.wait()
                await writer.drained()
                batch = outbox.take()
                if (batch and not writer.write(batch)) or outbox.closed:
                    break
                if not writer.paused:
                    self._stall.clear()
                    self._stalled = False
        if not self.ws.closed:
            if outbox.overflowed:
                log.info("closing a slow /ws reader: %d messages dropped", outbox.dropped)
                await self.ws.close(code=SLOW_READER_CLOSE, message=b"send queue overflow")
            else:
                await self.ws.close()

    def _on_text(self, text: str) -> None:
        """Dispatch one request (the reader waits for room in the window before reading)."""
        place = self._answers.reserve()
        try:
            user_id = self.principal.user_id if self.principal else None
            self.edge.limiter.check(self.key, user_id)
            message = decode_frame(text, self.edge.config.ws_frame_limit)
            kind = message.get("type")
            if not isinstance(kind, str):
                kind = None
            immediate = self._immediate.get(kind) if kind else None
            order = self._orders.get(kind) if kind else None
            handler = self._concurrent.get(kind) if kind else None
            if immediate is None and order is None and handler is None:
                raise Rejected(ResultCode.BAD_MESSAGE, f"unknown message type {kind!r:.40}")
            if self.principal is None and kind not in OPEN_TYPES:
                raise Rejected(ResultCode.NOT_AUTHENTICATED, "send auth first")
            if immediate is not None:
                answer = immediate(message)
                if isinstance(answer, dict):
                    self._answers.fill(place, to_json(answer))
                else:  # it must ask the exchange first: answered like a query
                    self._open += 1
                    self._start(place, answer)
                return
        except Rejected as refused:
            self._answers.fill(place, to_json(ws_error(refused.code, refused.message)))
            return
        principal = self.principal
        assert principal is not None
        self._open += 1
        if order is not None:
            try:
                order(message, principal, place)
            except Exception:
                log.exception("a /ws order failed")
                self._answer(place, ws_error(ResultCode.INTERNAL, "internal error"))
            return
        assert handler is not None
        self._start(place, handler(message, principal))

    def _start(self, place: int, answer: Awaitable[Message | None]) -> None:
        """Run one counted request concurrently; its answer is released in order."""
        task = asyncio.create_task(self._complete(place, answer))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _complete(self, place: int, answer: Awaitable[Message | None]) -> None:
        """Await one request's answer and release it in order (None: the request answers
        itself, as an order does by callback); a bug answers 5000 (the later answers must not
        wait forever behind it)."""
        try:
            message = await answer
        except Rejected as refused:
            message = ws_error(refused.code, refused.message)
        except Exception:
            log.exception("a /ws request failed")
            message = ws_error(ResultCode.INTERNAL, "internal error")
        if message is not None:
            self._answer(place, message)

    def _answer(self, place: int, message: Message) -> None:
        """Release one request's answer in order, and its place in the window."""
        self._answer_bytes(place, to_json(message))

    def _answer_bytes(self, place: int, answer: bytes) -> None:
        self._open -= 1
        self._room.set()
        self._answers.fill(place, answer)

    def _release(self, answer: bytes) -> None:
        self.outbox.put(answer, Priority.ANSWER)

    def _auth(self, message: Message) -> Message:
        fields = WS_AUTH.parse(message, ENVELOPE_KEYS)
        try:
            principal = self.edge.principal(fields["token"])
        except Rejected as refused:
            return {
                "type": "auth_response",
                "success": False,
                "user_id": "",
                "message": refused.message,
            }
        self._stop_feeds()
        self.principal = principal
        self._event_feed = self.edge.backend.subscribe_events(
            principal.user_id, self._on_events, self._event_kinds
        )
        return {
            "type": "auth_response",
            "success": True,
            "user_id": principal.user_id,
            "message": "Authentication successful",
        }

    def _ping(self, message: Message) -> Message:
        return {"type": "pong"}

    def _subscribe(self, message: Message) -> Message | Awaitable[Message]:
        """At once when every instrument is known here; otherwise (one created through another
        gateway, or a bad id) after asking the exchange, as a concurrent request."""
        fields = WS_SUBSCRIBE.parse(message, ENVELOPE_KEYS)
        channels = self._channels(fields["channels"])
        instruments = fields["instruments"]
        if any(self.edge.backend.instrument(i) is None for i in instruments):
            return self._subscribe_unknown(channels, instruments)
        return self._subscribed(channels, instruments)

    async def _subscribe_unknown(self, channels: set[str], instruments: list[str]) -> Message:
        find = self.edge.backend.find_instrument
        unknown = [i for i in instruments if await find(i) is None]
        if unknown:
            raise Rejected(ResultCode.NO_SUCH_INSTRUMENT, f"no instruments {unknown[:10]}")
        return self._subscribed(channels, instruments)

    def _subscribed(self, channels: set[str], instruments: list[str]) -> Message:
        if len(self._market_feeds) + len(instruments) > self.edge.config.max_subscriptions:
            raise Rejected(
                ResultCode.BAD_MESSAGE,
                f"more than {self.edge.config.max_subscriptions} instruments subscribed",
            )
        self.channels |= channels
        for instrument_id in instruments:
            if instrument_id not in self._market_feeds:
                self._market_feeds[instrument_id] = self.edge.backend.subscribe_market(
                    instrument_id, self._on_market
                )
        return self._subscription("Subscribed successfully")

    def _unsubscribe(self, message: Message) -> Message:
        fields = WS_SUBSCRIBE.parse(message, ENVELOPE_KEYS)
        self.channels -= self._channels(fields["channels"])
        for instrument_id in fields["instruments"]:
            stop = self._market_feeds.pop(instrument_id, None)
            if stop is not None:
                stop()
        return self._subscription("Unsubscribed")

    def _subscription(self, text: str) -> Message:
        return {
            "type": "subscribe_response",
            "success": True,
            "channels": sorted(self.channels),
            "instruments": sorted(self._market_feeds),
            "message": text,
        }

    def _submit_order(self, message: Message, user: Principal, place: int) -> None:
        """The order path runs without a task or coroutine: checked here, then answered by
        the backend's callback (`submit_nowait`) when the exchange's answer is read. A plainly
        valid order is checked in one pass (`place_order_fast`); anything else takes the
        schema's path, which words the refusal."""
        backend = self.edge.backend
        command = place_order_fast(user.user_id, message, backend.instrument, ENVELOPE_KEYS)
        if command is None:
            try:
                fields = SUBMIT_ORDER.parse(message, ENVELOPE_KEYS)
            except Rejected as refused:
                self._answer(place, ws_error(refused.code, refused.message))
                return
            if backend.instrument(fields["instrument_id"]) is None:
                self._start(place, self._submit_unknown(fields, user, place))
            else:
                self._submit_fields(fields, user, place)
            return
        try:
            authorize(user, backend.known_owner(command.account_id), ResultCode.NO_SUCH_ACCOUNT)
        except Rejected as refused:
            self._order_answered(place, Answer(refused.code, refused.message))
            return
        backend.submit_nowait(command, functools.partial(self._order_answered, place))

    def _submit_fields(self, fields: Message, user: Principal, place: int) -> None:
        """An order the schema parsed (an unusual spelling or a refusal to word)."""
        backend = self.edge.backend
        try:
            authorize(user, backend.known_owner(fields["account_id"]), ResultCode.NO_SUCH_ACCOUNT)
            command = place_order(user.user_id, fields, backend.instrument)
        except Rejected as refused:
            self._order_answered(place, Answer(refused.code, refused.message))
            return
        backend.submit_nowait(command, functools.partial(self._order_answered, place))

    async def _submit_unknown(self, fields: Message, user: Principal, place: int) -> None:
        """An order for an instrument not known here: the exchange is asked first, so one
        created through another gateway is accepted rather than answered 1007."""
        await self.edge.backend.find_instrument(fields["instrument_id"])
        self._submit_fields(fields, user, place)

    def _order_answered(self, place: int, answer: Answer) -> None:
        order_id = answer.data.get("order_id") if answer.ok and type(answer.data) is dict else None
        if type(order_id) is int:
            self._answer_bytes(place, ORDER_ACCEPTED % order_id)
        else:
            self._answer(place, _order_response(answer))

    async def _cancel_order(self, message: Message, user: Principal) -> Message:
        fields = CANCEL_ORDER.parse(message, ENVELOPE_KEYS)
        account_id, order_id = fields["account_id"], fields["order_id"]
        try:
            await self.edge.owns_account(user, account_id)
            await self.edge.owns_order(user, order_id, account_id)
            answer = await self.edge.backend.submit(CancelOrder(user.user_id, account_id, order_id))
        except Rejected as refused:
            answer = Answer(refused.code, refused.message)
        return _order_response(answer)

    async def _query_order(self, message: Message, user: Principal) -> Message:
        order_id = WS_QUERY_ORDER.parse(message, ENVELOPE_KEYS)["order_id"]
        await self.edge.owns_order(user, order_id)
        return _query_response("query_order", await self.edge.backend.query_order(order_id))

    async def _query_account(self, message: Message, user: Principal) -> Message:
        account_id = WS_QUERY_ACCOUNT.parse(message, ENVELOPE_KEYS)["account_id"]
        if account_id is None:
            answer = await self.edge.backend.query_user_accounts(user.user_id)
        else:
            await self.edge.owns_account(user, account_id)
            answer = await self.edge.backend.query_account(account_id)
        return _query_response("query_account", answer)

    async def _query_position(self, message: Message, user: Principal) -> Message:
        fields = WS_QUERY_POSITION.parse(message, ENVELOPE_KEYS)
        await self.edge.owns_account(user, fields["account_id"])
        answer = await self.edge.backend.query_positions(fields["account_id"])
        if answer.ok and fields["instrument_id"] is not None:
            wanted = fields["instrument_id"]
            answer = Answer(
                answer.code,
                answer.message,
                [p for p in answer.data if p.get("instrument_id") == wanted],
            )
        return _query_response("query_position", answer)

    def _on_events(self, events: Sequence[AccountEvent]) -> None:
        channels, put = self.channels, self.outbox.put
        for push in _shared_events(events):
            if not channels or push.channel in channels:
                put(*push.prepared())

    def _on_market(self, update: MarketUpdate) -> None:
        if self._wants(MARKET_CHANNELS[update.channel]):
            message, key = _shared_market(update)
            self.outbox.put(message, Priority.MARKET, key)

    def _event_kinds(self) -> Collection[EventKind]:
        """The account events this connection's channels take (all with no subscription)."""
        if not self.channels:
            return EVENT_CHANNELS.keys()
        return [kind for kind, channel in EVENT_CHANNELS.items() if channel in self.channels]

    def _wants(self, channel: str) -> bool:
        """An empty subscription set receives every channel (reference part 2 §2)."""
        return not self.channels or channel in self.channels

    def _channels(self, names: list[str]) -> set[str]:
        unknown = set(names) - CHANNELS
        if unknown:
            raise Rejected(
                ResultCode.BAD_MESSAGE,
                f"unknown channels {sorted(unknown)}; use {sorted(CHANNELS)}",
            )
        return set(names)

    def _error(self, code: ResultCode, message: str) -> None:
        self._answers.fill(self._answers.reserve(), to_json(ws_error(code, message)))

    def _stop_feeds(self) -> None:
        if self._event_feed is not None:
            self._event_feed()
            self._event_feed = None
        for stop in self._market_feeds.values():
            stop()
        self._market_feeds.clear()


def _order_response(answer: Answer) -> Message:
    data = answer.data if isinstance(answer.data, dict) else {}
    return {
        "type": "order_response",
        "success": answer.ok,
        "order_id": data.get("order_id"),
        "error_code": None if answer.ok else int(answer.code),
        "error_message": None if answer.ok else answer.message,
    }


def _query_response(request_type: str, answer: Answer) -> Message:
    if not answer.ok:
        raise Rejected(answer.code, answer.message)
    return {"type": "query_response", "request_type": request_type, "data": answer.data}
