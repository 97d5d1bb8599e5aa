"""An account: ledgers per currency, futures positions, live orders, and the booking rules.

Futures use margin (hold margin + commission on open, book PnL on close). Spot instruments use
exchange mode: a buy holds quote currency (notional + commission), a sell holds the base asset,
and a fill moves both currencies (docs/accounting.md §5). The account never sees a clock or a
price feed: marks (ticks per instrument) are passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from engine.accounts.ledger import Ledger
from engine.accounts.order import Order
from engine.accounts.position import Position, PositionSide
from engine.enums import CloseTodayRule, InstrumentKind, Offset, Side
from engine.instruments import Instrument, InstrumentRegistry


class Holds(NamedTuple):
    """What an order holds for its remaining quantity (money units; asset in `asset_currency`)."""

    margin: int = 0
    commission: int = 0
    asset: int = 0
    asset_currency: str = ""


def base_units_per_lot(instrument: Instrument, registry: InstrumentRegistry) -> int | None:
    """Base-asset money units in one lot of a spot instrument; None when not exact or unknown."""
    currency = registry.currencies.get(instrument.base_asset)
    if currency is None:
        return None
    units = instrument.lot_size * currency.scale
    return int(units) if units == units.to_integral_value() else None


def open_holds(instrument: Instrument, side: Side, price: int, qty: int, base_units: int) -> Holds:
    """The holds of an opening (futures) or spot order of `qty` lots at `price` ticks."""
    if instrument.kind is InstrumentKind.SPOT:
        if side is Side.SELL:
            return Holds(asset=qty * base_units, asset_currency=instrument.base_asset)
        notional = instrument.notional(price, qty)
        commission = instrument.commission_for(Offset.OPEN, price, qty)
        return Holds(asset=notional + commission, asset_currency=instrument.currency.code)
    return Holds(
        margin=instrument.margin(price, qty),
        commission=instrument.commission_for(Offset.OPEN, price, qty),
    )


def close_split(
    side: PositionSide, offset: Offset, rule: CloseTodayRule, qty: int
) -> tuple[int, int] | None:
    """(history, today) lots a close order of `qty` takes, or None when the volume is not there.

    CLOSETODAY takes today only and CLOSEYESTERDAY history only; CLOSE takes history first,
    then today, except under the SHFE rule, where CLOSE takes history only.
    """
    history_free, today_free = side.closable_history, side.closable_today
    if offset is Offset.CLOSETODAY:
        history = 0
    elif offset is Offset.CLOSEYESTERDAY or rule is CloseTodayRule.SHFE:
        history = qty
    else:
        history = min(qty, history_free)
    today = qty - history
    if history > history_free or today > today_free:
        return None
    return history, today


class Fill(NamedTuple):
    """What one fill booked on one account (money units of the instrument's currency)."""

    commission: int
    close_profit: int


class Account:
    """One client account; mutable, changed only by the accounts core."""

    __slots__ = ("account_id", "frozen", "frozen_by_instrument", "ledgers", "orders", "positions")

    def __init__(self, account_id: int) -> None:
        self.account_id = account_id
        self.frozen = False
        self.ledgers: dict[str, Ledger] = {}
        self.positions: dict[int, Position] = {}
        self.orders: dict[int, Order] = {}
        self.frozen_by_instrument: dict[int, int] = {}
        """Frozen margin of the live orders per instrument (the concentration check's input)."""

    def ledger(self, currency: str) -> Ledger:
        ledger = self.ledgers.get(currency)
        if ledger is None:
            ledger = self.ledgers[currency] = Ledger(currency)
        return ledger

    def position(self, instrument_index: int) -> Position:
        position = self.positions.get(instrument_index)
        if position is None:
            position = self.positions[instrument_index] = Position.empty(instrument_index)
        return position

    # --- holds -------------------------------------------------------------------------------

    def rehold(self, order: Order, instrument: Instrument, base_units: int) -> None:
        """Set the order's holds for its remaining quantity (or a pending amend, if larger).

        Recomputing from the remaining quantity instead of subtracting per fill keeps rounded
        margins and commissions exact: a finished order holds exactly zero.
        """
        qty = max(order.remaining, order.pending_qty) if order.live else 0
        if order.closes:
            self._reserve_to(order, qty, instrument.close_today_rule)
            return
        if qty:
            price = max(order.freeze_price, order.pending_price)
            margin, commission, asset, _ = open_holds(
                instrument, order.side, price, qty, base_units
            )
        else:
            margin = commission = asset = 0
        if margin != order.frozen_margin or commission != order.frozen_commission:
            ledger = self.ledger(instrument.currency.code)
            change = margin - order.frozen_margin
            ledger.frozen_margin += change
            ledger.frozen_commission += commission - order.frozen_commission
            index = order.instrument_index
            self.frozen_by_instrument[index] = self.frozen_by_instrument.get(index, 0) + change
            order.frozen_margin, order.frozen_commission = margin, commission
        if asset != order.frozen_asset:
            spot_sell = order.side is Side.SELL
            code = instrument.base_asset if spot_sell else instrument.currency.code
            self.ledger(code).frozen_asset += asset - order.frozen_asset
            order.frozen_asset = asset

    def _reserve_to(self, order: Order, qty: int, rule: CloseTodayRule) -> None:
        """Freeze position volume for a close order up to `qty` lots (history and today parts)."""
        side = self._closed_side(order)
        excess = order.reserved_history + order.reserved_today - qty
        if excess > 0:
            today = min(excess, order.reserved_today)
            history = excess - today
        else:
            split = close_split(side, order.offset, rule, -excess)
            if split is None:
                raise AssertionError(f"order {order.order_id}: reserving unchecked volume")
            history, today = (-split[0], -split[1])
        side.frozen_history -= history
        side.frozen_today -= today
        order.reserved_history -= history
        order.reserved_today -= today

    def finish(self, order: Order, instrument: Instrument, base_units: int) -> None:
        """The order ended (filled, cancelled, rejected): give back whatever it still holds."""
        self.rehold(order, instrument, base_units)
        self.orders.pop(order.order_id, None)
        self._drop_if_flat(order.instrument_index)

    # --- fills -------------------------------------------------------------------------------

    def fill(
        self, order: Order, instrument: Instrument, price: int, qty: int, base_units: int
    ) -> Fill:
        """Book a fill of `qty` lots at `price` ticks and re-hold for the remaining quantity.

        A fill that completes the order leaves the release to `finish`.
        """
        order.filled += qty
        if instrument.kind is InstrumentKind.SPOT:
            result = self._fill_spot(order, instrument, price, qty, base_units)
        elif order.closes:
            result = self._fill_close(order, instrument, price, qty)
        else:
            result = self._fill_open(order, instrument, price, qty)
        if order.filled < order.qty:
            self.rehold(order, instrument, base_units)
        return result

    def _fill_open(self, order: Order, instrument: Instrument, price: int, qty: int) -> Fill:
        ledger = self.ledger(instrument.currency.code)
        margin = instrument.margin(price, qty)
        commission = instrument.commission_for(Offset.OPEN, price, qty)
        self.position(order.instrument_index).side(order.side).open(
            qty, instrument.notional(price, qty), margin
        )
        ledger.margin += margin
        ledger.commission += commission
        return Fill(commission, 0)

    def _fill_close(self, order: Order, instrument: Instrument, price: int, qty: int) -> Fill:
        ledger = self.ledger(instrument.currency.code)
        history = min(qty, order.reserved_history)
        today = qty - history
        order.reserved_history -= history
        order.reserved_today -= today
        cost, margin = self._closed_side(order).close(history, today)
        notional = instrument.notional(price, qty)
        profit = notional - cost if order.side is Side.SELL else cost - notional
        commission = instrument.commission_for(
            Offset.CLOSE, price, history
        ) + instrument.commission_for(Offset.CLOSETODAY, price, today)
        ledger.margin -= margin
        ledger.close_profit += profit
        ledger.commission += commission
        self._drop_if_flat(order.instrument_index)
        return Fill(commission, profit)

    def _fill_spot(
        self, order: Order, instrument: Instrument, price: int, qty: int, base_units: int
    ) -> Fill:
        quote = self.ledger(instrument.currency.code)
        base = self.ledger(instrument.base_asset)
        notional = instrument.notional(price, qty)
        commission = instrument.commission_for(Offset.OPEN, price, qty)
        if order.side is Side.BUY:
            quote.exchange_flow -= notional
            base.exchange_flow += qty * base_units
        else:
            quote.exchange_flow += notional
            base.exchange_flow -= qty * base_units
        quote.commission += commission
        return Fill(commission, 0)

    def _closed_side(self, order: Order) -> PositionSide:
        """A SELL close reduces the long side, a BUY close the short side."""
        return self.position(order.instrument_index).side(order.side.opposite)

    def _drop_if_flat(self, instrument_index: int) -> None:
        position = self.positions.get(instrument_index)
        if position is not None and position.is_flat:
            del self.positions[instrument_index]

    # --- valuation ---------------------------------------------------------------------------

    def profits(
        self, currency: str, registry: InstrumentRegistry, marks: Mapping[int, int]
    ) -> tuple[int, int]:
        """(position_profit, float_profit) of the positions in `currency` at the marks."""
        position_profit = float_profit = 0
        for index, position in self.positions.items():
            instrument = registry.by_index(index)
            if instrument.currency.code != currency:
                continue
            mark = marks[index]
            long_value = instrument.notional(mark, position.long.volume)
            short_value = instrument.notional(mark, position.short.volume)
            position_profit += position.position_profit(long_value, short_value)
            float_profit += position.float_profit(long_value, short_value)
        return position_profit, float_profit

    def position_profit(
        self, currency: str, registry: InstrumentRegistry, marks: Mapping[int, int]
    ) -> int:
        """Position profit only (the hot path's question): `profits(...)[0]` in one loop."""
        total = 0
        for index, position in self.positions.items():
            instrument = registry.by_index(index)
            if instrument.currency.code == currency:
                long, short = position.long, position.short
                value = marks[index] * instrument.money_per_tick_lot
                total += (value * long.volume - long.position_cost) + (
                    short.position_cost - value * short.volume
                )
        return total

    def balance(self, currency: str, registry: InstrumentRegistry, marks: Mapping[int, int]) -> int:
        return self.ledger(currency).static_balance + self.position_profit(
            currency, registry, marks
        )

    def available(
        self, currency: str, registry: InstrumentRegistry, marks: Mapping[int, int]
    ) -> int:
        ledger = self.ledger(currency)
        return ledger.available(self.position_profit(currency, registry, marks))

    def state(self) -> tuple[object, ...]:
        return (
            self.account_id,
            int(self.frozen),
            tuple(self.ledgers[c].state() for c in sorted(self.ledgers)),
            tuple(self.positions[i].state() for i in sorted(self.positions)),
            tuple(self.orders[o].state() for o in sorted(self.orders)),
        )

    def check(self, registry: InstrumentRegistry) -> None:
        """Raise AssertionError when a stored total disagrees with its parts (a bug)."""
        where = f"account {self.account_id}"
        margin: dict[str, int] = {}
        frozen_margin: dict[str, int] = {}
        frozen_commission: dict[str, int] = {}
        frozen_asset: dict[str, int] = {}
        for index, position in self.positions.items():
            position.check(f"{where} instrument {index}")
            if position.is_flat:
                raise AssertionError(f"{where}: flat position {index} kept")
            code = registry.by_index(index).currency.code
            margin[code] = margin.get(code, 0) + position.margin
        reserved: dict[tuple[int, Side], list[int]] = {}
        for order in self.orders.values():
            instrument = registry.by_index(order.instrument_index)
            code = instrument.currency.code
            frozen_margin[code] = frozen_margin.get(code, 0) + order.frozen_margin
            frozen_commission[code] = frozen_commission.get(code, 0) + order.frozen_commission
            asset = instrument.base_asset if order.side is Side.SELL else code
            if order.frozen_asset:
                frozen_asset[asset] = frozen_asset.get(asset, 0) + order.frozen_asset
            if order.closes:
                key = (order.instrument_index, order.side.opposite)
                parts = reserved.setdefault(key, [0, 0])
                parts[0] += order.reserved_history
                parts[1] += order.reserved_today
        by_instrument: dict[int, int] = {}
        for order in self.orders.values():
            index = order.instrument_index
            by_instrument[index] = by_instrument.get(index, 0) + order.frozen_margin
        stored = {i: m for i, m in self.frozen_by_instrument.items() if m}
        if stored != {i: m for i, m in by_instrument.items() if m}:
            raise AssertionError(f"{where}: frozen margin per instrument out of step")
        for index, position in self.positions.items():
            for side in (Side.BUY, Side.SELL):
                history, today = reserved.get((index, side), (0, 0))
                position_side = position.side(side)
                if (position_side.frozen_history, position_side.frozen_today) != (history, today):
                    raise AssertionError(f"{where}: frozen volume differs from close orders")
        for code, ledger in self.ledgers.items():
            ledger.check(where)
            expected = (
                margin.get(code, 0),
                frozen_margin.get(code, 0),
                frozen_commission.get(code, 0),
                frozen_asset.get(code, 0),
            )
            stored = (
                ledger.margin,
                ledger.frozen_margin,
                ledger.frozen_commission,
                ledger.frozen_asset,
            )
            if stored != expected:
                raise AssertionError(f"{where} {code}: totals {stored} != sum of parts {expected}")
