"""Rows for the history tables from `execs` ring records, whole batches at a time (no loops).

The recorder reads `ipc.records.EXEC` batches; this maps them to the `trades` table's columns
once, here, beside the schema, so the mapping is tested with the real dtype.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.enums import Side
from ipc.records import Kind


def trade_rows(execs: np.ndarray[Any, Any]) -> dict[str, np.ndarray[Any, Any]]:
    """The `trades` columns for the TRADE records of an `execs` batch (other kinds skipped).

    A TRADE record is written from the taker's side: `side` is the taker's, the maker's order
    and account ride along; the buyer and seller follow from the taker's side.
    """
    trades = execs[execs["kind"] == Kind.TRADE]
    taker_buys = trades["side"] == Side.BUY
    return {
        "ts_event": trades["ts_event"].astype(np.int64),
        "seq": trades["seq"].astype(np.int64),
        "instrument_id": trades["instrument"].astype(np.int32),
        "trade_id": trades["trade_id"].astype(np.int64),
        "price": trades["price"].astype(np.int64),
        "qty": trades["qty"].astype(np.int64),
        "aggressor_side": trades["side"].astype(np.int8),
        "buy_order_id": np.where(taker_buys, trades["order_id"], trades["maker_order_id"]),
        "sell_order_id": np.where(taker_buys, trades["maker_order_id"], trades["order_id"]),
        "buy_account_id": np.where(taker_buys, trades["account"], trades["maker_account"]).astype(
            np.int64
        ),
        "sell_account_id": np.where(taker_buys, trades["maker_account"], trades["account"]).astype(
            np.int64
        ),
    }
