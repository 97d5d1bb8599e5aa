"""JSON out: one encoder for REST bodies and WebSocket frames."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson


def to_json(value: Any) -> bytes:
    """orjson, with Decimals (admin echoes, instrument tables) as JSON numbers."""
    return orjson.dumps(value, default=_default)


def to_json_text(value: Any) -> str:
    return to_json(value).decode()


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")
