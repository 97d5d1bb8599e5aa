"""Control sockets: round trip, custom handlers, errors, timeouts that never hang."""

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from ipc.control import (
    ControlClient,
    ControlError,
    ControlServer,
    ControlTimeout,
    Knock,
    call,
    control_endpoint,
)
from ipc.doorbell import Doorbell, Inbox, doorbell_name
from ipc.ring import Ring, WaitConfig
from tests.integration.ring_records import RECORD


@pytest.fixture
def served(run_dir: Path) -> Iterator[tuple[ControlServer, str]]:
    """A control server polled by a background loop, as a process's main loop would."""
    context = zmq.Context()
    server = ControlServer(context, control_endpoint(run_dir, "unit"))
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            server.poll(timeout_ms=20)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield server, server.endpoint
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()
        context.term()


def test_round_trip_with_registered_handler(served: tuple[ControlServer, str]) -> None:
    server, endpoint = served
    server.register("status", lambda args: {"pid": 42, "echo": args.get("x")})
    with ControlClient(endpoint, timeout=5) as client:
        assert client.request("status", x=[1, 2]) == {"pid": 42, "echo": [1, 2]}
        assert client.request("ping") == "pong"
        assert "status" in client.request("help")


def test_unknown_command_is_an_error_naming_the_known_ones(
    served: tuple[ControlServer, str],
) -> None:
    _server, endpoint = served
    with pytest.raises(ControlError, match=r"unknown command 'nope'.*ping"):
        call(endpoint, "nope", timeout=5)


def test_failing_handler_answers_an_error_and_the_server_survives(
    served: tuple[ControlServer, str],
) -> None:
    server, endpoint = served

    def broken(_args: dict[str, Any]) -> Any:
        raise RuntimeError("boom")

    server.register("broken", broken)
    with ControlClient(endpoint, timeout=5) as client:
        with pytest.raises(ControlError, match="RuntimeError: boom"):
            client.request("broken")
        assert client.request("ping") == "pong"


def test_timeout_when_nobody_listens(run_dir: Path) -> None:
    started = time.monotonic()
    with pytest.raises(ControlTimeout):
        call(control_endpoint(run_dir, "absent"), "status", timeout=0.2)
    assert time.monotonic() - started < 10


def test_late_answer_to_an_abandoned_request_is_ignored(run_dir: Path) -> None:
    context = zmq.Context()
    server = ControlServer(context, control_endpoint(run_dir, "slow"))
    server.register("which", lambda args: args["n"])
    try:
        with ControlClient(server.endpoint, timeout=0.1) as client:
            with pytest.raises(ControlTimeout):
                client.request("which", n=1)
            assert server.poll(timeout_ms=1000) == 1
            done: list[Any] = []
            thread = threading.Thread(target=lambda: done.append(client.request("which", n=2)))
            thread.start()
            deadline = time.monotonic() + 5
            while not done and time.monotonic() < deadline:
                server.poll(timeout_ms=20)
            thread.join(timeout=5)
            assert done == [2]
    finally:
        server.close()
        context.term()


def test_poll_returns_at_once_when_idle(run_dir: Path) -> None:
    context = zmq.Context()
    server = ControlServer(context, control_endpoint(run_dir, "idle"))
    try:
        assert server.poll() == 0
    finally:
        server.close()
        context.term()


def test_malformed_request_gets_an_error_reply(served: tuple[ControlServer, str]) -> None:
    _server, endpoint = served
    context = zmq.Context.instance()
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        sock.send_multipart([b"", b"{not json"])
        assert sock.poll(5000)
        assert b'"ok":false' in sock.recv_multipart()[-1]
    finally:
        sock.close()


def test_overlong_socket_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match="too long"):
        control_endpoint(tmp_path / ("x" * 120), "recorder")


def test_a_request_wakes_a_process_asleep_on_its_doorbell(run_dir: Path, prefix: str) -> None:
    """The server's process sleeps on its doorbell with an hour-long slice, as an idle Runner
    does with its inputs: only the client's knock can make it answer within the timeout."""
    ring = Ring.create(f"{prefix}.in", RECORD, 16)
    doorbell = Doorbell.open(doorbell_name(prefix, "unit"))
    an_hour = WaitConfig(spin_us=0, yield_count=0, sleep_timeout=3600.0, timeout=3600.0)
    inbox = Inbox([ring.reader("unit", an_hour, doorbell)], doorbell, an_hour)
    context = zmq.Context()
    server = ControlServer(context, control_endpoint(run_dir, "unit"), doorbell.name)
    stop = threading.Event()

    def idle_loop() -> None:  # as services/process.py's Runner: wait, then poll control
        while not stop.is_set():
            inbox.wait()
            server.poll(timeout_ms=0)

    thread = threading.Thread(target=idle_loop, daemon=True)
    thread.start()
    try:
        assert (run_dir / "unit.bell").read_text().strip() == doorbell.name
        for _ in range(3):
            assert call(server.endpoint, "ping", timeout=10.0) == "pong"
    finally:
        stop.set()
        doorbell.ring()
        thread.join(timeout=10)
        server.close()
        context.term()
        doorbell.close()
        doorbell.unlink()
        ring.unlink()
        ring.close()
    assert not thread.is_alive()
    assert not (run_dir / "unit.bell").exists()


def test_knock_without_a_doorbell_file_does_nothing(run_dir: Path) -> None:
    knock = Knock(control_endpoint(run_dir, "nobody"))
    knock.ring()
    (run_dir / "nobody.bell").write_text("shmex_gone.bell.nobody\n")  # a crashed run's leftover
    knock.ring()
    knock.close()
    Knock("tcp://127.0.0.1:1").ring()
