"""DIFF session with shared patches: the rtn_data text carries the shared bytes unchanged,
private patches encoded alongside, a lone shared patch leaves as its ready frame, and the
mirror stays exact whether shared patches are kept unmerged, merged or collapsed."""

from typing import Any

import orjson
import pytest

from gateway.diff.merge_patch import apply_merge_patch
from gateway.diff.session import DiffSession, SharedPatch
from gateway.frames import frame_header


def _quote(symbol: str, **fields: Any) -> SharedPatch:
    return SharedPatch.of(symbol, frozenset(fields), {"quotes": {symbol: fields}})


def test_drain_frame_is_one_rtn_data_with_every_queued_patch() -> None:
    session = DiffSession()
    quote = _quote("A.a", last_price=1.5, bid_price1="NAN")
    session.push({"ins_list": "A.a"})
    session.push_shared(quote)
    text = session.drain_frame()
    assert quote.encoded in text
    assert orjson.loads(text) == {"aid": "rtn_data", "data": [{"ins_list": "A.a"}, quote.patch]}
    assert session.pending == []
    assert session.mirror == apply_merge_patch({"ins_list": "A.a"}, quote.patch)


def test_a_lone_shared_patch_leaves_as_its_prebuilt_frame() -> None:
    session = DiffSession()
    quote = _quote("A.a", last_price=2.0)
    frame = session.send_alone(quote)
    text = orjson.dumps({"aid": "rtn_data", "data": [quote.patch]})
    assert frame == frame_header(len(text)) + text
    assert session.mirror == quote.patch
    session.push({"ins_list": ""})
    with pytest.raises(AssertionError):
        session.send_alone(quote)


def test_on_change_is_told_of_every_transaction() -> None:
    session = DiffSession()
    told: list[int] = []
    session.on_change = lambda: told.append(len(session.pending))
    session.push({"a": 1}, {"b": 2})
    session.push_shared(_quote("C.c", last_price=3))
    assert told == [2, 3]


def test_kept_quotes_merge_in_order_with_private_patches() -> None:
    """A later quote that sets fewer fields must not hide an earlier one's; a private patch
    after a kept quote sees it merged first."""
    session = DiffSession()
    client: dict[str, Any] = {}
    steps: list[SharedPatch | dict[str, Any]] = [
        _quote("A.a", last_price=1.0, volume=1),
        _quote("A.a", last_price=2.0, volume=2),
        _quote("A.a", last_price=3.0),
        {"quotes": {"A.a": {"volume": None, "open": 7.0}}},
        _quote("B.b", last_price=9.0),
        _quote("A.a", last_price=4.0, volume=4),
    ]
    for step in steps:
        if isinstance(step, SharedPatch):
            frame = session.send_alone(step)
            patches = orjson.loads(frame[2 if frame[1] < 126 else 4 :])["data"]
        else:
            session.push(step)
            patches = session.drain()
        for patch in patches:
            client = apply_merge_patch(client, patch)
        assert session.mirror == client
    assert client == {
        "quotes": {"A.a": {"last_price": 4.0, "volume": 4, "open": 7.0}, "B.b": {"last_price": 9.0}}
    }


def test_collapse_over_shared_patches_keeps_the_state_exact() -> None:
    session = DiffSession(max_pending=5)
    client: dict[str, Any] = {}
    for i in range(50):
        session.push_shared(_quote("A.a", last_price=float(i)))
        session.push_shared(_quote("B.b", volume=i))
    session.push({"quotes": {"B.b": None}})
    assert session.collapsed > 0 and len(session.pending) <= 5
    for patch in orjson.loads(session.drain_frame())["data"]:
        client = apply_merge_patch(client, patch)
    assert client == session.mirror == {"quotes": {"A.a": {"last_price": 49.0}}}
