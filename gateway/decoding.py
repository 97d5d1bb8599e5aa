"""Request bodies and frames → a JSON object: size limit first, then charset, then strict JSON.

Order matters for safety: the size is checked before any work, UTF-8 (the only encoding JSON
allows, RFC 8259) is tried before the slower detector, and a legacy encoding is accepted only when
the client declared it or faust-cchardet is confident, so that garbage never becomes "valid" text.
orjson refuses NaN, Infinity and lone surrogates, which the spec forbids and floats cannot carry.
"""

from __future__ import annotations

import codecs
import logging
from dataclasses import dataclass
from typing import Any

import cchardet
import orjson

from engine.codes import ResultCode
from gateway.errors import Rejected
from gateway.schema import json_type_name

log = logging.getLogger(__name__)

REST_BODY_LIMIT = 64 * 1024
"""Largest REST request body, in bytes (9007 above it)."""

WS_FRAME_LIMIT = 1024 * 1024
"""Largest WebSocket text frame, in bytes (9007 above it; see THREAT_MODEL.md)."""

MIN_DETECTION_CONFIDENCE = 0.6
"""faust-cchardet confidence below which an undeclared, non-UTF-8 body is refused."""


@dataclass(frozen=True)
class TextDecoded:
    """The text of a body and the encoding it was read with (logged when it is not UTF-8)."""

    text: str
    encoding: str


def check_size(size: int, limit: int) -> None:
    """Refuse a body or frame above `limit` bytes before reading it."""
    if size > limit:
        raise Rejected(ResultCode.PAYLOAD_TOO_LARGE, f"body of {size} bytes exceeds {limit}")


def decode_text(
    body: bytes,
    declared_charset: str | None = None,
    min_confidence: float = MIN_DETECTION_CONFIDENCE,
) -> TextDecoded:
    """Bytes → text: a declared charset, else UTF-8, else a confidently detected encoding.

    A declared charset Python does not know is ignored (the body is then read like an
    undeclared one) rather than trusted.
    """
    if declared_charset and _codec_name(declared_charset) not in ("utf-8", None):
        return _decode_declared(body, declared_charset)
    try:
        return TextDecoded(body.decode("utf-8"), "utf-8")
    except UnicodeDecodeError:
        pass
    detected = cchardet.detect(body)
    encoding = detected.get("encoding")
    confidence = float(detected.get("confidence") or 0.0)
    named = f"{encoding or 'no encoding'} (confidence {confidence:.2f})"
    if encoding is None or confidence < min_confidence or _codec_name(encoding) is None:
        raise Rejected(ResultCode.BAD_MESSAGE, f"body is not UTF-8; detected {named}")
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as exc:
        raise Rejected(ResultCode.BAD_MESSAGE, f"body is not UTF-8 and not valid {named}") from exc
    log.debug("decoded a request body as %s", named)
    return TextDecoded(text, encoding)


def parse_json_object(text: str | bytes) -> dict[str, Any]:
    """Strict JSON → a top-level object; NaN, Infinity and overflow to infinity are refused."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise Rejected(ResultCode.BAD_MESSAGE, f"broken JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise Rejected(
            ResultCode.BAD_MESSAGE, f"expected a JSON object, got {json_type_name(value)}"
        )
    return value


def decode_body(
    body: bytes,
    declared_charset: str | None = None,
    limit: int = REST_BODY_LIMIT,
    min_confidence: float = MIN_DETECTION_CONFIDENCE,
) -> dict[str, Any]:
    """A whole REST body → a JSON object, with every check of this module."""
    check_size(len(body), limit)
    if not body.strip():
        raise Rejected(ResultCode.BAD_MESSAGE, "empty body; expected a JSON object")
    return parse_json_object(decode_text(body, declared_charset, min_confidence).text)


def decode_frame(frame: str, limit: int = WS_FRAME_LIMIT) -> dict[str, Any]:
    """A WebSocket text frame (already UTF-8, as the protocol requires) → a JSON object."""
    if len(frame) > limit // 4:
        check_size(len(frame.encode("utf-8", "surrogatepass")), limit)
    return parse_json_object(frame)


def _decode_declared(body: bytes, charset: str) -> TextDecoded:
    try:
        return TextDecoded(body.decode(charset), charset)
    except UnicodeDecodeError as exc:
        detected = cchardet.detect(body).get("encoding") or "no encoding"
        raise Rejected(
            ResultCode.BAD_MESSAGE, f"body is not valid {charset}; detected {detected}"
        ) from exc


def _codec_name(charset: str) -> str | None:
    try:
        return codecs.lookup(charset).name
    except LookupError:
        return None
