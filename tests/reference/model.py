"""The reference exchange: the book of tests/reference/book.py plus deliberately simple accounts.

Written from issue 3 and the rules the engine states (docs/accounting.md, docs/matching.md):
hold → match → release, QIFI fields as integer fixed point, close-today rules, spot exchange
mode, settlement. Stored state is the minimum (ledger flows, position volumes and costs, live
orders); everything else — frozen margin, frozen commission, frozen assets, frozen position
volume, margin totals, balances — is recomputed from scratch on every question, so that a
drifting incremental total in the engine cannot hide behind the same drift here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.codes import ResultCode
from engine.enums import (
    CancelReason,
    InstrumentKind,
    Offset,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeCondition,
    VolumeCondition,
)
from tests.reference.book import Fill, Incoming, RefBook
from tests.reference.instruments import E8, RefInstrument

CLOSES = (Offset.CLOSE, Offset.CLOSETODAY, Offset.CLOSEYESTERDAY)
NO_RATIO = 2**62


@dataclass
class RiskLimits:
    """The engine's defaults (reference part 2 §3): value cap in whole currency units, ratios e8."""

    max_order_value: int = 10_000_000
    concentration_e8: int = 50_000_000
    risk_ratio_e8: int = 95_000_000
    liquidation_e8: int = E8


@dataclass
class Flows:
    """One account's stored money in one currency; balances are derived."""

    pre_balance: int = 0
    deposit: int = 0
    withdraw: int = 0
    close_profit: int = 0
    commission: int = 0
    exchange: int = 0

    @property
    def static(self) -> int:
        return (
            self.pre_balance
            + self.deposit
            - self.withdraw
            + self.close_profit
            - self.commission
            + self.exchange
        )


@dataclass
class Holding:
    """One direction of a futures position."""

    today: int = 0
    history: int = 0
    open_cost: int = 0
    cost: int = 0
    margin: int = 0

    @property
    def volume(self) -> int:
        return self.today + self.history


@dataclass
class RefOrder:
    order_id: int
    ref: int
    account: int
    instrument: int
    side: Side
    offset: Offset
    price: int
    qty: int
    time_condition: TimeCondition
    filled: int = 0
    history: int = 0
    today: int = 0
    holds_for: tuple[int, int] = (0, -1)
    holds: tuple[str, int, int, int] = ("", 0, 0, 0)
    stp: SelfTradePrevention = SelfTradePrevention.CANCEL_TAKER
    """Self-trade prevention the book applies when the order takes (also after an amend)."""

    @property
    def remaining(self) -> int:
        return self.qty - self.filled

    @property
    def closes(self) -> bool:
        return self.offset in CLOSES


@dataclass
class Leg:
    """One account's booking of one fill."""

    account: int
    order_id: int
    side: Side
    offset: Offset
    commission: int
    close_profit: int


@dataclass
class RefAccount:
    account_id: int
    flows: dict[str, Flows] = field(default_factory=dict)
    positions: dict[int, dict[Side, Holding]] = field(default_factory=dict)
    orders: dict[int, RefOrder] = field(default_factory=dict)
    version: int = 0
    """Bumped whenever one of its orders changes, so `frozen` may reuse a sum for one version."""
    frozen_memo: dict[str, tuple[int, tuple[int, int, int]]] = field(default_factory=dict)

    def money(self, currency: str) -> Flows:
        return self.flows.setdefault(currency, Flows())

    def holding(self, instrument: int, side: Side) -> Holding:
        """The position side that `side` opens (BUY → long)."""
        sides = self.positions.setdefault(instrument, {Side.BUY: Holding(), Side.SELL: Holding()})
        return sides[side]


