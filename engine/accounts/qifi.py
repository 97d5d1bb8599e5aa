"""QIFI rendering: the one place integer money becomes QIFI's float fields, for the edge only.

Field names are QIFI's (account: pre_balance … risk_ratio; positions: volume_long_today …
margin). Spot holds are shown inside `frozen_margin`, so QIFI's identity
available = balance − margin − frozen_margin − frozen_commission holds in the rendering too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.accounts.account import Account
from engine.accounts.position import Position
from engine.instruments import Instrument, InstrumentRegistry


def render_account(
    account: Account, registry: InstrumentRegistry, marks: Mapping[int, int]
) -> dict[str, Any]:
    """`{account_cookie, accounts: {CUR: {...}}, positions: {id: {...}}, frozen}` as floats."""
    accounts: dict[str, Any] = {}
    for code in sorted(account.ledgers):
        ledger = account.ledgers[code]
        scale = registry.currencies[code].scale
        position_profit, float_profit = account.profits(code, registry, marks)
        balance = ledger.static_balance + position_profit
        values = {
            "pre_balance": ledger.pre_balance,
            "deposit": ledger.deposit,
            "withdraw": ledger.withdraw,
            "WithdrawQuota": max(0, ledger.available(position_profit)),
            "static_balance": ledger.static_balance,
            "close_profit": ledger.close_profit,
            "commission": ledger.commission,
            "premium": 0,
            "position_profit": position_profit,
            "float_profit": float_profit,
            "balance": balance,
            "margin": ledger.margin,
            "frozen_margin": ledger.frozen_margin + ledger.frozen_asset,
            "frozen_commission": ledger.frozen_commission,
            "frozen_premium": 0,
            "available": ledger.available(position_profit),
        }
        rendered: dict[str, Any] = {k: v / scale for k, v in values.items()}
        rendered["user_id"] = str(account.account_id)
        rendered["currency"] = code
        rendered["risk_ratio"] = ledger.margin / balance if balance > 0 else 0.0
        accounts[code] = rendered
    positions = {
        registry.by_index(index).id: render_position(
            account.account_id, position, registry.by_index(index), marks[index]
        )
        for index, position in sorted(account.positions.items())
    }
    return {
        "account_cookie": str(account.account_id),
        "accounts": accounts,
        "positions": positions,
        "frozen": account.frozen,
    }


def render_position(
    account_id: int, position: Position, instrument: Instrument, mark: int
) -> dict[str, Any]:
    """One QA_Position with QIFI's field names; prices are averages per lot and multiplier."""
    scale = instrument.currency.scale
    long, short = position.long, position.short
    long_value = instrument.notional(mark, long.volume)
    short_value = instrument.notional(mark, short.volume)
    unit = float(instrument.lot_size) * instrument.multiplier * scale

    def average(cost: int, volume: int) -> float:
        return cost / (volume * unit) if volume else 0.0

    return {
        "user_id": str(account_id),
        "exchange_id": instrument.exchange,
        "instrument_id": instrument.code,
        "volume_long_today": float(long.today),
        "volume_long_his": float(long.history),
        "volume_long": float(long.volume),
        "volume_long_frozen_today": float(long.frozen_today),
        "volume_long_frozen_his": float(long.frozen_history),
        "volume_long_frozen": float(long.frozen),
        "volume_long_yd": float(long.history),
        "volume_short_today": float(short.today),
        "volume_short_his": float(short.history),
        "volume_short": float(short.volume),
        "volume_short_frozen_today": float(short.frozen_today),
        "volume_short_frozen_his": float(short.frozen_history),
        "volume_short_frozen": float(short.frozen),
        "volume_short_yd": float(short.history),
        "pos_long_his": float(long.history),
        "pos_long_today": float(long.today),
        "pos_short_his": float(short.history),
        "pos_short_today": float(short.today),
        "open_price_long": average(long.open_cost, long.volume),
        "open_price_short": average(short.open_cost, short.volume),
        "open_cost_long": long.open_cost / scale,
        "open_cost_short": short.open_cost / scale,
        "position_price_long": average(long.position_cost, long.volume),
        "position_price_short": average(short.position_cost, short.volume),
        "position_cost_long": long.position_cost / scale,
        "position_cost_short": short.position_cost / scale,
        "last_price": float(instrument.ticks_to_price(mark)),
        "float_profit_long": (long_value - long.open_cost) / scale,
        "float_profit_short": (short.open_cost - short_value) / scale,
        "float_profit": position.float_profit(long_value, short_value) / scale,
        "position_profit_long": (long_value - long.position_cost) / scale,
        "position_profit_short": (short.position_cost - short_value) / scale,
        "position_profit": position.position_profit(long_value, short_value) / scale,
        "margin_long": long.margin / scale,
        "margin_short": short.margin / scale,
        "margin": position.margin / scale,
    }
