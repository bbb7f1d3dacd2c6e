"""Rows of the table of settings (table.py imports them into its `Settings`): SQLite databases
in the folder (`SYNC_SQLITE`, and which are synced file by file, the quiet time and the longest
time between two snapshots; local/databases.py, ops/snapshot.py)."""

from __future__ import annotations

from . import parsers
from .setting import Setting

_either = parsers.either

SQLITE_MODES = ("snapshot", "off")
SQLITE = Setting(
    "snapshot",
    env="SYNC_SQLITE",
    parse=parsers.choice(*SQLITE_MODES),
    expected=_either(SQLITE_MODES),
    meaning="`snapshot`: an SQLite database and its `-wal`, `-shm`, `-journal` are one unit, "
    "uploaded as a consistent snapshot, never replaced while a process holds it open; `off`: "
    "each file on its own ([SQLite databases](#sqlite-databases-sync_sqlite)).",
    example="off",
)
SQLITE_FILES_ALONE = Setting(
    "^$",
    env="SYNC_SQLITE_FILES_ALONE",
    parse=parsers.regex,
    expected="a Python regular expression",
    meaning="Regex on the full local path: databases there are synced file by file (`off`).",
    example=r".*/cache/.*",
    note="nothing",
    tidy=parsers.compiled,
)
SQLITE_QUIET = Setting(
    1.0,
    env="SYNC_SQLITE_QUIET",
    parse=parsers.number(0.1, 3600),
    expected="seconds, a number from 0.1 to 3600",
    meaning="Seconds a database (and its companions) must go unwritten before its snapshot.",
    example="5",
    tidy=float,
)
SQLITE_INTERVAL = Setting(
    10.0,
    env="SYNC_SQLITE_INTERVAL",
    parse=parsers.number(1, 86400),
    expected="seconds, a number from 1 to 86400",
    meaning="Under a steady write load, seconds from a database's first change not in S3 to "
    "its snapshot: with the upload, the most of its commits a task that dies can lose.",
    example="60",
    tidy=float,
)
