"""Local changes reach S3: real inotify on a temp folder, a real moto server checking SigV4.
Files of every size and name, trees made and renamed, links, files held open, bursts and what
is excluded. The everyday edits (a file edited again and again, an editor's atomic save, a
rename chain, a writer that appends for good, a file uploaded in parts) run on Ceph RGW too
(`any_s3`). (Deletes: test_deletes.py; chmod and touch: test_metadata.py.)"""

from __future__ import annotations

import asyncio
import os
import stat

import pytest
from support.bucket import Bucket, content_of
from support.metrics import metric, requests
from support.waiting import eventually, in_thread

from sidecar.s3.metadata import parse_mode, parse_mtime


@pytest.mark.any_s3
async def test_written_file_is_uploaded_with_metadata(syncer_factory, bucket: Bucket) -> None:
    syncer = await syncer_factory()
    path = syncer.folder / "report.csv"
    path.write_bytes(b"a,b\n1,2\n")
    os.chmod(path, 0o640)
    os.utime(path, ns=(1_700_000_000_123_456_789, 1_700_000_000_123_456_789))

    def uploaded() -> None:
        content_of(bucket, "report.csv", b"a,b\n1,2\n")
        head = bucket.head("report.csv")
        assert parse_mtime(head["Metadata"]["mtime"]) == 1_700_000_000_123_456_789
        assert parse_mode(head["Metadata"]["mode"]) == stat.S_IFREG | 0o640

    await eventually(lambda: in_thread(uploaded), what="content, mtime and mode in S3")
    head = await in_thread(bucket.head, "report.csv")
    assert head["ContentType"] == "text/csv"
    assert head["Metadata"]["mtime"] == "1700000000.123456789"


@pytest.mark.any_s3
async def test_a_synced_file_edited_again_and_again_is_uploaded_each_time(
    syncer_factory, bucket: Bucket
) -> None:
    """Every edit of a file already in S3 is a conditional write on the ETag S3 holds (Ceph RGW
    refused the quoted form of the right ETag: no edit ever reached it)."""
    syncer = await syncer_factory()
    path = syncer.folder / "notes.txt"
    for version in range(1, 5):
        content = f"version {version}\n".encode() * version
        path.write_bytes(content)
        await eventually(
            lambda content=content: in_thread(content_of, bucket, "notes.txt", content),
            what=f"version {version} in S3",
        )
    await syncer._running().scheduler.wait_idle()
    assert await in_thread(bucket.list_keys) == ["notes.txt"]
    assert metric(syncer, "s3sync_conflicts_total") == 0
    assert metric(syncer, "s3sync_uploads_total", result="error") == 0


@pytest.mark.any_s3
async def test_an_editors_atomic_save_is_uploaded(syncer_factory, bucket: Bucket) -> None:
    """An editor writes the new version beside the file and renames it over the old one."""
    syncer = await syncer_factory()
    folder = syncer.folder
    (folder / "essay.md").write_bytes(b"# draft one\n")
    await eventually(lambda: in_thread(content_of, bucket, "essay.md", b"# draft one\n"))
    for draft in (b"# draft two\n", b"# draft three, longer\n"):
        temporary = folder / ".essay.md.tmp"
        temporary.write_bytes(draft)
        os.rename(temporary, folder / "essay.md")

        def saved(draft: bytes = draft) -> None:
            assert bucket.list_keys() == ["essay.md"]
            assert bucket.get("essay.md") == draft

        await eventually(lambda: in_thread(saved), what="the saved draft, alone, in S3")
    assert metric(syncer, "s3sync_conflicts_total") == 0


