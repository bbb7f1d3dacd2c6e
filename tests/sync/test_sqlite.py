"""SQLite databases in the folder (SYNC_SQLITE=snapshot): uploaded as consistent snapshots, their
`-wal`, `-shm` and `-journal` never synced on their own, and never replaced under an app that
holds them open. End to end against moto's server (a versioned bucket: every object S3 ever
stored is looked at), with real inotify and apps as real subprocesses keeping their databases
open; then the pure parts (companion names, when a snapshot is due, the lock probe).
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from support.bucket import Bucket
from support.metrics import metric, requests
from support.waiting import eventually, in_thread

from sidecar.core.model import Hint
from sidecar.local.databases import Databases
from sidecar.local.safefs import At, Tree, UnsafeParentError
from sidecar.local.sqlite import companion_base, held_open, snapshot
from sidecar.local.workdir import temp_name

APP = str(Path(__file__).resolve().parent.parent / "support" / "sqlite_app.py")
INTERVAL = 2.0  # SYNC_SQLITE_INTERVAL in these tests
QUIET = 0.5
SLACK = 4.0  # a snapshot's copy and upload, and the listing, on a busy 2-core machine
COMPANION_SUFFIXES = ("-wal", "-shm", "-journal")


def enable_versioning(bucket: Bucket) -> None:
    bucket.client.put_bucket_versioning(
        Bucket=bucket.name, VersioningConfiguration={"Status": "Enabled"}
    )


def versions(bucket: Bucket, key: str) -> list[bytes]:
    """Every version S3 stored of `key`, oldest first."""
    listed = bucket.client.list_object_versions(Bucket=bucket.name, Prefix=key)
    bodies = []
    for version in reversed(listed.get("Versions", [])):  # listed newest first
        if version["Key"] != key:
            continue
        response = bucket.client.get_object(
            Bucket=bucket.name, Key=key, VersionId=version["VersionId"]
        )
        bodies.append(response["Body"].read())
    return bodies


def rows_of(data: bytes) -> tuple[str, list[int]]:
    """(PRAGMA integrity_check's answer, the ids) of a database given as bytes, opened alone
    in a folder of its own (no -wal, no -shm beside it)."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "copy.db")
        with open(path, "wb") as file:
            file.write(data)
        return rows_at(path)


def rows_at(path: str) -> tuple[str, list[int]]:
    connection = sqlite3.connect(path)
    try:
        check = connection.execute("PRAGMA integrity_check").fetchone()[0]
        ids = [row[0] for row in connection.execute("SELECT id FROM t ORDER BY id")]
        return check, ids
    finally:
        connection.close()


def committed_before(log: Path, moment: float) -> int:
    """The highest id the app had committed before `moment` (monotonic), per its log."""
    best = 0
    if not log.exists():
        return 0
    for line in log.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and float(parts[1]) < moment:
            best = max(best, int(parts[0]))
    return best


def start_writer(folder: Path, name: str, mode: str, log: Path, seconds: float, seed: int) -> Any:
    return subprocess.Popen(
        [sys.executable, APP, str(folder / name), mode, str(log), str(seconds), str(seed)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


async def test_databases_written_without_closing_are_uploaded_whole(
    syncer_factory: Any, bucket: Bucket, tmp_path: Path
) -> None:
    await in_thread(enable_versioning, bucket)
    syncer = await syncer_factory(sqlite_quiet=QUIET, sqlite_interval=INTERVAL)
    folder: Path = syncer.folder
    apps = {
        "wal.db": ("wal", tmp_path / "wal.log"),
        "rollback.db": ("delete", tmp_path / "rollback.log"),
    }
    writers = {
        name: start_writer(folder, name, mode, log, 12.0, seed)
        for seed, (name, (mode, log)) in enumerate(apps.items())
    }
    try:
        # While they write: what S3 holds at any moment is a whole database with every
        # transaction committed more than the interval (and a snapshot's upload) before.
        checks = 0
        began = time.monotonic()
        while time.monotonic() - began < 11.0:
            await asyncio.sleep(2.5)
            now = time.monotonic()
            for name, (_mode, log) in apps.items():
                if not await in_thread(bucket.exists, name):
                    assert now - began < INTERVAL + SLACK, f"{name} not in S3 after {now - began}"
                    continue
                data = await in_thread(bucket.get, name)
                check, ids = rows_of(data)
                assert check == "ok", (name, check)
                must_hold = committed_before(log, now - INTERVAL - SLACK)
                assert ids == list(range(1, len(ids) + 1)), name  # whole transactions, in order
                assert len(ids) >= must_hold, (name, len(ids), must_hold)
                checks += 1
        assert checks >= 6
        # A folder restored from S3 now opens cleanly: the databases and nothing beside them.
        restored = await syncer_factory(tmp_path / "restored", mode="download-only")
        names = sorted(os.listdir(restored.folder))
        assert "wal.db" in names and "rollback.db" in names
        assert not [n for n in names if n.endswith(COMPANION_SUFFIXES)], names
        for name in apps:
            check, ids = rows_at(str(restored.folder / name))
            assert check == "ok" and ids == list(range(1, len(ids) + 1)) and ids, name
        for writer in writers.values():
            await in_thread(writer.stdout.readline)  # "written": it still holds its database
        for writer in writers.values():
            writer.stdin.write("close\n")
            writer.stdin.flush()
            assert (await in_thread(writer.stdout.readline)).strip() == "closed"
            await in_thread(writer.wait)
    finally:
        for writer in writers.values():
            if writer.poll() is None:
                writer.kill()
                writer.wait()
    # Closed: the last version S3 holds is the local database, row for row.
    for name in apps:
        local = rows_at(str(folder / name))

        async def last_is_local(name: str = name, local: Any = local) -> None:
            assert rows_of(await in_thread(bucket.get, name)) == local

        await eventually(last_is_local, timeout=30, interval=0.5)
    # Every version S3 ever stored is a valid database, and none holds fewer rows than the one
    # before it; no companion was ever uploaded.
    for name in apps:
        stored = await in_thread(versions, bucket, name)
        assert len(stored) >= 3, (name, len(stored))
        counts = []
        for data in stored:
            check, ids = rows_of(data)
            assert check == "ok", name
            assert ids == list(range(1, len(ids) + 1))
            counts.append(len(ids))
        assert counts == sorted(counts), (name, counts)
    keys = await in_thread(bucket.list_keys)
    assert not [k for k in keys if k.endswith(COMPANION_SUFFIXES)], keys
    assert await syncer.stop(timeout=30) == []  # nothing left waiting (a companion, say)
    assert await restored.stop(timeout=30) == []


async def test_a_database_held_open_is_never_replaced_under_the_app(
    syncer_factory: Any, bucket: Bucket, tmp_path: Path
) -> None:
    syncer = await syncer_factory(sqlite_quiet=QUIET, sqlite_interval=INTERVAL)
    folder: Path = syncer.folder
    app = subprocess.Popen(
        [sys.executable, APP, str(folder / "shared.db"), "wal", "-", "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )

    def ask(command: str) -> str:
        app.stdin.write(command + "\n")
        app.stdin.flush()
        return str(app.stdout.readline().strip())

    try:
        assert await in_thread(app.stdout.readline) == "ready\n"
        assert await in_thread(ask, "write 3") == "ok"

        async def uploaded_with(count: int) -> None:
            assert rows_of(await in_thread(bucket.get, "shared.db"))[1] == list(range(1, count + 1))

        await eventually(lambda: uploaded_with(3), timeout=20, interval=0.3)
        before = os.stat(folder / "shared.db").st_ino
        # Another client puts another database at the key while the app holds ours open.
        other = tmp_path / "other.db"
        connection = sqlite3.connect(other)
        connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)")
        connection.executemany("INSERT INTO t (body) VALUES (?)", [(b"x",)] * 7)
        connection.commit()
        connection.close()
        await in_thread(bucket.put, "shared.db", other.read_bytes())

        def kept_beside() -> list[str]:
            return [n for n in os.listdir(folder) if n.startswith("shared.sync-conflict-")]

        copies = await eventually(kept_beside, timeout=20, interval=0.2)
        assert len(copies) == 1 and copies[0].endswith(".db")
        assert rows_at(str(folder / copies[0]))[1] == list(range(1, 8))  # S3's version
        assert os.stat(folder / "shared.db").st_ino == before  # never replaced
        assert await in_thread(ask, "write 2") == "ok"  # the app's next write works
        assert await in_thread(ask, "count") == "5"  # and reads its own rows
        # Ours went back up over S3's (kept beside it, and uploaded too).
        await eventually(lambda: uploaded_with(5), timeout=20, interval=0.3)
        await eventually(lambda: bucket.exists(copies[0]), timeout=20)
        # Deleted in S3 while held: never deleted under the app, and uploaded again.
        await in_thread(bucket.delete, "shared.db")
        await eventually(lambda: uploaded_with(5), timeout=20, interval=0.3)
        assert os.stat(folder / "shared.db").st_ino == before
        assert await in_thread(ask, "write 1") == "ok"
        assert await in_thread(ask, "count") == "6"
        assert await in_thread(ask, "close") == "closed"
    finally:
        if app.poll() is None:
            app.kill()
        app.wait()
    assert rows_at(str(folder / "shared.db"))[1] == list(range(1, 7))


async def test_an_unchanged_database_is_uploaded_once_and_never_a_conflict(
    syncer_factory: Any, bucket: Bucket, tmp_path: Path
) -> None:
    """The object's bytes (a snapshot) are never the file's: that causes no upload of an
    unchanged database, no conflict, neither while running nor after a restart, while an app
    holds it open and reads it, nor once it is closed."""
    syncer = await syncer_factory(sqlite_quiet=QUIET, sqlite_interval=INTERVAL)
    folder: Path = syncer.folder
    app = subprocess.Popen(
        [sys.executable, APP, str(folder / "kept.db"), "wal", "-", "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )

    def ask(command: str) -> str:
        app.stdin.write(command + "\n")
        app.stdin.flush()
        return str(app.stdout.readline().strip())

    try:
        assert await in_thread(app.stdout.readline) == "ready\n"
        assert await in_thread(ask, "write 4") == "ok"
        assert (await syncer.flush(timeout=20)).flushed
        await eventually(lambda: bucket.exists("kept.db"), timeout=20)
        puts = requests(syncer, "PutObject")
        snapshots = metric(syncer, "s3sync_sqlite_snapshots_total")
        for _ in range(3):  # reads, listings and flushes (which snapshot what changed) change
            assert await in_thread(ask, "count") == "4"  # nothing: not even a snapshot's own
            await syncer.poll_once()  # read-only connection, which opens and closes the -wal
            assert (await syncer.flush(timeout=20)).flushed
        assert requests(syncer, "PutObject") == puts
        assert metric(syncer, "s3sync_sqlite_snapshots_total") == snapshots
        assert await syncer.stop(timeout=30) == []
        # While it is down, the file's ctime moves and nothing else (a chmod, and back): only
        # its bytes could tell, and the object (a snapshot) is not the file's bytes (its
        # commits are in its -wal): its stat is trusted, nothing is uploaded.
        mode = os.stat(folder / "kept.db").st_mode
        os.chmod(folder / "kept.db", 0o600)
        os.chmod(folder / "kept.db", mode)
        again = await syncer_factory(sqlite_quiet=QUIET, sqlite_interval=INTERVAL)
        await again.poll_once()
        assert (await again.flush(timeout=20)).flushed
        assert requests(again, "PutObject") == 0
        assert await in_thread(ask, "count") == "4"
        assert await in_thread(ask, "close") == "closed"
    finally:
        if app.poll() is None:
            app.kill()
        app.wait()
    await eventually(
        lambda: rows_of(bucket.get("kept.db")) == ("ok", [1, 2, 3, 4]), timeout=20, interval=0.3
    )
    await again.poll_once()
    assert (await again.flush(timeout=20)).flushed
    assert metric(again, "s3sync_conflicts_total") == 0
    assert sorted(os.listdir(folder)) == [".s3sync-sidecar", "kept.db"]
    assert await in_thread(bucket.list_keys) == ["kept.db"]


async def test_a_remote_change_replaces_a_database_nobody_holds_and_its_stale_wal(
    syncer_factory: Any, bucket: Bucket, tmp_path: Path
) -> None:
    """An app killed with its database open leaves its -wal (its commits, also in the last
    snapshot) and a main file whose bytes are not the snapshot's: a newer version from S3 then
    replaces the database (no process holds it), with no conflict (the snapshot's ETag proves
    nothing of the file), and the stale -wal and -shm go, so the new version opens cleanly."""
    syncer = await syncer_factory(sqlite_quiet=QUIET, sqlite_interval=INTERVAL)
    folder: Path = syncer.folder
    app = subprocess.Popen(
        [sys.executable, APP, str(folder / "gone.db"), "wal", "-", "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert await in_thread(app.stdout.readline) == "ready\n"
    app.stdin.write("write 3\n")
    app.stdin.flush()
    assert await in_thread(app.stdout.readline) == "ok\n"
    app.kill()
    await in_thread(app.wait)
    assert (folder / "gone.db-wal").exists()
    await eventually(
        lambda: rows_of(bucket.get("gone.db")) == ("ok", [1, 2, 3]), timeout=20, interval=0.3
    )
    assert (await syncer.flush(timeout=20)).flushed
    other = tmp_path / "other.db"
    connection = sqlite3.connect(other)
    connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)")
    connection.executemany("INSERT INTO t (body) VALUES (?)", [(b"x",)] * 9)
    connection.commit()
    connection.close()
    await in_thread(bucket.put, "gone.db", other.read_bytes())
    await eventually(
        lambda: (folder / "gone.db").read_bytes() == other.read_bytes(), timeout=20, interval=0.2
    )
    assert sorted(os.listdir(folder)) == [".s3sync-sidecar", "gone.db"]
    assert rows_at(str(folder / "gone.db")) == ("ok", list(range(1, 10)))
    assert metric(syncer, "s3sync_conflicts_total") == 0


async def test_companions_alone_are_never_synced(
    syncer_factory: Any, bucket: Bucket, tmp_path: Path
) -> None:
    """A `-wal` left in S3 by another tool is not downloaded beside our database, and a file
    named like a companion of something that is not a database is synced like any file."""
    syncer = await syncer_factory(sqlite_quiet=QUIET, sqlite_interval=INTERVAL)
    folder: Path = syncer.folder
    connection = sqlite3.connect(folder / "app.db")
    connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)")
    connection.commit()
    connection.close()
    await eventually(lambda: bucket.exists("app.db"), timeout=20)
    await in_thread(bucket.put, "app.db-wal", b"not ours")
    (folder / "notes.txt-wal").write_bytes(b"just a file")
    await eventually(lambda: bucket.exists("notes.txt-wal"), timeout=20)
    await syncer.poll_once()
    await eventually(
        lambda: metric(syncer, "s3sync_skipped_paths_total", reason="sqlite_companion") == 1,
        timeout=20,
    )  # the listing's pass over `app.db-wal` skipped it, once
    assert (await syncer.flush(timeout=20)).flushed
    await syncer.poll_once()
    assert (await syncer.flush(timeout=20)).flushed
    assert not (folder / "app.db-wal").exists()
    assert metric(syncer, "s3sync_skipped_paths_total", reason="sqlite_companion") == 1


async def test_databases_matching_files_alone_are_synced_file_by_file(
    syncer_factory: Any, bucket: Bucket
) -> None:
    """SYNC_SQLITE_FILES_ALONE: there a database's `-journal` is a file like any other (a
    real hot journal would also keep the database from being snapshotted elsewhere: a
    read-only connection cannot roll it back, so it waits for the app)."""
    syncer = await syncer_factory(sqlite_files_alone=r".*/plain/.*")
    folder: Path = syncer.folder
    (folder / "plain").mkdir()
    for name in ("plain/app.db", "unit.db"):
        connection = sqlite3.connect(folder / name)
        connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        connection.commit()
        connection.close()
    (folder / "plain/app.db-journal").write_bytes(b"a file like any other here")
    await eventually(lambda: bucket.exists("plain/app.db-journal") and bucket.exists("unit.db"))
    assert (await syncer.flush(timeout=20)).flushed
    assert await in_thread(bucket.list_keys) == [
        "plain/",
        "plain/app.db",
        "plain/app.db-journal",
        "unit.db",
    ]
    assert metric(syncer, "s3sync_sqlite_snapshots_total", result="uploaded") == 1  # unit.db


async def test_off_syncs_every_file_on_its_own(syncer_factory: Any, bucket: Bucket) -> None:
    syncer = await syncer_factory(sqlite="off")
    folder: Path = syncer.folder
    connection = sqlite3.connect(folder / "app.db")
    connection.execute("PRAGMA journal_mode=wal")
    connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    connection.commit()
    connection.close()
    await eventually(lambda: bucket.exists("app.db"), timeout=20)
    data = await in_thread(bucket.get, "app.db")
    assert data == (folder / "app.db").read_bytes()  # the file itself, not a snapshot
    assert metric(syncer, "s3sync_sqlite_snapshots_total", result="uploaded") == 0


# -- the pure parts ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rel", "base"),
    [
        ("app.db-wal", "app.db"),
        ("d/app.db-shm", "d/app.db"),
        ("x-journal", "x"),
        ("app.db", None),
        ("-wal", None),
        ("d/-wal", None),
        ("app.db-walrus", None),
    ],
)
def test_companion_names(rel: str, base: str | None) -> None:
    assert companion_base(rel) == base


def test_a_snapshot_is_due_when_quiet_or_at_the_interval(tmp_path: Path) -> None:
    submitted: list[tuple[str, Hint]] = []
    databases = Databases(
        tree=Tree(str(tmp_path), ".work"),  # never read: no companion names here
        files_alone=re.compile("^$"),
        submit=lambda rel, hint: submitted.append((rel, hint)),
        quiet=1.0,
        interval=10.0,
    )
    databases.changed("a.db", now=100.0)
    assert databases.due(100.5) == ([], 101.0)
    databases.changed("a.db", now=100.9)  # still written: later
    assert databases.due(101.0) == ([], 101.9)
    for moment in range(101, 110):  # a steady load, never quiet for a second
        databases.changed("a.db", now=moment + 0.5)
    assert databases.due(109.9) == ([], 110.0)
    assert databases.due(110.0) == (["a.db"], None)  # the interval bounds the wait
    databases.changed("b.db", now=200.0)
    assert databases.expedite() == ["b.db"]
    assert submitted == [("b.db", Hint.CONTENT | Hint.WRITTEN)]
    assert databases.due(300.0) == ([], None)


def test_the_lock_probe_sees_a_transaction_and_an_open_wal_connection(tmp_path: Path) -> None:
    """Another process's locks, as the probe sees them: a rollback-mode transaction, a WAL-mode
    connection merely open; an idle rollback-mode connection holds none (not seen)."""
    script = (
        "import sqlite3,sys\n"
        "c=sqlite3.connect(sys.argv[1],isolation_level=None)\n"
        "c.execute('PRAGMA journal_mode='+sys.argv[2])\n"
        "c.execute('CREATE TABLE IF NOT EXISTS t(x)')\n"
        "if sys.argv[3]=='txn': c.execute('BEGIN IMMEDIATE'); c.execute('INSERT INTO t "
        "VALUES(1)')\n"
        "print('ready',flush=True); sys.stdin.readline()\n"
    )
    fd = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
    try:
        for name, mode, what, seen in [
            ("w.db", "wal", "idle", True),
            ("r.db", "delete", "txn", True),
            ("i.db", "delete", "idle", False),
        ]:
            process = subprocess.Popen(
                [sys.executable, "-c", script, str(tmp_path / name), mode, what],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                assert process.stdout is not None and process.stdout.readline() == "ready\n"
                assert held_open(At(fd, name)) is seen, name
            finally:
                process.kill()
                process.wait()
            assert held_open(At(fd, name)) is False, name  # gone with the process
    finally:
        os.close(fd)


def test_a_snapshot_never_follows_a_symlinked_companion(tmp_path: Path) -> None:
    """SQLite opens `-wal` and `-shm` by name, following symlinks: one planted beside a
    database is refused (the path is skipped as unsafe), and nothing is copied."""
    folder = tmp_path / "folder"
    (folder / ".work").mkdir(parents=True)
    outside = tmp_path / "outside.db-wal"
    outside.write_bytes(b"\0" * 64)
    connection = sqlite3.connect(folder / "app.db")
    connection.execute("PRAGMA journal_mode=wal")
    connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    connection.commit()
    connection.close()  # clean: no -wal left
    os.symlink(outside, folder / "app.db-wal")
    tree = Tree(str(folder), ".work")
    tree.start()
    try:
        temp = tree.temp(temp_name())
        with pytest.raises(UnsafeParentError):
            snapshot(tree, "app.db", temp)
        assert os.listdir(folder / ".work") == []
        assert outside.read_bytes() == b"\0" * 64
    finally:
        tree.close()
