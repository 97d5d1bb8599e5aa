"""DIFF session with shared patches: the rtn_data text carries the shared bytes unchanged,
private patches encoded alongside, and collapsing still yields the exact snapshot."""

import orjson

from gateway.diff.merge_patch import apply_merge_patch
from gateway.diff.session import DiffSession
from gateway.encoding import to_json


def test_drain_frame_is_one_rtn_data_with_every_queued_patch() -> None:
    session = DiffSession()
    quote = {"quotes": {"A.a": {"last_price": 1.5, "bid_price1": "NAN"}}}
    shared = to_json(quote)
    session.push({"ins_list": "A.a"})
    session.push_shared(quote, shared)
    text = session.drain_frame()
    assert shared in text
    assert orjson.loads(text) == {"aid": "rtn_data", "data": [{"ins_list": "A.a"}, quote]}
    assert session.pending == [] and session.mirror == apply_merge_patch({"ins_list": "A.a"}, quote)


def test_on_change_is_told_of_every_transaction() -> None:
    session = DiffSession()
    told: list[int] = []
    session.on_change = lambda: told.append(len(session.pending))
    session.push({"a": 1}, {"b": 2})
    session.push_shared({"c": 3}, b'{"c":3}')
    assert told == [2, 3]


def test_collapse_over_shared_patches_keeps_the_state_exact() -> None:
    session = DiffSession(max_pending=5)
    client: dict = {}
    for i in range(50):
        patch = {"quotes": {"A.a": {"last_price": float(i)}, "B.b": {"volume": i}}}
        session.push_shared(patch, to_json(patch))
    session.push({"quotes": {"B.b": None}})
    assert session.collapsed > 0 and len(session.pending) <= 5
    for patch in orjson.loads(session.drain_frame())["data"]:
        client = apply_merge_patch(client, patch)
    assert client == session.mirror == {"quotes": {"A.a": {"last_price": 49.0}}}
