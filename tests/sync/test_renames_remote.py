"""Renames in S3 cost no download: when another client renames keys (`aws s3 mv`, rclone: a
copy then a delete) and one listing shows the old keys gone and new ones with their ETags, the
files already here are copied to the new names within the folder, proven by the ETag as a
download is, and the old ones deleted. Real inotify, moto's server behind a real proxy that
counts every request and body byte (faultproxy.py)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from support.bucket import Bucket
from support.metrics import metric
from support.waiting import eventually, in_thread

from sidecar.s3.metadata import parse_mtime

HOUR = 3600
MiB = 1024 * 1024


def _files(root: Path) -> dict[str, bytes]:
    """Every file in the folder, the working folder included, by relative path."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file() and path.name != "state.sqlite3" and "sqlite3-" not in path.name
    }


async def _written_and_synced(syncer: Any, bucket: Bucket, tree: dict[str, bytes]) -> None:
    """`tree` written in the folder, and every file of it in S3."""
    for rel, data in tree.items():
        (syncer.folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (syncer.folder / rel).write_bytes(data)

    async def uploaded() -> None:
        assert set(tree) <= set(await in_thread(bucket.list_keys))

    await eventually(uploaded, timeout=30, what="the tree uploaded")
    assert (await syncer.flush()).flushed


def _copy(bucket: Bucket, source: str, target: str) -> None:
    """A copy of a key within the bucket (CopyObject: metadata kept)."""
    bucket.client.copy_object(
        Bucket=bucket.name, Key=target, CopySource={"Bucket": bucket.name, "Key": source}
    )


def _mv(bucket: Bucket, source: str, target: str) -> None:
    """What `aws s3 mv` does for one key: a copy (metadata kept), then a delete."""
    _copy(bucket, source, target)
    bucket.delete(source)


@pytest.mark.any_s3
async def test_a_prefix_renamed_in_s3_is_moved_here_not_downloaded(
    syncer_factory: Any, bucket: Bucket, proxy: Any
) -> None:
    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern, download_interval=HOUR)
    tree = {f"photos/2026/{n:02d}.jpg": os.urandom(20_000 + n) for n in range(12)}
    tree["photos/big.raw"] = os.urandom(3 * 1024 * 1024)  # above one read: streamed otherwise
    await _written_and_synced(syncer, bucket, tree)
    gets, downloaded = proxy.seen["GET"], metric(syncer, "s3sync_downloaded_bytes_total")
    answered = proxy.answer_bytes["GET"]

    def rename_prefix() -> None:
        for rel in tree:
            _mv(bucket, rel, rel.replace("photos/", "albums/", 1))

    await in_thread(rename_prefix)
    await syncer.poll_once()

    renamed = {rel.replace("photos/", "albums/", 1): data for rel, data in tree.items()}
    await eventually(  # (the working folder included: nothing left in it either)
        lambda: _files(syncer.folder) == renamed, timeout=30, what="only the new names here"
    )
    assert (await syncer.flush()).flushed
    assert proxy.answer_bytes["GET"] == answered  # no object's bytes came from S3
    assert metric(syncer, "s3sync_downloaded_bytes_total") == downloaded
    assert metric(syncer, "s3sync_renames_total", how="local_move", result="ok") == len(tree)
    saved = metric(syncer, "s3sync_bytes_saved_total", how="local_move")
    assert saved == sum(len(data) for data in tree.values())
    assert proxy.seen["GET"] > gets  # (the listing)
    head = await in_thread(bucket.head, "albums/big.raw")
    moved = os.stat(syncer.folder / "albums" / "big.raw")
    assert parse_mtime(head["Metadata"]["mtime"]) == moved.st_mtime_ns


