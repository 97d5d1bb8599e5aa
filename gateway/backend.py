"""The one narrow interface between the edge and the exchange: `ExchangeBackend`.

Route handlers decode, authorize, call one of these methods and encode the answer; they know
nothing of rings or sockets. The implementation over the `cmd.<gw>` ring, the `events` ring and
the control/market-data sockets lives next to the gateway process (next phase). Every command
carries the requesting user so that the accounts process can re-check ownership; every answer
carries a `ResultCode`, and its `data` is already JSON-ready (floats rendered on the way out).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import IntEnum
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

from engine.codes import ResultCode
from engine.enums import Offset, OrderType, Side, TimeCondition, VolumeCondition
from engine.instruments import Instrument
from gateway.external import ExternalInstrument


class InstrumentSpec(Protocol):
    """What the edge needs of an instrument (engine/instruments.py provides it)."""

    @property
    def id(self) -> str:
        """`EXCHANGE.code`."""
        ...

    def price_to_ticks(self, price: Decimal) -> int | None:
        """Integer ticks of `price`, or None unless it is a positive multiple of the tick."""
        ...

    def qty_to_lots(self, qty: Decimal) -> int | None:
        """Integer lots of `qty`, or None unless it is a positive whole number of lots."""
        ...


class PlaceOrder(NamedTuple):
    user_id: int
    account_id: int
    instrument_id: str
    side: Side
    offset: Offset
    order_type: OrderType
    time_condition: TimeCondition
    volume_condition: VolumeCondition
    price: int
    """Limit price in ticks; 0 for a market order."""
    qty: int
    """Quantity in lots."""
    client_order_id: str | None = None


class CancelOrder(NamedTuple):
    user_id: int
    account_id: int
    order_id: int | None = None
    client_order_id: str | None = None


class OpenAccount(NamedTuple):
    user_id: int
    account_name: str | None = None


class AdjustBalance(NamedTuple):
    """A deposit (amount > 0) or withdrawal (amount < 0), idempotent by `transaction_id`."""

    user_id: int
    account_id: int
    amount: int
    """Money in fixed point at the account currency's scale (CNY: 0.01)."""
    transaction_id: int


class AdminAction(IntEnum):
    NONE = 0
    CREATE_INSTRUMENT = 1
    UPDATE_INSTRUMENT = 2
    SUSPEND_INSTRUMENT = 3
    RESUME_INSTRUMENT = 4
    DELIST_INSTRUMENT = 5
    SET_SETTLEMENT_PRICE = 6
    EXECUTE_SETTLEMENT = 7


class AdminCommand(NamedTuple):
    """An administrator's command; `fields` are the parsed schema values (Decimals, strings)."""

    user_id: int
    action: AdminAction
    instrument_id: str | None = None
    fields: Mapping[str, Any] = MappingProxyType({})


Command = PlaceOrder | CancelOrder | OpenAccount | AdjustBalance | AdminCommand


@dataclass(frozen=True)
class Answer:
    """The exchange's answer to one command or query."""

    code: ResultCode
    message: str = ""
    data: Any = None

    @property
    def ok(self) -> bool:
        return self.code is ResultCode.OK


class EventKind(IntEnum):
    NONE = 0
    ORDER_STATUS = 1
    TRADE = 2
    ACCOUNT = 3
    POSITION = 4


class EventRendering(Protocol):
    """Draws an event's views from its record (gateway/event_view.py `EventRenderer`)."""

    def draw(self, event: AccountEvent) -> Mapping[str, Any]:
        """The JSON-ready `data`."""
        ...

    def status_message(self, event: AccountEvent) -> dict[str, Any]:
        """The `/ws` order_status push of an ORDER_STATUS event."""
        ...


class AccountEvent:
    """A change to one account, pushed to its owner's connections; `data` is JSON-ready.

    The backend builds one per pushed record with the decoded record (`source`), the client's
    order details as they were when the record was read (`details`, for order and trade
    records) and the renderer; `data` is drawn from them when first read, so an order status
    that only a `/ws` connection takes (its message is built from `source`) never builds it. Built
    with `data` instead (tests), it is that.

    ORDER_STATUS: order_id, client_order_id, instrument_id, direction, offset, order_type,
      price, volume, filled_volume, remaining_volume, status (OrderStatus name),
      time_condition, volume_condition, last_msg, insert_time_ns, update_time_ns.
    TRADE: trade_id, order_id, client_order_id, instrument_id, direction, offset, price,
      volume, commission, trade_time_ns.
    ACCOUNT: the QIFI account fields (pre_balance, deposit, withdraw, static_balance,
      close_profit, commission, position_profit, float_profit, balance, margin,
      frozen_margin, frozen_commission, available, risk_ratio), update_time_ns.
    POSITION: instrument_id and the QIFI position fields, update_time_ns.
    """

    __slots__ = ("_data", "account_id", "details", "kind", "renderer", "source", "user_id")

    def __init__(
        self,
        kind: EventKind,
        user_id: int,
        account_id: int,
        data: Mapping[str, Any] | None = None,
        source: Any = None,
        details: Any = None,
        renderer: EventRendering | None = None,
    ) -> None:
        self.kind = kind
        self.user_id = user_id
        self.account_id = account_id
        self._data = data
        self.source = source
        self.details = details
        self.renderer = renderer

    @property
    def data(self) -> Mapping[str, Any]:
        data = self._data
        if data is None:
            assert self.renderer is not None, "an AccountEvent needs data or a renderer"
            data = self._data = self.renderer.draw(self)
        return data

    def __repr__(self) -> str:
        return f"AccountEvent({self.kind.name}, user {self.user_id}, account {self.account_id})"


