"""Conflicts: a path changed on both sides loses neither version. One keeps the name, the other
is kept beside it as a conflict copy, in the folder and in S3; the same bytes on both sides make
no copy. First the copies' names (local/conflicts.py) and knowing one again; then end to end,
against moto with real inotify: while running, at start and after a restart, an app writing to
a file the sidecar replaced, and the copy where hard links fail. (One-way modes keep a local
change the same way: test_modes.py; the decision's rows: test_reconcile.py.)"""

from __future__ import annotations

import os
import stat
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.bucket import Bucket
from support.folders import read, synced_folder
from support.metrics import metric, requests
from support.waiting import eventually, in_thread

from sidecar.local.conflicts import conflict_name, existing_conflicts, is_conflict
from sidecar.s3.metadata import format_mode

MOMENT = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
TAG = ".sync-conflict-20261125-120000"


NAMES = [
    ("report.txt", 0, f"report{TAG}.txt"),
    ("dir/report.txt", 0, f"dir/report{TAG}.txt"),
    ("a/b/c/report.txt", 0, f"a/b/c/report{TAG}.txt"),
    ("archive.tar.gz", 0, f"archive.tar{TAG}.gz"),
    ("Makefile", 0, f"Makefile{TAG}"),
    ("dir/Makefile", 0, f"dir/Makefile{TAG}"),
    (".bashrc", 0, f".bashrc{TAG}"),
    ("dir/.env.local", 0, f"dir/.env{TAG}.local"),
    ("a.verylongext", 0, f"a.verylongext{TAG}"),  # "extension" over 10 chars: not one
    ("a.ten4567xy", 0, f"a{TAG}.ten4567xy"),  # 10 chars with the dot: kept
    ("report.txt", 1, f"report{TAG}-1.txt"),
    ("report.txt", 12, f"report{TAG}-12.txt"),
    ("dir.d/file", 0, f"dir.d/file{TAG}"),
    ("ünï 😀.txt", 0, f"ünï 😀{TAG}.txt"),
]


# -- naming ------------------------------------------------------------------------------


@pytest.mark.parametrize(("rel", "attempt", "name"), NAMES)
def test_conflict_name(rel: str, attempt: int, name: str) -> None:
    assert conflict_name(rel, MOMENT, attempt) == name


def test_conflict_name_uses_utc() -> None:
    local = MOMENT.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert conflict_name("a.txt", local, 0) == f"a{TAG}.txt"


@pytest.mark.parametrize(
    ("rel", "suffix"),
    [
        ("x" * 255, ""),
        ("x" * 251 + ".txt", ".txt"),
        ("é" * 127 + ".txt", ".txt"),  # 2-byte characters
        ("😀" * 63 + ".md", ".md"),  # 4-byte characters
        ("d/" + "x" * 255, ""),
    ],
)
@pytest.mark.parametrize("attempt", [0, 7, 123])
def test_long_conflict_names_stay_within_name_max(rel: str, suffix: str, attempt: int) -> None:
    result = conflict_name(rel, MOMENT, attempt)
    name = result.rsplit("/", 1)[-1]
    assert len(name.encode()) <= 255
    tag = TAG + (f"-{attempt}" if attempt else "")
    assert name.endswith(tag + suffix)
    stem = name[: len(name) - len(tag + suffix)]
    original = rel.rsplit("/", 1)[-1]
    assert stem and original.startswith(stem)  # truncated, whole characters only
    assert result.startswith("d/") == rel.startswith("d/")


def test_conflict_names_differ_by_attempt() -> None:
    names = {conflict_name("x" * 300, MOMENT, attempt) for attempt in range(5)}
    assert len(names) == 5


# -- knowing one again -------------------------------------------------------------------


@pytest.mark.parametrize(("rel", "attempt", "name"), NAMES)
def test_a_conflict_copy_is_known_by_its_name(rel: str, attempt: int, name: str) -> None:
    assert is_conflict(name)
    assert not is_conflict(rel)
    assert existing_conflicts(rel, [rel, name]) == [name]


@pytest.mark.parametrize(
    "name",
    [
        "report.txt",
        "report.sync-conflict.txt",  # no moment
        "report.sync-conflict-2026112-120000.txt",  # a digit short
        "report-sync-conflict-20261125-120000.txt",  # no dot before the tag
        "report.sync-conflict-20261125-120000 old.txt.bak",  # more than an extension after it
        "report.sync-conflict-20261125-120000.verylongext",  # not an extension: over 10
        f"dir{TAG}/report.txt",  # a directory's name is not the file's
    ],
)
def test_names_that_only_look_like_conflict_copies(name: str) -> None:
    assert not is_conflict(name)
    assert existing_conflicts("report.txt", [name]) == []


