"""Remote changes reach the folder: objects created, changed and deleted in S3 by another
client are found by the poll, within the prefix and outside what is excluded; keys that cannot
be a safe path here are skipped; listings start every interval and an unchanged listing is not
read again. (Metadata-only changes: test_metadata.py; a local change not yet in S3:
test_conflicts.py; deletes: test_deletes.py; through S3 event notifications:
s3/test_notifications.py.)"""

from __future__ import annotations

import logging
import os
import stat
import time
from pathlib import Path

import pytest
from support.bucket import Bucket
from support.folders import conflict_copies, read
from support.metrics import metric, requests
from support.waiting import eventually, in_thread

from sidecar.s3.metadata import format_mode


@pytest.mark.any_s3
async def test_remote_create_change_delete(syncer_factory, bucket: Bucket) -> None:
    syncer = await syncer_factory()
    folder: Path = syncer.folder
    await in_thread(bucket.put, "notes/a.txt", b"one")
    await eventually(lambda: read(folder / "notes" / "a.txt") == b"one", what="created")

    await in_thread(bucket.put, "notes/a.txt", b"two, longer")
    await eventually(lambda: read(folder / "notes" / "a.txt") == b"two, longer", what="changed")

    await in_thread(bucket.delete, "notes/a.txt")
    await eventually(lambda: not (folder / "notes" / "a.txt").exists(), what="deleted")
    assert not await in_thread(bucket.exists, "notes/a.txt")
    # Nothing was written back to S3 by the sidecar along the way.
    assert requests(syncer, "PutObject") == 0
    assert requests(syncer, "DeleteObject") == 0


@pytest.mark.any_s3
async def test_two_folders_sharing_one_prefix(
    syncer_factory, bucket: Bucket, tmp_path: Path
) -> None:
    """Two sidecars on one prefix: what one folder creates, edits and deletes reaches the
    other, turn by turn, with no conflict copy."""
    one = await syncer_factory(directory=tmp_path / "one", prefix="shared/")
    two = await syncer_factory(directory=tmp_path / "two", prefix="shared/")
    (one.folder / "plan.txt").write_bytes(b"v1 from one")
    await eventually(lambda: read(two.folder / "plan.txt") == b"v1 from one", what="created")
    await two._running().scheduler.wait_idle()
    (two.folder / "plan.txt").write_bytes(b"v2 from two")
    await eventually(lambda: read(one.folder / "plan.txt") == b"v2 from two", what="edited")
    await one._running().scheduler.wait_idle()
    (one.folder / "notes").mkdir()
    (one.folder / "notes" / "a.txt").write_bytes(b"a note")
    await eventually(lambda: read(two.folder / "notes" / "a.txt") == b"a note", what="a tree")
    await two._running().scheduler.wait_idle()
    (two.folder / "plan.txt").unlink()
    await eventually(lambda: not (one.folder / "plan.txt").exists(), what="deleted")

    def agreed() -> None:
        assert bucket.list_keys("shared/") == ["shared/notes/", "shared/notes/a.txt"]

    await eventually(lambda: in_thread(agreed), what="the bucket as the folders are")
    keys = await in_thread(bucket.list_keys)
    assert conflict_copies(one.folder, keys) == conflict_copies(two.folder, []) == []


@pytest.mark.any_s3
async def test_an_object_without_a_saved_mtime_gets_its_listed_milliseconds(
    syncer_factory, bucket: Bucket
) -> None:
    """No `x-amz-meta-mtime` (another tool wrote it): the file's mtime is the object's
    Last-Modified to the millisecond, as listings give it (HEAD and GET give seconds)."""
    await in_thread(bucket.put, "from-elsewhere.txt", b"no mtime saved with it")
    listing = await in_thread(lambda: bucket.client.list_objects_v2(Bucket=bucket.name))
    listed = listing["Contents"][0]["LastModified"]
    expected = int(listed.timestamp()) * 1_000_000_000 + listed.microsecond * 1_000
    syncer = await syncer_factory()
    assert os.stat(syncer.folder / "from-elsewhere.txt").st_mtime_ns == expected
    await in_thread(bucket.put, "later.txt", b"found by a poll")
    await eventually(lambda: (syncer.folder / "later.txt").exists(), what="downloaded")
    listing = await in_thread(
        lambda: bucket.client.list_objects_v2(Bucket=bucket.name, Prefix="later.txt")
    )
    listed = listing["Contents"][0]["LastModified"]
    expected = int(listed.timestamp()) * 1_000_000_000 + listed.microsecond * 1_000
    assert os.stat(syncer.folder / "later.txt").st_mtime_ns == expected


