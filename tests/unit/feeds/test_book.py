"""Book sync scenarios: each venue's sequence rule, buffering before the snapshot, gaps."""

from gateway.feeds.book import (
    BookKeeper,
    Contiguous,
    FuturesUpdateIds,
    OrderBook,
    PrevIdChain,
    SpotUpdateIds,
)
from gateway.feeds.records import BookUpdate


def diff(
    first: int, last: int, prev: int = 0, bids: list[tuple[int, int]] | None = None
) -> BookUpdate:
    return BookUpdate(
        "X.Y", 0, 0, bids if bids is not None else [(100, last)], [], False, first, last, prev
    )


def snapshot(last_id: int) -> BookUpdate:
    return BookUpdate("X.Y", 0, 0, [(99, 1)], [(101, 2)], True, last_id, last_id)


def ids(updates: list[BookUpdate]) -> list[tuple[int, int]]:
    return [(u.first_id, u.last_id) for u in updates]


def test_binance_spot_procedure_buffers_drops_and_chains() -> None:
    keeper = BookKeeper(SpotUpdateIds())
    for first, last in [(150, 155), (156, 158), (159, 162), (163, 165)]:
        assert keeper.on_update(diff(first, last)) == ([], False)
    assert keeper.pending() == 4
    applied, resync = keeper.on_update(snapshot(160))
    # u <= 160 dropped; 159..162 straddles 161; 163 chains to 162
    assert ids(applied) == [(160, 160), (159, 162), (163, 165)]
    assert not resync and keeper.synced and keeper.last_id == 165
    assert keeper.stale == 2
    assert keeper.book.bids == {99: 1, 100: 165}
    applied, resync = keeper.on_update(diff(166, 170))
    assert ids(applied) == [(166, 170)] and not resync


def test_binance_spot_gap_asks_for_resync_and_recovers() -> None:
    keeper = BookKeeper(SpotUpdateIds())
    keeper.on_update(snapshot(10))
    assert ids(keeper.on_update(diff(11, 12))[0]) == [(11, 12)]
    applied, resync = keeper.on_update(diff(15, 16))  # 13..14 missing
    assert applied == [] and resync and not keeper.synced and keeper.gaps == 1
    keeper.on_update(diff(17, 18))  # buffered while out of sync
    applied, resync = keeper.on_update(snapshot(16))
    assert ids(applied) == [(16, 16), (17, 18)] and not resync


def test_snapshot_older_than_the_buffered_diffs_is_a_gap() -> None:
    keeper = BookKeeper(SpotUpdateIds())
    keeper.on_update(diff(20, 25))
    applied, resync = keeper.on_update(snapshot(10))  # 11..19 can never be filled
    assert ids(applied) == [(10, 10)] and resync and keeper.gaps == 1


def test_binance_futures_chains_on_pu() -> None:
    keeper = BookKeeper(FuturesUpdateIds())
    keeper.on_update(diff(95, 99, 94))  # u < lastUpdateId: stale
    keeper.on_update(diff(100, 105, 99))  # U <= 100 <= u: first
    keeper.on_update(diff(106, 110, 105))
    applied, resync = keeper.on_update(snapshot(100))
    assert ids(applied) == [(100, 100), (100, 105), (106, 110)] and not resync
    applied, resync = keeper.on_update(diff(111, 115, 108))  # pu != 110
    assert resync and keeper.gaps == 1


def test_okx_prev_seq_chain() -> None:
    keeper = BookKeeper(PrevIdChain())
    keeper.on_update(snapshot(123456))
    assert ids(keeper.on_update(diff(123457, 123457, 123456))[0]) == [(123457, 123457)]
    assert keeper.on_update(diff(123457, 123457, 123456)) == ([], False)  # repeated: stale
    assert keeper.on_update(diff(123460, 123460, 123459))[1]


def test_contiguous_sequence() -> None:
    keeper = BookKeeper(Contiguous())
    keeper.on_update(snapshot(5))
    assert keeper.on_update(diff(6, 6))[0]
    assert keeper.on_update(diff(6, 6)) == ([], False)
    assert keeper.on_update(diff(8, 8))[1]


def test_pending_buffer_is_bounded() -> None:
    keeper = BookKeeper(SpotUpdateIds(), max_pending=3)
    for n in range(1, 6):
        keeper.on_update(diff(n, n))
    assert keeper.pending() == 3 and keeper.overflowed == 2


def test_order_book_levels_and_removal() -> None:
    book = OrderBook()
    book.apply([(100, 5), (99, 1)], [(101, 2), (102, 3)])
    book.apply([(99, 0), (98, 0)], [(101, 0)])  # removing an absent level is fine
    assert book.best_bid() == (100, 5) and book.best_ask() == (102, 3)
    assert book.depth(5) == ([(100, 5)], [(102, 3)])
    assert not book.crossed()
    book.apply([(103, 1)], [])
    assert book.crossed()
