"""An account: ledgers per currency, futures positions, live orders, and the booking rules.

Futures use margin (hold margin + commission on open, book PnL on close). Spot instruments use
exchange mode: a buy holds quote currency (notional + commission), a sell holds the base asset,
and a fill moves both currencies (docs/accounting.md §5). The account never sees a clock or a
price feed: marks (ticks per instrument) are passed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from engine.accounts.ledger import Ledger
from engine.accounts.order import Order
from engine.accounts.position import Position, PositionSide
from engine.accounts.terms import Terms
from engine.enums import CloseTodayRule, Offset, OrderStatus, Side
from engine.instruments import InstrumentRegistry

_BUY = Side.BUY
_SELL = Side.SELL
_CLOSETODAY = Offset.CLOSETODAY
_CLOSEYESTERDAY = Offset.CLOSEYESTERDAY
_SHFE = CloseTodayRule.SHFE
_FIRST_LIVE = OrderStatus.PENDING
_LAST_LIVE = OrderStatus.PARTIALLY_FILLED
"""Live statuses are PENDING..PARTIALLY_FILLED (order.LIVE_STATUSES), compared as ints here."""


def close_split(
    side: PositionSide, offset: Offset, rule: CloseTodayRule, qty: int
) -> tuple[int, int] | None:
    """(history, today) lots a close order of `qty` takes, or None when the volume is not there.

    CLOSETODAY takes today only and CLOSEYESTERDAY history only; CLOSE takes history first,
    then today, except under the SHFE rule, where CLOSE takes history only.
    """
    history_free = side.history - side.frozen_history
    today_free = side.today - side.frozen_today
    if offset is _CLOSETODAY:
        history = 0
    elif offset is _CLOSEYESTERDAY or rule is _SHFE:
        history = qty
    else:
        history = qty if qty < history_free else history_free
    today = qty - history
    if history > history_free or today > today_free:
        return None
    return history, today


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

    def hold(self, order: Order, terms: Terms, margin: int, commission: int, asset: int) -> None:
        """Change what an opening order holds to these amounts (the ledgers follow)."""
        frozen_margin = order.frozen_margin
        frozen_commission = order.frozen_commission
        if margin != frozen_margin or commission != frozen_commission:
            ledger = self.ledgers.get(terms.currency) or self.ledger(terms.currency)
            change = margin - frozen_margin
            ledger.frozen_margin += change
            ledger.frozen_commission += commission - frozen_commission
            index = order.instrument_index
            by_instrument = self.frozen_by_instrument
            by_instrument[index] = by_instrument.get(index, 0) + change
            order.frozen_margin = margin
            order.frozen_commission = commission
        if asset != order.frozen_asset:
            self.ledger(terms.asset_currency(order.side)).frozen_asset += asset - order.frozen_asset
            order.frozen_asset = asset

    def rehold(self, order: Order, terms: Terms) -> None:
        """Set the order's holds for its remaining quantity (or a pending amend, if larger).

        Recomputing from the remaining quantity instead of subtracting per fill keeps rounded
        margins and commissions exact: a finished order holds exactly zero.
        """
        if _FIRST_LIVE <= order.status <= _LAST_LIVE:
            qty = order.qty - order.filled
            if order.pending_qty > qty:
                qty = order.pending_qty
        else:
            qty = 0
        if order.closes:
            self._reserve_to(order, qty, terms.close_today_rule)
        elif qty:
            price = order.freeze_price
            if order.pending_price > price:
                price = order.pending_price
            margin, commission, asset = terms.holds(order.side, price, qty)
            self.hold(order, terms, margin, commission, asset)
        elif order.frozen_margin or order.frozen_commission or order.frozen_asset:
            self.hold(order, terms, 0, 0, 0)

    def _reserve_to(self, order: Order, qty: int, rule: CloseTodayRule) -> None:
        """Freeze position volume for a close order up to `qty` lots (history and today parts).

        Shrinking gives back first the history lots a pending amend reserved (all of what it
        reserved, as it reserved it, when the amend is refused), then today, then history.
        Growing while an amend is pending records the split on the order.
        """
        reserved_history = order.reserved_history
        reserved_today = order.reserved_today
        excess = reserved_history + reserved_today - qty
        if not excess:
            return
        side = self._closed_side(order)
        if excess > 0:
            history = min(excess, order.pending_history, reserved_history)
            today = min(excess - history, reserved_today)
            history = excess - today
        else:
            split = close_split(side, order.offset, rule, -excess)
            if split is None:
                raise AssertionError(f"order {order.order_id}: reserving unchecked volume")
            if order.pending_qty:
                order.pending_history += split[0]
                order.pending_today += split[1]
            history, today = (-split[0], -split[1])
        side.frozen_history -= history
        side.frozen_today -= today
        order.reserved_history = reserved_history - history
        order.reserved_today = reserved_today - today

    def release(self, order: Order, terms: Terms) -> None:
        """The order ended (filled, cancelled, rejected): give back whatever it still holds."""
        if order.closes:
            self._reserve_to(order, 0, terms.close_today_rule)
            self._drop_if_flat(order.instrument_index)
        elif order.frozen_margin or order.frozen_commission or order.frozen_asset:
            self.hold(order, terms, 0, 0, 0)

    # --- fills -------------------------------------------------------------------------------

    def fill(
        self, order: Order, terms: Terms, price: int, qty: int, remaining: int
    ) -> tuple[int, int]:
        """Book a fill of `qty` lots at `price` ticks; returns (commission, close profit).

        `remaining` is what matching says is left of the order: with some left the holds are
        recomputed for it, with none they are released (the caller forgets the order).
        A futures opening fill (the common one) books the position, the ledger and the holds
        in one pass here: what the order holds is recomputed for what is left of it, as
        `rehold` would (a live order: only live orders are filled), and moved into the same
        ledger the fill books.
        """
        order.filled += qty
        if terms.spot or order.closes:
            return self._fill_other(order, terms, price, qty, remaining)
        notional, margin, commission = terms.open_fill(price, qty)
        index = order.instrument_index
        position = self.positions.get(index) or self.position(index)
        side = position.long if order.side is _BUY else position.short
        side.today += qty
        side.open_cost += notional
        side.position_cost += notional
        side.margin += margin
        ledger = self.ledgers.get(terms.currency) or self.ledger(terms.currency)
        ledger.margin += margin
        ledger.commission += commission
        ledger.static_balance -= commission
        if remaining:
            held = order.pending_qty if order.pending_qty > remaining else remaining
            at = order.freeze_price
            if order.pending_price > at:
                at = order.pending_price
            _, held_margin, held_commission = terms.open_fill(at, held)
        else:
            held_margin = held_commission = 0
        change = held_margin - order.frozen_margin
        if change:
            ledger.frozen_margin += change
            by_instrument = self.frozen_by_instrument
            by_instrument[index] = by_instrument.get(index, 0) + change
            order.frozen_margin = held_margin
        change = held_commission - order.frozen_commission
        if change:
            ledger.frozen_commission += change
            order.frozen_commission = held_commission
        return commission, 0

    def _fill_other(
        self, order: Order, terms: Terms, price: int, qty: int, remaining: int
    ) -> tuple[int, int]:
        """A spot fill or a futures close, then the holds of what is left (none: released)."""
        if terms.spot:
            result = self._fill_spot(order, terms, price, qty)
        else:
            result = self._fill_close(order, terms, price, qty)
        if remaining:
            self.rehold(order, terms)
        else:
            self.release(order, terms)
        return result

    def _fill_close(self, order: Order, terms: Terms, price: int, qty: int) -> tuple[int, int]:
        ledger = self.ledger(terms.currency)
        history = min(qty, order.reserved_history)
        today = qty - history
        order.reserved_history -= history
        order.reserved_today -= today
        cost, margin = self._closed_side(order).close(history, today)
        notional = price * qty * terms.per_tick_lot
        profit = notional - cost if order.side is _SELL else cost - notional
        commission = terms.fee(terms.close_fee, price, history) + terms.fee(
            terms.close_today_fee, price, today
        )
        ledger.margin -= margin
        ledger.close_profit += profit
        ledger.commission += commission
        ledger.static_balance += profit - commission
        self._drop_if_flat(order.instrument_index)
        return commission, profit

    def _fill_spot(self, order: Order, terms: Terms, price: int, qty: int) -> tuple[int, int]:
        quote = self.ledger(terms.currency)
        base = self.ledger(terms.base_asset)
        notional = price * qty * terms.per_tick_lot
        commission = terms.fee(terms.open_fee, price, qty)
        units = qty * terms.lot_units()
        if order.side is _BUY:
            notional, units = -notional, -units
        quote.exchange_flow += notional
        quote.static_balance += notional - commission
        base.exchange_flow -= units
        base.static_balance -= units
        quote.commission += commission
        return commission, 0

    def _closed_side(self, order: Order) -> PositionSide:
        """A SELL close reduces the long side, a BUY close the short side."""
        position = self.position(order.instrument_index)
        return position.long if order.side is _SELL else position.short

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
        self, currency: str, terms: Sequence[Terms], marks: Mapping[int, int]
    ) -> int:
        """Position profit only (the hot path's question): `profits(...)[0]` in one loop.

        mark × (long − short) − (long cost − short cost): one product per position, the same
        integer as valuing each side (the sum is exact).
        """
        total = 0
        for index, position in self.positions.items():
            instrument = terms[index]
            if instrument.currency == currency:
                long, short = position.long, position.short
                net = long.today + long.history - short.today - short.history
                total += marks[index] * instrument.per_tick_lot * net
                total -= long.position_cost - short.position_cost
        return total

    def balance(self, currency: str, terms: Sequence[Terms], marks: Mapping[int, int]) -> int:
        return self.ledger(currency).static_balance + self.position_profit(currency, terms, marks)

    def available(self, currency: str, terms: Sequence[Terms], marks: Mapping[int, int]) -> int:
        ledger = self.ledger(currency)
        return ledger.available(self.position_profit(currency, terms, marks))

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
            asset = instrument.base_asset if order.side is _SELL else code
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
            totals = (
                ledger.margin,
                ledger.frozen_margin,
                ledger.frozen_commission,
                ledger.frozen_asset,
            )
            if totals != expected:
                raise AssertionError(f"{where} {code}: totals {totals} != sum of parts {expected}")
