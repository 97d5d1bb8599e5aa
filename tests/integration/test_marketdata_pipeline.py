"""End to end: `bin/loadgen --direct` → accounts → matching → marketdata and recorder, all real
processes under `bin/exchange`. What subscribers saw, what marketdata answers and what the
recorder wrote must agree with each other."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import orjson
import polars as pl
import zmq

from ipc.control import call
from ipc.pubsub import Subscriber
from services.mdclient import Stream, klines, publisher_endpoint, snapshot
from storage.query import HistoryQuery
from tests.integration.conftest import ROOT, Exchange
from tests.integration.test_marketdata import registry, wait_seq
from tests.integration.test_recorder import LIVE_BAR


def test_loadgen_trades_reach_subscribers_marketdata_and_history(
    exchange_factory: Callable[..., Exchange],
) -> None:
    instance = exchange_factory(
        "--set",
        "ports.md_pub=0",
        "--set",
        "processes.enabled=accounts,matching,marketdata,recorder",
    )
    result = instance.run("up")
    assert result.returncode == 0, f"up failed:\n{result.stdout}\n{result.stderr}"
    instruments = registry()
    names = [instrument.id for instrument in instruments]
    endpoint = publisher_endpoint(instance.home)
    stream = Stream(names, ["tick"], endpoint)
    # A subscriber that never reads, with a tiny queue: ZeroMQ drops for it, marketdata keeps up.
    stalled = Subscriber(zmq.Context.instance(), [endpoint], ["md."], recv_hwm=1)
    try:
        time.sleep(0.5)  # let the subscription reach the publisher; checked below anyway
        load = subprocess.run(
            [
                str(ROOT / "bin" / "loadgen"),
                "--direct",
                "--prefix",
                instance.prefix,
                "--home",
                str(instance.home),
                "--orders",
                "3000",
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=180,
            cwd=ROOT,
        )
        assert load.returncode == 0, load.stderr
        assert orjson.loads(load.stdout)["answered"] == 3000
        published = instance.status()["rings"]["execs.0"]["published"]
        wait_seq(instance, published)
        wait_seq(instance, published, "recorder")
        last_tick: dict[str, dict] = {}
        while (item := stream.receive(1.0)) is not None:
            last_tick[item[1]["instrument"]] = item[1]
    finally:
        stream.close()
        stalled.close()
    call(instance.endpoint("recorder"), "checkpoint", timeout=30)
    query = HistoryQuery(instance.home / "history")
    traded = (
        query.scan("trades")
        .group_by("instrument_id")
        .agg(pl.len().alias("count"), pl.col("qty").sum().alias("volume"))
        .sort("instrument_id")
        .collect()
    )
    assert traded.height > 0 and traded["count"].sum() > 100
    for index, count, volume in traded.rows():
        name = instruments.by_index(index).id
        quote = snapshot(name, instance.home)["quote"]
        assert quote["volume"] == volume
        assert last_tick[name]["volume"] == volume, "the last tick carries the day's volume"
        live = klines(name, 60, 1000, instance.home)
        rebuilt = query.klines(index, 60)
        assert rebuilt.select("ts_event", "open", "high", "low", "close", "volume").rows() == [
            tuple(bar[key] for key in LIVE_BAR) for bar in live
        ]
        ticks = query.scan("ticks").filter(pl.col("instrument_id") == index).collect()
        assert ticks.height == count
