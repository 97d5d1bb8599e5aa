"""Result codes: every business outcome (rejection, refusal) the exchange reports.

The bands follow shared/DESIGN.md: risk 1xxx, account 2xxx, order 3xxx, matching 4xxx,
system 5xxx, settlement 6xxx, service 9xxx. The engine returns these as values; it raises
exceptions only for broken invariants (bugs). The gateway maps them to HTTP/WS errors.
"""

from enum import IntEnum


class ResultCode(IntEnum):
    """Stable numeric codes; 0 is success so that a zeroed record field means OK."""

    OK = 0

    INSUFFICIENT_FUNDS = 1001
    CONCENTRATION_LIMIT = 1002
    ORDER_VALUE_CAP = 1003
    RISK_RATIO_CAP = 1004
    SELF_TRADE = 1005
    NO_SUCH_ACCOUNT = 1006
    NO_SUCH_INSTRUMENT = 1007
    BAD_ORDER_PARAMETER = 1008

    ACCOUNT_EXISTS = 2001
    ACCOUNT_FROZEN = 2002
    DEPOSIT_FAILED = 2003
    WITHDRAW_FAILED = 2004
    INSUFFICIENT_POSITION = 2005

    ORDER_NOT_FOUND = 3001
    CANNOT_CANCEL = 3002
    SUBMIT_FAILED = 3003
    AMEND_FAILED = 3004

    ENGINE_NOT_READY = 4001
    ORDER_BOOK_ERROR = 4002
    PRICE_OUT_OF_BAND = 4003
    INSTRUMENT_NOT_TRADING = 4004
    PRICE_NOT_ON_TICK = 4005
    INSTRUMENT_EXISTS = 4006
    INSTRUMENT_HAS_POSITIONS = 4007

    INTERNAL = 5000
    CONFIG = 5001
    STORAGE = 5002
    SERIALIZATION = 5003

    NO_SETTLEMENT_PRICE = 6001
    SETTLEMENT_FAILED = 6002
    LIQUIDATION_FAILED = 6003

    AUTH_FAILED = 9001
    NOT_AUTHENTICATED = 9002
    BAD_MESSAGE = 9003
    RATE_LIMITED = 9004
    UNAVAILABLE = 9005
    FORBIDDEN = 9006
    PAYLOAD_TOO_LARGE = 9007
    UNKNOWN = 9999


RETRYABLE = frozenset(
    {ResultCode.INTERNAL, ResultCode.STORAGE, ResultCode.RATE_LIMITED, ResultCode.UNAVAILABLE}
)
"""Codes after which a client may retry (reference part 2 §3: at most 3 tries, 1 s·(i+1) apart)."""
