"""Local changes reach S3: real inotify on a temp folder, a real moto server checking SigV4.
Files of every size and name, trees made and renamed, links, files held open, bursts and what
is excluded. (Deletes: test_deletes.py; chmod and touch: test_metadata.py.)"""

from __future__ import annotations

import os
import stat

from support.bucket import Bucket, content_of
from support.metrics import metric, requests
from support.waiting import eventually, in_thread

from sidecar.s3.metadata import parse_mode, parse_mtime


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
