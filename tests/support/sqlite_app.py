"""An app that keeps an SQLite database open, run as a subprocess by the tests (never closing
it until told): `python sqlite_app.py DB JOURNAL_MODE LOG SECONDS SEED` writes transactions for
SECONDS with random pauses, appending `id monotonic-time` to LOG after each commit, then waits
for a line on stdin before it closes the database.

`python sqlite_app.py DB wal - serve` instead answers commands on stdin, one line each:
`write N` (insert N rows in one transaction, answers `ok`), `count` (answers the row count),
`close` (closes and exits). Each answer is one line on stdout.
"""

from __future__ import annotations

import os
import random
import sqlite3
import sys
import time


def open_database(path: str, journal_mode: str) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=10, isolation_level=None)
    connection.execute(f"PRAGMA journal_mode={journal_mode}")
    connection.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body BLOB)")
    return connection


def write(path: str, journal_mode: str, log_path: str, seconds: float, seed: int) -> None:
    rng = random.Random(seed)
    connection = open_database(path, journal_mode)
    next_id = 1
    end = time.monotonic() + seconds
    with open(log_path, "a", buffering=1) as log:
        while time.monotonic() < end:
            rows = rng.randint(1, 20)
            connection.execute("BEGIN IMMEDIATE")
            for _ in range(rows):
                connection.execute(
                    "INSERT INTO t (id, body) VALUES (?, ?)", (next_id, rng.randbytes(300))
                )
                next_id += 1
            connection.execute("COMMIT")
            log.write(f"{next_id - 1} {time.monotonic()}\n")
            pause = rng.random()
            time.sleep(pause * 0.05 if pause < 0.9 else pause * 1.5)
    print("written", flush=True)
    sys.stdin.readline()
    connection.close()
    print("closed", flush=True)


def serve(path: str, journal_mode: str) -> None:
    connection = open_database(path, journal_mode)
    print("ready", flush=True)
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "write":
            connection.execute("BEGIN IMMEDIATE")
            for _ in range(int(argument)):
                connection.execute("INSERT INTO t (body) VALUES (?)", (os.urandom(100),))
            connection.execute("COMMIT")
            print("ok", flush=True)
        elif command == "count":
            print(connection.execute("SELECT count(*) FROM t").fetchone()[0], flush=True)
        elif command == "close":
            connection.close()
            print("closed", flush=True)
            return


if __name__ == "__main__":
    if sys.argv[4] == "serve":
        serve(sys.argv[1], sys.argv[2])
    else:
        write(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5]))