@pytest.mark.any_s3
async def test_a_rename_chain_then_a_delete_and_recreate(syncer_factory, bucket: Bucket) -> None:
    """a → b → c, then c deleted and made again at once with new bytes: S3 ends with the new c
    only."""
    syncer = await syncer_factory()
    folder = syncer.folder
    (folder / "a.txt").write_bytes(b"the first bytes")
    await eventually(lambda: in_thread(content_of, bucket, "a.txt", b"the first bytes"))
    os.rename(folder / "a.txt", folder / "b.txt")
    os.rename(folder / "b.txt", folder / "c.txt")

    def only(key: str, content: bytes) -> None:
        assert bucket.list_keys() == [key]
        assert bucket.get(key) == content

    await eventually(lambda: in_thread(only, "c.txt", b"the first bytes"), what="c alone")
    await syncer._running().scheduler.wait_idle()
    (folder / "c.txt").unlink()
    (folder / "c.txt").write_bytes(b"c made again")
    await eventually(lambda: in_thread(only, "c.txt", b"c made again"), what="the new c")
    (folder / "c.txt").unlink()
    await eventually(lambda: in_thread(lambda: bucket.list_keys() == []), what="c deleted")
    (folder / "c.txt").write_bytes(b"c made a third time")
    await eventually(lambda: in_thread(only, "c.txt", b"c made a third time"), what="c again")
    assert metric(syncer, "s3sync_conflicts_total") == 0


@pytest.mark.any_s3
async def test_a_writer_that_keeps_appending_is_uploaded_as_it_goes(
    syncer_factory, bucket: Bucket
) -> None:
    """A log kept open for good: each quiet spell uploads what it holds (over the version
    uploaded before), and appends that close the file (`>>`) upload each time."""
    syncer = await syncer_factory(open_file_timeout=1)
    path = syncer.folder / "service.log"
    expected = b""
    with open(path, "ab") as log:
        for spell in range(3):
            for line in range(3):
                text = f"spell {spell} line {line}\n".encode()
                log.write(text)
                log.flush()
                expected += text
            await eventually(
                lambda expected=expected: in_thread(content_of, bucket, "service.log", expected),
                timeout=20,
                what=f"the log after quiet spell {spell}",
            )
    for line in range(5):
        with open(path, "ab") as log:
            text = f"appended and closed {line}\n".encode()
            log.write(text)
            expected += text
        await asyncio.sleep(0.1)  # pacing the writer, not synchronising with the sidecar
    await eventually(lambda: in_thread(content_of, bucket, "service.log", expected))
    assert metric(syncer, "s3sync_conflicts_total") == 0


@pytest.mark.any_s3
async def test_a_file_uploaded_in_parts_is_never_downloaded_back(
    syncer_factory, bucket: Bucket
) -> None:
    """Our own multipart upload is known as ours by its ETag, also where the completion's
    answer carries none (Ceph RGW answers `<ETag></ETag>`): learned with a HEAD."""
    syncer = await syncer_factory(
        multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024
    )
    data = os.urandom(11 * 1024 * 1024)
    (syncer.folder / "big.bin").write_bytes(data)
    await eventually(lambda: in_thread(content_of, bucket, "big.bin", data), timeout=60)
    state = syncer._running().state

    async def listed_after_its_second() -> bool:
        await syncer.poll_once()
        await syncer._running().scheduler.wait_idle()
        remote = state.get("big.bin").remote
        return remote is not None and bool(remote.last_modified) and not remote.unsettled

    await eventually(listed_after_its_second, what="a listing after the upload's second")
    await syncer.poll_once()
    await syncer._running().scheduler.wait_idle()
    assert (await in_thread(bucket.head, "big.bin"))["ETag"].strip('"').endswith("-3")
    assert requests(syncer, "GetObject") == 0
    assert metric(syncer, "s3sync_downloads_total") == 0
    assert (syncer.folder / "big.bin").read_bytes() == data


@pytest.mark.any_s3
async def test_names_with_special_characters(syncer_factory, bucket: Bucket) -> None:
    syncer = await syncer_factory()
    names = [
        "with space.txt",
        "plus+sign.txt",
        "per%cent%20.txt",
        "tilde~.txt",
        "ünïcødé.txt",
        "emoji 😀🚀.txt",
        "q?uery#frag&amp=1.txt",
        "dir with space/x=y&z.txt",
        "(parens)[b].txt",
    ]
    for name in names:
        path = syncer.folder / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(name.encode())

    def all_uploaded() -> None:
        for name in names:
            content_of(bucket, name, name.encode())

    await eventually(lambda: in_thread(all_uploaded), what="every special name in S3")


