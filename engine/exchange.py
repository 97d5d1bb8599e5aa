"""Exchange: the accounts core wired synchronously to the matching engine.

What the multiprocess exchange does through rings, done by function calls in one thread, so
tests, journal replay and benchmarks drive the whole domain core with one `apply(command)`.
Accounts and matching each keep their own instrument registry, as the two processes do; admin
changes reach matching through UpsertInstrument like they would through the orders ring.
"""

from __future__ import annotations

from typing import Any

from engine.accounts.commands import AccountsCommand
from engine.accounts.core import AccountsCore
from engine.accounts.risk import RiskConfig
from engine.instruments import InstrumentRegistry
from engine.matching.commands import MatchingCommand
from engine.matching.engine import MatchingEngine


def _copy(registry: InstrumentRegistry) -> InstrumentRegistry:
    return InstrumentRegistry(registry.currencies, list(registry))


class Exchange:
    """AccountsCore + MatchingEngine; `apply` runs a command and everything it causes."""

    __slots__ = ("accounts", "matching")

    def __init__(
        self,
        instruments: InstrumentRegistry,
        risk: RiskConfig | None = None,
        *,
        snapshots: bool = True,
    ) -> None:
        self.accounts = AccountsCore(_copy(instruments), risk, snapshots=snapshots)
        self.matching = MatchingEngine(_copy(instruments))

    def apply(self, command: AccountsCommand | MatchingCommand) -> list[Any]:
        """Events in causal order: each matching event, followed by the accounts events it caused.

        The accounts' own answer to the command comes first. Matching commands are applied in
        the order the core produced them (a FIFO, like the orders ring). A matching command
        given here (SetPhase, RunAuction: the call auction an admin runs at the open) goes
        straight to matching, and accounts books what it causes. Both halves' handler tables
        are used directly: this loop runs for every command of a benchmark or a replay.
        """
        accounts = self.accounts
        answer = accounts.commands.get(type(command))
        if answer is None:
            pending: list[Any] = [command]
            events: list[Any] = []
        else:
            pending, events = answer(command)
        handlers = accounts.execs
        matching = self.matching.handlers
        append = events.append
        for command_to_matching in pending:  # grows while iterating: a FIFO without a deque
            for event in matching[type(command_to_matching)](command_to_matching):
                append(event)
                handler = handlers.get(type(event))
                if handler is not None:
                    more = handler(event, events)  # appends what the event caused
                    if more:
                        pending.extend(more)
        return events

    def export_state(self) -> dict[str, Any]:
        """Both halves' checkpoints: {"accounts": ..., "matching": ...} (orjson-able)."""
        return {
            "accounts": self.accounts.export_state(),
            "matching": self.matching.export_state(),
        }

    @classmethod
    def from_state(
        cls,
        instruments: InstrumentRegistry,
        state: dict[str, Any],
        risk: RiskConfig | None = None,
        *,
        snapshots: bool = True,
    ) -> Exchange:
        """The exchange `export_state` described; matching adopts the accounts' instruments."""
        exchange = cls.__new__(cls)
        exchange.accounts = AccountsCore.from_state(
            _copy(instruments), state["accounts"], risk, snapshots=snapshots
        )
        exchange.matching = MatchingEngine.from_state(
            _copy(exchange.accounts.instruments), state["matching"]
        )
        return exchange

    def state_hash(self) -> str:
        """One digest of both halves (accounts and books)."""
        return f"{self.accounts.state_hash()}:{self.matching.state_hash()}"

    def check_invariants(self) -> None:
        self.accounts.check_invariants()
        self.matching.check_invariants()
