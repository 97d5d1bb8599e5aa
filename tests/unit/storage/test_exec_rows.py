"""The execs → trades mapping, with the real ring dtype, through the writer and a query."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.enums import Side
from ipc.records import EXEC, Kind
from storage.exec_rows import trade_rows
from storage.history import HistoryWriter
from storage.query import HistoryQuery

T0 = 1_763_769_600 * 1_000_000_000


def test_trades_from_exec_records(tmp_path: Path) -> None:
    batch = np.zeros(4, EXEC)
    batch["kind"] = [Kind.TRADE, Kind.ORDER_ACCEPTED, Kind.TRADE, Kind.BOOK_LEVEL]
    batch["seq"] = [10, 11, 12, 13]
    batch["ts_event"] = T0 + np.arange(4)
    batch["instrument"] = 3
    batch["trade_id"] = [1, 0, 2, 0]
    batch["price"] = [500, 501, 502, 503]
    batch["qty"] = [5, 6, 7, 8]
    batch["side"] = [Side.BUY, Side.SELL, Side.SELL, Side.BUY]
    batch["order_id"], batch["account"] = [100, 101, 102, 103], [1, 1, 2, 2]
    batch["maker_order_id"], batch["maker_account"] = [200, 0, 202, 0], [7, 0, 8, 0]
    rows = trade_rows(batch)
    assert rows["trade_id"].tolist() == [1, 2]
    assert rows["buy_order_id"].tolist() == [100, 202]
    assert rows["sell_order_id"].tolist() == [200, 102]
    assert rows["buy_account_id"].tolist() == [1, 8]
    assert rows["sell_account_id"].tolist() == [7, 2]
    assert rows["aggressor_side"].tolist() == [Side.BUY, Side.SELL]
    writer = HistoryWriter(tmp_path)
    writer.append("trades", rows, now_ns=T0)
    writer.flush()
    query = HistoryQuery(tmp_path)
    assert query.account_trades(8)["side"].to_list() == [Side.BUY]
    assert query.sql("SELECT SUM(qty) AS v FROM trades WHERE instrument = 3").item() == 12