@pytest.mark.parametrize("s3_server", ["rgw"], indirect=True)
async def test_names_with_a_line_break_or_a_tab_round_trip_on_a_server_that_takes_them(
    syncer_factory, bucket: Bucket
) -> None:
    """A line break and a tab are valid in S3 keys and file names. moto's server cannot route
    such a key nor check its signature (botocore's requests fail there too), so this runs on
    Ceph RGW only: uploaded under exactly that key, and a second folder restores it by name."""
    syncer = await syncer_factory()
    names = ["line\nbreak.txt", "tab\tbetween.txt", "dir\nwith break/inner.txt"]
    for name in names:
        path = syncer.folder / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(name.encode())

    def all_uploaded() -> None:
        for name in names:
            content_of(bucket, name, name.encode())

    await eventually(lambda: in_thread(all_uploaded), what="every name in S3")
    other = await syncer_factory()
    for name in names:
        assert (other.folder / name).read_bytes() == name.encode()


async def test_an_empty_file_is_an_empty_object(syncer_factory, bucket: Bucket) -> None:
    syncer = await syncer_factory()
    (syncer.folder / "empty").touch()
    await eventually(lambda: in_thread(content_of, bucket, "empty", b""), what="empty object")
    assert (await in_thread(bucket.head, "empty"))["ContentLength"] == 0


async def test_ten_megabytes_written_in_two_halves(syncer_factory, bucket: Bucket) -> None:
    syncer = await syncer_factory(
        multipart_threshold=6 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024
    )
    first = os.urandom(5 * 1024 * 1024)
    second = os.urandom(5 * 1024 * 1024)
    path = syncer.folder / "big.bin"
    with open(path, "wb") as file:
        file.write(first)
    with open(path, "ab") as file:
        file.write(second)

    def whole() -> None:
        assert bucket.exists("big.bin")
        assert bucket.get("big.bin") == first + second

    await eventually(lambda: in_thread(whole), timeout=60, what="both halves in S3")
    head = await in_thread(bucket.head, "big.bin")
    assert head["ETag"].strip('"').endswith("-2"), "uploaded in two parts"
    listing = await in_thread(lambda: bucket.client.list_multipart_uploads(Bucket=bucket.name))
    assert not listing.get("Uploads"), "no multipart upload left behind"


async def test_medium_file_streamed(syncer_factory, bucket: Bucket) -> None:
    syncer = await syncer_factory()
    data = os.urandom(3 * 1024 * 1024 + 17)
    (syncer.folder / "medium.bin").write_bytes(data)
    await eventually(lambda: in_thread(content_of, bucket, "medium.bin", data), timeout=30)


async def test_nested_tree_created_at_once(syncer_factory, bucket: Bucket) -> None:
    syncer = await syncer_factory()
    deep = syncer.folder / "a" / "b" / "c" / "d"
    deep.mkdir(parents=True)
    (deep / "leaf.txt").write_bytes(b"leaf")
    (syncer.folder / "a" / "b" / "mid.txt").write_bytes(b"mid")

    def tree() -> None:
        content_of(bucket, "a/b/c/d/leaf.txt", b"leaf")
        content_of(bucket, "a/b/mid.txt", b"mid")
        keys = bucket.list_keys()
        for marker in ("a/", "a/b/", "a/b/c/", "a/b/c/d/"):
            assert marker in keys

    await eventually(lambda: in_thread(tree), what="nested tree")


async def test_directory_renamed_immediately(syncer_factory, bucket: Bucket) -> None:
    syncer = await syncer_factory()
    (syncer.folder / "tmp" / "inner").mkdir(parents=True)
    (syncer.folder / "tmp" / "inner" / "f.txt").write_bytes(b"f")
    (syncer.folder / "tmp" / "g.txt").write_bytes(b"g")
    os.rename(syncer.folder / "tmp", syncer.folder / "final")

    def renamed() -> None:
        content_of(bucket, "final/inner/f.txt", b"f")
        content_of(bucket, "final/g.txt", b"g")
        assert not [k for k in bucket.list_keys() if k.startswith("tmp")]

    await eventually(lambda: in_thread(renamed), what="only the new names in S3")


