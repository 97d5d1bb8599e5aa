"""Pins the layout of every record: a change here is a wire-format change (bump RECORD_VERSION)."""

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.enums import Side
from ipc import records
from ipc.records import Kind

HEADER = [
    ("kind", 0, "<u2"),
    ("version", 2, "|u1"),
    ("flags", 3, "|u1"),
    ("source", 4, "<u4"),
    ("seq", 8, "<i8"),
    ("ts_event", 16, "<i8"),
    ("ts_init", 24, "<i8"),
]

LAYOUTS: dict[str, tuple[int, list[tuple[str, int, str]]]] = {
    "CMD": (
        128,
        [
            ("request_id", 32, "<u8"),
            ("account", 40, "<i4"),
            ("instrument", 44, "<i4"),
            ("order_id", 48, "<i8"),
            ("client_order_id", 56, "<i8"),
            ("price", 64, "<i8"),
            ("qty", 72, "<i8"),
            ("min_qty", 80, "<i8"),
            ("amount", 88, "<i8"),
            ("txn_id", 96, "<i8"),
            ("side", 104, "|u1"),
            ("offset", 105, "|u1"),
            ("order_type", 106, "|u1"),
            ("time_condition", 107, "|u1"),
            ("volume_condition", 108, "|u1"),
            ("self_trade", 109, "|u1"),
            ("frozen", 110, "|u1"),
            ("pad0", 111, "|V1"),
            ("currency", 112, "|S8"),
            ("trading_day", 120, "<i4"),
            ("reserved", 124, "|V4"),
        ],
    ),
    "CMD_INSTRUMENT": (
        128,
        [
            ("request_id", 32, "<u8"),
            ("instrument", 40, "<i4"),
            ("price_decimals", 44, "|u1"),
            ("instrument_kind", 45, "|u1"),
            ("status", 46, "|u1"),
            ("close_today_rule", 47, "|u1"),
            ("name", 48, "|S32"),
            ("multiplier", 80, "<i8"),
            ("tick_size", 88, "<i8"),
            ("margin_rate", 96, "<i8"),
            ("commission_rate", 104, "<i8"),
            ("limit_up_rate", 112, "<i4"),
            ("limit_down_rate", 116, "<i4"),
            ("reference_price", 120, "<i8"),
        ],
    ),
    "ORDER": (
        128,
        [
            ("order_id", 32, "<i8"),
            ("account", 40, "<i4"),
            ("instrument", 44, "<i4"),
            ("price", 48, "<i8"),
            ("qty", 56, "<i8"),
            ("min_qty", 64, "<i8"),
            ("side", 72, "|u1"),
            ("offset", 73, "|u1"),
            ("order_type", 74, "|u1"),
            ("time_condition", 75, "|u1"),
            ("volume_condition", 76, "|u1"),
            ("self_trade", 77, "|u1"),
            ("status", 78, "|u1"),
            ("reason", 79, "|u1"),
            ("limit_up", 80, "<i8"),
            ("limit_down", 88, "<i8"),
            ("request_id", 96, "<u8"),
            ("trading_day", 104, "<i4"),
            ("phase", 108, "|u1"),
            ("pad0", 109, "|V3"),
            ("max_qty", 112, "<i8"),
            ("reserved", 120, "|V8"),
        ],
    ),
    "EXEC": (
        128,
        [
            ("order_id", 32, "<i8"),
            ("account", 40, "<i4"),
            ("instrument", 44, "<i4"),
            ("price", 48, "<i8"),
            ("qty", 56, "<i8"),
            ("leaves_qty", 64, "<i8"),
            ("maker_order_id", 72, "<i8"),
            ("maker_account", 80, "<i4"),
            ("code", 84, "<u2"),
            ("side", 86, "|u1"),
            ("reason", 87, "|u1"),
            ("maker_leaves_qty", 88, "<i8"),
            ("trade_id", 96, "<i8"),
            ("level_orders", 104, "<i4"),
            ("status", 108, "|u1"),
            ("phase", 109, "|u1"),
            ("taker_offset", 110, "|u1"),
            ("maker_offset", 111, "|u1"),
            ("old_price", 112, "<i8"),
            ("old_qty", 120, "<i8"),
        ],
    ),
    "EVENT": (
        128,
        [
            ("request_id", 32, "<u8"),
            ("account", 40, "<i4"),
            ("instrument", 44, "<i4"),
            ("order_id", 48, "<i8"),
            ("client_order_id", 56, "<i8"),
            ("price", 64, "<i8"),
            ("qty", 72, "<i8"),
            ("filled_qty", 80, "<i8"),
            ("trade_id", 88, "<i8"),
            ("commission", 96, "<i8"),
            ("code", 104, "<u2"),
            ("status", 106, "|u1"),
            ("side", 107, "|u1"),
            ("offset", 108, "|u1"),
            ("reason", 109, "|u1"),
            ("pad0", 110, "|V2"),
            ("close_profit", 112, "<i8"),
            ("risk_ratio", 120, "<i8"),
        ],
    ),
    "EVENT_ANSWER": (
        128,
        [
            ("request_id", 32, "<u8"),
            ("account", 40, "<i4"),
            ("code", 44, "<u2"),
            ("pad0", 46, "|V2"),
            ("order_id", 48, "<i8"),
            ("value", 56, "<i8"),
            ("message", 64, "|S64"),
        ],
    ),
    "EVENT_ACCOUNT": (
        128,
        [
            ("request_id", 32, "<u8"),
            ("account", 40, "<i4"),
            ("pad0", 44, "|V4"),
            ("currency", 48, "|S8"),
            ("balance", 56, "<i8"),
            ("available", 64, "<i8"),
            ("margin", 72, "<i8"),
            ("frozen_margin", 80, "<i8"),
            ("frozen_commission", 88, "<i8"),
            ("position_profit", 96, "<i8"),
            ("close_profit", 104, "<i8"),
            ("commission", 112, "<i8"),
            ("reserved", 120, "|V8"),
        ],
    ),
    "EVENT_POSITION": (
        128,
        [
            ("request_id", 32, "<u8"),
            ("account", 40, "<i4"),
            ("instrument", 44, "<i4"),
            ("long_today", 48, "<i8"),
            ("long_history", 56, "<i8"),
            ("short_today", 64, "<i8"),
            ("short_history", 72, "<i8"),
            ("long_frozen", 80, "<i8"),
            ("short_frozen", 88, "<i8"),
            ("margin", 96, "<i8"),
            ("reserved", 104, "|V24"),
        ],
    ),
    "MD": (
        64,
        [
            ("instrument", 32, "<i4"),
            ("side", 36, "|u1"),
            ("level", 37, "|u1"),
            ("pad0", 38, "|V2"),
            ("level_orders", 40, "<i4"),
            ("pad1", 44, "|V4"),
            ("price", 48, "<i8"),
            ("qty", 56, "<i8"),
        ],
    ),
}


