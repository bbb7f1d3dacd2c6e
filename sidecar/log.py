"""Logging set-up: JSON lines (one object per line, for CloudWatch and friends) or plain text.

One record is one line, whatever it carries. Paths, keys and error messages come from users
and from S3: a file named `x\\n2026-01-01 ERROR ...` must not write a second, forged line, and a
name holding terminal escapes must not reach a terminal raw. The text format escapes every
control character (C0, DEL, C1, and the Unicode line and paragraph separators) in the whole
formatted record, traceback included, as `\\n`, `\\r`, `\\t` or `\\xNN`/`\\uNNNN`; the JSON format
escapes them inside its strings (json.dumps does C0; DEL, C1 and the separators are done here).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

# Structured fields a log call may pass with `extra={...}`; they become JSON keys.
FIELDS = ("path", "key", "operation", "duration", "bytes", "error")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Outside its strings json.dumps writes ASCII only, so these can only be inside a string,
# where \\uNNNN means the same character.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    short = _SHORT.get(char)
    if short is not None:
        return short
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """`text` on one line with no control character left: each is written as an escape."""
    return _CONTROL.sub(_escape, text)


class TextFormatter(logging.Formatter):
    """`TEXT_FORMAT`, one line per record: control characters escaped (see the module)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return escape_controls(super().format(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info and "error" not in entry:
            entry["error"] = self.formatException(record.exc_info)
        text = json.dumps(entry, ensure_ascii=False, default=str)
        return _JSON_UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # aiohttp logs every failed connection at ERROR; our own retry logging says it better.
    logging.getLogger("aiohttp").setLevel(max(logging.WARNING, logging.getLevelName(level)))
