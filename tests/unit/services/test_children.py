"""A supervised child: crash → backoff → restart with growing delays, through real processes."""

import time
from pathlib import Path

import pytest

from ipc.control import control_endpoint
from services.children import TRANSITIONS, Backoff, Child, State
from services.topology import ProcessSpec


def test_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff(initial_s=0.2, max_s=1.0, reset_s=30)
    assert [backoff.delay(n) for n in (1, 2, 3, 4, 5)] == [0.2, 0.4, 0.8, 1.0, 1.0]


def test_every_state_is_in_the_transition_table() -> None:
    assert set(TRANSITIONS) == set(State)
    assert TRANSITIONS[State.STOPPED] == frozenset()


def _step_until(child: Child, state: State, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        child.step(time.monotonic(), stopping=False)
        if child.state is state:
            return
        time.sleep(0.01)
    raise AssertionError(f"{child.spec.name} stayed {child.state}, wanted {state}")


def test_a_child_that_keeps_dying_is_restarted_with_growing_delays(run_dir: Path) -> None:
    # json.tool refuses the --supervised flag and exits 2 at once: a real crashing process.
    spec = ProcessSpec("crasher", "json.tool")
    child = Child(spec, [], run_dir, control_endpoint(run_dir, "crasher"), Backoff(0.05, 0.2, 30))
    try:
        child.spawn()
        delays = []
        for crash in (1, 2, 3):
            _step_until(child, State.BACKOFF)
            assert child.crashes == crash and child.last_exit == 2
            delays.append(round(child.next_start - time.monotonic(), 1))
            _step_until(child, State.STARTING)
            assert child.restarts == crash
        assert delays[0] <= delays[1] <= delays[2] <= 0.2
        assert "usage" in (run_dir / "logs" / "crasher.log").read_text()
    finally:
        child.stop(timeout=5)
    assert child.state is State.STOPPED
    with pytest.raises(RuntimeError, match="no transition"):
        child.spawn()
