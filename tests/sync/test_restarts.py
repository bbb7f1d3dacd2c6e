"""Restarts on a folder that survived (EFS, a host path): the synced state saved in the working
folder makes the sidecar decide as if it had never stopped. Changes made on either side while
it was down are synced without conflict copies, whatever was rewritten in place (same size, the
mtime put back) is found by its bytes, and what a start proved is not read again. (Deletions
made while it was down, and the guard against a wiped folder: test_deletes.py; changes on both
sides: test_conflicts.py.) Last, the saved state itself: what is written is what a restart
reads back."""

from __future__ import annotations

import os
import sqlite3
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from asyncinotify import Inotify, Mask
from support.bucket import Bucket
from support.folders import conflict_copies, synced_folder
from support.metrics import requests
from support.waiting import eventually, in_thread

from sidecar.core.model import Kind, LocalEntry, RemoteEntry, Synced
from sidecar.core.store import SyncedStore
from sidecar.engine import restore


async def test_restart_on_the_same_folder_transfers_nothing(
    syncer_factory, bucket: Bucket, tmp_path: Path
) -> None:
    folder = tmp_path / "folder"
    first = await syncer_factory(directory=folder)
    for index in range(20):
        (folder / f"f{index}.txt").write_bytes(os.urandom(100))
    (folder / "sub").mkdir()
    await eventually(lambda: in_thread(lambda: len(bucket.list_keys()) == 21))
    assert await first.stop(timeout=10) == []

    second = await syncer_factory(directory=folder)
    await second.poll_once()
    for operation in ("PutObject", "GetObject", "DeleteObject", "CopyObject"):
        assert requests(second, operation) == 0, operation


@pytest.mark.any_s3
async def test_changed_in_s3_while_down(syncer_factory, bucket: Bucket, tmp_path: Path) -> None:
    folder = await synced_folder(syncer_factory, bucket, tmp_path)
    await in_thread(bucket.put, "f00.txt", b"v2 from another client")
    syncer = await syncer_factory(directory=folder)
    assert (folder / "f00.txt").read_bytes() == b"v2 from another client"
    assert conflict_copies(folder, await in_thread(bucket.list_keys)) == []
    assert requests(syncer, "PutObject") == 0


@pytest.mark.any_s3
async def test_changed_here_while_down(syncer_factory, bucket: Bucket, tmp_path: Path) -> None:
    folder = await synced_folder(syncer_factory, bucket, tmp_path)
    (folder / "f01.txt").write_bytes(b"v2 written while the sidecar was down")
    syncer = await syncer_factory(directory=folder)
    await eventually(
        lambda: in_thread(lambda: bucket.get("f01.txt") == b"v2 written while the sidecar was down")
    )
    assert conflict_copies(folder, await in_thread(bucket.list_keys)) == []
    assert requests(syncer, "GetObject") == 0


async def test_state_saved_for_another_prefix_is_not_used(
    syncer_factory, bucket: Bucket, tmp_path: Path
) -> None:
    folder = await synced_folder(syncer_factory, bucket, tmp_path)
    # Same folder, another prefix: the records describe keys of the first one.
    syncer = await syncer_factory(directory=folder, prefix="other/")
    await eventually(lambda: in_thread(lambda: len(bucket.list_keys("other/")) == 3))
    assert sorted(p.name for p in folder.glob("f*.txt")) == ["f00.txt", "f01.txt", "f02.txt"]
    assert len(await in_thread(bucket.list_keys)) == 6
    assert requests(syncer, "DeleteObject") == 0


async def test_a_broken_state_file_is_set_aside(
    syncer_factory, bucket: Bucket, tmp_path: Path, caplog
) -> None:
    folder = await synced_folder(syncer_factory, bucket, tmp_path)
    state = folder / ".s3sync-sidecar" / "state.sqlite3"
    for suffix in ("-wal", "-shm"):
        Path(str(state) + suffix).unlink(missing_ok=True)
    state.write_bytes(b"this is not a database" * 100)
    syncer = await syncer_factory(directory=folder)
    assert "cannot be read" in caplog.text
    assert sorted(p.name for p in folder.glob("f*.txt")) == ["f00.txt", "f01.txt", "f02.txt"]
    assert requests(syncer, "DeleteObject") == 0
    (folder / "after.txt").write_bytes(b"still syncing")
    await eventually(lambda: in_thread(lambda: bucket.get("after.txt") == b"still syncing"))


