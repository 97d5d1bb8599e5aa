"""One table maps every result code to an HTTP status; one envelope and one WS error shape."""

from engine.codes import ResultCode
from gateway.errors import HTTP_STATUS, failure, http_status, success, ws_error


def test_every_result_code_has_an_http_status() -> None:
    assert set(HTTP_STATUS) == set(ResultCode)
    assert all(100 <= status < 600 for status in HTTP_STATUS.values())


def test_codes_map_to_the_statuses_clients_expect() -> None:
    assert http_status(ResultCode.OK) == 200
    assert http_status(ResultCode.NOT_AUTHENTICATED) == 401
    assert http_status(ResultCode.FORBIDDEN) == 403
    assert http_status(ResultCode.RATE_LIMITED) == 429
    assert http_status(ResultCode.PAYLOAD_TOO_LARGE) == 413
    assert http_status(ResultCode.BAD_MESSAGE) == 400
    only_server_faults = {c for c, s in HTTP_STATUS.items() if s >= 500}
    assert ResultCode.INSUFFICIENT_FUNDS not in only_server_faults


def test_envelope_and_ws_error_shapes() -> None:
    assert success({"x": 1}) == {"success": True, "data": {"x": 1}, "error": None}
    assert failure(ResultCode.BAD_MESSAGE, "broken") == {
        "success": False,
        "data": None,
        "error": {"code": 9003, "message": "broken"},
    }
    assert ws_error(ResultCode.RATE_LIMITED, "slow down") == {
        "type": "error",
        "code": 9004,
        "message": "slow down",
    }
