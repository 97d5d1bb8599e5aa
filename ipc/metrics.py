"""Metrics every process keeps at the source: counters, gauges and log-linear histograms.

They are cheap enough to leave on in the hot loop: a counter is one Python int add, a histogram
`record` is a bit_length, a shift and one item add into a preallocated numpy array (well under a
microsecond), and `record_many` takes a whole batch at once. Nothing is sent anywhere:
`Metrics.snapshot()` renders everything as a JSON-able dict that the process returns from its
`status` control command, and the monitor turns into tables, charts and Prometheus text.

The histogram is HDR-style: values below 2**SUB_BITS land in exact buckets, larger ones in
2**(SUB_BITS-1) linear sub-buckets per power of two, so every bucket is at most 1/16 = 6.25%
wide relative to its value and the bucket edges include every power of two (Prometheus `le`
bounds at powers of two are therefore exact). Histograms of the same layout merge by adding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

SUB_BITS = 5
HALF = 1 << (SUB_BITS - 1)
MAX_BITS = 44
"""Values are clamped to 2**44 - 1 (about 4.9 hours in nanoseconds)."""
MAX_VALUE = (1 << MAX_BITS) - 1
BUCKETS = (MAX_BITS - SUB_BITS + 2) * HALF
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def bucket_of(value: int) -> int:
    """The bucket index of a non-negative integer value."""
    shift = value.bit_length() - SUB_BITS
    if shift <= 0:
        return value
    return shift * HALF + (value >> shift)


def bucket_bounds(index: int) -> tuple[int, int]:
    """The values [low, high] (inclusive) that land in bucket `index`."""
    if index < 2 * HALF:
        return index, index
    shift = index // HALF - 1
    low = (index - shift * HALF) << shift
    return low, low + (1 << shift) - 1


_UPPER = np.array([bucket_bounds(i)[1] for i in range(BUCKETS)], dtype=np.int64)


class Histogram:
    """Counts of integer values (latencies in ns, batch sizes) in log-linear buckets."""

    __slots__ = ("_cells", "count", "counts", "maximum", "minimum", "total", "unit")

    def __init__(self, unit: str = "ns") -> None:
        self.counts = np.zeros(BUCKETS, dtype=np.int64)
        self._cells = memoryview(self.counts).cast("B").cast("q")  # item adds 2x faster than numpy
        self.count = 0
        self.total = 0
        self.minimum = MAX_VALUE
        self.maximum = 0
        self.unit = unit

    def record(self, value: int) -> None:
        """Count one value (negative values count as 0; huge ones are clamped)."""
        if value < 0:
            value = 0
        elif value > MAX_VALUE:
            value = MAX_VALUE
        shift = value.bit_length() - SUB_BITS
        self._cells[value if shift <= 0 else shift * HALF + (value >> shift)] += 1
        if value > self.maximum:
            self.maximum = value
        if value < self.minimum:
            self.minimum = value
        self.count += 1
        self.total += value

    def record_many(self, values: np.ndarray[Any, Any]) -> None:
        """Count a batch of values in one vectorised pass (for per-batch latencies)."""
        if not len(values):
            return
        clipped = np.clip(np.asarray(values, dtype=np.int64), 0, MAX_VALUE)
        bits = np.frexp(clipped.astype(np.float64))[1]  # exact bit_length below 2**53
        shift = np.maximum(bits - SUB_BITS, 0)
        index = np.where(shift > 0, shift * HALF + (clipped >> shift), clipped)
        self.counts += np.bincount(index, minlength=BUCKETS)
        self.minimum = min(self.minimum, int(clipped.min()))
        self.maximum = max(self.maximum, int(clipped.max()))
        self.count += len(clipped)
        self.total += int(clipped.sum())

    def merge(self, other: Histogram) -> None:
        """Add another histogram's counts into this one (same layout by construction)."""
        self.counts += other.counts
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)
        self.count += other.count
        self.total += other.total

    def percentile(self, percent: float) -> int:
        """The upper edge of the bucket holding the given percentile (0 when empty), at most
        the largest value seen, so the error is below one bucket's width."""
        if not self.count:
            return 0
        rank = max(1, int(np.ceil(self.count * percent / 100.0)))
        index = int(np.searchsorted(np.cumsum(self.counts), rank))
        return min(int(_UPPER[index]), self.maximum)

    def snapshot(self) -> dict[str, Any]:
        """Summary plus the non-empty buckets as [upper_bound, count] pairs (JSON-able)."""
        nonzero = np.flatnonzero(self.counts)
        return {
            "unit": self.unit,
            "count": self.count,
            "sum": self.total,
            "min": self.minimum if self.count else 0,
            "max": self.maximum,
            **{_percentile_key(p): self.percentile(p) for p in PERCENTILES},
            "buckets": [[int(_UPPER[i]), int(self.counts[i])] for i in nonzero],
        }

    @classmethod
    def from_snapshot(cls, snapshot: dict[str, Any]) -> Histogram:
        """Rebuild a histogram from `snapshot()` output (the monitor merges processes' views)."""
        histogram = cls(snapshot.get("unit", "ns"))
        for upper, count in snapshot["buckets"]:
            histogram.counts[bucket_of(int(upper))] += int(count)
        histogram.count = int(snapshot["count"])
        histogram.total = int(snapshot["sum"])
        histogram.minimum = int(snapshot["min"]) if histogram.count else MAX_VALUE
        histogram.maximum = int(snapshot["max"])
        return histogram


