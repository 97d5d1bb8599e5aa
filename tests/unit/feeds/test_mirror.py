"""gateway.feeds.mirror: the fill rule's orders (sides, exact price conversion, lot limits)."""

from __future__ import annotations

import itertools

import pytest

from engine.enums import Offset, OrderType, Side, TimeCondition
from engine.instruments import Instrument
from gateway.feeds.instruments import InstrumentSpec
from gateway.feeds.mirror import Mirror, MirrorTarget
from gateway.feeds.records import Trade
from services import config as configuration

EXTERNAL = InstrumentSpec("BINANCE_FUTURES", "BTCUSDT", "0.10", "0.001")
HOUSE = 900


@pytest.fixture(scope="module")
def if2501() -> Instrument:
    registry = configuration.load_instruments(configuration.load(env={}))
    found = registry.get("CFFEX.IF2501")  # tick 0.2, lot 1, max_qty 20
    assert found is not None
    return found


def trade(price: str, qty: str, side: Side) -> Trade:
    return Trade(
        EXTERNAL.instrument_id,
        1,
        1,
        EXTERNAL.tick.units(price),
        EXTERNAL.lot.units(qty),
        side,
        1,
        0,
        100,
    )


def orders(mirror: Mirror, *trades: Trade) -> list[tuple[Side, int, int]]:
    made = mirror.orders(trades, itertools.count(1), ts=5)
    return [(o.side, o.price, o.qty) for o in made]


def test_the_taker_side_becomes_the_house_ioc(if2501: Instrument) -> None:
    mirror = Mirror(HOUSE, [MirrorTarget(if2501, EXTERNAL)])
    made = mirror.orders([trade("3799.0", "2.000", Side.SELL)], itertools.count(7), ts=5)
    assert len(made) == 1
    order = made[0]
    assert (order.request_id, order.account_id, order.instrument_index) == (7, HOUSE, if2501.index)
    assert (order.side, order.offset, order.order_type, order.time_condition) == (
        Side.SELL,
        Offset.OPEN,
        OrderType.LIMIT,
        TimeCondition.IOC,
    )
    assert (order.price, order.qty, order.ts) == (18_995, 2, 5)


def test_off_grid_prices_round_towards_trading_less(if2501: Instrument) -> None:
    mirror = Mirror(HOUSE, [MirrorTarget(if2501, EXTERNAL)])
    # 3799.1 is between the 0.2 ticks 3799.0 and 3799.2: a SELL takes bids >= 3799.2 only,
    # a BUY takes asks <= 3799.0 only
    assert orders(mirror, trade("3799.1", "1.000", Side.SELL)) == [(Side.SELL, 18_996, 1)]
    assert orders(mirror, trade("3799.1", "1.000", Side.BUY)) == [(Side.BUY, 18_995, 1)]


def test_quantities_floor_to_local_lots_and_cap(if2501: Instrument) -> None:
    mirror = Mirror(HOUSE, [MirrorTarget(if2501, EXTERNAL)])
    assert orders(mirror, trade("3800.0", "1.999", Side.BUY)) == [(Side.BUY, 19_000, 1)]
    assert orders(mirror, trade("3800.0", "0.999", Side.BUY)) == []
    assert orders(mirror, trade("3800.0", "500.000", Side.BUY)) == [(Side.BUY, 19_000, 20)]
    assert orders(mirror, trade("3800.0", "1.000", Side.NONE)) == []
    assert mirror.stats() == {"orders": 2, "below_one_lot": 1, "capped": 1, "no_side": 1}


def test_every_mirroring_instrument_gets_an_order(if2501: Instrument) -> None:
    registry = configuration.load_instruments(configuration.load(env={}))
    ic = registry.get("CFFEX.IC2501")
    assert ic is not None
    mirror = Mirror(HOUSE, [MirrorTarget(if2501, EXTERNAL), MirrorTarget(ic, EXTERNAL)])
    made = mirror.orders([trade("3800.0", "1.000", Side.SELL)], itertools.count(1), ts=0)
    assert [(o.instrument_index, o.request_id) for o in made] == [
        (if2501.index, 1),
        (ic.index, 2),
    ]
    other = Trade("COINBASE.BTC-USD", 1, 1, 1, 1, Side.SELL, 1, 0, 100)
    assert mirror.orders([other], itertools.count(1), ts=0) == []