async def test_directory_renamed_after_sync(syncer_factory, bucket: Bucket) -> None:
    syncer = await syncer_factory()
    (syncer.folder / "old" / "sub").mkdir(parents=True)
    (syncer.folder / "old" / "sub" / "f.txt").write_bytes(b"f")
    (syncer.folder / "old" / "g.txt").write_bytes(b"g")
    await eventually(lambda: in_thread(content_of, bucket, "old/sub/f.txt", b"f"))
    await eventually(lambda: in_thread(content_of, bucket, "old/g.txt", b"g"))

    os.rename(syncer.folder / "old", syncer.folder / "new")
    # Changes inside the moved tree are still seen under the new name.
    (syncer.folder / "new" / "sub" / "after.txt").write_bytes(b"after")

    def renamed() -> None:
        keys = bucket.list_keys()
        assert keys == ["new/", "new/g.txt", "new/sub/", "new/sub/after.txt", "new/sub/f.txt"]
        assert bucket.get("new/sub/f.txt") == b"f"
        assert bucket.get("new/sub/after.txt") == b"after"

    await eventually(lambda: in_thread(renamed), what="tree moved in S3")


async def test_file_renamed(syncer_factory, bucket: Bucket) -> None:
    syncer = await syncer_factory()
    (syncer.folder / "draft.txt").write_bytes(b"text")
    await eventually(lambda: in_thread(content_of, bucket, "draft.txt", b"text"))
    os.rename(syncer.folder / "draft.txt", syncer.folder / "final.txt")

    def renamed() -> None:
        assert bucket.list_keys() == ["final.txt"]
        assert bucket.get("final.txt") == b"text"

    await eventually(lambda: in_thread(renamed))


async def test_empty_directory_is_a_marker(syncer_factory, bucket: Bucket) -> None:
    syncer = await syncer_factory()
    (syncer.folder / "empty-dir").mkdir()
    await eventually(lambda: in_thread(lambda: bucket.list_keys() == ["empty-dir/"]))
    (syncer.folder / "empty-dir").rmdir()
    await eventually(lambda: in_thread(lambda: bucket.list_keys() == []))


async def test_symlinks_are_uploaded_as_links_never_followed(
    syncer_factory, bucket: Bucket
) -> None:
    syncer = await syncer_factory()
    (syncer.folder / "target.txt").write_bytes(b"t")
    os.symlink("target.txt", syncer.folder / "link")
    os.symlink("/etc/passwd", syncer.folder / "outside")
    (syncer.folder / "realdir").mkdir()
    os.symlink("realdir", syncer.folder / "dirlink")

    def links() -> None:
        assert bucket.get("link") == b"target.txt"
        assert bucket.get("outside") == b"/etc/passwd"
        assert bucket.get("dirlink") == b"realdir"
        assert stat.S_ISLNK(parse_mode(bucket.head("link")["Metadata"]["mode"]) or 0)

    await eventually(lambda: in_thread(links), what="symlinks as objects")
    assert "dirlink/" not in await in_thread(bucket.list_keys), "symlinked directory not followed"


async def test_hard_link_uploaded_on_create(syncer_factory, bucket: Bucket) -> None:
    syncer = await syncer_factory()
    (syncer.folder / "original").write_bytes(b"shared")
    await eventually(lambda: in_thread(content_of, bucket, "original", b"shared"))
    os.link(syncer.folder / "original", syncer.folder / "hardlink")
    await eventually(lambda: in_thread(content_of, bucket, "hardlink", b"shared"))


async def test_upload_on_create_pattern(syncer_factory, bucket: Bucket) -> None:
    syncer = await syncer_factory(upload_on_create=r".*\.lock$")
    fd = os.open(syncer.folder / "job.lock", os.O_CREAT | os.O_WRONLY)
    try:
        # Still open, never written: uploaded because of the pattern.
        await eventually(lambda: in_thread(content_of, bucket, "job.lock", b""))
    finally:
        os.close(fd)


async def test_file_kept_open_is_uploaded_when_quiet(syncer_factory, bucket: Bucket) -> None:
    syncer = await syncer_factory(open_file_timeout=1)
    with open(syncer.folder / "held.log", "wb") as file:
        file.write(b"line 1\n")
        file.flush()
        await eventually(
            lambda: in_thread(content_of, bucket, "held.log", b"line 1\n"),
            timeout=15,
            what="upload of an open, idle file",
        )


