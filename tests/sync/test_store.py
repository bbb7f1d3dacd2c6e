"""The saved sync state: what is written is what a restart reads back (real SQLite files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.core.model import Kind, LocalEntry, RemoteEntry, Synced
from sidecar.core.store import SyncedStore

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


async def test_another_identity_starts_empty(tmp_path: Path) -> None:
    path = str(tmp_path / "state.sqlite3")
    store = SyncedStore(path, "bucket-a")
    await store.load()
    store.note("listed", RECORDS["listed"])
    await store.close()
    other = SyncedStore(path, "bucket-b")
    assert await other.load() == {}
    await other.close()
