"""The real `ExchangeBackend`: commands onto `cmd.<gateway>`, answers and pushes from `events`,
queries over the accounts and marketdata control sockets, market data from the ZeroMQ PUB.

Request ids carry the gateway id in their top 16 bits (`gateway_id << REQUEST_SHIFT | n`), so
every gateway reads the one `events` ring and resolves only its own answers (picked out with
numpy before anything is decoded; `submit_nowait` answers by callback, without a task or future
per order, for the `/ws` order path). Commands submitted
during one turn of the event loop are encoded and written as one batch at the end of the turn.
Account events are grouped per engine transaction (accounts marks the last record of each with
`LAST_IN_BATCH`; a ring read that ends without one closes the group too) and handed to each
subscribed user's sinks in one call, so a fill reaches a DIFF client as one `rtn_data`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from decimal import Decimal
from typing import Any

import numpy as np
import zmq.asyncio

from engine.accounts import commands as core
from engine.accounts.events import CommandAccepted
from engine.codes import ResultCode
from engine.instruments import (
    Instrument,
    InstrumentConfigError,
    InstrumentRegistry,
    describe,
    parse_instrument,
)
from gateway import market_view
from gateway.async_control import AsyncControlClient
from gateway.backend import (
    AccountEvent,
    AdjustBalance,
    AdminAction,
    AdminCommand,
    Answer,
    CancelOrder,
    Command,
    EventKind,
    MarketUpdate,
    OpenAccount,
    PlaceOrder,
    Unsubscribe,
)
from gateway.directory import AccountDirectory
from gateway.event_view import EventRenderer, OrderDetails
from gateway.events_pump import EventsPump
from gateway.external import ExternalCatalogue, ExternalInstrument
from gateway.market_feed import MarketFeed
from ipc.control import ControlError, ControlTimeout
from ipc.errors import RingTimeout
from ipc.records import Flag, Kind
from ipc.ring import RingReader, RingWriter
from services.accounts_codec import commands_to_cmd, records_to_events
from services.columns import take
from services.instrument_sync import adopt_definitions

log = logging.getLogger(__name__)

REQUEST_SHIFT = 48
ANSWER_TIMEOUT_S = 5.0
EXPIRE_EVERY_S = 0.25
"""How often requests older than the answer timeout are answered 9005 (one sweep for all,
rather than a timer per request)."""
WRITE_TIMEOUT_S = 0.2
LATENCY_SAMPLES = 8192
FIND_MARKET_DATA_ATTEMPTS = 30
OPEN_ATTEMPTS = 64
TRANSACTION_BITS = 31
TRANSACTION_LIMIT = 1 << TRANSACTION_BITS
"""Client transaction ids per account (the account id fills the bits above them)."""
TRADES_KEPT = 1000
"""Most trades one `trades` query asks the accounts process for."""

EventSink = Callable[[Sequence[AccountEvent]], None]
WantedKinds = Callable[[], Collection[EventKind]]

MAX_TICKS = 10**15
MAX_LOTS = 10**12
"""The largest price (ticks) and quantity (lots) a command may carry: far beyond any real
order, and well inside the records' int64 fields (a larger number is refused here, 1008 or
9003, instead of failing the ring write of the whole batch)."""

DEFAULT_CURRENCY = "CNY"
"""The currency of an instrument created over REST without one."""
REFRESH_EVERY_S = 3.0
"""How often a gateway re-reads accounts' instruments: one created through another gateway
(each has its own `cmd` ring) is listed, quoted and tradable here within this time."""
ON_DEMAND_EVERY_S = 1.0
"""At most this often, a request naming an instrument the gateway does not know makes it ask
accounts before answering 1007."""
_TABLE_NAMES = {
    "instrument_name": "name",
    "instrument_type": "kind",
    "contract_multiplier": "multiplier",
    "price_tick": "price_tick",
    "lot_size": "lot_size",
    "margin_rate": "margin_rate",
    "min_qty": "min_qty",
    "max_qty": "max_qty",
    "currency": "currency",
    "base_asset": "base_asset",
    "pre_settlement": "pre_settlement",
    "pre_close": "pre_close",
}
"""REST field → the registry's TOML name, for the fields that map one to one."""


