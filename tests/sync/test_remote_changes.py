"""Remote changes reach the folder: objects created, changed and deleted in S3 by another
client are found by the poll; a local change that is not yet in S3 is never overwritten."""

from __future__ import annotations

import logging
import os
import stat
import time
from pathlib import Path
from typing import Any

from support.bucket import Bucket
from support.folders import read
from support.metrics import metric, requests
from support.waiting import eventually, in_thread

from sidecar.s3.metadata import format_mode, format_mtime


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


async def test_remote_metadata_is_applied(syncer_factory, bucket: Bucket) -> None:
    syncer = await syncer_factory()
    mtime = 1_500_000_000_250_000_000
    await in_thread(
        bucket.put,
        "run.sh",
        b"#!/bin/sh\n",
        {"mtime": format_mtime(mtime), "mode": format_mode(stat.S_IFREG | 0o750)},
    )
    path = syncer.folder / "run.sh"
    await eventually(lambda: read(path) == b"#!/bin/sh\n")
    st = os.lstat(path)
    assert st.st_mtime_ns == mtime
    assert stat.S_IMODE(st.st_mode) == 0o750


async def test_remote_metadata_only_change(syncer_factory, bucket: Bucket) -> None:
    syncer = await syncer_factory()
    await in_thread(bucket.put, "tool", b"x", {"mode": format_mode(stat.S_IFREG | 0o644)})
    path = syncer.folder / "tool"
    await eventually(lambda: read(path) == b"x")
    # Listings give Last-Modified to the second: a metadata change is visible only once the
    # second has turned (the same holds for AWS).
    written = int((await in_thread(bucket.head, "tool"))["LastModified"].timestamp())
    await eventually(lambda: time.time() >= written + 1, what="the next second")
    # Another client chmods it: same content (same ETag), new metadata.
    await in_thread(
        bucket.set_metadata,
        "tool",
        {"mode": format_mode(stat.S_IFREG | 0o755), "mtime": "1400000000.5"},
    )
    await eventually(lambda: stat.S_IMODE(os.lstat(path).st_mode) == 0o755, what="mode")
    assert os.lstat(path).st_mtime_ns == 1_400_000_000_500_000_000


async def test_a_metadata_change_right_after_our_upload_is_applied(
    syncer_factory, bucket: Bucket
) -> None:
    """Another client chmods what we just uploaded before our next listing: that listing is
    the first to give our write's Last-Modified, and must not take theirs for ours (found by
    a race test: the change was never applied)."""
    syncer = await syncer_factory(download_interval=3600)  # polls only when told to
    path = syncer.folder / "script.sh"
    path.write_bytes(b"echo hi\n")
    await eventually(lambda: bucket.exists("script.sh"))
    await syncer._running().scheduler.wait_idle()
    written = int((await in_thread(bucket.head, "script.sh"))["LastModified"].timestamp())
    await eventually(lambda: time.time() >= written + 1, what="the next second")
    await in_thread(
        bucket.set_metadata,
        "script.sh",
        {"mode": format_mode(stat.S_IFREG | 0o755), "mtime": "1400000000.5"},
    )
    await syncer.poll_once()
    await eventually(lambda: stat.S_IMODE(os.lstat(path).st_mode) == 0o755, what="mode")
    assert os.lstat(path).st_mtime_ns == 1_400_000_000_500_000_000
    assert path.read_bytes() == b"echo hi\n"
    assert metric(syncer, "s3sync_downloads_total") == 0  # the bytes are the same: no GET


async def _written_in_a_fresh_second(
    syncer_factory, bucket: Bucket, tmp_path, name: str, data: bytes
) -> tuple[Any, Path, Any]:
    """Syncer `a` uploads `name` at the start of a second; syncer `b` (polled only when told)
    downloads it. Returns (a, a's path, b)."""
    a = await syncer_factory(directory=tmp_path / "a")
    b = await syncer_factory(directory=tmp_path / "b", download_interval=3600)
    await eventually(lambda: time.time() % 1 < 0.2, what="the start of a second")
    path = a.folder / name
    path.write_bytes(data)
    await eventually(lambda: bucket.exists(name), interval=0.01)
    await b.poll_once()
    await b._running().scheduler.wait_idle()
    assert (b.folder / name).read_bytes() == data
    return a, path, b


async def _mode_reaches(bucket: Bucket, b: Any, name: str, mode: int) -> None:
    """Until S3 holds `mode` for `name`, then until `b`'s polls bring it to its folder."""

    def mode_in_s3() -> int:
        return stat.S_IMODE(int(bucket.head(name)["Metadata"]["mode"]))

    await eventually(lambda: mode_in_s3() == mode, interval=0.01, what="the new mode in S3")

    async def mode_in_b() -> bool:
        await b.poll_once()
        await b._running().scheduler.wait_idle()
        return stat.S_IMODE(os.lstat(b.folder / name).st_mode) == mode

    await eventually(mode_in_b, timeout=10, what="the new mode in the other folder")


