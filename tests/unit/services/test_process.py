"""The process base: batches in order, crash handling that keeps the cursor, graceful stop."""

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ipc import records
from ipc.control import call
from ipc.records import Kind
from ipc.ring import Ring
from services import config as cfg
from services.process import EXIT_CRASHED, Runner, Service


class Collector(Service):
    """Keeps the seqs it sees; dies on a TRADE with price 666 (a stand-in for a bug)."""

    name = "collector"

    def inputs(self) -> list[str]:
        return ["execs.0"]

    def start(self) -> None:
        self.seen: list[int] = []

    def handle(self, ring: str, batch: np.ndarray[Any, Any]) -> None:
        if np.any(batch["price"] == 666):
            raise RuntimeError("poison record")
        self.seen.extend(batch["seq"].tolist())

    def status(self) -> dict[str, Any]:
        return {"seen": len(self.seen)}


@pytest.fixture
def setup(prefix: str, run_dir: Path) -> Iterator[tuple[cfg.Config, Ring]]:
    config = cfg.load(env={}, overrides={"instance.prefix": prefix, "instance.home": str(run_dir)})
    ring = Ring.create(config.ring_name("execs.0"), records.EXEC, 64)
    try:
        yield config, ring
    finally:
        ring.close()
        ring.unlink()


def _write(ring: Ring, seqs: range, poison_at: int | None = None) -> None:
    batch = records.new_batch(records.EXEC, len(seqs))
    batch["kind"] = Kind.TRADE
    batch["seq"] = list(seqs)
    batch["ts_init"] = time.time_ns() - 10**9  # written a second ago: `ring_wait` >= 1 s
    if poison_at is not None:
        batch["price"][seqs.index(poison_at)] = 666
    writer = ring.writer()
    writer.write(batch, timeout=5)
    writer.close()


def test_crash_logs_the_record_exits_nonzero_and_keeps_the_cursor(
    setup: tuple[cfg.Config, Ring], caplog: pytest.LogCaptureFixture
) -> None:
    config, ring = setup
    runner = Runner(Collector(config, "collector"))
    reader = ring.reader("collector")
    reader.close()
    _write(ring, range(1, 11), poison_at=10)
    with caplog.at_level(logging.CRITICAL):
        assert runner.run() == EXIT_CRASHED
    crash = next(r for r in caplog.records if r.getMessage() == "crashed")
    assert crash.fields["record"]["kind"] == "TRADE"
    assert crash.fields["ring"] == "execs.0"
    assert crash.fields["last_seq"] == 10
    (info,) = ring.readers()
    assert info.cursor == 0  # the failed batch was not released: a restart sees it again
    assert not (config.home / "collector.pid").exists()


def test_shutdown_request_drains_and_returns_zero(setup: tuple[cfg.Config, Ring]) -> None:
    config, ring = setup
    service = Collector(config, "collector")
    runner = Runner(service)
    ring.reader("collector").close()
    _write(ring, range(1, 41))
    result: list[Any] = []

    def ask() -> None:
        endpoint = config.control_endpoint("collector")
        for _ in range(200):
            try:
                status = call(endpoint, "status", timeout=0.2)
            except Exception:
                continue
            if status["service"]["seen"] == 40:
                result.append(status)
                break
        result.append(call(endpoint, "shutdown", timeout=5))

    thread = threading.Thread(target=ask)
    thread.start()
    assert runner.run() == 0
    thread.join(timeout=10)
    assert result[-1] == "stopping"
    assert result[0]["rings"]["execs.0"]["published"] == 40
    assert 0 < result[0]["handle_us"]["p50"] <= result[0]["handle_us"]["max"]
    metrics = result[0]["metrics"]
    (records_in,) = [c for c in metrics["counters"] if c["name"] == "records_in"]
    assert (records_in["labels"], records_in["value"]) == ({"ring": "execs.0"}, 40)
    sizes = next(h for h in metrics["histograms"] if h["name"] == "batch_size")["histogram"]
    latency = next(h for h in metrics["histograms"] if h["name"] == "stage_latency")["histogram"]
    assert sizes["sum"] == 40 and latency["count"] == sizes["count"] >= 1
    ring_wait = next(h for h in metrics["histograms"] if h["name"] == "ring_wait")
    assert ring_wait["labels"] == {"ring": "execs.0"}
    assert ring_wait["histogram"]["count"] == sizes["count"]
    assert 10**9 <= ring_wait["histogram"]["min"] < 60 * 10**9
    assert set(result[0]["waits"]) == {"sleeps", "knocks"}
    assert service.seen == list(range(1, 41))
    (info,) = ring.readers()
    assert info.cursor == 40


class Forwarder(Collector):
    """Copies what it reads on execs.0 to execs.1 through the writer the Runner gives it."""

    def outputs(self) -> list[str]:
        return ["execs.1"]

    def handle(self, ring: str, batch: np.ndarray[Any, Any]) -> None:
        super().handle(ring, batch)
        self.writers["execs.1"].write(batch.copy(), timeout=5)
        if len(self.seen) == 30:
            raise KeyboardInterrupt  # leave run() by a BaseException: cleanup must still happen


def test_outputs_get_a_writer_and_are_released_on_close(setup: tuple[cfg.Config, Ring]) -> None:
    config, ring = setup
    out = Ring.create(config.ring_name("execs.1"), records.EXEC, 64)
    try:
        reader = out.reader("check")
        service = Forwarder(config, "forwarder")
        ring.reader("forwarder").close()
        _write(ring, range(1, 31))
        with pytest.raises(KeyboardInterrupt):
            Runner(service).run()
        view = reader.read(max_n=64, timeout=5)
        assert view["seq"].tolist() == list(range(1, 31))
        reader.release(len(view))
        assert out.stats()["writer_pid"] == 0
    finally:
        out.close()
        out.unlink()
