"""Fixtures that run real shmex instances through `bin/exchange`, always torn down afterwards."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from ipc.control import call
from ipc.shm import unlink_prefix

ROOT = Path(__file__).resolve().parents[2]
EXCHANGE = ROOT / "bin" / "exchange"
_instances = itertools.count()


@dataclass
class Exchange:
    """One instance: its prefix and run dir, and helpers to drive `bin/exchange`."""

    prefix: str
    home: Path
    extra: tuple[str, ...] = ()

    def command(self, *args: str) -> list[str]:
        return [
            str(EXCHANGE),
            "--prefix",
            self.prefix,
            "--home",
            str(self.home),
            *self.extra,
            *args,
        ]

    def run(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args), capture_output=True, text=True, timeout=timeout, cwd=ROOT
        )

    def endpoint(self, process: str) -> str:
        return f"ipc://{self.home}/{process}.ctl"

    def status(self, timeout: float = 5.0) -> dict[str, Any]:
        """The supervisor's status (JSON, straight from its control socket)."""
        return dict(call(self.endpoint("supervisor"), "status", timeout=timeout))

    def process(self, name: str) -> dict[str, Any]:
        return next(row for row in self.status()["processes"] if row["process"] == name)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"condition not met in {timeout}s; status: {self.status()}")

    def processes(self) -> list[psutil.Process]:
        """Live OS processes of this instance (found by the unique prefix on their command line)."""
        found = []
        for proc in psutil.process_iter(["pid", "cmdline"]):
            cmdline = proc.info["cmdline"] or []
            if any(arg == self.prefix for arg in cmdline) and proc.pid != os.getpid():
                found.append(proc)
        return found


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's choice for port 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def private_ports() -> tuple[str, ...]:
    """`--set` flags giving an instance its own HTTP and market-data ports, so parallel tests never
    reach each other's processes (a test's own `--set` comes later and wins)."""
    return tuple(
        flag
        for key in ("ports.http", "ports.md_pub", "ports.feeds_pub")
        for flag in ("--set", f"{key}={free_port()}")
    )


def _tear_down(instance: Exchange) -> None:
    try:
        instance.run("down", timeout=90)
    finally:
        for proc in instance.processes():
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGKILL)
        unlink_prefix(instance.prefix + ".")


@pytest.fixture
def exchange_factory(prefix: str, tmp_path: Path) -> Iterator[Callable[..., Exchange]]:
    """Makes instances with unique prefixes (`prefix`, `prefix_b`, ...) and homes under tmp_path;
    every one gets `down` and an unlink afterwards, whatever the test did."""
    made: list[Exchange] = []

    def make(*extra: str) -> Exchange:
        index = len(made)
        name = prefix if index == 0 else f"{prefix}_{index}"
        instance = Exchange(name, tmp_path / f"h{next(_instances)}", private_ports() + extra)
        made.append(instance)
        return instance

    try:
        yield make
    finally:
        for instance in reversed(made):
            _tear_down(instance)


@pytest.fixture
def exchange(exchange_factory: Callable[..., Exchange]) -> Exchange:
    """A running instance (`bin/exchange up` has returned successfully)."""
    instance = exchange_factory()
    result = instance.run("up")
    assert result.returncode == 0, f"up failed:\n{result.stdout}\n{result.stderr}"
    return instance
