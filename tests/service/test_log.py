"""Log lines cannot be forged: one record is one line in both formats, whatever a path, a key
or an error message holds. Unit tests of the formatters, and the real command writing text logs
about a file and an object whose names carry a fake log line."""

from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path

from support.bucket import Bucket
from support.environments import sidecar_environment
from support.waiting import eventually, in_thread

from sidecar.log import JsonFormatter, TextFormatter, escape_controls

FORGED = "2026-01-01 00:00:00,000 ERROR sidecar.service: fake"
# Every kind of character that can break a line or drive a terminal.
HOSTILE = "a\nb\rc\x1b[31md\x00e\x7ff\x85g\x9bh\u2028i\u2029j\tk\x0bl\x0cm"


def record(message: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = None
    if exc is not None:
        try:
            raise exc
        except BaseException:
            exc_info = sys.exc_info()
    return logging.LogRecord("sidecar.transfer", logging.INFO, __file__, 1, message, args, exc_info)


def test_escape_controls() -> None:
    assert escape_controls("plain ünïcode ✓ \\n") == "plain ünïcode ✓ \\n"
    assert escape_controls(HOSTILE) == (
        "a\\nb\\rc\\x1b[31md\\x00e\\x7ff\\x85g\\x9bh\\u2028i\\u2029j\\tk\\x0bl\\x0cm"
    )


def test_text_record_is_one_line() -> None:
    formatter = TextFormatter()
    line = formatter.format(record("uploaded %s", f"x\n{FORGED}{HOSTILE}"))
    assert line.splitlines() == [line]
    assert f"uploaded x\\n{FORGED}" in line
    assert not any(0x7F <= ord(c) <= 0x9F or ord(c) < 0x20 for c in line)


def test_text_traceback_is_escaped_too() -> None:
    formatter = TextFormatter()
    line = formatter.format(
        record("cannot read %s", "f", exc=FileNotFoundError(2, "gone", f"x\n{FORGED}"))
    )
    assert line.splitlines() == [line]
    assert "Traceback (most recent call last):\\n" in line
    assert f"\\n{FORGED}" in line


def test_json_record_is_one_line_and_round_trips() -> None:
    formatter = JsonFormatter()
    name = f"x\n{FORGED}{HOSTILE}"
    line = formatter.format(record("uploaded %s", name))
    line_with_error = formatter.format(record("failed %s", name, exc=OSError(f"x\n{HOSTILE}")))
    for text in (line, line_with_error):
        assert text.splitlines() == [text]
        assert not any(0x7F <= ord(c) <= 0x9F or ord(c) < 0x20 for c in text)
        assert "\u2028" not in text and "\u2029" not in text
    assert json.loads(line)["message"] == f"uploaded {name}"
    assert json.loads(line_with_error)["error"].endswith(f"OSError: x\n{HOSTILE}")


async def test_names_cannot_forge_text_log_lines(
    run_sidecar, bucket: Bucket, tmp_path: Path
) -> None:
    """A downloaded object and a local file whose names hold a fake log line. moto cannot
    route a key with a newline, so the local file's upload fails: its name is logged by the
    failed attempts and by the final "not uploaded" error (a plain %s of the path)."""
    remote = f"r\r{FORGED} remote\x1b[2J"
    local = f"l\n{FORGED} local\x1b[2J"
    folder = tmp_path / "data"
    sidecar = run_sidecar(
        [],
        sidecar_environment(
            bucket,
            folder,
            SYNC_LOG_FORMAT="text",
            SYNC_SHUTDOWN_TIMEOUT="1",
            SYNC_POLL_INTERVAL="0.5",
        ),
    )
    await sidecar.ready()
    # Put after the restore: a download made by the restore logs its line at DEBUG.
    await in_thread(bucket.put, remote, b"from S3")
    await eventually(lambda: (folder / remote).read_bytes() == b"from S3")
    (folder / local).write_bytes(b"from here")
    await eventually(lambda: "sync of 'l\\n" in sidecar.text(), what="the failed upload logged")
    sidecar.process.send_signal(signal.SIGTERM)
    assert await sidecar.wait() == 1, sidecar.text()
    text = sidecar.text()
    assert f"downloaded r\\r{FORGED} remote\\x1b[2J" in text
    assert f"not uploaded: l\\n{FORGED} local\\x1b[2J" in text
    assert "\x1b" not in text and "\r" not in text
    lines = text.splitlines()
    assert len(lines) > 3
    assert not [line for line in lines if line.startswith(FORGED[:10])], text
