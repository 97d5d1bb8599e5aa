"""External instruments through the gateway: a DIFF client watches a feeds instrument.

Real processes through `bin/exchange up` (accounts, matching, marketdata, feeds with a
replay-only Binance USD-M table, gateway); a recording is replayed into the feeds process with
`bin/feed replay`, and the DIFF client's `rtn_data` carries the external quote, and its
`set_chart` K-lines and ticks (served by the feeds process). Orders on the external id are
refused with 1007: it is watched, never traded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from engine.codes import ResultCode
from ipc.control import ControlError, call
from tests.integration.conftest import Exchange
from tests.integration.test_feeds import replay, up, write_recording
from tests.integration.test_gateway_fixtures import DiffSocket, RunningEdge, run, user

EXTERNAL = "BINANCE_FUTURES.BTCUSDT"
CONFIG = """
[ports]
md_pub = 0
feeds_pub = 0
[processes]
enabled = ["accounts", "matching", "marketdata", "feeds", "gateway"]
[feeds.venues.binance]
venue = "BINANCE_FUTURES"
symbols = ["BTCUSDT"]
streams = ["trade"]
live = false
"""
REPLAY_DEADLINE_S = 40.0


def test_diff_client_sees_replayed_external_quotes(
    exchange_factory: Callable[..., Exchange], tmp_path: Path
) -> None:
    path = tmp_path / "feeds_diff.toml"
    path.write_text(CONFIG)
    instance = up(exchange_factory, "--config", str(path))
    url = str(call(instance.endpoint("gateway.1"), "status", timeout=5.0)["http"]).rstrip("/")
    edge = RunningEdge(instance, url)
    recording = write_recording(
        tmp_path / "rec.jsonl", [(i, f"{16500 + i}.0", "0.500", i % 2 == 0) for i in range(5)]
    )
    replayed = {16500.0 + i for i in range(5)}

    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            trader = await user(session, edge, "gina")
            await trader.expect("POST", "/api/account/open", {"account_name": "main"})
            diff = await DiffSocket.open(session, edge)
            await diff.until(lambda s: s.get("mdhis_more_data") is False)
            assert EXTERNAL not in diff.state.get("quotes", {})  # not a local instrument

            await diff.send({"aid": "subscribe_quote", "ins_list": f"{EXTERNAL},NOPE.X"})
            await diff.until(lambda s: s.get("ins_list") == f"{EXTERNAL},NOPE.X")
            quote = diff.state["quotes"][EXTERNAL]
            assert "NOPE.X" not in diff.state["quotes"]
            assert quote["instrument_id"] == EXTERNAL
            assert quote["exchange_id"] == "BINANCE_FUTURES"
            assert quote["price_tick"] == pytest.approx(0.1)
            assert quote["price_decs"] == 1
            assert quote["volume_multiple"] == "NAN"
            assert quote["last_price"] == "NAN"

            deadline = time.monotonic() + REPLAY_DEADLINE_S
            while diff.state["quotes"][EXTERNAL]["last_price"] not in replayed:
                assert time.monotonic() < deadline, diff.state["quotes"][EXTERNAL]
                answer = await asyncio.to_thread(replay, instance, recording)
                assert answer["state"] == "done" and answer["frames"] == 5
                await asyncio.sleep(0.5)
            quote = diff.state["quotes"][EXTERNAL]
            assert quote["upper_limit"] == "NAN"
            assert quote["volume"] > 0
            assert quote["datetime"].startswith("2")

            # charts of the external id: 1-minute bars and ticks, from the feeds process
            minute = 60 * 1_000_000_000
            await diff.send(
                {
                    "aid": "set_chart",
                    "chart_id": "ext-bars",
                    "ins_list": EXTERNAL,
                    "duration": minute,
                    "view_width": 10,
                }
            )
            await diff.until(lambda s: s.get("charts", {}).get("ext-bars", {}).get("ready"))
            bars = diff.state["klines"][EXTERNAL][str(minute)]["data"]
            (bar,) = (b for b in bars.values() if b)
            assert (bar["open"], bar["high"], bar["low"], bar["close"]) == (
                16500.0,
                16504.0,
                16500.0,
                16504.0,
            )
            assert bar["volume"] > 0 and bar["volume"] % 2500 == 0  # 5 × 500 lots per replay
            # the chart rolls with the feed: a print a minute later opens the next bar
            first_id = diff.state["charts"]["ext-bars"]["right_id"]
            later = write_recording(tmp_path / "later.jsonl", [(61_000, "16510.0", "0.250", False)])
            answer = await asyncio.to_thread(replay, instance, later)
            assert answer["state"] == "done"
            await diff.until(
                lambda s: (
                    s["charts"]["ext-bars"]["right_id"] == first_id + 1
                    and s["klines"][EXTERNAL][str(minute)]["data"].get(str(first_id + 1))
                )
            )
            rolled = diff.state["klines"][EXTERNAL][str(minute)]["data"][str(first_id + 1)]
            assert rolled["open"] == rolled["close"] == 16510.0 and rolled["volume"] == 250
            await diff.send(
                {
                    "aid": "set_chart",
                    "chart_id": "ext-ticks",
                    "ins_list": EXTERNAL,
                    "duration": 0,
                    "view_width": 3,
                }
            )
            await diff.until(lambda s: s.get("charts", {}).get("ext-ticks", {}).get("ready"))
            ticks = [t for t in diff.state["ticks"][EXTERNAL]["data"].values() if t]
            assert 16510.0 in {t["last_price"] for t in ticks}  # the newest print
            assert {t["last_price"] for t in ticks} <= replayed | {16510.0}
            await diff.send(
                {
                    "aid": "set_chart",
                    "chart_id": "nope",
                    "ins_list": "NOPE.X",
                    "duration": minute,
                    "view_width": 10,
                }
            )
            missing = int(ResultCode.NO_SUCH_INSTRUMENT)
            await diff.until(
                lambda s: any(n.get("code") == missing for n in s.get("notify", {}).values() if n)
            )

            await diff.send(
                {
                    "aid": "req_login",
                    "bid": "shmex",
                    "user_name": "gina",
                    "password": "gina-password-1",
                }
            )
            await diff.until(lambda s: s.get("trade", {}).get("gina", {}).get("orders") == {})
            await diff.send(
                {
                    "aid": "insert_order",
                    "user_id": "gina",
                    "order_id": "g-1",
                    "exchange_id": "BINANCE_FUTURES",
                    "instrument_id": "BTCUSDT",
                    "direction": "BUY",
                    "offset": "OPEN",
                    "volume": 1,
                    "price_type": "LIMIT",
                    "limit_price": 16500.0,
                    "volume_condition": "ANY",
                    "time_condition": "GFD",
                }
            )
            refused = int(ResultCode.NO_SUCH_INSTRUMENT)
            await diff.until(
                lambda s: any(n.get("code") == refused for n in s.get("notify", {}).values() if n)
            )
            assert "g-1" not in diff.state["trade"]["gina"]["orders"]
            await diff.close()

    run(scenario)
    external = call(instance.endpoint("gateway.1"), "status", timeout=5.0)["service"]["external"]
    assert external["known"] == 1 and external["refreshes"] >= 1
    # the feeds control socket answers marketdata's queries for its instruments
    feeds = instance.endpoint("feeds")
    snapshot = call(feeds, "snapshot", timeout=5.0, instrument=EXTERNAL)
    assert snapshot["quote"]["last_ticks"] == 165100 and snapshot["quote"]["external"]
    assert snapshot["klines"]["60"]["close_ticks"] == 165100
    first, last = call(feeds, "klines", timeout=5.0, instrument=EXTERNAL, period=60, count=5)
    assert (first["open_ticks"], first["close_ticks"], first["finished"]) == (165000, 165040, True)
    assert (last["open_ticks"], last["finished"]) == (165100, False)
    trades = call(feeds, "recent_trades", timeout=5.0, instrument=EXTERNAL, count=2)
    assert [t["price_ticks"] for t in trades] == [165040, 165100]
    with pytest.raises(ControlError):
        call(feeds, "klines", timeout=5.0, instrument="NOPE.X", period=60)
    with pytest.raises(ControlError):
        call(feeds, "klines", timeout=5.0, instrument=EXTERNAL, period=7)
