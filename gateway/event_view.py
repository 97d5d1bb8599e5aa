"""Accounts events (decoded from the `events` ring) → the edge's JSON-ready `AccountEvent`s.

Records carry integers (ticks, lots, fixed-point money) and indexes; this is where they become
instrument ids, names and floats, once, on the way out. An order's client-side details that the
records do not carry (client order id, order type, conditions, insert time) are remembered here
when this gateway submits the order; orders placed through another gateway get the defaults.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, NamedTuple

from engine.accounts.events import AccountUpdated, OrderUpdated, PositionUpdated, TradeBooked
from engine.codes import ResultCode
from engine.enums import Offset, OrderStatus, OrderType, Side, TimeCondition, VolumeCondition
from engine.instruments import InstrumentRegistry
from gateway.backend import AccountEvent, EventKind

MAX_REMEMBERED_ORDERS = 1_000_000
"""Orders whose details and account are kept at most: a finished order is forgotten when its
last update is read, so only orders that never report one (an answer lost, an order of another
gateway whose end this gateway missed) reach this backstop, which forgets the oldest."""


class OrderDetails(NamedTuple):
    """What the client said about an order that the exchange's records do not carry (one per
    order placed: a NamedTuple, ~8x cheaper to build than a frozen dataclass)."""

    client_order_id: str | None
    order_type: OrderType
    time_condition: TimeCondition
    volume_condition: VolumeCondition
    insert_time_ns: int


_ORDER_ENUMS = {
    "order_type": OrderType,
    "time_condition": TimeCondition,
    "volume_condition": VolumeCondition,
}
_DEFAULT = OrderDetails(None, OrderType.LIMIT, TimeCondition.GFD, VolumeCondition.ANY, 0)

_SIDE, _OFFSET, _STATUS, _CODE, _ORDER_TYPE, _TIME, _VOLUME = (
    {member: member.name for member in enum}
    for enum in (Side, Offset, OrderStatus, ResultCode, OrderType, TimeCondition, VolumeCondition)
)
"""Member → name, one table per enum: `Enum.name` is a slow descriptor on every event."""
_FIRST_FINAL = int(OrderStatus.FILLED)
"""FILLED, CANCELLED and REJECTED (the statuses from here up) end an order: no update follows."""


_OF_ORDERS = frozenset({EventKind.ORDER_STATUS, EventKind.TRADE})
"""Event kinds rendered with the client's order details."""


def _last_msg(update: OrderUpdated) -> str:
    return _CODE[update.code] if update.code else _STATUS[update.status]


def number(value: Decimal) -> int | float:
    """A Decimal as the JSON number a client expects: whole values as ints."""
    return int(value) if value == value.to_integral_value() else float(value)


