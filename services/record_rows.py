"""Whole records as Python rows, so a process edge builds a batch with one `np.array(rows)`.

Setting fields one by one on a structured array costs about a microsecond each; building
full tuples (padding included) and converting once is several times cheaper, and reading
goes the other way with one `.tolist()`. `Rows` knows one layout's field positions and a
zeroed template row with the version set.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ipc.records import RECORD_VERSION, Kind


class Rows:
    """Row building and field positions for one record layout."""

    def __init__(self, dtype: np.dtype[Any]) -> None:
        self.dtype = dtype
        names = dtype.names or ()
        self.index: dict[str, int] = {name: i for i, name in enumerate(names)}
        template: list[Any] = []
        for name in names:
            sub = dtype.fields[name][0]  # type: ignore[index]
            template.append(
                bytes(sub.itemsize) if sub.kind == "V" else b"" if sub.kind == "S" else 0
            )
        template[self.index["version"]] = RECORD_VERSION
        self._template = template

    def row(self, kind: Kind, ts_event: int, **fields: Any) -> list[Any]:
        """A full row: header kind and ts_event, the given fields, zeros elsewhere."""
        row = self._template.copy()
        row[0] = kind
        row[self.index["ts_event"]] = ts_event
        for name, value in fields.items():
            row[self.index[name]] = value
        return row

    def array(self, rows: Iterable[Sequence[Any]]) -> np.ndarray[Any, Any]:
        return np.array([tuple(row) for row in rows], dtype=self.dtype)

    def get(self, row: Sequence[Any], name: str) -> Any:
        return row[self.index[name]]


def number(batch: np.ndarray[Any, Any], source: int, first_seq: int, ts_init: int) -> None:
    """Stamp a batch's writer id, consecutive sequence numbers and write time, in place."""
    batch["source"] = source
    batch["seq"] = np.arange(first_seq, first_seq + len(batch))
    batch["ts_init"] = ts_init
