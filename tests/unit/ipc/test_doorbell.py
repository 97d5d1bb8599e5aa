"""The per-process doorbell: one wake-up for every ring a process reads, posted once per publish,
without lost wake-ups, and harmless when its reader dies."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator

import posix_ipc
import pytest

from ipc import layout
from ipc.doorbell import Doorbell, Inbox, Nudge, doorbell_name
from ipc.ring import Ring, WaitConfig
from ipc.wait import Waiter
from tests.integration import ring_records

RECORD = ring_records.RECORD
ASLEEP_AT_ONCE = WaitConfig(spin_us=0, yield_count=0, sleep_timeout=3600.0, timeout=math.inf)
"""Sleeps straight away and only a post wakes it: a lost wake-up shows as a hang (bounded by
the test's own timeouts)."""


@pytest.fixture
def rings(prefix: str) -> Iterator[list[Ring]]:
    made = [Ring.create(f"{prefix}.in{i}", RECORD, 16) for i in range(3)]
    yield made
    for ring in made:
        ring.unlink()
        ring.close()


@pytest.fixture
def doorbell(prefix: str) -> Iterator[Doorbell]:
    bell = Doorbell.open(doorbell_name(prefix, "proc"))
    yield bell
    bell.close()
    bell.unlink()


def _wait_in_thread(inbox: Inbox, timeout: float) -> tuple[threading.Thread, list[bool]]:
    woke: list[bool] = []
    thread = threading.Thread(target=lambda: woke.append(inbox.wait(timeout)), daemon=True)
    thread.start()
    return thread, woke


def _until_asleep(ring: Ring, name: str) -> None:
    for _ in range(10_000):
        if next(r for r in ring.readers() if r.name == name).asleep:
            return
        threading.Event().wait(0.001)
    raise AssertionError(f"reader {name} never went to sleep")


def test_reader_slots_name_their_doorbell(rings: list[Ring], doorbell: Doorbell) -> None:
    rings[0].reader("proc", doorbell=doorbell)
    rings[1].reader("own")
    assert [r.doorbell for r in rings[0].readers()] == [doorbell.name]
    assert [r.doorbell for r in rings[1].readers()] == [""]
    assert rings[0].stats()["readers"][0]["doorbell"] == doorbell.name


def test_a_record_on_any_ring_wakes_the_one_wait(rings: list[Ring], doorbell: Doorbell) -> None:
    readers = [ring.reader("proc", ASLEEP_AT_ONCE, doorbell) for ring in rings]
    inbox = Inbox(readers, doorbell, ASLEEP_AT_ONCE)
    writer = rings[2].writer()
    thread, woke = _wait_in_thread(inbox, 30.0)
    try:
        for ring in rings:
            _until_asleep(ring, "proc")
        writer.put(ring_records.one(0))
    finally:
        thread.join(30)
    assert woke == [True]
    assert [len(r.read(8, timeout=0)) for r in readers] == [0, 0, 1]
    assert rings[2].stats()["wakeups"] == 1
    assert not any(r.asleep for ring in rings for r in ring.readers())  # every flag cleared


def test_a_publish_between_announce_and_sleep_is_not_lost(
    rings: list[Ring], doorbell: Doorbell
) -> None:
    """The race: the waiter has flagged itself asleep and re-checked (nothing), and the writer
    publishes before the waiter reaches sem_wait. The post must still be there for it."""
    readers = [ring.reader("proc", ASLEEP_AT_ONCE, doorbell) for ring in rings[:2]]
    writer = rings[1].writer()
    published = []

    def ready() -> bool:
        if any(reader.ready() for reader in readers):
            return True
        words, asleep_word = readers[1].asleep_flag
        if words[asleep_word] and not published:  # announced; re-check found nothing; now:
            writer.put(ring_records.one(0))
            published.append(True)
        return False  # ...as if the publish landed just after the re-check

    waiter = Waiter(
        ASLEEP_AT_ONCE, [r.asleep_flag for r in readers], doorbell.semaphore, lambda: None
    )
    assert waiter.wait(ready, timeout=5.0)  # a lost wake-up would sleep out the 5 s: False
    assert published and rings[1].stats()["wakeups"] == 1
    assert doorbell.semaphore.value == 0  # the one post was consumed by the wait


def test_one_post_per_publish_however_many_slots_of_a_doorbell_sleep(
    rings: list[Ring], doorbell: Doorbell
) -> None:
    ring = rings[0]
    first = ring.reader("proc", ASLEEP_AT_ONCE, doorbell)
    second = ring.reader("proc.held", ASLEEP_AT_ONCE, doorbell)
    own = ring.reader("other", ASLEEP_AT_ONCE)
    for reader in (first, second, own):
        words, asleep_word = reader.asleep_flag
        words[asleep_word] = 1
    writer = ring.writer()
    writer.put(ring_records.one(0))
    assert doorbell.semaphore.value == 1
    assert ring.reader_semaphores[2].value == 1  # the reader without a doorbell: its own
    assert ring.stats()["wakeups"] == 2
    assert not any(info.asleep for info in ring.readers())
    writer.put(ring_records.one(1))  # nobody announced sleep again: no post
    assert doorbell.semaphore.value == 1 and ring.stats()["wakeups"] == 2


def test_a_dead_readers_doorbell_never_blocks_the_writer(rings: list[Ring], prefix: str) -> None:
    ring = rings[0]
    bell = Doorbell.open(doorbell_name(prefix, "gone"))
    reader = ring.reader("gone", ASLEEP_AT_ONCE, bell)
    words, asleep_word = reader.asleep_flag
    words[asleep_word] = 1  # it died asleep...
    reader.close()
    bell.close()
    bell.unlink()  # ...and its doorbell went with it
    writer = ring.writer()
    for seq in range(ring.capacity):  # fills the ring without waiting or raising
        writer.put(ring_records.one(seq), timeout=0)
    assert ring.readers()[0].lag == ring.capacity


def test_a_dead_readers_doorbell_is_posted_at_most_once(
    rings: list[Ring], doorbell: Doorbell
) -> None:
    ring = rings[0]
    reader = ring.reader("proc", ASLEEP_AT_ONCE, doorbell)
    words, asleep_word = reader.asleep_flag
    words[asleep_word] = 1
    reader.close()  # dead while flagged asleep
    writer = ring.writer()
    for seq in range(10):
        writer.put(ring_records.one(seq))
    assert doorbell.semaphore.value == 1


def test_a_restarted_process_reattaches_to_a_new_doorbell(rings: list[Ring], prefix: str) -> None:
    ring = rings[0]
    name = doorbell_name(prefix, "proc")
    writer = ring.writer()
    first = Doorbell.open(name)
    ring.reader("proc", ASLEEP_AT_ONCE, first).close()
    writer.put(ring_records.one(0))  # the writer has the first doorbell open now
    first.close()
    first.unlink()  # the process exited; its restart makes a new semaphore of the same name
    second = Doorbell.open(name)
    try:
        reader = ring.reader("proc", ASLEEP_AT_ONCE, second)
        assert len(reader.read(8, timeout=0)) == 1  # resumed at its cursor
        reader.release(1)
        inbox = Inbox([reader], second, ASLEEP_AT_ONCE)
        thread, woke = _wait_in_thread(inbox, 30.0)
        try:
            _until_asleep(ring, "proc")
            writer.put(ring_records.one(1))
        finally:
            thread.join(30)
        assert woke == [True]
    finally:
        second.close()
        second.unlink()


def test_open_reattaches_and_keeps_a_pending_post(doorbell: Doorbell) -> None:
    doorbell.ring()
    with Doorbell.open(doorbell.name) as again:
        assert again.semaphore.value == 1


def test_attach_refuses_a_missing_doorbell(prefix: str) -> None:
    with pytest.raises(posix_ipc.ExistentialError):
        Doorbell.attach(doorbell_name(prefix, "nobody"))


def test_inbox_refuses_a_reader_registered_without_the_doorbell(
    rings: list[Ring], doorbell: Doorbell
) -> None:
    with pytest.raises(ValueError, match="does not name doorbell"):
        Inbox([rings[0].reader("own")], doorbell, ASLEEP_AT_ONCE)


def test_inbox_wait_times_out_when_nothing_comes(rings: list[Ring], doorbell: Doorbell) -> None:
    readers = [ring.reader("proc", WaitConfig(sleep_timeout=0.01), doorbell) for ring in rings]
    assert not Inbox(readers, doorbell, WaitConfig(sleep_timeout=0.01)).wait(0.05)
    assert not any(r.asleep for ring in rings for r in ring.readers())


def test_unregistering_a_sleeping_reader_rings_its_doorbell(
    rings: list[Ring], doorbell: Doorbell
) -> None:
    ring = rings[0]
    reader = ring.reader("proc", ASLEEP_AT_ONCE, doorbell)
    reader.close()
    ring.unregister_reader("proc")
    assert doorbell.semaphore.value == 1
    assert ring.words[layout.reader_line(0) + layout.TOKEN] == 0


def test_a_ring_without_a_record_ends_the_wait(rings: list[Ring], doorbell: Doorbell) -> None:
    """A control client rings the doorbell of an idle process: its wait ends (False), so the
    process can answer; the readers' flags are cleared."""
    readers = [ring.reader("proc", ASLEEP_AT_ONCE, doorbell) for ring in rings]
    inbox = Inbox(readers, doorbell, WaitConfig(spin_us=0, yield_count=0, sleep_timeout=3600.0))
    thread, woke = _wait_in_thread(inbox, 30.0)
    try:
        _until_asleep(rings[0], "proc")
        doorbell.ring()
    finally:
        thread.join(30)
    assert woke == [False] and not thread.is_alive()
    assert not any(r.asleep for ring in rings for r in ring.readers())


def test_a_nudge_wakes_a_sleeping_inbox_once_and_only_when_asleep(
    rings: list[Ring], doorbell: Doorbell
) -> None:
    """A thread of the process (a journal sync completing) makes work ready and nudges: the
    sleeping Inbox wakes with True (work, not a control knock), the doorbell is posted once,
    and a nudge while nobody sleeps posts nothing (no stale post for the next wait)."""
    readers = [ring.reader("proc", ASLEEP_AT_ONCE, doorbell) for ring in rings]
    work: list[int] = []
    nudge = Nudge(doorbell, lambda: bool(work))
    inbox = Inbox(readers, doorbell, ASLEEP_AT_ONCE, nudge)
    nudge.nudge()
    assert nudge.posts == 0 and doorbell.semaphore.value == 0
    thread, woke = _wait_in_thread(inbox, 30.0)
    try:
        words, word = nudge.asleep_flag
        for _ in range(10_000):
            if words[word]:
                break
            threading.Event().wait(0.001)
        assert words[word], "the inbox never went to sleep"
        work.append(1)
        nudge.nudge()
    finally:
        thread.join(30)
    assert woke == [True]
    assert nudge.posts == 1 and doorbell.semaphore.value == 0
    assert inbox.ready() and not inbox.pending()  # the work is the nudge's, not a ring's


def test_a_post_for_a_record_already_seen_is_taken_not_counted_as_a_knock(
    rings: list[Ring], doorbell: Doorbell
) -> None:
    """The writer finds the waiter flagged asleep and posts, but the waiter's re-check already
    saw the record: the post is owed to it. Its next wait takes it and sleeps its whole time
    (before: it woke at once as if a control client had knocked); a real knock still ends a
    wait at once."""
    reader = rings[0].reader("proc", ASLEEP_AT_ONCE, doorbell)
    writer = rings[0].writer()
    published: list[bool] = []

    def ready() -> bool:
        words, asleep_word = reader.asleep_flag
        if words[asleep_word] and not published:  # announced: the publish lands before the re-check
            writer.put(ring_records.one(0))
            published.append(True)
        return reader.ready()

    waiter = Waiter(
        ASLEEP_AT_ONCE, [reader.asleep_flag], doorbell.semaphore, lambda: None, return_on_post=True
    )
    assert waiter.wait(ready, timeout=5.0)
    assert doorbell.semaphore.value == 1  # the writer's post, not consumed by that wait
    reader.release(len(reader.read(8, timeout=0)))
    started = time.monotonic()
    assert not waiter.wait(reader.ready, timeout=0.2)
    assert time.monotonic() - started >= 0.2  # slept it out: the stale post did not end it
    assert waiter.knocks == 0 and doorbell.semaphore.value == 0
    doorbell.ring()
    started = time.monotonic()
    assert not waiter.wait(reader.ready, timeout=30.0)
    assert time.monotonic() - started < 15.0 and waiter.knocks == 1