def _percentile_key(percent: float) -> str:
    """50 -> "p50", 99.9 -> "p999"."""
    return "p" + f"{percent:g}".replace(".", "")


class Counter:
    """A monotonically increasing count; hold on to it and call `inc` in the hot loop."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self, amount: int = 1) -> None:
        self.value += amount


class Gauge:
    """A value that goes up and down (queue depth, open sessions)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: int | float = 0

    def set(self, value: int | float) -> None:
        self.value = value


@dataclass(frozen=True)
class Key:
    name: str
    labels: tuple[tuple[str, str], ...]


def _key(name: str, labels: dict[str, Any]) -> Key:
    return Key(name, tuple(sorted((k, str(v)) for k, v in labels.items())))


class Metrics:
    """One process's metrics, created on first use and looked up by name and labels.

    Look-ups hash the labels, so a hot loop fetches its Counter once and keeps it:
    `self._trades = metrics.counter("trades", instrument="X")`, then `self._trades.inc(n)`.
    Names follow one vocabulary so the monitor can chart them: `records_in`/`records_out`
    (label ring), `orders`, `trades`, `rejects` (label code), `stalls`, `wakeups`, histograms
    `stage_latency`, `order_to_answer`, `batch_size`.
    """

    def __init__(self) -> None:
        self._counters: dict[Key, Counter] = {}
        self._gauges: dict[Key, Gauge] = {}
        self._histograms: dict[Key, Histogram] = {}

    def counter(self, name: str, **labels: Any) -> Counter:
        key = _key(name, labels)
        found = self._counters.get(key)
        if found is None:
            found = self._counters[key] = Counter()
        return found

    def gauge(self, name: str, **labels: Any) -> Gauge:
        key = _key(name, labels)
        found = self._gauges.get(key)
        if found is None:
            found = self._gauges[key] = Gauge()
        return found

    def histogram(self, name: str, unit: str = "ns", **labels: Any) -> Histogram:
        key = _key(name, labels)
        found = self._histograms.get(key)
        if found is None:
            found = self._histograms[key] = Histogram(unit)
        return found

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """Every metric as `{"name", "labels", "value"}` (histograms: `"histogram"`)."""
        return {
            "counters": [_entry(k, {"value": c.value}) for k, c in self._counters.items()],
            "gauges": [_entry(k, {"value": g.value}) for k, g in self._gauges.items()],
            "histograms": [
                _entry(k, {"histogram": h.snapshot()}) for k, h in self._histograms.items()
            ],
        }


def _entry(key: Key, fields: dict[str, Any]) -> dict[str, Any]:
    return {"name": key.name, "labels": dict(key.labels), **fields}
