"""Metadata, both ways: a file's mode and mtime travel with its bytes as S3 user metadata
(`mode`, `mtime` at nanosecond precision), and a chmod or touch alone moves no bytes: a copy of
the object onto itself one way, a chmod and utime the other. First the formats (pure); then end
to end against moto with real inotify, including the hard part: listings give Last-Modified to
the second, so a metadata copy in the second of a write is invisible to them, and what was
seen or written within its second is looked at once more after it."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.bucket import Bucket, content_of
from support.folders import conflict_copies, read
from support.metrics import metric, requests
from support.waiting import eventually, in_thread

from sidecar.s3.metadata import (
    format_mode,
    format_mtime,
    parse_http_date,
    parse_mode,
    parse_mtime,
)

NS = 1_000_000_000


# -- the format of mtime -----------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=100_000_000_000 * NS))
def test_mtime_round_trips_at_nanosecond_precision(mtime_ns: int) -> None:
    text = format_mtime(mtime_ns)
    assert parse_mtime(text) == mtime_ns
    # and it is a plain decimal float string, as rclone and mobius3 read it
    assert float(text) == mtime_ns / NS  # both correctly rounded from the same exact value


@pytest.mark.parametrize(
    ("mtime_ns", "text"),
    [
        (0, "0.000000000"),
        (1, "0.000000001"),
        (1_573_212_345_123_456_789, "1573212345.123456789"),
        (1_573_212_345 * NS, "1573212345.000000000"),
    ],
)
def test_format_mtime(mtime_ns: int, text: str) -> None:
    assert format_mtime(mtime_ns) == text


@pytest.mark.parametrize("mtime_ns", [-1, -NS // 2, -1_500_000_000, -86_400 * NS - 7])
def test_negative_mtime_round_trips(mtime_ns: int) -> None:
    assert parse_mtime(format_mtime(mtime_ns)) == mtime_ns


@pytest.mark.parametrize("mtime_ns", [-NS, -86_400 * NS])
def test_negative_whole_second_mtime_round_trips(mtime_ns: int) -> None:
    assert parse_mtime(format_mtime(mtime_ns)) == mtime_ns


@pytest.mark.parametrize(
    ("text", "mtime_ns"),
    [
        ("1573212345.123456", 1_573_212_345_123_456_000),  # mobius3 / rclone: microseconds
        ("1573212345.123456789", 1_573_212_345_123_456_789),
        ("1573212345.1234567891", 1_573_212_345_123_456_789),  # beyond ns: truncated
        ("1573212345", 1_573_212_345 * NS),
        ("1573212345.0", 1_573_212_345 * NS),
        ("1.5e9", 1_500_000_000 * NS),
        ("1.5E9", 1_500_000_000 * NS),
        (" 12.5 ", 12_500_000_000),
        ("+1.5", 1_500_000_000),
        ("1.", NS),
        (".5", NS // 2),
        ("0", 0),
        ("-1.5", -1_500_000_000),
        ("-0.5", -NS // 2),
        ("-1", -NS),
        ("-86400.25", -86_400 * NS - NS // 4),
        ("1e11", 100_000_000_000 * NS),  # the largest accepted
    ],
)
def test_parse_mtime(text: str, mtime_ns: int) -> None:
    assert parse_mtime(text) == mtime_ns


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "   ",
        "abc",
        "1.2.3",
        "1,5",
        "nan",
        "NaN",
        "-nan",
        "inf",
        "-inf",
        "Infinity",
        "1e12",
        "-1e12",
        "1e400",
        "12:00",
        "0x10",
        "1.5s",
    ],
)
def test_parse_mtime_garbage_is_none(text: str | None) -> None:
    assert parse_mtime(text) is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_parse_mtime_never_raises(text: str) -> None:
    result = parse_mtime(text)
    assert result is None or isinstance(result, int)


# -- the format of mode ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("33188", 0o100644),  # mobius3: st_mode in decimal
        ("16877", 0o40755),  # a directory, decimal
        ("41471", 0o120777),  # a symlink, decimal
        ("100644", 0o100644),  # rclone: octal with the file type
        ("0100664", 0o100664),  # rclone's documented form, with a leading zero
        ("040755", 0o40755),
        ("0120777", 0o120777),
        ("100755", 0o100755),
        ("40755", 0o40755),
        ("120777", 0o120777),
        ("0o755", 0o755),
        ("0O644", 0o644),
        ("0o100600", 0o100600),
        (" 33188 ", 0o100644),
        ("420", 0o420),  # up to four octal digits: permissions written by hand, in octal
        ("644", 0o644),
        ("0755", 0o755),
        ("493", 0o755),  # not octal (9): permission bits in decimal
        ("493", 0o755),
        ("0", 0),
        ("4095", 0o7777),  # the largest permission-only decimal value
        ("7777", 0o7777),  # too large as decimal permissions: read as octal
    ],
)
def test_parse_mode(text: str, mode: int) -> None:
    assert parse_mode(text) == mode


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "abc",
        "-1",
        "-33188",
        "0o",
        "0o9",
        "0x1ff",
        "12.5",
        "777777",  # neither a plausible decimal nor octal mode
        "99999",  # not plausible as decimal, not octal
        "4096",  # S_IFIFO as decimal; not octal
        "4480",  # a FIFO (0o10600) in decimal: never synced
        "49536",  # a socket (0o140600) in decimal
    ],
)
def test_parse_mode_garbage_is_none(text: str | None) -> None:
    assert parse_mode(text) is None


@pytest.mark.parametrize("mode", [0o100644, 0o100755, 0o40755, 0o120777, 0o100600])
def test_format_mode_round_trips(mode: int) -> None:
    assert format_mode(mode) == str(mode)
    assert parse_mode(format_mode(mode)) == mode


@pytest.mark.parametrize("text", ["4300000000", "99999999999999999999"])
def test_parse_mode_huge_value_is_none(text: str) -> None:
    assert parse_mode(text) is None


@pytest.mark.parametrize("text", ["0o40000000000", "0o7777777777777777", "0o140644"])
def test_parse_mode_octal_prefix_is_checked_like_the_rest(text: str) -> None:
    assert parse_mode(text) is None


# -- HTTP dates (Last-Modified) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "mtime_ns"),
    [
        ("Wed, 21 Oct 2015 07:28:00 GMT", 1_445_412_480 * NS),
        ("Wed, 21 Oct 2015 07:28:00 +0000", 1_445_412_480 * NS),
        ("Wed, 21 Oct 2015 07:28:00 +0200", (1_445_412_480 - 7200) * NS),
        ("Wed, 21 Oct 2015 07:28:00", 1_445_412_480 * NS),  # no zone: UTC
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0),
    ],
)
def test_parse_http_date(text: str, mtime_ns: int) -> None:
    assert parse_http_date(text) == mtime_ns


@pytest.mark.parametrize(
    "text",
    [None, "", "garbage", "2015-10-21T07:28:00Z", "Mon, 32 Oct 2015 07:28:00 GMT", "0"],
)
def test_parse_http_date_garbage_is_none(text: str | None) -> None:
    assert parse_http_date(text) is None


@pytest.mark.parametrize(
    "text",
    ["Wed, 21 Oct 99999999999 07:28:00 GMT", "Wed, 99999999999 Oct 2015 07:28:00 GMT"],
)
def test_parse_http_date_overflow_is_none(text: str) -> None:
    assert parse_http_date(text) is None


# -- from the folder to S3 ---------------------------------------------------------------------


@pytest.mark.any_s3
async def test_chmod_and_touch_update_metadata_only(syncer_factory, bucket: Bucket) -> None:
    syncer = await syncer_factory()
    path = syncer.folder / "script.sh"
    path.write_bytes(b"#!/bin/sh\n")
    os.chmod(path, 0o644)
    await eventually(lambda: in_thread(content_of, bucket, "script.sh", b"#!/bin/sh\n"))
    etag = (await in_thread(bucket.head, "script.sh"))["ETag"]
    puts_before = requests(syncer, "PutObject")

    os.chmod(path, 0o755)

    def mode_updated() -> None:
        meta = bucket.head("script.sh")["Metadata"]
        assert parse_mode(meta["mode"]) == stat.S_IFREG | 0o755

    await eventually(lambda: in_thread(mode_updated), what="mode in S3")
    os.utime(path, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))

    def mtime_updated() -> None:
        meta = bucket.head("script.sh")["Metadata"]
        assert parse_mtime(meta["mtime"]) == 1_600_000_000_000_000_000

    await eventually(lambda: in_thread(mtime_updated), what="mtime in S3")
    await syncer._running().scheduler.wait_idle()
    head = await in_thread(bucket.head, "script.sh")
    assert head["ETag"] == etag, "content unchanged"
    assert requests(syncer, "PutObject") == puts_before, "no content re-upload"
    # Two copies each: the second after the first one's second has turned, so that other
    # clients' listings (Last-Modified to the second, the ETag unchanged) see the change.
    assert requests(syncer, "CopyObject") == 4


@pytest.mark.any_s3
async def test_a_chmod_never_puts_its_metadata_on_a_newer_object(
    syncer_factory, bucket: Bucket
) -> None:
    """A chmod here while S3 holds another client's newer version that no listing has shown:
    the metadata copy is conditional on the ETag last synced, so it never lands on the newer
    version (which would then pass for ours, its bytes never downloaded). Both sides changed:
    both are kept (Ceph RGW ignores x-amz-copy-source-if-match: a HEAD looks first)."""
    syncer = await syncer_factory(download_interval=1000)
    path = syncer.folder / "run.sh"
    path.write_bytes(b"v1")
    os.chmod(path, 0o644)
    await eventually(lambda: in_thread(content_of, bucket, "run.sh", b"v1"))
    await syncer._running().scheduler.wait_idle()
    await in_thread(bucket.put, "run.sh", b"v2 remote", {"mode": str(stat.S_IFREG | 0o640)})
    os.chmod(path, 0o700)

    def both_kept() -> None:
        keys = bucket.list_keys()
        copies = conflict_copies(syncer.folder, [])
        assert len(keys) == 2 and copies == [k for k in keys if k != "run.sh"], keys
        assert bucket.get("run.sh") == b"v1"
        assert parse_mode(bucket.head("run.sh")["Metadata"]["mode"]) == stat.S_IFREG | 0o700
        assert bucket.get(copies[0]) == b"v2 remote"
        assert read(syncer.folder / copies[0]) == b"v2 remote"
        # with its own mode: our chmod never reached it
        assert stat.S_IMODE((syncer.folder / copies[0]).stat().st_mode) == 0o640
        assert _mode_in_s3(bucket, copies[0]) == 0o640

    await eventually(lambda: in_thread(both_kept), what="both versions kept")
    await syncer._running().scheduler.wait_idle()
    await in_thread(both_kept)
    assert metric(syncer, "s3sync_conflicts_total") == 1


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


# -- from S3 to the folder ---------------------------------------------------------------------


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


@pytest.mark.any_s3
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


async def test_a_directory_marker_mtime_is_applied(syncer_factory: Any, bucket: Bucket) -> None:
    await in_thread(bucket.put, "empty/", b"", {"mtime": "1600000000.25", "mode": "16877"})
    syncer = await syncer_factory()
    folder: Path = syncer.folder
    assert (folder / "empty").is_dir()
    assert os.stat(folder / "empty").st_mtime_ns == 1_600_000_000_250_000_000


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


# -- two clients in one Last-Modified second ---------------------------------------------------


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
