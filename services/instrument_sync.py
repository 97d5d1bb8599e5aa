"""A reader's instrument registry kept in step with accounts, which owns the definitions.

An admin create or update is applied by accounts first, then reaches matching (ADD_INSTRUMENT /
SET_INSTRUMENT_STATUS on `orders`), which writes an INSTRUMENT_STATUS_CHANGED exec where it
adopted the definition: ahead of every later record of that instrument on the same ring. A
reader of `execs` (marketdata, the recorder) that meets an index its registry lacks asks accounts
for the definitions (`instruments` on its control socket: id, tick, currency, kind) and applies
what each record says (status, reference prices, band) in ring order. The gateway adopts the
same answer with `adopt_definitions`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from engine.instruments import (
    NO_LIMIT,
    Instrument,
    InstrumentConfigError,
    InstrumentRegistry,
    parse_instrument,
)
from ipc.control import ControlError, call
from ipc.records import Kind
from services.columns import kind_table
from services.matching_codec import InstrumentChanged, band_from_limits, execs_to_events

log = logging.getLogger(__name__)

ASK_TIMEOUT_S = 1.0
RETRY_S = 0.5
PATIENCE_S = 30.0
"""How long a reader waits for accounts to tell it about an index it must learn: accounts may
be starting (`bin/exchange up` starts it after marketdata and the recorder). Past that the
reader raises; the supervisor restarts it and it re-reads the same records."""

_CHANGED = int(Kind.INSTRUMENT_STATUS_CHANGED)
_NAMING = kind_table([Kind.TRADE, Kind.BOOK_LEVEL, Kind.INSTRUMENT_STATUS_CHANGED])
"""The exec kinds whose instrument a reader must know to handle them."""


class InstrumentsUnavailable(RuntimeError):
    """Accounts did not answer about instruments the records name (a bug-level outage)."""


def adopt_definitions(registry: InstrumentRegistry, tables: Iterable[Mapping[str, Any]]) -> int:
    """Put accounts' definitions (`describe` tables with their `index`) into `registry`: new
    indexes appended, changed ones replaced. Returns how many changed. A table that does not
    parse stops the adoption there (indexes must stay dense) and is logged."""
    changed = 0
    for table in tables:
        index = int(table["index"])
        fields = {key: value for key, value in table.items() if key != "index"}
        try:
            instrument = parse_instrument(index, fields, registry.currencies)
            if registry.find(index) != instrument:
                registry.put(instrument)
                changed += 1
        except InstrumentConfigError as exc:
            log.error("instruments from %d on not adopted (no gaps): %s", index, exc)
            break
    return changed


def with_record(known: Instrument, change: InstrumentChanged) -> Instrument:
    """`known` with the status, reference prices and band an INSTRUMENT_STATUS_CHANGED carries
    (a band matching knows nothing of while there is no reference price is kept)."""
    pre_settlement, upper = change.pre_settlement, change.upper_limit
    keep_band = upper >= NO_LIMIT and pre_settlement <= 0
    return dataclasses.replace(
        known,
        status=change.status,
        pre_settlement=pre_settlement,
        pre_close=change.pre_close,
        band_e8=known.band_e8 if keep_band else band_from_limits(pre_settlement, upper),
    )


class InstrumentSync:
    """Learns the instruments an `execs` batch names before the batch is handled."""

    def __init__(self, registry: InstrumentRegistry, accounts: str | None) -> None:
        self.registry = registry
        self._accounts = accounts
        self._missing: set[int] = set()
        """Indexes accounts answered without: their records are dropped, not asked about again
        (a new INSTRUMENT_STATUS_CHANGED for one asks again)."""
        self.answered = accounts is None
        """Whether accounts has answered once (trivially so without an accounts process)."""

    def catch_up(self, timeout: float) -> bool:
        """Until accounts has answered once: ask it, if its control socket exists (it does not
        while `bin/exchange up` has not started it yet). A restarted reader thus knows every
        instrument accounts has, and its status, before any record names it."""
        if self.answered:
            return True
        assert self._accounts is not None
        socket = Path(self._accounts.removeprefix("ipc://"))
        return socket.exists() and self.learn(timeout)

    def learn(self, timeout: float = ASK_TIMEOUT_S) -> bool:
        """Adopt every definition accounts has; False when it did not answer (or there is no
        accounts process in this instance)."""
        if self._accounts is None:
            return False
        try:
            tables = call(self._accounts, "instruments", timeout=timeout)
        except ControlError as exc:
            log.info("accounts did not answer `instruments`: %s", exc)
            return False
        changed = adopt_definitions(self.registry, tables)
        if changed:
            log.info("adopted %d instrument definitions from accounts", changed)
        self._missing.clear()
        self.answered = True
        return True

    def apply(self, batch: np.ndarray[Any, Any]) -> list[int]:
        """Make the registry know every instrument `batch` names (asking accounts, patiently,
        for new ones), then apply its INSTRUMENT_STATUS_CHANGED records in order. Returns the
        indexes those records changed; records of indexes nobody knows stay unknown (dropped
        by `market_events`), logged once."""
        kinds, index = batch["kind"], batch["instrument"]
        beyond = index >= len(self.registry)
        if beyond.any():
            self._learn(kinds, index, beyond & _NAMING[kinds])
        changes = kinds == _CHANGED
        if not changes.any():
            return []
        touched = []
        for change in execs_to_events(batch[changes]):
            assert type(change) is InstrumentChanged
            known = self.registry.find(change.instrument_index)
            if known is not None:
                self.registry.put(with_record(known, change))
                touched.append(change.instrument_index)
        return touched

    def _learn(
        self, kinds: np.ndarray[Any, Any], index: np.ndarray[Any, Any], naming: np.ndarray[Any, Any]
    ) -> None:
        """Ask accounts about the indexes `naming` marks, unless it already answered without
        them and no new INSTRUMENT_STATUS_CHANGED announces one."""
        announced = set(index[naming & (kinds == _CHANGED)].tolist())
        unknown = set(index[naming].tolist()) - (self._missing - announced)
        if not unknown:
            return
        self._learn_patiently()
        self._missing |= {i for i in unknown if self.registry.find(i) is None}
        if self._missing & unknown:
            log.error("instruments %s are unknown to accounts", sorted(self._missing & unknown))

    def _learn_patiently(self) -> None:
        if self._accounts is None:
            return
        deadline = time.monotonic() + PATIENCE_S
        while not self.learn():
            if time.monotonic() >= deadline:
                raise InstrumentsUnavailable(
                    f"accounts did not answer `instruments` in {PATIENCE_S:.0f} s"
                )
            time.sleep(RETRY_S)
