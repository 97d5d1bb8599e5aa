"""Outbox: never blocks, conflates market data, drops lowest priority first, then disconnects."""

import asyncio

from gateway.outbox import Outbox, Priority
from tests.unit.gateway.aio import run_async


@run_async
async def test_sends_most_important_first() -> None:
    box = Outbox()
    box.put(b"book", Priority.MARKET, key="book:A")
    box.put(b"acct", Priority.ACCOUNT)
    box.put(b"trade", Priority.TRADE)
    box.put(b"answer", Priority.ANSWER)
    assert await box.take() == [b"answer", b"trade", b"acct", b"book"]


@run_async
async def test_market_data_is_conflated_by_key() -> None:
    box = Outbox()
    for i in range(50):
        box.put(f"book{i}".encode(), Priority.MARKET, key="book:A")
    box.put(b"bookB", Priority.MARKET, key="book:B")
    assert await box.take() == [b"book49", b"bookB"]
    assert box.conflated == 49


@run_async
async def test_overflow_drops_market_then_account_and_keeps_answers() -> None:
    box = Outbox(max_messages=4)
    box.put(b"m1", Priority.MARKET, key=1)
    box.put(b"m2", Priority.MARKET, key=2)
    box.put(b"a1", Priority.ACCOUNT)
    box.put(b"t1", Priority.TRADE)
    assert box.put(b"r1", Priority.ANSWER)
    assert box.put(b"r2", Priority.ANSWER)
    assert box.dropped == 2
    assert box.put(b"r3", Priority.ANSWER)
    assert box.dropped == 3
    assert not box.closed
    assert await box.take() == [b"r1", b"r2", b"r3", b"t1"]


@run_async
async def test_byte_limit_counts_too() -> None:
    box = Outbox(max_messages=100, max_bytes=10)
    box.put(b"x" * 8, Priority.MARKET, key="a")
    box.put(b"y" * 8, Priority.MARKET, key="b")
    assert await box.take() == [b"y" * 8]


@run_async
async def test_answers_alone_overflowing_signal_disconnect() -> None:
    box = Outbox(max_messages=3)
    assert all(box.put(b"r", Priority.ANSWER) for _ in range(3))
    assert not box.put(b"r", Priority.ANSWER)
    assert box.closed
    await asyncio.wait_for(box.disconnected.wait(), 1)
    assert not box.put(b"late", Priority.ANSWER), "a closed outbox accepts nothing"


@run_async
async def test_take_waits_for_a_put_and_returns_empty_when_closed() -> None:
    box = Outbox()
    waiting = asyncio.ensure_future(box.take())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    box.put(b"hello", Priority.TRADE)
    assert await asyncio.wait_for(waiting, 1) == [b"hello"]
    waiting = asyncio.ensure_future(box.take())
    await asyncio.sleep(0)
    box.close()
    assert await asyncio.wait_for(waiting, 1) == []


@run_async
async def test_a_slow_reader_never_blocks_the_producer() -> None:
    box = Outbox(max_messages=64)
    for i in range(100_000):
        box.put(b"tick", Priority.MARKET, key=i % 500)
    assert len(box) == 64
    assert not box.closed