class MarketChannel(IntEnum):
    NONE = 0
    QUOTE = 1
    BOOK = 2
    TICK = 3
    KLINE = 4


@dataclass(frozen=True)
class MarketUpdate:
    """One market-data message, JSON-ready.

    QUOTE: the DIFF quote market fields (gateway/diff/messages.py) and datetime_ns.
    BOOK: bids and asks as [{price, volume, order_count}], timestamp_ns.
    TICK: one trade print: id, last_price, volume (the trade's), timestamp_ns.
    KLINE: period_seconds, id, datetime_ns, open, high, low, close, volume, open_oi, close_oi.
    """

    channel: MarketChannel
    instrument_id: str
    data: Mapping[str, Any]


Unsubscribe = Callable[[], None]


class ExchangeBackend(Protocol):
    """Everything the edge asks of the exchange. Sinks are called on the event loop and must not
    block: they put into an outbox or a DIFF session and return."""

    def instrument(self, instrument_id: str) -> Instrument | None:
        """The engine's instrument (a cached table the backend keeps current)."""
        ...

    async def find_instrument(self, instrument_id: str) -> Instrument | None:
        """`instrument`, but an id unknown here is first asked of the exchange (rate-limited):
        what a request awaits before it answers 1007, so an instrument created through another
        gateway is found at once."""
        ...

    def instruments(self) -> Sequence[Instrument]: ...

    async def external_instrument(self, instrument_id: str) -> ExternalInstrument | None:
        """An instrument of another venue the feeds process publishes (watch only, never
        traded); None for local ids and unknown ones."""
        ...

    async def submit(self, command: Command) -> Answer: ...

    def submit_nowait(
        self, command: PlaceOrder | CancelOrder, done: Callable[[Answer], None]
    ) -> None:
        """`submit` for the hot order path: no coroutine, task or future per order; `done` is
        called on the loop with the answer (at once when the command is refused before the
        exchange sees it)."""
        ...

    def known_owner(self, account_id: int) -> int | None:
        """`account_owner` without awaiting (the gateway's directory answers it)."""
        ...

    async def account_owner(self, account_id: int) -> int | None:
        """The user id owning an account, or None if there is no such account."""
        ...

    async def order_account(self, order_id: int) -> int | None:
        """The account id of an order, or None if there is no such order."""
        ...

    async def query_account(self, account_id: int) -> Answer: ...

    async def query_user_accounts(self, user_id: int) -> Answer: ...

    async def query_order(self, order_id: int) -> Answer: ...

    async def query_user_orders(self, user_id: int) -> Answer: ...

    async def query_positions(self, account_id: int) -> Answer: ...

    async def query_trades(self, account_id: int) -> Answer: ...

    async def query_instruments(self) -> Answer: ...

    async def market_snapshot(self, instrument_id: str, depth: int = 5) -> Answer:
        """{instrument_id, quote: DIFF quote fields and datetime_ns, bids, asks, timestamp_ns}
        with the book to `depth` levels."""
        ...

    async def recent_trades(self, instrument_id: str, count: int) -> Answer:
        """The newest trade prints, oldest first, shaped like MarketUpdate TICK data."""
        ...

    async def klines(self, instrument_id: str, period_seconds: int, count: int) -> Answer:
        """The newest `count` bars, oldest first, shaped like MarketUpdate KLINE data."""
        ...

    async def settlement_history(self, start_date: str | None, end_date: str | None) -> Answer: ...

    async def settlement_detail(self, date: str) -> Answer: ...

    def subscribe_events(
        self,
        user_id: int,
        sink: Callable[[Sequence[AccountEvent]], None],
        kinds: Callable[[], Collection[EventKind]] | None = None,
    ) -> Unsubscribe:
        """Deliver a user's account events: one call per engine transaction (a fill's trade,
        order status and account update together), in the order the engine produced them.
        `kinds` says which kinds the sink wants at the moment (None: all); kinds no sink of
        the user wants need not be delivered (nor decoded)."""
        ...

    def subscribe_market(
        self, instrument_id: str, sink: Callable[[MarketUpdate], None]
    ) -> Unsubscribe: ...

    async def health(self) -> Answer:
        """Whether the processes behind the edge answer (`/health`)."""
        ...
