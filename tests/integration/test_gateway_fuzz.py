"""Property-based fuzzing of the REST API from the server's own `/openapi.json`.

Hypothesis strategies are built from the document's JSON Schemas (mostly well-formed values,
often arbitrary JSON in their place), sent by a plain HTTP client with no token, a user's or the
administrator's. Whatever arrives, the edge answers with the envelope and a status below 500, and
the gateway process neither crashes nor restarts. `SHMEX_FUZZ_EXAMPLES` scales the run.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.test_gateway_fixtures import ADMIN, RunningEdge, edge_instance

EXAMPLES = int(os.environ.get("SHMEX_FUZZ_EXAMPLES", "100"))
UNLIMITED = {"SHMEX_GATEWAY_RATE_PER_SECOND": "1000000", "SHMEX_GATEWAY_RATE_BURST": "1000000"}

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=16),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


@pytest.fixture(scope="module")
def edge() -> Iterator[RunningEdge]:
    with edge_instance("fuzz", **UNLIMITED) as running:
        yield running


def _http(
    edge: RunningEdge, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body, allow_nan=True).encode()
    request = urllib.request.Request(edge.url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def _token(edge: RunningEdge, username: str, password: str) -> str:
    _http(edge, "POST", "/api/auth/register", {"username": username, "password": password})
    status, body = _http(
        edge, "POST", "/api/auth/login", {"username": username, "password": password}
    )
    assert status == 200, body
    return str(body["data"]["token"])


EXTREME_NUMBERS = (1e28, 1e30, 1e40, 1e-30, 10**28, 1.2345678901234567, 123456789012345678.9)
"""Magnitudes beyond Decimal's default precision and the records' integers, tiny and
many-digit numbers: each must be refused with a code, never 5000."""


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values that satisfy `schema` (the subset the edge's schemas use)."""
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        required = set(schema.get("required", ()))
        fields = {name: from_schema(sub) for name, sub in properties.items() if name in required}
        optional = {
            name: from_schema(sub) for name, sub in properties.items() if name not in required
        }
        return st.fixed_dictionaries(fields, optional=optional)
    if kind == "array":
        return st.lists(
            from_schema(schema.get("items", {})), max_size=int(schema.get("maxItems", 3))
        )
    if kind == "integer":
        low, high = schema.get("minimum"), schema.get("maximum")
        return st.integers(None if low is None else int(low), None if high is None else int(high))
    if kind == "number":
        usual = st.decimals(places=4, allow_nan=False, allow_infinity=False).map(float)
        return st.one_of(usual, st.sampled_from(EXTREME_NUMBERS))
    if kind == "boolean":
        return st.booleans()
    if kind == "string":
        size = int(schema.get("maxLength", 32))
        if "pattern" in schema:
            return st.from_regex(f"^(?:{schema['pattern']})$", fullmatch=True).filter(
                lambda s: len(s) <= size
            )
        return st.text(max_size=size)
    return JSON


def maybe_wrong(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    return st.one_of(from_schema(schema), from_schema(schema), JSON)


@st.composite
def requests(draw: st.DrawFn, document: dict[str, Any]) -> tuple[str, str, Any]:
    path, operations = draw(st.sampled_from(sorted(document["paths"].items())))
    method, operation = draw(st.sampled_from(sorted(operations.items())))
    query: dict[str, str] = {}
    for parameter in operation.get("parameters", ()):
        value = draw(maybe_wrong(parameter["schema"]))
        text = value if isinstance(value, str) else json.dumps(value)
        if parameter["in"] == "path":
            path = path.replace(
                "{" + parameter["name"] + "}", urllib.parse.quote(text, safe="") or "x"
            )
        elif draw(st.booleans()):
            query[parameter["name"]] = text
    if query:
        path += "?" + urllib.parse.urlencode(query)
    body = None
    if "requestBody" in operation:
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        body = draw(maybe_wrong(schema))
    return method.upper(), path, body


def test_rest_fuzzed_from_openapi_never_answers_5xx(edge: RunningEdge) -> None:
    status, document = _http(edge, "GET", "/openapi.json")
    assert status == 200 and document["openapi"].startswith("3.")
    tokens = [None, _token(edge, "fuzzer", "fuzzer-password-1"), _token(edge, *ADMIN)]
    seen: dict[int, int] = {}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
        ],
    )
    @given(request=requests(document), token=st.sampled_from(tokens))
    def probe(request: tuple[str, str, Any], token: str | None) -> None:
        method, path, body = request
        status, answer = _http(edge, method, path, body, token)
        seen[status] = seen.get(status, 0) + 1
        assert status < 500 or answer["error"]["code"] == 9005, (method, path, body, answer)
        assert set(answer) >= {"success", "data", "error"} or path.startswith("/openapi.json")

    probe()
    assert sum(seen.values()) >= EXAMPLES // 2
    health_status, _health = _http(edge, "GET", "/health")
    assert health_status == 200
    gateway = edge.exchange.process("gateway.1")
    assert gateway["restarts"] == 0 and gateway["state"] == "running"