async def test_a_chmod_in_the_second_of_the_write_reaches_other_clients(
    syncer_factory, bucket: Bucket, tmp_path
) -> None:
    """Listings give Last-Modified to the second: a metadata copy made in the same second as
    the write it follows would be invisible to other clients' listings (found by the chaos
    test, seed 10: two folders kept mode 644 for good). The copy is made again once the second
    has turned."""
    a, path, b = await _written_in_a_fresh_second(
        syncer_factory, bucket, tmp_path, "run.sh", b"#!/bin/sh\n"
    )
    os.chmod(path, 0o755)
    await _mode_reaches(bucket, b, "run.sh", 0o755)
    await a._running().scheduler.wait_idle()
    assert metric(a, "s3sync_metadata_updates_total", side="remote", result="ok") == 1


async def test_the_same_bytes_rewritten_with_a_new_mode_in_the_same_second_reach_others(
    syncer_factory, bucket: Bucket, tmp_path
) -> None:
    """Rewritten with identical bytes and a new mode: the PUT keeps the ETag, and in the second
    of the version before it, listings cannot show it. The object is copied onto itself once
    the second has turned (found by the chaos test, seed 58 of the second long run)."""
    _, path, b = await _written_in_a_fresh_second(
        syncer_factory, bucket, tmp_path, "same.txt", b"same bytes"
    )
    with open(path, "wb") as file:
        file.write(b"same bytes")
        os.fchmod(file.fileno(), 0o600)
    await _mode_reaches(bucket, b, "same.txt", 0o600)


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


