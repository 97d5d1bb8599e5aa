"""Declarative request schemas: one spec per request type, used to parse and to document.

A `Schema` is a tuple of `Field`s. `Schema.parse` turns a decoded JSON object into typed Python
values (numbers as `Decimal`, choices as engine enums) or raises `Rejected(BAD_MESSAGE)` naming
the field; `Schema.json_schema` renders the same spec for OpenAPI, so the document and the server
cannot drift apart. Numbers arrive from orjson as int or float; a float becomes a Decimal through
its shortest repr (the literal the client wrote), never through `int(value * scale)`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum, IntEnum
from functools import cache, cached_property
from typing import Any

from engine.codes import ResultCode
from gateway.errors import Rejected


class Kind(Enum):
    """The JSON shapes a field may take."""

    STRING = "string"
    INTEGER = "integer"
    DECIMAL = "decimal"
    CHOICE = "choice"
    STRINGS = "strings"
    OBJECTS = "objects"


@dataclass(frozen=True)
class Field:
    """One named field: its shape, bounds and, for choices, the accepted spellings."""

    name: str
    kind: Kind
    required: bool = True
    description: str = ""
    minimum: Decimal | None = None
    maximum: Decimal | None = None
    positive: bool = False
    max_length: int = 64
    pattern: str | None = None
    choices: Mapping[str, Any] = field(default_factory=dict)
    items: Schema | None = None
    default: Any = None
    bounds_code: ResultCode = ResultCode.BAD_MESSAGE
    """Code for an out-of-range value (orders use 1008); a wrong type is always 9003."""

    def parse(self, value: Any) -> Any:
        """One JSON value → its typed value, or `Rejected` naming this field."""
        parser = _PARSERS[self.kind]
        return parser(self, value)

    def json_schema(self) -> dict[str, Any]:
        return _JSON_SCHEMAS[self.kind](self)

    def refuse(self, reason: str, code: ResultCode = ResultCode.BAD_MESSAGE) -> Rejected:
        return Rejected(code, f"field '{self.name}': {reason}")


@dataclass(frozen=True)
class Schema:
    """A request type: its fields, and whether unknown fields are refused or ignored.

    Unknown fields are refused on REST and `/ws` (a typo such as `prise` must not pass silently
    as a market order) and ignored on DIFF, whose spec requires it.
    """

    name: str
    fields: tuple[Field, ...]
    ignore_unknown: bool = False
    description: str = ""

    def parse(self, obj: Any, ignore: frozenset[str] = frozenset()) -> dict[str, Any]:
        """A JSON object → {field name: typed value}; `ignore` names envelope keys (type, aid)."""
        if not isinstance(obj, dict):
            raise Rejected(ResultCode.BAD_MESSAGE, f"{self.name}: expected a JSON object")
        if not self.ignore_unknown:
            unknown = obj.keys() - self._known
            if unknown and (unknown := unknown - ignore):
                raise Rejected(
                    ResultCode.BAD_MESSAGE, f"{self.name}: unknown fields {sorted(unknown)}"
                )
        parsed: dict[str, Any] = {}
        for name, spec, parser in self._plan:
            value = obj.get(name)
            if value is None:
                if spec.required:
                    raise spec.refuse("is required")
                parsed[name] = spec.default
            else:
                parsed[name] = parser(spec, value)
        return parsed

    @cached_property
    def _known(self) -> frozenset[str]:
        return frozenset(f.name for f in self.fields)

    @cached_property
    def _plan(self) -> tuple[tuple[str, Field, Callable[[Field, Any], Any]], ...]:
        """Each field with its parser looked up once (enum hashing is slow on the hot path)."""
        return tuple((f.name, f, _PARSERS[f.kind]) for f in self.fields)

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema (OpenAPI 3 dialect) of this request type."""
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {f.name: f.json_schema() for f in self.fields},
            "additionalProperties": self.ignore_unknown,
        }
        required = [f.name for f in self.fields if f.required]
        if required:
            schema["required"] = required
        if self.description:
            schema["description"] = self.description
        return schema


def text(name: str, pattern: str | None = None, max_length: int = 64, **kw: Any) -> Field:
    return Field(name, Kind.STRING, pattern=pattern, max_length=max_length, **kw)


def integer(name: str, **kw: Any) -> Field:
    return Field(name, Kind.INTEGER, **kw)


def decimal(name: str, **kw: Any) -> Field:
    return Field(name, Kind.DECIMAL, **kw)


def choice(
    name: str, enum: type[IntEnum], aliases: Mapping[str, IntEnum] | None = None, **kw: Any
) -> Field:
    """A field whose value is one of `enum`'s names (any case, NONE excluded), or an alias."""
    spellings: dict[str, Any] = {m.name: m for m in enum if m.value != 0}
    spellings.update(aliases or {})
    return Field(name, Kind.CHOICE, choices=spellings, **kw)


