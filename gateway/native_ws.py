"""`/ws`: the native JSON protocol (reference part 2 §6), one `NativeConnection` per socket.

Requests are handled in order, one at a time per connection; pushes go through the connection's
`Outbox`, drained by its own sender task, so a slow reader fills only its own queue. The server
pings every `ws_heartbeat_s` and closes a connection silent for `ws_idle_timeout_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any

from aiohttp import WSMsgType, web

from engine.codes import ResultCode
from gateway.auth import Principal
from gateway.backend import AccountEvent, Answer, CancelOrder, MarketUpdate, Unsubscribe
from gateway.commands import place_order
from gateway.decoding import decode_frame
from gateway.edge import Edge
from gateway.encoding import to_json_text
from gateway.errors import Rejected, ws_error
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


def native_endpoint(edge: Edge) -> Callable[[web.Request], Awaitable[web.WebSocketResponse]]:
    async def endpoint(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(
            heartbeat=edge.config.ws_heartbeat_s, max_msg_size=2 * edge.config.ws_frame_limit
        )
        await ws.prepare(request)
        await NativeConnection(edge, ws).run()
        return ws

    return endpoint


class NativeConnection:
    def __init__(self, edge: Edge, ws: web.WebSocketResponse) -> None:
        self.edge = edge
        self.ws = ws
        self.key: Hashable = id(self)
        self.principal: Principal | None = None
        self.outbox = Outbox(edge.config.outbox_max_messages, edge.config.outbox_max_bytes)
        self.channels: set[str] = set()
        self._event_feed: Unsubscribe | None = None
        self._market_feeds: dict[str, Unsubscribe] = {}
        self._handlers: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {
            "auth": self._auth,
            "ping": self._ping,
            "subscribe": self._subscribe,
            "unsubscribe": self._unsubscribe,
            "submit_order": self._submit_order,
            "cancel_order": self._cancel_order,
            "query_order": self._query_order,
            "query_account": self._query_account,
            "query_position": self._query_position,
        }

    async def run(self) -> None:
        sender = asyncio.create_task(self._send_loop())
        try:
            while not self.ws.closed and not self.outbox.closed:
                try:
                    frame = await self.ws.receive(timeout=self.edge.config.ws_idle_timeout_s)
                except TimeoutError:
                    await self.ws.close(code=1001, message=b"idle")
                    break
                if frame.type is WSMsgType.TEXT:
                    await self._on_text(frame.data)
                elif frame.type is WSMsgType.BINARY:
                    self._error(ResultCode.BAD_MESSAGE, "binary frames are not accepted")
                elif frame.type is WSMsgType.ERROR:
                    self._error(ResultCode.PAYLOAD_TOO_LARGE, "frame refused")
                    break
                else:
                    break
        finally:
            self._stop_feeds()
            self.outbox.close()
            try:
                await asyncio.wait_for(sender, self.edge.config.ws_heartbeat_s)
            except TimeoutError:
                log.info("a /ws sender did not finish in time; dropped")
            self.edge.limiter.forget_connection(self.key)

    async def _send_loop(self) -> None:
        with contextlib.suppress(ConnectionError):
            while batch := await self.outbox.take():
                for message in batch:
                    await self.ws.send_str(message)
        if not self.ws.closed:
            if self.outbox.overflowed:
                log.info("closing a slow /ws reader: %d messages dropped", self.outbox.dropped)
                await self.ws.close(code=SLOW_READER_CLOSE, message=b"send queue overflow")
            else:
                await self.ws.close()

    async def _on_text(self, text: str) -> None:
        try:
            user_id = self.principal.user_id if self.principal else None
            self.edge.limiter.check(self.key, user_id)
            message = decode_frame(text, self.edge.config.ws_frame_limit)
            kind = message.get("type")
            handler = self._handlers.get(kind) if isinstance(kind, str) else None
            if handler is None:
                raise Rejected(ResultCode.BAD_MESSAGE, f"unknown message type {kind!r:.40}")
            if self.principal is None and kind not in OPEN_TYPES:
                raise Rejected(ResultCode.NOT_AUTHENTICATED, "send auth first")
            await handler(message)
        except Rejected as refused:
            self._error(refused.code, refused.message)

    async def _auth(self, message: dict[str, Any]) -> None:
        fields = WS_AUTH.parse(message, ENVELOPE_KEYS)
        try:
            principal = self.edge.principal(fields["token"])
        except Rejected as refused:
            self._answer(
                {
                    "type": "auth_response",
                    "success": False,
                    "user_id": "",
                    "message": refused.message,
                }
            )
            return
        self._stop_feeds()
        self.principal = principal
        self._event_feed = self.edge.backend.subscribe_events(principal.user_id, self._on_events)
        self._answer(
            {
                "type": "auth_response",
                "success": True,
                "user_id": principal.user_id,
                "message": "Authentication successful",
            }
        )

    async def _ping(self, message: dict[str, Any]) -> None:
        self._answer({"type": "pong"})

    async def _subscribe(self, message: dict[str, Any]) -> None:
        fields = WS_SUBSCRIBE.parse(message, ENVELOPE_KEYS)
        channels = self._channels(fields["channels"])
        instruments = fields["instruments"]
        unknown = [i for i in instruments if self.edge.backend.instrument(i) is None]
        if unknown:
            raise Rejected(ResultCode.NO_SUCH_INSTRUMENT, f"no instruments {unknown[:10]}")
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
        self._answer(
            {
                "type": "subscribe_response",
                "success": True,
                "channels": sorted(self.channels),
                "instruments": sorted(self._market_feeds),
                "message": "Subscribed successfully",
            }
        )

    async def _unsubscribe(self, message: dict[str, Any]) -> None:
        fields = WS_SUBSCRIBE.parse(message, ENVELOPE_KEYS)
        self.channels -= self._channels(fields["channels"])
        for instrument_id in fields["instruments"]:
            stop = self._market_feeds.pop(instrument_id, None)
            if stop is not None:
                stop()
        self._answer(
            {
                "type": "subscribe_response",
                "success": True,
                "channels": sorted(self.channels),
                "instruments": sorted(self._market_feeds),
                "message": "Unsubscribed",
            }
        )

    async def _submit_order(self, message: dict[str, Any]) -> None:
        user = self._user()
        fields = SUBMIT_ORDER.parse(message, ENVELOPE_KEYS)
        try:
            await self.edge.owns_account(user, fields["account_id"])
            command = place_order(user.user_id, fields, self.edge.backend.instrument)
            answer = await self.edge.backend.submit(command)
        except Rejected as refused:
            answer = Answer(refused.code, refused.message)
        self._order_response(answer)

    async def _cancel_order(self, message: dict[str, Any]) -> None:
        user = self._user()
        fields = CANCEL_ORDER.parse(message, ENVELOPE_KEYS)
        account_id, order_id = fields["account_id"], fields["order_id"]
        try:
            await self.edge.owns_account(user, account_id)
            await self.edge.owns_order(user, order_id, account_id)
            answer = await self.edge.backend.submit(CancelOrder(user.user_id, account_id, order_id))
        except Rejected as refused:
            answer = Answer(refused.code, refused.message)
        self._order_response(answer)

    async def _query_order(self, message: dict[str, Any]) -> None:
        order_id = WS_QUERY_ORDER.parse(message, ENVELOPE_KEYS)["order_id"]
        await self.edge.owns_order(self._user(), order_id)
        self._query_response("query_order", await self.edge.backend.query_order(order_id))

    async def _query_account(self, message: dict[str, Any]) -> None:
        user = self._user()
        account_id = WS_QUERY_ACCOUNT.parse(message, ENVELOPE_KEYS)["account_id"]
        if account_id is None:
            answer = await self.edge.backend.query_user_accounts(user.user_id)
        else:
            await self.edge.owns_account(user, account_id)
            answer = await self.edge.backend.query_account(account_id)
        self._query_response("query_account", answer)

    async def _query_position(self, message: dict[str, Any]) -> None:
        fields = WS_QUERY_POSITION.parse(message, ENVELOPE_KEYS)
        await self.edge.owns_account(self._user(), fields["account_id"])
        answer = await self.edge.backend.query_positions(fields["account_id"])
        if answer.ok and fields["instrument_id"] is not None:
            wanted = fields["instrument_id"]
            answer = Answer(
                answer.code,
                answer.message,
                [p for p in answer.data if p.get("instrument_id") == wanted],
            )
        self._query_response("query_position", answer)

    def _on_events(self, events: Sequence[AccountEvent]) -> None:
        for event in events:
            if self._wants(EVENT_CHANNELS[event.kind]):
                message, priority, key = event_message(event)
                self.outbox.put(to_json_text(message), priority, key)

    def _on_market(self, update: MarketUpdate) -> None:
        if self._wants(MARKET_CHANNELS[update.channel]):
            message, key = market_message(update)
            self.outbox.put(to_json_text(message), Priority.MARKET, key)

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

    def _user(self) -> Principal:
        assert self.principal is not None, "handler reached without auth"
        return self.principal

    def _order_response(self, answer: Answer) -> None:
        data = answer.data if isinstance(answer.data, dict) else {}
        self._answer(
            {
                "type": "order_response",
                "success": answer.ok,
                "order_id": data.get("order_id"),
                "error_code": None if answer.ok else int(answer.code),
                "error_message": None if answer.ok else answer.message,
            }
        )

    def _query_response(self, request_type: str, answer: Answer) -> None:
        if not answer.ok:
            raise Rejected(answer.code, answer.message)
        self._answer({"type": "query_response", "request_type": request_type, "data": answer.data})

    def _answer(self, message: dict[str, Any]) -> None:
        self.outbox.put(to_json_text(message), Priority.ANSWER)

    def _error(self, code: ResultCode, message: str) -> None:
        self._answer(ws_error(code, message))

    def _stop_feeds(self) -> None:
        if self._event_feed is not None:
            self._event_feed()
            self._event_feed = None
        for stop in self._market_feeds.values():
            stop()
        self._market_feeds.clear()