class EventRenderer:
    """Renders events; remembers each order's details and its account (ownership checks)."""

    def __init__(
        self, registry: InstrumentRegistry, max_orders: int = MAX_REMEMBERED_ORDERS
    ) -> None:
        self.registry = registry
        self.max_orders = max_orders
        self.details: dict[int, OrderDetails] = {}
        self.order_accounts: dict[int, int] = {}
        self._client_ids: dict[tuple[int, str], int] = {}
        self._kinds: dict[type, EventKind] = {
            OrderUpdated: EventKind.ORDER_STATUS,
            TradeBooked: EventKind.TRADE,
            AccountUpdated: EventKind.ACCOUNT,
            PositionUpdated: EventKind.POSITION,
        }

    def remember(self, order_id: int, account_id: int, details: OrderDetails) -> None:
        self.details[order_id] = details
        self.order_accounts[order_id] = account_id
        if details.client_order_id:
            self._client_ids[(account_id, details.client_order_id)] = order_id
        if len(self.details) > self.max_orders:
            self._forget_oldest(self.details)

    def by_client_id(self, account_id: int, client_order_id: str | None) -> int | None:
        """The exchange id of a live order this gateway placed with that client order id."""
        if not client_order_id:
            return None
        return self._client_ids.get((account_id, client_order_id))

    def track(
        self, order_ids: Sequence[int], account_ids: Sequence[int], statuses: Sequence[int]
    ) -> None:
        """Note the account of every order an `events` read mentions (ownership checks of
        orders placed through other gateways), from the record columns, and forget every
        order whose update is final. Call after the read is rendered (a fill's trade after
        its order's FILLED still wants the client's details)."""
        accounts = self.order_accounts
        accounts.update(zip(order_ids, account_ids, strict=True))
        for order_id, status in zip(order_ids, statuses, strict=True):
            if status >= _FIRST_FINAL:
                self._forget(order_id)
        if len(accounts) > self.max_orders:
            self._forget_oldest(accounts)

    def _forget(self, order_id: int) -> None:
        account_id = self.order_accounts.pop(order_id, 0)
        details = self.details.pop(order_id, None)
        if details is not None and details.client_order_id:
            key = (account_id, details.client_order_id)
            if self._client_ids.get(key) == order_id:
                del self._client_ids[key]

    def _forget_oldest(self, orders: dict[int, Any]) -> None:
        """The backstop: forget the oldest of `orders` in one pass, down to 7/8 of the cap."""
        excess = len(orders) - self.max_orders + self.max_orders // 8
        for order_id in list(itertools.islice(orders, max(excess, 1))):
            self._forget(order_id)

    def render(self, events: Iterable[Any], owner: Mapping[int, int]) -> list[AccountEvent]:
        """The events of accounts that have an owner in `owner` (account → user), in order;
        their `data` is drawn when first read, with the order details of now."""
        out: list[AccountEvent] = []
        kinds, details = self._kinds, self.details
        for event in events:
            user = owner.get(getattr(event, "account_id", 0))
            kind = kinds.get(type(event))
            if user is not None and kind is not None:
                known = details.get(event.order_id, _DEFAULT) if kind in _OF_ORDERS else None
                out.append(AccountEvent(kind, user, event.account_id, None, event, known, self))
        return out

    def draw(self, event: AccountEvent) -> dict[str, Any]:
        """An event's JSON-ready `data` (AccountEvent.data)."""
        source = event.source
        if event.kind is EventKind.ORDER_STATUS:
            return self.order(source, event.details)
        if event.kind is EventKind.TRADE:
            return self.trade(source, event.details)
        if event.kind is EventKind.ACCOUNT:
            return self.account(source)
        return self.position(source)

    def status_message(self, event: AccountEvent) -> dict[str, Any]:
        """The `/ws` `order_status` push (reference part 2 §6), straight from the record."""
        update: OrderUpdated = event.source
        lots = _numbers(self.registry.by_index(update.instrument_index).lot_size)
        return {
            "type": "order_status",
            "order_id": update.order_id,
            "client_order_id": event.details.client_order_id,
            "status": _STATUS[update.status],
            "filled_volume": lots[update.filled],
            "remaining_volume": lots[update.qty - update.filled],
            "last_msg": _last_msg(update),
            "timestamp": update.ts // 1_000_000,
        }

    def order(self, event: OrderUpdated, details: OrderDetails | None = None) -> dict[str, Any]:
        """An order's full view; `details` default to the ones remembered now."""
        instrument = self.registry.by_index(event.instrument_index)
        if details is None:
            details = self.details.get(event.order_id, _DEFAULT)
        lots = _numbers(instrument.lot_size)
        return {
            "order_id": event.order_id,
            "client_order_id": details.client_order_id,
            "account_id": event.account_id,
            "instrument_id": instrument.id,
            "direction": _SIDE[event.side],
            "offset": _OFFSET[event.offset],
            "order_type": _ORDER_TYPE[details.order_type],
            "price": _numbers(instrument.price_tick)[event.price] if event.price else None,
            "volume": lots[event.qty],
            "filled_volume": lots[event.filled],
            "remaining_volume": lots[event.qty - event.filled],
            "status": _STATUS[event.status],
            "time_condition": _TIME[details.time_condition],
            "volume_condition": _VOLUME[details.volume_condition],
            "last_msg": _last_msg(event),
            "insert_time_ns": details.insert_time_ns or event.ts,
            "update_time_ns": event.ts,
        }

    def order_row(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """An order as the accounts `order`/`orders` queries answer it (integers), rendered like
        an ORDER_STATUS push; the engine's own order type and conditions win when present."""
        update = OrderUpdated(
            raw["account_id"],
            raw["order_id"],
            raw["instrument_index"],
            Side(raw["side"]),
            Offset(raw["offset"]),
            raw["price"],
            raw["qty"],
            raw["filled"],
            OrderStatus(raw["status"]),
            ResultCode(raw.get("code", 0)),
            raw["ts"],
        )
        row = self.order(update)
        for name, enum in _ORDER_ENUMS.items():
            if name in raw:
                row[name] = enum(raw[name]).name
        return row

    def trade_row(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """A trade as the accounts `trades` query answers it, rendered like a TRADE push."""
        booked = {**raw, "side": Side(raw["side"]), "offset": Offset(raw["offset"])}
        return self.trade(TradeBooked(**booked))

    def trade(self, event: TradeBooked, details: OrderDetails | None = None) -> dict[str, Any]:
        """A trade's full view; `details` default to the ones remembered now."""
        instrument = self.registry.by_index(event.instrument_index)
        if details is None:
            details = self.details.get(event.order_id, _DEFAULT)
        scale = instrument.currency.scale
        return {
            "trade_id": event.trade_id,
            "order_id": event.order_id,
            "client_order_id": details.client_order_id,
            "account_id": event.account_id,
            "instrument_id": instrument.id,
            "direction": _SIDE[event.side],
            "offset": _OFFSET[event.offset],
            "price": _numbers(instrument.price_tick)[event.price] if event.price else None,
            "volume": _numbers(instrument.lot_size)[event.qty],
            "commission": event.commission / scale,
            "close_profit": event.close_profit / scale,
            "trade_time_ns": event.ts,
        }

    def account(self, event: AccountUpdated) -> dict[str, Any]:
        scale = self.registry.currencies[event.currency].scale
        balance = event.balance
        return {
            "currency": event.currency,
            "static_balance": (balance - event.position_profit) / scale,
            "close_profit": event.close_profit / scale,
            "commission": event.commission / scale,
            "position_profit": event.position_profit / scale,
            "float_profit": event.position_profit / scale,
            "balance": balance / scale,
            "margin": event.margin / scale,
            "frozen_margin": event.frozen_margin / scale,
            "frozen_commission": event.frozen_commission / scale,
            "available": event.available / scale,
            "risk_ratio": event.margin / balance if balance > 0 else 0.0,
            "update_time_ns": event.ts,
        }

    def position(self, event: PositionUpdated) -> dict[str, Any]:
        instrument = self.registry.by_index(event.instrument_index)
        return {
            "instrument_id": instrument.id,
            "volume_long_today": event.long_today,
            "volume_long_his": event.long_history,
            "volume_long": event.long_today + event.long_history,
            "volume_short_today": event.short_today,
            "volume_short_his": event.short_history,
            "volume_short": event.short_today + event.short_history,
            "volume_long_frozen": event.long_frozen,
            "volume_short_frozen": event.short_frozen,
            "margin": event.margin / instrument.currency.scale,
            "update_time_ns": event.ts,
        }


class _Numbers(dict[int, int | float]):
    """Integer ticks or lots of one step → the JSON number (a book trades at few prices and
    sizes, and the Decimal round trip is most of an event's rendering cost): a hit is a plain
    dict lookup, a miss computes and keeps it (all dropped beyond `_NUMBERS_KEPT`)."""

    def __init__(self, step: Decimal) -> None:
        super().__init__()
        self.step = step

    def __missing__(self, count: int) -> int | float:
        if len(self) >= _NUMBERS_KEPT:
            self.clear()
        value = self[count] = number(self.step * count)
        return value


_NUMBERS: dict[Decimal, _Numbers] = {}
_NUMBERS_KEPT = 100_000


def _numbers(step: Decimal) -> _Numbers:
    """The memo of one tick or lot size."""
    numbers = _NUMBERS.get(step)
    if numbers is None:
        numbers = _NUMBERS[step] = _Numbers(step)
    return numbers
