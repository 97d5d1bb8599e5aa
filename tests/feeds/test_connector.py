"""Connectors against local venue servers: the whole lifecycle over real sockets."""

from __future__ import annotations

import asyncio
import random
import socket

import orjson
import pytest

from gateway.feeds.backoff import Backoff, GaveUp
from gateway.feeds.records import BookUpdate, Trade
from tests.feeds import fixtures
from tests.feeds.harness import make_connector, run, run_until
from tests.feeds.server import VenueServer


def trades(records: list) -> list[Trade]:
    return [r for r in records if isinstance(r, Trade)]


@pytest.mark.parametrize("venue", sorted(fixtures.SYMBOL))
def test_normal_flow_every_venue(venue: str) -> None:
    binary = venue in ("UPBIT", "BITHUMB")  # these venues send JSON in binary frames
    script = [fixtures.trade(venue, i) for i in range(5)]
    frames = [f.encode() for f in script] if binary else script

    async def main() -> None:
        async with VenueServer([frames]) as server:
            feed = make_connector(venue, server)
            records = await run_until(feed, lambda r: len(trades(r)) >= 5)
            ids = [t.trade_id for t in trades(records)]
            assert len(ids) == 5 and len(set(ids)) == 5
            assert feed.stats()["malformed"] == 0
            subscription = server.subscriptions[0]
            target = "BTC" if venue == "COINONE" else fixtures.SYMBOL[venue]
            assert target.lower() in subscription.lower()

    run(main())


def test_binance_subscribes_and_syncs_the_book_from_rest() -> None:
    script = [
        fixtures.trade("BINANCE", 0),
        fixtures.binance_depth(157, 160),
        fixtures.binance_depth(161, 163),
    ]

    async def main() -> None:
        async with VenueServer(
            [script], rest={"/api/v3/depth": fixtures.binance_snapshot(158)}
        ) as server:
            feed = make_connector("BINANCE", server, streams=["trade", "depth"])
            records = await run_until(
                feed, lambda r: sum(isinstance(x, BookUpdate) for x in r) >= 3
            )
            request = orjson.loads(server.subscriptions[0])
            assert request == {
                "method": "SUBSCRIBE",
                "params": ["btcusdt@trade", "btcusdt@depth@100ms"],
                "id": 1,
            }
            assert server.rest_hits == ["/api/v3/depth?symbol=BTCUSDT&limit=1000"]
            books = [r for r in records if isinstance(r, BookUpdate)]
            assert [(b.first_id, b.last_id, b.snapshot) for b in books] == [
                (158, 158, True),
                (157, 160, False),
                (161, 163, False),
            ]
            assert feed.books["BINANCE.BTCUSDT"].last_id == 163

    run(main())


def test_sequence_gap_triggers_a_rest_resync() -> None:
    script = [
        fixtures.binance_depth(157, 160),
        fixtures.binance_depth(161, 163),
        fixtures.binance_depth(170, 172),  # 164..169 never arrive
        fixtures.binance_depth(173, 175),
    ]
    rest = {"/api/v3/depth": [fixtures.binance_snapshot(158), fixtures.binance_snapshot(171)]}

    async def main() -> None:
        async with VenueServer([script], rest=rest) as server:
            feed = make_connector("BINANCE", server, streams=["depth"])
            await run_until(
                feed,
                lambda r: (
                    feed.books.get("BINANCE.BTCUSDT") is not None
                    and feed.books["BINANCE.BTCUSDT"].last_id == 175
                ),
            )
            stats = feed.stats()
            assert stats["book_gaps"] == 1
            assert len(server.rest_hits) == 2 and stats["rest_snapshots"] == 2
            assert feed.books["BINANCE.BTCUSDT"].synced

    run(main())


def test_futures_gap_on_pu_resyncs() -> None:
    script = [
        fixtures.binance_depth(100, 105, 99),
        fixtures.binance_depth(106, 110, 105),
        fixtures.binance_depth(115, 120, 112),  # pu should be 110
    ]
    rest = {"/fapi/v1/depth": [fixtures.binance_snapshot(100), fixtures.binance_snapshot(118)]}

    async def main() -> None:
        async with VenueServer([script], rest=rest) as server:
            feed = make_connector("BINANCE_FUTURES", server, streams=["depth"])
            await run_until(
                feed,
                lambda r: (
                    feed.counters["rest_snapshots"] >= 2
                    and feed.books["BINANCE_FUTURES.BTCUSDT"].synced
                ),
            )
            assert feed.counters["book_gaps"] == 1
            assert feed.books["BINANCE_FUTURES.BTCUSDT"].last_id == 120

    run(main())


