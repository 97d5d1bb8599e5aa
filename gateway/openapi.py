"""An OpenAPI 3.0 document generated from the route table and the request schemas.

Generated, not written: every route of `ROUTES` appears with its method, parameters, request
body schema and security, so tools (and the fuzzing tests) see exactly what the server serves.
"""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

from engine.codes import ResultCode
from gateway.errors import HTTP_STATUS
from gateway.routes import Access, Route

OPENAPI_VERSION = "3.0.3"

ENVELOPE = {
    "type": "object",
    "required": ["success", "data", "error"],
    "properties": {
        "success": {"type": "boolean"},
        "data": {"nullable": True},
        "error": {
            "type": "object",
            "nullable": True,
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "integer", "enum": sorted(int(c) for c in ResultCode if c)},
                "message": {"type": "string"},
            },
        },
    },
}


def openapi_document(routes: Iterable[Route], version: str = "0.1.0") -> dict[str, Any]:
    """The whole document for `routes`."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "shmex",
            "version": version,
            "description": "REST API of the shmex exchange. Every answer except this document "
            "is the envelope {success, data, error:{code, message}}.",
        },
        "paths": paths,
        "components": {
            "schemas": {"Envelope": ENVELOPE},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation(route: Route) -> dict[str, Any]:
    statuses = sorted({HTTP_STATUS[code] for code in _codes(route)})
    envelope = {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}}
    operation: dict[str, Any] = {
        "operationId": route.name,
        "summary": route.summary,
        "tags": [route.tag],
        "responses": {
            **{
                str(status): {"description": _status_text(status), "content": envelope}
                for status in statuses
            },
            "default": {"description": "Any other refusal (see error.code)", "content": envelope},
        },
    }
    if route.raw:
        operation["responses"]["200"] = {
            "description": "OK",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    parameters = [_parameter(f, "path") for f in route.path_params]
    parameters += [_parameter(f, "query") for f in route.query_params]
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": route.body.json_schema()}},
        }
    if route.access is not Access.PUBLIC:
        operation["security"] = [{"bearer": []}]
    return operation


def _parameter(spec: Any, location: str) -> dict[str, Any]:
    return {
        "name": spec.name,
        "in": location,
        "required": location == "path" or spec.required,
        "schema": spec.json_schema(),
    }


_TABLE_CODES = {
    "create_instrument": {ResultCode.CONFIG, ResultCode.INSTRUMENT_EXISTS},
    "update_instrument": {ResultCode.CONFIG},
}
"""Body schema → what a refused instrument table answers besides a malformed field (9003)."""


def _codes(route: Route) -> set[ResultCode]:
    codes = {ResultCode.OK, ResultCode.RATE_LIMITED, ResultCode.INTERNAL, ResultCode.UNAVAILABLE}
    if route.body is not None or route.path_params or route.query_params:
        codes |= {ResultCode.BAD_MESSAGE, ResultCode.PAYLOAD_TOO_LARGE}
    if route.body is not None:
        codes |= _TABLE_CODES.get(route.body.name, set())
    fields = (*route.path_params, *(route.body.fields if route.body is not None else ()))
    if any(f.name == "instrument_id" for f in fields) and route.name != "create_instrument":
        codes.add(ResultCode.NO_SUCH_INSTRUMENT)
    if route.access is not Access.PUBLIC:
        codes |= {ResultCode.NOT_AUTHENTICATED, ResultCode.FORBIDDEN}
    if route.access is Access.USER and (route.path_params or route.body is not None):
        codes.add(ResultCode.NO_SUCH_ACCOUNT)
    return codes


def _status_text(status: int) -> str:
    return HTTPStatus(status).phrase
