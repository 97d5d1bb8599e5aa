"""Everything the accounts process rebuilds on start: the core and what the process keeps beside it.

The core (`AccountsCore`) has no exported state yet, so its checkpoint is a pickle of these
objects, written and read only by the same accounts code (never sent to another process and
checked on load against the state hash written beside it). When the core grows an
`export_state`, only `dumps`/`loads` change.
"""

from __future__ import annotations

import pickle
from collections import deque
from dataclasses import dataclass, field

from engine.accounts.core import AccountsCore
from engine.accounts.events import OrderUpdated, TradeBooked
from engine.instruments import InstrumentRegistry
from services.accounts_codec import CommandDecoder
from services.recovery import Streams

TRADES_KEPT = 1000
"""Most recent trades kept per account for the `trades` control query."""
UPDATES_KEPT = 100_000
"""Orders whose last update the `order` query can still show after they ended (oldest go)."""


@dataclass(frozen=True)
class InstrumentIds:
    """Instrument index → id over the core's registry (a picklable callable for the decoder)."""

    registry: InstrumentRegistry

    def __call__(self, index: int) -> str:
        return self.registry.by_index(index).id


@dataclass
class AccountsState:
    """The core, the cmd decoder (it holds a settlement-prices request across reads), each
    ring's sequence, the gateway each account last spoke through, and query history."""

    core: AccountsCore
    decoder: CommandDecoder
    streams: Streams = field(default_factory=Streams)
    gateway_of: dict[int, int] = field(default_factory=dict)
    last_update: dict[int, OrderUpdated] = field(default_factory=dict)
    trades: dict[int, deque[TradeBooked]] = field(default_factory=dict)

    @classmethod
    def empty(cls, core: AccountsCore) -> AccountsState:
        return cls(core, CommandDecoder(InstrumentIds(core.instruments)))

    def remember(self, events: list[object]) -> None:
        """Keep each order's last update and each account's recent trades for the queries."""
        updates = self.last_update
        for event in events:
            kind = type(event)
            if kind is OrderUpdated:
                updates[event.order_id] = event  # type: ignore[attr-defined]
            elif kind is TradeBooked:
                account = event.account_id  # type: ignore[attr-defined]
                kept = self.trades.get(account)
                if kept is None:
                    kept = self.trades[account] = deque(maxlen=TRADES_KEPT)
                kept.append(event)  # type: ignore[arg-type]
        while len(updates) > UPDATES_KEPT:
            del updates[next(iter(updates))]

    def dumps(self) -> bytes:
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def loads(data: bytes) -> AccountsState:
        state = pickle.loads(data)
        if not isinstance(state, AccountsState):
            raise TypeError(f"accounts checkpoint holds {type(state).__name__}")
        return state