async def test_remote_symlink_and_directories(syncer_factory, bucket: Bucket) -> None:
    syncer = await syncer_factory()
    await in_thread(bucket.put, "target.txt", b"t")
    await in_thread(bucket.put, "link", b"target.txt", {"mode": format_mode(stat.S_IFLNK | 0o777)})
    await in_thread(bucket.put, "empty-dir/", b"")
    folder: Path = syncer.folder
    await eventually(lambda: (folder / "link").is_symlink(), what="symlink recreated")
    assert os.readlink(folder / "link") == "target.txt"
    # Two keys, downloaded in parallel: the link may arrive before its target.
    await eventually(lambda: (folder / "target.txt").exists(), what="target downloaded")
    assert (folder / "link").read_bytes() == b"t"
    await eventually(lambda: (folder / "empty-dir").is_dir(), what="marker made a directory")
    await in_thread(bucket.delete, "empty-dir/")
    await eventually(lambda: not (folder / "empty-dir").exists(), what="marker delete")


async def test_key_and_directory_with_the_same_name(syncer_factory, bucket: Bucket) -> None:
    syncer = await syncer_factory()
    await in_thread(bucket.put, "a", b"the file")
    await in_thread(bucket.put, "a/b", b"shadowed")
    await in_thread(bucket.put, "c/d", b"fine")
    folder: Path = syncer.folder
    await eventually(lambda: read(folder / "c" / "d") == b"fine")
    await syncer.poll_once()
    assert read(folder / "a") == b"the file"
    assert not (folder / "a").is_dir()
    assert await in_thread(bucket.exists, "a/b"), "the shadowed key is left alone in S3"
    assert metric(syncer, "s3sync_skipped_paths_total", reason="shadowed") == 1


async def test_hostile_keys_are_skipped(syncer_factory, bucket: Bucket, tmp_path: Path) -> None:
    hostile = [
        "../escape.txt",
        "a/../../escape2.txt",
        "/abs.txt",
        "x//y.txt",
        "./dot.txt",
        "n" * 256 + ".txt",
        ".s3sync-sidecar/evil",
        "ok/" + "z" * 300,
    ]
    for key in hostile:
        await in_thread(bucket.put, key, b"evil")
    await in_thread(bucket.put, "fine.txt", b"fine")
    syncer = await syncer_factory(directory=tmp_path / "inner" / "folder")
    assert read(syncer.folder / "fine.txt") == b"fine"
    assert not (tmp_path / "inner" / "escape.txt").exists()
    assert not (tmp_path / "escape2.txt").exists()
    assert not list((syncer.folder / ".s3sync-sidecar").glob("evil"))
    assert metric(syncer, "s3sync_skipped_paths_total", reason="unsafe_key") >= 4
    assert metric(syncer, "s3sync_skipped_paths_total", reason="name_too_long") >= 2
    assert metric(syncer, "s3sync_skipped_paths_total", reason="reserved") == 1
    for key in hostile:  # nothing was deleted in S3 either
        assert await in_thread(bucket.exists, key)


async def test_excluded_keys_are_never_downloaded(syncer_factory, bucket: Bucket) -> None:
    await in_thread(bucket.put, "cache/big.bin", b"skip me")
    await in_thread(bucket.put, "data.txt", b"keep")
    syncer = await syncer_factory(exclude_remote=r"^cache/")
    assert read(syncer.folder / "data.txt") == b"keep"
    assert not (syncer.folder / "cache").exists()


async def test_prefix_is_respected(syncer_factory, bucket: Bucket) -> None:
    await in_thread(bucket.put, "team-a/in.txt", b"in")
    await in_thread(bucket.put, "team-b/out.txt", b"out")
    await in_thread(bucket.put, "team-a", b"the prefix without a slash is another key")
    syncer = await syncer_factory(prefix="team-a/")
    assert read(syncer.folder / "in.txt") == b"in"
    assert sorted(p.name for p in syncer.folder.iterdir()) == [".s3sync-sidecar", "in.txt"]
    (syncer.folder / "new.txt").write_bytes(b"new")
    await eventually(lambda: in_thread(lambda: bucket.exists("team-a/new.txt")))


