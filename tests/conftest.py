"""Fixtures shared by every test: unique instance prefixes and leak checks for shared memory."""

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

SHM_DIR = Path("/dev/shm")
_counter = itertools.count()


def _segments(prefix: str) -> list[Path]:
    """Shared-memory segments and named semaphores (sem.<name>) that carry this prefix."""
    return [p for p in SHM_DIR.iterdir() if p.name.startswith((prefix, f"sem.{prefix}"))]


@pytest.fixture
def prefix() -> Iterator[str]:
    """A per-test instance prefix, so parallel runs never collide; fails the test on leaks."""
    name = f"shmex_t{os.getpid()}_{next(_counter)}"
    yield name
    leaked = _segments(name)
    for path in leaked:
        path.unlink(missing_ok=True)
    assert not leaked, f"test left shared-memory segments behind: {[p.name for p in leaked]}"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A private run directory (control sockets, logs, journal) for one test."""
    path = tmp_path / "run"
    path.mkdir()
    return path