def _instrument_table(fields: Mapping[str, Any]) -> dict[str, Any] | Answer:
    """The registry's TOML-shaped table for REST instrument fields (decimals as strings, the
    multiplier an int, one commission rate for every offset, the symmetric band: the registry
    has no other, so different up and down rates are refused)."""
    table: dict[str, Any] = {}
    for name, key in _TABLE_NAMES.items():
        if fields.get(name) is not None:
            value = fields[name]
            table[key] = str(value) if isinstance(value, Decimal) else value
    multiplier = fields.get("contract_multiplier")
    if multiplier is not None:
        if multiplier != multiplier.to_integral_value():
            return Answer(ResultCode.CONFIG, f"contract_multiplier {multiplier} is not whole")
        table["multiplier"] = int(multiplier)
    rate = fields.get("commission_rate")
    if rate is not None:
        offsets = ("open", "close", "close_today")
        table["commission"] = {"by": "rate", **dict.fromkeys(offsets, str(rate))}
    bands = {fields.get(n) for n in ("limit_up_rate", "limit_down_rate")} - {None}
    if len(bands) > 1:
        return Answer(
            ResultCode.CONFIG,
            "limit_up_rate and limit_down_rate must be equal (the limit band is symmetric)",
        )
    if bands:
        table["band"] = str(bands.pop())
    return table


Done = Callable[[Answer], None]
"""Called on the loop with a command's answer."""
OnAccept = Callable[[CommandAccepted], Any]
"""Builds an accepted command's answer data (and notes what the gateway must remember)."""
Request = tuple[int, Any, OnAccept]
"""A command ready for the ring: its request id, the core command, its `OnAccept`."""

_ANSWERED = frozenset({int(Kind.COMMAND_ACCEPTED), int(Kind.COMMAND_REJECTED)})
_ORDER_UPDATED = int(Kind.ORDER_UPDATED)
_LAST_IN_BATCH = int(Flag.LAST_IN_BATCH)
"""Plain ints: comparing with an enum member is slower in Python and ~5x slower in numpy."""
_PUSHED = {
    int(Kind.ORDER_UPDATED): EventKind.ORDER_STATUS,
    int(Kind.TRADE_BOOKED): EventKind.TRADE,
    int(Kind.ACCOUNT_UPDATED): EventKind.ACCOUNT,
    int(Kind.POSITION_UPDATED): EventKind.POSITION,
}
"""Record kinds that become pushes, and the push each becomes."""
ALL_EVENT_KINDS = frozenset(_PUSHED.values())


class _Pending:
    """A command waiting for its answer: whom to tell, and what to do when it is accepted."""

    __slots__ = ("done", "on_accept", "started_ns")

    def __init__(self, done: Done, on_accept: OnAccept | None) -> None:
        self.done = done
        self.started_ns = time.perf_counter_ns()
        self.on_accept = on_accept


def _settle(future: asyncio.Future[Answer], answer: Answer) -> None:
    if not future.done():
        future.set_result(answer)