@pytest.mark.any_s3
async def test_a_file_changed_here_while_renamed_in_s3_is_kept_and_the_new_name_fetched(
    syncer_factory: Any, bucket: Bucket, proxy: Any
) -> None:
    """The local file is rewritten just as another client renames its key: the copy here
    cannot be proven (the ETag says no), so the new name is downloaded; the local change beats
    the remote delete and goes up under the old name. Nothing is lost, no conflict copy."""
    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern, download_interval=HOUR)
    old = syncer.folder / "notes.txt"
    old.write_bytes(b"v1 " * 1000)
    await eventually(lambda: bucket.exists("notes.txt"), what="uploaded")
    assert (await syncer.flush()).flushed

    await in_thread(_mv, bucket, "notes.txt", "notes-2026.txt")
    before = os.stat(old)
    with open(old, "r+b") as file:  # same size, mtime put back: only the bytes tell
        file.write(b"V2!")
    os.utime(old, ns=(before.st_atime_ns, before.st_mtime_ns))
    await syncer.poll_once()

    changed = b"V2!" + (b"v1 " * 1000)[3:]
    expected = {"notes.txt": changed, "notes-2026.txt": b"v1 " * 1000}
    await eventually(lambda: _files(syncer.folder) == expected, timeout=30, what="both here")

    async def in_s3() -> None:
        keys = await in_thread(bucket.list_keys)
        assert {key: await in_thread(bucket.get, key) for key in keys} == expected

    await eventually(in_s3, timeout=30, what="the change uploaded under the old name")
    assert metric(syncer, "s3sync_renames_total", how="local_move", result="ok") == 0


async def test_a_prefix_renamed_in_s3_while_down_is_moved_here_at_start(
    syncer_factory: Any, bucket: Bucket, proxy: Any, tmp_path: Path
) -> None:
    """Renamed while the sidecar was down: the start-up listing pairs the gone keys with the
    new ones, the restore copies the files here, deletes the old ones, and the max-delete
    guard (every synced file gone from S3) does not take it for a prefix emptied."""
    folder = tmp_path / "folder"
    first = await syncer_factory(
        directory=folder, endpoint=proxy.endpoint_pattern, download_interval=HOUR
    )
    tree = {f"src/m{n:02d}.py": os.urandom(3000 + n) for n in range(14)}
    for rel, data in tree.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)

    async def uploaded() -> None:
        assert set(tree) <= set(await in_thread(bucket.list_keys))

    await eventually(uploaded, timeout=30, what="the tree uploaded")
    assert not await first.stop()

    def rename_prefix() -> None:
        for rel in tree:
            _mv(bucket, rel, rel.replace("src/", "lib/", 1))

    await in_thread(rename_prefix)
    answered = proxy.answer_bytes["GET"]
    second = await syncer_factory(directory=folder, endpoint=proxy.endpoint_pattern)

    renamed = {rel.replace("src/", "lib/", 1): data for rel, data in tree.items()}
    await eventually(lambda: _files(folder) == renamed, timeout=30, what="the new names here")
    assert (await second.flush()).flushed
    assert proxy.answer_bytes["GET"] == answered  # no object's bytes came from S3
    assert metric(second, "s3sync_downloaded_bytes_total") == 0
    assert metric(second, "s3sync_delete_guard_trips_total") == 0
    assert metric(second, "s3sync_renames_total", how="local_move", result="ok") == len(tree)
    keys = await in_thread(bucket.list_keys)
    assert not [key for key in keys if key.startswith("src/") and not key.endswith("/")]


def _copy_in_parts(bucket: Bucket, source: str, target: str, size: int, part: int) -> None:
    """What `aws s3 mv` does for an object over 8 MiB: UploadPartCopy in its own parts."""
    client, name = bucket.client, bucket.name
    head = client.head_object(Bucket=name, Key=source)
    upload = client.create_multipart_upload(Bucket=name, Key=target, Metadata=head["Metadata"])
    parts = []
    for number, start in enumerate(range(0, size, part), 1):
        copied = client.upload_part_copy(
            Bucket=name,
            Key=target,
            UploadId=upload["UploadId"],
            PartNumber=number,
            CopySource={"Bucket": name, "Key": source},
            CopySourceRange=f"bytes={start}-{min(start + part, size) - 1}",
        )
        parts.append({"PartNumber": number, "ETag": copied["CopyPartResult"]["ETag"]})
    client.complete_multipart_upload(
        Bucket=name, Key=target, UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )


def _digests(root: Path) -> dict[str, str]:
    """`_files`, by SHA-256: a failed comparison never prints megabytes."""
    return {rel: hashlib.sha256(data).hexdigest() for rel, data in _files(root).items()}


