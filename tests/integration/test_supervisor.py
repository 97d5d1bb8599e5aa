"""bin/exchange with real processes: up, status, restart after SIGKILL, down, two instances,
`up` after a crashed run, and the URLs `up` prints."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from ipc import records
from ipc.control import call
from ipc.liveness import pid_alive
from ipc.records import Kind
from ipc.ring import Ring
from tests.integration.conftest import EXCHANGE, Exchange, free_port

SHM = Path("/dev/shm")
RECORDER_ONLY = ("--set", "processes.enabled=recorder")
"""These tests are about the supervisor, so they run an instance whose only process is the
recorder and play matching themselves by writing `execs.0` (the real pipeline has its own tests)."""


@pytest.fixture
def exchange(exchange_factory: Callable[..., Exchange]) -> Exchange:
    """A running recorder-only instance."""
    instance = exchange_factory(*RECORDER_ONLY)
    result = instance.run("up")
    assert result.returncode == 0, f"up failed:\n{result.stdout}\n{result.stderr}"
    return instance


def _objects(prefix: str) -> list[str]:
    return [p.name for p in SHM.iterdir() if p.name.startswith((f"{prefix}.", f"sem.{prefix}."))]


def _write_execs(instance: Exchange, kinds: list[Kind], first_seq: int) -> None:
    """Write records into the instance's execs ring as matching will (a real ring writer)."""
    ring = Ring.attach(f"{instance.prefix}.execs.0", records.EXEC)
    try:
        batch = records.new_batch(records.EXEC, len(kinds))
        batch["kind"] = kinds
        batch["seq"] = range(first_seq, first_seq + len(kinds))
        writer = ring.writer()
        writer.write(batch, timeout=10)
        writer.close()
    finally:
        ring.close()


def _recorder(instance: Exchange) -> dict:
    return dict(call(instance.endpoint("recorder"), "status", timeout=5))