async def test_burst_of_a_thousand_files(syncer_factory, bucket: Bucket) -> None:
    syncer = await syncer_factory(download_interval=1000)  # polls only when told to
    folder = syncer.folder / "burst"
    folder.mkdir()
    for index in range(1000):
        (folder / f"file-{index:04d}.txt").write_bytes(f"content {index}".encode())

    await eventually(
        lambda: in_thread(lambda: len(bucket.list_keys("burst/")) == 1001),
        timeout=120,
        interval=0.5,
        what="1000 files and a marker in S3",
    )

    def contents() -> None:
        for index in range(1000):
            assert bucket.get(f"burst/file-{index:04d}.txt") == f"content {index}".encode()

    await in_thread(contents)
    assert requests(syncer, "PutObject") == 1001, "one PUT per file, no more"
    # 1,001 keys list in two pages: a continuation read wrong would make the second page look
    # deleted in S3, and the files deleted here.
    before = requests(syncer, "ListObjectsV2")
    await syncer.poll_once()
    assert requests(syncer, "ListObjectsV2") == before + 2
    assert len(list(folder.iterdir())) == 1000
    assert requests(syncer, "GetObject") == 0 and requests(syncer, "DeleteObject") == 0


async def test_excluded_local_paths_are_not_uploaded(syncer_factory, bucket: Bucket) -> None:
    syncer = await syncer_factory(exclude_local=r".*\.tmp$")
    (syncer.folder / "scratch.tmp").write_bytes(b"no")
    (syncer.folder / "real.txt").write_bytes(b"yes")
    await eventually(lambda: in_thread(content_of, bucket, "real.txt", b"yes"))
    await syncer.poll_once()
    assert await in_thread(bucket.list_keys) == ["real.txt"]


async def test_unreadable_file_is_skipped_not_fatal(syncer_factory, bucket: Bucket) -> None:
    if os.geteuid() == 0:
        import pytest

        pytest.skip("root can read any file")
    syncer = await syncer_factory()
    path = syncer.folder / "secret"
    path.write_bytes(b"s")
    os.chmod(path, 0)
    (syncer.folder / "fine").write_bytes(b"f")
    await eventually(lambda: in_thread(content_of, bucket, "fine", b"f"))


async def test_synced_folder_reached_through_a_symlink(
    syncer_factory, bucket: Bucket, tmp_path
) -> None:
    real = tmp_path / "volume"
    real.mkdir()
    os.symlink(real, tmp_path / "data")
    await in_thread(bucket.put, "from-s3.txt", b"down")
    syncer = await syncer_factory(directory=tmp_path / "data")
    assert (real / "from-s3.txt").read_bytes() == b"down"
    (tmp_path / "data" / "up.txt").write_bytes(b"up")
    await eventually(lambda: in_thread(content_of, bucket, "up.txt", b"up"))
    assert metric(syncer, "s3sync_inotify_watches") == 1


async def test_same_size_rewrite_with_the_mtime_put_back_is_uploaded(
    syncer_factory, bucket: Bucket
) -> None:
    """Written in place, same size, and the mtime put back (`rsync -t`, `tar`, some editors):
    the stat matches the synced record exactly; only the close-after-write says it changed
    (found by the chaos test, seed 1: the new bytes never reached S3)."""
    syncer = await syncer_factory()
    path = syncer.folder / "data.bin"
    path.write_bytes(b"A" * 100)
    await eventually(lambda: bucket.exists("data.bin") and bucket.get("data.bin") == b"A" * 100)
    await syncer._running().scheduler.wait_idle()
    before = os.lstat(path)
    with open(path, "r+b") as file:
        file.write(b"B" * 100)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.lstat(path)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )
    await eventually(lambda: bucket.get("data.bin") == b"B" * 100, what="the new bytes in S3")
    await syncer.poll_once()
    await syncer._running().scheduler.wait_idle()
    assert path.read_bytes() == b"B" * 100
    assert metric(syncer, "s3sync_downloads_total") == 0  # and our own upload is not fetched back