def test_disconnect_reconnects_with_backoff_and_drops_replayed_duplicates() -> None:
    first = [fixtures.trade("BINANCE", i) for i in range(5)]
    second = [fixtures.trade("BINANCE", i) for i in range(3, 10)]  # 3 and 4 again

    async def main() -> None:
        async with VenueServer([first, second], close_after_script=1) as server:
            feed = make_connector("BINANCE", server, seed=11, streams=["trade"])
            records = await run_until(feed, lambda r: len(trades(r)) >= 10)
            assert [t.trade_id for t in trades(records)] == list(range(1000, 1010))
            assert feed.dedup.duplicates == 2
            assert server.connections == 2 and feed.counters["reconnects"] == 1
            # the first connection delivered data, so the wait is a first attempt's: 1 s ± 20 %
            expected = Backoff(1.0, 60.0, 2.0, 0.2, 5, random.Random(11))
            assert feed.delays == [expected.delay(1)]
            assert 0.8 <= feed.delays[0] <= 1.2

    run(main())


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_bounded_attempts_give_up_with_growing_delays() -> None:
    async def main() -> None:
        port = _closed_port()
        feed = make_connector(
            "BINANCE",
            None,
            seed=5,
            ws_url=f"http://127.0.0.1:{port}/ws",
            rest_url=f"http://127.0.0.1:{port}",
            max_attempts=4,
            streams=["trade", "depth20"],
        )
        with pytest.raises(GaveUp):
            await feed.run()
        assert len(feed.delays) == 4
        for n, delay in enumerate(feed.delays, start=1):
            assert 0.8 * 2 ** (n - 1) <= delay <= 1.2 * 2 ** (n - 1)
        assert feed.counters["rest_errors"] >= 4  # the REST fallback was tried while down

    run(main())


def test_rest_fallback_keeps_the_book_while_the_socket_is_down() -> None:
    async def main() -> None:
        async with VenueServer(
            [[fixtures.trade("BINANCE", 0)]],
            close_after_script=1,
            rest={"/api/v3/depth": fixtures.binance_snapshot(500)},
        ) as server:
            feed = make_connector(
                "BINANCE", server, streams=["trade", "depth20"], rest_poll_interval=0.2
            )
            records = await run_until(feed, lambda r: any(isinstance(x, BookUpdate) for x in r))
            snapshot = next(r for r in records if isinstance(r, BookUpdate))
            assert snapshot.snapshot and snapshot.last_id == 500
            assert server.rest_hits

    run(main())


def test_malformed_and_non_utf8_frames_are_counted_and_the_stream_goes_on() -> None:
    script: list[str | bytes] = [
        "not json at all",
        b"\xff\xfe\xfa\x80\x81\x00\x9f",
        '{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT"}}',
        fixtures.trade("BINANCE", 0),
        fixtures.trade("BINANCE", 1).replace('"p":"16501.10"', '"p":"16501.105"'),
        fixtures.trade("BINANCE", 2),
    ]

    async def main() -> None:
        async with VenueServer([script]) as server:
            feed = make_connector("BINANCE", server, streams=["trade"], min_decode_confidence=0.9)
            records = await run_until(feed, lambda r: len(trades(r)) >= 2)
            assert [t.trade_id for t in trades(records)] == [1000, 1002]
            stats = feed.stats()
            assert (stats["malformed"], stats["undecodable"], stats["off_tick"]) == (2, 1, 1)
            assert stats["connected"] or stats["reconnects"] == 0

    run(main())


def test_euc_kr_frame_is_redecoded() -> None:
    text = fixtures.EXAMPLES["UPBIT"][1].replace(
        '"change":"RISE"', '"change":"상승 추세 (전일 대비 가격 상승)"'
    )

    async def main() -> None:
        async with VenueServer([[text.encode("euc-kr")]]) as server:
            feed = make_connector("UPBIT", server, streams=["ticker"], ticker_fields=("change",))
            records = await run_until(feed, lambda r: len(r) >= 1)
            assert records[0].fields == {"change": "상승 추세 (전일 대비 가격 상승)"}
            assert feed.stats()["redecoded"] == 1

    run(main())


def test_a_full_buffer_drops_and_counts() -> None:
    script = [fixtures.trade("BINANCE", i) for i in range(20)]

    async def main() -> None:
        async with VenueServer([script]) as server:
            feed = make_connector("BINANCE", server, buffer_capacity=5)
            # nobody drains the buffer here (`take` is not called), so it must fill and drop
            task = asyncio.create_task(feed.run())
            try:
                for _ in range(500):
                    if feed.counters["frames"] >= 20:
                        break
                    await asyncio.sleep(0.01)
            finally:
                feed.stop()
                await asyncio.wait_for(task, 5)
            stats = feed.stats()
            assert stats["frames"] == 20
            assert stats["buffered"] == 5 and stats["dropped_full"] == 15
            assert "Buffer 100.0%" in feed.health_line()

    run(main())


