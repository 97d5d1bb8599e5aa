"""Outbox: never blocks, conflates market data, drops lowest priority first, then disconnects."""

import asyncio

from gateway.outbox import Outbox, Priority
from tests.unit.gateway.support import run_async


@run_async
async def test_sends_most_important_first() -> None:
    box = Outbox()
    box.put("book", Priority.MARKET, key="book:A")
    box.put("acct", Priority.ACCOUNT)
    box.put("trade", Priority.TRADE)
    box.put("answer", Priority.ANSWER)
    assert box.take() == ["answer", "trade", "acct", "book"]


@run_async
async def test_market_data_is_conflated_by_key() -> None:
    box = Outbox()
    for i in range(50):
        box.put(f"book{i}", Priority.MARKET, key="book:A")
    box.put("bookB", Priority.MARKET, key="book:B")
    assert box.take() == ["book49", "bookB"]
    assert box.conflated == 49


@run_async
async def test_overflow_drops_market_then_account_and_keeps_answers() -> None:
    box = Outbox(max_messages=4)
    box.put("m1", Priority.MARKET, key=1)
    box.put("m2", Priority.MARKET, key=2)
    box.put("a1", Priority.ACCOUNT)
    box.put("t1", Priority.TRADE)
    assert box.put("r1", Priority.ANSWER)
    assert box.put("r2", Priority.ANSWER)
    assert box.dropped == 2
    assert box.put("r3", Priority.ANSWER)
    assert box.dropped == 3
    assert not box.closed
    assert box.take() == ["r1", "r2", "r3", "t1"]


@run_async
async def test_byte_limit_counts_too() -> None:
    box = Outbox(max_messages=100, max_bytes=10)
    box.put("x" * 8, Priority.MARKET, key="a")
    box.put("y" * 8, Priority.MARKET, key="")
    assert box.take() == ["y" * 8]


@run_async
async def test_answers_alone_overflowing_signal_disconnect() -> None:
    box = Outbox(max_messages=3)
    assert all(box.put("r", Priority.ANSWER) for _ in range(3))
    assert not box.put("r", Priority.ANSWER)
    assert box.closed and box.overflowed
    await asyncio.wait_for(box.disconnected.wait(), 1)
    assert not box.put("late", Priority.ANSWER), "a closed outbox accepts nothing"


def test_notify_on_the_first_put_of_a_batch_and_on_close() -> None:
    """The sender hears once per batch of puts (then takes them all), and once on close."""
    calls: list[int] = []
    box = Outbox(notify=lambda: calls.append(len(box)))
    box.put("a", Priority.TRADE)
    box.put("b", Priority.ANSWER)
    assert calls == [1]
    assert box.take() == ["b", "a"] and box.take() == []
    box.put("c", Priority.MARKET, key="k")
    assert calls == [1, 1]
    box.close()
    box.close()
    assert calls == [1, 1, 1] and box.take() == ["c"]
    assert not box.put("late", Priority.ANSWER) and calls == [1, 1, 1]
    assert not box.overflowed


@run_async
async def test_a_slow_reader_never_blocks_the_producer() -> None:
    box = Outbox(max_messages=64)
    for i in range(100_000):
        box.put("tick", Priority.MARKET, key=i % 500)
    assert len(box) == 64
    assert not box.closed
