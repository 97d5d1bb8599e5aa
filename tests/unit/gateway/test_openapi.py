"""The OpenAPI document is structurally valid and lists exactly the route table."""

import re

import orjson

from gateway.openapi import openapi_document
from gateway.rest import ROUTES
from gateway.routes import Access

METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}
SCHEMA_KEYS = {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "description",
    "items",
    "maxItems",
    "maxLength",
    "pattern",
    "enum",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "nullable",
    "$ref",
}


def _walk_schema(schema: dict, where: str) -> None:
    assert isinstance(schema, dict), where
    assert set(schema) <= SCHEMA_KEYS, f"{where}: unexpected keys {set(schema) - SCHEMA_KEYS}"
    if "pattern" in schema:
        re.compile(schema["pattern"])
    for name, child in schema.get("properties", {}).items():
        _walk_schema(child, f"{where}.{name}")
    if "items" in schema:
        _walk_schema(schema["items"], f"{where}[]")
    if "required" in schema:
        assert set(schema["required"]) <= set(schema["properties"]), where


def test_document_is_structurally_valid_openapi_3() -> None:
    doc = orjson.loads(orjson.dumps(openapi_document(ROUTES)))
    assert doc["openapi"].startswith("3.0.")
    assert doc["info"]["title"] and doc["info"]["version"]
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    operation_ids = []
    for path, item in doc["paths"].items():
        assert path.startswith("/")
        template_params = set(re.findall(r"{(\w+)}", path))
        for method, operation in item.items():
            assert method in METHODS
            operation_ids.append(operation["operationId"])
            assert operation["responses"], f"{method} {path} has no responses"
            for status in operation["responses"]:
                assert status == "default" or 100 <= int(status) < 600
            params = operation.get("parameters", [])
            declared = {p["name"] for p in params if p["in"] == "path"}
            assert declared == template_params, f"{method} {path}"
            for param in params:
                assert param["in"] in {"path", "query"}
                assert param["in"] != "path" or param["required"] is True
                _walk_schema(param["schema"], f"{path}:{param['name']}")
            if "requestBody" in operation:
                _walk_schema(
                    operation["requestBody"]["content"]["application/json"]["schema"], path
                )
            for scheme in operation.get("security", []):
                assert set(scheme) <= set(doc["components"]["securitySchemes"])
    assert len(operation_ids) == len(set(operation_ids)), "operationIds must be unique"
    _walk_schema(doc["components"]["schemas"]["Envelope"], "Envelope")


def test_every_route_in_the_table_is_documented_and_nothing_else() -> None:
    doc = openapi_document(ROUTES)
    documented = {(m.upper(), p) for p, item in doc["paths"].items() for m in item}
    assert documented == {(r.method, r.path) for r in ROUTES}


def test_issue_5_routes_are_all_in_the_table() -> None:
    paths = {r.path for r in ROUTES}
    for needed in (
        "/api/auth/register",
        "/api/auth/login",
        "/api/account/open",
        "/api/account/{account_id}",
        "/api/account/deposit",
        "/api/account/withdraw",
        "/api/order/submit",
        "/api/order/cancel",
        "/api/order/{order_id}",
        "/api/order/user/{user_id}",
        "/api/position/{account_id}",
        "/api/trades/{account_id}",
        "/api/market/instruments",
        "/api/market/tick/{instrument_id}",
        "/api/market/orderbook/{instrument_id}",
        "/api/market/recent-trades/{instrument_id}",
        "/api/klines/{instrument_id}/{period}",
        "/admin/instruments",
        "/admin/settlement/set-price",
        "/admin/settlement/execute",
        "/admin/settlement/batch-set-prices",
        "/admin/settlement/history",
        "/admin/settlement/detail/{date}",
        "/health",
        "/openapi.json",
    ):
        assert needed in paths, needed


def test_security_matches_access() -> None:
    doc = openapi_document(ROUTES)
    for route in ROUTES:
        operation = doc["paths"][route.path][route.method.lower()]
        assert ("security" in operation) == (route.access is not Access.PUBLIC), route.path
        assert route.path.startswith("/admin") == (route.access is Access.ADMIN), route.path
