"""The engine's vocabulary of enumerations.

Every enum has explicit values and 0 = NONE, so that a zeroed shared-memory slot never
decodes as a valid BUY or LIMIT order (shared/STYLE.md rule 2).
"""

from enum import IntEnum


class Side(IntEnum):
    NONE = 0
    BUY = 1
    SELL = 2

    @property
    def opposite(self) -> "Side":
        return Side.SELL if self is Side.BUY else Side.BUY


class Offset(IntEnum):
    """Futures offset: open a position, or close one (history first / today / yesterday)."""

    NONE = 0
    OPEN = 1
    CLOSE = 2
    CLOSETODAY = 3
    CLOSEYESTERDAY = 4


class OrderType(IntEnum):
    NONE = 0
    LIMIT = 1
    MARKET = 2  # IOC at the band limit


class TimeCondition(IntEnum):
    NONE = 0
    GFD = 1  # good for day: expires at settlement
    GTC = 2
    IOC = 3


class VolumeCondition(IntEnum):
    NONE = 0
    ANY = 1
    MIN = 2  # at least min_qty must fill immediately, else nothing
    ALL = 3  # fill-or-kill


class OrderStatus(IntEnum):
    NONE = 0
    PENDING = 1
    ACCEPTED = 2
    PARTIALLY_FILLED = 3
    FILLED = 4
    CANCELLED = 5
    REJECTED = 6


class CancelReason(IntEnum):
    NONE = 0
    USER = 1
    IOC_REMAINDER = 2
    FOK_UNFILLED = 3
    SELF_TRADE = 4
    END_OF_DAY = 5
    LIQUIDATION = 6
    ADMIN = 7
    MIN_UNFILLED = 8


class SelfTradePrevention(IntEnum):
    """What happens when an incoming order would trade with a resting order of the same account."""

    NONE = 0
    CANCEL_TAKER = 1  # default: the incoming order's crossing part is cancelled
    CANCEL_MAKER = 2
    CANCEL_BOTH = 3
    ALLOW = 4


class InstrumentKind(IntEnum):
    NONE = 0
    FUTURE = 1
    SPOT = 2


class InstrumentStatus(IntEnum):
    NONE = 0
    TRADING = 1
    SUSPENDED = 2
    DELISTED = 3


class CloseTodayRule(IntEnum):
    """How a CLOSE offset treats today's positions (per instrument; SHFE differs from the rest)."""

    NONE = 0
    HISTORY_FIRST = 1  # CLOSE closes history first, then today (CFFEX, DCE, CZCE)
    SHFE = 2  # CLOSE closes history only; today's positions need CLOSETODAY (SHFE, INE)


class TradingPhase(IntEnum):
    """A book's phase: continuous matching, or a call auction collecting orders until uncrossed."""

    NONE = 0
    CONTINUOUS = 1
    AUCTION = 2