@pytest.mark.parametrize("copy", ["one_copy", "in_other_parts"])
async def test_a_file_uploaded_in_parts_renamed_in_s3_is_moved_here_not_downloaded(
    syncer_factory: Any, bucket: Bucket, proxy: Any, copy: str
) -> None:
    """A copy in S3 gives a large object another ETag: one CopyObject a plain MD5 where our
    upload in parts had a multipart ETag, and `aws s3 mv` (UploadPartCopy, in its own 8 MiB
    parts) another part count. Only the size says it may be the same bytes: the file here is
    copied and proven against the new ETag (an MD5, or a multipart MD5 of a common part size),
    and nothing is downloaded."""
    syncer = await syncer_factory(
        endpoint=proxy.endpoint_pattern,
        download_interval=HOUR,
        multipart_threshold=5 * MiB,
        multipart_chunksize=5 * MiB,
    )
    data = os.urandom(13 * MiB)
    (syncer.folder / "big.bin").write_bytes(data)
    await eventually(lambda: bucket.exists("big.bin"), timeout=30, what="uploaded")
    assert (await syncer.flush()).flushed
    uploaded = (await in_thread(bucket.head, "big.bin"))["ETag"]
    assert uploaded.endswith('-3"')  # in our three parts of 5 MiB
    answered = proxy.answer_bytes["GET"]

    def move() -> None:
        if copy == "one_copy":
            _mv(bucket, "big.bin", "archive/big.bin")
            return
        _copy_in_parts(bucket, "big.bin", "archive/big.bin", len(data), 8 * MiB)
        bucket.delete("big.bin")

    await in_thread(move)
    copied = (await in_thread(bucket.head, "archive/big.bin"))["ETag"]
    assert copied != uploaded and copied.endswith('-2"' if copy == "in_other_parts" else '"')
    await syncer.poll_once()

    expected = {"archive/big.bin": hashlib.sha256(data).hexdigest()}
    await eventually(lambda: _digests(syncer.folder) == expected, timeout=30, what="moved here")
    assert (await syncer.flush()).flushed
    assert proxy.answer_bytes["GET"] == answered  # no object's bytes came from S3
    assert metric(syncer, "s3sync_renames_total", how="local_move", result="ok") == 1
    assert metric(syncer, "s3sync_bytes_saved_total", how="local_move") == len(data)


async def test_a_same_size_file_renamed_in_s3_with_other_bytes_is_downloaded(
    syncer_factory: Any, bucket: Bucket, proxy: Any
) -> None:
    """A key gone and another of its size come in one listing, with other bytes: paired by
    the size alone (the new ETag is not comparable), the copy here fails its proof and the new
    key is downloaded; the old file goes. Nothing is taken for what it is not."""
    syncer = await syncer_factory(
        endpoint=proxy.endpoint_pattern,
        download_interval=HOUR,
        multipart_threshold=5 * MiB,
        multipart_chunksize=5 * MiB,
    )
    (syncer.folder / "old.bin").write_bytes(os.urandom(11 * MiB))
    await eventually(lambda: bucket.exists("old.bin"), timeout=30, what="uploaded")
    assert (await syncer.flush()).flushed
    other = os.urandom(11 * MiB)

    def replace_in_s3() -> None:
        bucket.put("new.bin", other)
        bucket.delete("old.bin")

    await in_thread(replace_in_s3)
    await syncer.poll_once()
    expected = {"new.bin": hashlib.sha256(other).hexdigest()}
    await eventually(lambda: _digests(syncer.folder) == expected, timeout=30, what="downloaded")
    assert (await syncer.flush()).flushed
    assert metric(syncer, "s3sync_renames_total", how="local_move", result="ok") == 0
    assert metric(syncer, "s3sync_downloaded_bytes_total") >= len(other)