async def test_the_state_is_written_as_paths_sync(
    syncer_factory, bucket: Bucket, tmp_path: Path
) -> None:
    folder = tmp_path / "folder"
    await syncer_factory(directory=folder)
    (folder / "noted.txt").write_bytes(b"n")
    await eventually(lambda: in_thread(lambda: bucket.exists("noted.txt")))
    state = folder / ".s3sync-sidecar" / "state.sqlite3"

    def saved() -> set[str]:
        with sqlite3.connect(state) as connection:
            return {row[0] for row in connection.execute("SELECT rel FROM synced")}

    await eventually(lambda: "noted.txt" in saved(), what="the record saved within seconds")
    os.unlink(folder / "noted.txt")
    await eventually(lambda: "noted.txt" not in saved(), what="the record dropped")


def _rewrite_keeping_size_and_mtime(path: Path, data: bytes) -> None:
    before = os.lstat(path)
    assert len(data) == before.st_size
    with open(path, "r+b") as file:
        file.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


async def test_rewritten_keeping_size_and_mtime_while_down_then_changed_in_s3(
    syncer_factory, bucket: Bucket, tmp_path: Path
) -> None:
    """While the sidecar is down, an app rewrites a file in place and puts its mtime back
    (`rsync -t`), and another client changes the object: the stat matches the saved record,
    so only the content (against the synced ETag) shows the local change. Both versions are
    kept (found by the chaos test, seed 13: the download replaced the app's bytes)."""
    folder = await synced_folder(syncer_factory, bucket, tmp_path)
    _rewrite_keeping_size_and_mtime(folder / "f00.txt", b"v9 0")
    await in_thread(bucket.put, "f00.txt", b"v2 from another client")
    await syncer_factory(directory=folder)
    await eventually(lambda: len(conflict_copies(folder, [])) == 1, what="a conflict copy")
    contents = {p.read_bytes() for p in folder.glob("f00*")}
    assert contents == {b"v9 0", b"v2 from another client"}


async def test_rewritten_keeping_size_and_mtime_while_down_then_deleted_in_s3(
    syncer_factory, bucket: Bucket, tmp_path: Path
) -> None:
    """The same rewrite, and the object deleted elsewhere: the local change wins, uploaded."""
    folder = await synced_folder(syncer_factory, bucket, tmp_path)
    _rewrite_keeping_size_and_mtime(folder / "f01.txt", b"v9 1")
    await in_thread(bucket.delete, "f01.txt")
    await syncer_factory(directory=folder)
    await eventually(lambda: bucket.exists("f01.txt"), what="the local version uploaded")
    assert await in_thread(bucket.get, "f01.txt") == b"v9 1"
    assert (folder / "f01.txt").read_bytes() == b"v9 1"


async def test_rewritten_keeping_size_and_mtime_while_down_is_uploaded_at_start(
    syncer_factory, bucket: Bucket, tmp_path: Path
) -> None:
    """The same rewrite with nothing changed in S3: only the ctime moved, and the bytes (proven
    against the synced ETag) are new, so the start uploads them (found by the chaos test, seed
    18: the folder kept bytes S3 never got)."""
    folder = await synced_folder(syncer_factory, bucket, tmp_path)
    _rewrite_keeping_size_and_mtime(folder / "f02.txt", b"v9 2")
    os.utime(folder / "f01.txt")  # a touch moves the ctime too, and is not a rewrite
    await syncer_factory(directory=folder)
    await eventually(lambda: bucket.get("f02.txt") == b"v9 2", what="the rewrite in S3")
    assert await in_thread(bucket.get, "f01.txt") == b"v1 1"
    assert await in_thread(bucket.get, "f00.txt") == b"v1 0"
    assert conflict_copies(folder, await in_thread(bucket.list_keys)) == []


async def test_rewritten_and_chmodded_while_down_is_uploaded_at_start(
    syncer_factory, bucket: Bucket, tmp_path: Path
) -> None:
    """The same rewrite, and a chmod with it: the stat then differs from the record by its
    mode only, which alone would be a metadata copy onto the old bytes. The ctime moved, so the
    bytes are proven first: the new bytes go up with the new mode."""
    folder = await synced_folder(syncer_factory, bucket, tmp_path)
    _rewrite_keeping_size_and_mtime(folder / "f00.txt", b"v9 0")
    os.chmod(folder / "f00.txt", 0o600)
    await syncer_factory(directory=folder)
    await eventually(lambda: bucket.get("f00.txt") == b"v9 0", what="the rewrite in S3")
    head = await in_thread(bucket.head, "f00.txt")
    assert stat.S_IMODE(int(head["Metadata"]["mode"])) == 0o600
    assert conflict_copies(folder, await in_thread(bucket.list_keys)) == []


