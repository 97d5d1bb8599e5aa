"""A seeded generator of exchange operations, in the style of exchange-core's test generator.

It produces abstract operations (plain tuples of the engine's vocabulary) that the driver turns
into `engine.accounts.commands` and into reference-model calls. It reads the reference model
(read-only) to know which orders rest and what each account holds, so that it can keep about
`target_resting` orders in play, aim ~30% of new orders through the spread, and close positions
that exist; a share of the operations is deliberately invalid and must be rejected with a code.
Everything derives from `random.Random(seed)`, so a seed replays the same stream.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from engine.enums import (
    InstrumentKind,
    Offset,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeCondition,
    VolumeCondition,
)

FUNDING = {"CNY": 2 * 10**10, "USDT": 10**14, "BTC": 10**9}
"""Opening deposits in money units (200M CNY, 1M USDT, 10 BTC): enough to trade, not so much
that the risk checks never bite."""


class OpenAccountOp(NamedTuple):
    account: int


class DepositOp(NamedTuple):
    account: int
    currency: str
    amount: int
    txn: int


class WithdrawOp(NamedTuple):
    account: int
    currency: str
    amount: int
    txn: int


class PlaceOp(NamedTuple):
    """`ref` names the order for later cancels and amends (the exchange assigns the order id)."""

    ref: int
    account: int
    instrument: int
    side: Side
    offset: Offset
    price: int
    qty: int
    order_type: OrderType = OrderType.LIMIT
    time_condition: TimeCondition = TimeCondition.GFD
    volume_condition: VolumeCondition = VolumeCondition.ANY
    min_qty: int = 0
    stp: SelfTradePrevention = SelfTradePrevention.NONE


class CancelOp(NamedTuple):
    account: int
    ref: int


class AmendOp(NamedTuple):
    account: int
    ref: int
    price: int
    qty: int


class SetPriceOp(NamedTuple):
    instrument: int
    price: int


class SettleOp(NamedTuple):
    trading_day: int


class AuctionOp(NamedTuple):
    """Admin, straight to matching: start a call auction on an instrument, or `run` (uncross) it."""

    instrument: int
    run: bool


class StatusOp(NamedTuple):
    """Admin: suspend (`trading` False) or resume an instrument."""

    instrument: int
    trading: bool


Op = (
    OpenAccountOp
    | DepositOp
    | WithdrawOp
    | PlaceOp
    | CancelOp
    | AmendOp
    | SetPriceOp
    | SettleOp
    | StatusOp
    | AuctionOp
)


@dataclass(frozen=True)
class MarketSpec:
    """What the generator needs to know of one instrument (from the instruments TOML)."""

    index: int
    kind: InstrumentKind
    currency: str
    base_asset: str
    pre_settlement: int
    upper_limit: int
    lower_limit: int
    max_qty: int
    typical_qty: int


class ModelView(Protocol):
    """The read-only questions the generator asks the reference model."""

    def resting_refs(self) -> list[int]: ...

    def resting_count(self) -> int: ...

    def order_info(self, ref: int) -> tuple[int, int, int, int] | None:
        """(account, instrument, price, remaining) of a live order, else None."""

    def best(self, instrument: int, side: Side) -> int | None: ...

    def closable(self, account: int, instrument: int, side: Side) -> tuple[int, int]:
        """(history, today) lots of the position a `side` order would close."""

    def band(self, instrument: int) -> tuple[int, int]:
        """(lower, upper) limit in ticks for today."""


@dataclass
class Mix:
    """Weights of the operation kinds; the defaults give ~30% crossing orders."""

    passive: int = 30
    aggressive: int = 14
    close: int = 8
    cancel: int = 24
    amend: int = 14
    money: int = 3
    invalid: int = 3
    settle_every: int = 12_500
    suspend_rate: float = 0.0005
    """Chance per step of suspending an instrument (resumed 50–1,000 steps later)."""
    stp_rate: float = 0.3
    """Share of crossing orders that name a self-trade prevention mode (else the default)."""
    auction_rate: float = 0.0005
    """Chance per step of starting a call auction on an instrument (run 20–300 steps later)."""


class Generator:
    """Seeded stream: `setup()` opens and funds the accounts, `ops(view)` yields the rest.

    The last `thin_accounts` accounts get a hundredth of the funding, so that they meet the risk
    limits and, after an adverse settlement price, forced liquidation.
    """

    def __init__(
        self,
        seed: int,
        markets: list[MarketSpec],
        accounts: int = 24,
        target_resting: int = 2_000,
        mix: Mix | None = None,
        first_trading_day: int = 20250102,
        thin_accounts: int = 3,
    ) -> None:
        self.rng = random.Random(seed)
        self.markets = markets
        self.accounts = list(range(1, accounts + 1))
        self.target_resting = target_resting
        self.mix = mix or Mix()
        self.first_trading_day = self.trading_day = first_trading_day
        self.thin_accounts = thin_accounts
        self.centers = {m.index: m.pre_settlement for m in markets}
        self._refs = 0
        self._txns = 0
        self._used_txns: list[tuple[int, str, int, int, bool]] = []
        self._resume_at: dict[int, int] = {}
        self._uncross_at: dict[int, int] = {}

    def setup(self) -> list[Op]:
        ops: list[Op] = []
        for account in self.accounts:
            ops.append(OpenAccountOp(account))
            share = 100 if account > len(self.accounts) - self.thin_accounts else 1
            for currency, amount in FUNDING.items():
                ops.append(self._deposit(account, currency, amount // share))
        return ops

    def ops(self, count: int, view: ModelView) -> Iterator[Op]:
        """Yield `count` operations (a settlement may overshoot by a few); `view` must already
        reflect every operation yielded."""
        produced = 0
        for step in itertools.count(1):
            if produced >= count:
                return
            for op in self._step(step, view):
                produced += 1
                yield op

    def _step(self, step: int, view: ModelView) -> Iterator[Op]:
        """The operations of one step: a settlement, a suspension change, and/or one pick."""
        mix = self.mix
        kinds = ("passive", "aggressive", "close", "cancel", "amend", "money", "invalid")
        if step in self._resume_at:
            yield StatusOp(self._resume_at.pop(step), trading=True)
        if step in self._uncross_at:
            yield AuctionOp(self._uncross_at.pop(step), run=True)
        if step % mix.settle_every == 0:
            yield from self._settlement(view)
            return
        if self.rng.random() < mix.suspend_rate:
            market = self._market()
            resume = step + self.rng.randint(50, 1_000)
            while resume in self._resume_at:
                resume += 1
            self._resume_at[resume] = market.index
            yield StatusOp(market.index, trading=False)
        if self.rng.random() < mix.auction_rate:
            market = self._market()
            if market.index not in self._uncross_at.values():
                uncross = step + self.rng.randint(20, 300)
                while uncross in self._uncross_at or uncross % mix.settle_every == 0:
                    uncross += 1
                self._uncross_at[uncross] = market.index
                yield AuctionOp(market.index, run=False)
        fill = max(view.resting_count(), 1) / self.target_resting
        weights = [getattr(mix, kind) for kind in kinds]
        if fill < 1:
            weights[0] *= min(8.0, fill**-2)
            weights[3] *= fill**3
        elif fill > 1.1:
            weights[3] *= 3
        kind = self.rng.choices(kinds, weights)[0]
        op = getattr(self, f"_{kind}")(view)
        if op is not None:
            yield op

    def _next_ref(self) -> int:
        self._refs += 1
        return self._refs

    def _market(self) -> MarketSpec:
        return self.rng.choice(self.markets)

    def _qty(self, market: MarketSpec) -> int:
        return max(1, int(self.rng.expovariate(1 / market.typical_qty)))

    def _drift(self, market: MarketSpec, view: ModelView) -> int:
        lower, upper = view.band(market.index)
        margin = max(20, (upper - lower) // 8)
        center = self.centers[market.index] + self.rng.randint(-2, 2)
        center = min(max(center, lower + margin), upper - margin)
        self.centers[market.index] = center
        return center

    def _passive(self, view: ModelView) -> Op:
        """A limit order behind the opposite best (it rests; it does not cross)."""
        market = self._market()
        center = self._drift(market, view)
        side = self.rng.choice((Side.BUY, Side.SELL))
        distance = 1 + int(self.rng.expovariate(1 / 8))
        best = view.best(market.index, side.opposite)
        if side is Side.BUY:
            price = center - distance if best is None else min(center, best) - distance
        else:
            price = center + distance if best is None else max(center, best) + distance
        lower, upper = view.band(market.index)
        price = min(max(price, lower), upper)
        time_condition = TimeCondition.GTC if self.rng.random() < 0.4 else TimeCondition.GFD
        return PlaceOp(
            self._next_ref(),
            self.rng.choice(self.accounts),
            market.index,
            side,
            self._open_offset(market),
            price,
            self._qty(market),
            time_condition=time_condition,
        )

    def _open_offset(self, market: MarketSpec) -> Offset:
        return Offset.NONE if market.kind is InstrumentKind.SPOT else Offset.OPEN

    def _aggressive_terms(
        self, market: MarketSpec, side: Side, view: ModelView
    ) -> tuple[int, OrderType, TimeCondition, VolumeCondition, int, int]:
        """Price and conditions of an order meant to cross: limit, IOC, FOK, MIN or market."""
        center = self._drift(market, view)
        best = view.best(market.index, side.opposite)
        reach = self.rng.randint(0, 4)
        if best is None:
            price = center + reach if side is Side.BUY else center - reach
        else:
            price = best + reach if side is Side.BUY else best - reach
        qty = self._qty(market) * self.rng.choice((1, 1, 1, 2, 3))
        roll = self.rng.random()
        if roll < 0.40:
            return price, OrderType.LIMIT, TimeCondition.GFD, VolumeCondition.ANY, 0, qty
        if roll < 0.60:
            return price, OrderType.LIMIT, TimeCondition.IOC, VolumeCondition.ANY, 0, qty
        if roll < 0.75:
            return price, OrderType.LIMIT, TimeCondition.IOC, VolumeCondition.ALL, 0, qty
        if roll < 0.88:
            min_qty = self.rng.randint(1, qty)
            condition = self.rng.choice((TimeCondition.IOC, TimeCondition.GFD))
            return price, OrderType.LIMIT, condition, VolumeCondition.MIN, min_qty, qty
        return price, OrderType.MARKET, TimeCondition.IOC, VolumeCondition.ANY, 0, qty

    def _aggressive(self, view: ModelView) -> Op:
        market = self._market()
        side = self.rng.choice((Side.BUY, Side.SELL))
        price, order_type, time_condition, volume_condition, min_qty, qty = self._aggressive_terms(
            market, side, view
        )
        account = self.rng.choice(self.accounts)
        offset = self._open_offset(market)
        if market.kind is InstrumentKind.FUTURE and self.rng.random() < 0.5:
            offset, qty = self._reduce(account, market, side, qty, view)
            min_qty = min(min_qty, qty)
        return PlaceOp(
            self._next_ref(),
            account,
            market.index,
            side,
            offset,
            price,
            qty,
            order_type,
            time_condition,
            volume_condition,
            min_qty,
            self._stp(),
        )

    def _stp(self) -> SelfTradePrevention:
        """Mostly matching's default; sometimes each explicit mode, ALLOW included."""
        if self.rng.random() >= self.mix.stp_rate:
            return SelfTradePrevention.NONE
        return self.rng.choice(tuple(SelfTradePrevention)[1:])

    def _reduce(
        self, account: int, market: MarketSpec, side: Side, qty: int, view: ModelView
    ) -> tuple[Offset, int]:
        """Turn an opening order into a close of what the account holds, when it holds some,
        so that open interest stays bounded (CLOSE takes history, CLOSETODAY today)."""
        history, today = view.closable(account, market.index, side)
        if history:
            return Offset.CLOSE, min(qty, history)
        if today:
            return Offset.CLOSETODAY, min(qty, today)
        return Offset.OPEN, qty

    def _close(self, view: ModelView) -> Op | None:
        """Close part of a position that exists, sometimes more than exists (2005)."""
        futures = [m for m in self.markets if m.kind is InstrumentKind.FUTURE]
        market = self.rng.choice(futures)
        account = self.rng.choice(self.accounts)
        side = self.rng.choice((Side.BUY, Side.SELL))
        history, today = view.closable(account, market.index, side)
        if history + today == 0 and self.rng.random() < 0.8:
            return None
        offset = self.rng.choices(
            (Offset.CLOSE, Offset.CLOSETODAY, Offset.CLOSEYESTERDAY), (6, 3, 1)
        )[0]
        have = {Offset.CLOSE: history + today, Offset.CLOSETODAY: today}.get(offset, history)
        qty = self.rng.randint(1, have) if have and self.rng.random() < 0.9 else have + 1
        if self.rng.random() < 0.5:
            price, order_type, time_condition, volume_condition, min_qty, _ = (
                self._aggressive_terms(market, side, view)
            )
        else:
            center = self._drift(market, view)
            distance = 1 + int(self.rng.expovariate(1 / 6))
            price = center - distance if side is Side.BUY else center + distance
            order_type, time_condition = OrderType.LIMIT, TimeCondition.GFD
            volume_condition, min_qty = VolumeCondition.ANY, 0
        min_qty = min(min_qty, qty)
        return PlaceOp(
            self._next_ref(),
            account,
            market.index,
            side,
            offset,
            price,
            qty,
            order_type,
            time_condition,
            volume_condition,
            min_qty,
            self._stp(),
        )

    def _cancel(self, view: ModelView) -> Op | None:
        refs = view.resting_refs()
        if not refs or self.rng.random() < 0.03:
            dead = self.rng.randint(1, max(1, self._refs))
            return CancelOp(self.rng.choice(self.accounts), dead)
        ref = self.rng.choice(refs)
        info = view.order_info(ref)
        assert info is not None
        account = info[0] if self.rng.random() < 0.98 else self.rng.choice(self.accounts)
        return CancelOp(account, ref)

    def _amend(self, view: ModelView) -> Op | None:
        refs = view.resting_refs()
        if not refs:
            return None
        ref = self.rng.choice(refs)
        info = view.order_info(ref)
        assert info is not None
        account, instrument, price, remaining = info
        roll = self.rng.random()
        if roll < 0.45 and remaining > 1:
            return AmendOp(account, ref, price, self.rng.randint(1, remaining - 1))
        if roll < 0.75:
            return AmendOp(account, ref, price + self.rng.choice((-2, -1, 1, 2)), remaining)
        if roll < 0.95:
            return AmendOp(account, ref, price, remaining + self.rng.randint(1, 3))
        if roll < 0.98:
            return AmendOp(account, ref, price, 0)
        lower, upper = view.band(instrument)
        return AmendOp(account, ref, self.rng.choice((lower - 1, upper + 1)), remaining)

    def _next_txn(self) -> int:
        self._txns += 1
        return self._txns

    def _deposit(self, account: int, currency: str, amount: int) -> DepositOp:
        txn = self._next_txn()
        self._used_txns.append((account, currency, amount, txn, True))
        return DepositOp(account, currency, amount, txn)

    def _money(self, view: ModelView) -> Op:
        account = self.rng.choice(self.accounts)
        currency = self.rng.choice(("CNY", "CNY", "USDT", "BTC"))
        roll = self.rng.random()
        if roll < 0.15 and self._used_txns:
            old_account, old_currency, amount, txn, deposit = self.rng.choice(self._used_txns)
            kind = DepositOp if deposit else WithdrawOp
            if self.rng.random() < 0.3:
                amount += 1
            return kind(old_account, old_currency, amount, txn)
        amount = self.rng.randint(1, FUNDING[currency] // 10)
        if roll < 0.18:
            return DepositOp(10_000 + account, currency, amount, self._next_txn())
        if roll < 0.21:
            return DepositOp(account, "XYZ", amount, self._next_txn())
        if roll < 0.6:
            return self._deposit(account, currency, amount)
        if roll < 0.65:
            amount = 10**19
        txn = self._next_txn()
        self._used_txns.append((account, currency, amount, txn, False))
        return WithdrawOp(account, currency, amount, txn)

    def _invalid(self, view: ModelView) -> Op:
        """An order that must be refused: unknown account or instrument, bad qty, out of band."""
        market = self._market()
        lower, upper = view.band(market.index)
        ref = self._next_ref()
        account = self.rng.choice(self.accounts)
        side = self.rng.choice((Side.BUY, Side.SELL))
        price = self.centers[market.index]
        offset = self._open_offset(market)
        match self.rng.randrange(6):
            case 0:
                return PlaceOp(ref, 10_000 + account, market.index, side, offset, price, 1)
            case 1:
                return PlaceOp(ref, account, len(self.markets) + 3, side, offset, price, 1)
            case 2:
                return PlaceOp(ref, account, market.index, side, offset, price, 0)
            case 3:
                return PlaceOp(ref, account, market.index, side, offset, price, market.max_qty + 1)
            case 4:
                return PlaceOp(ref, account, market.index, side, offset, upper + 1, 1)
            case _:
                return PlaceOp(ref, account, market.index, side, offset, lower - 1, 1)

    def _settlement(self, view: ModelView) -> Iterator[Op]:
        """Settlement prices for every instrument, then settle; the first day (and sometimes
        another) tries to settle before the prices are set, which must be refused (6001).

        A fifth of the prices jump near a band edge, which can push the thinly funded accounts
        over the liquidation threshold.
        """
        markets = list(self.markets)
        if self.rng.random() < 0.3 or self.trading_day == self.first_trading_day:
            yield SettleOp(self.trading_day)
        if self.rng.random() < 0.2:
            yield SetPriceOp(len(markets) + 1, 1)
            yield SetPriceOp(self.rng.choice(markets).index, 0)
        for market in markets:
            lower, upper = view.band(market.index)
            price = min(max(self.centers[market.index], lower), upper)
            if self.rng.random() < 0.2:
                edge = (upper - lower) // 10
                price = self.rng.choice((lower + edge, upper - edge))
                self.centers[market.index] = price
            yield SetPriceOp(market.index, price)
        yield SettleOp(self.trading_day)
        self.trading_day += 1