def test_up_starts_the_recorder_which_answers_status(exchange: Exchange) -> None:
    status = exchange.status()
    assert status["ready"] and status["prefix"] == exchange.prefix
    row = exchange.process("recorder")
    assert row["state"] == "running" and pid_alive(row["pid"])
    answer = _recorder(exchange)
    assert answer["pid"] == row["pid"]
    assert answer["rings"]["execs.0"]["readers"][0]["name"] == "recorder"
    assert (exchange.home / "logs" / "recorder.log").read_text().count("msg=started") == 1
    table = exchange.run("status")
    assert table.returncode == 0
    assert "recorder" in table.stdout and "running" in table.stdout and "execs.0" in table.stdout
    raw = orjson.loads(exchange.run("status", "--json").stdout)
    assert raw["processes"][0]["process"] == "recorder"
    flags_after = subprocess.run(
        [
            str(EXCHANGE),
            "status",
            "--json",
            "--prefix",
            exchange.prefix,
            "--home",
            str(exchange.home),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert orjson.loads(flags_after.stdout)["prefix"] == exchange.prefix


def test_recorder_counts_what_arrives_on_execs(exchange: Exchange) -> None:
    kinds = [Kind.ORDER_ACCEPTED] * 5 + [Kind.TRADE] * 3 + [Kind.BOOK_LEVEL] * 7
    _write_execs(exchange, kinds, 1)
    exchange.wait_for(lambda: _recorder(exchange)["service"]["total"] == 15)
    assert _recorder(exchange)["service"]["counts"] == {
        "ORDER_ACCEPTED": 5,
        "TRADE": 3,
        "BOOK_LEVEL": 7,
    }


def test_sigkilled_recorder_is_restarted_and_resumes_at_its_cursor(exchange: Exchange) -> None:
    _write_execs(exchange, [Kind.TRADE] * 20, 1)
    exchange.wait_for(lambda: _recorder(exchange)["service"]["total"] == 20)
    old_pid = exchange.process("recorder")["pid"]
    os.kill(old_pid, signal.SIGKILL)

    def restarted() -> bool:
        row = exchange.process("recorder")
        return row["state"] == "running" and row["pid"] not in (None, old_pid)

    exchange.wait_for(restarted)
    row = exchange.process("recorder")
    assert row["restarts"] == 1 and row["last_exit"] == -signal.SIGKILL
    _write_execs(exchange, [Kind.ORDER_CANCELED] * 4, 21)
    exchange.wait_for(lambda: _recorder(exchange)["service"]["total"] == 4)
    answer = _recorder(exchange)
    counted = {key: answer["service"][key] for key in ("counts", "total", "last_seq")}
    assert counted == {"counts": {"ORDER_CANCELED": 4}, "total": 4, "last_seq": 24}
    readers = {r["name"]: r for r in answer["rings"]["execs.0"]["readers"]}
    assert (readers["recorder"]["cursor"], readers["recorder"]["lag"]) == (24, 0)


def test_down_leaves_no_process_and_no_shared_memory(exchange: Exchange) -> None:
    pids = [proc.pid for proc in exchange.processes()]
    assert len(pids) == 2  # the supervisor daemon and the recorder
    assert _objects(exchange.prefix)
    result = exchange.run("down")
    assert result.returncode == 0, result.stderr
    for pid in pids:
        assert not pid_alive(pid)
    assert _objects(exchange.prefix) == []
    assert not list(exchange.home.glob("*.pid"))
    assert exchange.run("status").returncode == 3


def test_two_instances_run_side_by_side(exchange_factory: Callable[..., Exchange]) -> None:
    first, second = exchange_factory(*RECORDER_ONLY), exchange_factory(*RECORDER_ONLY)
    for instance in (first, second):
        result = instance.run("up")
        assert result.returncode == 0, result.stderr
    assert first.process("recorder")["pid"] != second.process("recorder")["pid"]
    _write_execs(first, [Kind.TRADE] * 3, 1)
    first.wait_for(lambda: _recorder(first)["service"]["total"] == 3)
    assert _recorder(second)["service"]["total"] == 0
    assert first.run("down").returncode == 0
    assert _objects(first.prefix) == []
    assert _objects(second.prefix) and second.status()["ready"]


def test_up_twice_is_refused_and_status_of_a_stopped_instance_says_so(
    exchange: Exchange, exchange_factory: Callable[..., Exchange]
) -> None:
    again = exchange.run("up")
    assert again.returncode == 1 and "already running" in again.stdout
    idle = exchange_factory(*RECORDER_ONLY)
    assert idle.run("status").returncode == 3


def test_foreground_up_prints_endpoints_last_and_stops_on_sigterm(
    exchange_factory: Callable[..., Exchange],
) -> None:
    instance = exchange_factory(*RECORDER_ONLY, "--set", "ports.md_pub=15555")
    proc = subprocess.Popen(
        instance.command("up", "--foreground"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("logs" in line for line in lines):
            line = proc.stdout.readline() if proc.stdout else ""
            if not line:
                break
            lines.append(line)
        text = "".join(lines)
        assert "clients connect to:" in text and "tcp://127.0.0.1:15555" in text
        assert instance.process("recorder")["state"] == "running"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert _objects(instance.prefix) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_killed_supervisor_takes_its_children_along_and_down_cleans_up(
    exchange: Exchange,
) -> None:
    supervisor = exchange.status()["supervisor_pid"]
    recorder = exchange.process("recorder")["pid"]
    os.kill(supervisor, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and pid_alive(recorder):
        time.sleep(0.05)
    assert not pid_alive(recorder)
    assert _objects(exchange.prefix)  # nobody unlinked the rings yet
    result = exchange.run("down")
    assert result.returncode == 0, result.stderr
    assert _objects(exchange.prefix) == []
    assert exchange.processes() == []


def test_up_that_cannot_start_reports_the_log_and_leaves_nothing(
    exchange_factory: Callable[..., Exchange],
) -> None:
    instance = exchange_factory("--set", "rings.max_readers=65")  # more than a ring can have
    result = instance.run("up")
    assert result.returncode == 1
    assert "did not become ready" in result.stderr and "max_readers must be" in result.stderr
    assert _objects(instance.prefix) == []
    assert instance.processes() == []


def _kill_instance(instance: Exchange) -> None:
    """SIGKILL the supervisor and every child at once (a machine-level crash of the instance)."""
    victims = instance.processes()
    for proc in victims:
        proc.send_signal(signal.SIGKILL)
    for proc in victims:
        proc.wait(timeout=30)


def _register_and_die(ring_name: str, reader: str) -> None:
    """A reader registered by a process that then dies without closing (a killed loadgen)."""
    code = (
        "import sys; from ipc import records; from ipc.ring import Ring; "
        "Ring.attach(sys.argv[1], records.EXEC).reader(sys.argv[2])"
    )
    subprocess.run([sys.executable, "-c", code, ring_name, reader], check=True, timeout=60)


def test_up_after_a_crashed_run_tidies_it_and_down_leaves_nothing(
    exchange_factory: Callable[..., Exchange],
) -> None:
    instance = exchange_factory(*RECORDER_ONLY, "--set", "rings.execs=64")
    assert instance.run("up").returncode == 0
    _register_and_die(f"{instance.prefix}.execs.0", "loadgen.9")
    _write_execs(instance, [Kind.TRADE] * 20, 1)
    instance.wait_for(lambda: _recorder(instance)["service"]["total"] == 20)
    _kill_instance(instance)
    assert _objects(instance.prefix) and list(instance.home.glob("*.pid"))

    again = instance.run("up")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "the previous run did not stop cleanly" in again.stdout
    assert "unregistered dead reader loadgen.9" in again.stdout
    assert "kept rings" in again.stdout and "execs.0" in again.stdout
    readers = [r["name"] for r in _recorder(instance)["rings"]["execs.0"]["readers"]]
    assert "recorder" in readers and "loadgen.9" not in readers  # the recorder's reattached
    _write_execs(instance, [Kind.TRADE] * 200, 21)  # > capacity 64: the dead one would block it
    instance.wait_for(lambda: _recorder(instance)["service"]["last_seq"] == 220)

    pids = [proc.pid for proc in instance.processes()]
    assert instance.run("down").returncode == 0
    assert not any(pid_alive(pid) for pid in pids)
    assert _objects(instance.prefix) == []
    assert instance.processes() == [] and not list(instance.home.glob("*.pid"))
    assert not list(instance.home.glob("*.bell"))


def test_up_refuses_while_a_process_of_the_previous_run_lives(
    exchange_factory: Callable[..., Exchange],
) -> None:
    instance = exchange_factory(*RECORDER_ONLY)
    instance.home.mkdir(parents=True)
    orphan = subprocess.Popen(  # stands for a child that outlived its supervisor
        [sys.executable, "-c", "import time; time.sleep(120)", "--prefix", instance.prefix]
    )
    try:
        (instance.home / "recorder.pid").write_text(f"{orphan.pid}\n")
        refused = instance.run("up")
        assert refused.returncode == 1
        assert "still alive" in refused.stderr and f"recorder (pid {orphan.pid})" in refused.stderr
        assert [proc.pid for proc in instance.processes()] == [orphan.pid]  # nothing started
    finally:
        orphan.kill()
        orphan.wait(timeout=10)
    started = instance.run("up")
    assert started.returncode == 0, started.stderr
    assert "did not stop cleanly (dead: recorder)" in started.stdout
    assert instance.process("recorder")["state"] == "running"


def test_up_prints_the_port_the_gateway_really_bound(
    exchange_factory: Callable[..., Exchange],
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", free_port()))
        busy.listen()
        taken = busy.getsockname()[1]
        instance = exchange_factory(
            "--set", "processes.enabled=recorder,gateway", "--set", f"ports.http={taken}"
        )
        result = instance.run("up")
        assert result.returncode == 0, result.stdout + result.stderr
        bound = int(call(instance.endpoint("gateway.1"), "status", timeout=5)["http_port"])
        assert bound != taken
        urls = result.stdout.split("clients connect to:")[1]
        assert f"http://127.0.0.1:{bound}/" in urls and f"ws://127.0.0.1:{bound}/ws/diff" in urls
        assert f":{taken}/" not in urls and f"port {taken} was busy" in urls
