"""What one snapshot of an SQLite database costs (SYNC_SQLITE=snapshot, local/sqlite.py), for a
database of `--mib` MiB (100) under a steady write load: an app process commits one small
transaction every `--every` seconds (0.01) while the snapshots are taken: the figures
local/sqlite.py's docstring and the README's "SQLite databases" quote. `make bench` row 8 runs the
same measure (`measure`); by hand:

    python bench/sqlite_snapshot.py                 # WAL and rollback mode, 100 MiB, 5 runs
    python bench/sqlite_snapshot.py --mib 20 --runs 3

Per mode it prints the medians and maxima of the snapshot's wall time and CPU time (this
thread's: the copy runs in SQLite's C code on it, and the MD5 after it) and the app's slowest
commit while snapshots ran, against its slowest commit with none (a rollback-mode commit waits
for the snapshot's read lock).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sidecar.local.safefs import Tree
from sidecar.local.sqlite import snapshot
from sidecar.local.workdir import discard, temp_name

WRITER = """
import sqlite3, sys, time, os
db, mode, every, stop = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
c = sqlite3.connect(db, timeout=30, isolation_level=None)
c.execute("PRAGMA journal_mode=" + mode)
slowest = 0.0
print("ready", flush=True)
while not os.path.exists(stop):
    began = time.monotonic()
    c.execute("BEGIN IMMEDIATE")
    c.execute("INSERT INTO t (body) VALUES (?)", (os.urandom(200),))
    c.execute("COMMIT")
    slowest = max(slowest, time.monotonic() - began)
    time.sleep(every)
print(f"{slowest:.4f}", flush=True)
"""


def make_database(path: Path, mib: int, mode: str) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute(f"PRAGMA journal_mode={mode}")
    connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)")
    connection.execute("BEGIN")
    block = os.urandom(4000)
    for _ in range(mib * 256):
        connection.execute("INSERT INTO t (body) VALUES (?)", (block,))
    connection.execute("COMMIT")
    connection.close()


def slowest_commit(folder: Path, db: Path, mode: str, every: float, seconds: float) -> float:
    """The writer's slowest commit over `seconds` with no snapshot."""
    stop = folder / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), mode, str(every), str(stop)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None and writer.stdout.readline() == "ready\n"
    time.sleep(seconds)
    stop.touch()
    slowest = float(writer.stdout.readline())
    writer.wait()
    stop.unlink()
    return slowest


@dataclass
class Figures:
    """One mode's snapshots: seconds and this thread's CPU seconds of each, the snapshot's size,
    the app's slowest commit while they ran and over as long with none, and the seconds and
    CPU seconds of one plain read of the database file with its MD5 (what a tool that uploads
    the file as it lies reads), as many times."""

    walls: list[float]
    cpus: list[float]
    size: int
    slowest: float
    baseline: float
    read_walls: list[float]
    read_cpus: list[float]


def measure(mode: str, mib: int, runs: int, every: float) -> Figures:
    with tempfile.TemporaryDirectory() as top:
        folder = Path(top)
        (folder / ".work").mkdir()
        db = folder / "app.db"
        make_database(db, mib, mode)
        baseline = slowest_commit(folder, db, mode, every, 3.0)
        stop = folder / "stop"
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db), mode, str(every), str(stop)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert writer.stdout is not None and writer.stdout.readline() == "ready\n"
        tree = Tree(str(folder), ".work")
        tree.start()
        walls: list[float] = []
        cpus: list[float] = []
        size = 0
        try:
            for _ in range(runs):
                time.sleep(0.5)
                temp = tree.temp(temp_name())
                cpu = time.thread_time()
                wall = time.monotonic()
                size = snapshot(tree, "app.db", temp).size
                walls.append(time.monotonic() - wall)
                cpus.append(time.thread_time() - cpu)
                discard(temp)
        finally:
            stop.touch()
            slowest = float(writer.stdout.readline())
            writer.wait()
            tree.close()
        read_walls: list[float] = []
        read_cpus: list[float] = []
        for _ in range(runs):
            cpu = time.thread_time()
            wall = time.monotonic()
            with open(db, "rb") as file:
                hashlib.file_digest(file, "md5")
            read_walls.append(time.monotonic() - wall)
            read_cpus.append(time.thread_time() - cpu)
        return Figures(walls, cpus, size, slowest, baseline, read_walls, read_cpus)


def run_mode(mode: str, mib: int, runs: int, every: float) -> None:
    figures = measure(mode, mib, runs, every)
    walls, cpus = figures.walls, figures.cpus
    print(
        f"{mode:8} {figures.size / 2**20:6.1f} MiB: snapshot wall median"
        f" {statistics.median(walls):.3f} s (max {max(walls):.3f}), CPU median"
        f" {statistics.median(cpus):.3f} s (max {max(cpus):.3f}); app's slowest commit"
        f" {figures.slowest * 1000:.1f} ms (without snapshots {figures.baseline * 1000:.1f} ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--every", type=float, default=0.01)
    args = parser.parse_args()
    for mode in ("wal", "delete"):
        run_mode(mode, args.mib, args.runs, args.every)


if __name__ == "__main__":
    main()