class RefExchange:
    """Accounts + books, applied synchronously; every method returns the result code."""

    def __init__(
        self,
        instruments: list[RefInstrument],
        decimals: dict[str, int],
        risk: RiskLimits | None = None,
    ) -> None:
        self.instruments = instruments
        self.decimals = decimals
        self.risk = risk or RiskLimits()
        self.books = {i.index: RefBook() for i in instruments}
        self.accounts: dict[int, RefAccount] = {}
        self.marks = {i.index: i.pre_settlement for i in instruments}
        self.orders: dict[int, RefOrder] = {}
        self.by_ref: dict[int, RefOrder] = {}
        self.next_order_id = 1
        self.next_trade_id = [1]
        self.txns: dict[int, tuple[int, int, str, int]] = {}
        self.deposits: dict[str, int] = {}
        self.withdrawals: dict[str, int] = {}
        self.fees: dict[str, int] = {}
        self.settle_prices: dict[int, int] = {}
        self.settled_days: dict[int, tuple[object, ...]] = {}
        self.trades: list[Fill] = []
        self.legs: dict[int, list[Leg]] = {}
        self.cancels: list[tuple[int, CancelReason, int]] = []

    # --- money ---------------------------------------------------------------------------------

    def open_account(self, account: int) -> ResultCode:
        if account <= 0:
            return ResultCode.BAD_ORDER_PARAMETER
        if account in self.accounts:
            return ResultCode.ACCOUNT_EXISTS
        self.accounts[account] = RefAccount(account)
        return ResultCode.OK

    def transfer(self, account: int, currency: str, amount: int, txn: int, sign: int) -> ResultCode:
        """Deposit (sign 1) or withdraw (sign −1), idempotent by transaction id."""
        failure = ResultCode.DEPOSIT_FAILED if sign > 0 else ResultCode.WITHDRAW_FAILED
        if txn in self.txns:
            same = self.txns[txn] == (account, sign, currency, amount)
            return ResultCode.OK if same else failure
        holder = self.accounts.get(account)
        if holder is None:
            return ResultCode.NO_SUCH_ACCOUNT
        if amount <= 0 or currency not in self.decimals:
            return failure
        if sign < 0 and amount > self.available(account, currency):
            return failure
        money = holder.money(currency)
        totals = self.deposits if sign > 0 else self.withdrawals
        if sign > 0:
            money.deposit += amount
        else:
            money.withdraw += amount
        totals[currency] = totals.get(currency, 0) + amount
        self.txns[txn] = (account, sign, currency, amount)
        return ResultCode.OK

    # --- derived values --------------------------------------------------------------------------

    def position_profit(self, account: int, currency: str, marks: dict[int, int]) -> int:
        total = 0
        for index, sides in self.accounts[account].positions.items():
            instrument = self.instruments[index]
            if instrument.currency != currency:
                continue
            long, short = sides[Side.BUY], sides[Side.SELL]
            total += instrument.value(marks[index], long.volume) - long.cost
            total += short.cost - instrument.value(marks[index], short.volume)
        return total

    def balance(self, account: int, currency: str, marks: dict[int, int] | None = None) -> int:
        flows = self.accounts[account].money(currency)
        return flows.static + self.position_profit(account, currency, marks or self.marks)

    def margin(self, account: int, currency: str) -> int:
        return sum(
            side.margin
            for index, sides in self.accounts[account].positions.items()
            if self.instruments[index].currency == currency
            for side in sides.values()
        )

    def order_holds(self, order: RefOrder, price: int, qty: int) -> tuple[str, int, int, int]:
        """(currency, margin, commission, asset) an open order holds for `qty` lots at `price`."""
        instrument = self.instruments[order.instrument]
        if order.closes or qty == 0:
            return instrument.currency, 0, 0, 0
        if instrument.kind is InstrumentKind.SPOT:
            if order.side is Side.SELL:
                return instrument.base_asset, 0, 0, qty * instrument.base_units_per_lot
            cost = instrument.value(price, qty) + instrument.fee(Offset.OPEN, price, qty)
            return instrument.currency, 0, 0, cost
        return (
            instrument.currency,
            instrument.margin(price, qty),
            instrument.fee(Offset.OPEN, price, qty),
            0,
        )

    def live_holds(self, order: RefOrder) -> tuple[str, int, int, int]:
        """`order_holds` for the order's current price and remaining lots (memoised on both)."""
        key = (order.price, order.remaining)
        if order.holds_for != key:
            order.holds = self.order_holds(order, *key)
            order.holds_for = key
        return order.holds

    def frozen(self, account: int, currency: str) -> tuple[int, int, int]:
        """(frozen margin, frozen commission, frozen asset), summed over live orders now."""
        holder = self.accounts[account]
        memo = holder.frozen_memo.get(currency)
        if memo is not None and memo[0] == holder.version:
            return memo[1]
        margin = commission = asset = 0
        for order in holder.orders.values():
            code, m, c, a = self.live_holds(order)
            if code == currency:
                margin, commission, asset = margin + m, commission + c, asset + a
        holder.frozen_memo[currency] = (holder.version, (margin, commission, asset))
        return margin, commission, asset

    def available(self, account: int, currency: str) -> int:
        return (
            self.balance(account, currency)
            - self.margin(account, currency)
            - sum(self.frozen(account, currency))
        )

    def frozen_volume(self, account: int, instrument: int, side: Side) -> tuple[int, int]:
        """(history, today) lots of the `side`-opened holding reserved by close orders."""
        history = today = 0
        for order in self.accounts[account].orders.values():
            if order.instrument == instrument and order.closes and order.side is side.opposite:
                history, today = history + order.history, today + order.today
        return history, today

    def split_close(
        self, account: int, instrument: int, side: Side, offset: Offset, qty: int
    ) -> tuple[int, int] | None:
        """(history, today) a close of `qty` by a `side` order would reserve, or None."""
        holding = self.accounts[account].positions.get(instrument, {}).get(side.opposite)
        held_history, held_today = (holding.history, holding.today) if holding else (0, 0)
        frozen_history, frozen_today = self.frozen_volume(account, instrument, side.opposite)
        free_history, free_today = held_history - frozen_history, held_today - frozen_today
        if offset is Offset.CLOSETODAY:
            history = 0
        elif offset is Offset.CLOSEYESTERDAY or self.instruments[instrument].shfe:
            history = qty
        else:
            history = min(qty, free_history)
        today = qty - history
        if history > free_history or today > free_today:
            return None
        return history, today

    # --- orders ----------------------------------------------------------------------------------

    def submit(
        self,
        ref: int,
        account: int,
        instrument: int,
        side: Side,
        offset: Offset,
        price: int,
        qty: int,
        order_type: OrderType = OrderType.LIMIT,
        time_condition: TimeCondition = TimeCondition.GFD,
        volume_condition: VolumeCondition = VolumeCondition.ANY,
        min_qty: int = 0,
        stp: SelfTradePrevention = SelfTradePrevention.NONE,
    ) -> tuple[ResultCode, int]:
        """(code, order id) of a new order: checks, hold, match, book the fills, release.

        `stp` NONE is matching's default, CANCEL_TAKER."""
        holder = self.accounts.get(account)
        if holder is None:
            return ResultCode.NO_SUCH_ACCOUNT, 0
        if not 0 <= instrument < len(self.instruments):
            return ResultCode.NO_SUCH_INSTRUMENT, 0
        spec = self.instruments[instrument]
        if not spec.trading:
            return ResultCode.INSTRUMENT_NOT_TRADING, 0
        spot = spec.kind is InstrumentKind.SPOT
        allowed = (Offset.NONE, Offset.OPEN) if spot else (Offset.OPEN, *CLOSES)
        bad = (
            not spec.min_qty <= qty <= spec.max_qty
            or (volume_condition is VolumeCondition.MIN and not 0 < min_qty <= qty)
            or (order_type is OrderType.LIMIT and price <= 0)
            or offset not in allowed
        )
        if bad:
            return ResultCode.BAD_ORDER_PARAMETER, 0
        if order_type is OrderType.MARKET:
            price = spec.upper if side is Side.BUY else spec.lower
            time_condition = TimeCondition.IOC
        elif not spec.lower <= price <= spec.upper:
            return ResultCode.PRICE_OUT_OF_BAND, 0
        order = RefOrder(
            0,
            ref,
            account,
            instrument,
            side,
            offset if not spot else Offset.OPEN,
            price,
            qty,
            time_condition,
            stp=stp or SelfTradePrevention.CANCEL_TAKER,
        )
        if order.closes:
            split = self.split_close(account, instrument, side, offset, qty)
            if split is None:
                return ResultCode.INSUFFICIENT_POSITION, 0
            order.history, order.today = split
        else:
            code = self.check_open(order)
            if code:
                return code, 0
        order.order_id = self.next_order_id
        self.next_order_id += 1
        holder.version += 1
        holder.orders[order.order_id] = order
        self.orders[order.order_id] = order
        self.by_ref[ref] = order
        incoming = Incoming(
            order.order_id,
            account,
            side,
            price,
            qty,
            order_type,
            time_condition,
            volume_condition,
            min_qty,
            order.stp,
        )
        self._enter(instrument, incoming)
        return ResultCode.OK, order.order_id

    def check_open(self, order: RefOrder) -> ResultCode:
        spec = self.instruments[order.instrument]
        currency, margin, commission, asset = self.order_holds(order, order.price, order.qty)
        if spec.value(order.price, order.qty) > self.risk.max_order_value * self._scale(spec):
            return ResultCode.ORDER_VALUE_CAP
        if margin + commission + asset > self.available(order.account, currency):
            return ResultCode.INSUFFICIENT_FUNDS
        if spec.kind is InstrumentKind.SPOT:
            return ResultCode.OK
        balance = self.balance(order.account, currency)
        used = self.margin(order.account, currency) + self.frozen(order.account, currency)[0]
        if (used + margin) * E8 > self.risk.risk_ratio_e8 * balance:
            return ResultCode.RISK_RATIO_CAP
        holder = self.accounts[order.account]
        sides = holder.positions.get(order.instrument, {})
        held = sum(s.margin for s in sides.values()) + sum(
            self.live_holds(o)[1]
            for o in holder.orders.values()
            if o.instrument == order.instrument
        )
        if (held + margin) * E8 > self.risk.concentration_e8 * balance:
            return ResultCode.CONCENTRATION_LIMIT
        return ResultCode.OK

    def _scale(self, spec: RefInstrument) -> int:
        return 10 ** self.decimals[spec.currency]

    def cancel(
        self, account: int, ref: int, reason: CancelReason = CancelReason.USER
    ) -> ResultCode:
        if account not in self.accounts:
            return ResultCode.NO_SUCH_ACCOUNT
        order = self.by_ref.get(ref)
        if order is None or order.order_id not in self.accounts[account].orders:
            return ResultCode.ORDER_NOT_FOUND
        resting = self.books[order.instrument].remove(order.order_id)
        assert resting is not None and resting.remaining == order.remaining
        self._end(order, reason, order.remaining)
        return ResultCode.OK

    def amend(self, account: int, ref: int, price: int, qty: int) -> ResultCode:
        if account not in self.accounts:
            return ResultCode.NO_SUCH_ACCOUNT
        order = self.by_ref.get(ref)
        if order is None or order.order_id not in self.accounts[account].orders:
            return ResultCode.ORDER_NOT_FOUND
        spec = self.instruments[order.instrument]
        if not spec.min_qty <= qty <= spec.max_qty or price <= 0:
            return ResultCode.BAD_ORDER_PARAMETER
        if not spec.lower <= price <= spec.upper:
            return ResultCode.PRICE_OUT_OF_BAND
        extra = qty - order.remaining
        reserved = (0, 0)
        if order.closes:
            if extra > 0:
                split = self.split_close(account, order.instrument, order.side, order.offset, extra)
                if split is None:
                    return ResultCode.INSUFFICIENT_POSITION
                reserved = split
                order.history += split[0]
                order.today += split[1]
        else:
            currency, *held = self.live_holds(order)
            wanted = self.order_holds(order, max(order.price, price), max(qty, order.remaining))
            if sum(wanted[1:]) - sum(held) > self.available(account, currency):
                return ResultCode.INSUFFICIENT_FUNDS
        if not spec.trading:
            # Accepted, then refused by matching: a close order gives back exactly the history
            # and today lots the pending amend reserved (accounting §3).
            order.history -= reserved[0]
            order.today -= reserved[1]
            return ResultCode.OK
        if order.closes and extra < 0:
            self._unreserve(order, -extra)
        book = self.books[order.instrument]
        self.accounts[account].version += 1
        old_price, old_remaining = order.price, order.remaining
        order.price = price
        order.qty = order.filled + qty
        if price == old_price and qty <= old_remaining:
            if qty < old_remaining:
                book.reduce(order.order_id, qty)
            return ResultCode.OK
        book.remove(order.order_id)
        incoming = Incoming(
            order.order_id,
            account,
            order.side,
            price,
            qty,
            OrderType.LIMIT,
            order.time_condition,
            VolumeCondition.ANY,
            0,
            order.stp,
        )
        self._enter(order.instrument, incoming)
        return ResultCode.OK

    def _unreserve(self, order: RefOrder, lots: int) -> None:
        """Give back `lots` of a close order's reserved volume, today's first."""
        today = min(lots, order.today)
        order.today -= today
        order.history -= lots - today

    def _enter(self, instrument: int, incoming: Incoming) -> None:
        book = self.books[instrument]
        spec = self.instruments[instrument]
        outcome = book.place(incoming, spec.upper, spec.lower, self.next_trade_id)
        if outcome.rejected:  # accepted by accounts, refused by matching: released, no cancel
            self._forget(self.orders[incoming.order_id])
            return
        for fill in outcome.fills:
            self._book_fill(instrument, fill)
        for maker in outcome.maker_cancels:
            self._end(self.orders[maker.order_id], CancelReason.SELF_TRADE, maker.remaining)
        if outcome.cancel_reason:
            self._end(self.orders[incoming.order_id], outcome.cancel_reason, outcome.canceled_qty)

    def _book_fill(self, instrument: int, fill: Fill) -> None:
        self.marks[instrument] = fill.price
        self.trades.append(fill)
        legs = []
        for order_id, remaining in (
            (fill.taker_order_id, fill.taker_remaining),
            (fill.maker_order_id, fill.maker_remaining),
        ):
            order = self.orders[order_id]
            legs.append(self._fill_order(order, fill.price, fill.qty))
            assert order.remaining == remaining, (order, fill)
            if not remaining:
                self._forget(order)
        self.legs[fill.trade_id] = legs

    def _fill_order(self, order: RefOrder, price: int, qty: int) -> Leg:
        spec = self.instruments[order.instrument]
        holder = self.accounts[order.account]
        money = holder.money(spec.currency)
        holder.version += 1
        order.filled += qty
        value = spec.value(price, qty)
        profit = 0
        if spec.kind is InstrumentKind.SPOT:
            fee = spec.fee(Offset.OPEN, price, qty)
            sign = 1 if order.side is Side.SELL else -1
            money.exchange += sign * value
            holder.money(spec.base_asset).exchange -= sign * qty * spec.base_units_per_lot
        elif not order.closes:
            fee = spec.fee(Offset.OPEN, price, qty)
            holding = holder.holding(order.instrument, order.side)
            holding.today += qty
            holding.open_cost += value
            holding.cost += value
            holding.margin += spec.margin(price, qty)
        else:
            history = min(qty, order.history)
            today = qty - history
            order.history -= history
            order.today -= today
            holding = holder.holding(order.instrument, order.side.opposite)
            volume = holding.volume
            share = [holding.cost, holding.margin, holding.open_cost]
            if qty != volume:
                share = [amount * qty // volume for amount in share]
            holding.history -= history
            holding.today -= today
            holding.cost -= share[0]
            holding.margin -= share[1]
            holding.open_cost -= share[2]
            profit = value - share[0] if order.side is Side.SELL else share[0] - value
            fee = spec.fee(Offset.CLOSE, price, history) + spec.fee(Offset.CLOSETODAY, price, today)
            money.close_profit += profit
            self._drop_if_flat(holder, order.instrument)
        money.commission += fee
        self.fees[spec.currency] = self.fees.get(spec.currency, 0) + fee
        return Leg(order.account, order.order_id, order.side, order.offset, fee, profit)

    def _drop_if_flat(self, holder: RefAccount, instrument: int) -> None:
        sides = holder.positions.get(instrument)
        if sides and not any(s.volume for s in sides.values()):
            del holder.positions[instrument]

    def _end(self, order: RefOrder, reason: CancelReason, qty: int) -> None:
        assert qty == order.remaining
        self.cancels.append((order.order_id, reason, qty))
        self._forget(order)

    def _forget(self, order: RefOrder) -> None:
        self.accounts[order.account].version += 1
        del self.accounts[order.account].orders[order.order_id]
        del self.orders[order.order_id]
        del self.by_ref[order.ref]

    # --- instrument admin ------------------------------------------------------------------------

    def start_auction(self, instrument: int) -> ResultCode:
        """Admin, straight to matching: the book collects orders without matching."""
        self.books[instrument].auction = True
        return ResultCode.OK

    def run_auction(self, instrument: int) -> ResultCode:
        """Admin, straight to matching: uncross at one price, then match continuously."""
        spec = self.instruments[instrument]
        reference = spec.pre_close or spec.pre_settlement
        for fill in self.books[instrument].uncross(reference, self.next_trade_id):
            self._book_fill(instrument, fill)
        return ResultCode.OK

    def set_trading(self, instrument: int, trading: bool) -> ResultCode:
        """Suspend or resume: a suspended instrument refuses new orders (4004) and amends."""
        if not 0 <= instrument < len(self.instruments):
            return ResultCode.NO_SUCH_INSTRUMENT
        self.instruments[instrument].trading = trading
        return ResultCode.OK

    # --- settlement ------------------------------------------------------------------------------

    def set_price(self, instrument: int, price: int) -> ResultCode:
        if not 0 <= instrument < len(self.instruments):
            return ResultCode.NO_SUCH_INSTRUMENT
        if price <= 0:
            return ResultCode.BAD_ORDER_PARAMETER
        self.settle_prices[instrument] = price
        return ResultCode.OK

    def settle(self, trading_day: int) -> ResultCode:
        """Expire day orders, mark and roll every account, move the bands, liquidate."""
        if trading_day in self.settled_days:
            return ResultCode.SETTLEMENT_FAILED
        held = {i for a in self.accounts.values() for i in a.positions}
        if held - set(self.settle_prices):
            return ResultCode.NO_SETTLEMENT_PRICE
        for order in sorted(self.orders.values(), key=lambda o: (o.instrument, o.order_id)):
            if order.time_condition is not TimeCondition.GTC:
                self.books[order.instrument].remove(order.order_id)
                self._end(order, CancelReason.END_OF_DAY, order.remaining)
        prices = dict(self.marks)
        prices.update(self.settle_prices)
        commission: dict[str, int] = {}
        profit: dict[str, int] = {}
        failed = 0
        over: list[int] = []
        for account_id in sorted(self.accounts):
            holder = self.accounts[account_id]
            for currency, money in holder.flows.items():
                gain = self.position_profit(account_id, currency, prices)
                commission[currency] = commission.get(currency, 0) + money.commission
                profit[currency] = profit.get(currency, 0) + money.close_profit + gain
                holder.flows[currency] = Flows(pre_balance=money.static + gain)
            for index, sides in holder.positions.items():
                spec = self.instruments[index]
                for holding in sides.values():
                    holding.history += holding.today
                    holding.today = 0
                    holding.cost = spec.value(prices[index], holding.volume)
                    holding.margin = spec.margin(prices[index], holding.volume)
            for order in holder.orders.values():
                order.history += order.today
                order.today = 0
            balances = {c: self.balance(account_id, c, prices) for c in holder.flows}
            failed += any(balance < 0 for balance in balances.values())
            ratios = [
                self._ratio(self.margin(account_id, c), balance) for c, balance in balances.items()
            ]
            if holder.positions and max(ratios, default=0) >= self.risk.liquidation_e8:
                over.append(account_id)
        for index in sorted(self.settle_prices):
            spec = self.instruments[index]
            spec.pre_close = self.marks[index]
            spec.pre_settlement = self.settle_prices[index]
            self.marks[index] = self.settle_prices[index]
        self._liquidate(over)
        self.settled_days[trading_day] = (
            len(self.accounts),
            failed,
            tuple(over),
            tuple(sorted(commission.items())),
            tuple(sorted(profit.items())),
        )
        self.settle_prices.clear()
        return ResultCode.OK

    @staticmethod
    def _ratio(margin: int, balance: int) -> int:
        """margin / balance per 1e8 (floor); 2**62 for margin against no positive balance."""
        if balance <= 0:
            return NO_RATIO if margin else 0
        return margin * E8 // balance

    def _liquidate(self, over: list[int]) -> None:
        """Plan every liquidation first (ids, reserved volume), then run them account by account:
        cancel the account's opening orders, then its closing market orders (IOC at the band).
        """
        runs = []
        for account_id in over:
            holder = self.accounts[account_id]
            openers = sorted(o.order_id for o in holder.orders.values() if not o.closes)
            closers = [
                self._liquidation_order(account_id, index, side, offset, chunk)
                for index, side, offset, qty in self._liquidation_plan(account_id)
                for chunk in self._chunks(qty, self.instruments[index].max_qty)
            ]
            runs.append((openers, closers))
        for openers, closers in runs:
            for order_id in openers:
                order = self.orders.get(order_id)
                if order is not None:
                    self.books[order.instrument].remove(order_id)
                    self._end(order, CancelReason.LIQUIDATION, order.remaining)
            for order in closers:
                incoming = Incoming(
                    order.order_id,
                    order.account,
                    order.side,
                    order.price,
                    order.qty,
                    OrderType.MARKET,
                    TimeCondition.IOC,
                    VolumeCondition.ANY,
                    0,
                )
                self._enter(order.instrument, incoming)

    def _liquidation_plan(self, account_id: int) -> list[tuple[int, Side, Offset, int]]:
        """(instrument, closing side, offset, lots) for every free lot of the account.

        Instruments by index; on each the short side first (BUY closers), then the long side.
        """
        plan = []
        holder = self.accounts[account_id]
        for index in sorted(holder.positions):
            if not self.instruments[index].trading:
                continue
            for closer in (Side.BUY, Side.SELL):
                history, today = self.closable(account_id, index, closer)
                if self.instruments[index].shfe:
                    parts = [(Offset.CLOSE, history), (Offset.CLOSETODAY, today)]
                else:
                    parts = [(Offset.CLOSE, history + today)]
                plan += [(index, closer, offset, qty) for offset, qty in parts if qty]
        return plan

    @staticmethod
    def _chunks(qty: int, size: int) -> list[int]:
        return [min(size, qty - start) for start in range(0, qty, size)]

    def _liquidation_order(
        self, account_id: int, index: int, side: Side, offset: Offset, qty: int
    ) -> RefOrder:
        spec = self.instruments[index]
        price = spec.upper if side is Side.BUY else spec.lower
        order_id = self.next_order_id
        self.next_order_id += 1
        order = RefOrder(
            order_id, -order_id, account_id, index, side, offset, price, qty, TimeCondition.IOC
        )
        split = self.split_close(account_id, index, side, offset, qty)
        assert split is not None, "liquidation closes only free volume"
        order.history, order.today = split
        self.accounts[account_id].orders[order_id] = order
        self.accounts[account_id].version += 1
        self.orders[order_id] = order
        self.by_ref[order.ref] = order
        return order

    # --- checks ----------------------------------------------------------------------------------

    def conservation(self) -> dict[str, int]:
        """Per currency: Σ balances + fees − deposits + withdrawals (must be 0)."""
        totals: dict[str, int] = {}
        for account_id, holder in self.accounts.items():
            for currency in holder.flows:
                totals[currency] = totals.get(currency, 0) + self.balance(account_id, currency)
        for currency in set(totals) | set(self.deposits):
            totals[currency] = (
                totals.get(currency, 0)
                + self.fees.get(currency, 0)
                - self.deposits.get(currency, 0)
                + self.withdrawals.get(currency, 0)
            )
        return totals

    def open_interest(self) -> dict[int, tuple[int, int]]:
        """Per future: (total long, total short) lots."""
        totals: dict[int, tuple[int, int]] = {}
        for holder in self.accounts.values():
            for index, sides in holder.positions.items():
                long, short = totals.get(index, (0, 0))
                totals[index] = (long + sides[Side.BUY].volume, short + sides[Side.SELL].volume)
        return totals

    # --- the generator's view ------------------------------------------------------------------

    def resting_refs(self) -> list[int]:
        return list(self.by_ref)

    def resting_count(self) -> int:
        return len(self.by_ref)

    def order_info(self, ref: int) -> tuple[int, int, int, int] | None:
        order = self.by_ref.get(ref)
        if order is None:
            return None
        return order.account, order.instrument, order.price, order.remaining

    def best(self, instrument: int, side: Side) -> int | None:
        orders = self.books[instrument].orders(side)
        return orders[0].price if orders else None

    def closable(self, account: int, instrument: int, side: Side) -> tuple[int, int]:
        holder = self.accounts.get(account)
        holding = holder.positions.get(instrument, {}).get(side.opposite) if holder else None
        if holding is None:
            return 0, 0
        frozen_history, frozen_today = self.frozen_volume(account, instrument, side.opposite)
        return holding.history - frozen_history, holding.today - frozen_today

    def band(self, instrument: int) -> tuple[int, int]:
        spec = self.instruments[instrument]
        return spec.lower, spec.upper