def words(name: str, spellings: tuple[str, ...], **kw: Any) -> Field:
    """A field whose value is one of a few fixed words (kept as the upper-case string)."""
    return Field(name, Kind.CHOICE, choices={w: w for w in spellings}, **kw)


def strings(name: str, max_items: int = 256, **kw: Any) -> Field:
    return Field(name, Kind.STRINGS, max_length=max_items, **kw)


def objects(name: str, items: Schema, max_items: int = 1000, **kw: Any) -> Field:
    return Field(name, Kind.OBJECTS, items=items, max_length=max_items, **kw)


def _parse_string(spec: Field, value: Any) -> str:
    if not isinstance(value, str):
        raise spec.refuse(f"expected a string, got {json_type_name(value)}")
    if len(value) > spec.max_length:
        raise spec.refuse(f"longer than {spec.max_length} characters")
    if spec.pattern is not None and not _compiled(spec.pattern).fullmatch(value):
        raise spec.refuse(f"does not match {spec.pattern}")
    return value


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _to_decimal(spec: Field, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise spec.refuse(f"expected a number, got {json_type_name(value)}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise spec.refuse("must be finite")
        return Decimal(repr(value))
    return Decimal(value)


def _check_bounds(spec: Field, number: Decimal) -> None:
    if spec.positive and number <= 0:
        raise spec.refuse(f"must be positive, got {number}", spec.bounds_code)
    if spec.minimum is not None and number < spec.minimum:
        raise spec.refuse(f"must be at least {spec.minimum}, got {number}", spec.bounds_code)
    if spec.maximum is not None and number > spec.maximum:
        raise spec.refuse(f"must be at most {spec.maximum}, got {number}", spec.bounds_code)


def _parse_decimal(spec: Field, value: Any) -> Decimal:
    number = _to_decimal(spec, value)
    _check_bounds(spec, number)
    return number


def _parse_integer(spec: Field, value: Any) -> int:
    number = _to_decimal(spec, value)
    if number != number.to_integral_value():
        raise spec.refuse(f"expected an integer, got {number}")
    _check_bounds(spec, number)
    return int(number)


def _parse_choice(spec: Field, value: Any) -> Any:
    if not isinstance(value, str):
        raise spec.refuse(f"expected one of {sorted(spec.choices)}, got {json_type_name(value)}")
    chosen = spec.choices.get(value.upper())
    if chosen is None:
        raise spec.refuse(f"expected one of {sorted(spec.choices)}, got {value[:32]!r}")
    return chosen


def _parse_strings(spec: Field, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise spec.refuse("expected an array of strings")
    if len(value) > spec.max_length:
        raise spec.refuse(f"more than {spec.max_length} items")
    return value


def _parse_objects(spec: Field, value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise spec.refuse(f"expected an array, got {json_type_name(value)}")
    if len(value) > spec.max_length:
        raise spec.refuse(f"more than {spec.max_length} items")
    assert spec.items is not None, f"objects field {spec.name} has no item schema"
    return [spec.items.parse(item) for item in value]


def _number_schema(spec: Field, base: dict[str, Any]) -> dict[str, Any]:
    if spec.minimum is not None:
        base["minimum"] = _json_number(spec.minimum)
    if spec.maximum is not None:
        base["maximum"] = _json_number(spec.maximum)
    if spec.positive:
        base["exclusiveMinimum"] = 0
    return base


def _described(spec: Field, schema: dict[str, Any]) -> dict[str, Any]:
    if spec.description:
        schema["description"] = spec.description
    return schema


def _json_number(number: Decimal) -> int | float:
    return int(number) if number == number.to_integral_value() else float(number)


_PARSERS = {
    Kind.STRING: _parse_string,
    Kind.INTEGER: _parse_integer,
    Kind.DECIMAL: _parse_decimal,
    Kind.CHOICE: _parse_choice,
    Kind.STRINGS: _parse_strings,
    Kind.OBJECTS: _parse_objects,
}

_JSON_SCHEMAS = {
    Kind.STRING: lambda f: _described(
        f,
        {
            "type": "string",
            "maxLength": f.max_length,
            **({"pattern": f.pattern} if f.pattern else {}),
        },
    ),
    Kind.INTEGER: lambda f: _described(f, _number_schema(f, {"type": "integer"})),
    Kind.DECIMAL: lambda f: _described(f, _number_schema(f, {"type": "number"})),
    Kind.CHOICE: lambda f: _described(f, {"type": "string", "enum": sorted(f.choices)}),
    Kind.STRINGS: lambda f: _described(
        f, {"type": "array", "items": {"type": "string"}, "maxItems": f.max_length}
    ),
    Kind.OBJECTS: lambda f: _described(
        f, {"type": "array", "items": f.items.json_schema(), "maxItems": f.max_length}
    ),
}


def json_type_name(value: Any) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")
