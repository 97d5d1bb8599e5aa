"""Frame decoding: UTF-8 first, then faust-cchardet's guess, else the frame is rejected.

Venues send UTF-8 JSON; a frame that is not valid UTF-8 is either a mis-encoded payload
(Korean venues have sent EUC-KR/CP949 in the past) or garbage. We accept a guess only when the
detector is confident, so that random bytes are counted as undecodable instead of parsed.
"""

from __future__ import annotations

import cchardet


class FrameDecoder:
    """Bytes → text; counts what needed a guess and what could not be decoded."""

    __slots__ = ("min_confidence", "redecoded", "undecodable")

    def __init__(self, min_confidence: float = 0.5) -> None:
        self.min_confidence = min_confidence
        self.redecoded = 0
        self.undecodable = 0

    def decode(self, frame: bytes | str) -> str | None:
        if frame.__class__ is str:
            return frame  # type: ignore[return-value]
        try:
            return frame.decode()  # type: ignore[union-attr]
        except UnicodeDecodeError:
            pass
        guess = cchardet.detect(frame)
        encoding = guess.get("encoding")
        confidence = guess.get("confidence") or 0.0
        if encoding and confidence >= self.min_confidence:
            try:
                text = frame.decode(encoding)  # type: ignore[union-attr]
            except (UnicodeDecodeError, LookupError):
                text = None
            if text is not None:
                self.redecoded += 1
                return text
        self.undecodable += 1
        return None
