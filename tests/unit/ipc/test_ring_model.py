"""Generated operation sequences against a plain model of the ring: one writer, three readers.

The model is a few integers (published, each reader's cursor); every reserve, publish, read and
release must agree with it, and every record read must be the one the model expects.
"""

from __future__ import annotations

import itertools

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from ipc.errors import RingTimeout
from ipc.ring import Ring
from tests.integration import ring_records

CAPACITY = 8
READERS = ("a", "b", "c")
_examples = itertools.count()

writes = st.tuples(st.just("write"), st.integers(1, 12), st.integers(0, 12))
reads = st.tuples(st.sampled_from(READERS), st.integers(1, 12), st.integers(0, 12))
programs = st.lists(st.one_of(writes, reads), max_size=60)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(program=programs)
def test_ring_agrees_with_its_model(prefix: str, program: list[tuple[str, int, int]]) -> None:
    ring = Ring.create(f"{prefix}.m{next(_examples)}", ring_records.RECORD, CAPACITY)
    try:
        run(ring, program)
    finally:
        ring.unlink()
        ring.close()


def run(ring: Ring, program: list[tuple[str, int, int]]) -> None:
    writer = ring.writer()
    readers = {name: ring.reader(name) for name in READERS}
    published = 0
    cursors = dict.fromkeys(READERS, 0)
    for actor, wanted, keep in program:
        if actor == "write":
            space = min(cursors.values()) + CAPACITY - published
            contiguous = CAPACITY - published % CAPACITY
            if space == 0:
                try:
                    writer.reserve(wanted, timeout=0)
                except RingTimeout:
                    continue
                raise AssertionError("reserve succeeded on a full ring")
            view = writer.reserve(wanted, timeout=0)
            assert len(view) == min(wanted, space, contiguous)
            ring_records.fill(view, published)
            count = min(keep, len(view))
            writer.publish(count)
            published += count
        else:
            reader = readers[actor]
            cursor = cursors[actor]
            view = reader.read(wanted, timeout=0)
            expected = min(wanted, published - cursor, CAPACITY - cursor % CAPACITY)
            assert len(view) == expected
            assert ring_records.check(view, cursor) is None
            count = min(keep, len(view))
            reader.release(count)
            cursors[actor] += count
            assert reader.cursor == cursors[actor]
            assert reader.lag == published - cursors[actor]
    assert ring.stats()["published"] == published == writer.published
    assert {info.name: info.cursor for info in ring.readers()} == cursors
