"""The seeded generator test: one random stream through the engine and the reference model.

Every operation's answer code, order id, trades (both legs, commission and close profit) and
cancellations must agree; every `check_every` operations the books (every resting order in
priority order), ledgers, positions, QIFI identities and conservation must agree exactly; and
the engine's state hash must be identical when the recorded commands are replayed.

The CI size is SHMEX_GEN_OPS operations in total (default 200,000), split across
SHMEX_GEN_CHUNKS seeds (default 4) so each test stays well inside its timeout on a loaded
2-core machine.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

from engine.codes import ResultCode
from engine.enums import (
    CancelReason,
    Offset,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeCondition,
    VolumeCondition,
)
from tests.reference.driver import Driver, replay_hash
from tests.reference.generator import (
    AmendOp,
    AuctionOp,
    CancelOp,
    DepositOp,
    Mix,
    OpenAccountOp,
    PlaceOp,
    SetPriceOp,
    SettleOp,
    StatusOp,
    WithdrawOp,
)

TOTAL_OPS = int(os.environ.get("SHMEX_GEN_OPS", "200000"))
CHUNKS = int(os.environ.get("SHMEX_GEN_CHUNKS", "4"))


def model_stream(seed: int, count: int) -> list[object]:
    """The operations a seed produces (applied to the model alone)."""
    driver = Driver(with_engine=False)
    driver.run(seed, count)
    return list(driver.ops)


def test_same_seed_same_stream() -> None:
    assert model_stream(7, 2_000) == model_stream(7, 2_000)
    assert model_stream(7, 2_000) != model_stream(8, 2_000)


def test_stream_covers_every_operation_kind() -> None:
    """Limit, market, IOC, FOK, MIN, closes of each offset, every self-trade prevention mode,
    call auctions that trade, cancel, amend, money, settlement, suspension, and every rejection
    code the stream is meant to provoke."""
    driver = Driver(with_engine=False)
    stats = driver.run(3, 12_000, mix=Mix(settle_every=3_000))
    ops = driver.ops
    kinds = Counter(type(op).__name__ for op in ops)
    for kind in (PlaceOp, CancelOp, AmendOp, DepositOp, WithdrawOp, SetPriceOp, SettleOp, StatusOp):
        assert kinds[kind.__name__] > 0, kind
    places = [op for op in ops if isinstance(op, PlaceOp)]
    assert any(op.order_type is OrderType.MARKET for op in places)
    assert any(op.time_condition is TimeCondition.IOC for op in places)
    assert any(op.volume_condition is VolumeCondition.ALL for op in places)
    assert any(op.volume_condition is VolumeCondition.MIN for op in places)
    for offset in (Offset.CLOSE, Offset.CLOSETODAY, Offset.CLOSEYESTERDAY):
        assert any(op.offset is offset for op in places), offset
    for mode in SelfTradePrevention:
        assert any(op.stp is mode for op in places), mode
    assert any(t.taker_account_id == t.maker_account_id for t in driver.model.trades)  # ALLOW
    reasons = Counter(reason for _, reason, _ in driver.model.cancels)
    assert reasons[CancelReason.SELF_TRADE] > 0
    auctions = Counter(op.run for op in ops if isinstance(op, AuctionOp))
    assert auctions[False] > 0 and auctions[True] > 0 and stats.auction_trades > 0
    for code in (
        ResultCode.NO_SUCH_ACCOUNT,
        ResultCode.NO_SUCH_INSTRUMENT,
        ResultCode.BAD_ORDER_PARAMETER,
        ResultCode.PRICE_OUT_OF_BAND,
        ResultCode.INSUFFICIENT_POSITION,
        ResultCode.ORDER_VALUE_CAP,
        ResultCode.ORDER_NOT_FOUND,
        ResultCode.NO_SETTLEMENT_PRICE,
        ResultCode.DEPOSIT_FAILED,
        ResultCode.WITHDRAW_FAILED,
        ResultCode.INSUFFICIENT_FUNDS,
        ResultCode.RISK_RATIO_CAP,
        ResultCode.INSTRUMENT_NOT_TRADING,
    ):
        assert stats.rejected.get(code), code
    crossing = stats.trades / len(places)
    assert 0.15 < crossing < 0.8, f"trades per order {crossing:.2f}"
    assert stats.max_resting > 500


def test_engine_agrees_on_a_forced_liquidation() -> None:
    """A thin account long IF, IC and cu; IF settles 10% lower and the account is force-closed
    into another account's GTC bids, through the same per-step and full-state comparisons."""
    IF, IC, CU = 0, 1, 3
    gtc = {"time_condition": TimeCondition.GTC}
    driver = Driver()
    driver.apply_all(
        [
            *(OpenAccountOp(account) for account in (1, 2, 3)),
            DepositOp(1, "CNY", 40_000_000, 1),
            DepositOp(2, "CNY", 10**10, 2),
            DepositOp(3, "CNY", 10**10, 3),
            PlaceOp(1, 2, IF, Side.SELL, Offset.OPEN, 19_000, 1),
            PlaceOp(2, 1, IF, Side.BUY, Offset.OPEN, 19_000, 1),
            PlaceOp(3, 2, IC, Side.SELL, Offset.OPEN, 28_000, 1),
            PlaceOp(4, 1, IC, Side.BUY, Offset.OPEN, 28_000, 1),
            PlaceOp(5, 2, CU, Side.SELL, Offset.OPEN, 7_500, 1),
            PlaceOp(6, 1, CU, Side.BUY, Offset.OPEN, 7_500, 1),
            PlaceOp(7, 3, IF, Side.BUY, Offset.OPEN, 17_100, 1, **gtc),
            PlaceOp(8, 3, IC, Side.BUY, Offset.OPEN, 27_900, 1, **gtc),
            PlaceOp(9, 3, CU, Side.BUY, Offset.OPEN, 7_450, 1, **gtc),
            SettleOp(20250102),
            SetPriceOp(IF, 17_100),
            SetPriceOp(IC, 28_000),
            SetPriceOp(CU, 7_500),
            SettleOp(20250102),
        ]
    )
    driver.check_state()
    assert driver.model.settled_days[20250102][2] == (1,)
    assert [(t.price, t.taker_account_id) for t in driver.model.trades[-3:]] == [
        (17_100, 1),
        (27_900, 1),
        (7_450, 1),
    ]
    assert not driver.model.accounts[1].positions
    assert driver.stats.rejected == {ResultCode.NO_SETTLEMENT_PRICE: 1}


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_engine_agrees_with_model_quick(seed: int) -> None:
    """A short stream with frequent settlements, compared in full every 250 operations."""
    driver = Driver()
    stats = driver.run(
        seed, 3_000, check_every=250, mix=Mix(settle_every=1_000), target_resting=400
    )
    assert stats.trades > 100 and stats.settlements >= 2
    assert driver.exchange is not None
    assert replay_hash(driver.commands) == driver.exchange.state_hash()


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_engine_agrees_with_model_at_scale(chunk: int) -> None:
    """SHMEX_GEN_OPS / SHMEX_GEN_CHUNKS operations per seed, ~2,000 resting orders."""
    driver = Driver()
    stats = driver.run(1_000 + chunk, TOTAL_OPS // CHUNKS, check_every=10_000)
    assert stats.ops >= TOTAL_OPS // CHUNKS
    assert stats.max_resting >= 1_600 or TOTAL_OPS < 100_000
    assert driver.exchange is not None
    assert replay_hash(driver.commands) == driver.exchange.state_hash()
