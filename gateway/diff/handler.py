"""`/ws/diff`: the DIFF protocol for stock clients, one `DiffConnection` per socket.

The server only ever sends `rtn_data`, and only in answer to `peek_message`, so a DIFF client
paces itself; what piles up meanwhile lives in its `DiffSession`, which collapses to a single
patch when the client falls behind. Everything else a client sends is an instruction whose
effect (or refusal, as `notify`) becomes visible in the state.

A parked peek is answered without a task switch: the push that ends the wait writes the
`rtn_data` straight to the transport, and whatever is queued while the client has not peeked
again leaves together in the next one. Quotes come from the gateway's `QuoteBoard`: a quote
update is built and framed once and shared by every subscriber, and a subscriber with a parked
peek and nothing else queued gets it as one write of those bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from engine.codes import ResultCode
from gateway import market_view
from gateway.auth import Principal
from gateway.backend import (
    AccountEvent,
    Answer,
    CancelOrder,
    EventKind,
    MarketChannel,
    MarketUpdate,
    Unsubscribe,
)
from gateway.commands import place_diff_order
from gateway.decoding import decode_frame
from gateway.diff import messages as m
from gateway.diff import peek_shortcut
from gateway.diff.peek_shortcut import DiffResponse
from gateway.diff.quotes import QuoteBoard
from gateway.diff.session import DiffSession, Patch, SharedPatch
from gateway.edge import Edge
from gateway.errors import Rejected
from gateway.external import ExternalInstrument
from gateway.frames import FrameWriter
from gateway.requests import (
    DIFF_CANCEL_ORDER,
    DIFF_INSERT_ORDER,
    DIFF_LOGIN,
    DIFF_SET_CHART,
    DIFF_SUBSCRIBE_QUOTE,
)
from gateway.rest import KLINE_PERIODS
from ipc.control import ControlError

log = logging.getLogger(__name__)

NS = 1_000_000_000
UNMETERED = frozenset({"peek_message"})
"""Instructions not counted by the rate limiter: a peek follows each rtn_data by design."""
PEEK_TEXT = peek_shortcut.PEEK.decode()
"""The peek as stock clients spell it, recognised without parsing."""


def diff_endpoint(edge: Edge) -> Callable[[web.Request], Awaitable[web.WebSocketResponse]]:
    async def endpoint(request: web.Request) -> web.WebSocketResponse:
        ws = DiffResponse(
            heartbeat=edge.config.ws_heartbeat_s,
            max_msg_size=2 * edge.config.ws_frame_limit,
            compress=False,
        )
        await ws.prepare(request)
        connection = DiffConnection(edge, ws, FrameWriter(request), board)
        heartbeat_s = edge.config.ws_heartbeat_s
        peek_shortcut.install(ws, request, connection.peeked, connection.busy, heartbeat_s)
        await connection.run()
        return ws

    board = QuoteBoard(edge.backend)
    return endpoint


@dataclass
class Chart:
    """A rolling `set_chart` window: bars (or ticks) `left_id..right_id` of one symbol."""

    symbol: str
    duration_ns: int
    view_width: int
    left_id: int
    right_id: int
    stop: Unsubscribe


class DiffConnection:
    def __init__(
        self,
        edge: Edge,
        ws: web.WebSocketResponse,
        writer: FrameWriter | None = None,
        board: QuoteBoard | None = None,
    ) -> None:
        self.edge = edge
        self.board = board or QuoteBoard(edge.backend)
        self.ws = ws
        self.writer = writer
        self.session = DiffSession(edge.config.diff_max_pending)
        self.session.on_change = self._changed
        self.principal: Principal | None = None
        self.user_key = ""
        self.account_id: int | None = None
        self.quote_feeds: dict[str, Unsubscribe] = {}
        self.charts: dict[str, Chart] = {}
        self.orders: dict[str, int] = {}
        self._event_feed: Unsubscribe | None = None
        self._peek_wanted = False
        self._reading = False
        self._draining: asyncio.Task[None] | None = None
        self._notices = itertools.count(1)
        self._last_notice: str | None = None
        self._handlers: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {
            "peek_message": self._peek_message,
            "req_login": self._req_login,
            "subscribe_quote": self._subscribe_quote,
            "set_chart": self._set_chart,
            "insert_order": self._insert_order,
            "cancel_order": self._cancel_order,
        }

    async def run(self) -> None:
        self.session.push(m.MDHIS_READY, *self.board.statics(self.edge.backend.instruments()))
        try:
            while True:
                self._reading = True
                frame = await self.ws.receive()
                self._reading = False
                if frame.type is WSMsgType.TEXT:
                    if frame.data == PEEK_TEXT:
                        self.peeked()
                    else:
                        await self._on_text(frame.data)
                elif frame.type is WSMsgType.BINARY:
                    self._notify(ResultCode.BAD_MESSAGE, "binary frames are not accepted")
                else:
                    break
        finally:
            self._reading = False
            self._stop_feeds()
            self._peek_wanted = False
            if self._draining is not None:
                self._draining.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await self._draining
            self.edge.limiter.forget_connection(id(self))

    async def _on_text(self, text: str) -> None:
        try:
            message = decode_frame(text, self.edge.config.ws_frame_limit)
            aid = message.get("aid")
            if aid not in UNMETERED:
                self.edge.limiter.check(
                    id(self), self.principal.user_id if self.principal else None
                )
            handler = self._handlers.get(aid) if isinstance(aid, str) else None
            if handler is None:
                log.debug("ignoring DIFF aid %r", aid)
                return
            await handler(message)
        except Rejected as refused:
            self._notify(refused.code, refused.message)

    def busy(self) -> bool:
        """Whether a frame the client sent is still unhandled (a later peek must wait for it)."""
        return not self._reading

    async def _peek_message(self, message: dict[str, Any]) -> None:
        self.peeked()

    def peeked(self) -> None:
        """The client peeked: answer now if anything is queued, else when something is."""
        self._peek_wanted = True
        if self.session.pending:
            self._changed()

    def _changed(self) -> None:
        """A transaction was queued: answer a parked peek with it now."""
        if self._peek_wanted:
            self._flush()

    def _flush(self) -> None:
        writer = self.writer
        if not self._peek_wanted or not self.session.pending or writer is None:
            return
        if writer.paused:
            if self._draining is None or self._draining.done():
                self._draining = asyncio.create_task(self._after_drain(writer))
            return
        self._peek_wanted = False
        writer.write([self.session.drain_frame()])

    async def _after_drain(self, writer: FrameWriter) -> None:
        """A client that peeks without reading: hold its queue until its socket drains."""
        await writer.drained()
        self._flush()

    async def _req_login(self, message: dict[str, Any]) -> None:
        fields = DIFF_LOGIN.parse(message)
        name, password = fields["user_name"], fields["password"]
        principal = self.edge.signer.verify(password)
        if principal is None or principal.username.casefold() != name.casefold():
            principal = await self.edge.login(name, password)
        self._stop_events()
        self.principal, self.user_key = principal, name
        accounts = await self.edge.backend.query_user_accounts(principal.user_id)
        self.account_id = _first_account(accounts)
        patches: list[Patch] = [m.trade_ready_patch(name)]
        if self.account_id is not None:
            patches += await self._account_state(self.account_id)
        self._event_feed = self.edge.backend.subscribe_events(principal.user_id, self._on_events)
        self.session.push(*patches, self._notice_patch(ResultCode.OK, "login succeeded", "INFO"))

    async def _subscribe_quote(self, message: dict[str, Any]) -> None:
        ins_list = DIFF_SUBSCRIBE_QUOTE.parse(message)["ins_list"]
        symbols = list(dict.fromkeys(s for s in ins_list.split(",") if s))
        if len(symbols) > self.edge.config.max_subscriptions:
            raise Rejected(
                ResultCode.BAD_MESSAGE,
                f"more than {self.edge.config.max_subscriptions} symbols in ins_list",
            )
        for symbol in set(self.quote_feeds) - set(symbols):
            self.quote_feeds.pop(symbol)()
        fresh = [s for s in symbols if s not in self.quote_feeds]
        known = [(s, await self._static_quote(s)) for s in fresh]
        found = [(s, static, await self.board.market(s)) for s, static in known if static]
        patches: list[Patch] = []
        for symbol, static, asked in found:
            market = self.board.latest(symbol) or asked
            self.quote_feeds[symbol] = self.board.watch(symbol, self._on_quote, market)
            patches.append(m.full_quote(symbol, static, market))
        self.session.push(*patches, m.ins_list_patch(ins_list))

    async def _static_quote(self, symbol: str) -> dict[str, Any] | None:
        """A symbol's static quote fields: a local instrument's, or an external one's from the
        feeds catalogue; None for a symbol nobody publishes. Its first quote adds the market
        fields of whoever publishes it (marketdata or the feeds process), through the board."""
        backend = self.edge.backend
        instrument = await backend.find_instrument(symbol)
        if instrument is not None:
            return m.static_quote(instrument)
        external = await backend.external_instrument(symbol)
        return None if external is None else m.external_static_quote(external)

    async def _set_chart(self, message: dict[str, Any]) -> None:
        fields = DIFF_SET_CHART.parse(message)
        chart_id, symbol = fields["chart_id"], fields["ins_list"].split(",")[0]
        old = self.charts.pop(chart_id, None)
        if old is not None:
            old.stop()
        if not symbol:
            self.session.push(m.drop_chart_patch(chart_id))
            return
        external = None
        if await self.edge.backend.find_instrument(symbol) is None:
            external = await self.edge.backend.external_instrument(symbol)
            if external is None:
                raise Rejected(ResultCode.NO_SUCH_INSTRUMENT, f"no instrument {symbol}")
        duration, width = fields["duration"], fields["view_width"] or 200
        width = min(width, self.edge.config.max_query_count)
        rows = await self._chart_rows(symbol, duration, width, external)
        ids = [row["id"] for row in rows]
        left, right = (ids[0], ids[-1]) if ids else (-1, -1)
        stop = self.edge.backend.subscribe_market(
            symbol, lambda update: self._on_chart_update(chart_id, update)
        )
        self.charts[chart_id] = Chart(symbol, duration, width, left, right, stop)
        state = {k: message[k] for k in message if k != "aid"}
        self.session.push(
            self._series_patch(symbol, duration, rows, right),
            m.chart_patch(chart_id, state, left, right),
        )

    async def _insert_order(self, message: dict[str, Any]) -> None:
        principal, account_id = self._trader()
        fields = DIFF_INSERT_ORDER.parse(message)
        self._check_user(fields["user_id"])
        key = fields["order_id"]
        if key in self.orders:
            raise Rejected(ResultCode.BAD_ORDER_PARAMETER, f"order_id {key} was already used")
        await self.edge.backend.find_instrument(
            f"{fields['exchange_id']}.{fields['instrument_id']}"
        )
        command = place_diff_order(
            principal.user_id, account_id, fields, self.edge.backend.instrument
        )
        answer = await self.edge.backend.submit(command)
        if answer.ok:
            self.orders[key] = int(answer.data["order_id"])
            return
        self.orders[key] = 0
        refused = {"order_id": key, "status": "FINISHED", "volume_left": fields["volume"]}
        self.session.push(
            m.order_patch(self.user_key, key, {**refused, "last_msg": answer.message}),
            self._notice_patch(answer.code, answer.message, "ERROR"),
        )

    async def _cancel_order(self, message: dict[str, Any]) -> None:
        principal, account_id = self._trader()
        fields = DIFF_CANCEL_ORDER.parse(message)
        self._check_user(fields["user_id"])
        order_id = self.orders.get(fields["order_id"])
        if not order_id:
            raise Rejected(ResultCode.ORDER_NOT_FOUND, f"no live order {fields['order_id']}")
        await self.edge.owns_order(principal, order_id, account_id)
        answer = await self.edge.backend.submit(
            CancelOrder(principal.user_id, account_id, order_id, fields["order_id"])
        )
        if not answer.ok:
            raise Rejected(answer.code, answer.message)

    async def _account_state(self, account_id: int) -> list[Patch]:
        """The trade tree of an account as patches: account, positions, orders, trades."""
        user, backend = self.user_key, self.edge.backend
        patches: list[Patch] = []
        account = await backend.query_account(account_id)
        if account.ok:
            patches.append(m.account_patch(user, m.without_time(account.data)))
        for position in _rows(await backend.query_positions(account_id)):
            patches.append(m.position_patch(user, position["instrument_id"], position))
        for order in _rows(await backend.query_user_orders(self._trader()[0].user_id)):
            self.orders[m.order_key(order)] = order["order_id"]
            patches.append(m.order_patch(user, m.order_key(order), m.diff_order(order)))
        for trade in _rows(await backend.query_trades(account_id)):
            patches.append(m.trade_record_patch(user, str(trade["trade_id"]), m.diff_trade(trade)))
        return patches

    async def _chart_rows(
        self, symbol: str, duration: int, width: int, external: ExternalInstrument | None
    ) -> list[dict[str, Any]]:
        if duration and (duration % NS or duration // NS not in KLINE_PERIODS.values()):
            periods = sorted({s * NS for s in KLINE_PERIODS.values()})
            raise Rejected(ResultCode.BAD_MESSAGE, f"duration {duration} is not one of {periods}")
        if external is not None:
            return await _external_chart_rows(external, duration, width)
        if duration == 0:
            return _rows(await self.edge.backend.recent_trades(symbol, width))
        return _rows(await self.edge.backend.klines(symbol, duration // NS, width))

    def _series_patch(
        self,
        symbol: str,
        duration: int,
        rows: Sequence[dict[str, Any]],
        last_id: int,
        deleted: Iterable[int] = (),
    ) -> Patch:
        shape = _tick if duration == 0 else _bar
        items: list[tuple[int, dict[str, Any] | None]] = [(i, None) for i in deleted]
        items += [(r["id"], shape(r)) for r in rows]
        if duration == 0:
            return m.tick_patch(symbol, items, last_id)
        return m.kline_patch(symbol, duration, items, last_id)

    def _on_events(self, events: Sequence[AccountEvent]) -> None:
        """One engine transaction → one session transaction (one rtn_data)."""
        user = self.user_key
        patches: list[Patch] = []
        for event in events:
            data = event.data
            if event.kind is EventKind.ORDER_STATUS:
                self.orders.setdefault(m.order_key(data), data["order_id"])
                patches.append(m.order_patch(user, m.order_key(data), m.diff_order(data)))
            elif event.kind is EventKind.TRADE:
                patches.append(
                    m.trade_record_patch(user, str(data["trade_id"]), m.diff_trade(data))
                )
            elif event.kind is EventKind.ACCOUNT and event.account_id == self.account_id:
                patches.append(m.account_patch(user, m.without_time(data)))
            elif event.kind is EventKind.POSITION and event.account_id == self.account_id:
                fields = m.without_time(data)
                patches.append(m.position_patch(user, data["instrument_id"], fields))
        if patches:
            self.session.push(*patches)

    def _on_quote(self, quote: SharedPatch) -> None:
        """A quote update: one write of its ready frame when the client waits for exactly it."""
        writer = self.writer
        if (
            self._peek_wanted
            and not self.session.pending
            and writer is not None
            and not writer.paused
        ):
            self._peek_wanted = False
            writer.write_framed(self.session.send_alone(quote))
        else:
            self.session.push_shared(quote)

    def _on_chart_update(self, chart_id: str, update: MarketUpdate) -> None:
        """Roll a chart: add or update the newest bar (or tick), drop those left of the window."""
        chart = self.charts.get(chart_id)
        if chart is None or not _feeds(chart, update):
            return
        row = dict(update.data)
        old_left, old_right = chart.left_id, chart.right_id
        chart.right_id = max(old_right, row["id"])
        first = old_left if old_left >= 0 else row["id"]
        chart.left_id = max(first, chart.right_id - chart.view_width + 1)
        gone = range(max(old_left, 0), min(chart.left_id, old_right + 1)) if old_left >= 0 else ()
        series = self._series_patch(
            chart.symbol, chart.duration_ns, [row], chart.right_id, deleted=gone
        )
        window = {"charts": {chart_id: {"left_id": chart.left_id, "right_id": chart.right_id}}}
        self.session.push(series, window)

    def _trader(self) -> tuple[Principal, int]:
        if self.principal is None:
            raise Rejected(ResultCode.NOT_AUTHENTICATED, "send req_login first")
        if self.account_id is None:
            raise Rejected(ResultCode.NO_SUCH_ACCOUNT, "open an account first")
        return self.principal, self.account_id

    def _check_user(self, user_id: str) -> None:
        if user_id != self.user_key:
            raise Rejected(ResultCode.FORBIDDEN, f"user_id must be {self.user_key}")

    def _notify(self, code: ResultCode, content: str) -> None:
        self.session.push(self._notice_patch(code, content, "ERROR"))

    def _notice_patch(self, code: ResultCode, content: str, level: str) -> Patch:
        """A new notice, replacing the previous one so the snapshot keeps only the latest."""
        key = f"n{next(self._notices)}"
        patch = m.notify_patch(key, int(code), content, level)
        if self._last_notice is not None:
            patch["notify"][self._last_notice] = None
        self._last_notice = key
        return patch

    def _stop_events(self) -> None:
        if self._event_feed is not None:
            self._event_feed()
            self._event_feed = None

    def _stop_feeds(self) -> None:
        self._stop_events()
        for stop in self.quote_feeds.values():
            stop()
        self.quote_feeds.clear()
        for chart in self.charts.values():
            chart.stop()
        self.charts.clear()


def _first_account(answer: Answer) -> int | None:
    rows = _rows(answer)
    return int(rows[0]["account_id"]) if rows else None


def _rows(answer: Answer) -> list[dict[str, Any]]:
    return list(answer.data) if answer.ok and answer.data else []


async def _external_chart_rows(
    external: ExternalInstrument, duration: int, width: int
) -> list[dict[str, Any]]:
    """An external instrument's chart history from the feeds process (its bars are built from
    the venue's trades there); none yet when it has not traded since feeds started."""
    try:
        if duration == 0:
            return [market_view.tick(row) for row in await external.recent_trades(width)]
        return [market_view.bar(row) for row in await external.klines(duration // NS, width)]
    except ControlError as exc:
        log.info("chart of %s: feeds has no history (%s)", external.id, exc)
        return []


def _bar(row: dict[str, Any]) -> dict[str, Any]:
    fields = ("open", "high", "low", "close", "volume", "open_oi", "close_oi")
    return {"datetime": row["datetime_ns"], **{k: row.get(k) for k in fields}}


def _tick(row: dict[str, Any]) -> dict[str, Any]:
    fields = (
        "last_price",
        "volume",
        "amount",
        "bid_price1",
        "ask_price1",
        "bid_volume1",
        "ask_volume1",
        "highest",
        "lowest",
        "average",
        "open_interest",
    )
    return {"datetime": row["timestamp_ns"], **{k: row[k] for k in fields if k in row}}


def _feeds(chart: Chart, update: MarketUpdate) -> bool:
    """Whether a market update extends this chart (a tick chart, or bars of its period)."""
    if chart.duration_ns == 0:
        return update.channel is MarketChannel.TICK
    return (
        update.channel is MarketChannel.KLINE
        and update.data["period_seconds"] * NS == chart.duration_ns
    )