async def test_etags_without_quotes_do_not_redownload(syncer_factory, bucket: Bucket) -> None:
    """Some stores list ETags unquoted; the comparison must not see a change every poll."""
    syncer = await syncer_factory()
    await in_thread(bucket.put, "stable.txt", b"s")
    await eventually(lambda: read(syncer.folder / "stable.txt") == b"s")
    for _ in range(3):
        await syncer.poll_once()
    assert requests(syncer, "GetObject") == 1


async def test_listings_start_every_interval_and_rest_as_long_as_they_took(
    syncer_factory, proxy, caplog
) -> None:
    """The poll interval is how stale the folder may get, so it counts from the start of one
    listing to the start of the next: a listing that takes a while does not stretch it (counted
    from the end, four periods of 1 s with 0.4 s listings took 5.6 s). But every listing is
    followed by a rest as long as it took: a listing slower than half the interval stretches it
    to twice the listing (with one warning, not repeated while listings take about half), and
    the store is never listed back to back (a store that answers one request at a time had no
    time left for anyone else's)."""
    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern, download_interval=1.0)
    proxy.faults.methods = {"GET"}
    proxy.faults.delay = 0.4  # every listing page (and nothing else: no file changes)

    def polls() -> float:
        return metric(syncer, "s3sync_polls_total", result="ok")

    first = polls() + 1
    await eventually(lambda: polls() >= first, what="a quick listing")
    begun = time.monotonic()
    await eventually(lambda: polls() >= first + 4, what="four more listings")
    assert time.monotonic() - begun < 4.8  # 4.0 s, starts 1 s apart; end to start: 5.6 s

    proxy.faults.delay = 1.3  # now slower than the interval
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sidecar.poll"):
        now = polls() + 1
        await eventually(lambda: polls() >= now, timeout=30, what="a slow listing")
        begun = time.monotonic()
        await eventually(lambda: polls() >= now + 3, timeout=30, what="slow listings")
        # each 1.3 s listing and a rest as long: 7.8 s for three (back to back, 3.9 s)
        assert time.monotonic() - begun > 7.0
        # Listings of about half the interval, slower then quicker: no warning on and on.
        for delay in (0.45, 1.3, 0.45):
            proxy.faults.delay = delay
            now = polls()
            await eventually(lambda n=now: polls() >= n + 2, timeout=30, what="more listings")
    assert caplog.text.count("more than half the poll interval") == 1


async def test_a_listing_of_what_did_not_change_is_taken_from_the_last(
    syncer_factory, bucket: Bucket
) -> None:
    """Pages that list the same bytes as last time are not parsed again (at 100,000 keys that
    was most of the idle CPU): a listing of an unchanged prefix is the last one, as it was. A
    page with an object seen within its Last-Modified second is read again, and a change in S3
    changes its page, which is read again: the change is found and downloaded."""
    for name in ("a.txt", "b.txt"):
        await in_thread(bucket.put, name, name.encode())
    syncer = await syncer_factory(download_interval=3600)
    poller = syncer._engine.poller
    last = await poller.list()

    async def taken_from_the_last() -> bool:
        nonlocal last
        previous, last = last, await poller.list()
        return last.entries is previous.entries  # once the objects' second has passed

    await eventually(taken_from_the_last, what="a listing taken from the last")
    assert set(last.entries) == {"a.txt", "b.txt"}
    await in_thread(bucket.put, "b.txt", b"changed in S3")
    await in_thread(bucket.put, "c.txt", b"new in S3")
    changed = await poller.list()
    assert changed.entries is not last.entries
    assert set(changed.entries) == {"a.txt", "b.txt", "c.txt"}
    assert changed.entries["b.txt"].size == len(b"changed in S3")
    assert changed.entries["a.txt"] == last.entries["a.txt"]
    poller.request_listing("test")  # the running poll loop folds it and downloads
    await eventually(lambda: read(syncer.folder / "b.txt") == b"changed in S3")
    await eventually(lambda: read(syncer.folder / "c.txt") == b"new in S3")