def _fields(dtype: np.dtype[Any]) -> list[tuple[str, int, str]]:
    return [(name, off, sub.str) for name, (sub, off, *_) in dtype.fields.items()]


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_layout_is_pinned(name: str) -> None:
    size, body = LAYOUTS[name]
    dtype = getattr(records, name)
    assert dtype.itemsize == size
    assert _fields(dtype) == HEADER + body


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_every_multibyte_field_is_little_endian(name: str) -> None:
    dtype = getattr(records, name)
    for field, (sub, _off, *_rest) in dtype.fields.items():
        assert sub.str[0] in ("<", "|"), field


def test_every_kind_has_a_layout_of_its_rings_size() -> None:
    for kind in Kind:
        if kind is Kind.NONE:
            with pytest.raises(ValueError):
                records.dtype_of(kind)
            continue
        dtype = records.dtype_of(kind)
        band = {1: "cmd", 2: "orders", 3: "execs", 4: "events", 5: "md"}[kind // 100]
        assert dtype.itemsize == records.RING_DTYPES[band].itemsize
        assert dtype.fields["kind"][1] == 0


def test_ring_dtype_by_name() -> None:
    assert records.ring_dtype("cmd.3") is records.CMD
    assert records.ring_dtype("orders.0") is records.ORDER
    assert records.ring_dtype("execs") is records.EXEC
    with pytest.raises(ValueError, match="unknown ring"):
        records.ring_dtype("bogus")


def test_second_view_reads_the_wide_payload_by_kind() -> None:
    batch = records.new_batch(records.CMD, 3)
    batch["kind"] = [Kind.PLACE_ORDER, Kind.INSTRUMENT_CREATE, Kind.CANCEL_ORDER]
    wide = batch[1:2].view(records.CMD_INSTRUMENT)
    wide["name"] = b"CFFEX.IF2501"
    wide["multiplier"] = 300
    wide["margin_rate"] = 10_000_000
    picked = batch[batch["kind"] == Kind.INSTRUMENT_CREATE].view(records.CMD_INSTRUMENT)
    assert picked["name"][0] == b"CFFEX.IF2501"
    assert picked["multiplier"][0] == 300
    assert batch["version"].tolist() == [records.RECORD_VERSION] * 3
    assert batch["price"][0] == 0


def test_make_and_describe_round_trip() -> None:
    record = records.make(
        Kind.PLACE_ORDER, request_id=7, account=2, instrument=1, price=19000, qty=3, side=Side.BUY
    )
    assert record.dtype == records.CMD
    described = records.describe(record)
    assert described["kind"] == "PLACE_ORDER"
    assert (described["price"], described["qty"], described["side"]) == (19000, 3, Side.BUY)
    assert "reserved" not in described and "pad0" not in described


def test_describe_views_wide_kinds_and_survives_garbage() -> None:
    record = records.make(Kind.ACCOUNT_UPDATED, account=5, balance=100_000_00)
    as_event = np.asarray(record).reshape(1).view(records.EVENT)[0]
    assert records.describe(as_event)["balance"] == 100_000_00
    junk = np.zeros(1, dtype=records.EXEC)
    junk["kind"] = 999
    assert records.describe(junk[0])["kind"] == 999


def test_zeroed_slot_is_no_valid_kind_or_side() -> None:
    slot = np.zeros(1, dtype=records.ORDER)[0]
    assert slot["kind"] == Kind.NONE
    assert slot["side"] == Side.NONE


def test_docs_table_matches_every_layout() -> None:
    text = (Path(__file__).resolve().parents[3] / "docs" / "records.md").read_text()
    for name in LAYOUTS:
        for field, (sub, offset, *_rest) in getattr(records, name).fields.items():
            assert f"| {offset} | `{sub.str}` | `{field}` |" in text, (name, field)
    for kind in Kind:
        if kind is not Kind.NONE:
            assert f"| {int(kind)} | `{kind.name}` |" in text
