"""The history tables' Arrow schemas: one definition, used by the writer, the queries and the docs.

Every value is an integer, as everywhere inside shmex: `ts_event` in nanoseconds UTC, prices in
instrument ticks, quantities in lots, turnover in ticks × lots, enums as their `engine.enums`
values. Files are partitioned by `date` (UTC day of `ts_event`) and `instrument` (=
`instrument_id`); both also come back as columns when a query scans the tables. The
`external_*` tables hold other venues' trades and bars (the feeds process's) in those venues'
ticks and lots, with the decimal steps beside them as strings.
"""

from __future__ import annotations

import pyarrow as pa

BOOK_DEPTH = 5

_TS = pa.field("ts_event", pa.int64(), nullable=False)
_SEQ = pa.field("seq", pa.int64(), nullable=False)
_INSTRUMENT = pa.field("instrument_id", pa.int32(), nullable=False)


def _fields(*specs: tuple[str, pa.DataType]) -> list[pa.Field]:
    return [pa.field(name, kind, nullable=False) for name, kind in specs]


_PRINT = (
    ("trade_id", pa.int64()),
    ("price", pa.int64()),
    ("qty", pa.int64()),
    ("aggressor_side", pa.int8()),
)
"""A trade print's columns, local or external."""

_BAR = (
    ("period_s", pa.int32()),
    ("open", pa.int64()),
    ("high", pa.int64()),
    ("low", pa.int64()),
    ("close", pa.int64()),
    ("volume", pa.int64()),
    ("turnover", pa.int64()),
)
"""A K-line's columns, local or external."""


TRADES = pa.schema(
    [
        _TS,
        _SEQ,
        _INSTRUMENT,
        *_fields(
            *_PRINT,
            ("buy_order_id", pa.int64()),
            ("sell_order_id", pa.int64()),
            ("buy_account_id", pa.int64()),
            ("sell_account_id", pa.int64()),
        ),
    ]
)

ORDER_EVENTS = pa.schema(
    [
        _TS,
        _SEQ,
        _INSTRUMENT,
        *_fields(
            ("order_id", pa.int64()),
            ("account_id", pa.int64()),
            ("status", pa.int8()),
            ("side", pa.int8()),
            ("offset", pa.int8()),
            ("order_type", pa.int8()),
            ("price", pa.int64()),
            ("qty", pa.int64()),
            ("filled_qty", pa.int64()),
            ("leaves_qty", pa.int64()),
            ("result_code", pa.int32()),
            ("cancel_reason", pa.int8()),
        ),
    ]
)

TICKS = pa.schema(
    [
        _TS,
        _SEQ,
        _INSTRUMENT,
        *_fields(
            ("price", pa.int64()),
            ("qty", pa.int64()),
            ("aggressor_side", pa.int8()),
            ("volume", pa.int64()),
            ("turnover", pa.int64()),
            ("open_interest", pa.int64()),
            ("bid_price", pa.int64()),
            ("bid_qty", pa.int64()),
            ("ask_price", pa.int64()),
            ("ask_qty", pa.int64()),
        ),
    ]
)

BOOK_SNAPSHOTS = pa.schema(
    [
        _TS,
        _INSTRUMENT,
        *_fields(
            *(
                (f"{side}_{what}_{level}", pa.int64())
                for side in ("bid", "ask")
                for what in ("price", "qty")
                for level in range(1, BOOK_DEPTH + 1)
            )
        ),
    ]
)

KLINES = pa.schema(
    [
        _TS,
        _INSTRUMENT,
        *_fields(*_BAR, ("open_oi", pa.int64()), ("close_oi", pa.int64())),
    ]
)

_EXTERNAL = [
    pa.field("external_id", pa.string(), nullable=False),
    pa.field("price_tick", pa.string(), nullable=False),
    pa.field("lot_size", pa.string(), nullable=False),
]
"""Other venues' instruments (gateway/feeds): the id (`BINANCE.BTCUSDT`) and the decimal step
of one price tick and one lot, so ticks and lots read as prices and quantities. Their
`instrument_id` is `storage.external_rows.external_instrument_id(external_id)`, a stable
negative int32 (local instruments are ≥ 0), which names the partition."""

EXTERNAL_TRADES = pa.schema(
    [
        _TS,
        pa.field("ts_recv", pa.int64(), nullable=False),
        _INSTRUMENT,
        *_EXTERNAL,
        *_fields(*_PRINT, ("quality", pa.int8())),
    ]
)

EXTERNAL_KLINES = pa.schema(
    [
        _TS,
        _INSTRUMENT,
        *_EXTERNAL,
        *_fields(*_BAR),
    ]
)

TABLES: dict[str, pa.Schema] = {
    "trades": TRADES,
    "order_events": ORDER_EVENTS,
    "ticks": TICKS,
    "book_snapshots": BOOK_SNAPSHOTS,
    "klines": KLINES,
    "external_trades": EXTERNAL_TRADES,
    "external_klines": EXTERNAL_KLINES,
}

SORT_KEYS: dict[str, tuple[str, ...]] = {
    "trades": ("ts_event", "trade_id"),
    "order_events": ("ts_event", "seq"),
    "ticks": ("ts_event", "seq"),
    "book_snapshots": ("ts_event",),
    "klines": ("period_s", "ts_event"),
    "external_trades": ("ts_event", "trade_id"),
    "external_klines": ("period_s", "ts_event"),
}
"""The order rows are kept in when files are compacted (a stable sort, so ties keep their order)."""
