"""ipc/metrics: bucket layout, percentiles against exact ones, merging, snapshots."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ipc import metrics as m


def test_buckets_tile_the_whole_range_without_gaps() -> None:
    previous_high = -1
    for index in range(m.BUCKETS):
        low, high = m.bucket_bounds(index)
        assert low == previous_high + 1
        assert m.bucket_of(low) == index and m.bucket_of(high) == index
        assert high - low + 1 <= max(1, low // m.HALF)  # relative width at most 1/HALF
        previous_high = high
    assert previous_high == m.MAX_VALUE


def test_every_power_of_two_starts_a_bucket() -> None:
    for power in range(m.MAX_BITS):
        assert m.bucket_bounds(m.bucket_of(2**power))[0] == 2**power


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=300))
def test_record_and_record_many_agree_and_percentiles_are_within_a_bucket(
    values: list[int],
) -> None:
    one, many = m.Histogram(), m.Histogram()
    for value in values:
        one.record(value)
    many.record_many(np.array(values, dtype=np.int64))
    assert np.array_equal(one.counts, many.counts)
    assert (one.count, one.total, one.minimum, one.maximum) == (
        many.count,
        many.total,
        many.minimum,
        many.maximum,
    )
    ordered = sorted(values)
    for percent in (50.0, 99.0, 99.9, 100.0):
        exact = ordered[max(1, int(np.ceil(len(values) * percent / 100))) - 1]
        low, high = m.bucket_bounds(m.bucket_of(exact))
        assert low <= one.percentile(percent) <= high
    assert one.percentile(100.0) == max(values)


def test_out_of_range_values_are_clamped() -> None:
    histogram = m.Histogram()
    histogram.record(-5)
    histogram.record(m.MAX_VALUE * 4)
    assert histogram.minimum == 0 and histogram.maximum == m.MAX_VALUE
    assert histogram.count == 2


def test_merge_equals_recording_everything_in_one() -> None:
    rng = np.random.default_rng(7)
    a_values = rng.lognormal(9, 1, 500).astype(np.int64)
    b_values = rng.lognormal(12, 2, 300).astype(np.int64)
    a, b, both = m.Histogram(), m.Histogram(), m.Histogram()
    a.record_many(a_values)
    b.record_many(b_values)
    both.record_many(np.concatenate([a_values, b_values]))
    a.merge(b)
    assert np.array_equal(a.counts, both.counts)
    assert a.snapshot() == both.snapshot()


def test_snapshot_is_json_and_round_trips() -> None:
    histogram = m.Histogram()
    for value in (100, 200, 300, 40_000, 5_000_000):
        histogram.record(value)
    snap = histogram.snapshot()
    assert json.loads(json.dumps(snap)) == snap
    assert snap["count"] == 5 and snap["min"] == 100 and snap["max"] == 5_000_000
    assert snap["p50"] == m.bucket_bounds(m.bucket_of(300))[1] == 303  # upper edge of its bucket
    assert snap["p999"] == 5_000_000  # capped at the largest value seen
    again = m.Histogram.from_snapshot(snap)
    assert np.array_equal(again.counts, histogram.counts)
    assert again.snapshot() == snap


def test_empty_histogram_snapshot() -> None:
    snap = m.Histogram().snapshot()
    assert snap["count"] == 0 and snap["min"] == 0 and snap["p99"] == 0 and snap["buckets"] == []
    assert m.Histogram.from_snapshot(snap).snapshot() == snap


def test_metrics_registry_returns_the_same_object_and_snapshots_labels() -> None:
    metrics = m.Metrics()
    records = metrics.counter("records_in", ring="execs.0")
    assert metrics.counter("records_in", ring="execs.0") is records
    records.inc(10)
    records.inc()
    metrics.counter("rejects", code=1001).inc(2)
    metrics.gauge("sessions").set(3)
    metrics.histogram("stage_latency").record(1500)
    metrics.histogram("batch_size", unit="records").record(64)
    snap = metrics.snapshot()
    assert json.loads(json.dumps(snap)) == snap
    counters = {(c["name"], tuple(c["labels"].items())): c["value"] for c in snap["counters"]}
    assert counters == {
        ("records_in", (("ring", "execs.0"),)): 11,
        ("rejects", (("code", "1001"),)): 2,
    }
    assert snap["gauges"] == [{"name": "sessions", "labels": {}, "value": 3}]
    units = {h["name"]: h["histogram"]["unit"] for h in snap["histograms"]}
    assert units == {"stage_latency": "ns", "batch_size": "records"}
