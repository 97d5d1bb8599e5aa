"""One envelope and one table: how a `ResultCode` leaves the edge over HTTP and WebSocket.

Every rejection inside the exchange is a `ResultCode`; the edge never invents its own numbers.
`HTTP_STATUS` is the single place that decides which HTTP status a code travels with, and a test
checks that it covers every code, so a new code cannot silently become a 500.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.codes import ResultCode


class GatewayError(Exception):
    """Root of the exceptions the gateway package raises."""


class Rejected(GatewayError, ValueError):
    """A request refused with a result code: raised inside decoding and handlers, caught once.

    The edge's layered decoders (bytes → text → JSON → fields → ticks) are easiest to keep flat
    when a refusal can leave from any depth; the route wrapper turns it back into a code-bearing
    answer, so it never escapes a handler as a crash.
    """

    def __init__(self, code: ResultCode, message: str) -> None:
        super().__init__(f"{int(code)} {message}")
        self.code = code
        self.message = message


HTTP_STATUS: Mapping[ResultCode, int] = {
    ResultCode.OK: 200,
    ResultCode.INSUFFICIENT_FUNDS: 400,
    ResultCode.CONCENTRATION_LIMIT: 400,
    ResultCode.ORDER_VALUE_CAP: 400,
    ResultCode.RISK_RATIO_CAP: 400,
    ResultCode.SELF_TRADE: 400,
    ResultCode.NO_SUCH_ACCOUNT: 404,
    ResultCode.NO_SUCH_INSTRUMENT: 404,
    ResultCode.BAD_ORDER_PARAMETER: 400,
    ResultCode.ACCOUNT_EXISTS: 409,
    ResultCode.ACCOUNT_FROZEN: 403,
    ResultCode.DEPOSIT_FAILED: 400,
    ResultCode.WITHDRAW_FAILED: 400,
    ResultCode.INSUFFICIENT_POSITION: 400,
    ResultCode.ORDER_NOT_FOUND: 404,
    ResultCode.CANNOT_CANCEL: 409,
    ResultCode.SUBMIT_FAILED: 400,
    ResultCode.AMEND_FAILED: 400,
    ResultCode.ENGINE_NOT_READY: 503,
    ResultCode.ORDER_BOOK_ERROR: 500,
    ResultCode.PRICE_OUT_OF_BAND: 400,
    ResultCode.INSTRUMENT_NOT_TRADING: 409,
    ResultCode.PRICE_NOT_ON_TICK: 400,
    ResultCode.INSTRUMENT_EXISTS: 409,
    ResultCode.INSTRUMENT_HAS_POSITIONS: 409,
    ResultCode.INTERNAL: 500,
    ResultCode.CONFIG: 500,
    ResultCode.STORAGE: 500,
    ResultCode.SERIALIZATION: 500,
    ResultCode.NO_SETTLEMENT_PRICE: 409,
    ResultCode.SETTLEMENT_FAILED: 409,  # in progress, or the day is already settled
    ResultCode.LIQUIDATION_FAILED: 500,
    ResultCode.AUTH_FAILED: 401,
    ResultCode.NOT_AUTHENTICATED: 401,
    ResultCode.BAD_MESSAGE: 400,
    ResultCode.RATE_LIMITED: 429,
    ResultCode.UNAVAILABLE: 503,
    ResultCode.FORBIDDEN: 403,
    ResultCode.PAYLOAD_TOO_LARGE: 413,
    ResultCode.UNKNOWN: 500,
}


def http_status(code: ResultCode) -> int:
    """The HTTP status a result code travels with."""
    return HTTP_STATUS[code]


def success(data: Any) -> dict[str, Any]:
    """The REST envelope of an accepted request."""
    return {"success": True, "data": data, "error": None}


def failure(code: ResultCode, message: str) -> dict[str, Any]:
    """The REST envelope of a refused request: the numeric code and a short human message."""
    return {"success": False, "data": None, "error": {"code": int(code), "message": message}}


def ws_error(code: ResultCode, message: str) -> dict[str, Any]:
    """The native `/ws` error message (reference part 2 §3)."""
    return {"type": "error", "code": int(code), "message": message}