def _opened_while(folder: Path) -> Inotify:
    """A test-side inotify that hears every file opened in `folder` (read with `_opened`)."""
    opened = Inotify(sync_timeout=0)
    opened.add_watch(folder, Mask.OPEN)
    return opened


def _opened(opened: Inotify) -> list[str]:
    names = []
    while (event := opened.sync_get()) is not None:
        if event.name is not None and not str(event.name).startswith("."):
            names.append(str(event.name))
    return names


async def test_a_file_touched_while_down_is_read_once_then_trusted(
    syncer_factory, bucket: Bucket, tmp_path: Path
) -> None:
    """A file whose ctime moved while the sidecar was down but whose bytes are the synced ones
    (written again with the same bytes) is read at the next start to prove it, and that proof
    is recorded: the start after that reads nothing."""
    folder = await synced_folder(syncer_factory, bucket, tmp_path)
    _rewrite_keeping_size_and_mtime(folder / "f01.txt", b"v1 1")
    with _opened_while(folder) as opened:
        syncer = await syncer_factory(directory=folder)
        await syncer._running().scheduler.wait_idle()
        assert await syncer.stop(timeout=30) == []
        assert _opened(opened) == ["f01.txt"]
        syncer = await syncer_factory(directory=folder)
        await syncer._running().scheduler.wait_idle()
        assert _opened(opened) == []
    assert requests(syncer, "PutObject") == 0
    assert requests(syncer, "GetObject") == 0


async def test_a_restart_reads_no_file_it_restored(
    syncer_factory, bucket: Bucket, tmp_path: Path
) -> None:
    """Restored files are recorded with the ctime they have in place (the link into place and
    the removal of the temporary name each move it), so a restart finds their ctimes unmoved
    and opens none of them: before, it read every restored file to prove its bytes, a whole
    folder's worth at every start."""
    for index in range(20):
        await in_thread(bucket.put, f"r{index:02d}.txt", f"restored {index}".encode())
    folder = tmp_path / "folder"
    syncer = await syncer_factory(directory=folder)
    assert await syncer.stop(timeout=30) == []
    database = folder / ".s3sync-sidecar" / "state.sqlite3"
    with sqlite3.connect(database) as connection:
        saved = dict(connection.execute("SELECT rel, ctime_ns FROM synced").fetchall())
    on_disk = {p.name: os.lstat(p).st_ctime_ns for p in folder.glob("r*.txt")}
    assert len(on_disk) == 20
    assert {rel: saved[rel] for rel in on_disk} == on_disk

    with Inotify(sync_timeout=0) as opened:
        opened.add_watch(folder, Mask.OPEN)
        syncer = await syncer_factory(directory=folder)
        await syncer._running().scheduler.wait_idle()
        names = []
        while (event := opened.sync_get()) is not None:
            if event.name is not None:
                names.append(str(event.name))
    assert [name for name in names if name.startswith("r")] == []
    assert requests(syncer, "GetObject") == 0


@pytest.mark.parametrize("column", ["ctime_ns", "checksum"])
async def test_a_state_saved_without_a_later_column_is_kept(
    syncer_factory, bucket: Bucket, tmp_path: Path, column: str
) -> None:
    """A state file from the version before ctimes (or checksums) were saved: its records are
    kept (the column is added), nothing is uploaded or downloaded again."""
    folder = await synced_folder(syncer_factory, bucket, tmp_path)
    database = folder / ".s3sync-sidecar" / "state.sqlite3"
    with sqlite3.connect(database) as connection:
        connection.execute(f"ALTER TABLE synced DROP COLUMN {column}")
    syncer = await syncer_factory(directory=folder)
    await syncer._running().scheduler.wait_idle()
    assert requests(syncer, "PutObject") == 0
    assert requests(syncer, "GetObject") == 0


