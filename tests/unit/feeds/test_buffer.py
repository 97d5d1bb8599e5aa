from engine.enums import Side
from gateway.feeds.buffer import BoundedBuffer
from gateway.feeds.records import Trade

S = 1_000_000_000


def _trade(i: int) -> Trade:
    return Trade("X.Y", i, i, 100, 1, Side.BUY, i, 0, 100)


def test_full_buffer_drops_and_counts() -> None:
    buffer = BoundedBuffer(capacity=3, rate=0)
    results = [buffer.offer(_trade(i), i) for i in range(5)]
    assert results == [True, True, True, False, False]
    assert buffer.dropped_full == 2 and buffer.dropped_rate == 0
    assert buffer.fill == 1.0
    assert [t.trade_id for t in buffer.drain(2)] == [0, 1]
    assert buffer.offer(_trade(9), 9)
    assert [t.trade_id for t in buffer.drain()] == [2, 9]


def test_rate_limit_refills_with_time() -> None:
    buffer = BoundedBuffer(capacity=1000, rate=10)
    accepted = sum(buffer.offer(_trade(i), 0) for i in range(15))
    assert accepted == 10 and buffer.dropped_rate == 5
    # half a second later five tokens are back
    accepted = sum(buffer.offer(_trade(i), S // 2) for i in range(8))
    assert accepted == 5
    assert buffer.dropped == 8