def test_existing_conflicts_are_the_copies_of_that_path_only() -> None:
    copy = f"report{TAG}.txt"
    listing = [
        "report.txt",
        copy,
        f"report{TAG}-1.txt",
        f"report{TAG}-0.txt",  # attempt 0 carries no number: not ours
        "report.sync-conflict-20261325-120000.txt",  # a 13th month: no moment
        f"other{TAG}.txt",
        f"report{TAG}.md",
        f"report{TAG}{TAG}.txt",  # a copy of the copy
        f"dir/report{TAG}.txt",  # another directory
    ]
    assert existing_conflicts("report.txt", listing) == [copy, f"report{TAG}-1.txt"]
    assert existing_conflicts(copy, listing) == [f"report{TAG}{TAG}.txt"]
    assert existing_conflicts("dir/report.txt", listing) == [f"dir/report{TAG}.txt"]


@given(
    name=st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
        min_size=1,
        max_size=260,
    ).filter(lambda name: name not in (".", "..") and len(name.encode()) <= 255),
    seconds=st.integers(0, 4_000_000_000),
    attempt=st.integers(0, 999),
)
def test_every_name_made_is_known_again(name: str, seconds: int, attempt: int) -> None:
    moment = datetime.fromtimestamp(seconds, UTC)
    for rel in (name, f"dir/{name}"):
        copy = conflict_name(rel, moment, attempt)
        assert is_conflict(copy), copy
        assert existing_conflicts(rel, [rel, copy]) == [copy]


# -- while running: a change on each side ------------------------------------------------


@pytest.mark.any_s3
async def test_local_unsynced_change_survives_remote_change(syncer_factory, bucket: Bucket) -> None:
    syncer = await syncer_factory(download_interval=1000)
    folder: Path = syncer.folder
    await in_thread(bucket.put, "shared.txt", b"original")
    await syncer.poll_once()
    await eventually(lambda: read(folder / "shared.txt") == b"original")

    # Another client changes it in S3 while this side writes a new version that is not in S3
    # yet (held open: "writing" until it is closed).
    await in_thread(bucket.put, "shared.txt", b"remote edit")
    with open(folder / "shared.txt", "r+b") as file:
        file.write(b"LOCAL EDIT")
        file.flush()
        await syncer.poll_once()
        syncer._running().watcher.barrier()
        assert read(folder / "shared.txt") == b"LOCAL EDIT", "local change overwritten"
    # Closed: the local version keeps the name and goes to S3; the remote one is kept too.

    def both_kept() -> None:
        assert bucket.get("shared.txt") == b"LOCAL EDIT"
        copies = existing_conflicts("shared.txt", bucket.list_keys())
        assert len(copies) == 1, bucket.list_keys()
        assert copies[0].endswith(".txt")
        assert bucket.get(copies[0]) == b"remote edit"

    await eventually(lambda: in_thread(both_kept), what="both versions kept in S3")
    assert read(folder / "shared.txt") == b"LOCAL EDIT"
    local_copies = [folder / name for name in existing_conflicts("shared.txt", os.listdir(folder))]
    assert len(local_copies) == 1 and local_copies[0].read_bytes() == b"remote edit"
    assert metric(syncer, "s3sync_conflicts_total") == 1


@pytest.mark.any_s3
async def test_conflict_detected_by_conditional_write(syncer_factory, bucket: Bucket) -> None:
    """The remote change is not seen by a poll first: the If-Match on the upload catches it."""
    syncer = await syncer_factory(download_interval=1000)
    folder: Path = syncer.folder
    (folder / "doc.txt").write_bytes(b"v1")
    await eventually(lambda: in_thread(lambda: bucket.exists("doc.txt")))
    await in_thread(bucket.put, "doc.txt", b"v2 from elsewhere")
    (folder / "doc.txt").write_bytes(b"v2 from here")

    def both_kept() -> None:
        assert bucket.get("doc.txt") == b"v2 from here"
        copies = existing_conflicts("doc.txt", bucket.list_keys())
        assert len(copies) == 1
        assert bucket.get(copies[0]) == b"v2 from elsewhere"

    await eventually(lambda: in_thread(both_kept))


