"""Drives one generated stream through the engine's `Exchange` facade and the reference model.

Each operation becomes an `engine.accounts.commands` object and a model call; the driver
compares, per operation, the answer code, the order id, every trade (both legs, with their
commission and close profit) and every cancellation, and on demand the whole state: books in
priority order, ledgers, positions, live orders, the QIFI identities and conservation.
A mismatch raises `Divergence` naming the step and the operation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from engine.accounts import commands as cmd
from engine.accounts.events import (
    CommandAccepted,
    CommandRejected,
    SettlementCompleted,
    TradeBooked,
)
from engine.codes import ResultCode
from engine.enums import InstrumentKind, Side, TradingPhase
from engine.exchange import Exchange
from engine.instruments import InstrumentRegistry
from engine.matching import commands as mc
from engine.matching.events import OrderCanceled, TradeExecuted
from tests.reference.generator import (
    AmendOp,
    AuctionOp,
    CancelOp,
    DepositOp,
    Generator,
    MarketSpec,
    Op,
    OpenAccountOp,
    PlaceOp,
    SetPriceOp,
    SettleOp,
    StatusOp,
    WithdrawOp,
)
from tests.reference.instruments import DEFAULT_TOML, RefInstrument, load_instruments
from tests.reference.model import RefExchange

UNKNOWN_ORDER = 10**12
"""The order id sent for a reference that never became an order (it must be ORDER_NOT_FOUND)."""

TYPICAL_QTY = {"CFFEX": 2, "SHFE": 6, "BINANCE": 400}


class Divergence(AssertionError):
    """The engine and the reference model disagree."""


def market_specs(instruments: list[RefInstrument]) -> list[MarketSpec]:
    return [
        MarketSpec(
            index=i.index,
            kind=i.kind,
            currency=i.currency,
            base_asset=i.base_asset,
            pre_settlement=i.pre_settlement,
            upper_limit=i.upper,
            lower_limit=i.lower,
            max_qty=i.max_qty,
            typical_qty=TYPICAL_QTY[i.id.split(".")[0]],
        )
        for i in instruments
    ]


@dataclass
class Stats:
    ops: int = 0
    rejected: dict[int, int] = field(default_factory=dict)
    trades: int = 0
    cancels: int = 0
    settlements: int = 0
    max_resting: int = 0
    resting_sum: int = 0
    auction_trades: int = 0

    @property
    def mean_resting(self) -> float:
        return self.resting_sum / max(self.ops, 1)


class Driver:
    """One engine and one model fed the same operations; `run` generates and applies a stream."""

    def __init__(self, with_engine: bool = True) -> None:
        self.model = RefExchange(*load_instruments())
        registry = InstrumentRegistry.from_toml(DEFAULT_TOML.read_text())
        self.exchange = Exchange(registry, snapshots=False) if with_engine else None
        self.ops: list[Op] = []
        self.commands: list[Any] = []
        self.order_ids: dict[int, int] = {}
        self.stats = Stats()
        self._trades_seen = 0
        self._cancels_seen = 0
        self._step = 0

    def generator(self, seed: int, **options: Any) -> Generator:
        return Generator(seed, market_specs(self.model.instruments), **options)

    def run(self, seed: int, count: int, check_every: int = 0, **options: Any) -> Stats:
        """Set up, then apply `count` generated operations, comparing state every `check_every`."""
        generator = self.generator(seed, **options)
        self.apply_all(generator.setup())
        for op in generator.ops(count, self.model):
            self.apply(op)
            if check_every and self._step % check_every == 0:
                self.check_state()
        self.check_state()
        return self.stats

    def apply_all(self, ops: Iterable[Op]) -> None:
        for op in ops:
            self.apply(op)

    def apply(self, op: Op) -> None:
        """Apply one operation to both sides and compare what each answered and booked."""
        self._step += 1
        self.stats.ops += 1
        self.ops.append(op)
        trades_before = len(self.model.trades)
        code, order_id = self._apply_model(op)
        if isinstance(op, AuctionOp):
            self.stats.auction_trades += len(self.model.trades) - trades_before
        if code:
            self.stats.rejected[code] = self.stats.rejected.get(code, 0) + 1
        self.stats.max_resting = max(self.stats.max_resting, len(self.model.by_ref))
        self.stats.resting_sum += len(self.model.by_ref)
        self.stats.trades = len(self.model.trades)
        self.stats.cancels = len(self.model.cancels)
        if self.exchange is None:
            return
        command = self._command(op)
        self.commands.append(command)
        events = self.exchange.apply(command)
        if isinstance(op, AuctionOp):  # a matching command: no answer, only what it caused
            self._compare_events(op, events)
            return
        answer = next(
            e
            for e in events
            if isinstance(e, CommandAccepted | CommandRejected) and e.request_id == self._step
        )
        engine_code = answer.code if isinstance(answer, CommandRejected) else ResultCode.OK
        if engine_code != code:
            self._diverged(op, f"code: engine {engine_code!r} ({answer}), model {code!r}")
        if isinstance(op, PlaceOp) and not code and answer.order_id != order_id:
            self._diverged(op, f"order id: engine {answer.order_id}, model {order_id}")
        if isinstance(op, SettleOp) and not code:
            result = next(e.result for e in events if isinstance(e, SettlementCompleted))
            got = (
                result.total,
                result.failed,
                result.force_closed,
                result.commission,
                result.profit,
            )
            if got != self.model.settled_days[op.trading_day]:
                self._diverged(op, f"settlement {got} != {self.model.settled_days[op.trading_day]}")
        self._compare_events(op, events)

    def _apply_model(self, op: Op) -> tuple[ResultCode, int]:
        model = self.model
        match op:
            case OpenAccountOp(account):
                return model.open_account(account), 0
            case DepositOp(account, currency, amount, txn):
                return model.transfer(account, currency, amount, txn, 1), 0
            case WithdrawOp(account, currency, amount, txn):
                return model.transfer(account, currency, amount, txn, -1), 0
            case PlaceOp():
                code, order_id = model.submit(*op)
                if order_id:
                    self.order_ids[op.ref] = order_id
                return code, order_id
            case CancelOp(account, ref):
                return model.cancel(account, ref), 0
            case AmendOp(account, ref, price, qty):
                return model.amend(account, ref, price, qty), 0
            case SetPriceOp(instrument, price):
                return model.set_price(instrument, price), 0
            case SettleOp(day):
                self.stats.settlements += 1
                return model.settle(day), 0
            case StatusOp(instrument, trading):
                return model.set_trading(instrument, trading), 0
            case AuctionOp(instrument, run):
                if run:
                    return model.run_auction(instrument), 0
                return model.start_auction(instrument), 0
        raise TypeError(f"unknown operation {op!r}")

    def _command(self, op: Op) -> Any:
        request, ts = self._step, self._step * 1_000
        match op:
            case OpenAccountOp(account):
                return cmd.OpenAccount(request, account, ts)
            case DepositOp(account, currency, amount, txn):
                return cmd.Deposit(request, account, amount, txn, currency, ts)
            case WithdrawOp(account, currency, amount, txn):
                return cmd.Withdraw(request, account, amount, txn, currency, ts)
            case PlaceOp(
                _,
                account,
                instrument,
                side,
                offset,
                price,
                qty,
                order_type,
                time_condition,
                volume_condition,
                min_qty,
                stp,
            ):
                return cmd.SubmitOrder(
                    request,
                    account,
                    instrument,
                    side,
                    offset,
                    price,
                    qty,
                    order_type,
                    time_condition,
                    volume_condition,
                    min_qty,
                    ts,
                    stp,
                )
            case CancelOp(account, ref):
                return cmd.CancelOrder(request, account, self._order_id(ref), ts)
            case AmendOp(account, ref, price, qty):
                return cmd.AmendOrder(request, account, self._order_id(ref), price, qty, ts)
            case SetPriceOp(instrument, price):
                return cmd.SetSettlementPrice(request, instrument, price, ts)
            case SettleOp(day):
                return cmd.ExecuteSettlement(request, day, ts)
            case StatusOp(instrument, trading):
                name = self.model.instruments[instrument].id
                if trading:
                    return cmd.ResumeInstrument(request, name, ts)
                return cmd.SuspendInstrument(request, name, ts)
            case AuctionOp(instrument, run):
                if run:
                    return mc.RunAuction(instrument, ts)
                return mc.SetPhase(instrument, TradingPhase.AUCTION, ts)
        raise TypeError(f"unknown operation {op!r}")

    def _order_id(self, ref: int) -> int:
        return self.order_ids.get(ref, UNKNOWN_ORDER)

    def _compare_events(self, op: Op, events: list[Any]) -> None:
        model = self.model
        fills = model.trades[self._trades_seen :]
        self._trades_seen = len(model.trades)
        trades = [e for e in events if isinstance(e, TradeExecuted)]
        expected = [
            (
                f.trade_id,
                f.price,
                f.qty,
                f.taker_order_id,
                f.taker_account_id,
                f.taker_side,
                f.maker_order_id,
                f.maker_account_id,
                f.taker_remaining,
                f.maker_remaining,
            )
            for f in fills
        ]
        got = [
            (
                t.trade_id,
                t.price,
                t.qty,
                t.taker_order_id,
                t.taker_account_id,
                t.taker_side,
                t.maker_order_id,
                t.maker_account_id,
                t.taker_remaining,
                t.maker_remaining,
            )
            for t in trades
        ]
        if got != expected:
            self._diverged(op, f"trades:\n engine {got}\n model  {expected}")
        legs = [
            (
                b.trade_id,
                b.account_id,
                b.order_id,
                b.side,
                b.offset,
                b.price,
                b.qty,
                b.commission,
                b.close_profit,
            )
            for b in events
            if isinstance(b, TradeBooked)
        ]
        want = [
            (
                f.trade_id,
                leg.account,
                leg.order_id,
                leg.side,
                leg.offset,
                f.price,
                f.qty,
                leg.commission,
                leg.close_profit,
            )
            for f in fills
            for leg in model.legs.pop(f.trade_id)
        ]
        if legs != want:
            self._diverged(op, f"trade legs:\n engine {legs}\n model  {want}")
        cancels = [(e.order_id, e.reason, e.qty) for e in events if isinstance(e, OrderCanceled)]
        expected_cancels = model.cancels[self._cancels_seen :]
        self._cancels_seen = len(model.cancels)
        if cancels != expected_cancels:
            self._diverged(op, f"cancels:\n engine {cancels}\n model  {expected_cancels}")

    def _diverged(self, op: Op, what: str) -> None:
        raise Divergence(f"step {self._step}, {op!r}: {what}")

    # --- whole-state comparison ------------------------------------------------------------------

    def check_state(self) -> None:
        """Model identities always; with the engine, books, accounts and conservation agree."""
        model = self.model
        residual = model.conservation()
        if any(residual.values()):
            raise Divergence(f"step {self._step}: model money not conserved {residual}")
        for index, (long, short) in model.open_interest().items():
            if long != short:
                raise Divergence(f"step {self._step}: model long {long} != short {short} @{index}")
        if self.exchange is None:
            return
        self.exchange.check_invariants()
        self._check_books()
        self._check_accounts()
        self._check_engine_conservation()

    def model_books(self) -> dict[int, list[tuple[int, int, int, int, int]]]:
        return {
            index: [
                (side, o.order_id, o.account_id, o.price, o.remaining)
                for side in (Side.BUY, Side.SELL)
                for o in book.orders(side)
            ]
            for index, book in self.model.books.items()
        }

    def engine_books(self) -> dict[int, list[tuple[int, int, int, int, int]]]:
        """Every resting order from the books' checkpoint export (bids then asks, priority)."""
        assert self.exchange is not None
        out = {}
        for index, book in self.exchange.matching.books.items():
            out[index] = [
                (side, order_id, account_id, price, qty)
                for order_id, account_id, side, price, qty, *_ in book.export()["orders"]
            ]
        return out

    def _check_books(self) -> None:
        engine, model = self.engine_books(), self.model_books()
        for index in model:
            theirs, mine = engine.get(index, []), model[index]
            if theirs != mine:
                diff = [(e, m) for e, m in zip(theirs, mine, strict=False) if e != m]
                raise Divergence(
                    f"step {self._step}: book {index} differs ({len(theirs)} orders in the "
                    f"engine, {len(mine)} in the model), first (engine, model) {diff[:3]}"
                )

    def _check_accounts(self) -> None:
        assert self.exchange is not None
        core = self.exchange.accounts
        model = self.model
        if set(core.accounts) != set(model.accounts):
            raise Divergence(f"step {self._step}: account sets differ")
        if core.marks != model.marks:
            raise Divergence(f"step {self._step}: marks {core.marks} != {model.marks}")
        for account_id, holder in model.accounts.items():
            account = core.accounts[account_id]
            where = f"step {self._step} account {account_id}"
            if set(account.orders) != set(holder.orders):
                raise Divergence(f"{where}: live orders {sorted(account.orders)}")
            for currency, flows in holder.flows.items():
                ledger = account.ledger(currency)
                frozen = model.frozen(account_id, currency)
                mine = (
                    flows.pre_balance,
                    flows.deposit,
                    flows.withdraw,
                    flows.close_profit,
                    flows.commission,
                    flows.exchange,
                    model.margin(account_id, currency),
                    *frozen,
                    model.balance(account_id, currency),
                    model.available(account_id, currency),
                )
                theirs = (
                    ledger.pre_balance,
                    ledger.deposit,
                    ledger.withdraw,
                    ledger.close_profit,
                    ledger.commission,
                    ledger.exchange_flow,
                    ledger.margin,
                    ledger.frozen_margin,
                    ledger.frozen_commission,
                    ledger.frozen_asset,
                    core.balance(account_id, currency),
                    core.available(account_id, currency),
                )
                if mine != theirs:
                    raise Divergence(f"{where} {currency}: engine {theirs}\n model {mine}")
                self._check_qifi(account_id, currency, where)
            positions = set(account.positions)
            if positions != set(holder.positions):
                raise Divergence(f"{where}: positions {positions} != {set(holder.positions)}")
            for index, sides in holder.positions.items():
                position = account.positions[index]
                for side in (Side.BUY, Side.SELL):
                    held = sides[side]
                    frozen = model.frozen_volume(account_id, index, side)
                    mine = (
                        held.today,
                        held.history,
                        frozen[1],
                        frozen[0],
                        held.open_cost,
                        held.cost,
                        held.margin,
                    )
                    got = position.side(side).state()
                    if mine != got:
                        raise Divergence(f"{where} position {index} {side!r}: {got} != {mine}")

    def _check_qifi(self, account_id: int, currency: str, where: str) -> None:
        """QIFI identities on the engine's own numbers: balance and available from their parts."""
        assert self.exchange is not None
        core = self.exchange.accounts
        account = core.accounts[account_id]
        ledger = account.ledger(currency)
        position_profit = 0
        for index, position in account.positions.items():
            instrument = core.instruments.by_index(index)
            if instrument.currency.code != currency:
                continue
            mark = core.marks[index]
            position_profit += instrument.notional(mark, position.long.volume)
            position_profit -= position.long.position_cost
            position_profit += position.short.position_cost
            position_profit -= instrument.notional(mark, position.short.volume)
        balance = core.balance(account_id, currency)
        if balance != ledger.static_balance + position_profit:
            raise Divergence(f"{where} {currency}: balance != static_balance + position_profit")
        frozen = ledger.frozen_margin + ledger.frozen_commission + ledger.frozen_asset
        if core.available(account_id, currency) != balance - ledger.margin - frozen:
            raise Divergence(f"{where} {currency}: available != balance - margin - frozen")

    def _check_engine_conservation(self) -> None:
        """Σ balances + fees − deposits + withdrawals = 0, computed here from the engine's state."""
        assert self.exchange is not None
        core = self.exchange.accounts
        totals: dict[str, int] = {}
        for account_id, account in core.accounts.items():
            for currency in account.ledgers:
                totals[currency] = totals.get(currency, 0) + core.balance(account_id, currency)
        for currency in totals:
            residual = (
                totals[currency]
                + core.fees.get(currency, 0)
                - core.deposits.get(currency, 0)
                + core.withdrawals.get(currency, 0)
            )
            if residual:
                raise Divergence(f"step {self._step}: engine {currency} off by {residual}")
        for instrument in core.instruments:
            if instrument.kind is not InstrumentKind.FUTURE:
                continue
            long = sum(
                a.positions[instrument.index].long.volume
                for a in core.accounts.values()
                if instrument.index in a.positions
            )
            short = sum(
                a.positions[instrument.index].short.volume
                for a in core.accounts.values()
                if instrument.index in a.positions
            )
            if long != short:
                raise Divergence(f"step {self._step}: {instrument.id} long {long} != short {short}")


def replay_hash(commands: list[Any]) -> str:
    """The engine's state hash after applying recorded commands to a fresh exchange."""
    registry = InstrumentRegistry.from_toml(DEFAULT_TOML.read_text())
    exchange = Exchange(registry, snapshots=False)
    for command in commands:
        exchange.apply(command)
    return exchange.state_hash()
