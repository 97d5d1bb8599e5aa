"""One wake-up semaphore per consuming process, shared by every ring it reads.

A process that reads several rings cannot sleep on each ring's own semaphore in turn: a record
on one ring would wait out the sleep on another. Instead the process owns one doorbell, the
named POSIX semaphore `/<prefix>.bell.<process>`. Each of its reader slots names the doorbell
in the ring header (ipc/layout.py), and a writer that publishes posts the doorbell of every
reader that announced it is asleep, once per doorbell however many of its slots are asleep
(ipc/writer.py); its control clients ring it too, so an idle process answers at once
(ipc/control.py). The process then waits in one place, `Inbox.wait`: spin over all its rings
for a bounded budget, announce itself asleep on every ring, fence, re-check every ring, and
only then wait on the doorbell (ipc/wait.py), so a record published at any moment wakes it.

The semaphore outlives the process: a restarted process reopens it by name (a post left from
before costs one spurious wake-up), and posting the doorbell of a dead reader never blocks the
writer (a writer posts only a reader that flagged itself asleep, and clears the flag, so a dead
one is posted at most once). `unlink_prefix` removes doorbells with the instance's rings.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import posix_ipc

from ipc import shm
from ipc.layout import NAME_BYTES
from ipc.wait import AsleepFlag, WaitConfig, Waiter

if TYPE_CHECKING:
    from ipc.reader import RingReader


KNOCK_GRACE_S = 0.02
"""After a ring without a record (a control client's knock), how long waits stay short: the
request that rang may still be on its way through ZeroMQ."""
KNOCK_SLICE_S = 0.001
"""The longest wait during that grace, so the caller polls its control socket that often."""


def doorbell_name(prefix: str, process: str) -> str:
    """The doorbell of `process` in the instance `prefix` (starts with the prefix, like rings)."""
    return f"{prefix}.bell.{process}"


class Doorbell:
    """A process's wake-up semaphore; pass it to `Ring.reader(..., doorbell=...)`."""

    def __init__(self, name: str, semaphore: posix_ipc.Semaphore) -> None:
        """Wrap an open semaphore (use `Doorbell.open`)."""
        self.name = name
        self.semaphore = semaphore

    @classmethod
    def open(cls, name: str) -> Doorbell:
        """Open the doorbell, creating it if it does not exist yet (a restart reattaches)."""
        shm.check_name(name)
        if len(name.encode()) >= NAME_BYTES:
            raise ValueError(f"doorbell name must be shorter than {NAME_BYTES} bytes: {name!r}")
        semaphore = posix_ipc.Semaphore(
            shm.doorbell_semaphore_name(name), posix_ipc.O_CREAT, mode=0o600, initial_value=0
        )
        return cls(name, semaphore)

    @classmethod
    def attach(cls, name: str) -> Doorbell:
        """Open an existing doorbell (writers do); posix_ipc.ExistentialError if it is gone."""
        return cls(name, posix_ipc.Semaphore(shm.doorbell_semaphore_name(name)))

    def ring(self) -> None:
        """Wake the process (writers do this; also a way to interrupt its sleep)."""
        self.semaphore.release()

    def close(self) -> None:
        self.semaphore.close()

    def unlink(self) -> None:
        """Remove the semaphore from the system (`unlink_prefix` does it for an instance)."""
        shm.unlink_doorbell(self.name)

    def __enter__(self) -> Doorbell:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Nudge:
    """Work for the process that comes from one of its own threads, not from a ring (a journal
    sync that completed): the thread makes `ready()` true, then calls `nudge()`, which posts
    the doorbell only if the Inbox sleeps: the ring writers' handshake (ipc/wait.py) on a word
    in private memory."""

    def __init__(self, doorbell: Doorbell, ready: Callable[[], bool]) -> None:
        self._word = memoryview(bytearray(8)).cast("q")
        self.asleep_flag: AsleepFlag = (self._word, 0)
        self.ready = ready
        self._semaphore = doorbell.semaphore
        self.posts = 0

    def nudge(self) -> None:
        word = self._word
        if word[0]:
            word[0] = 0
            self._semaphore.release()
            self.posts += 1


class Inbox:
    """The readers of one process that share its doorbell: one wait covers all their rings
    (and the `Nudge` of a thread of the process, if any)."""

    def __init__(
        self,
        readers: Sequence[RingReader],
        doorbell: Doorbell,
        config: WaitConfig,
        nudge: Nudge | None = None,
    ) -> None:
        """`readers` must have been registered with this doorbell, or no writer will post it."""
        self.readers = tuple(readers)
        for reader in self.readers:
            if reader.doorbell != doorbell.name:
                raise ValueError(f"reader {reader.name!r} does not name doorbell {doorbell.name}")
        flags = [reader.asleep_flag for reader in self.readers]
        self._nudged: Callable[[], bool] = _never
        if nudge is not None:
            flags.append(nudge.asleep_flag)
            self._nudged = nudge.ready
        self._waiter = Waiter(config, flags, doorbell.semaphore, self._beat, return_on_post=True)
        self._short_until = 0.0

    def pending(self) -> bool:
        """True if any of the rings has a record this process has not released."""
        for reader in self.readers:  # noqa: SIM110 - no generator: this runs in the spin loop
            if reader.ready():
                return True
        return False

    def backlog(self) -> int:
        """Records published on the rings and not yet released by this process."""
        total = 0
        for reader in self.readers:
            total += reader.lag
        return total

    def ready(self) -> bool:
        """`pending()`, or the nudging thread has work for the process."""
        return self.pending() or self._nudged()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait (spin, yield, then the doorbell) until a ring has a record; False on timeout or
        when the doorbell was rung without one (a control request: ipc/control.py `Knock`),
        after which waits are at most KNOCK_SLICE_S for KNOCK_GRACE_S."""
        if timeout is None:
            timeout = self._waiter.config.timeout
        started = time.monotonic()
        if started < self._short_until:
            timeout = min(timeout, KNOCK_SLICE_S)
        if self._waiter.wait(self.ready, timeout):
            return True
        now = time.monotonic()
        if now - started < timeout:  # rung early, without a record
            self._short_until = now + KNOCK_GRACE_S
        return False

    def stats(self) -> dict[str, int]:
        """How often the process slept on its doorbell, and was knocked (woken by a post that
        no ring or thread of its own owed it: a control request)."""
        return {"sleeps": self._waiter.sleeps, "knocks": self._waiter.knocks}

    def _beat(self) -> None:
        for reader in self.readers:
            reader.beat()


def _never() -> bool:
    return False