@pytest.mark.any_s3
async def test_the_same_file_edited_in_two_folders_at_once_keeps_both_once(
    syncer_factory, bucket: Bucket, tmp_path: Path
) -> None:
    """Two folders share a prefix; both edit one synced file at about the same time. One
    version keeps the name, the other is kept beside it, once, and both folders and S3 end
    the same."""
    one = await syncer_factory(directory=tmp_path / "one", prefix="team/")
    two = await syncer_factory(directory=tmp_path / "two", prefix="team/")
    (one.folder / "plan.txt").write_bytes(b"v1")
    await eventually(lambda: read(two.folder / "plan.txt") == b"v1", what="v1 in the second")
    for syncer in (one, two):
        await syncer._running().scheduler.wait_idle()
    (one.folder / "plan.txt").write_bytes(b"v2 from one")
    (two.folder / "plan.txt").write_bytes(b"v2 from two")

    def files(folder: Path) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}

    def agreed() -> None:
        keys = bucket.list_keys("team/")
        there = {key.removeprefix("team/"): bucket.get(key) for key in keys}
        assert files(one.folder) == files(two.folder) == there, (files(one.folder), there)
        assert sorted(there.values()) == [b"v2 from one", b"v2 from two"]
        assert len(existing_conflicts("plan.txt", list(there))) == 1

    await eventually(lambda: in_thread(agreed), timeout=40, what="both kept, the same everywhere")
    for syncer in (one, two):
        await syncer._running().scheduler.wait_idle()
    await in_thread(agreed)


# -- at start, and after a restart -------------------------------------------------------


@pytest.mark.any_s3
async def test_both_sides_kept_at_start(syncer_factory, bucket: Bucket, tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "local-only.txt").write_bytes(b"local")
    (folder / "same.txt").write_bytes(b"same content")
    (folder / "differs-local-newer.txt").write_bytes(b"local and newer")
    (folder / "differs-remote-newer.txt").write_bytes(b"local and older")
    os.utime(folder / "differs-local-newer.txt", (2_000_000_000, 2_000_000_000))
    os.utime(folder / "differs-remote-newer.txt", (1_000_000_000, 1_000_000_000))
    await in_thread(bucket.put, "remote-only.txt", b"remote")
    await in_thread(bucket.put, "same.txt", b"same content")
    await in_thread(
        bucket.put, "differs-local-newer.txt", b"remote and older", {"mtime": "1500000000"}
    )
    await in_thread(
        bucket.put, "differs-remote-newer.txt", b"remote and newer", {"mtime": "1500000000"}
    )

    syncer = await syncer_factory(directory=folder)
    assert (folder / "remote-only.txt").read_bytes() == b"remote"
    assert (folder / "same.txt").read_bytes() == b"same content"
    assert (folder / "differs-local-newer.txt").read_bytes() == b"local and newer"
    assert (folder / "differs-remote-newer.txt").read_bytes() == b"remote and newer"
    copies = {p.name: p.read_bytes() for p in folder.iterdir() if is_conflict(p.name)}
    assert sorted(copies.values()) == [b"local and older", b"remote and older"]

    def s3_has_everything() -> None:
        keys = bucket.list_keys()
        assert bucket.get("local-only.txt") == b"local"
        assert bucket.get("differs-local-newer.txt") == b"local and newer"
        assert bucket.get("differs-remote-newer.txt") == b"remote and newer"
        for name, content in copies.items():
            assert name in keys
            assert bucket.get(name) == content

    await eventually(lambda: in_thread(s3_has_everything), what="every version in S3")
    assert requests(syncer, "GetObject") == 3, "same.txt proven equal without a download"