def test_rate_limit_drops_and_counts() -> None:
    script = [fixtures.trade("BINANCE", i) for i in range(50)]

    async def main() -> None:
        async with VenueServer([script]) as server:
            feed = make_connector("BINANCE", server, buffer_rate=2)
            await run_until(feed, lambda r: feed.counters["frames"] >= 50)
            stats = feed.stats()
            assert stats["dropped_rate"] > 0
            assert stats["dropped_rate"] + feed.buffer.accepted == 50

    run(main())


def test_idle_socket_is_dropped_and_reconnected() -> None:
    async def main() -> None:
        async with VenueServer([[], [fixtures.trade("BINANCE", 0)]]) as server:
            feed = make_connector("BINANCE", server, idle_timeout=1.0)
            records = await run_until(feed, lambda r: len(trades(r)) >= 1)
            assert server.connections == 2 and feed.counters["reconnects"] == 1
            assert len(records) == 1

    run(main())


def test_application_ping_is_sent_and_pong_is_not_data() -> None:
    async def main() -> None:
        async with VenueServer([[fixtures.trade("OKX", 0)]], reply_pong="pong") as server:
            feed = make_connector("OKX", server, ping_interval=0.05)
            await run_until(feed, lambda r: len(server.received) >= 2)
            assert server.received[:2] == ["ping", "ping"]
            assert feed.stats()["malformed"] == 0

    run(main())


def test_okx_gap_resubscribes_for_a_fresh_snapshot() -> None:
    book = fixtures.EXAMPLES["OKX"][3]
    update = fixtures.EXAMPLES["OKX"][4]
    gap = update.replace('"prevSeqId":123456,"seqId":123457', '"prevSeqId":123460,"seqId":123461')

    async def main() -> None:
        async with VenueServer([[book, update, gap]]) as server:
            feed = make_connector("OKX", server, streams=["books"])
            await run_until(feed, lambda r: len(server.received) >= 2)
            assert feed.counters["book_gaps"] == 1
            unsubscribe, subscribe = (orjson.loads(m) for m in server.received[:2])
            assert unsubscribe == {
                "op": "unsubscribe",
                "args": [{"channel": "books", "instId": "BTC-USDT"}],
            }
            assert subscribe["op"] == "subscribe"

    run(main())


def test_health_line_is_logged_periodically(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with VenueServer([[fixtures.trade("BINANCE", 0)]]) as server:
            feed = make_connector("BINANCE", server, health_interval=0.05)
            with caplog.at_level("INFO", logger="gateway.feeds.connector"):
                await run_until(feed, lambda r: "WebSocket ✓" in caplog.text)
            line = next(m for m in caplog.messages if "WebSocket" in m)
            assert "Buffer 0.0%" in line and "Dedup 0.00%" in line and "Written" in line

    run(main())


def test_a_trades_only_feed_does_not_poll_books_while_down() -> None:
    async def main() -> None:
        port = _closed_port()
        feed = make_connector(
            "BINANCE",
            None,
            ws_url=f"http://127.0.0.1:{port}/ws",
            rest_url=f"http://127.0.0.1:{port}",
            max_attempts=2,
            streams=["trade"],
        )
        with pytest.raises(GaveUp):
            await feed.run()
        assert len(feed.delays) == 2 and feed.counters["rest_errors"] == 0

    run(main())


def test_books_resync_after_a_reconnect_without_counting_a_gap() -> None:
    first = [fixtures.binance_depth(157, 160), fixtures.binance_depth(161, 163)]
    second = [fixtures.binance_depth(300, 305), fixtures.binance_depth(306, 310)]
    rest = {"/api/v3/depth": [fixtures.binance_snapshot(158), fixtures.binance_snapshot(302)]}

    async def main() -> None:
        async with VenueServer([first, second], rest=rest, close_after_script=1) as server:
            feed = make_connector("BINANCE", server, streams=["depth"], rest_poll_interval=10.0)

            def resynced(records: list) -> bool:
                keeper = feed.books.get("BINANCE.BTCUSDT")
                return keeper is not None and keeper.synced and keeper.last_id == 310

            await run_until(feed, resynced)
            assert feed.counters["book_gaps"] == 0
            assert server.connections >= 2

    run(main())


def test_stop_is_prompt_during_a_long_backoff_wait() -> None:
    async def main() -> None:
        port = _closed_port()
        feed = make_connector(
            "BINANCE",
            None,
            ws_url=f"http://127.0.0.1:{port}/ws",
            rest_url=f"http://127.0.0.1:{port}",
            backoff_initial=3600.0,
            backoff_cap=3600.0,
            streams=["trade"],
        )
        feed.sleep = asyncio.sleep  # real time: an hour unless stop() cuts it short
        task = asyncio.create_task(feed.run())
        for _ in range(500):
            if feed.delays:
                break
            await asyncio.sleep(0.01)
        assert feed.delays and feed.delays[0] >= 2880  # 3600 s − 20 % jitter
        feed.stop()
        await asyncio.wait_for(task, 5.0)

    run(main())
