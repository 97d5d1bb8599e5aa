"""The recent past, for sparklines and charts: a bounded window of points taken from samples.

Both views keep one `History`: the terminal draws sparklines from it, the web dashboard sends it
to a browser that has just connected so its charts do not start empty.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from monitor.sample import Sample

LATENCY_PREFERENCE = ("order_to_answer", "stage_latency")
"""Histogram names charted as "latency", best first; any other histogram comes next."""


@dataclass(frozen=True)
class Point:
    wall_ms: int
    throughput: float  # records published per second, all rings
    latency_label: str  # which measure the latency columns hold
    latency_p50_us: float
    latency_p99_us: float
    rings: dict[str, float]  # publish rate per ring


def latency_of(sample: Sample) -> tuple[str, float, float]:
    """(label, p50 µs, p99 µs): the processes' own latency histogram when one exists, else the
    slowest process's recent batch handling time (`status()["handle_us"]`), else the slowest
    `status` round trip the monitor measured (a live stand-in, labelled as such)."""
    names = [n for n in LATENCY_PREFERENCE if n in sample.latencies]
    names += sorted(n for n in sample.latencies if n not in LATENCY_PREFERENCE)
    for name in names:
        snap = sample.latencies[name]
        if snap.get("unit", "ns") == "ns" and snap["count"]:
            return name, snap["p50"] / 1e3, snap["p99"] / 1e3
    handled = [
        (float(h["p99"]), float(h["p50"]))
        for p in sample.processes
        if isinstance(h := (p.status or {}).get("handle_us"), dict) and "p99" in h
    ]
    if handled:
        p99, p50 = max(handled)
        return "batch_handle", p50, p99
    rtts = [p.control_rtt_us for p in sample.processes if p.control_rtt_us is not None]
    slowest = max(rtts, default=0.0)
    return "control_rtt", slowest, slowest


def point_of(sample: Sample) -> Point:
    label, p50, p99 = latency_of(sample)
    return Point(
        wall_ms=sample.wall_ns // 1_000_000,
        throughput=sample.throughput,
        latency_label=label,
        latency_p50_us=p50,
        latency_p99_us=p99,
        rings={ring.name: ring.rate for ring in sample.rings},
    )


class History:
    """The last `size` points."""

    def __init__(self, size: int = 120) -> None:
        self.points: deque[Point] = deque(maxlen=size)

    def add(self, sample: Sample) -> Point:
        point = point_of(sample)
        self.points.append(point)
        return point

    def values(self, field: str) -> list[float]:
        return [float(getattr(point, field)) for point in self.points]

    def ring_values(self, ring: str) -> list[float]:
        return [point.rings.get(ring, 0.0) for point in self.points]

    def as_list(self) -> list[dict[str, Any]]:
        return [asdict(point) for point in self.points]
