"""The recorder process: reads `execs` with its own cursor and counts what it sees, by kind.

Its history work (Parquet through storage/) comes with the durability issue; today it proves
the path end to end: a cursor that survives restarts, counts in `status`, a periodic summary.
"""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

import numpy as np

from ipc.records import Kind
from services.process import Service, main
from services.topology import execs_rings

log = logging.getLogger(__name__)

_KIND_SLOTS = max(Kind) + 1


class Recorder(Service):
    name: ClassVar[str] = "recorder"

    def inputs(self) -> list[str]:
        return execs_rings(self.config)

    def start(self) -> None:
        self._counts = np.zeros(_KIND_SLOTS, dtype=np.int64)
        self._last_seq = 0
        self._summary_s = float(self.config["processes"]["status_interval_s"])
        self._next_summary = time.monotonic() + self._summary_s
        self._logged_total = 0

    def handle(self, ring: str, batch: np.ndarray[Any, Any]) -> None:
        kinds = batch["kind"].astype(np.int64)
        self._counts += np.bincount(np.minimum(kinds, _KIND_SLOTS - 1), minlength=_KIND_SLOTS)
        self._last_seq = int(batch["seq"][-1])

    def counts(self) -> dict[str, int]:
        """Records seen per kind name (unknown kinds are counted under their number)."""
        out: dict[str, int] = {}
        for value in np.flatnonzero(self._counts):
            try:
                label = Kind(int(value)).name
            except ValueError:
                label = str(int(value))
            out[label] = int(self._counts[value])
        return out

    def tick(self, now_ns: int) -> None:
        if time.monotonic() < self._next_summary:
            return
        self._next_summary = time.monotonic() + self._summary_s
        total = int(self._counts.sum())
        if total != self._logged_total:
            self._logged_total = total
            log.info("summary", extra={"fields": {"total": total, **self.counts()}})

    def status(self) -> dict[str, Any]:
        return {
            "counts": self.counts(),
            "total": int(self._counts.sum()),
            "last_seq": self._last_seq,
        }

    def stop(self) -> None:
        log.info(
            "final counts", extra={"fields": {"total": int(self._counts.sum()), **self.counts()}}
        )


if __name__ == "__main__":
    raise SystemExit(main(Recorder))
