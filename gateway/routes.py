"""The shape of the route table: what each HTTP route takes, who may call it, and its handler.

The table itself (gateway/rest.py) is the single source for the aiohttp router and for the
OpenAPI document, so the two cannot disagree.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from gateway.auth import Principal
from gateway.backend import Answer
from gateway.schema import Field, Kind, Schema

if TYPE_CHECKING:
    from gateway.edge import Edge


class Access(IntEnum):
    NONE = 0
    PUBLIC = 1
    USER = 2
    ADMIN = 3


@dataclass(frozen=True)
class Call:
    """One decoded, authorized request as a handler sees it."""

    principal: Principal | None
    body: Mapping[str, Any]
    params: Mapping[str, Any]

    @property
    def user(self) -> Principal:
        """The caller of a USER or ADMIN route (the wrapper has checked there is one)."""
        assert self.principal is not None, "authenticated route called without a principal"
        return self.principal


Handler = Callable[["Edge", Call], Awaitable[Answer]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    access: Access
    summary: str
    body: Schema | None = None
    path_params: tuple[Field, ...] = ()
    query_params: tuple[Field, ...] = ()
    tag: str = "exchange"
    raw: bool = False
    """The handler's answer data is the whole response (`/openapi.json`), not an envelope."""

    @property
    def name(self) -> str:
        return self.handler.__name__


_INTEGER_TEXT = re.compile(r"-?[0-9]{1,19}")


def parse_params(fields: tuple[Field, ...], raw: Mapping[str, str]) -> dict[str, Any]:
    """Path or query strings → typed values, checked by the same `Field` rules as bodies.

    Unknown query parameters are ignored, as HTTP caches and proxies add their own.
    """
    parsed: dict[str, Any] = {}
    for spec in fields:
        text = raw.get(spec.name)
        if text is None or text == "":
            if spec.required:
                raise spec.refuse("is required")
            parsed[spec.name] = spec.default
            continue
        if spec.kind is Kind.INTEGER:
            if not _INTEGER_TEXT.fullmatch(text):
                raise spec.refuse(f"expected an integer, got {text[:32]!r}")
            parsed[spec.name] = spec.parse(int(text))
        else:
            parsed[spec.name] = spec.parse(text)
    return parsed
