"""Nothing acts through a symlinked directory below the synced folder (issue 8, item 7).

A directory inside the folder that is a symlink to somewhere outside, planted before the start
or swapped in while running with renameat2(RENAME_EXCHANGE), must not let any operation read,
write, copy, chmod or delete a file outside: an upload never sends outside content to S3, a
download or a conflict never writes outside, a remote delete or chmod never reaches outside.
Real symlinks, real renameat2, real inotify, a real S3 server; nothing is mocked. Then the tree
the engine holds the folder by: every operation on it refuses a symlinked or file parent, and a
download's missing parents are made without following one.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from support.bucket import Bucket
from support.folders import parents_made, tree_at
from support.metrics import metric
from support.waiting import eventually, in_thread

from sidecar.local.safefs import Tree, UnsafeParentError
from sidecar.s3.metadata import format_mode, format_mtime

AT_FDCWD = -100
RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)


def exchange(a: Path, b: Path) -> None:
    """Swap two names atomically: renameat2(RENAME_EXCHANGE)."""
    if _libc.renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE):
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def snapshot(directory: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every entry of a directory: content, mode and mtime (what must not change)."""
    result = {}
    for path in sorted(directory.iterdir()):
        st = os.lstat(path)
        result[path.name] = (path.read_bytes(), st.st_mode, st.st_mtime_ns)
    return result


def bucket_contents(bucket: Bucket) -> dict[str, bytes]:
    return {key: bucket.get(key) for key in bucket.list_keys()}


async def settle(syncer: Any) -> None:
    """Until every inotify event queued so far has been handled and no pass is left."""
    engine = syncer._running()
    engine.watcher.barrier()
    await asyncio.wait_for(engine.scheduler.wait_idle(), 30)


def unsafe_skips(syncer: Any) -> float:
    return metric(syncer, "s3sync_skipped_paths_total", reason="unsafe_key")


