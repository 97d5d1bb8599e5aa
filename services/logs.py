"""Process logging: one file per process in `<run_dir>/logs/`, one line per event, key=value fields.

Lines read as `ts=... level=INFO proc=recorder pid=123 logger=services.recorder msg="..." k=v`,
so `grep proc=matching` and simple parsers both work. Fields come from `extra={"fields": {...}}`.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any


def _quote(value: Any) -> str:
    text = str(value)
    if not text or any(ch in text for ch in ' ="\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class FieldsFormatter(logging.Formatter):
    """logfmt-style lines: fixed fields, the message, then the record's `fields` dict."""

    def __init__(self, process: str) -> None:
        super().__init__()
        self._process = process

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = [
            f"ts={stamp}.{int(record.msecs):03d}Z",
            f"level={record.levelname}",
            f"proc={self._process}",
            f"pid={record.process}",
            f"logger={record.name}",
            f"msg={_quote(record.getMessage())}",
        ]
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            parts.extend(f"{key}={_quote(value)}" for key, value in fields.items())
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup(process: str, run_dir: Path, level: str | int = "INFO", to_stderr: bool = False) -> Path:
    """Route the root logger to `<run_dir>/logs/<process>.log` (and stderr if asked)."""
    path = run_dir / "logs" / f"{process}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    formatter = FieldsFormatter(process)
    handlers: list[logging.Handler] = [logging.FileHandler(path, encoding="utf-8")]
    if to_stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(os.environ.get("SHMEX_LOG_LEVEL", level))
    return path