async def test_the_same_bytes_written_on_both_sides_while_down_agree_on_one_mode(
    syncer_factory, bucket: Bucket, tmp_path: Path
) -> None:
    """While the sidecar is down, the folder and another client write the same bytes to a
    synced file, S3's with another mode. Both changed, so the folder's version wins as in any
    conflict; with the same bytes there is no conflict copy, and its mode goes to S3 rather
    than both sides keeping their own for good (found by the chaos test, seed 55 of its fifth
    long run: one folder kept 644 while the others and S3 had 600)."""
    folder = tmp_path / "folder"
    first = await syncer_factory(directory=folder)
    (folder / "same.txt").write_bytes(b"version one")
    os.chmod(folder / "same.txt", 0o644)
    await eventually(lambda: bucket.exists("same.txt"))
    await first._running().scheduler.wait_idle()
    await first.stop()

    (folder / "same.txt").write_bytes(b"")
    await in_thread(bucket.put, "same.txt", b"", {"mode": format_mode(stat.S_IFREG | 0o600)})
    written = (await in_thread(bucket.head, "same.txt"))["LastModified"].timestamp()
    await eventually(lambda: time.time() >= int(written) + 1, what="its second over")
    syncer = await syncer_factory(directory=folder)

    def s3_mode() -> int:
        return stat.S_IMODE(int(bucket.head("same.txt")["Metadata"]["mode"]))

    await eventually(lambda: s3_mode() == 0o644, what="the folder's mode in S3")
    await syncer._running().scheduler.wait_idle()
    assert stat.S_IMODE(os.lstat(folder / "same.txt").st_mode) == 0o644
    assert sorted(p.name for p in folder.iterdir()) == [".s3sync-sidecar", "same.txt"]
    assert metric(syncer, "s3sync_conflicts_total") == 0
    assert requests(syncer, "PutObject") == 0


@pytest.mark.any_s3
async def test_changed_on_both_sides_while_down(
    syncer_factory, bucket: Bucket, tmp_path: Path
) -> None:
    folder = await synced_folder(syncer_factory, bucket, tmp_path)
    (folder / "f00.txt").write_bytes(b"here")
    await in_thread(bucket.put, "f00.txt", b"there")
    await syncer_factory(directory=folder)

    def both_kept() -> None:
        keys = bucket.list_keys()
        assert bucket.get("f00.txt") == b"here"
        copies = existing_conflicts("f00.txt", keys)
        assert len(copies) == 1 and bucket.get(copies[0]) == b"there"

    await eventually(lambda: in_thread(both_kept))


def _put_multipart(bucket: Bucket, key: str, body: bytes, part: int, mtime: str) -> str:
    client = bucket.client
    upload = client.create_multipart_upload(
        Bucket=bucket.name, Key=key, Metadata={"mtime": mtime, "mode": "33188"}
    )
    parts = []
    for number, offset in enumerate(range(0, len(body), part), start=1):
        answer = client.upload_part(
            Bucket=bucket.name,
            Key=key,
            UploadId=upload["UploadId"],
            PartNumber=number,
            Body=body[offset : offset + part],
        )
        parts.append({"ETag": answer["ETag"], "PartNumber": number})
    done = client.complete_multipart_upload(
        Bucket=bucket.name,
        Key=key,
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": parts},
    )
    return str(done["ETag"]).strip('"')


@pytest.mark.parametrize("same_content", [False, True])
async def test_multipart_object_with_same_size_and_mtime_is_compared_by_content(
    syncer_factory: Any, bucket: Bucket, tmp_path: Path, same_content: bool
) -> None:
    part = 5 * 1024 * 1024
    remote = bytes(range(256)) * (2 * part // 256) + b"tail"
    local = remote if same_content else remote[:-4] + b"TAIL"
    mtime_ns = 1_700_000_000_000_000_000
    etag = await in_thread(_put_multipart, bucket, "build.tar", remote, part, "1700000000.0")
    assert etag.endswith("-3")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "build.tar").write_bytes(local)
    os.utime(folder / "build.tar", ns=(mtime_ns, mtime_ns))

    syncer = await syncer_factory(directory=folder)
    await syncer._running().scheduler.wait_idle()
    copies = [p for p in folder.iterdir() if is_conflict(p.name)]
    assert (folder / "build.tar").read_bytes() == local
    if same_content:
        assert copies == []
        assert metric(syncer, "s3sync_conflicts_total") == 0
        assert requests(syncer, "GetObject") == 0  # proven from the file, not downloaded
    else:
        assert [p.read_bytes() == remote for p in copies] == [True]
        await eventually(lambda: bucket.get("build.tar") == local, timeout=30)


# -- an app writing to a file the sidecar replaced ---------------------------------------