class RingBackend:
    """One gateway's connection to the exchange (see the module docstring)."""

    def __init__(
        self,
        gateway_id: int,
        registry: InstrumentRegistry,
        writer: RingWriter,
        reader: RingReader,
        directory: AccountDirectory,
        context: zmq.asyncio.Context,
        accounts_control: str,
        marketdata_control: str,
        market_data: list[str],
        answer_timeout_s: float = ANSWER_TIMEOUT_S,
        feeds_control: str | None = None,
    ) -> None:
        self.gateway_id = gateway_id
        self.registry = registry
        self.directory = directory
        self.answer_timeout_s = answer_timeout_s
        self._writer = writer
        self._request_ids = itertools.count((gateway_id << REQUEST_SHIFT) + 1)
        self._pending: dict[int, _Pending] = {}
        self._outbound: list[tuple[int, Any]] = []
        self._flush_handle: asyncio.Handle | None = None
        self._renderer = EventRenderer(registry)
        self._pump = EventsPump(reader, self._on_events)
        self._accounts = AsyncControlClient(context, accounts_control)
        self._marketdata = AsyncControlClient(context, marketdata_control)
        self._market = MarketFeed(context, market_data)
        self.external = (
            ExternalCatalogue(AsyncControlClient(context, feeds_control), self._market.connect)
            if feeds_control
            else None
        )
        self._subscribers: dict[int, list[tuple[EventSink, WantedKinds | None]]] = {}
        self._watched: dict[int, int] = {}
        self._finder: asyncio.Task[None] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._on_demand: asyncio.Task[bool] | None = None
        self._on_demand_after = 0.0
        self._expirer: asyncio.Task[None] | None = None
        self._latency_ns = np.zeros(LATENCY_SAMPLES, dtype=np.int64)
        self.answers = 0
        self.answer_codes: dict[int, int] = {}
        self.write_stalls = 0
        self._prepare: dict[type, Callable[[Any], Request | Answer]] = {
            PlaceOrder: self._order_request,
            CancelOrder: self._cancel_request,
        }
        self._commands: dict[type, Callable[[Any], Awaitable[Answer]]] = {
            OpenAccount: self._open_account,
            AdjustBalance: self._adjust_balance,
            AdminCommand: self._admin,
        }

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start reading `events` (call on the running loop)."""
        self.directory.load()
        self._pump.start(asyncio.get_running_loop())
        self._finder = asyncio.create_task(self._find_market_data())
        self._refresher = asyncio.create_task(self._adopt_instruments())
        self._expirer = asyncio.create_task(self._expire())
        if self.external is not None:
            self.external.start()

    async def close(self) -> None:
        self._pump.stop()
        for task in (self._finder, self._refresher, self._expirer, self._on_demand):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for client in (self._accounts, self._marketdata):
            await client.close()
        if self.external is not None:
            await self.external.close()
        await self._market.close()
        for request_id in list(self._pending):
            self._resolve(request_id, Answer(ResultCode.UNAVAILABLE, "gateway stopping"))

    # -- instruments -------------------------------------------------------------------------

    def instrument(self, instrument_id: str) -> Instrument | None:
        """The known instrument; an unknown id also starts a (rate-limited) refresh, so a
        retry finds one created through another gateway."""
        found = self.registry.get(instrument_id)
        if found is None:
            self._refresh_on_demand()
        return found

    async def find_instrument(self, instrument_id: str) -> Instrument | None:
        """The instrument, asking accounts first (rate-limited) when the id is not known here:
        what a request should await before it answers 1007."""
        found = self.registry.get(instrument_id)
        if found is None:
            refresh = self._refresh_on_demand()
            if refresh is not None and await asyncio.shield(refresh):
                found = self.registry.get(instrument_id)
        return found

    def _refresh_on_demand(self) -> asyncio.Task[bool] | None:
        """The refresh under way, or a new one if none ran in the last ON_DEMAND_EVERY_S
        (None: too soon, or no running loop). Concurrent callers share one request."""
        task = self._on_demand
        if task is not None and not task.done():
            return task
        now = time.monotonic()
        if now < self._on_demand_after:
            return None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        self._on_demand_after = now + ON_DEMAND_EVERY_S
        self._on_demand = loop.create_task(self.refresh_instruments())
        return self._on_demand

    def instruments(self) -> Sequence[Instrument]:
        return self.registry.as_list()

    async def external_instrument(self, instrument_id: str) -> ExternalInstrument | None:
        if self.external is None or self.registry.get(instrument_id) is not None:
            return None
        return await self.external.lookup(instrument_id)

    async def query_instruments(self) -> Answer:
        return Answer(ResultCode.OK, data=[describe(i) for i in self.registry])

    # -- commands ----------------------------------------------------------------------------

    async def submit(self, command: Command) -> Answer:
        if type(command) in self._prepare:
            future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
            self.submit_nowait(command, functools.partial(_settle, future))
            return await future
        return await self._commands[type(command)](command)

    def submit_nowait(self, command: PlaceOrder | CancelOrder, done: Done) -> None:
        """`submit` without a coroutine, task or future per order (the `/ws` order path):
        `done(answer)` is called on the loop when the exchange answers, or at once when the
        command is refused here."""
        prepared = self._prepare[type(command)](command)
        if isinstance(prepared, Answer):
            done(prepared)
        else:
            self._enqueue(*prepared, done)

    def _order_request(self, c: PlaceOrder) -> Request | Answer:
        instrument = self.registry.get(c.instrument_id)
        if instrument is None:
            return Answer(ResultCode.NO_SUCH_INSTRUMENT, f"no instrument {c.instrument_id}")
        if not (0 < c.qty <= MAX_LOTS and 0 <= c.price <= MAX_TICKS):
            return _out_of_range(instrument, c.price, c.qty)
        request_id = next(self._request_ids)
        details = OrderDetails(
            c.client_order_id, c.order_type, c.time_condition, c.volume_condition, time.time_ns()
        )
        command = core.SubmitOrder(
            request_id,
            c.account_id,
            instrument.index,
            c.side,
            c.offset,
            c.price,
            c.qty,
            c.order_type,
            c.time_condition,
            c.volume_condition,
            0,
            details.insert_time_ns,
        )

        def accepted(answer: CommandAccepted) -> dict[str, Any]:
            self._renderer.remember(answer.order_id, c.account_id, details)
            return {
                "order_id": answer.order_id,
                "client_order_id": c.client_order_id,
                "account_id": c.account_id,
                "instrument_id": c.instrument_id,
                "status": "PENDING",
            }

        return request_id, command, accepted

    def _cancel_request(self, c: CancelOrder) -> Request | Answer:
        order_id = c.order_id
        if order_id is None:
            order_id = self._renderer.by_client_id(c.account_id, c.client_order_id)
            if order_id is None:
                return Answer(ResultCode.ORDER_NOT_FOUND, f"no order {c.client_order_id!r}")
        request_id = next(self._request_ids)
        command = core.CancelOrder(request_id, c.account_id, order_id, time.time_ns())
        return request_id, command, lambda _a: {"order_id": order_id}

    async def _open_account(self, c: OpenAccount) -> Answer:
        """Open the next free account id; ids taken by direct clients (bin/loadgen --direct)
        are skipped, a few at a time."""
        name = c.account_name or ""
        answer = Answer(ResultCode.ACCOUNT_EXISTS, "no free account id")
        for _attempt in range(OPEN_ATTEMPTS):
            account_id = self.directory.allocate(c.user_id, name)
            request_id = next(self._request_ids)
            command = core.OpenAccount(request_id, account_id, time.time_ns())

            def accepted(_answer: CommandAccepted, account_id: int = account_id) -> dict[str, Any]:
                self._watch_user(c.user_id)
                return {"account_id": account_id, "account_name": name, "user_id": c.user_id}

            answer = await self._send(request_id, command, accepted)
            if answer.code is ResultCode.OK or answer.code is ResultCode.UNAVAILABLE:
                return answer
            self.directory.release(account_id)
            if answer.code is not ResultCode.ACCOUNT_EXISTS:
                return answer
        return answer

    async def _adjust_balance(self, c: AdjustBalance) -> Answer:
        """The accounts core keys idempotency by transaction id alone; clients choose theirs per
        account, so the id sent is the account's namespace plus the client's id."""
        if c.transaction_id >= TRANSACTION_LIMIT:
            return Answer(
                ResultCode.BAD_MESSAGE, f"transaction_id must be below {TRANSACTION_LIMIT}"
            )
        request_id = next(self._request_ids)
        kind = core.Deposit if c.amount > 0 else core.Withdraw
        txn_id = (c.account_id << TRANSACTION_BITS) | c.transaction_id
        command = kind(request_id, c.account_id, abs(c.amount), txn_id, "CNY", time.time_ns())
        return await self._send(
            request_id,
            command,
            lambda _a: {"account_id": c.account_id, "transaction_id": c.transaction_id},
        )

    async def _admin(self, c: AdminCommand) -> Answer:
        request_id = next(self._request_ids)
        now = time.time_ns()
        if c.action is AdminAction.EXECUTE_SETTLEMENT:
            day = int(time.strftime("%Y%m%d", time.gmtime(now / 1e9)))
            command: Any = core.ExecuteSettlement(request_id, day, now)
            return await self._send(request_id, command, lambda _a: {"trading_day": day})
        if c.action in (AdminAction.CREATE_INSTRUMENT, AdminAction.UPDATE_INSTRUMENT):
            return await self._admin_instrument(c)
        instrument = await self.find_instrument(c.instrument_id or "")
        if instrument is None:
            return Answer(ResultCode.NO_SUCH_INSTRUMENT, f"no instrument {c.instrument_id}")
        if c.action is AdminAction.SET_SETTLEMENT_PRICE:
            price = Decimal(c.fields["settlement_price"])
            ticks = instrument.price_to_ticks(price)
            if ticks is None:
                return Answer(
                    ResultCode.PRICE_NOT_ON_TICK, f"{price} is not on {instrument.id}'s tick"
                )
            if ticks > MAX_TICKS:
                return Answer(
                    ResultCode.BAD_MESSAGE,
                    f"settlement_price {price} is beyond the largest price "
                    f"({instrument.ticks_to_price(MAX_TICKS)})",
                )
            command = core.SetSettlementPrice(request_id, instrument.index, ticks, now)
        else:
            kinds = {
                AdminAction.SUSPEND_INSTRUMENT: core.SuspendInstrument,
                AdminAction.RESUME_INSTRUMENT: core.ResumeInstrument,
                AdminAction.DELIST_INSTRUMENT: core.DelistInstrument,
            }
            command = kinds[c.action](request_id, instrument.id, now)
        return await self._send(request_id, command, lambda _a: {"instrument_id": instrument.id})

    async def _admin_instrument(self, c: AdminCommand) -> Answer:
        """Create or update an instrument: the table (REST names turned into the registry's
        TOML names) is checked here for a clear message, then travels on `cmd` as JSON chunks
        that accounts journals and applies; once accepted, the registry is refreshed."""
        request_id = next(self._request_ids)
        now = time.time_ns()
        target = c.instrument_id or ""
        table = _instrument_table(c.fields)
        if isinstance(table, Answer):
            return table
        current = await self.find_instrument(target)
        command: Any
        if c.action is AdminAction.CREATE_INSTRUMENT:
            table = {"id": target, "currency": DEFAULT_CURRENCY, **table}
            checked = (len(self.registry), table)
            command = core.CreateInstrument(request_id, table, now)
        elif current is None:
            return Answer(ResultCode.NO_SUCH_INSTRUMENT, f"no instrument {target}")
        elif table.get("currency", current.currency.code) != current.currency.code:
            return Answer(ResultCode.CONFIG, f"{target} is listed in {current.currency.code}")
        else:
            checked = (current.index, {**describe(current), **table})
            command = core.UpdateInstrument(request_id, target, table, now)
        try:
            parse_instrument(*checked, self.registry.currencies)
        except InstrumentConfigError as exc:
            return Answer(ResultCode.CONFIG, str(exc))
        answer = await self._send(request_id, command, lambda _a: {"instrument_id": target})
        if answer.ok:
            await self.refresh_instruments()
        return answer

    async def _adopt_instruments(self) -> None:
        """The instruments accounts has (created ones survive restarts there): at start, then
        every REFRESH_EVERY_S (every second until accounts first answers)."""
        answered = False
        while True:
            answered = await self.refresh_instruments() or answered
            await asyncio.sleep(REFRESH_EVERY_S if answered else 1.0)

    async def refresh_instruments(self) -> bool:
        """Adopt the accounts process's instrument definitions (created or changed at run
        time); True when it answered. Called periodically, on demand for an unknown id and
        after an accepted create/update."""
        answer = await self._ask(self._accounts, "instruments", ResultCode.UNAVAILABLE)
        if not answer.ok or not isinstance(answer.data, list):
            log.warning("instrument refresh failed: %s", answer.message)
            return False
        adopt_definitions(self.registry, answer.data)
        return True

    async def _send(self, request_id: int, command: Any, on_accept: OnAccept) -> Answer:
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._enqueue(request_id, command, on_accept, functools.partial(_settle, future))
        try:
            return await future
        finally:
            self._pending.pop(request_id, None)

    def _enqueue(self, request_id: int, command: Any, on_accept: OnAccept, done: Done) -> None:
        """Queue a command for this loop turn's batch; `done` hears its answer."""
        self._pending[request_id] = _Pending(done, on_accept)
        self._outbound.append((request_id, command))
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    async def _expire(self) -> None:
        """Answer 9005 to every request the exchange has not answered in `answer_timeout_s`."""
        timeout_ns = int(self.answer_timeout_s * 1e9)
        while True:
            await asyncio.sleep(EXPIRE_EVERY_S)
            oldest = time.perf_counter_ns() - timeout_ns
            expired = []
            for request_id, pending in self._pending.items():  # in request order: oldest first
                if pending.started_ns > oldest:
                    break
                expired.append(request_id)
            silent = Answer(
                ResultCode.UNAVAILABLE, f"no answer from the exchange in {self.answer_timeout_s}s"
            )
            for request_id in expired:
                self._resolve(request_id, silent)

    def _flush(self) -> None:
        """Write every command of this loop turn as one batch."""
        self._flush_handle = None
        outbound, self._outbound = self._outbound, []
        batch = commands_to_cmd(
            [command for _rid, command in outbound],
            self._index_of,
            source=self.gateway_id,
            first_seq=self._writer.published + 1,
            ts_init=time.time_ns(),
        )
        try:
            self._writer.write(batch, timeout=WRITE_TIMEOUT_S)
        except RingTimeout:
            self.write_stalls += 1
            log.warning("cmd ring full: refused %d commands", len(outbound))
            for request_id, _command in outbound:
                self._resolve(request_id, Answer(ResultCode.UNAVAILABLE, "exchange is busy"))

    def _index_of(self, instrument_id: str) -> int:
        instrument = self.registry.get(instrument_id)
        if instrument is None:
            raise KeyError(instrument_id)
        return instrument.index

    # -- events ------------------------------------------------------------------------------

    def _on_events(self, batch: np.ndarray[Any, Any]) -> None:
        """One ring read. Only what someone here needs is decoded: the answers to this
        gateway's requests (resolved first), and the records of watched accounts whose kind
        some connection of the owner wants (rendered, then pushed per engine transaction).
        Every order's account is noted from the columns (ownership checks), and finished
        orders are forgotten, after the pushes (they render with the client's details).

        The selection is a Python pass over four columns turned into lists: a read holds a
        few to a few thousand records, and a numpy operation costs microseconds however
        small its array (the ~25 of them this took cost more than the whole pass)."""
        kinds = batch["kind"].tolist()
        accounts = batch["account"].tolist()
        answers = [i for i, kind in enumerate(kinds) if kind in _ANSWERED]
        if answers:
            ids = batch["request_id"].take(answers).tolist()
            gateway = self.gateway_id
            answers = [
                i for i, rid in zip(answers, ids, strict=True) if rid >> REQUEST_SHIFT == gateway
            ]
        pushes, transactions = self._pushes(batch, kinds, accounts) if self._watched else ([], [])
        if answers or pushes:
            decoded = _decode(batch, [*answers, *pushes])
            for index in answers:
                answer = decoded[index]
                if type(answer) is CommandAccepted:
                    self._accepted(answer)
                else:
                    self._resolve(answer.request_id, Answer(answer.code, answer.message))
            if pushes:
                self._push([decoded[index] for index in pushes], transactions)
        updates = [i for i, kind in enumerate(kinds) if kind == _ORDER_UPDATED]
        if updates:
            updated = batch.take(updates)
            self._renderer.track(
                updated["order_id"].tolist(),
                [accounts[i] for i in updates],
                updated["status"].tolist(),
            )

    def _pushes(
        self, batch: np.ndarray[Any, Any], kinds: list[int], accounts: list[int]
    ) -> tuple[list[int], list[int]]:
        """The records to push (watched account, a kind some sink of its owner wants), and
        the engine transaction of each (accounts flags the last record of one)."""
        watched, wanted_by = self._watched, {}
        keep, transactions = [], []
        flags = batch["flags"].tolist()
        transaction = 0
        for index, kind in enumerate(kinds):
            pushed = _PUSHED.get(kind)
            if pushed is not None:
                user = watched.get(accounts[index])
                if user is not None:
                    wanted = wanted_by.get(user)
                    if wanted is None:
                        wanted = wanted_by[user] = self._wanted(user)
                    if pushed in wanted:
                        keep.append(index)
                        transactions.append(transaction)
            if flags[index] & _LAST_IN_BATCH:
                transaction += 1
        return keep, transactions

    def _push(self, events: list[Any], transactions: list[int]) -> None:
        """Render the events and hand each engine transaction's to the owners' sinks."""
        rendered = self._renderer.render(events, self._watched)
        by_user: dict[int, list[AccountEvent]] = {}
        current = transactions[0]
        for transaction, event in zip(transactions, rendered, strict=True):
            if transaction != current:
                self._deliver(by_user)
                by_user, current = {}, transaction
            by_user.setdefault(event.user_id, []).append(event)
        self._deliver(by_user)

    def _deliver(self, by_user: dict[int, list[AccountEvent]]) -> None:
        """One engine transaction's events to each user's sinks, in one call per sink."""
        for user_id, user_events in by_user.items():
            for sink, _kinds in tuple(self._subscribers.get(user_id, ())):
                try:
                    sink(user_events)
                except Exception:
                    log.exception("event sink of user %d failed", user_id)

    def _wanted(self, user_id: int) -> frozenset[EventKind]:
        """The event kinds some sink of the user wants."""
        wanted: set[EventKind] = set()
        for _sink, kinds in self._subscribers.get(user_id, ()):
            wanted.update(ALL_EVENT_KINDS if kinds is None else kinds())
        return frozenset(wanted)

    def _accepted(self, answer: CommandAccepted) -> None:
        pending = self._pending.get(answer.request_id)
        if pending is None:
            return
        data = pending.on_accept(answer) if pending.on_accept is not None else None
        self._resolve(answer.request_id, Answer(ResultCode.OK, data=data))

    def _resolve(self, request_id: int, answer: Answer) -> None:
        pending = self._pending.pop(request_id, None)
        if pending is None:
            return
        self._latency_ns[self.answers % LATENCY_SAMPLES] = (
            time.perf_counter_ns() - pending.started_ns
        )
        self.answers += 1
        self.answer_codes[answer.code.value] = self.answer_codes.get(answer.code.value, 0) + 1
        try:
            pending.done(answer)
        except Exception:
            log.exception("the receiver of request %d's answer failed", request_id)

    def subscribe_events(
        self, user_id: int, sink: EventSink, kinds: WantedKinds | None = None
    ) -> Unsubscribe:
        """`kinds` (None: all) says which event kinds the sink wants now; kinds no sink of the
        user wants are neither decoded nor rendered."""
        subscription = (sink, kinds)
        self._subscribers.setdefault(user_id, []).append(subscription)
        self._watch_user(user_id)

        def stop() -> None:
            subscriptions = self._subscribers.get(user_id)
            if subscriptions is not None and subscription in subscriptions:
                subscriptions.remove(subscription)
                if not subscriptions:
                    del self._subscribers[user_id]
                    self._watched = {a: u for a, u in self._watched.items() if u != user_id}

        return stop

    def _watch_user(self, user_id: int) -> None:
        if user_id in self._subscribers:
            for entry in self.directory.accounts_of(user_id):
                self._watched[entry.account_id] = user_id

    def subscribe_market(
        self, instrument_id: str, sink: Callable[[MarketUpdate], None]
    ) -> Unsubscribe:
        return self._market.subscribe(instrument_id, sink)

    # -- ownership and queries ---------------------------------------------------------------

    def known_owner(self, account_id: int) -> int | None:
        return self.directory.owner(account_id)

    async def account_owner(self, account_id: int) -> int | None:
        return self.directory.owner(account_id)

    async def order_account(self, order_id: int) -> int | None:
        known = self._renderer.order_accounts.get(order_id)
        if known is not None:
            return known
        answer = await self.query_order(order_id)
        if not answer.ok or not isinstance(answer.data, dict):
            return None
        account = answer.data.get("account_id")
        return int(account) if isinstance(account, int) else None

    async def query_account(self, account_id: int) -> Answer:
        answer = await self._ask(
            self._accounts, "account", ResultCode.NO_SUCH_ACCOUNT, account_id=account_id
        )
        if answer.ok and isinstance(answer.data, dict):
            return Answer(ResultCode.OK, data=flatten_qifi(account_id, answer.data))
        return answer

    async def query_user_accounts(self, user_id: int) -> Answer:
        rows = [
            {"account_id": e.account_id, "account_name": e.name, "user_id": e.user_id}
            for e in self.directory.accounts_of(user_id)
        ]
        return Answer(ResultCode.OK, data=rows)

    async def query_order(self, order_id: int) -> Answer:
        answer = await self._ask(
            self._accounts, "order", ResultCode.ORDER_NOT_FOUND, order_id=order_id
        )
        if answer.ok:
            return Answer(ResultCode.OK, data=self._renderer.order_row(answer.data))
        return answer

    async def query_user_orders(self, user_id: int) -> Answer:
        rows: list[Any] = []
        for entry in self.directory.accounts_of(user_id):
            answer = await self._ask(
                self._accounts, "orders", ResultCode.NO_SUCH_ACCOUNT, account_id=entry.account_id
            )
            if not answer.ok:
                return answer
            rows.extend(self._renderer.order_row(raw) for raw in answer.data or ())
        return Answer(ResultCode.OK, data=rows)

    async def query_positions(self, account_id: int) -> Answer:
        """QIFI positions (keyed by full instrument id) as rows with the full id."""
        answer = await self._ask(
            self._accounts, "positions", ResultCode.NO_SUCH_ACCOUNT, account_id=account_id
        )
        if answer.ok and isinstance(answer.data, dict):
            rows = [{**row, "instrument_id": key} for key, row in sorted(answer.data.items())]
            return Answer(ResultCode.OK, data=rows)
        return answer

    async def query_trades(self, account_id: int) -> Answer:
        answer = await self._ask(
            self._accounts,
            "trades",
            ResultCode.NO_SUCH_ACCOUNT,
            account_id=account_id,
            limit=TRADES_KEPT,
        )
        if answer.ok:
            rows = [self._renderer.trade_row(raw) for raw in answer.data or ()]
            return Answer(ResultCode.OK, data=rows)
        return answer

    async def settlement_history(self, start_date: str | None, end_date: str | None) -> Answer:
        answer = await self._ask(
            self._accounts,
            "settlement_history",
            ResultCode.BAD_MESSAGE,
            since=_trading_day(start_date) if start_date else 0,
        )
        if answer.ok and end_date:
            last = _trading_day(end_date)
            rows = [r for r in answer.data or () if r.get("trading_day", 0) <= last]
            return Answer(ResultCode.OK, data=rows)
        return answer

    async def settlement_detail(self, date: str) -> Answer:
        return await self._ask(
            self._accounts,
            "settlement_detail",
            ResultCode.BAD_MESSAGE,
            trading_day=_trading_day(date),
        )

    async def market_snapshot(self, instrument_id: str, depth: int = 5) -> Answer:
        answer = await self._market_query("snapshot", instrument_id, levels=depth)
        if answer.ok:
            data = market_view.snapshot(instrument_id, answer.data)
            data["bids"], data["asks"] = data["bids"][:depth], data["asks"][:depth]
            return Answer(ResultCode.OK, data=data)
        return answer

    async def recent_trades(self, instrument_id: str, count: int) -> Answer:
        answer = await self._market_query("recent_trades", instrument_id, count=count)
        if answer.ok:
            return Answer(ResultCode.OK, data=[market_view.tick(t) for t in answer.data])
        return answer

    async def klines(self, instrument_id: str, period_seconds: int, count: int) -> Answer:
        answer = await self._market_query(
            "klines", instrument_id, period=period_seconds, count=count
        )
        if answer.ok:
            return Answer(ResultCode.OK, data=[market_view.bar(b) for b in answer.data])
        return answer

    async def _market_query(self, command: str, instrument_id: str, **args: Any) -> Answer:
        """A market query answered by marketdata for a local instrument, by the feeds process
        (in marketdata's shapes) for an external one."""
        if await self.find_instrument(instrument_id) is not None:
            return await self._ask(
                self._marketdata, command, ResultCode.BAD_MESSAGE, instrument=instrument_id, **args
            )
        external = await self.external_instrument(instrument_id)
        if external is None or external.catalogue is None:
            return Answer(ResultCode.NO_SUCH_INSTRUMENT, f"no instrument {instrument_id}")
        return await _answered(
            external.catalogue.market_query(command, instrument_id, **args),
            ResultCode.BAD_MESSAGE,
        )

    async def _find_market_data(self) -> None:
        """Listen where marketdata really bound its PUB (it may fall back to a free port)."""
        for _attempt in range(FIND_MARKET_DATA_ATTEMPTS):
            try:
                endpoint = await self._marketdata.request("endpoint", timeout=1.0)
            except ControlError:
                await asyncio.sleep(1.0)
                continue
            if isinstance(endpoint, str):
                self._market.connect(endpoint)
            return

    async def health(self) -> Answer:
        checks = {"gateway": True, "events_reader": self._pump.alive}
        for name, client in (("accounts", self._accounts), ("marketdata", self._marketdata)):
            try:
                await client.request("ping", timeout=1.0)
                checks[name] = True
            except ControlError:
                checks[name] = False
        if not (checks["accounts"] and checks["events_reader"]):
            return Answer(ResultCode.UNAVAILABLE, f"exchange not ready: {checks}")
        return Answer(ResultCode.OK, data={"status": "ok", **checks})

    async def _ask(
        self, client: AsyncControlClient, command: str, refused: ResultCode, **args: Any
    ) -> Answer:
        """A control query as an Answer: a refusal is `refused`, silence is 9005."""
        return await _answered(client.request(command, **args), refused)

    # -- status ------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        samples = self._latency_ns[: min(self.answers, LATENCY_SAMPLES)]
        latency: dict[str, float] = {}
        if len(samples):
            p50, p99, p999 = np.percentile(samples, [50, 99, 99.9]) / 1000
            latency = {
                "p50": round(float(p50), 1),
                "p99": round(float(p99), 1),
                "p99.9": round(float(p999), 1),
            }
        return {
            "answers": self.answers,
            "answer_codes": {str(k): v for k, v in sorted(self.answer_codes.items())},
            "pending": len(self._pending),
            "write_stalls": self.write_stalls,
            "answer_latency_us": latency,
            "events_read": self._pump.records,
            "events_thread_cpu_s": round(self._pump.cpu_s, 3),
            "events_reader_alive": self._pump.alive,
            "event_users": len(self._subscribers),
            "market_instruments": self._market.watched,
            "market_received": self._market.received,
            "external": self.external.status() if self.external is not None else None,
        }


