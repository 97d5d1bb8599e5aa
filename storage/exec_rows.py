"""Rows for the history tables from `execs` ring records, whole batches at a time (no loops).

The recorder reads `ipc.records.EXEC` batches; this maps them to the `trades` table's columns
once, here, beside the schema, so the mapping is tested with the real dtype.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.enums import OrderStatus, Side
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


_STATUS_OF_KIND = np.zeros(max(Kind) + 1, dtype=np.int8)
_STATUS_OF_KIND[Kind.ORDER_ACCEPTED] = OrderStatus.ACCEPTED
_STATUS_OF_KIND[Kind.ORDER_AMENDED] = OrderStatus.ACCEPTED
_STATUS_OF_KIND[Kind.ORDER_CANCELED] = OrderStatus.CANCELLED
_STATUS_OF_KIND[Kind.ORDER_REJECTED] = OrderStatus.REJECTED
_ORDER_KINDS = np.flatnonzero(_STATUS_OF_KIND)


def order_event_rows(execs: np.ndarray[Any, Any]) -> dict[str, np.ndarray[Any, Any]]:
    """The `order_events` columns for an `execs` batch, in ring order.

    One row per accept, amend, cancel and reject, and one per leg of a TRADE (taker first,
    then maker, with the same `seq`). `qty` is the lots the event is about (ordered, canceled,
    filled), `filled_qty` the lots this event filled, `leaves_qty` what stays open. Execs carry
    no offset or order type, so those columns are 0 (NONE).
    """
    orders = execs[np.isin(execs["kind"], _ORDER_KINDS)]
    trades = execs[execs["kind"] == Kind.TRADE]
    opposite = np.where(trades["side"] == Side.BUY, Side.SELL, Side.BUY)
    parts = [
        (orders, orders["order_id"], orders["account"], orders["side"], orders["leaves_qty"]),
        (trades, trades["order_id"], trades["account"], trades["side"], trades["leaves_qty"]),
        (trades, trades["maker_order_id"], trades["maker_account"], opposite,
         trades["maker_leaves_qty"]),
    ]  # fmt: skip
    kinds = np.concatenate([part[0]["kind"] for part in parts])
    leaves = np.concatenate([part[4] for part in parts]).astype(np.int64)
    is_fill = kinds == Kind.TRADE
    status = np.where(
        is_fill,
        np.where(leaves == 0, OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED),
        _STATUS_OF_KIND[kinds],
    )
    rows = np.concatenate([part[0] for part in parts])
    qty = rows["qty"].astype(np.int64)
    columns = {
        "ts_event": rows["ts_event"].astype(np.int64),
        "seq": rows["seq"].astype(np.int64),
        "instrument_id": rows["instrument"].astype(np.int32),
        "order_id": np.concatenate([part[1] for part in parts]).astype(np.int64),
        "account_id": np.concatenate([part[2] for part in parts]).astype(np.int64),
        "status": status.astype(np.int8),
        "side": np.concatenate([part[3] for part in parts]).astype(np.int8),
        "offset": np.zeros(len(rows), np.int8),
        "order_type": np.zeros(len(rows), np.int8),
        "price": rows["price"].astype(np.int64),
        "qty": np.where(kinds == Kind.ORDER_REJECTED, 0, qty),
        "filled_qty": np.where(is_fill, qty, 0),
        "leaves_qty": np.where(kinds == Kind.ORDER_CANCELED, 0, leaves),
        "result_code": rows["code"].astype(np.int32),
        "cancel_reason": rows["reason"].astype(np.int8),
    }
    order = np.argsort(columns["seq"], kind="stable")
    return {name: values[order] for name, values in columns.items()}
