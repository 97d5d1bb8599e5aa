"""CPU facts the rings rely on: x86-64 store ordering, and a full fence reachable from Python.

The rings publish a record by writing its payload and then an 8-byte sequence with plain stores.
x86-64 (TSO) makes stores visible in program order, so a reader that sees the sequence sees the
payload. Other CPUs reorder stores and would need fences Python cannot express, so we refuse them.

TSO still lets a load pass an earlier store. Where two processes each store a flag and then
load the other's (the sleep/wake handshake, a reader registering while the writer scans), one
locked instruction between the store and the load is needed; acquiring and releasing an
uncontended lock executes one (glibc's sem_post/cmpxchg).
"""

import platform
import threading

from ipc.errors import IpcError

X86_64_NAMES = frozenset({"x86_64", "amd64"})

_fence_lock = threading.Lock()
_acquire = _fence_lock.acquire
_release = _fence_lock.release


def require_x86_64() -> None:
    """Raise unless this CPU keeps stores in order (x86-64); the rings are not safe elsewhere."""
    machine = platform.machine()
    if machine.lower() not in X86_64_NAMES:
        raise IpcError(
            f"shmex rings need an x86-64 CPU (total store order); this machine is {machine!r}. "
            "On weaker memory models a reader could see a sequence number before its record."
        )


def full_fence() -> None:
    """Order every earlier store before every later load (a locked instruction on x86-64)."""
    _acquire()
    _release()
