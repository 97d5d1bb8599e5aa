"""Everything the accounts process rebuilds on start: the core and what the process keeps beside it.

The checkpoint is canonical JSON in two sections: `core` (`AccountsCore.export_state`, the
engine's format, docs/accounting.md §10) and `process` (per-ring sequences, the gateway each
account last spoke through, a settlement-prices request or instrument tables still being read,
query history).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import numpy as np

from engine.accounts.core import AccountsCore
from engine.accounts.events import OrderUpdated, TradeBooked
from engine.accounts.risk import RiskConfig
from engine.instruments import InstrumentRegistry
from ipc.records import Kind
from services.accounts_codec import CommandDecoder
from services.recovery import Streams
from storage.canonical import canonical_dumps, canonical_loads, pack_sections, unpack_sections

TRADES_KEPT = 1000
"""Most recent trades kept per account for the `trades` control query."""
UPDATES_KEPT = 100_000
"""Orders whose last update the `order` query can still show after they ended (oldest go)."""
_ORDER_ID = attrgetter("order_id")


@dataclass(frozen=True)
class InstrumentIds:
    """Instrument index → id over the core's registry (a picklable callable for the decoder)."""

    registry: InstrumentRegistry

    def __call__(self, index: int) -> str:
        return self.registry.by_index(index).id


@dataclass
class AccountsState:
    """The core, the cmd decoder (it holds requests split over records across reads), each
    ring's sequence, the gateway each account last spoke through, and query history."""

    core: AccountsCore
    decoder: CommandDecoder
    streams: Streams = field(default_factory=Streams)
    gateway_of: dict[int, int] = field(default_factory=dict)
    last_update: OrderedDict[int, OrderUpdated] = field(default_factory=OrderedDict)
    """Oldest first; past UPDATES_KEPT the oldest go. An OrderedDict: a plain dict finds its
    first key by scanning every slot deleted before it, so dropping the oldest was O(n) per
    drop once full (65% of accounts' CPU), and pruning in chunks stalled a batch for
    milliseconds; the OrderedDict's per-key upkeep (~2k instructions an order) is flat."""
    trades: dict[int, deque[TradeBooked]] = field(default_factory=dict)

    @classmethod
    def empty(cls, core: AccountsCore) -> AccountsState:
        return cls(core, CommandDecoder(InstrumentIds(core.instruments)))

    def remember(self, events: Sequence[object], kinds: np.ndarray[Any, Any]) -> None:
        """Keep each order's last update and each account's recent trades for the queries.

        `kinds` are the events' record kinds (their `events` batch): the updates are picked
        out and stored without a Python step per event.
        """
        pick = events.__getitem__
        updated = np.flatnonzero(kinds == Kind.ORDER_UPDATED).tolist()
        if updated:
            changed = list(map(pick, updated))
            updates = self.last_update
            updates.update(zip(map(_ORDER_ID, changed), changed, strict=True))
            while len(updates) > UPDATES_KEPT:
                updates.popitem(last=False)
        for event in map(pick, np.flatnonzero(kinds == Kind.TRADE_BOOKED).tolist()):
            account = event.account_id  # type: ignore[attr-defined]
            kept = self.trades.get(account)
            if kept is None:
                kept = self.trades[account] = deque(maxlen=TRADES_KEPT)
            kept.append(event)  # type: ignore[arg-type]

    def dumps(self) -> bytes:
        process = {
            "streams": self.streams.export(),
            "gateway_of": [[a, g] for a, g in self.gateway_of.items()],
            "pending_prices": [list(pair) for pair in self.decoder.pending],
            "pending_instruments": self.decoder.pending_chunks,
            "last_update": [list(u) for u in self.last_update.values()],
            "trades": [[a, [list(t) for t in kept]] for a, kept in self.trades.items()],
        }
        return pack_sections(
            {
                "core": canonical_dumps(self.core.export_state()),
                "process": canonical_dumps(process),
            }
        )

    @classmethod
    def loads(cls, data: bytes, registry: InstrumentRegistry, risk: RiskConfig) -> AccountsState:
        """The state `dumps` wrote, over `registry` (its currencies) and the configured risk."""
        sections = unpack_sections(data)
        core_state: Any = canonical_loads(sections["core"])
        process: Any = canonical_loads(sections["process"])
        state = cls.empty(AccountsCore.from_state(registry, core_state, risk, snapshots=False))
        state.streams = Streams.load(process["streams"])
        state.gateway_of = {a: g for a, g in process["gateway_of"]}
        state.decoder.pending = [tuple(pair) for pair in process["pending_prices"]]
        state.decoder.pending_chunks = process.get("pending_instruments", [])
        state.last_update = OrderedDict((u[1], OrderUpdated(*u)) for u in process["last_update"])
        state.trades = {
            a: deque((TradeBooked(*t) for t in kept), maxlen=TRADES_KEPT)
            for a, kept in process["trades"]
        }
        return state
