"""Forced liquidation: the closing orders that flatten an account (market, IOC, at the band).

Volume already frozen by the account's own close orders is left to those orders; everything
else is closed, in chunks of the instrument's max_qty, with the offsets its close-today rule
needs (SHFE: CLOSE for history, CLOSETODAY for today; otherwise one CLOSE).
"""

from __future__ import annotations

from engine.accounts.account import Account
from engine.accounts.commands import SubmitOrder
from engine.enums import (
    CloseTodayRule,
    InstrumentStatus,
    Offset,
    OrderType,
    Side,
    TimeCondition,
)
from engine.instruments import Instrument, InstrumentRegistry


def closing_orders(account: Account, registry: InstrumentRegistry, ts: int) -> list[SubmitOrder]:
    """Orders (request id 0) closing every free lot of every trading instrument.

    Instruments by index; on each, the short side first (BUY closers), then the long side.
    """
    orders: list[SubmitOrder] = []
    for index in sorted(account.positions):
        instrument = registry.by_index(index)
        if instrument.status is not InstrumentStatus.TRADING:
            continue
        position = account.positions[index]
        for closer in (Side.BUY, Side.SELL):
            side = position.side(closer.opposite)
            price = instrument.upper_limit if closer is Side.BUY else instrument.lower_limit
            for offset, qty in _offsets(instrument, side.closable_history, side.closable_today):
                while qty > 0:
                    chunk = min(qty, instrument.max_qty)
                    qty -= chunk
                    orders.append(
                        SubmitOrder(
                            request_id=0,
                            account_id=account.account_id,
                            instrument_index=index,
                            side=closer,
                            offset=offset,
                            price=price,
                            qty=chunk,
                            order_type=OrderType.MARKET,
                            time_condition=TimeCondition.IOC,
                            ts=ts,
                        )
                    )
    return orders


def _offsets(instrument: Instrument, history: int, today: int) -> list[tuple[Offset, int]]:
    """The close offsets that take `history` and `today` lots under the instrument's rule."""
    if instrument.close_today_rule is CloseTodayRule.SHFE:
        return [(o, q) for o, q in ((Offset.CLOSE, history), (Offset.CLOSETODAY, today)) if q]
    return [(Offset.CLOSE, history + today)] if history + today else []
