"""AccountsCore: the accounts process's deterministic state machine (hold → match → release).

`apply(command)` answers a client command and returns the matching commands it causes;
`on_exec(event)` books what matching reports. Both return `(to_matching, events)`. The core
assigns order ids (increasing ints), runs risk before an order reaches matching, holds margin
and commission (or spot assets, or position volume) while the order lives, and releases what
is left when it ends. Rules and rounding: docs/accounting.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from engine.accounts import audit, checkpoint
from engine.accounts import commands as cmd
from engine.accounts.account import Account, close_split
from engine.accounts.events import (
    AccountLiquidated,
    CommandAccepted,
    CommandRejected,
    OrderUpdated,
    SettlementCompleted,
    SettlementResult,
    new_account_updated,
    new_command_accepted,
    new_order_updated,
    new_position_updated,
    new_trade_booked,
)
from engine.accounts.liquidation import closing_orders
from engine.accounts.order import Order
from engine.accounts.position import Position
from engine.accounts.qifi import render_account
from engine.accounts.risk import (
    PLAIN_ORDERS,
    RiskConfig,
    bad_order_fields,
    check_open,
    crosses_own_order,
    risk_ratio_e8,
)
from engine.accounts.settlement import Settlement, SettlementPhase, settle_account
from engine.accounts.terms import Terms, all_terms
from engine.codes import ResultCode
from engine.enums import (
    CancelReason,
    Offset,
    OrderStatus,
    OrderType,
    Side,
    TimeCondition,
)
from engine.instruments import Instrument, InstrumentRegistry
from engine.matching import commands as mc
from engine.matching import events as me

log = logging.getLogger(__name__)

# Enum members bound once: in Python 3.11 `Side.BUY` costs ~0.2 µs per access.
_BUY = Side.BUY
_SELL = Side.SELL
_OPEN = Offset.OPEN
_MARKET = OrderType.MARKET
_LIMIT = OrderType.LIMIT
_GTC = TimeCondition.GTC
_IOC = TimeCondition.IOC
_PENDING = OrderStatus.PENDING
_ACCEPTED = OrderStatus.ACCEPTED
_PARTIALLY_FILLED = OrderStatus.PARTIALLY_FILLED
_FILLED = OrderStatus.FILLED
_CANCELLED = OrderStatus.CANCELLED
_REJECTED = OrderStatus.REJECTED
_IDLE = SettlementPhase.IDLE
_EXPIRING = SettlementPhase.EXPIRING
_USER = CancelReason.USER
_OK = ResultCode.OK
_NOTHING: tuple[()] = ()
"""The matching commands of an exec that causes none (shared: nobody appends to it)."""
_NO_HOLDS = (0, 0, 0)

Out = tuple[list[Any], list[Any]]
"""(matching commands to send, accounts events to publish)."""
Booker = Callable[[Any, list[Any]], Sequence[Any]]
"""An exec handler: appends the events it causes, returns the matching commands it causes."""


class AccountsCore:
    """Accounts, positions, live orders, marks and settlement of one exchange instance.

    With `snapshots` on, every booking is followed by AccountUpdated/PositionUpdated events;
    with it off, the core only remembers which accounts changed and `snapshot_events(ts)`
    builds their snapshots on request (once per batch in the accounts process).
    """

    def __init__(
        self,
        instruments: InstrumentRegistry,
        risk: RiskConfig | None = None,
        *,
        snapshots: bool = True,
    ) -> None:
        self.instruments = instruments
        self.terms: list[Terms] = all_terms(instruments)
        """Per-instrument numbers by index, rebuilt whenever an instrument changes."""
        self.risk = risk or RiskConfig()
        self.snapshots = snapshots
        self.accounts: dict[int, Account] = {}
        self.orders: dict[int, Order] = {}
        self.marks: dict[int, int] = {i.index: i.pre_settlement or i.pre_close for i in instruments}
        self.settlement = Settlement()
        self.next_order_id = 1
        self.transactions: dict[int, tuple[int, int, str, int]] = {}
        """Booked transfers by txn_id: (account, +1 deposit / −1 withdraw, currency, amount)."""
        self.deposits: dict[str, int] = {}
        self.withdrawals: dict[str, int] = {}
        self.fees: dict[str, int] = {}
        self.day_orders: set[int] = set()
        self.touched: dict[int, set[int]] = {}
        """Accounts changed since the last `snapshot_events`, with the instruments touched."""
        self.commands: dict[type, Callable[[Any], Out]] = {
            cmd.OpenAccount: self._open_account,
            cmd.Deposit: self._deposit,
            cmd.Withdraw: self._withdraw,
            cmd.SetAccountFrozen: self._set_frozen,
            cmd.SubmitOrder: self._submit,
            cmd.CancelOrder: self._cancel,
            cmd.CancelAll: self._cancel_all,
            cmd.AmendOrder: self._amend,
            cmd.SetSettlementPrice: self._set_price,
            cmd.SetSettlementPrices: self._set_prices,
            cmd.ExecuteSettlement: self._execute_settlement,
            cmd.CreateInstrument: self._create_instrument,
            cmd.UpdateInstrument: self._update_instrument,
            cmd.SuspendInstrument: self._suspend_instrument,
            cmd.ResumeInstrument: self._resume_instrument,
            cmd.DelistInstrument: self._delist_instrument,
        }
        self.execs: dict[type, Booker] = {
            me.OrderAccepted: self._on_accepted,
            me.OrderRejected: self._on_rejected,
            me.OrderCanceled: self._on_canceled,
            me.OrderAmended: self._on_amended,
            me.AmendRejected: self._on_amend_rejected,
            me.TradeExecuted: self._on_trade,
        }

    # --- entry points ------------------------------------------------------------------------

    def apply(self, command: cmd.AccountsCommand) -> Out:
        """Answer one client command; returns (matching commands, events)."""
        return self.commands[type(command)](command)

    def on_exec(self, event: me.MatchingEvent) -> Out:
        """Book one matching event; events accounts does not need (not in `execs`) are ignored."""
        events: list[Any] = []
        handler = self.execs.get(type(event))
        if handler is None:
            return [], events
        return list(handler(event, events)), events

    def snapshot_events(self, ts: int) -> list[Any]:
        """AccountUpdated/PositionUpdated for every account changed since the last call, by id.

        For a core built with `snapshots=False` (per-event snapshots already went out otherwise).
        """
        events: list[Any] = []
        touched, self.touched = self.touched, {}
        for account_id in sorted(touched):
            self._snapshot(events, self.accounts[account_id], sorted(touched[account_id]), ts)
        return events

    # --- queries -----------------------------------------------------------------------------

    def account(self, account_id: int) -> Account | None:
        return self.accounts.get(account_id)

    def to_qifi(self, account_id: int) -> dict[str, Any]:
        """The QIFI rendering (floats, QIFI field names) of one account at the current marks."""
        return render_account(self.accounts[account_id], self.instruments, self.marks)

    def balance(self, account_id: int, currency: str) -> int:
        return self.accounts[account_id].balance(currency, self.terms, self.marks)

    def available(self, account_id: int, currency: str) -> int:
        return self.accounts[account_id].available(currency, self.terms, self.marks)

    def risk_ratio_e8(self, account: Account, currency: str) -> int:
        balance = account.balance(currency, self.terms, self.marks)
        return risk_ratio_e8(account.ledger(currency).margin, balance)

    def holders(self, instrument_index: int) -> list[int]:
        """Accounts with volume (long or short) in an instrument, by id."""
        return sorted(
            account_id
            for account_id, account in self.accounts.items()
            if (position := account.positions.get(instrument_index)) is not None
            and (position.long.volume or position.short.volume)
        )

    def settlement_results(
        self, first_day: int = 0, last_day: int = 99_999_999
    ) -> list[SettlementResult]:
        return self.settlement.history(first_day, last_day)

    # --- accounts and money ------------------------------------------------------------------

    def _open_account(self, c: cmd.OpenAccount) -> Out:
        if c.account_id <= 0:
            return _reject(c, ResultCode.BAD_ORDER_PARAMETER, "account id must be positive")
        if c.account_id in self.accounts:
            return _reject(c, ResultCode.ACCOUNT_EXISTS, f"account {c.account_id} exists")
        self.accounts[c.account_id] = Account(c.account_id)
        return [], [CommandAccepted(c.request_id, 0, c.ts)]

    def _deposit(self, c: cmd.Deposit) -> Out:
        return self._transfer(c, ResultCode.DEPOSIT_FAILED, 1)

    def _withdraw(self, c: cmd.Withdraw) -> Out:
        return self._transfer(c, ResultCode.WITHDRAW_FAILED, -1)

    def _transfer(self, c: cmd.Deposit | cmd.Withdraw, failure: ResultCode, sign: int) -> Out:
        """Deposit (sign 1) or withdraw (sign −1); a repeated txn_id is answered, not booked.

        A txn_id booked with other details (account, direction, currency, amount) is refused.
        """
        details = (c.account_id, sign, c.currency, c.amount)
        booked = self.transactions.get(c.txn_id)
        if booked == details:
            return [], [CommandAccepted(c.request_id, 0, c.ts)]
        if booked is not None:
            return _reject(c, failure, f"transaction {c.txn_id} was booked as {booked}")
        account = self.accounts.get(c.account_id)
        if account is None:
            return _reject(c, ResultCode.NO_SUCH_ACCOUNT, f"no account {c.account_id}")
        if c.amount <= 0 or c.currency not in self.instruments.currencies:
            return _reject(c, failure, f"bad amount {c.amount} or currency {c.currency!r}")
        ledger = account.ledger(c.currency)
        if sign > 0:
            ledger.deposit += c.amount
            ledger.static_balance += c.amount
            self.deposits[c.currency] = self.deposits.get(c.currency, 0) + c.amount
        else:
            if account.frozen:
                return _reject(c, ResultCode.ACCOUNT_FROZEN, f"account {c.account_id} is frozen")
            available = account.available(c.currency, self.terms, self.marks)
            if c.amount > available:
                return _reject(c, failure, f"withdraw {c.amount} above available {available}")
            ledger.withdraw += c.amount
            ledger.static_balance -= c.amount
            self.withdrawals[c.currency] = self.withdrawals.get(c.currency, 0) + c.amount
        self.transactions[c.txn_id] = details
        events: list[Any] = [CommandAccepted(c.request_id, 0, c.ts)]
        self._account_events(events, account, c.ts, -1)
        return [], events

    def _set_frozen(self, c: cmd.SetAccountFrozen) -> Out:
        account = self.accounts.get(c.account_id)
        if account is None:
            return _reject(c, ResultCode.NO_SUCH_ACCOUNT, f"no account {c.account_id}")
        account.frozen = c.frozen
        return [], [CommandAccepted(c.request_id, 0, c.ts)]

    # --- orders ------------------------------------------------------------------------------

    def _submit(self, c: cmd.SubmitOrder) -> Out:
        """Checks in the order of docs/accounting.md §6; the first failure answers."""
        (request_id, account_id, index, side, offset, price, qty, order_type, time_condition,
         volume_condition, _, ts, _) = c  # fmt: skip
        account = self.accounts.get(account_id)
        if account is None:
            return _reject(c, ResultCode.NO_SUCH_ACCOUNT, f"no account {account_id}")
        if account.frozen:
            return _reject(c, ResultCode.ACCOUNT_FROZEN, f"account {account_id} is frozen")
        every_terms = self.terms
        if not 0 <= index < len(every_terms):
            return _reject(c, ResultCode.NO_SUCH_INSTRUMENT, f"no instrument {index}")
        terms = every_terms[index]
        if self.settlement.phase is not _IDLE:
            return _reject(c, ResultCode.ENGINE_NOT_READY, "settlement in progress")
        if not terms.trading:
            return _reject(
                c, ResultCode.INSTRUMENT_NOT_TRADING, f"{terms.instrument.id} not trading"
            )
        spot = terms.spot
        if (
            (side, order_type, time_condition, volume_condition, offset) not in PLAIN_ORDERS[spot]
            or not terms.min_qty <= qty <= terms.max_qty
            or price <= 0
        ):
            problem = bad_order_fields(c, terms)
            if problem:
                return _reject(c, ResultCode.BAD_ORDER_PARAMETER, problem)
        if order_type is _MARKET:
            price = terms.upper if side is _BUY else terms.lower
        elif not terms.lower <= price <= terms.upper:
            return _reject(c, ResultCode.PRICE_OUT_OF_BAND, f"price {price} outside the band")
        if self.risk.self_trade_check:
            other = crosses_own_order(account, index, side, order_type, price)
            if other:
                return _reject(c, ResultCode.SELF_TRADE, f"would trade with own order {other}")
        if spot:
            terms.lot_units()
            holds = terms.holds(side, price, qty)
            notional = price * qty * terms.per_tick_lot
        elif offset is not _OPEN:
            position = account.positions.get(index) or Position.empty(0)
            closed = position.long if side is _SELL else position.short
            if close_split(closed, offset, terms.close_today_rule, qty) is None:
                return _reject(c, ResultCode.INSUFFICIENT_POSITION, "not enough position to close")
            place, update = self._place(account, terms, c, price, False, _NO_HOLDS)
            return [place], [new_command_accepted((request_id, place[0], ts)), update]
        else:
            notional, margin, commission = terms.open_fill(price, qty)
            holds = (margin, commission, 0)
        currency = terms.base_asset if spot and side is _SELL else terms.currency
        ledger = account.ledgers.get(currency) or account.ledger(currency)
        balance = ledger.static_balance + account.position_profit(currency, every_terms, self.marks)
        code, message = check_open(self.risk, account, terms, holds, notional, ledger, balance)
        if code:
            return _reject(c, code, message)
        place, update = self._place(account, terms, c, price, False, holds)
        return [place], [new_command_accepted((request_id, place[0], ts)), update]

    def _place(
        self,
        account: Account,
        terms: Terms,
        submit: cmd.SubmitOrder,
        price: int,
        liquidation: bool,
        holds: tuple[int, int, int],
    ) -> tuple[mc.PlaceOrder, OrderUpdated]:
        """Create the order at `price` (its freeze price), hold what it needs, build PlaceOrder.

        `holds` are an opening order's (margin, commission, asset), already computed by the
        risk check; a close order reserves position volume instead. A MARKET order is IOC at
        the band limit, as matching treats it.
        """
        (request_id, account_id, index, side, offset, _, qty, order_type, time_condition,
         volume_condition, min_qty, ts, stp) = submit  # fmt: skip
        order_id = self.next_order_id
        self.next_order_id = order_id + 1
        if order_type is _MARKET:
            time_condition = _IOC
        spot = terms.spot
        closes = not spot and offset is not _OPEN
        order = Order(
            order_id, account_id, index, side, _OPEN if spot else offset, price, qty, order_type,
            time_condition, volume_condition, min_qty, ts, price, request_id, 0, _PENDING, 0, 0,
            0, 0, 0, liquidation, stp, closes,
        )  # fmt: skip
        account.orders[order_id] = order
        self.orders[order_id] = order
        if time_condition is not _GTC:
            self.day_orders.add(order_id)
        if closes:
            account.rehold(order, terms)
        else:
            margin, commission, asset = holds
            account.hold(order, terms, margin, commission, asset)
        place = mc.new_place_order((
            order_id, account_id, index, side, price, qty, order_type, time_condition,
            volume_condition, min_qty, ts, stp,
        ))  # fmt: skip
        # fmt: off
        update = new_order_updated((
            account_id, order_id, index, side, order.offset, price, qty, 0, _PENDING, _OK, ts,
        ))
        # fmt: on
        return place, update

    def _cancel(self, c: cmd.CancelOrder) -> Out:
        request_id, account_id, order_id, ts = c
        account = self.accounts.get(account_id)
        if account is None:
            return _reject(c, ResultCode.NO_SUCH_ACCOUNT, f"no account {account_id}")
        order = account.orders.get(order_id)
        if order is None:
            return _reject(c, ResultCode.ORDER_NOT_FOUND, f"no live order {order_id}")
        cancel = mc.new_cancel_order((order_id, order.instrument_index, ts, _USER))
        return [cancel], [new_command_accepted((request_id, order_id, ts))]

    def _cancel_all(self, c: cmd.CancelAll) -> Out:
        account = self.accounts.get(c.account_id)
        if account is None:
            return _reject(c, ResultCode.NO_SUCH_ACCOUNT, f"no account {c.account_id}")
        cancels = [
            mc.CancelOrder(o.order_id, o.instrument_index, c.ts, _USER)
            for o in sorted(account.orders.values(), key=lambda o: o.order_id)
            if c.instrument_index in (-1, o.instrument_index)
        ]
        return cancels, [CommandAccepted(c.request_id, 0, c.ts)]

    def _amend(self, c: cmd.AmendOrder) -> Out:
        request_id, account_id, order_id, price, qty, ts = c
        account = self.accounts.get(account_id)
        if account is None:
            return _reject(c, ResultCode.NO_SUCH_ACCOUNT, f"no account {account_id}")
        order = account.orders.get(order_id)
        if order is None:
            return _reject(c, ResultCode.ORDER_NOT_FOUND, f"no live order {order_id}")
        if order.pending_qty or order.order_type is not _LIMIT:
            return _reject(c, ResultCode.AMEND_FAILED, "an amend is pending or not a limit order")
        index = order.instrument_index
        terms = self.terms[index]
        if not terms.min_qty <= qty <= terms.max_qty or price <= 0:
            return _reject(c, ResultCode.BAD_ORDER_PARAMETER, f"bad qty {qty} or price")
        if not terms.lower <= price <= terms.upper:
            return _reject(c, ResultCode.PRICE_OUT_OF_BAND, f"price {price} outside the band")
        if terms.spot:
            terms.lot_units()
        remaining = order.qty - order.filled
        if order.closes:
            extra = qty - remaining
            position = account.positions.get(index) or Position.empty(0)
            side = position.long if order.side is _SELL else position.short
            rule = terms.close_today_rule
            if extra > 0 and close_split(side, order.offset, rule, extra) is None:
                return _reject(c, ResultCode.INSUFFICIENT_POSITION, "not enough position")
            order.pending_price, order.pending_qty = price, qty
            account.rehold(order, terms)
        else:
            held = order.freeze_price if order.freeze_price > price else price
            margin, commission, asset = terms.holds(
                order.side, held, qty if qty > remaining else remaining
            )
            currency = terms.asset_currency(order.side)
            available = account.available(currency, self.terms, self.marks)
            need = margin + commission + asset
            need -= order.frozen_margin + order.frozen_commission + order.frozen_asset
            if need > available:
                return _reject(c, ResultCode.INSUFFICIENT_FUNDS, f"needs {need}, has {available}")
            order.pending_price, order.pending_qty = price, qty
            account.hold(order, terms, margin, commission, asset)
        amend = mc.new_amend_order((order_id, index, price, qty, ts))
        return [amend], [new_command_accepted((request_id, order_id, ts))]

    # --- matching events ---------------------------------------------------------------------
    # Each handler appends the events it causes to `events` and returns the matching commands
    # it causes (usually the shared empty tuple): no per-event result lists on the hot path.

    def _on_accepted(self, e: me.OrderAccepted, events: list[Any]) -> Sequence[Any]:
        order = self.orders.get(e[0])
        if order is not None and order.status is _PENDING:
            order.status = _ACCEPTED
            events.append(_order_update(order, _OK, e[6]))
        return _NOTHING

    def _on_rejected(self, e: me.OrderRejected, events: list[Any]) -> Sequence[Any]:
        order_id, _, _, code, ts = e
        return self._end(order_id, _REJECTED, code, ts, events)

    def _on_canceled(self, e: me.OrderCanceled, events: list[Any]) -> Sequence[Any]:
        order_id, _, _, _, qty, ts = e
        order = self.orders.get(order_id)
        if order is not None and order.qty - order.filled != qty:
            raise AssertionError(f"order {order_id}: cancel of {qty}, open {order.remaining}")
        return self._end(order_id, _CANCELLED, _OK, ts, events)

    def _end(
        self, order_id: int, status: OrderStatus, code: ResultCode, ts: int, events: list[Any]
    ) -> Sequence[Any]:
        order = self.orders.pop(order_id, None)
        if order is None:
            return _NOTHING
        order.status = status
        events.append(_order_update(order, code, ts))
        account = self.accounts[order.account_id]
        index = order.instrument_index
        account.release(order, self.terms[index])
        del account.orders[order_id]
        self.day_orders.discard(order_id)
        self._account_events(events, account, ts, index)
        if self.settlement.phase is _EXPIRING:
            return self._after_order_end(events, ts)
        return _NOTHING

    def _on_amended(self, e: me.OrderAmended, events: list[Any]) -> Sequence[Any]:
        order_id, _, _, price, qty, _, _, ts = e
        order = self.orders.get(order_id)
        if order is not None:
            order.price = order.freeze_price = price
            order.qty = order.filled + qty
            order.pending_price = order.pending_qty = 0
            order.pending_history = order.pending_today = 0
            self.accounts[order.account_id].rehold(order, self.terms[order.instrument_index])
            events.append(_order_update(order, _OK, ts))
        return _NOTHING

    def _on_amend_rejected(self, e: me.AmendRejected, events: list[Any]) -> Sequence[Any]:
        """A refused amend gives back exactly what it held or reserved (docs/accounting.md §3)."""
        order = self.orders.get(e[0])
        if order is not None:
            order.pending_price = order.pending_qty = 0
            self.accounts[order.account_id].rehold(order, self.terms[order.instrument_index])
            order.pending_history = order.pending_today = 0
        return _NOTHING

    def _on_trade(self, e: me.TradeExecuted, events: list[Any]) -> Sequence[Any]:
        (trade_id, index, price, qty, taker_id, _, _, maker_id, _, taker_left, maker_left, ts) = e
        self.marks[index] = price
        terms = self.terms[index]
        book_leg = self._book_leg
        ended = book_leg(terms, taker_id, taker_left, trade_id, price, qty, ts, events)
        ended |= book_leg(terms, maker_id, maker_left, trade_id, price, qty, ts, events)
        phase = self.settlement.phase
        if phase is _IDLE:
            if self.risk.intraday_liquidation:
                return self._liquidate_over(terms, ts, events)
        elif ended and phase is _EXPIRING:
            return self._after_order_end(events, ts)
        return _NOTHING

    def _book_leg(
        self,
        terms: Terms,
        order_id: int,
        remaining: int,
        trade_id: int,
        price: int,
        qty: int,
        ts: int,
        events: list[Any],
    ) -> bool:
        """Book one side of a trade; True when the order is finished."""
        order = self.orders.get(order_id)
        if order is None:
            raise AssertionError(f"trade {trade_id} for unknown order {order_id}")
        account_id = order.account_id
        account = self.accounts[account_id]
        commission, profit = account.fill(order, terms, price, qty, remaining)
        if order.qty - order.filled != remaining:
            raise AssertionError(f"order {order_id}: open {order.remaining}, matching {remaining}")
        fees = self.fees
        currency = terms.currency
        fees[currency] = fees.get(currency, 0) + commission
        status = order.status = _PARTIALLY_FILLED if remaining else _FILLED
        index = terms.index
        side, offset, total = order.side, order.offset, order.qty
        # fmt: off
        events.append(new_order_updated((
            account_id, order_id, index, side, offset, order.price, total, total - remaining,
            status, _OK, ts,
        )))
        events.append(new_trade_booked((
            account_id, order_id, trade_id, index, side, offset, price, qty, commission, profit,
            ts,
        )))
        # fmt: on
        if not remaining:
            del account.orders[order_id]
            del self.orders[order_id]
            self.day_orders.discard(order_id)
        if self.snapshots:
            self._snapshot(events, account, (index,), ts)
        else:
            self._touch(account_id, index)
        return not remaining

    def _after_order_end(self, events: list[Any], ts: int) -> Sequence[Any]:
        """A settlement waiting for the day's orders to end continues once the last one has."""
        if self.settlement.phase is _EXPIRING and not self.day_orders:
            return self._complete_settlement(ts, events)
        return _NOTHING

    # --- liquidation -------------------------------------------------------------------------

    def _liquidate_over(self, terms: Terms, ts: int, events: list[Any]) -> list[Any]:
        """Force-close accounts holding the instrument whose risk ratio reached the threshold."""
        to_matching: list[Any] = []
        for account_id in self.holders(terms.index):
            account = self.accounts[account_id]
            if any(o.liquidation for o in account.orders.values()):
                continue
            ratio = self.risk_ratio_e8(account, terms.currency)
            if ratio >= self.risk.liquidation_ratio_e8:
                to_matching.extend(self._liquidate(account, ratio, ts, events))
        return to_matching

    def _liquidate(self, account: Account, ratio: int, ts: int, events: list[Any]) -> list[Any]:
        """Cancel the account's opening orders and close every free position at the band (IOC).

        Appends AccountLiquidated and the closing orders' updates; returns the matching commands.
        """
        to_matching: list[Any] = [
            mc.CancelOrder(o.order_id, o.instrument_index, ts, CancelReason.LIQUIDATION)
            for o in sorted(account.orders.values(), key=lambda o: o.order_id)
            if not o.closes
        ]
        updates: list[Any] = []
        for submit in closing_orders(account, self.instruments, ts):
            terms = self.terms[submit.instrument_index]
            place, update = self._place(account, terms, submit, submit.price, True, _NO_HOLDS)
            to_matching.append(place)
            updates.append(update)
        log.info("force closing account %d at risk ratio %d e-8", account.account_id, ratio)
        events.append(AccountLiquidated(account.account_id, ratio, len(to_matching), ts))
        events += updates
        return to_matching

    # --- settlement --------------------------------------------------------------------------

    def _set_price(self, c: cmd.SetSettlementPrice) -> Out:
        return self._set_prices(
            cmd.SetSettlementPrices(c.request_id, ((c.instrument_index, c.price),), c.ts)
        )

    def _set_prices(self, c: cmd.SetSettlementPrices) -> Out:
        for index, price in c.prices:
            if self.instruments.find(index) is None:
                return _reject(c, ResultCode.NO_SUCH_INSTRUMENT, f"no instrument {index}")
            if price <= 0:
                return _reject(c, ResultCode.BAD_ORDER_PARAMETER, f"bad price {price}")
        self.settlement.prices.update(c.prices)
        return [], [CommandAccepted(c.request_id, 0, c.ts)]

    def _execute_settlement(self, c: cmd.ExecuteSettlement) -> Out:
        if self.settlement.phase is not _IDLE:
            return _reject(c, ResultCode.SETTLEMENT_FAILED, "a settlement is in progress")
        if c.trading_day in self.settlement.results:
            return _reject(c, ResultCode.SETTLEMENT_FAILED, f"day {c.trading_day} is settled")
        held = sorted({i for a in self.accounts.values() for i in a.positions})
        missing = [self.instruments.by_index(i).id for i in held if i not in self.settlement.prices]
        if missing:
            return _reject(c, ResultCode.NO_SETTLEMENT_PRICE, f"no price for {', '.join(missing)}")
        self.settlement.begin(c.request_id, c.trading_day)
        to_matching: list[Any] = [mc.ExpireOrders(None, c.ts)]
        events: list[Any] = []
        if not self.day_orders:
            to_matching += self._complete_settlement(c.ts, events)
        return to_matching, events

    def _complete_settlement(self, ts: int, events: list[Any]) -> list[Any]:
        """Mark, book and roll every account, then force-close those over the threshold."""
        prices = self.settlement.prices
        commission: dict[str, int] = {}
        profit: dict[str, int] = {}
        failed = 0
        over: list[tuple[Account, int]] = []
        for account_id in sorted(self.accounts):
            account = self.accounts[account_id]
            for code, (fee, gain) in settle_account(account, self.terms, prices).items():
                commission[code] = commission.get(code, 0) + fee
                profit[code] = profit.get(code, 0) + gain
            ratios = [
                (account.balance(code, self.terms, prices), ledger.margin)
                for code, ledger in account.ledgers.items()
            ]
            failed += any(balance < 0 for balance, _ in ratios)
            ratio = max((risk_ratio_e8(margin, balance) for balance, margin in ratios), default=0)
            if ratio >= self.risk.liquidation_ratio_e8 and account.positions:
                over.append((account, ratio))
            if not self.snapshots:
                self._touch(account_id, -1)
                for index in account.positions:
                    self._touch(account_id, index)
        to_matching: list[Any] = []
        for index in sorted(prices):
            instrument = self.instruments.by_index(index)
            self.instruments.roll_day(index, self.marks[index], prices[index])
            self.marks[index] = prices[index]
            to_matching.append(mc.UpsertInstrument(self.instruments.by_index(index), ts))
            log.debug("settled %s at %d", instrument.id, prices[index])
        self.terms = all_terms(self.instruments)
        for account, ratio in over:
            to_matching += self._liquidate(account, ratio, ts, events)
        result = SettlementResult(
            self.settlement.trading_day,
            len(self.accounts),
            len(self.accounts) - failed,
            failed,
            tuple(a.account_id for a, _ in over),
            tuple(sorted(commission.items())),
            tuple(sorted(profit.items())),
            ts,
        )
        request_id = self.settlement.request_id
        self.settlement.end(result)
        events.append(SettlementCompleted(result, ts))
        events.append(CommandAccepted(request_id, 0, ts))
        return to_matching

    # --- instrument admin --------------------------------------------------------------------

    def _create_instrument(self, c: cmd.CreateInstrument) -> Out:
        code = self.instruments.create(c.fields)
        if code:
            return _reject(c, code, f"cannot create {c.fields.get('id')!r}")
        instrument = self.instruments.by_index(len(self.instruments) - 1)
        self.marks[instrument.index] = instrument.pre_settlement or instrument.pre_close
        return self._upserted(c.request_id, instrument, c.ts)

    def _update_instrument(self, c: cmd.UpdateInstrument) -> Out:
        fixed = self.instruments.fixed_changes(c.instrument_id, c.changes)
        if fixed:
            names = ", ".join(fixed)
            reason = "prices and volumes are kept in its ticks and lots; list a new instrument"
            return _reject(
                c, ResultCode.CONFIG, f"{c.instrument_id}: {names} cannot change: {reason}"
            )
        return self._admin(c, self.instruments.update(c.instrument_id, c.changes))

    def _suspend_instrument(self, c: cmd.SuspendInstrument) -> Out:
        return self._admin(c, self.instruments.suspend(c.instrument_id))

    def _resume_instrument(self, c: cmd.ResumeInstrument) -> Out:
        return self._admin(c, self.instruments.resume(c.instrument_id))

    def _delist_instrument(self, c: cmd.DelistInstrument) -> Out:
        instrument = self.instruments.get(c.instrument_id)
        holders = self.holders(instrument.index) if instrument else []
        if holders:
            names = ", ".join(str(h) for h in holders)
            return _reject(c, ResultCode.INSTRUMENT_HAS_POSITIONS, f"held by accounts {names}")
        return self._admin(c, self.instruments.delist(c.instrument_id))

    def _admin(self, c: Any, code: ResultCode) -> Out:
        if code:
            return _reject(c, code, f"instrument {c.instrument_id!r}")
        return self._upserted(c.request_id, self.instruments.get(c.instrument_id), c.ts)

    def _upserted(self, request_id: int, instrument: Instrument | None, ts: int) -> Out:
        if instrument is None:
            raise AssertionError("an admin command succeeded on a missing instrument")
        self.terms = all_terms(self.instruments)
        return [mc.UpsertInstrument(instrument, ts)], [CommandAccepted(request_id, 0, ts)]

    # --- snapshots ---------------------------------------------------------------------------

    def _account_events(self, events: list[Any], account: Account, ts: int, index: int) -> None:
        """Append the account's snapshots (or, with snapshots off, remember it changed)."""
        if self.snapshots:
            self._snapshot(events, account, (index,), ts)
        else:
            self._touch(account.account_id, index)

    def _touch(self, account_id: int, index: int) -> None:
        touched = self.touched.get(account_id)
        if touched is None:
            touched = self.touched[account_id] = set()
        if index >= 0:
            touched.add(index)

    def _snapshot(
        self, events: list[Any], account: Account, indexes: Iterable[int], ts: int
    ) -> None:
        """AccountUpdated per ledger (marked at the last prices), then PositionUpdated per index.

        One call for both kinds: every booking on the hot path ends here when snapshots are on.
        """
        account_id = account.account_id
        position_profit_in = account.position_profit
        every_terms, marks = self.terms, self.marks
        for code, ledger in account.ledgers.items():
            position_profit = position_profit_in(code, every_terms, marks)
            balance = ledger.static_balance + position_profit
            margin = ledger.margin
            frozen_margin = ledger.frozen_margin
            frozen_commission = ledger.frozen_commission
            # fmt: off
            events.append(new_account_updated((
                account_id, code, balance,
                balance - margin - frozen_margin - frozen_commission - ledger.frozen_asset,
                margin, frozen_margin, frozen_commission, position_profit, ledger.close_profit,
                ledger.commission, ts,
            )))
            # fmt: on
        positions = account.positions
        for index in indexes:
            position = positions.get(index)
            if position is not None:
                long, short = position.long, position.short
                # fmt: off
                events.append(new_position_updated((
                    account_id, index, long.today, long.history, short.today, short.history,
                    long.frozen_today + long.frozen_history,
                    short.frozen_today + short.frozen_history, long.margin + short.margin, ts,
                )))
                # fmt: on

    # --- state -------------------------------------------------------------------------------

    def export_state(self) -> dict[str, Any]:
        """Everything needed to rebuild this core, as ints, strs, lists and dicts (checkpoints)."""
        return checkpoint.export_state(self)

    @classmethod
    def from_state(
        cls,
        instruments: InstrumentRegistry,
        state: dict[str, Any],
        risk: RiskConfig | None = None,
        *,
        snapshots: bool = True,
    ) -> AccountsCore:
        """The core `export_state` described (same state_hash, same answers from now on).

        `instruments` supplies the currencies; its instruments are replaced by the checkpoint's.
        """
        core = cls(instruments, risk, snapshots=snapshots)
        checkpoint.load_state(core, state)
        return core

    def state_hash(self) -> str:
        """SHA-256 of every account, position, live order, mark, total and settlement result."""
        return audit.state_hash(self)

    def check_invariants(self) -> None:
        """Raise AssertionError on any broken identity (docs/accounting.md §9)."""
        audit.check_invariants(self)


def _order_update(order: Order, code: ResultCode, ts: int) -> OrderUpdated:
    return new_order_updated(
        (
            order.account_id,
            order.order_id,
            order.instrument_index,
            order.side,
            order.offset,
            order.price,
            order.qty,
            order.filled,
            order.status,
            code,
            ts,
        ),
    )


def _reject(c: Any, code: ResultCode, message: str) -> Out:
    return [], [CommandRejected(c.request_id, code, message, c.ts)]
