"""How a ring endpoint waits: spin, then yield, then sleep on a named semaphore.

A reader waits for data and the writer waits for space the same way. Spinning answers in a
microsecond but burns a core; yielding lets the other processes of a 2-core machine run;
sleeping on a POSIX semaphore costs a wake-up (~25 µs) but nothing while idle. The sleeper
sets its "asleep" word(s), fences, and checks once more before it sleeps; the other side stores
its progress, fences, and posts only if it sees the word set. Either the sleeper sees the
progress or the poster sees the word, so no wake-up is lost. A process reading several rings
sets one word per ring and sleeps on its doorbell (ipc/doorbell.py): the same handshake, once
per ring.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import posix_ipc

from ipc.cpu import full_fence


@dataclass(frozen=True)
class WaitConfig:
    """Tuning of one endpoint's waits.

    spin_us: how long to poll before yielding the CPU.
    yield_count: how many sched_yield() rounds before sleeping (busy-poll mode: between spins).
    sleep_timeout: longest single sleep (s); the endpoint wakes this often to beat its heartbeat.
    timeout: the bound (s) used when a call passes timeout=None; math.inf waits forever.
    sleep: False = busy-poll mode: never sleep, keep spinning and yielding until the deadline.
    """

    spin_us: float = 5.0
    yield_count: int = 0
    sleep_timeout: float = 0.1
    timeout: float = 1.0
    sleep: bool = True

    @classmethod
    def busy_poll(cls, timeout: float = 1.0) -> WaitConfig:
        """Lowest latency: spin, never sleep (costs a core while waiting).

        Spins in rounds of 200 µs with one sched_yield() between rounds. A reply that is
        coming arrives within a round; one that has not after 200 µs usually means the peer
        lost its core, and on an oversubscribed machine it may be queued behind us on ours,
        so we step aside. Measured on the 2-core machine under load: never yielding loses
        3-10x throughput (the spinner holds the core its peer needs for a whole slice);
        yielding every 20-50 µs costs 10-30x round-trip latency.
        """
        return cls(spin_us=200.0, yield_count=1, timeout=timeout, sleep=False)

    @classmethod
    def sleeping(cls, timeout: float = 1.0) -> WaitConfig:
        """Lowest CPU: go to sleep at once (costs a semaphore wake-up per wait)."""
        return cls(spin_us=0.0, yield_count=0, timeout=timeout, sleep=True)

    def __post_init__(self) -> None:
        if self.spin_us < 0 or self.yield_count < 0 or self.sleep_timeout <= 0:
            raise ValueError(f"bad wait configuration {self}")


AsleepFlag = tuple[memoryview, int]
"""A ring header (as int64 words) and the index of an endpoint's "asleep" word in it."""


class Waiter:
    """Runs the spin → yield → sleep sequence for one endpoint (or one process's readers)
    until `ready()` or a deadline; asleep, it flags every word of `flags` and waits on
    `semaphore`, which whoever clears one of those words posts."""

    def __init__(
        self,
        config: WaitConfig,
        flags: Sequence[AsleepFlag],
        semaphore: posix_ipc.Semaphore,
        beat: Callable[[], None],
        return_on_post: bool = False,
    ) -> None:
        """With `return_on_post`, a post ends the wait even if nothing is ready (a doorbell is
        also rung for control requests, which the waiting process must then answer)."""
        self.config = config
        self._return_on_post = return_on_post
        self._flags = tuple(flags)
        self._semaphore = semaphore
        self._beat = beat
        self._spin_s = config.spin_us * 1e-6
        self._owed = 0
        """Posts made to us (a peer cleared our asleep word) that we have not consumed yet."""
        self.sleeps = 0
        """Times this endpoint went to sleep on the semaphore."""
        self.knocks = 0
        """Posts nobody owed us (control clients' knocks, or a post left from a dead process)."""

    def wait(self, ready: Callable[[], bool], timeout: float | None) -> bool:
        """Return True once ready() holds, False if `timeout` seconds pass first."""
        if ready():
            return True
        if timeout is None:
            timeout = self.config.timeout
        if timeout <= 0:
            return False
        clock = time.perf_counter
        start = clock()
        deadline = start + timeout
        spin_end = min(start + self._spin_s, deadline)
        while clock() < spin_end:
            if ready():
                return True
        for _ in range(self.config.yield_count):
            os.sched_yield()
            if ready():
                return True
        if clock() >= deadline:
            return False
        if self.config.sleep:
            return self._sleep(ready, deadline)
        return self._poll(ready, deadline)

    def _poll(self, ready: Callable[[], bool], deadline: float) -> bool:
        """Busy-poll mode: spin in rounds of spin_us, with yield_count yields between rounds."""
        clock = time.perf_counter
        next_beat = clock() + self.config.sleep_timeout
        spin_s = self._spin_s
        yields = range(self.config.yield_count)
        while True:
            now = clock()
            round_end = now + spin_s
            while True:
                if ready():
                    return True
                now = clock()
                if now >= round_end:
                    break
            if now >= deadline:
                return ready()
            if now >= next_beat:
                self._beat()
                next_beat = now + self.config.sleep_timeout
            for _ in yields:
                os.sched_yield()

    def _sleep(self, ready: Callable[[], bool], deadline: float) -> bool:
        """Sleep on the semaphore in slices of sleep_timeout, re-checking after each.

        A post is either owed (a peer cleared one of our asleep words, then posted: a record
        or a nudge, perhaps already seen before we slept) or a knock (nobody cleared a word:
        a control request). Owed posts are taken without ending the wait, so only a knock
        returns early (`return_on_post`) and a stale post costs no more than one extra pass."""
        flags = self._flags
        semaphore = self._semaphore
        clock = time.perf_counter
        self._take_owed()
        while True:
            for words, index in flags:
                words[index] = 1
            full_fence()
            if ready():
                self._awake()
                return True
            remaining = deadline - clock()
            if remaining <= 0:
                self._awake()
                return False
            posted = False
            self.sleeps += 1
            with contextlib.suppress(posix_ipc.BusyError, posix_ipc.SignalError):
                semaphore.acquire(min(self.config.sleep_timeout, remaining))  # a signal wakes too
                posted = True
            self._awake()
            knocked = False
            if not posted:
                self._beat()  # a busy endpoint beats as it goes; a sleeper, when its slice ends
            elif self._owed:
                self._owed -= 1
            else:
                knocked = True
                self.knocks += 1
            if ready():
                return True
            if knocked and self._return_on_post:
                return False

    def _take_owed(self) -> None:
        """Consume, without blocking, the posts of peers that found us asleep after we had
        already seen their work (they clear the word, then post: one may still be coming)."""
        acquire = self._semaphore.acquire
        while self._owed:
            try:
                acquire(0)
            except posix_ipc.BusyError:
                return
            self._owed -= 1

    def _awake(self) -> None:
        """Clear our asleep words; each one a peer already cleared means a post owed to us."""
        for words, index in self._flags:
            if words[index]:
                words[index] = 0
            else:
                self._owed += 1