async def test_a_metadata_change_after_our_last_write_is_applied_after_a_restart(
    syncer_factory, bucket: Bucket, tmp_path: Path
) -> None:
    """Stopped right after an upload, before any listing: the saved record knows when S3
    answered our write, so another client's chmod made since is applied at start instead of
    being taken for our own write (found by the chaos test, seed 21 of the second long run)."""
    folder = tmp_path / "folder"
    syncer = await syncer_factory(directory=folder, download_interval=3600)
    (folder / "tool.sh").write_bytes(b"#!/bin/sh\n")
    await eventually(lambda: bucket.exists("tool.sh"))
    assert await syncer.stop() == []
    written = int((await in_thread(bucket.head, "tool.sh"))["LastModified"].timestamp())
    await eventually(lambda: time.time() >= written + 1, what="the next second")
    await in_thread(
        bucket.set_metadata, "tool.sh", {"mode": str(stat.S_IFREG | 0o700), "mtime": "1400000000"}
    )
    await syncer_factory(directory=folder)
    await eventually(
        lambda: stat.S_IMODE(os.lstat(folder / "tool.sh").st_mode) == 0o700, what="the chmod"
    )
    assert (folder / "tool.sh").read_bytes() == b"#!/bin/sh\n"


def _app_rewrites_right_after_the_look(
    monkeypatch: pytest.MonkeyPatch, path: Path, data: bytes, done: list[str]
) -> None:
    """Wrap the restore's real look at the folder (one lstat per synced file, in a thread): as
    soon as it has looked, the app rewrites `path` with `data`, the same size, and puts its
    mtime back. Before the fix nothing watched the folder yet, the watch that came up next
    reported only that the file exists, and its stat matched the record (chaos seed 71024)."""
    real_look = restore._missing_files

    def look_then_the_app_writes(*args: Any, **kwargs: Any) -> Any:
        found = real_look(*args, **kwargs)
        if not done:
            _rewrite_keeping_size_and_mtime(path, data)
            done.append(path.name)
        return found

    monkeypatch.setattr(restore, "_missing_files", look_then_the_app_writes)