async def test_symlinked_parent_is_never_written_through(
    syncer_factory, bucket: Bucket, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    syncer = await syncer_factory()
    os.symlink(outside, syncer.folder / "escape")
    await eventually(lambda: in_thread(lambda: bucket.exists("escape")))
    await in_thread(bucket.put, "escape/planted.txt", b"evil")
    await syncer.poll_once()
    await syncer.poll_once()
    assert not (outside / "planted.txt").exists()


async def test_exclude_remote(syncer_factory, bucket: Bucket) -> None:
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


def _last_modified(bucket: Bucket, name: str) -> int:
    return int(bucket.head(name)["LastModified"].timestamp())


def _mode_in_s3(bucket: Bucket, name: str) -> int:
    return stat.S_IMODE(int(bucket.head(name)["Metadata"]["mode"]))


async def _settled_and_polled(syncer: Any, bucket: Bucket, name: str) -> None:
    """Once S3's second of `name` has turned, one poll and whatever it started."""
    await syncer._running().scheduler.wait_idle()
    second = await in_thread(_last_modified, bucket, name)
    await eventually(lambda: time.time() >= second + 1, what="the next second")
    await syncer.poll_once()
    await syncer._running().scheduler.wait_idle()


async def test_a_metadata_copy_in_the_second_of_our_download_is_applied(
    syncer_factory, bucket: Bucket
) -> None:
    """We download an object, and in the same second another client copies it onto itself
    with a new mode: the ETag and the listed Last-Modified stay, so no listing can show it.
    What we saw within its second is looked at once more after it (a HEAD)."""
    syncer = await syncer_factory(download_interval=3600)  # polls only when told to
    path = syncer.folder / "tool"
    for attempt in range(5):
        await eventually(lambda: time.time() % 1 < 0.2, what="the start of a second")
        body = f"version {attempt}\n".encode()
        await in_thread(bucket.put, "tool", body, {"mode": format_mode(stat.S_IFREG | 0o644)})
        await syncer.poll_once()
        await syncer._running().scheduler.wait_idle()
        assert read(path) == body
        put_second = await in_thread(_last_modified, bucket, "tool")
        await in_thread(bucket.set_metadata, "tool", {"mode": format_mode(stat.S_IFREG | 0o755)})
        if await in_thread(_last_modified, bucket, "tool") == put_second:
            break  # the download and the copy landed in one second: the case under test
        await _settled_and_polled(syncer, bucket, "tool")
    else:
        raise AssertionError("could not land a copy in the second of the download")
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o644
    heads = requests(syncer, "HeadObject")
    await _settled_and_polled(syncer, bucket, "tool")
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o755
    assert read(path) == body
    assert requests(syncer, "HeadObject") == heads + 1  # one look, not a download
    assert metric(syncer, "s3sync_downloads_total") == attempt + 1
    await _settled_and_polled(syncer, bucket, "tool")  # and settled: no look after that one
    assert requests(syncer, "HeadObject") == heads + 1


async def test_another_metadata_copy_in_the_second_of_our_upload_is_applied(
    syncer_factory, bucket: Bucket
) -> None:
    """We upload a file, and in the same second another client (which learned our ETag from a
    listing, an event or a HEAD) copies it onto itself with a new mode: the listed ETag and
    Last-Modified are those of our upload, so no listing can show it (chaos seed 61 of the
    sixth run). What we wrote within its second is looked at once after it."""
    syncer = await syncer_factory(download_interval=3600)
    theirs = {"mode": format_mode(stat.S_IFREG | 0o705)}
    for attempt in range(5):
        name = f"job{attempt}.sh"
        path = syncer.folder / name
        path.write_bytes(b"#!/bin/sh\n")
        await eventually(lambda name=name: bucket.exists(name), interval=0.005, what="upload")
        ours = await in_thread(_last_modified, bucket, name)
        await in_thread(bucket.set_metadata, name, theirs)
        if await in_thread(_last_modified, bucket, name) == ours:
            break
    else:
        raise AssertionError("could not land a copy in the second of our upload")
    await _settled_and_polled(syncer, bucket, name)
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o705
    assert await in_thread(_mode_in_s3, bucket, name) == 0o705
    assert path.read_bytes() == b"#!/bin/sh\n"


async def test_another_metadata_copy_in_the_second_of_ours_is_applied(
    syncer_factory, bucket: Bucket
) -> None:
    """Two clients copy one object onto itself with different modes in one second (found by
    the chaos test, the last divergences of its third long run). Listings cannot tell which
    came last, so our own copy counts as known only once it is looked at after its second."""
    syncer = await syncer_factory(download_interval=3600)
    path = syncer.folder / "job.sh"
    path.write_bytes(b"#!/bin/sh\n")
    await eventually(lambda: bucket.exists("job.sh"))
    await _settled_and_polled(syncer, bucket, "job.sh")
    chmods = 0
    for ours in (0o700, 0o750, 0o740, 0o710, 0o770):
        os.chmod(path, ours)
        chmods += 1
        await eventually(
            lambda ours=ours: _mode_in_s3(bucket, "job.sh") == ours, interval=0.01, what="ours"
        )
        first = await in_thread(_last_modified, bucket, "job.sh")
        # Ours is copied once more when its second has turned (Uploads._visible); another
        # client's copy right after that one lands in its second.
        await eventually(
            lambda first=first: _last_modified(bucket, "job.sh") > first,
            interval=0.005,
            what="re-copy",
        )
        second = await in_thread(_last_modified, bucket, "job.sh")
        theirs = {"mode": format_mode(stat.S_IFREG | 0o705)}
        await in_thread(bucket.set_metadata, "job.sh", theirs)
        if await in_thread(_last_modified, bucket, "job.sh") == second:
            break
        await _settled_and_polled(syncer, bucket, "job.sh")
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o705
    else:
        raise AssertionError("could not land a copy in the second of ours")
    await _settled_and_polled(syncer, bucket, "job.sh")
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o705
    assert await in_thread(_mode_in_s3, bucket, "job.sh") == 0o705
    assert path.read_bytes() == b"#!/bin/sh\n"
    assert metric(syncer, "s3sync_metadata_updates_total", side="remote", result="ok") == chmods


async def test_listings_start_every_interval_when_a_listing_is_slow(
    syncer_factory, proxy, caplog
) -> None:
    """The poll interval is how stale the folder may get, so it counts from the start of one
    listing to the start of the next: a slow listing does not stretch it (counted from the end,
    four periods of 1 s with 0.6 s listings took 6.4 s). A listing slower than the interval is
    followed by the next at once, with one warning."""
    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern, download_interval=1.0)
    proxy.faults.methods = {"GET"}
    proxy.faults.delay = 0.6  # every listing page (and nothing else: no file changes)

    def polls() -> float:
        return metric(syncer, "s3sync_polls_total", result="ok")

    first = polls() + 1
    await eventually(lambda: polls() >= first, what="a slow listing")
    begun = time.monotonic()
    await eventually(lambda: polls() >= first + 4, what="four more listings")
    assert time.monotonic() - begun < 5.2  # 4.0 s, starts 1 s apart; end to start: 6.4 s

    proxy.faults.delay = 1.3  # now slower than the interval: listings back to back
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sidecar.poll"):
        now = polls()
        await eventually(lambda: polls() >= now + 4, timeout=30, what="slow listings")
    assert caplog.text.count("longer than the poll interval") == 1


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
