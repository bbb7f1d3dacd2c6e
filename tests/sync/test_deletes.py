"""Deletes, both ways, against moto with real inotify: a file or tree deleted in the folder is
deleted in S3, a key deleted in S3 is deleted in the folder (and the parents it alone held),
while running or while the sidecar was down. A delete never takes a version nobody saw: a
local change survives a remote delete, a remote change survives a local one, excluded keys
delete nothing, and the max-delete guard holds back a mass deletion from either side. (One-way
modes: test_modes.py; a delete through a symlink: test_symlink_escapes.py; the guard's
arithmetic: test_fold.py and test_reconcile.py.)"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from support.bucket import Bucket
from support.folders import read, synced_folder
from support.metrics import metric, requests
from support.waiting import eventually, in_thread

# -- in the folder, then in S3 -----------------------------------------------------------------


@pytest.mark.any_s3
async def test_deletes_of_files_and_trees(syncer_factory, bucket: Bucket) -> None:
    syncer = await syncer_factory()
    (syncer.folder / "keep.txt").write_bytes(b"keep")
    (syncer.folder / "gone.txt").write_bytes(b"gone")
    tree = syncer.folder / "tree" / "deeper"
    tree.mkdir(parents=True)
    for index in range(5):
        (tree / f"{index}.txt").write_bytes(b"x")
    await eventually(lambda: in_thread(lambda: len(bucket.list_keys()) == 9), what="all uploaded")

    (syncer.folder / "gone.txt").unlink()
    import shutil

    shutil.rmtree(syncer.folder / "tree")
    await eventually(
        lambda: in_thread(lambda: bucket.list_keys() == ["keep.txt"]), what="only keep.txt left"
    )


async def test_last_file_deleted_keeps_its_directory(syncer_factory, bucket: Bucket) -> None:
    syncer = await syncer_factory()
    await in_thread(bucket.put, "docs/only.txt", b"x")  # no marker: an implicit directory
    await eventually(lambda: (syncer.folder / "docs" / "only.txt").exists())
    await syncer.poll_once()
    (syncer.folder / "docs" / "only.txt").unlink()
    await eventually(
        lambda: in_thread(lambda: bucket.list_keys() == ["docs/"]),
        what="the emptied directory kept as a marker",
    )
    await syncer.poll_once()
    assert (syncer.folder / "docs").is_dir()


async def test_failed_deletes_and_metadata_updates_count_as_errors(
    syncer_factory: Any, bucket: Bucket, proxy: Any
) -> None:
    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern)
    path = syncer.folder / "doomed.txt"
    path.write_bytes(b"soon deleted")
    await eventually(lambda: bucket.exists("doomed.txt"))
    proxy.faults.methods = {"PUT", "DELETE"}  # CopyObject is a PUT
    proxy.faults.fail_next = 10**6
    os.chmod(path, 0o600)
    await eventually(
        lambda: metric(syncer, "s3sync_metadata_updates_total", side="remote", result="error") >= 1,
        timeout=60,  # the client itself retries a 500 up to 8 times (~13 s) before it fails
        what="a failed metadata update counted",
    )
    path.unlink()
    await eventually(
        lambda: metric(syncer, "s3sync_deletes_total", side="remote", result="error") >= 1,
        timeout=60,
        what="a failed delete counted",
    )
    assert metric(syncer, "s3sync_uploads_total", result="error") == 0
    proxy.faults.fail_next = 0
    await eventually(lambda: not bucket.exists("doomed.txt"), timeout=60)


# -- in S3, then in the folder -----------------------------------------------------------------


async def test_parents_left_empty_by_a_remote_delete_are_removed(
    syncer_factory: Any, bucket: Bucket
) -> None:
    await in_thread(bucket.put, "a/b/c/d/file", b"deep")
    await in_thread(bucket.put, "keep/x/file", b"stays")
    syncer = await syncer_factory()
    folder: Path = syncer.folder
    assert (folder / "a/b/c/d/file").read_bytes() == b"deep"
    (folder / "keep" / "x" / "local.txt").write_bytes(b"local content")
    await eventually(lambda: bucket.exists("keep/x/local.txt"))
    await in_thread(bucket.delete, "a/b/c/d/file")
    await in_thread(bucket.delete, "keep/x/file")
    await syncer.poll_once()
    await eventually(lambda: not (folder / "a").exists(), timeout=10, what="a/ removed")
    assert (folder / "keep" / "x" / "local.txt").read_bytes() == b"local content"
    assert not (folder / "keep" / "x" / "file").exists()


@pytest.mark.any_s3
async def test_remote_delete_keeps_a_locally_modified_file(syncer_factory, bucket: Bucket) -> None:
    syncer = await syncer_factory(download_interval=1000)
    folder: Path = syncer.folder
    await in_thread(bucket.put, "keep-me.txt", b"v1")
    await syncer.poll_once()
    await eventually(lambda: read(folder / "keep-me.txt") == b"v1")
    await in_thread(bucket.delete, "keep-me.txt")
    (folder / "keep-me.txt").write_bytes(b"v2 local")
    await syncer.poll_once()
    await eventually(
        lambda: in_thread(lambda: bucket.get("keep-me.txt") == b"v2 local"),
        what="local change re-uploaded, not deleted",
    )
    assert read(folder / "keep-me.txt") == b"v2 local"


@pytest.mark.any_s3
async def test_remote_change_beats_local_delete(syncer_factory, bucket: Bucket) -> None:
    """The app deletes the version it has while S3 already holds a newer one that has not
    reached the folder: the newer one comes back. (Once, on a loaded machine, the newer one had
    reached the folder before the delete: the first listing's look at our own upload (a HEAD
    after its second) was still running during the second listing, found v2, and downloaded it
    before the unlink, which then deleted v2, as a delete of what is there must. The test now
    waits for that look, so that the unlink meets v1, as it means to.)"""
    syncer = await syncer_factory(download_interval=1000)
    folder: Path = syncer.folder
    (folder / "x.txt").write_bytes(b"v1")
    await eventually(lambda: in_thread(lambda: bucket.exists("x.txt")))
    await syncer.poll_once()
    await syncer._running().scheduler.wait_idle()  # the look at our own upload, done
    await in_thread(bucket.put, "x.txt", b"v2 remote")
    await syncer.poll_once()  # learn of the new version before the local delete is handled
    (folder / "x.txt").unlink()
    await eventually(lambda: read(folder / "x.txt") == b"v2 remote", what="came back")
    assert await in_thread(bucket.get, "x.txt") == b"v2 remote"


@pytest.mark.any_s3
async def test_a_local_delete_never_deletes_a_newer_object_it_has_not_seen(
    syncer_factory, bucket: Bucket
) -> None:
    """The app deletes the file while S3 holds a newer version that no listing has shown: the
    delete is conditional on the ETag last synced, so the newer version stays and comes here.
    (Ceph RGW ignores If-Match on DELETE: the sidecar looks with a HEAD right before.)"""
    syncer = await syncer_factory(download_interval=1000)
    folder: Path = syncer.folder
    (folder / "x.txt").write_bytes(b"v1")
    await eventually(lambda: in_thread(lambda: bucket.exists("x.txt")))
    await syncer._running().scheduler.wait_idle()
    await in_thread(bucket.put, "x.txt", b"v2 remote")
    (folder / "x.txt").unlink()
    await eventually(lambda: read(folder / "x.txt") == b"v2 remote", what="came back")
    assert await in_thread(bucket.get, "x.txt") == b"v2 remote"
    assert metric(syncer, "s3sync_deletes_total", side="remote", result="ok") == 0


@pytest.mark.any_s3
async def test_a_retried_delete_never_deletes_a_version_written_meanwhile(
    syncer_factory, bucket: Bucket, proxy: Any
) -> None:
    """The delete's first send fails (500), and another client writes a new version before it
    is sent again: the retry must not delete it. (Ceph RGW ignores If-Match on DELETE: the HEAD
    that stands in for it is made again before each retry; chaos seed 45 lost such a version.)"""
    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern, download_interval=1000)
    folder: Path = syncer.folder
    (folder / "x.txt").write_bytes(b"v1")
    await eventually(lambda: in_thread(lambda: bucket.exists("x.txt")))
    await syncer._running().scheduler.wait_idle()

    async def another_client_writes() -> None:
        await in_thread(bucket.put, "x.txt", b"v2 remote")

    proxy.faults.methods = {"DELETE"}
    proxy.faults.while_failing = another_client_writes
    proxy.faults.fail_next = 1
    (folder / "x.txt").unlink()
    await eventually(lambda: read(folder / "x.txt") == b"v2 remote", what="came back")
    assert await in_thread(bucket.get, "x.txt") == b"v2 remote"
    assert proxy.faults.fail_next == 0


async def test_a_local_delete_after_the_remote_version_arrived_deletes_it(
    syncer_factory, bucket: Bucket
) -> None:
    """The other order: the newer version is in the folder when the app deletes the file.
    That is a delete of what is there, and it reaches S3 (what the app last had open, v1, is
    no longer anywhere to keep)."""
    syncer = await syncer_factory(download_interval=1000)
    folder: Path = syncer.folder
    (folder / "x.txt").write_bytes(b"v1")
    await eventually(lambda: in_thread(lambda: bucket.exists("x.txt")))
    await syncer.poll_once()
    await syncer._running().scheduler.wait_idle()
    await in_thread(bucket.put, "x.txt", b"v2 remote")
    await syncer.poll_once()
    await eventually(lambda: read(folder / "x.txt") == b"v2 remote", what="v2 downloaded")
    await syncer._running().scheduler.wait_idle()
    (folder / "x.txt").unlink()
    await eventually(lambda: in_thread(lambda: not bucket.exists("x.txt")), what="deleted")
    assert not (folder / "x.txt").exists()


async def test_exclude_remote_never_deletes_or_changes_local_files(
    syncer_factory: Any, bucket: Bucket
) -> None:
    syncer = await syncer_factory(exclude_remote=r"^cache/")
    folder: Path = syncer.folder
    (folder / "cache").mkdir()
    (folder / "cache" / "sub").mkdir()
    (folder / "cache" / "notes.txt").write_bytes(b"local notes")
    await eventually(lambda: bucket.exists("cache/notes.txt"), what="upload of an excluded key")
    await eventually(lambda: bucket.exists("cache/sub/"), what="marker of an excluded dir")
    for _ in range(3):
        await syncer.poll_once()
    await syncer._running().scheduler.wait_idle()
    assert (folder / "cache" / "notes.txt").read_bytes() == b"local notes"
    assert (folder / "cache" / "sub").is_dir()
    assert metric(syncer, "s3sync_deletes_total", side="local") == 0

    # Another client changes and deletes excluded keys: still nothing happens here.
    await in_thread(bucket.put, "cache/notes.txt", b"changed elsewhere")
    await in_thread(bucket.put, "cache/new.txt", b"never downloaded")
    await in_thread(bucket.delete, "cache/sub/")
    for _ in range(3):
        await syncer.poll_once()
    await syncer._running().scheduler.wait_idle()
    assert (folder / "cache" / "notes.txt").read_bytes() == b"local notes"
    assert not (folder / "cache" / "new.txt").exists()
    assert (folder / "cache" / "sub").is_dir()
    await in_thread(bucket.delete, "cache/notes.txt")
    for _ in range(3):
        await syncer.poll_once()
    await syncer._running().scheduler.wait_idle()
    assert (folder / "cache" / "notes.txt").read_bytes() == b"local notes"
    assert metric(syncer, "s3sync_deletes_total", side="local") == 0
    assert metric(syncer, "s3sync_downloads_total") == 0


# -- while the sidecar was down ----------------------------------------------------------------


@pytest.mark.any_s3
async def test_deleted_in_s3_while_down(syncer_factory, bucket: Bucket, tmp_path: Path) -> None:
    folder = await synced_folder(syncer_factory, bucket, tmp_path)
    await in_thread(bucket.delete, "f02.txt")
    await syncer_factory(directory=folder)
    assert not (folder / "f02.txt").exists(), "deleted here too, not resurrected"
    assert not await in_thread(bucket.exists, "f02.txt")
    assert (folder / "f00.txt").exists()


@pytest.mark.any_s3
async def test_deleted_here_while_down(syncer_factory, bucket: Bucket, tmp_path: Path) -> None:
    folder = await synced_folder(syncer_factory, bucket, tmp_path)
    (folder / "f00.txt").unlink()
    await syncer_factory(directory=folder)
    await eventually(lambda: in_thread(lambda: not bucket.exists("f00.txt")))
    assert not (folder / "f00.txt").exists(), "not restored from S3"


# -- the max-delete guard ----------------------------------------------------------------------


async def test_max_delete_guard(syncer_factory, bucket: Bucket) -> None:
    for index in range(30):
        await in_thread(bucket.put, f"many/{index}.txt", b"x")
    syncer = await syncer_factory(download_interval=1000, max_delete_percent=50)
    assert len(list((syncer.folder / "many").iterdir())) == 30
    for index in range(20):
        await in_thread(bucket.delete, f"many/{index}.txt")
    await syncer.poll_once()  # missed once: nothing deleted yet, nor held
    assert metric(syncer, "s3sync_delete_guard_trips_total") == 0
    await syncer.poll_once()
    await syncer.poll_once()
    assert len(list((syncer.folder / "many").iterdir())) == 30, "mass delete held back"
    assert metric(syncer, "s3sync_delete_guard_trips_total") == 2
    for index in range(20):  # and nothing was re-uploaded either
        assert not await in_thread(bucket.exists, f"many/{index}.txt")


async def test_a_wiped_folder_does_not_empty_the_bucket(
    syncer_factory, bucket: Bucket, tmp_path: Path
) -> None:
    folder = await synced_folder(syncer_factory, bucket, tmp_path, count=30)
    for index in range(25):  # most of the folder gone, the state file still there
        (folder / f"f{index:02d}.txt").unlink()
    syncer = await syncer_factory(directory=folder)
    assert len(list(folder.glob("f*.txt"))) == 30, "restored from S3"
    assert len(await in_thread(bucket.list_keys)) == 30, "nothing deleted in S3"
    assert metric(syncer, "s3sync_delete_guard_trips_total") == 1


async def test_an_emptied_prefix_does_not_empty_the_folder(
    syncer_factory, bucket: Bucket, tmp_path: Path
) -> None:
    folder = await synced_folder(syncer_factory, bucket, tmp_path, count=30)
    for index in range(25):
        await in_thread(bucket.delete, f"f{index:02d}.txt")
    syncer = await syncer_factory(directory=folder)
    assert len(list(folder.glob("f*.txt"))) == 30, "nothing deleted here"
    await eventually(lambda: in_thread(lambda: len(bucket.list_keys()) == 30), what="re-upload")
    assert metric(syncer, "s3sync_delete_guard_trips_total") == 1


async def test_a_tree_removed_here_is_deleted_in_batches_never_a_newer_version(
    syncer_factory, bucket: Bucket, proxy: Any
) -> None:
    """`rm -rf` of a synced tree: the deletes made while one is under way go together, one
    DeleteObjects for many keys, each under its own ETag (s3/deletes.py). A file another
    client changed in S3 meanwhile (no listing saw it) is not deleted: its newer version stays
    and comes back here, as for a delete made alone."""
    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern, download_interval=1000)
    folder: Path = syncer.folder
    tree = {f"t/f{n:02d}.txt": f"v1 {n}".encode() for n in range(40)}
    (folder / "t").mkdir()
    for rel, data in tree.items():
        (folder / rel).write_bytes(data)

    async def uploaded() -> None:
        assert set(tree) <= set(await in_thread(bucket.list_keys))

    await eventually(uploaded, timeout=30, what="the tree uploaded")
    await syncer._running().scheduler.wait_idle()
    await in_thread(bucket.put, "t/f07.txt", b"v2 remote")
    alone = requests(syncer, "DeleteObject")
    proxy.faults.methods = {"DELETE"}
    proxy.faults.delay = 0.5  # the first delete, sent alone, is held: the others pile up
    shutil.rmtree(folder / "t")

    async def only_the_newer_version_left() -> None:
        keys = await in_thread(bucket.list_keys)
        assert [key for key in keys if not key.endswith("/")] == ["t/f07.txt"]

    await eventually(only_the_newer_version_left, timeout=30, what="the tree deleted")
    await eventually(lambda: read(folder / "t" / "f07.txt") == b"v2 remote", what="came back")
    assert await in_thread(bucket.get, "t/f07.txt") == b"v2 remote"
    assert requests(syncer, "DeleteObjects") >= 1
    assert requests(syncer, "DeleteObject") - alone < 20  # most went together
    deleted = metric(syncer, "s3sync_deletes_total", side="remote", result="ok")
    assert deleted >= 39