async def test_a_same_size_rewrite_made_while_the_sidecar_starts_is_uploaded(
    syncer_factory, bucket: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app rewrites a synced file (same size, mtime put back) while the sidecar restarts,
    after the restore has looked at the folder: the write is uploaded, and the stop that
    follows says so only once it is in S3 (chaos seed 71024: never uploaded, yet the stop said
    "every local change is in S3")."""
    folder = await synced_folder(syncer_factory, bucket, tmp_path)
    written: list[str] = []
    _app_rewrites_right_after_the_look(monkeypatch, folder / "f01.txt", b"v9 1", written)
    syncer = await syncer_factory(directory=folder)
    assert written == ["f01.txt"]
    await eventually(lambda: bucket.get("f01.txt") == b"v9 1", what="the app's write in S3")
    assert await syncer.stop(timeout=30) == []
    assert (folder / "f01.txt").read_bytes() == b"v9 1"
    assert await in_thread(bucket.get, "f00.txt") == b"v1 0"
    assert conflict_copies(folder, await in_thread(bucket.list_keys)) == []


async def test_a_rewrite_while_starting_is_not_absorbed_by_a_remote_chmod(
    syncer_factory, bucket: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chaos seed's own shape: while the sidecar was down another client changed the
    object's metadata only (a copy onto itself), so the restore applies that metadata here;
    the app's same-size rewrite lands after the restore's look. Applying the metadata must not
    record the app's bytes as synced: they are uploaded, the other client's mode is kept, and
    a later restart has nothing to send."""
    folder = await synced_folder(syncer_factory, bucket, tmp_path)
    written = int((await in_thread(bucket.head, "f02.txt"))["LastModified"].timestamp())
    await eventually(lambda: time.time() >= written + 1, what="the next second")
    await in_thread(
        bucket.set_metadata, "f02.txt", {"mode": str(stat.S_IFREG | 0o640), "mtime": "1400000000"}
    )
    rewritten: list[str] = []
    _app_rewrites_right_after_the_look(monkeypatch, folder / "f02.txt", b"v9 2", rewritten)
    syncer = await syncer_factory(directory=folder)
    assert rewritten == ["f02.txt"]
    await eventually(lambda: bucket.get("f02.txt") == b"v9 2", what="the app's write in S3")
    assert await syncer.stop(timeout=30) == []
    assert (folder / "f02.txt").read_bytes() == b"v9 2"
    assert conflict_copies(folder, await in_thread(bucket.list_keys)) == []

    syncer = await syncer_factory(directory=folder)  # (the wrapper wrote once: it looks only)
    await syncer._running().scheduler.wait_idle()
    assert requests(syncer, "PutObject") == 0
    assert await in_thread(bucket.get, "f02.txt") == b"v9 2"


async def test_a_same_size_rewrite_of_a_file_we_uploaded_in_parts_is_uploaded_at_start(
    syncer_factory, bucket: Bucket, tmp_path: Path
) -> None:
    """A 12 MiB file the sidecar uploaded in 5 MiB parts, rewritten while it was down with new
    bytes of the same size and its mtime put back: the part size it used is recorded, so its
    multipart ETag proves the bytes changed, and the start uploads them (before, the ETag
    "could not tell" and the change never reached S3)."""
    folder = tmp_path / "folder"
    parts = {"multipart_threshold": 5 * 1024 * 1024, "multipart_chunksize": 5 * 1024 * 1024}
    syncer = await syncer_factory(directory=folder, **parts)
    (folder / "big.bin").write_bytes(os.urandom(12 * 1024 * 1024))
    (folder / "small.txt").write_bytes(b"small v1")
    await eventually(lambda: in_thread(lambda: len(bucket.list_keys()) == 2), timeout=30)
    assert "-" in (await in_thread(bucket.head, "big.bin"))["ETag"]
    assert await syncer.stop(timeout=30) == []
    rewritten = os.urandom(12 * 1024 * 1024)
    _rewrite_keeping_size_and_mtime(folder / "big.bin", rewritten)
    _rewrite_keeping_size_and_mtime(folder / "small.txt", b"small v2")
    await syncer_factory(directory=folder, **parts)
    await eventually(lambda: bucket.get("small.txt") == b"small v2", what="the small rewrite")
    await eventually(
        lambda: bucket.get("big.bin") == rewritten, timeout=30, what="the 12 MiB rewrite"
    )
    assert conflict_copies(folder, await in_thread(bucket.list_keys)) == []


# -- the saved state itself (core/store.py, real SQLite files) ---------------------------------

FILE = LocalEntry(Kind.FILE, size=3, mtime_ns=1_000, mode=0o100644, ino=9, ctime_ns=2_000)
DIR = LocalEntry(Kind.DIR, size=4096, mtime_ns=1_000, mode=0o40755, ino=10)

RECORDS = {
    "listed": Synced(FILE, RemoteEntry("e1", 3, "1700000000", mtime_ns=1_000, mode=0o100644)),
    "ours-unlisted": Synced(FILE, RemoteEntry("e2", 3, "", written_by="1700000001")),
    "seen-within-its-second": Synced(
        FILE, RemoteEntry("e3", 3, "1700000002", mode=0o100755, unsettled=True)
    ),
    "unlisted-and-unsettled": Synced(
        FILE, RemoteEntry("e4", 3, "", written_by="1700000003", unsettled=True)
    ),
    "ours-in-parts": Synced(FILE, RemoteEntry("e5-3", 3, "1700000005", part_size=5 * 1024 * 1024)),
    "with-a-checksum": Synced(
        FILE, RemoteEntry("e6-3", 3, "1700000006", part_size=5 * 1024 * 1024, checksum="c2E=-3")
    ),
    "dir": Synced(DIR, None),
    "dir/marker": Synced(DIR, RemoteEntry("m", 0, "1700000004", is_dir=True)),
}


@pytest.mark.parametrize("rel", sorted(RECORDS))
async def test_a_record_survives_a_restart(tmp_path: Path, rel: str) -> None:
    path = str(tmp_path / "state.sqlite3")
    store = SyncedStore(path, "identity")
    await store.load()
    store.note(rel, RECORDS[rel])
    await store.close()

    again = SyncedStore(path, "identity")
    loaded = await again.load()
    await again.close()
    assert loaded == {rel: RECORDS[rel]}
    remote, expected = loaded[rel].remote, RECORDS[rel].remote
    # fields left out of equality on purpose must survive too
    assert loaded[rel].local.ctime_ns == RECORDS[rel].local.ctime_ns
    if expected is not None:
        assert remote is not None
        assert (remote.unsettled, remote.written_by) == (expected.unsettled, expected.written_by)
        assert remote.part_size == expected.part_size
        assert remote.checksum == expected.checksum


async def test_another_identity_starts_empty(tmp_path: Path) -> None:
    path = str(tmp_path / "state.sqlite3")
    store = SyncedStore(path, "bucket-a")
    await store.load()
    store.note("listed", RECORDS["listed"])
    await store.close()
    other = SyncedStore(path, "bucket-b")
    assert await other.load() == {}
    await other.close()