def _decode(batch: np.ndarray[Any, Any], rows: list[int]) -> dict[int, Any]:
    """Record index → its event, for `rows` of the batch."""
    return dict(zip(rows, records_to_events(take(batch, rows)), strict=True))


def _out_of_range(instrument: Instrument, ticks: int, lots: int) -> Answer:
    """1008 for an order whose price or volume no real order has."""
    if not 0 < lots <= MAX_LOTS:
        return Answer(
            ResultCode.BAD_ORDER_PARAMETER,
            f"volume {instrument.lots_to_qty(lots)} is beyond the largest order "
            f"({instrument.lots_to_qty(MAX_LOTS)})",
        )
    return Answer(
        ResultCode.BAD_ORDER_PARAMETER,
        f"price {instrument.ticks_to_price(ticks)} is beyond the largest price "
        f"({instrument.ticks_to_price(MAX_TICKS)})",
    )


async def _answered(request: Awaitable[Any], refused: ResultCode) -> Answer:
    """A control request's outcome as an Answer: a refusal is `refused`, silence is 9005, an
    answer carrying a nonzero `code` is that code."""
    try:
        data = await request
    except ControlTimeout as exc:
        return Answer(ResultCode.UNAVAILABLE, str(exc))
    except ControlError as exc:
        return Answer(refused, str(exc))
    if isinstance(data, dict) and "code" in data and data.get("code"):
        return Answer(ResultCode(int(data["code"])), str(data.get("message", "")))
    return Answer(ResultCode.OK, data=data)


def _trading_day(date: str) -> int:
    """`2025-01-02` → 20250102 (the schema has checked the shape)."""
    return int(date.replace("-", ""))


def flatten_qifi(account_id: int, data: dict[str, Any], currency: str = "CNY") -> dict[str, Any]:
    """A QIFI document (`accounts: {CUR: {...}}`) as one flat account row in `currency`;
    an already flat row is returned with its id."""
    accounts = data.get("accounts")
    if isinstance(accounts, dict) and accounts:
        row = accounts.get(currency) or next(iter(accounts.values()))
        return {"account_id": account_id, **row}
    return {"account_id": account_id, **data}
