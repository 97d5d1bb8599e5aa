"""Is a process alive? Used for the writer and reader pids kept in a ring's header."""

import os
import time


def pid_alive(pid: int) -> bool:
    """True if `pid` names a running process (a zombie awaiting its parent counts as dead)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            state = stat.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in (b"Z", b"X")


def now_ns() -> int:
    """The heartbeat clock: CLOCK_MONOTONIC is one clock for every process on the host."""
    return time.monotonic_ns()
