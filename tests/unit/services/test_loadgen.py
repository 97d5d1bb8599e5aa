"""services/loadgen: the seeded order stream and the batched latency histograms."""

from __future__ import annotations

import numpy as np
from hdrh.histogram import HdrHistogram

from engine.enums import Offset, Side
from services import config as configuration
from services.loadgen import Latencies, LoadConfig, OrderStream


def test_latencies_fed_in_batches_equal_hdrh_fed_one_by_one() -> None:
    """Folding (value, count) pairs rounded to their bucket gives hdrh's own histogram, also
    across several folds."""
    drawn = np.random.default_rng(1).lognormal(7, 2, 5000).astype(np.int64)
    values = [*drawn.clip(0, 50_000_000).tolist(), 0, 1, 2047, 2048, 2049, 1_234_567]
    one_by_one = HdrHistogram(1, 60_000_000, 3)
    for value in values:
        one_by_one.record_value(max(1, value))
    latencies = Latencies(fold=700)
    for start in range(0, len(values), 300):
        latencies.add(values[start : start + 300])
    batched = latencies.histogram
    assert batched.get_total_count() == len(values)
    for q in (0, 10, 50, 90, 99, 99.9, 100):
        assert batched.get_value_at_percentile(q) == one_by_one.get_value_at_percentile(q)


def test_the_order_stream_is_seeded_and_crosses_around_pre_settlement() -> None:
    config = configuration.load(env={}, overrides={})
    registry = configuration.load_instruments(config)
    accounts = [11, 12, 13]
    orders = OrderStream(registry, accounts, LoadConfig(seed=5)).next(range(1, 2001), ts=7)
    again = OrderStream(registry, accounts, LoadConfig(seed=5)).next(range(1, 2001), ts=7)
    assert orders == again
    assert orders != OrderStream(registry, accounts, LoadConfig(seed=6)).next(range(1, 2001), 7)
    assert [o.request_id for o in orders] == list(range(1, 2001))
    by_index = {i.index: i for i in registry}
    assert {o.account_id for o in orders} == set(accounts)
    assert {o.side for o in orders} == {Side.BUY, Side.SELL}
    assert {o.offset for o in orders} == {Offset.OPEN} and {o.ts for o in orders} == {7}
    assert {o.qty for o in orders} == {1, 2, 3}
    spreads = {o.price - by_index[o.instrument_index].pre_settlement for o in orders}
    assert spreads == set(range(-3, 4))
    assert len({o.instrument_index for o in orders}) == 3