@pytest.mark.parametrize("remote_is", ["older", "newer"])
async def test_symlinked_directory_at_start_is_never_followed(
    syncer_factory, bucket: Bucket, tmp_path: Path, remote_is: str
) -> None:
    """(a) `link -> outside` planted before the start, and S3 holding `link/secret.txt`: the
    outside file is neither uploaded, nor replaced by the S3 version, nor given a conflict
    copy beside it, whichever side is newer."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"outside secret")
    os.utime(outside / "secret.txt", ns=(1_600_000_000 * 10**9,) * 2)
    before = snapshot(outside)
    folder = tmp_path / "folder"
    folder.mkdir()
    os.symlink(outside, folder / "link")
    mtime = 1_500_000_000 if remote_is == "older" else 1_700_000_000
    await in_thread(
        bucket.put, "link/secret.txt", b"remote version", {"mtime": format_mtime(mtime * 10**9)}
    )

    syncer = await syncer_factory(folder)
    await eventually(lambda: in_thread(bucket.exists, "link"), what="the symlink as an object")
    await settle(syncer)

    assert snapshot(outside) == before, "nothing written, replaced or copied outside"
    contents = await in_thread(bucket_contents, bucket)
    assert contents == {"link": os.fsencode(outside), "link/secret.txt": b"remote version"}
    assert sorted(p.name for p in folder.iterdir()) == [".s3sync-sidecar", "link"]
    assert unsafe_skips(syncer) >= 1


async def test_directory_swapped_for_a_symlink_while_running(
    syncer_factory, bucket: Bucket, tmp_path: Path
) -> None:
    """(b) A synced `d/` is exchanged with a symlink to an outside directory that holds its own
    `file.txt`: that file is not uploaded, and a later remote change of `d/file.txt` neither
    replaces it nor puts a conflict copy beside it. (`d` itself is excluded, so that the
    symlink is not uploaded: its key would shadow `d/file.txt` in S3, and the remote change
    would never be looked at.)"""
    syncer = await syncer_factory(download_interval=1000, exclude_local=r".*/d$")
    folder: Path = syncer.folder
    (folder / "d").mkdir()
    (folder / "d" / "file.txt").write_bytes(b"inside")
    await eventually(lambda: in_thread(bucket.exists, "d/file.txt"), what="d/file.txt in S3")
    await settle(syncer)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "file.txt").write_bytes(b"outside secret")
    before = snapshot(outside)
    swap = tmp_path / "swap"
    os.symlink(outside, swap)

    exchange(folder / "d", swap)  # now folder/d -> outside, and the real d/ is tmp/swap

    def leaked() -> bool:
        return snapshot(outside) != before or any(
            b"outside secret" in body for body in bucket_contents(bucket).values()
        )

    async def handled() -> bool:
        await settle(syncer)
        return await in_thread(leaked) or not await in_thread(bucket.exists, "d/file.txt")

    await eventually(handled, what="the swap seen (d/file.txt gone from the folder)")
    assert not await in_thread(leaked), "outside content reached S3 or outside changed"
    # The app writes the outside file through the link (no event reaches the sidecar for it),
    # then a full rescan (what an inotify overflow starts) looks at everything again.
    (folder / "d" / "file.txt").write_bytes(b"outside secret, rewritten")
    before = snapshot(outside)
    events = syncer._running().events
    events.overflowed()
    assert events._rescanning is not None
    await events._rescanning
    await settle(syncer)
    assert not await in_thread(leaked), "outside content reached S3 or outside changed"

    # Another client changes d/file.txt in S3.
    skipped = unsafe_skips(syncer)
    await in_thread(bucket.put, "d/file.txt", b"remote change")

    async def remote_handled() -> bool:
        await syncer.poll_once()
        await settle(syncer)
        return await in_thread(leaked) or unsafe_skips(syncer) > skipped

    await eventually(remote_handled, what="the remote change refused (unsafe key)")
    assert not await in_thread(leaked), "outside content reached S3 or outside changed"
    assert sorted(p.name for p in outside.iterdir()) == ["file.txt"], "no conflict copy"
    assert (swap / "file.txt").read_bytes() == b"inside", "the moved real directory untouched"


async def _synced(syncer_factory, bucket: Bucket, **options: Any) -> Any:
    """A syncer that polls only when told to, with `d/file.txt` synced."""
    syncer = await syncer_factory(download_interval=1000, **options)
    folder: Path = syncer.folder
    (folder / "d").mkdir()
    (folder / "d" / "file.txt").write_bytes(b"synced")
    os.chmod(folder / "d" / "file.txt", 0o644)
    await eventually(lambda: in_thread(bucket.exists, "d/file.txt"), what="d/file.txt in S3")
    await settle(syncer)
    await syncer.poll_once()  # learns the Last-Modified of our own upload
    await settle(syncer)
    return syncer


def _swap_out(folder: Path, tmp_path: Path) -> Path:
    """Exchange `d` with a symlink to the place the real `d/` lands, outside the folder."""
    outside = tmp_path / "outside"
    os.symlink(outside, outside)  # a loop until the exchange puts the real d/ there
    exchange(folder / "d", outside)
    assert (folder / "d").is_symlink() and not outside.is_symlink()
    return outside


async def test_remote_delete_through_a_swapped_symlink_keeps_the_outside_file(
    syncer_factory, bucket: Bucket, tmp_path: Path
) -> None:
    """(c) `d/file.txt` is deleted in S3 while `d` is a symlink to an outside directory that
    holds the very file last synced: the outside file survives."""
    syncer = await _synced(syncer_factory, bucket)
    folder: Path = syncer.folder
    await in_thread(bucket.delete, "d/file.txt")  # not seen until the next poll
    outside = _swap_out(folder, tmp_path)
    await settle(syncer)
    before = snapshot(outside)

    await syncer.poll_once()
    await settle(syncer)
    await syncer.poll_once()
    await settle(syncer)

    assert snapshot(outside) == before, "the outside file was deleted through the symlink"
    assert (outside / "file.txt").read_bytes() == b"synced"


async def test_remote_chmod_through_a_swapped_symlink_leaves_the_outside_file(
    syncer_factory, bucket: Bucket, tmp_path: Path
) -> None:
    """(d) Another client chmods `d/file.txt` in S3 (a metadata-only copy) while `d` is a
    symlink to an outside directory holding the very file last synced: its mode and mtime
    are not changed. (`d` itself is excluded, so that the symlink is not uploaded: its key
    would shadow `d/file.txt`, and the chmod would never be looked at.)"""
    syncer = await _synced(syncer_factory, bucket, exclude_local=r".*/d$")
    folder: Path = syncer.folder
    written = int((await in_thread(bucket.head, "d/file.txt"))["LastModified"].timestamp())
    await eventually(lambda: time.time() >= written + 1, what="the next second")
    await in_thread(
        bucket.set_metadata,
        "d/file.txt",
        {"mode": format_mode(stat.S_IFREG | 0o777), "mtime": "1400000000.5"},
    )
    outside = _swap_out(folder, tmp_path)
    await settle(syncer)
    before = snapshot(outside)

    await syncer.poll_once()
    await settle(syncer)
    await syncer.poll_once()
    await settle(syncer)

    assert snapshot(outside) == before, "the outside file was chmodded through the symlink"
    assert stat.S_IMODE(os.lstat(outside / "file.txt").st_mode) == 0o644


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


# -- the tree itself: every operation refuses a symlinked parent --------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Any:
    root = tmp_path / "root"
    (root / "work").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f").write_bytes(b"outside")
    os.symlink(outside, root / "link")
    (root / "a").mkdir()
    os.symlink(outside, root / "a" / "link")
    (root / "file").write_bytes(b"a file")
    mounted = tmp_path / "mounted"
    os.symlink(root, mounted)  # the root itself may be a symlink: that one is followed
    opened = Tree(str(mounted), "work")
    opened.start()
    yield opened
    opened.close()
    assert (outside / "f").read_bytes() == b"outside"
    assert sorted(p.name for p in outside.iterdir()) == ["f"]


@pytest.mark.parametrize("rel", ["link/f", "a/link/f", "link/new/f", "file/f"])
def test_every_tree_operation_refuses_a_symlinked_or_file_parent(tree: Tree, rel: str) -> None:
    assert tree.lstat_or_none(rel) is None
    for action in (
        lambda: tree.open(rel, os.O_RDONLY),
        lambda: tree.readlink(rel),
        lambda: parents_made(tree, rel),
    ):
        with pytest.raises(UnsafeParentError):
            action()
    with pytest.raises(UnsafeParentError), tree.parent(rel):
        pass


def test_lstat_many_sees_what_lstat_or_none_sees(tree: Tree, tmp_path: Path) -> None:
    """The restart's one look at every synced path: each parent resolved once for all its
    children, and the same answer as one `lstat_or_none` each: through a symlinked or file
    parent, or for a name that is not one, nothing is there."""
    root = tmp_path / "root"
    (root / "a" / "b").mkdir()
    for rel in ("top.txt", "a/one", "a/two", "a/b/deep"):
        (root / rel).write_bytes(rel.encode())
    rels = [
        "top.txt",
        "a/one",
        "a/b/deep",
        "a/two",
        "a/gone",
        "gone/x",
        "link/f",
        "a/link/f",
        "a/link",
        "link",
        "file/f",
        "a/..",
        "a/b/.",
    ]
    seen = dict(tree.lstat_many(rels))
    assert sorted(seen) == sorted(rels)
    for rel in rels:
        one = tree.lstat_or_none(rel)
        many = seen[rel]
        assert (many is None) == (one is None), rel
        if many is not None and one is not None:
            assert (many.st_ino, many.st_mode) == (one.st_ino, one.st_mode), rel
    assert [rel for rel in rels if seen[rel] is not None] == [
        "top.txt",
        "a/one",
        "a/b/deep",
        "a/two",
        "a/link",
        "link",
    ]


def test_tree_follows_the_root_and_works_below_it(tree: Tree, tmp_path: Path) -> None:
    root = tmp_path / "root"
    assert parents_made(tree, "x/y/z") == ["x", "x/y"]
    assert (root / "x" / "y").is_dir()
    fd = tree.open("x/y/z", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, b"hello")
    os.close(fd)
    entry = tree.lstat_or_none("x/y/z")
    assert entry is not None and entry.st_size == 5
    assert tree.readlink("link") == os.fsencode(tmp_path / "outside")
    with pytest.raises(OSError) as raised:
        tree.open("link", os.O_RDONLY)  # the last component is never followed either
    assert raised.value.errno == errno.ELOOP


# -- a download's parents, made safely ----------------------------------------------------------


def ensure_parents(root: str, rel: str) -> list[str]:
    """`parents_made` in the folder `root`, held open for that one call."""
    tree = tree_at(Path(root))
    try:
        return parents_made(tree, rel)
    finally:
        tree.close()


def test_ensure_parents_creates_missing_directories(tmp_path: Path) -> None:
    assert ensure_parents(str(tmp_path), "a/b/c/file.txt") == ["a", "a/b", "a/b/c"]
    assert (tmp_path / "a" / "b" / "c").is_dir()
    assert not (tmp_path / "a" / "b" / "c" / "file.txt").exists()
    assert ensure_parents(str(tmp_path), "a/b/c/file.txt") == []
    assert ensure_parents(str(tmp_path), "a/x/file.txt") == ["a/x"]
    assert ensure_parents(str(tmp_path), "top.txt") == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [".work", "a"]


def test_ensure_parents_refuses_a_symlink_to_a_directory(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside)
    with pytest.raises(UnsafeParentError):
        ensure_parents(str(root), "link/sub/file.txt")
    with pytest.raises(UnsafeParentError):
        ensure_parents(str(root), "link/file.txt")
    assert list(outside.iterdir()) == []  # nothing written through the link


def test_ensure_parents_refuses_a_symlink_deeper_down(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "a" / "link").symlink_to(outside)
    with pytest.raises(UnsafeParentError):
        ensure_parents(str(root), "a/link/b/c/file.txt")
    assert list(outside.iterdir()) == []


def test_ensure_parents_refuses_a_relative_symlink(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "rel-link").symlink_to("real")
    with pytest.raises(UnsafeParentError):
        ensure_parents(str(tmp_path), "rel-link/new/file")
    assert list((tmp_path / "real").iterdir()) == []


def test_ensure_parents_refuses_a_dangling_symlink(tmp_path: Path) -> None:
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(UnsafeParentError):
        ensure_parents(str(tmp_path), "dangling/file")
    assert not (tmp_path / "nowhere").exists()


def test_ensure_parents_refuses_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"data")
    with pytest.raises(UnsafeParentError):
        ensure_parents(str(tmp_path), "a/b/file.txt")
    assert (tmp_path / "a").read_bytes() == b"data"


def test_ensure_parents_error_is_an_oserror(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(OSError, match="'f'"):
        ensure_parents(str(tmp_path), "f/x")
