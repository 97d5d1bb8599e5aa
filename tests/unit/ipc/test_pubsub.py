"""Market-data PUB/SUB: topic grammar, prefix filtering, and a publisher that never blocks."""

import time

import pytest
import zmq

from ipc.pubsub import Publisher, Subscriber, parse_topic, topic


def test_topic_grammar_round_trips() -> None:
    assert topic("CFFEX.IF2501", "tick") == "md.CFFEX.IF2501.tick"
    assert topic("SHFE.cu2501", "kline", 60) == "md.SHFE.cu2501.kline.60"
    assert parse_topic("md.SHFE.cu2501.kline.60") == ("SHFE.cu2501", "kline", 60)
    assert parse_topic("md.CFFEX.IF2501.book") == ("CFFEX.IF2501", "book", None)
    with pytest.raises(ValueError):
        topic("CFFEX.IF2501", "kline")
    with pytest.raises(ValueError):
        topic("CFFEX.IF2501", "trades")
    with pytest.raises(ValueError):
        parse_topic("md.CFFEX.IF2501.kline.x")


def _connected(pub: Publisher, sub: Subscriber, probe: str) -> None:
    """PUB/SUB joins late; publish a probe until the subscriber sees it (bounded)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pub.publish(probe, {"probe": True})
        if sub.receive(0.05) is not None:
            sub.receive_many(0.05)
            return
    raise AssertionError("subscriber never connected")


def _collect(sub: Subscriber, count: int, timeout: float = 10.0) -> list[tuple[str, object]]:
    """The next `count` messages that are not connection probes (bounded wait)."""
    got: list[tuple[str, object]] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        got += [m for m in sub.receive_many(0.1) if m[1] != {"probe": True}]
    return got


def test_subscriber_filters_by_topic_prefix() -> None:
    context = zmq.Context()
    pub = Publisher(context, "tcp://127.0.0.1:*")
    sub = Subscriber(context, [pub.endpoint], topics=["md.CFFEX.IF2501."])
    try:
        _connected(pub, sub, "md.CFFEX.IF2501.quote")
        pub.publish("md.CFFEX.IC2501.tick", {"price": 1})
        pub.publish("md.CFFEX.IF2501.tick", {"price": 2})
        pub.publish("md.CFFEX.IF2501.kline.60", {"close": 3})
        assert _collect(sub, 2) == [
            ("md.CFFEX.IF2501.tick", {"price": 2}),
            ("md.CFFEX.IF2501.kline.60", {"close": 3}),
        ]
    finally:
        sub.close()
        pub.close()
        context.term()


def test_latest_conflates_per_topic() -> None:
    context = zmq.Context()
    pub = Publisher(context, "tcp://127.0.0.1:*")
    sub = Subscriber(context, [pub.endpoint])
    try:
        _connected(pub, sub, "md.X.Y.quote")
        for i in range(50):
            pub.publish("md.X.Y.book", {"n": i})
            pub.publish("md.X.Z.book", {"n": -i})
        pub.publish("md.X.Z.quote", {"last": True})
        deadline = time.monotonic() + 10
        latest: dict[str, object] = {}
        while "md.X.Z.quote" not in latest and time.monotonic() < deadline:
            latest.update(sub.latest(0.1))
        latest.pop("md.X.Y.quote", None)
        assert latest == {
            "md.X.Y.book": {"n": 49},
            "md.X.Z.book": {"n": -49},
            "md.X.Z.quote": {"last": True},
        }
    finally:
        sub.close()
        pub.close()
        context.term()


def test_stalled_subscriber_never_blocks_the_publisher() -> None:
    context = zmq.Context()
    pub = Publisher(context, "tcp://127.0.0.1:*", send_hwm=100)
    sub = Subscriber(context, [pub.endpoint], recv_hwm=100)
    try:
        _connected(pub, sub, "md.X.Y.tick")
        body = {"pad": "x" * 200}
        for _ in range(50_000):
            pub.publish("md.X.Y.tick", body)
        received = sub.receive_many(1.0, max_messages=100_000)
        assert 0 < len(received) < 50_000
    finally:
        sub.close()
        pub.close()
        context.term()