@pytest.mark.any_s3
@pytest.mark.parametrize("looks", [1, 4], ids=["one_look", "looks_between"])
async def test_a_prefix_renamed_in_s3_leaves_no_empty_directory_here(
    syncer_factory: Any, bucket: Bucket, looks: int
) -> None:
    """Another client renames the prefix with its directory markers (rclone does; `aws s3 mv
    --recursive` leaves markers where they are, and then their directories stay here too),
    each key a copy then a delete. The old directories go with their files: the folder shows
    what S3 holds."""
    syncer = await syncer_factory(download_interval=HOUR)
    tree = {f"project/d{n % 3}/f{n:02d}": os.urandom(100 + n) for n in range(9)}
    await _written_and_synced(syncer, bucket, tree)
    scheduler = syncer._running().scheduler
    await scheduler.wait_idle()
    keys = await in_thread(bucket.list_keys)
    assert {"project/d0/", "project/d1/", "project/d2/"} <= set(keys)  # (made while empty)

    def rename(part: list[str]) -> None:
        for key in part:
            _mv(bucket, key, key.replace("project/", "project-old/", 1))

    # In key order; with `looks_between`, listings see it part done (a directory's marker
    # gone while its files are still there).
    ordered = sorted(keys)
    size = -(-len(ordered) // looks)
    for start in range(0, len(ordered), size):
        await in_thread(rename, ordered[start : start + size])
        await syncer.poll_once()
        # (a listing while a pass is under way leaves its path as it is: a pair it misses
        # is downloaded, which this test would count)
        await scheduler.wait_idle()
    renamed = {rel.replace("project/", "project-old/", 1): data for rel, data in tree.items()}
    await eventually(lambda: _files(syncer.folder) == renamed, timeout=30, what="the new names")

    def old_gone() -> None:
        assert not (syncer.folder / "project").exists(), sorted(
            path.relative_to(syncer.folder).as_posix()
            for path in (syncer.folder / "project").rglob("*")
        )

    await eventually(old_gone, timeout=30, what="the old directories gone")
    assert (await syncer.flush()).flushed
    assert metric(syncer, "s3sync_renames_total", how="local_move", result="ok") == len(tree)
    assert sorted(await in_thread(bucket.list_keys)) == sorted(
        key.replace("project/", "project-old/", 1) for key in keys
    )


@pytest.mark.any_s3
@pytest.mark.parametrize("seen_first", ["old_gone", "new_listed"])
async def test_a_rename_a_listing_saw_half_done_is_moved_here_not_downloaded(
    syncer_factory: Any, bucket: Bucket, proxy: Any, seen_first: str
) -> None:
    """A listing reads its pages one after another, and another client renaming a prefix
    (a copy, then a delete, key by key) may be seen half done, two ways:
    - `old_gone`: the new names' page read before their copies, the old names' page after
      their deletes (`mv docs docs-old`: the new names list first). One listing shows the old
      keys gone and no new ones: the files stay here until a second listing misses them too,
      and that one shows the new keys, paired then;
    - `new_listed`: the old names' page read before their deletes, the new names' after their
      copies (`mv docs docs2`). One listing shows both: the new keys are copied from the files
      here, and the old ones deleted when their keys are missed.
    Either way, no byte of any file comes from S3."""
    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern, download_interval=HOUR)
    tree = {f"docs/{n:02d}.md": os.urandom(5000 + n) for n in range(6)}
    await _written_and_synced(syncer, bucket, tree)
    scheduler = syncer._running().scheduler
    renamed = {rel.replace("docs/", "archive/", 1): data for rel, data in tree.items()}
    answered = proxy.answer_bytes["GET"]

    async def listed_and_done() -> None:
        await syncer.poll_once()
        await scheduler.wait_idle()

    if seen_first == "old_gone":
        # As the listing saw it: the old keys gone, the new ones not there yet (the new keys'
        # bytes put again rather than copied: the old ones are gone; the ETags are the same)
        for rel in tree:
            await in_thread(bucket.delete, rel)
        await listed_and_done()
        assert _files(syncer.folder) == tree  # missed once: kept
        for rel, data in renamed.items():
            await in_thread(bucket.put, rel, data)
        await listed_and_done()
    else:
        for rel in tree:
            await in_thread(_copy, bucket, rel, rel.replace("docs/", "archive/", 1))
        await listed_and_done()
        assert _files(syncer.folder) == tree | renamed  # copied here from the old files
        for rel in tree:
            await in_thread(bucket.delete, rel)
        await listed_and_done()
        await listed_and_done()  # missed twice: deleted

    await eventually(lambda: _files(syncer.folder) == renamed, timeout=30, what="the new names")
    assert proxy.answer_bytes["GET"] == answered  # no object's bytes (listings count apart)
    assert metric(syncer, "s3sync_renames_total", how="local_move", result="ok") == len(tree)
    assert metric(syncer, "s3sync_renames_total", how="local_move", result="fallback") == 0
    keys = await in_thread(bucket.list_keys)  # ("docs/", the marker, stays: not moved)
    assert sorted(key for key in keys if not key.endswith("/")) == sorted(renamed)
