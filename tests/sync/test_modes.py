"""SYNC_MODE's one-way modes against moto, with real inotify: upload-only never lists, downloads
or changes the folder because of S3; download-only never writes to S3 and keeps a local change
as a conflict copy when S3 changes the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support.bucket import Bucket
from support.metrics import metric, requests
from support.waiting import eventually, in_thread

from sidecar.local.conflicts import is_conflict


async def test_upload_only(syncer_factory: Any, bucket: Bucket, tmp_path: Path) -> None:
    await in_thread(bucket.put, "theirs.txt", b"another client's")
    folder = tmp_path / "folder"
    syncer = await syncer_factory(directory=folder, mode="upload-only", download_interval=0.2)
    (folder / "a.txt").write_bytes(b"a1")
    (folder / "b.txt").write_bytes(b"b1")
    await eventually(lambda: bucket.exists("a.txt") and bucket.exists("b.txt"))

    # S3 changes nothing here: not a new key, not a change, not a delete.
    await in_thread(bucket.put, "a.txt", b"overwritten elsewhere")
    await in_thread(bucket.delete, "b.txt")
    await syncer.poll_once()
    await syncer._running().scheduler.wait_idle()
    assert not (folder / "theirs.txt").exists()
    assert (folder / "a.txt").read_bytes() == b"a1"
    assert (folder / "b.txt").read_bytes() == b"b1"

    # The folder is the source of truth: the next local change is written over S3's.
    (folder / "a.txt").write_bytes(b"a2")
    await eventually(lambda: bucket.get("a.txt") == b"a2", what="the local version in S3")
    (folder / "b.txt").unlink()
    (folder / "c.txt").write_bytes(b"c1")
    await eventually(lambda: bucket.exists("c.txt"))
    assert await in_thread(bucket.get, "theirs.txt") == b"another client's"
    assert requests(syncer, "ListObjectsV2") == 0
    assert requests(syncer, "GetObject") == 0
    assert metric(syncer, "s3sync_conflicts_total") == 0
    assert (await syncer.stop()) == []

    # A delete made while it was down is applied at start, still without listing.
    (folder / "c.txt").unlink()
    restarted = await syncer_factory(directory=folder, mode="upload-only")
    await eventually(lambda: not bucket.exists("c.txt"), what="c.txt deleted in S3")
    await restarted._running().scheduler.wait_idle()
    assert requests(restarted, "ListObjectsV2") == 0
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == ["a.txt"]
    readiness = restarted.readiness()
    assert readiness["poll"]["ok"] and readiness["restore"]["ok"]


async def test_upload_only_never_deletes_another_clients_newer_object(
    syncer_factory: Any, bucket: Bucket
) -> None:
    syncer = await syncer_factory(mode="upload-only")
    path = syncer.folder / "shared.txt"
    path.write_bytes(b"ours")
    await eventually(lambda: bucket.exists("shared.txt"))
    await syncer._running().scheduler.wait_idle()
    await in_thread(bucket.put, "shared.txt", b"theirs, newer")
    path.unlink()
    await eventually(lambda: requests(syncer, "DeleteObject") >= 1, what="the delete tried")
    await syncer._running().scheduler.wait_idle()
    assert await in_thread(bucket.get, "shared.txt") == b"theirs, newer"


async def test_download_only(syncer_factory: Any, bucket: Bucket, tmp_path: Path) -> None:
    await in_thread(bucket.put, "doc.txt", b"v1")
    await in_thread(bucket.put, "other.txt", b"o1")
    folder = tmp_path / "folder"
    syncer = await syncer_factory(directory=folder, mode="download-only")
    assert (folder / "doc.txt").read_bytes() == b"v1"

    # Local changes stay local.
    (folder / "mine.txt").write_bytes(b"never in S3")
    (folder / "doc.txt").write_bytes(b"edited here")
    (folder / "other.txt").unlink()
    (folder / "new-dir").mkdir()
    await syncer.poll_once()
    await syncer._running().scheduler.wait_idle()
    assert sorted(await in_thread(bucket.list_keys)) == ["doc.txt", "other.txt"]
    assert await in_thread(bucket.get, "doc.txt") == b"v1"

    # S3 changes the key: its version takes the name, the local one is kept beside it.
    await in_thread(bucket.put, "doc.txt", b"v2 from S3")
    await eventually(lambda: (folder / "doc.txt").read_bytes() == b"v2 from S3")
    copies = [p for p in folder.iterdir() if is_conflict(p.name)]
    assert [p.read_bytes() for p in copies] == [b"edited here"]
    await syncer._running().scheduler.wait_idle()
    assert sorted(await in_thread(bucket.list_keys)) == ["doc.txt", "other.txt"]
    assert requests(syncer, "PutObject") == 0
    assert requests(syncer, "DeleteObject") == 0
    assert requests(syncer, "CopyObject") == 0
    assert await syncer.stop() == []  # nothing waits to go to S3: exit 0
