"""monitor/series: which latency the charts show, and the bounded history."""

from __future__ import annotations

from ipc.metrics import Histogram
from monitor.sample import DiskSample, ProcessSample, Sample
from monitor.series import History, latency_of


def _sample(processes: list[ProcessSample], latencies: dict | None = None) -> Sample:
    return Sample(
        prefix="shmex_x",
        home="/tmp/x",
        wall_ns=1_000_000_000,
        monotonic_s=1.0,
        supervisor_up=True,
        processes=processes,
        rings=[],
        disk=DiskSample(journal_bytes=0, history_bytes=0, free_bytes=1, total_bytes=1),
        latencies=latencies or {},
    )


def test_latency_prefers_histograms_then_batch_handling_then_control_round_trips() -> None:
    fast = ProcessSample("recorder", 1, "running", True, control_rtt_us=800.0)
    fast.status = {"handle_us": {"p50": 5.0, "p99": 40.0}}
    slow = ProcessSample("matching.0", 2, "running", True, control_rtt_us=1200.0)
    slow.status = {"handle_us": {"p50": 9.0, "p99": 90.0}}
    bare = ProcessSample("accounts", 3, "running", True, control_rtt_us=700.0)
    assert latency_of(_sample([bare, fast])) == ("batch_handle", 5.0, 40.0)
    assert latency_of(_sample([fast, slow])) == ("batch_handle", 9.0, 90.0)
    assert latency_of(_sample([bare])) == ("control_rtt", 700.0, 700.0)
    stage, answer = Histogram(), Histogram()
    stage.record(2_000)
    answer.record(30_000)
    both = {"stage_latency": stage.snapshot(), "order_to_answer": answer.snapshot()}
    label, p50, _p99 = latency_of(_sample([fast], both))
    assert label == "order_to_answer" and 30.0 <= p50 <= 31.0


def test_history_keeps_the_last_points() -> None:
    history = History(size=3)
    for n in range(5):
        sample = _sample([ProcessSample("recorder", 1, "running", True, control_rtt_us=float(n))])
        history.add(sample)
    assert history.values("latency_p50_us") == [2.0, 3.0, 4.0]
    assert len(history.as_list()) == 3