@pytest.mark.parametrize("remote_change", ["overwrite", "delete"])
async def test_writes_to_a_replaced_file_held_open_by_an_app_are_kept(
    syncer_factory: Any, bucket: Bucket, remote_change: str
) -> None:
    syncer = await syncer_factory(open_file_timeout=1)
    log_path = syncer.folder / "app.log"
    log_path.write_bytes(b"line 1\n")
    await eventually(lambda: bucket.exists("app.log") and bucket.get("app.log") == b"line 1\n")

    app = open(log_path, "ab")  # noqa: SIM115 - the app holds it open across the change
    try:
        if remote_change == "overwrite":
            await in_thread(bucket.put, "app.log", b"from another client\n")
            await syncer.poll_once()
            await eventually(lambda: log_path.read_bytes() == b"from another client\n")
        else:
            await in_thread(bucket.delete, "app.log")
            await syncer.poll_once()
            await eventually(lambda: not log_path.exists())
        app.write(b"line 2, written after the change\n")
        app.flush()
    finally:
        app.close()
    kept = b"line 1\nline 2, written after the change\n"

    def saved() -> list[Path]:
        return [p for p in syncer.folder.iterdir() if p.is_file() and p.read_bytes() == kept]

    await eventually(lambda: saved(), timeout=20, what="the app's writes kept in the folder")
    (copy,) = saved()
    if remote_change == "delete":
        assert copy.name == "app.log"  # its name was free: the file comes back
    else:
        assert existing_conflicts("app.log", [copy.name]) == [copy.name]
        assert log_path.read_bytes() == b"from another client\n"
    await eventually(lambda: bucket.exists(copy.name) and bucket.get(copy.name) == kept)


# -- where hard links fail ---------------------------------------------------------------


def test_conflict_copy_falls_back_to_a_copy_where_links_fail(tmp_path: Path) -> None:
    """link() across filesystems fails with EXDEV (as it fails with EPERM or EACCES where hard
    links are refused): the conflict copy is then a real copy, with mode and mtime."""
    from sidecar.local.conflicts import existing_conflicts, link_as_conflict

    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on another filesystem than the temporary folder")
    source = shm / f"s3sync-test-{os.getpid()}"
    source.write_bytes(b"the S3 version")
    os.chmod(source, 0o640)
    os.utime(source, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))

    from sidecar.local.safefs import At

    shm_fd = os.open(shm, os.O_RDONLY | os.O_DIRECTORY)
    folder_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        beside = At(folder_fd, "report.txt")
        first = link_as_conflict(At(shm_fd, source.name), beside, "report.txt")
        second = link_as_conflict(At(shm_fd, source.name), beside, "report.txt")
    finally:
        source.unlink()
        os.close(shm_fd)
        os.close(folder_fd)
    assert first != second and existing_conflicts("report.txt", [first, second]) == [first, second]
    for name in (first, second):
        copy = tmp_path / name
        assert copy.read_bytes() == b"the S3 version"
        assert stat.S_IMODE(copy.stat().st_mode) == 0o640
        assert copy.stat().st_mtime_ns == 1_600_000_000_000_000_000


@pytest.mark.any_s3
async def test_a_failing_write_after_a_conflict_keeps_one_copy(
    syncer_factory: Any, bucket: Bucket, proxy: Any, tmp_path: Path
) -> None:
    """Both sides change one file; then every conditional write is refused (412 whatever S3
    holds, as Ceph RGW answers a quoted If-Match), so the local version's upload after the
    conflict fails again and again: the S3 version is kept beside it once."""
    syncer = await syncer_factory(endpoint=proxy.endpoint_pattern, download_interval=0.5)
    folder: Path = syncer.folder
    (folder / "doc.txt").write_bytes(b"v1")
    await eventually(lambda: bucket.exists("doc.txt"))
    await syncer._running().scheduler.wait_idle()
    proxy.faults.methods = {"PUT"}  # writes; a read's If-Match still holds
    proxy.faults.refuse_conditions = True
    await in_thread(bucket.put, "doc.txt", b"remote v2")
    (folder / "doc.txt").write_bytes(b"local v2")
    await eventually(lambda: metric(syncer, "s3sync_conflicts_total") >= 1, what="the conflict")
    tries = proxy.seen["PUT"]
    await eventually(lambda: proxy.seen["PUT"] >= tries + 4, timeout=60, what="more refused writes")
    copies = existing_conflicts("doc.txt", [p.name for p in folder.iterdir()])
    assert len(copies) == 1, copies
    assert (folder / copies[0]).read_bytes() == b"remote v2"
    proxy.faults.refuse_conditions = False
    await eventually(lambda: bucket.get("doc.txt") == b"local v2", timeout=60, what="the upload")
    await eventually(lambda: in_thread(lambda: len(bucket.list_keys()) == 2), timeout=60)
    keys = await in_thread(bucket.list_keys)
    assert existing_conflicts("doc.txt", keys) == copies
    assert await in_thread(bucket.get, copies[0]) == b"remote v2"
    assert existing_conflicts("doc.txt", [p.name for p in folder.iterdir()]) == copies
