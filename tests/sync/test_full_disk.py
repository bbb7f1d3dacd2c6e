"""A full volume (ENOSPC) at start, during downloads and during the state's writes, on a real
small filesystem (a tmpfs this test mounts): nothing is deleted or lost, the saved state is left
as it is, and the sync goes on once there is space again.

Needs root (or the right to mount): skipped with the reason otherwise."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest
from support.bucket import Bucket
from support.metrics import metric, requests
from support.volumes import fill, small_volume
from support.waiting import eventually, in_thread

from sidecar.core.model import Kind, LocalEntry, RemoteEntry, Synced
from sidecar.core.store import StateUnavailable, SyncedStore

FILE = LocalEntry(Kind.FILE, size=3, mtime_ns=1_000, mode=0o100644, ino=9, ctime_ns=2_000)
RECORD = Synced(FILE, RemoteEntry("e1", 3, "1700000000"))


async def test_a_state_that_cannot_be_read_now_is_left_as_it_is(tmp_path: Path) -> None:
    """A full disk at start: SQLite cannot open the state (it needs its shared-memory file).
    The start stops with a clear error, the file is untouched (same bytes), and once there is
    space it loads whole (before, it was deleted as "unreadable")."""
    with small_volume(tmp_path / "volume") as volume:
        path = str(volume / "state.sqlite3")
        store = SyncedStore(path, "identity")
        await store.load()
        store.note("kept.txt", RECORD)
        await store.close()
        before = Path(path).read_bytes()
        filler = fill(volume)
        again = SyncedStore(path, "identity")
        with pytest.raises(StateUnavailable, match="left as it is"):
            await again.load()
        await again.close()
        assert Path(path).read_bytes() == before
        assert not list(volume.glob("state.sqlite3.*-*"))  # nothing set aside
        filler.unlink()
        (volume / ".filler-last").unlink(missing_ok=True)
        third = SyncedStore(path, "identity")
        assert await third.load() == {"kept.txt": RECORD}
        await third.close()


async def test_a_locked_state_is_left_as_it_is(tmp_path: Path) -> None:
    """Another process holds the state locked (a second sidecar on the same folder): not
    readable now, so nothing is decided and nothing is touched."""
    path = str(tmp_path / "state.sqlite3")
    store = SyncedStore(path, "identity")
    await store.load()
    store.note("kept.txt", RECORD)
    await store.close()
    holder = sqlite3.connect(path, isolation_level=None, timeout=0)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        again = SyncedStore(path, "identity")
        with pytest.raises(StateUnavailable):
            await again.load()
        await again.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    third = SyncedStore(path, "identity")
    assert await third.load() == {"kept.txt": RECORD}
    await third.close()


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda path: Path(path).write_bytes(b"this is not a database" * 100), "corrupt"),
        (lambda path: None, "foreign"),
    ],
    ids=["corrupt", "foreign"],
)
async def test_a_state_proven_unusable_is_set_aside_never_deleted(
    tmp_path: Path, damage: object, why: str
) -> None:
    """A state proven corrupt, or proven another's (saved for another bucket, prefix or
    folder), is kept under another name, and the start goes on without it."""
    path = str(tmp_path / "state.sqlite3")
    store = SyncedStore(path, "identity")
    await store.load()
    store.note("kept.txt", RECORD)
    await store.close()
    damage(path)  # type: ignore[operator]
    before = Path(path).read_bytes()
    identity = "identity" if why == "corrupt" else "another bucket"
    again = SyncedStore(path, identity)
    assert await again.load() == {}
    await again.close()
    aside = list(tmp_path.glob(f"state.sqlite3.{why}-*"))
    assert [p.name for p in aside if not p.name.endswith(("-wal", "-shm"))] != []
    kept = next(p for p in aside if not p.name.endswith(("-wal", "-shm")))
    assert kept.read_bytes() == before
    if why == "foreign":
        with sqlite3.connect(kept) as connection:
            assert connection.execute("SELECT rel FROM synced").fetchall() == [("kept.txt",)]


async def test_deletions_made_while_down_survive_a_full_disk_at_start(
    syncer_factory, bucket: Bucket, tmp_path: Path
) -> None:
    """The reproduction: synced, stopped; while down a file is deleted in S3 and another here;
    the volume is full at the next start. That start fails touching nothing; the next one,
    with space again, deletes each where it is still present (before, the state was deleted,
    and both files came back)."""
    with small_volume(tmp_path / "volume", "4m") as volume:
        folder = volume / "folder"
        syncer = await syncer_factory(directory=folder)
        for name in ("gone-in-s3.txt", "gone-here.txt", "kept.txt"):
            (folder / name).write_bytes(name.encode())
        await eventually(lambda: in_thread(lambda: len(bucket.list_keys()) == 3))
        assert await syncer.stop(timeout=30) == []
        await in_thread(bucket.delete, "gone-in-s3.txt")
        (folder / "gone-here.txt").unlink()
        state = folder / ".s3sync-sidecar" / "state.sqlite3"
        before = state.read_bytes()
        filler = fill(volume)
        with pytest.raises(StateUnavailable):
            await syncer_factory(directory=folder)
        assert state.read_bytes() == before
        assert sorted(p.name for p in folder.glob("*.txt")) == ["gone-in-s3.txt", "kept.txt"]
        assert sorted(await in_thread(bucket.list_keys)) == ["gone-here.txt", "kept.txt"]
        filler.unlink()
        (volume / ".filler-last").unlink(missing_ok=True)
        syncer = await syncer_factory(directory=folder)
        await eventually(lambda: in_thread(lambda: bucket.list_keys() == ["kept.txt"]))
        await eventually(lambda: sorted(p.name for p in folder.glob("*.txt")) == ["kept.txt"])
        assert requests(syncer, "PutObject") == 0


async def test_a_download_to_a_full_volume_shows_nothing_and_arrives_later(
    syncer_factory, bucket: Bucket, tmp_path: Path
) -> None:
    """A new object while the volume is full: no partial file appears in the folder (nor in
    its working folder), the failure is counted and retried, `/healthz` says the volume is
    full, and once there is space the file arrives and the condition clears."""
    with small_volume(tmp_path / "volume", "4m") as volume:
        folder = volume / "folder"
        syncer = await syncer_factory(directory=folder)
        filler = fill(volume)
        data = os.urandom(300_000)
        await in_thread(bucket.put, "big.bin", data)
        await eventually(
            lambda: metric(syncer, "s3sync_local_errors_total", operation="io") >= 2,
            what="two failed attempts",
        )
        assert not (folder / "big.bin").exists()
        work = folder / ".s3sync-sidecar"
        assert [
            p.name for p in work.iterdir() if p.name != "state.sqlite3" and "-" not in p.name
        ] == []
        assert any("volume is full" in line for line in syncer.degraded())
        filler.unlink()
        (volume / ".filler-last").unlink(missing_ok=True)
        await eventually(
            lambda: (folder / "big.bin").exists() and (folder / "big.bin").read_bytes() == data,
            timeout=30,
            what="the download once there is space",
        )
        assert not any("volume is full" in line for line in syncer.degraded())


async def test_records_written_while_the_volume_is_full_are_kept_until_they_can_be(
    syncer_factory, bucket: Bucket, tmp_path: Path
) -> None:
    """The state's writes fail while the volume is full (another client's chmod applied here
    needs no space, its record does): the records wait in memory and are written once there
    is space, so a restart knows the new mode and sends nothing back."""
    with small_volume(tmp_path / "volume", "4m") as volume:
        folder = volume / "folder"
        syncer = await syncer_factory(directory=folder)
        (folder / "tool.sh").write_bytes(b"#!/bin/sh\n")
        await eventually(lambda: bucket.exists("tool.sh"))
        await syncer._running().scheduler.wait_idle()
        written = int((await in_thread(bucket.head, "tool.sh"))["LastModified"].timestamp())
        await eventually(lambda: time.time() >= written + 1, what="the next second")
        filler = fill(volume)
        await in_thread(
            bucket.set_metadata, "tool.sh", {"mode": str(0o100700), "mtime": "1400000000"}
        )
        await eventually(lambda: os.stat(folder / "tool.sh").st_mode & 0o777 == 0o700)
        store = syncer._running().store
        await eventually(lambda: store.health.last_error is not None, what="a failed write")
        filler.unlink()
        (volume / ".filler-last").unlink(missing_ok=True)
        await eventually(lambda: store.health.last_error is None, timeout=10, what="a write")
        assert await syncer.stop(timeout=30) == []
        database = folder / ".s3sync-sidecar" / "state.sqlite3"
        with sqlite3.connect(database) as connection:
            mode = connection.execute("SELECT mode FROM synced WHERE rel='tool.sh'").fetchone()
        assert mode == (0o100700,)
        again = await syncer_factory(directory=folder)
        await again._running().scheduler.wait_idle()
        assert requests(again, "PutObject") == 0
        assert requests(again, "GetObject") == 0
