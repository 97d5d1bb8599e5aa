"""The accounts core's state hash and invariant checks (docs/accounting.md §9).

Checks raise AssertionError: a broken identity is a bug, never a business outcome.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from engine.accounts.order import Order
from engine.enums import TimeCondition

if TYPE_CHECKING:
    from engine.accounts.core import AccountsCore


def state_hash(core: AccountsCore) -> str:
    """SHA-256 of every account, position, live order, mark, total and settlement result."""
    state = (
        tuple(core.accounts[a].state() for a in sorted(core.accounts)),
        tuple(sorted(core.marks.items())),
        core.next_order_id,
        tuple(sorted(core.transactions.items())),
        tuple(sorted(core.deposits.items())),
        tuple(sorted(core.withdrawals.items())),
        tuple(sorted(core.fees.items())),
        core.settlement.state(),
    )
    return hashlib.sha256(repr(state).encode()).hexdigest()


def check_invariants(core: AccountsCore) -> None:
    """Every account's totals equal their parts; the order indexes agree; money is conserved."""
    live: dict[int, Order] = {}
    for account in core.accounts.values():
        account.check(core.instruments)
        live.update(account.orders)
    if live.keys() != core.orders.keys():
        raise AssertionError("the core's live orders differ from the accounts' orders")
    day = {o for o, order in live.items() if order.time_condition is not TimeCondition.GTC}
    if day != core.day_orders:
        raise AssertionError("day-order set out of step")
    for order in live.values():
        if not order.live or order.remaining <= 0:
            raise AssertionError(f"order {order.order_id} is finished but still held")
    check_conservation(core)


def check_conservation(core: AccountsCore) -> None:
    """Σ balances + fees − deposits + withdrawals = 0 per currency; long = short per future.

    Every position is marked at the core's one mark per instrument, so the futures' profits
    cancel out exactly between the long and the short holders.
    """
    balances: dict[str, int] = {}
    volumes: dict[int, list[int]] = {}
    for account in core.accounts.values():
        for code in account.ledgers:
            balance = account.balance(code, core.terms, core.marks)
            balances[code] = balances.get(code, 0) + balance
        for index, position in account.positions.items():
            pair = volumes.setdefault(index, [0, 0])
            pair[0] += position.long.volume
            pair[1] += position.short.volume
    for code in set(balances) | set(core.deposits):
        total = (
            balances.get(code, 0)
            + core.fees.get(code, 0)
            - core.deposits.get(code, 0)
            + core.withdrawals.get(code, 0)
        )
        if total != 0:
            raise AssertionError(f"{code}: money not conserved, off by {total}")
    for index, (long, short) in volumes.items():
        if long != short:
            raise AssertionError(f"instrument {index}: long {long} != short {short}")
