"""DIFF session: pending answered at once, parked peeks woken by a push, whole transactions."""

import asyncio

from gateway.diff.merge_patch import apply_merge_patch
from gateway.diff.session import DiffSession
from tests.unit.gateway.support import run_async

WAIT_S = 2.0


@run_async
async def test_peek_answers_at_once_when_patches_are_pending() -> None:
    session = DiffSession()
    session.push({"ins_list": "SHFE.cu2501"})
    patches = await asyncio.wait_for(session.peek(), WAIT_S)
    assert patches == [{"ins_list": "SHFE.cu2501"}]
    assert session.pending == []


@run_async
async def test_peek_parks_until_a_change_then_wakes() -> None:
    session = DiffSession()
    parked = asyncio.ensure_future(session.peek())
    await asyncio.sleep(0.01)
    assert not parked.done(), "peek without changes must wait"
    session.push({"quotes": {"X.y": {"last_price": 1.0}}})
    assert await asyncio.wait_for(parked, WAIT_S) == [{"quotes": {"X.y": {"last_price": 1.0}}}]


@run_async
async def test_a_transaction_arrives_whole_in_one_rtn_data() -> None:
    session = DiffSession()
    parked = asyncio.ensure_future(session.peek())
    await asyncio.sleep(0)
    fill = [
        {"trade": {"u": {"trades": {"t1": {"volume": 1}}}}},
        {"trade": {"u": {"orders": {"o1": {"volume_left": 0, "status": "FINISHED"}}}}},
        {"trade": {"u": {"accounts": {"CNY": {"balance": 99.0}}}}},
    ]
    session.push(*fill)
    assert await asyncio.wait_for(parked, WAIT_S) == fill
    assert session.drain() == []


@run_async
async def test_snapshot_and_client_mirror_agree_after_every_rtn_data() -> None:
    session = DiffSession()
    client: dict = {}
    session.push({"a": {"b": 1, "c": 2}})
    session.push({"a": {"c": None}, "d": [1]})
    for patch in await asyncio.wait_for(session.peek(), WAIT_S):
        client = apply_merge_patch(client, patch)
    assert client == session.snapshot == {"a": {"b": 1}, "d": [1]}


@run_async
async def test_a_client_that_stops_peeking_gets_one_collapsed_patch() -> None:
    session = DiffSession(max_pending=10)
    client: dict = {}
    session.push({"quotes": {"A.a": {"last_price": 0.0}, "B.b": {"last_price": 0.0}}})
    for patch in session.drain():
        client = apply_merge_patch(client, patch)
    for i in range(100):
        session.push({"quotes": {"A.a": {"last_price": float(i)}}})
    session.push({"quotes": {"B.b": None}})
    assert len(session.pending) <= 10
    assert session.collapsed > 0
    for patch in await asyncio.wait_for(session.peek(), WAIT_S):
        client = apply_merge_patch(client, patch)
    assert client == session.snapshot == {"quotes": {"A.a": {"last_price": 99.0}}}
